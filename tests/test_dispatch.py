"""The one place that decides the code path (goloss/_dispatch.py): its answers, the public
fallbacks of its private torch API, the kernel table, and the values a module step reads back."""

from __future__ import annotations

import functools
import warnings

import pytest
import torch

import goloss
from goloss import _dispatch
from goloss._validation import value_checks_active

RATE_MODULES = [
    lambda: goloss.RecallAtPrecisionLoss(0.8),
    lambda: goloss.PrecisionAtRecallLoss(0.8, dual_signal="surrogate"),
    lambda: goloss.TPRAtFPRLoss(0.1, auto_dual_step=True),
]


def batch(rows, seed=0, dtype=torch.float64):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, generator=generator, dtype=dtype)
    y = (torch.rand(rows, generator=generator) < 0.3).to(dtype)
    return x, y


def test_modes_in_eager_under_transforms_and_compiling():
    assert _dispatch.plain_eager() and not _dispatch.under_transform() and not _dispatch.compiling()
    seen = []

    def probe(x):
        seen.append((_dispatch.plain_eager(), _dispatch.under_transform(), value_checks_active()))
        return x.sum()

    torch.func.vmap(probe)(torch.ones(2, 3))
    torch.func.grad(probe)(torch.ones(3))
    assert seen == [(False, True, False)] * 2

    @torch.compile(fullgraph=True, backend="eager")
    def compiled(x):
        return x + float(_dispatch.compiling()) + float(_dispatch.under_transform())

    assert compiled(torch.zeros(1)).item() == 1.0  # compiling, and not "under a transform"


def test_multiply_in_place_only_with_several_labels_in_plain_eager_mode():
    x, w = torch.ones(4, 3), torch.ones(4, 3)
    assert _dispatch.multiply_in_place(x, w, w)
    assert not _dispatch.multiply_in_place(torch.ones(4, 1), torch.ones(4, 1))  # one label: a dot product
    assert not _dispatch.multiply_in_place(torch.ones(4), torch.ones(4))
    assert not _dispatch.multiply_in_place(x, torch.ones(4, 1))  # a weight that broadcasts
    seen = []
    torch.func.vmap(lambda w: seen.append(_dispatch.multiply_in_place(x, w)) or w.sum())(torch.ones(2, 4, 3))
    assert seen == [False]  # a transform may batch the weights


def test_kernel_table():
    fewest, _, fewest_one_label = _dispatch.KERNELS["sums"]
    assert fewest_one_label is not None and fewest_one_label > fewest  # one label: 1.17-1.40x at 2^17
    assert not _dispatch.use_kernel("sums", torch.empty(fewest_one_label - 1, 1), False)
    assert _dispatch.use_kernel("sums", torch.empty(fewest_one_label, 1), False)
    assert _dispatch.use_kernel("sums", torch.empty(fewest_one_label), False)  # [B] logits
    assert not _dispatch.use_kernel("sums", torch.empty(fewest // 8 - 1, 8), False)
    assert _dispatch.use_kernel("sums", torch.empty(fewest // 8, 8), False)  # several labels from 2^17
    assert _dispatch.use_kernel("sums", torch.empty(4096, 100), False)
    assert not _dispatch.use_kernel("sums", torch.empty(4096, 100), True)
    assert _dispatch.use_kernel("rows", torch.empty((1 << 20) // 8, 8), False)  # elements, whatever L
    assert not _dispatch.use_kernel("sums", torch.empty(fewest_one_label, 1), True)  # hinge: slower than plain ops
    assert not _dispatch.use_kernel("rows", torch.empty(1 << 20, 1), True)
    assert _dispatch.use_kernel("rows", torch.empty(1 << 17, 8), False)
    assert _dispatch.use_kernel("anchor_sum", torch.empty(1 << 13, 1), True, 20)
    assert not _dispatch.use_kernel("anchor_sum", torch.empty(1 << 11, 1), True, 20)


@pytest.mark.parametrize("reduction", ["mean", "none"])
@pytest.mark.parametrize("surrogate_type", ["xent", "hinge"])
def test_kernel_and_plain_paths_agree_across_the_threshold(monkeypatch, reduction, surrogate_type):
    """One batch just large enough for the kernels, computed with the table as it is and with
    every kernel off: same loss, aux and gradient."""
    x, y = batch(_dispatch.KERNELS["rows"].fewest, seed=3)
    lam = torch.tensor([0.7], dtype=torch.float64)

    def run():
        logits = x.clone().requires_grad_()
        loss, aux = goloss.recall_at_precision_loss(None, lam, logits, y, target_precision=0.7,
                                                    surrogate_type=surrogate_type, reduction=reduction)
        loss.sum().backward()
        return loss.detach(), aux, logits.grad

    kernel = run()
    monkeypatch.setitem(_dispatch.KERNELS, "sums", _dispatch.Kernel(1 << 40, True))
    monkeypatch.setitem(_dispatch.KERNELS, "rows", _dispatch.Kernel(1 << 40, True))
    plain = run()
    torch.testing.assert_close(kernel[0], plain[0])
    torch.testing.assert_close(kernel[2], plain[2])
    for key in kernel[1]:
        torch.testing.assert_close(kernel[1][key], plain[1][key], msg=key)


def test_forward_mode_is_told_in_every_form_and_by_its_fallback(monkeypatch):
    """``torch.func.jvp``/``jacfwd`` (nested under ``vmap`` too) and ``forward_ad.dual_level``;
    without ``forward_ad._current_level`` the safe answer, so no kernel runs."""
    seen = []

    def probe(x):
        seen.append(_dispatch.forward_mode())
        return x.sin()

    x = torch.ones(3)
    probe(x)
    torch.func.grad(lambda t: probe(t).sum())(x)
    torch.func.vmap(probe)(x)
    torch.func.jvp(probe, (x,), (x,))
    torch.func.vmap(torch.func.jacfwd(probe))(x[None])
    with torch.autograd.forward_ad.dual_level():
        probe(torch.autograd.forward_ad.make_dual(x, x))
    assert seen == [False, False, False, True, True, True]
    assert _dispatch.use_kernel("rows", torch.empty(1 << 20, 1), False)
    monkeypatch.delattr(torch.autograd.forward_ad, "_current_level")
    assert _dispatch.forward_mode() and not _dispatch.use_kernel("rows", torch.empty(1 << 20, 1), False)


LOSSES_UNDER_JVP = {
    "rate, none": lambda x, y, s: goloss.recall_at_precision_loss(None, 0.7, x, y, target_precision=0.6,
                                                                  reduction="none", surrogate_type=s)[0],
    "rate, mean": lambda x, y, s: goloss.precision_at_recall_loss(None, 0.7, x, y, target_recall=0.6,
                                                                  surrogate_type=s)[0],
    "pr_auc": lambda x, y, s: goloss.precision_recall_auc_loss(
        {"biases": torch.zeros(3, 4, dtype=x.dtype)}, torch.ones(3, 4, dtype=x.dtype), x, y, num_anchors=4,
        surrogate_type=s)[0],
    "roc_auc": lambda x, y, s: goloss.roc_auc_loss(None, None, x, y, surrogate_type=s)[0],
}


@pytest.mark.parametrize("surrogate_type", ["xent", "hinge"])
@pytest.mark.parametrize("name", list(LOSSES_UNDER_JVP))
def test_under_forward_mode_the_plain_path_runs_where_a_kernel_would(monkeypatch, name, surrogate_type):
    """The kernels have no ``jvp``: with every kernel switched on for any size, ``jacfwd`` and
    ``torch.autograd.forward_ad`` still give the Jacobian that reverse mode gives."""
    for kernel in ("sums", "rows", "anchor_sum"):
        monkeypatch.setitem(_dispatch.KERNELS, kernel, _dispatch.Kernel(1, True))
    generator = torch.Generator().manual_seed(len(name))
    x = torch.randn(6, 3, generator=generator, dtype=torch.float64)
    y = (torch.rand(6, 3, generator=generator) < 0.5).double()
    loss = functools.partial(LOSSES_UNDER_JVP[name], y=y, s=surrogate_type)
    expected = torch.autograd.functional.jacobian(loss, x)
    torch.testing.assert_close(torch.func.jacfwd(loss)(x), expected)
    tangent = torch.randn(6, 3, generator=generator, dtype=torch.float64)
    with torch.autograd.forward_ad.dual_level():
        derivative = torch.autograd.forward_ad.unpack_dual(loss(torch.autograd.forward_ad.make_dual(x, tangent))).tangent
    torch.testing.assert_close(derivative, (expected.reshape(-1, 18) @ tangent.reshape(18)).reshape(derivative.shape))


def test_without_the_transform_probe_nothing_is_written_in_place_and_results_agree(monkeypatch):
    """Fallback of ``torch._C._functorch.maybe_current_level``: assume a transform may be active."""
    x, y = batch(1 << 20, seed=1)
    logits = x.clone().requires_grad_()
    expected, _ = goloss.recall_at_precision_loss(None, 1.0, logits, y, target_precision=0.9, reduction="none")
    expected_grad, = torch.autograd.grad(expected.sum(), logits)
    monkeypatch.setattr(_dispatch, "_current_level", None)
    assert _dispatch.under_transform() and not _dispatch.plain_eager() and not value_checks_active()
    loss, _ = goloss.recall_at_precision_loss(None, 1.0, logits, y, target_precision=0.9, reduction="none")
    grad, = torch.autograd.grad(loss.sum(), logits)
    torch.testing.assert_close(loss, expected)
    torch.testing.assert_close(grad, expected_grad)
    swept = torch.func.vmap(lambda t: goloss.recall_at_precision_loss(None, 1.0, x[:64], y[:64],
                                                                      target_precision=t)[0].sum())
    torch.testing.assert_close(swept(torch.tensor([0.5, 0.9], dtype=torch.float64))[1],
                               goloss.recall_at_precision_loss(None, 1.0, x[:64], y[:64], target_precision=0.9)[0].sum())


def test_without_the_fast_apply_the_kernels_use_function_apply(monkeypatch):
    """Fallback of ``Function.apply``'s C entry point: ``Function.apply``."""
    x, y = batch(1 << 20, seed=2)
    logits = x.clone().requires_grad_()
    expected = goloss.precision_at_recall_loss(None, 2.0, logits, y, target_recall=0.6, reduction="mean")[0]
    expected_grad, = torch.autograd.grad(expected, logits)
    monkeypatch.setattr(_dispatch, "_c_apply", None)
    loss = goloss.precision_at_recall_loss(None, 2.0, logits, y, target_recall=0.6, reduction="mean")[0]
    torch.testing.assert_close(loss, expected)
    torch.testing.assert_close(torch.autograd.grad(loss, logits)[0], expected_grad)


@pytest.mark.parametrize("version", ["counter", "fallback"])
def test_frozen_biases_warn_with_the_version_counter_and_with_its_fallback(monkeypatch, version):
    """Fallback of ``Tensor._version``: the biases' values, compared while value checks are on."""
    if version == "fallback":
        monkeypatch.setattr(_dispatch, "version", lambda tensor: None)
    criterion = goloss.PrecisionRecallAUCLoss(num_anchors=3).double()
    x, y = batch(32, seed=4)
    with pytest.warns(UserWarning, match="never changed"):
        for _ in range(12):
            criterion(x.clone().requires_grad_(), y).backward()
            criterion.dual_step()
    moving = goloss.PrecisionRecallAUCLoss(num_anchors=3).double()
    optimizer = torch.optim.SGD(moving.parameters(), lr=0.1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an optimizer that moves the biases: no warning
        for _ in range(12):
            optimizer.zero_grad()
            moving(x.clone().requires_grad_(), y).backward()
            optimizer.step()
            moving.dual_step()


class ReadCounter:
    """Counts the values read back from tensors to Python (each a device synchronisation on a GPU)."""

    NAMES = ("item", "tolist", "__bool__", "__float__", "__int__")

    def __init__(self, monkeypatch):
        self.count = 0
        for name in self.NAMES:
            original = getattr(torch.Tensor, name)
            monkeypatch.setattr(torch.Tensor, name, self._counting(original))
        monkeypatch.setattr(torch, "equal", self._counting(torch.equal))

    def _counting(self, function):
        def counted(*args, **kwargs):
            self.count += 1
            return function(*args, **kwargs)

        return counted


@pytest.mark.parametrize("rows", [64, 1 << 20])
@pytest.mark.parametrize("checks", [True, False])
@pytest.mark.parametrize("make", [*RATE_MODULES, lambda: goloss.PrecisionRecallAUCLoss(num_anchors=4)],
                         ids=["R@P", "P@R surrogate", "TPR@FPR auto", "PR-AUC"])
def test_a_module_step_reads_at_most_one_value_and_none_without_checks(monkeypatch, make, checks, rows):
    criterion = make().double()
    x, y = batch(rows, seed=5)
    optimizer = torch.optim.SGD(criterion.parameters(), lr=0.01) if list(criterion.parameters()) else None
    goloss.set_value_checks(checks)
    counter = ReadCounter(monkeypatch)
    reads = []
    try:
        # every step, the first (the probability probe rides on the read) and the
        # CAP_CHECK_EVERY-th (the multipliers too) included
        for _ in range(goloss.nn.CAP_CHECK_EVERY + 1):
            counter.count = 0
            logits = x.clone().requires_grad_()
            criterion(logits, y).backward()
            if optimizer is not None:
                optimizer.step()
            if not criterion.auto_dual_step:
                criterion.dual_step()
            reads.append(counter.count)
    finally:
        goloss.set_value_checks(True)
    assert reads == [1 if checks else 0] * len(reads)
