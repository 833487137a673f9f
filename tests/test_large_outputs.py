"""Fresh large outputs: a contiguous tensor of the asked shape and dtype, huge-page aligned on
Linux from the threshold on, and independent of every other output."""

import sys

import pytest
import torch

from goloss import _large_outputs
from goloss._large_outputs import HUGE_PAGE, empty_output


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
@pytest.mark.parametrize("large", [False, True])
def test_empty_output_is_a_fresh_contiguous_tensor(dtype, large, monkeypatch):
    if large:
        monkeypatch.setattr(_large_outputs, "LARGE_BYTES", 0)
    shape = (3, 5, 7)
    first, second = (empty_output(shape, dtype, torch.device("cpu")) for _ in range(2))
    for out in (first, second):
        assert out.shape == shape and out.dtype == dtype and out.is_contiguous()
    first.fill_(1.0)
    second.fill_(2.0)
    assert (first == 1).all() and (second == 2).all()  # no shared memory
    if large and sys.platform == "linux":
        assert first.data_ptr() % HUGE_PAGE == 0
        assert first.untyped_storage().nbytes() == first.numel() * first.element_size() + HUGE_PAGE


def test_small_outputs_are_plain():
    out = empty_output((4, 4), torch.float32, torch.device("cpu"))
    assert out.untyped_storage().nbytes() == 64  # below the threshold: torch.empty
