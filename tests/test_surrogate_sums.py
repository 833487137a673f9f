"""The per-label surrogate sums Function against the plain expression: values, gradients
(no jvp: under forward-mode AD the dispatch takes the plain path, tests/test_dispatch.py)."""

import pytest
import torch

from goloss._math import surrogate_values
from goloss._surrogate_sums import SurrogateSums, plain_surrogate_sums


@pytest.mark.parametrize("hinge", [False, True])
@pytest.mark.parametrize("shape", [(7,), (9, 3)])
def test_surrogate_sums_match_the_plain_expression(hinge, shape):
    generator = torch.Generator().manual_seed(len(shape) + hinge)
    x = (3 * torch.randn(shape, generator=generator, dtype=torch.float64)).requires_grad_()
    y = (torch.rand(shape, generator=generator) < 0.4).double()
    w = torch.rand(shape, generator=generator, dtype=torch.float64)
    c, d = (w * y).requires_grad_(), (w * (1 - y)).requires_grad_()
    ours = SurrogateSums.apply(x, c, d, hinge)
    expected = plain_surrogate_sums(x, c, d, hinge)  # the kernel's reference, the oracle
    for a, b in zip(ours, expected):
        torch.testing.assert_close(a, b)
    positive, negative = surrogate_values(x, hinge)  # and both against the definition
    for a, b in zip(expected, ((c * positive).sum(0), (d * negative).sum(0))):
        torch.testing.assert_close(a, b)
    for got, want in zip(torch.autograd.grad(sum(o.sum() for o in ours), (x, c, d)),
                         torch.autograd.grad(sum(e.sum() for e in expected), (x, c, d))):
        torch.testing.assert_close(got, want)
    if hinge:
        x = x.detach().clamp(-0.9, 0.9).requires_grad_()  # away from the kinks at +-1
    assert torch.autograd.gradcheck(lambda *t: SurrogateSums.apply(*t, hinge), (x, c, d))


@pytest.mark.parametrize("shape", [(7, 1), (9, 3)])
def test_implicit_negative_weights_are_one_minus_the_positive_weights(shape):
    """``on_negatives=None`` (unweighted labels): the kernel equals the plain sums with ``1 - c``,
    in value and gradient (``c`` moves ``d``)."""
    generator = torch.Generator().manual_seed(sum(shape))
    x = (3 * torch.randn(shape, generator=generator, dtype=torch.float64)).requires_grad_()
    c = torch.rand(shape, generator=generator, dtype=torch.float64).requires_grad_()  # soft labels
    ours = SurrogateSums.apply(x, c, None, False)
    expected = plain_surrogate_sums(x, c, 1.0 - c, False)
    for a, b in zip(ours, expected):
        torch.testing.assert_close(a, b)
    for got, want in zip(torch.autograd.grad(sum(o.sum() for o in ours), (x, c)),
                         torch.autograd.grad(sum(e.sum() for e in expected), (x, c))):
        torch.testing.assert_close(got, want)
    assert torch.autograd.gradcheck(lambda *t: SurrogateSums.apply(*t, None, False), (x, c))


@pytest.mark.parametrize("weighted", [False, True])
def test_under_vmap_either_input_may_be_batched(weighted):
    """The kernel works on its fresh tensors in place only in plain eager mode: under ``vmap``
    the weights (or the logits alone) may carry the batch dimension. Several labels, the path
    with the products in place."""
    generator = torch.Generator().manual_seed(5)
    x = 3 * torch.randn(4, 9, 3, generator=generator, dtype=torch.float64)
    c = torch.rand(4, 9, 3, generator=generator, dtype=torch.float64)

    def kernel(x, c):
        return SurrogateSums.apply(x, c, 1.0 - c if weighted else None, False)

    for in_dims in ((None, 0), (0, None), (0, 0)):
        got = torch.func.vmap(kernel, in_dims=in_dims)(x[0] if in_dims[0] is None else x,
                                                       c[0] if in_dims[1] is None else c)
        for k in range(4):
            want = plain_surrogate_sums(x[0] if in_dims[0] is None else x[k],
                                        c[0] if in_dims[1] is None else c[k],
                                        1.0 - (c[0] if in_dims[1] is None else c[k]), False)
            for a, b in zip(got, want):
                torch.testing.assert_close(a[k], b)


def test_extreme_logits_with_several_labels_keep_the_bounds():
    """Logits of +-1e4 on the in-place path (several labels): finite sums equal to the plain ones,
    and the bounds they give hold: S- / s >= the weighted false positives, sum c - S+ / s <= the
    weighted true positives (s = log 2)."""
    generator = torch.Generator().manual_seed(11)
    x = 1e4 * torch.randint(-1, 2, (64, 5), generator=generator).float()
    x[::7] = 0.5 * torch.randn(10, 5, generator=generator)
    c = (torch.rand(64, 5, generator=generator) < 0.4).float()
    positive_sum, negative_sum = SurrogateSums.apply(x, c, None, False)
    expected = plain_surrogate_sums(x.double(), c.double(), None, False)
    assert torch.isfinite(positive_sum).all() and torch.isfinite(negative_sum).all()
    torch.testing.assert_close(positive_sum.double(), expected[0], rtol=1e-5, atol=1e-3)
    torch.testing.assert_close(negative_sum.double(), expected[1], rtol=1e-5, atol=1e-3)
    predicted = (x > 0).float()
    scale = torch.log(torch.tensor(2.0))
    assert (negative_sum / scale >= ((1 - c) * predicted).sum(0) - 1e-3).all()
    assert (c.sum(0) - positive_sum / scale <= (c * predicted).sum(0) + 1e-3).all()
