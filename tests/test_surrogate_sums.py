"""The per-label surrogate sums Function against the plain expression: values, gradients, jvp."""

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
    assert torch.autograd.gradcheck(lambda *t: SurrogateSums.apply(*t, hinge), (x, c, d), check_forward_ad=True)


@pytest.mark.parametrize("shape", [(7, 1), (9, 3)])
def test_implicit_negative_weights_are_one_minus_the_positive_weights(shape):
    """``on_negatives=None`` (unweighted labels): the kernel equals the plain sums with ``1 - c``,
    in value, gradient (``c`` moves ``d``) and forward-mode derivative."""
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
    assert torch.autograd.gradcheck(lambda *t: SurrogateSums.apply(*t, None, False), (x, c), check_forward_ad=True)
