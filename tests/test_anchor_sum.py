"""The memory-lean PR-AUC anchor sum equals its plain-autograd definition, values and gradients."""

import pytest
import torch

from goloss._anchor_sum import AnchorSum, plain_anchor_sum


@pytest.mark.parametrize("hinge", [False, True])
@pytest.mark.parametrize("seed,batch,labels,anchors", [(0, 7, 1, 1), (1, 13, 3, 5), (2, 32, 2, 20)])
def test_anchor_sum_matches_the_plain_expression(hinge, seed, batch, labels, anchors):
    generator = torch.Generator().manual_seed(seed)
    options = {"generator": generator, "dtype": torch.float64}
    x = (torch.randn(batch, labels, **options) * 2).requires_grad_()
    y = (torch.rand(batch, labels, **options) < 0.4).double()
    w = (torch.rand(batch, labels, **options) + 0.1).requires_grad_()
    b = torch.randn(labels, anchors, **options).requires_grad_()
    lam = (torch.rand(labels, anchors, **options) * 3).requires_grad_()
    a = torch.linspace(0, 1, anchors + 2, dtype=torch.float64)[1:-1]
    upstream = torch.randn(batch, labels, **options)
    inputs = (x, w, b, lam)
    ours, _, *sums = AnchorSum.apply(x, y, w, b, lam, a, hinge)
    expected, *expected_sums = plain_anchor_sum(x, y, w, b, lam, a, hinge)
    torch.testing.assert_close(ours, expected)
    for got, want in zip(sums, expected_sums):  # the per-anchor sums of aux
        torch.testing.assert_close(got, want)
    for got, want in zip(torch.autograd.grad(ours, inputs, upstream), torch.autograd.grad(expected, inputs, upstream)):
        torch.testing.assert_close(got, want)
    if not hinge:  # hinge has kinks where finite differences disagree with the subgradient
        assert torch.autograd.gradcheck(lambda *t: AnchorSum.apply(t[0], y, t[1], t[2], t[3], a, hinge)[0], inputs)
