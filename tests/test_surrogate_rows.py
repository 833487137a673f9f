"""The per-row Lagrangian Function against the plain expression: values, gradients (general and
constant-along-batch incoming gradients) and its vmap rule over coefficients and data. The kernel
has no jvp: under forward-mode AD the dispatch takes the plain path (tests/test_dispatch.py)."""

import pytest
import torch
from torch.func import grad, vmap

from goloss import _large_outputs
from goloss._surrogate_rows import SurrogateRows
from goloss._surrogate_rows import plain_surrogate_rows as plain  # the kernel's reference, the oracle
from goloss._math import surrogate_values


def ours(*args):
    return SurrogateRows.apply(*args)[:3]


def inputs(seed, shape, hinge, masked, implicit=False):
    """``[x, c, d, alpha, beta, gamma, mask]``; ``implicit``: soft labels as ``c``, ``d`` None
    (``1 - c``), no mask."""
    generator = torch.Generator().manual_seed(seed)
    options = dict(generator=generator, dtype=torch.float64)
    x = 3 * torch.randn(shape, **options)
    if hinge:  # away from the kinks at +-1
        x = torch.where((x.abs() - 1).abs() < 0.05, x + 0.2, x)
    y = (torch.rand(shape, generator=generator) < 0.4).double()
    w = torch.rand(shape, **options) * (torch.rand(shape, generator=generator) < 0.8)
    labels = shape[-1]
    alpha, beta, gamma = (torch.rand(labels, **options) + 0.1 for _ in range(3))
    mask = (w > 0).double() if masked else None
    if implicit:
        return [x, torch.rand(shape, **options), None, alpha, beta, gamma, None]
    return [x, w * y, w * (1 - y), alpha, beta, gamma, mask]


@pytest.mark.parametrize("masked", [False, True, "implicit d"])
@pytest.mark.parametrize("hinge", [False, True])
@pytest.mark.parametrize("shape", [(7, 1), (9, 3)])
def test_values_and_gradients_match_the_plain_expression(shape, hinge, masked):
    implicit = masked == "implicit d"
    args = inputs(len(shape) + shape[-1] + hinge, shape, hinge, masked is True, implicit)
    differentiable = [t.requires_grad_() for t in args[:6] if t is not None]
    for a, b in zip(ours(*args, hinge), plain(*args, hinge)):
        torch.testing.assert_close(a, b)
    # Incoming gradients of every kind: general, and constant along the batch (from .sum()).
    for reduce in (lambda r: (r * torch.linspace(-1, 2, r.numel(), dtype=r.dtype).reshape(r.shape)).sum(),
                   lambda r: r.sum(), lambda r: r.sum() + 0.0 * r.mean()):
        for with_sums in (False, True):
            def total(f):
                rows, positive_sum, negative_sum = f(*args, hinge)
                extra = (positive_sum * 0.3 - negative_sum).sum() if with_sums else 0.0
                return reduce(rows) + extra
            got = torch.autograd.grad(total(ours), differentiable)
            expected = torch.autograd.grad(total(plain), differentiable)
            names = "x c alpha beta gamma" if implicit else "x c d alpha beta gamma"
            for name, a, b in zip(names.split(), got, expected):
                torch.testing.assert_close(a, b, msg=lambda m: f"d/d {name}: {m}")
    if implicit:
        check = lambda x, c, *rest: ours(x, c, None, *rest, args[6], hinge)  # noqa: E731
    else:
        check = lambda *t: ours(*t, args[6], hinge)  # noqa: E731
    assert torch.autograd.gradcheck(check, tuple(differentiable))


def test_uniform_gradient_path_is_taken_and_exact():
    """``.sum()`` gives a stride-0 gradient along the batch axis: the [L]-sized path."""
    args = inputs(3, (64, 2), False, False)
    alpha = args[3].requires_grad_()
    x = args[0].requires_grad_()
    rows = ours(*args, False)[0]
    g_alpha, g_x = torch.autograd.grad(rows.sum(), (alpha, x))
    positive, _ = surrogate_values(args[0], False)
    torch.testing.assert_close(g_alpha, (args[1] * positive).sum(0))
    expected = torch.autograd.grad(plain(*args, False)[0].sum(), x)[0]
    torch.testing.assert_close(g_x, expected)


@pytest.mark.parametrize("large", [False, True])
@pytest.mark.parametrize("masked", [False, True, "implicit d"])
@pytest.mark.parametrize("labels", [1, 2])
@pytest.mark.parametrize("hinge", [False, True])
def test_vmap_over_coefficients_computes_the_parts_once(hinge, labels, masked, large, monkeypatch):
    """vmap over K (alpha, beta, gamma): rows [K, B, L], sums unbatched, gradients exact;
    ``large``: every eager output is a huge-page view (as from 32 MiB on)."""
    if large:
        monkeypatch.setattr(_large_outputs, "LARGE_BYTES", 0)
    x, c, d, _, _, _, mask = inputs(5 + labels, (33, labels), hinge, masked is True, masked == "implicit d")
    generator = torch.Generator().manual_seed(labels)
    alphas, betas, gammas = (torch.rand(4, labels, generator=generator, dtype=torch.float64) for _ in range(3))

    def per_target(f, a, b, g, logits):
        rows, positive_sum, negative_sum = f(logits, c, d, a, b, g, mask, hinge)
        return rows.sum() + (positive_sum - 2 * negative_sum).sum() + (rows * logits).sum()

    for argnums in (0, 3):
        got = vmap(grad(lambda *t: per_target(ours, *t), argnums=argnums), in_dims=(0, 0, 0, None))(alphas, betas, gammas, x)
        expected = vmap(grad(lambda *t: per_target(plain, *t), argnums=argnums), in_dims=(0, 0, 0, None))(alphas, betas, gammas, x)
        torch.testing.assert_close(got, expected)
    # Outside-in: autograd through a vmapped forward (the benchmark's sweep).
    leaves = [t.clone().requires_grad_() for t in (alphas, betas, gammas, x)]
    totals = {}
    for name, f in (("ours", ours), ("plain", plain)):
        value = vmap(lambda a, b, g: f(leaves[3], c, d, a, b, g, mask, hinge)[0].sum())(*leaves[:3]).sum()
        totals[name] = torch.autograd.grad(value, leaves)
    for a, b in zip(totals["ours"], totals["plain"]):
        torch.testing.assert_close(a, b)


def test_vmap_over_data():
    x, c, d, alpha, beta, gamma, mask = inputs(7, (3, 5, 2), False, True)
    got = vmap(lambda a, b, e, m: ours(a, b, e, alpha, beta, gamma, m, False))(x, c, d, mask)
    expected = vmap(lambda a, b, e, m: plain(a, b, e, alpha, beta, gamma, m, False))(x, c, d, mask)
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("hinge", [False, True])
def test_implicit_d_under_vmap_over_data_and_labels(hinge):
    """d = 1 - c: N moves with c, so a vmap over the labels alone batches N too."""
    x, c, _, alpha, beta, gamma, _ = inputs(8, (3, 5, 2), hinge, False, implicit=True)
    for in_dims in ((0, 0), (None, 0), (0, None)):
        def run(f, logits, labels):
            return f(logits, labels, None, alpha, beta, gamma, None, hinge)
        xs = x if in_dims[0] == 0 else x[0]
        cs = c if in_dims[1] == 0 else c[0]
        got = vmap(lambda a, b: run(ours, a, b), in_dims=in_dims)(xs, cs)
        expected = vmap(lambda a, b: run(plain, a, b), in_dims=in_dims)(xs, cs)
        for a, b in zip(got, expected):
            torch.testing.assert_close(a, b)


@pytest.mark.parametrize("rows", [64, 70_000])  # plain small path and the Functions
@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_double_backward_matches_the_plain_lagrangian(reduction, rows):
    """Hessian-vector products (create_graph=True) through the rate loss equal the plain
    expression's: the Functions' backward is itself differentiable."""
    import goloss
    generator = torch.Generator().manual_seed(rows)
    x = torch.randn(rows, 2, generator=generator, dtype=torch.float64).requires_grad_()
    y = (torch.rand(rows, 2, generator=generator) < 0.3).double()
    lam, t = torch.tensor([1.0, 2.5], dtype=torch.float64), 0.8
    weights = torch.linspace(0, 1, rows * 2, dtype=torch.float64).reshape(rows, 2)

    def plain():
        positive = -torch.nn.functional.logsigmoid(x)
        prior = (1 + y.sum(0)) / (2 + rows)
        per_row = ((1 + lam * (1 - t)) * y * positive + lam * t * (1 - y) * (positive + x)
                   - lam * (1 - t) * prior * torch.log(torch.tensor(2.0, dtype=x.dtype)))
        return per_row.mean() if reduction == "mean" else per_row

    def ours():
        return goloss.recall_at_precision_loss(None, lam, x, y, target_precision=t, reduction=reduction)[0]

    products = []
    for f in (ours, plain):
        loss = f()
        (grad,) = torch.autograd.grad((loss * weights).sum() if reduction == "none" else loss, x, create_graph=True)
        products.append(torch.autograd.grad((grad * grad).sum(), x)[0])
    torch.testing.assert_close(products[0], products[1])


@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_large_batches_under_torch_func_grad_match_autograd(reduction):
    """Above 2^16 elements the losses go through the custom Functions: applied directly in
    eager mode, through ``Function.apply`` under ``torch.func`` transforms; both agree."""
    import goloss
    generator = torch.Generator().manual_seed(3)
    x = torch.randn(70_000, generator=generator, dtype=torch.float64)
    y = (torch.rand(70_000, generator=generator) < 0.2).double()
    lam = torch.tensor(1.5, dtype=torch.float64)

    def total(logits, lambdas):
        loss = goloss.recall_at_precision_loss(None, lambdas, logits, y, target_precision=0.7, reduction=reduction)[0]
        return (loss * torch.linspace(0, 1, loss.numel(), dtype=loss.dtype).reshape(loss.shape)).sum()

    got = grad(total, argnums=(0, 1))(x, lam)
    leaves = (x.clone().requires_grad_(), lam.clone().requires_grad_())
    expected = torch.autograd.grad(total(*leaves), leaves)
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b)
