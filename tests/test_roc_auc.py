"""The fast ROC-AUC forms (sorted hinge, blocked xent) against the pairwise definition.

Values are compared on inputs full of ties: logits drawn from integers and
half-integers, so that pair margins hit exactly 0 and 1 (the hinge's kink).
Gradients (with respect to logits and weights, from a random cotangent) are
compared on continuous logits, away from the kinks; one test also checks the
kinks on an exact grid, where both forms follow ``relu``'s convention.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import assume, given, settings, strategies as st
from torch.func import grad, jacfwd, jacrev, vmap

from goloss._roc_auc import (
    _argsort_rows,
    blocked_xent_roc_auc,
    default_block_size,
    pairwise_roc_auc,
    roc_auc_elementwise,
    sorted_hinge_roc_auc,
)

DTYPE = torch.float64
RTOL, ATOL = 1e-10, 1e-12
SURROGATES = ("hinge", "xent")
LOGIT_KINDS = ("half_integers", "integers", "continuous")
LABEL_KINDS = ("random", "rare_positives", "rare_negatives", "all_positive", "all_negative")
WEIGHT_KINDS = ("ones", "random", "with_zeros", "small_integers")


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread: on a busy 2-core machine, two OpenMP threads competing with other
    processes made these small kernels tens of times slower. The results do not depend on it."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def make_batch(seed, batch_size, num_labels, logits="half_integers", labels="random", weights="random",
               dtype=DTYPE):
    """``(x, y, w)``, each ``[B, L]``, from a seed and the kind of each input."""
    generator = torch.Generator().manual_seed(seed)
    shape = (batch_size, num_labels)
    if logits == "half_integers":  # margins of exactly 0, 0.5 and 1 everywhere
        x = torch.randint(-6, 7, shape, generator=generator).to(dtype) / 2
    elif logits == "integers":
        x = torch.randint(-2, 3, shape, generator=generator).to(dtype)
    else:
        x = torch.randn(shape, generator=generator, dtype=dtype) * 2
    fraction = {"random": 0.5, "rare_positives": 0.1, "rare_negatives": 0.9,
                "all_positive": 1.0, "all_negative": 0.0}[labels]
    y = (torch.rand(shape, generator=generator) < fraction).to(dtype)
    if labels == "all_positive":
        y = torch.ones(shape, dtype=dtype)
    if weights == "ones":
        w = torch.ones(shape, dtype=dtype)
    elif weights == "random":
        w = torch.rand(shape, generator=generator, dtype=dtype) + 0.1
    elif weights == "with_zeros":
        w = torch.rand(shape, generator=generator, dtype=dtype) * (torch.rand(shape, generator=generator) < 0.6)
    else:
        w = torch.randint(0, 4, shape, generator=generator).to(dtype)
    return x, y, w


def fast(surrogate_type, block_size=None):
    if surrogate_type == "hinge":
        return sorted_hinge_roc_auc
    return lambda x, y, w: blocked_xent_roc_auc(x, y, w, block_size=block_size)


def close(got, expected, what):
    torch.testing.assert_close(got, expected, rtol=RTOL, atol=ATOL, msg=lambda m: f"{what}: {m}")


def value_and_gradients(function, x, y, w, cotangent):
    """``function(x, y, w)`` and the gradients of ``sum(cotangent * function)`` w.r.t. ``x`` and ``w``."""
    x, w = x.detach().requires_grad_(), w.detach().requires_grad_()
    value = function(x, y, w)
    grad_x, grad_w = torch.autograd.grad((value * cotangent).sum(), (x, w))
    return value.detach(), grad_x, grad_w


def check_against_pairwise(surrogate_type, x, y, w, gradients, block_size=None):
    expected_fn = lambda a, b, c: pairwise_roc_auc(a, b, c, surrogate_type)  # noqa: E731
    got_fn = fast(surrogate_type, block_size)
    if not gradients:
        got, expected = got_fn(x, y, w), expected_fn(x, y, w)
        assert got.shape == x.shape and got.dtype == x.dtype
        close(got, expected, f"{surrogate_type} value")
        return
    cotangent = torch.randn(x.shape, generator=torch.Generator().manual_seed(7), dtype=x.dtype)
    got = value_and_gradients(got_fn, x, y, w, cotangent)
    expected = value_and_gradients(expected_fn, x, y, w, cotangent)
    for name, a, b in zip(("value", "d/dx", "d/dw"), got, expected):
        close(a, b, f"{surrogate_type} {name}")


def away_from_kinks(x):
    """Every pairwise logit difference at least 1e-6 away from +-1 (the hinge's kinks)."""
    difference = (x.unsqueeze(0) - x.unsqueeze(1)).abs()
    return bool(((difference - 1).abs() > 1e-6).all())


# --------------------------------------------------------------------------- hypothesis


batch_sizes = st.one_of(st.integers(1, 12), st.integers(13, 96), st.integers(97, 256))


@settings(max_examples=100, deadline=None)
@given(
    surrogate_type=st.sampled_from(SURROGATES),
    batch_size=batch_sizes,
    num_labels=st.integers(1, 3),
    logits=st.sampled_from(LOGIT_KINDS),
    labels=st.sampled_from(LABEL_KINDS),
    weights=st.sampled_from(WEIGHT_KINDS),
    seed=st.integers(0, 2**31 - 1),
)
def test_values_equal_pairwise_with_ties(surrogate_type, batch_size, num_labels, logits, labels, weights, seed):
    x, y, w = make_batch(seed, batch_size, num_labels, logits, labels, weights)
    check_against_pairwise(surrogate_type, x, y, w, gradients=False)


@settings(max_examples=80, deadline=None)
@given(
    surrogate_type=st.sampled_from(SURROGATES),
    batch_size=batch_sizes,
    num_labels=st.integers(1, 3),
    labels=st.sampled_from(LABEL_KINDS),
    weights=st.sampled_from(WEIGHT_KINDS),
    seed=st.integers(0, 2**31 - 1),
)
def test_gradients_equal_pairwise_away_from_kinks(surrogate_type, batch_size, num_labels, labels, weights, seed):
    x, y, w = make_batch(seed, batch_size, num_labels, "continuous", labels, weights)
    assume(surrogate_type == "xent" or away_from_kinks(x))
    check_against_pairwise(surrogate_type, x, y, w, gradients=True)


@settings(max_examples=40, deadline=None)
@given(
    batch_size=st.integers(1, 64),
    num_labels=st.integers(1, 3),
    logits=st.sampled_from(("half_integers", "integers")),
    weights=st.sampled_from(WEIGHT_KINDS),
    seed=st.integers(0, 2**31 - 1),
)
def test_xent_gradients_equal_pairwise_with_ties(batch_size, num_labels, logits, weights, seed):
    # Cross-entropy has no kink: ties are fine for gradients too.
    x, y, w = make_batch(seed, batch_size, num_labels, logits, "random", weights)
    check_against_pairwise("xent", x, y, w, gradients=True)


@settings(max_examples=40, deadline=None)
@given(
    batch_size=st.integers(1, 64),
    num_labels=st.integers(1, 3),
    logits=st.sampled_from(("half_integers", "integers")),
    seed=st.integers(0, 2**31 - 1),
)
def test_hinge_gradients_at_exact_kinks_follow_relu_convention(batch_size, num_labels, logits, seed):
    # On a grid where x - 1 and x + 1 are exact, a pair with margin exactly 1 is
    # left out of both sums: its gradient is 0, as relu's backward gives at 0.
    # (A subgradient choice, not a requirement; off such grids, see the test above.)
    x, y, w = make_batch(seed, batch_size, num_labels, logits, "random", "random")
    check_against_pairwise("hinge", x, y, w, gradients=True)


# --------------------------------------------------------------------------- parametrized


@pytest.mark.parametrize("surrogate_type", SURROGATES)
@pytest.mark.parametrize(
    "batch_size, num_labels, labels",
    [(1, 1, "random"), (2, 1, "random"), (3, 2, "rare_positives"), (17, 3, "random"),
     (256, 2, "rare_negatives"), (2048, 1, "random"), (2048, 3, "rare_positives")],
)
def test_parametrized_sizes(surrogate_type, batch_size, num_labels, labels):
    x, y, w = make_batch(batch_size, batch_size, num_labels, "half_integers", labels)
    check_against_pairwise(surrogate_type, x, y, w, gradients=False)
    x, y, w = make_batch(batch_size + 1, batch_size, num_labels, "continuous", labels)
    check_against_pairwise(surrogate_type, x, y, w, gradients=False)
    # The pairwise reference's backward holds several [B, B, L] float64 tensors: gradients up to
    # B * B * L = 2**22 (B = 2048 with one label) keep the test fast.
    if batch_size * batch_size * num_labels <= 2**22 and (surrogate_type == "xent" or away_from_kinks(x)):
        check_against_pairwise(surrogate_type, x, y, w, gradients=True)


@pytest.mark.parametrize("surrogate_type", SURROGATES)
@pytest.mark.parametrize("case", ["all_positive", "all_negative", "single", "zero_weights", "empty"])
def test_degenerate_batches_give_zero_loss_and_gradient(surrogate_type, case):
    batch_size = {"single": 1, "empty": 0}.get(case, 9)
    labels = case if case.startswith("all") else "random"
    x, y, w = make_batch(3, batch_size, 2, "continuous", labels)
    if case == "zero_weights":
        w = torch.zeros_like(w)
    x.requires_grad_()
    loss = fast(surrogate_type)(x, y, w)
    assert loss.shape == (batch_size, 2)
    assert torch.equal(loss, torch.zeros_like(loss))
    if batch_size:
        (grad_x,) = torch.autograd.grad(loss.sum(), x)
        assert torch.equal(grad_x, torch.zeros_like(grad_x))


@pytest.mark.parametrize("block_size", [1, 2, 5, 16, 17, 100])
def test_blocked_xent_is_independent_of_the_block_size(block_size):
    x, y, w = make_batch(11, 17, 2, "continuous", "random", "with_zeros")
    check_against_pairwise("xent", x, y, w, gradients=True, block_size=block_size)


def test_blocked_xent_equals_pairwise_for_soft_labels():
    # Both evaluate the literal formula |y_j - y_i| S((y_j - y_i)(x_j - x_i)).
    x, _, w = make_batch(5, 23, 2, "continuous")
    y = torch.rand(x.shape, generator=torch.Generator().manual_seed(6), dtype=DTYPE)
    check_against_pairwise("xent", x, y, w, gradients=True, block_size=4)


def test_default_block_size():
    assert default_block_size(1) == 1
    assert default_block_size(2048) == 128
    assert default_block_size(2048, 3) == 42
    assert default_block_size(2**15) == 8
    assert default_block_size(2**22) == 1


@pytest.mark.parametrize("surrogate_type", SURROGATES)
def test_the_dispatcher_picks_the_fast_form(surrogate_type):
    x, y, w = make_batch(2, 30, 2, "continuous")
    close(roc_auc_elementwise(x, y, w, surrogate_type), fast(surrogate_type)(x, y, w), "dispatch")
    close(roc_auc_elementwise(x, y, w, surrogate_type, block_size=7),
          pairwise_roc_auc(x, y, w, surrogate_type), "dispatch with block_size")


def test_errors():
    x, y, w = make_batch(0, 4, 1)
    with pytest.raises(ValueError, match="surrogate_type"):
        roc_auc_elementwise(x, y, w, "logistic")
    with pytest.raises(ValueError, match="block_size"):
        blocked_xent_roc_auc(x, y, w, block_size=0)
    with pytest.raises(ValueError, match="shape"):
        sorted_hinge_roc_auc(x, y[:3], w)
    with pytest.raises(ValueError, match=r"\[B, L\]"):
        blocked_xent_roc_auc(x[:, 0], y[:, 0], w[:, 0])
    with pytest.raises(TypeError, match="floating"):
        sorted_hinge_roc_auc(x.long(), y, w)


# --------------------------------------------------------------------------- memory


@pytest.mark.parametrize("surrogate_type", SURROGATES)
def test_autograd_saves_no_pair_tensor(surrogate_type):
    """Everything autograd keeps for the backward has O(B L) elements, not O(B^2 L)."""
    batch_size, num_labels = 300, 2
    x, y, w = make_batch(4, batch_size, num_labels, "continuous")
    x.requires_grad_()
    w.requires_grad_()
    saved = []

    def pack(tensor):
        saved.append(tensor.numel())
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        loss = fast(surrogate_type, block_size=16)(x, y, w)
    assert saved and max(saved) <= (batch_size + 1) * num_labels, saved
    loss.sum().backward()  # and the backward still runs


# --------------------------------------------------------------------------- other dtypes


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
@pytest.mark.parametrize("num_labels", [1, 3])
def test_row_sort_keys_order_like_the_floats(dtype, num_labels):
    generator = torch.Generator().manual_seed(num_labels)
    values = torch.randn(num_labels, 500, generator=generator).to(dtype) * 3
    values[0, :6] = torch.tensor([0.0, -0.0, float("inf"), -float("inf"), 0.0, -0.0], dtype=dtype)
    values[-1, 6:12] = 1.5  # ties
    order = _argsort_rows(values)
    assert torch.equal(order.sort(-1).values, torch.arange(500).expand(num_labels, 500))
    assert torch.equal(values.gather(-1, order), values.sort(-1).values)


@pytest.mark.parametrize("num_labels", [1, 3])
def test_float32_hinge_matches_float64_pairwise(num_labels):
    x, y, w = make_batch(8, 1000, num_labels, "continuous")
    got = sorted_hinge_roc_auc(x.float(), y.float(), w.float())
    torch.testing.assert_close(got.double(), pairwise_roc_auc(x, y, w, "hinge"), rtol=1e-5, atol=1e-7)


def test_hinge_keeps_its_precision_for_logits_far_from_zero():
    # Logits around 1000: (1 - x_p) W + XW would cancel two large numbers in
    # float32 without the centring at the median.
    x, y, w = make_batch(9, 1000, 1, "continuous")
    x = x + 1000
    got = sorted_hinge_roc_auc(x.float(), y.float(), w.float())
    torch.testing.assert_close(got.double(), pairwise_roc_auc(x, y, w, "hinge"), rtol=1e-4, atol=1e-6)


# --------------------------------------------------------------------------- torch.func


def batched(seed, batch_size=15, num_labels=2, count=3, logits="continuous"):
    stacked = [make_batch(seed + k, batch_size, num_labels, logits) for k in range(count)]
    return tuple(torch.stack(parts) for parts in zip(*stacked))


@pytest.mark.parametrize("surrogate_type", SURROGATES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("num_labels", [1, 3])
def test_vmap_over_a_leading_axis(surrogate_type, dtype, num_labels):
    x, y, w = (t.to(dtype) for t in batched(20, num_labels=num_labels, logits="half_integers"))
    function = fast(surrogate_type, block_size=4)
    got = vmap(function)(x, y, w)
    expected = torch.stack([function(*parts) for parts in zip(x, y, w)])
    torch.testing.assert_close(got, expected)
    reference = torch.stack([pairwise_roc_auc(*parts, surrogate_type) for parts in zip(x, y, w)])
    torch.testing.assert_close(got, reference)


@pytest.mark.parametrize("surrogate_type", SURROGATES)
def test_func_grad_and_vmap_of_grad(surrogate_type):
    x, y, w = batched(30)
    assert all(away_from_kinks(x_k) for x_k in x)
    total = lambda f: lambda a, b, c: f(a, b, c).sum()  # noqa: E731
    got = vmap(grad(total(fast(surrogate_type)), argnums=(0, 2)))(x, y, w)
    expected = vmap(grad(total(lambda a, b, c: pairwise_roc_auc(a, b, c, surrogate_type)), argnums=(0, 2)))(x, y, w)
    for a, b in zip(got, expected):
        close(a, b, "vmap(grad)")
    single = grad(total(fast(surrogate_type)))(x[0], y[0], w[0])
    close(single, expected[0][0], "grad")


@pytest.mark.parametrize("surrogate_type", SURROGATES)
def test_jacobians_forward_and_reverse(surrogate_type):
    x, y, w = make_batch(40, 12, 2, "continuous")
    assert away_from_kinks(x)
    function = lambda a, c: fast(surrogate_type, block_size=5)(a, y, c)  # noqa: E731
    reference = lambda a, c: pairwise_roc_auc(a, y, c, surrogate_type)  # noqa: E731
    expected = jacrev(reference, argnums=(0, 1))(x, w)
    for transform in (jacrev, jacfwd):
        got = transform(function, argnums=(0, 1))(x, w)
        for a, b in zip(got, expected):
            close(a, b, transform.__name__)


def test_blocked_xent_second_derivatives():
    x, y, w = make_batch(41, 10, 1, "continuous")
    hessian = lambda f: jacfwd(jacrev(lambda a: f(a, y, w).sum()))(x)  # noqa: E731
    close(hessian(fast("xent", block_size=3)), hessian(lambda a, b, c: pairwise_roc_auc(a, b, c, "xent")), "hessian")


@pytest.mark.parametrize("surrogate_type", SURROGATES)
def test_torch_compile_fullgraph(surrogate_type):
    import torch._dynamo

    torch._dynamo.reset()
    x, y, w = make_batch(50, 11, 2, "continuous")
    compiled = torch.compile(fast(surrogate_type, block_size=4), fullgraph=True, backend="aot_eager")
    cotangent = torch.randn(x.shape, generator=torch.Generator().manual_seed(1), dtype=DTYPE)
    got = value_and_gradients(compiled, x, y, w, cotangent)
    expected = value_and_gradients(lambda a, b, c: pairwise_roc_auc(a, b, c, surrogate_type), x, y, w, cotangent)
    for name, a, b in zip(("value", "d/dx", "d/dw"), got, expected):
        close(a, b, f"compiled {name}")
    torch._dynamo.reset()
