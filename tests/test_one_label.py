"""The modules' one-label path on Python numbers (goloss._one_label) against the general path.

The one-label path is taken for one label, a reduced loss and a small CPU batch in plain eager
mode. Each test runs two copies of a module on the same stream, one forced onto the general
tensor path, and compares loss, gradient, aux, state and the multipliers after dual steps.
"""

from __future__ import annotations

import copy
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import goloss
from goloss import _strict
from goloss._dual import scalar_strict_dual_step, strict_dual_step

RATE_MODULES = {
    goloss.RecallAtPrecisionLoss: 0.8,
    goloss.PrecisionAtRecallLoss: 0.7,
    goloss.TPRAtFPRLoss: 0.1,
    goloss.FPRAtTPRLoss: 0.8,
}


def general(module):
    """A copy of ``module`` that never takes the one-label path (its dual step neither)."""
    twin = copy.deepcopy(module)
    twin._on_numbers = lambda batch: False
    twin._steps_on_numbers = lambda lr: False
    return twin


def forward_backward(module, x, y, weights):
    x = x.detach().requires_grad_()
    loss = module(x, y, weights)
    if loss.requires_grad:
        loss.backward()
    return loss.detach(), x.grad


def assert_close(a, b, name):
    torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12, msg=lambda m: f"{name}: {m}")


def assert_same(fast, slow, name=""):
    assert set(fast.last_aux) == set(slow.last_aux)
    for key, value in slow.last_aux.items():
        assert fast.last_aux[key].shape == value.shape, key
        assert_close(fast.last_aux[key], value, f"{name} aux[{key!r}]")
    for (key, a), (_, b) in zip(fast.state_dict().items(), slow.state_dict().items()):
        assert_close(a, b, f"{name} state {key}")


@settings(max_examples=40, deadline=None)
@given(
    module_index=st.integers(0, 3),
    surrogate=st.sampled_from(["xent", "hinge"]),
    signal=st.sampled_from(["strict", "surrogate"]),
    reduction=st.sampled_from(["mean", "sum"]),
    rows=st.integers(1, 40),
    weighted=st.booleans(),
    fixed_priors=st.booleans(),
    flat=st.booleans(),
    lambdas_init=st.sampled_from([0.0, 0.3, 2.0]),
    seed=st.integers(0, 2**16),
)
def test_one_label_path_equals_the_general_path(
    module_index, surrogate, signal, reduction, rows, weighted, fixed_priors, flat, lambdas_init, seed
):
    cls, target = list(RATE_MODULES.items())[module_index]
    fast = cls(
        target, surrogate_type=surrogate, dual_signal=signal, reduction=reduction, lambdas_init=lambdas_init,
        label_priors=0.3 if fixed_priors else None,
    ).double()
    slow = general(fast)
    generator = torch.Generator().manual_seed(seed)
    for step in range(3):
        shape = (rows,) if flat else (rows, 1)
        x = torch.randn(shape, generator=generator, dtype=torch.float64) * 3
        y = (torch.rand(shape, generator=generator) < 0.4).double()
        weights = None
        if weighted:  # some zero weights: masked rows
            weights = torch.rand(rows, generator=generator, dtype=torch.float64) * (torch.rand(rows) > 0.2)
        loss_fast, grad_fast = forward_backward(fast, x, y, weights)
        loss_slow, grad_slow = forward_backward(slow, x, y, weights)
        assert_close(loss_fast, loss_slow, "loss")
        assert_close(grad_fast, grad_slow, "gradient")
        assert_same(fast, slow, f"step {step}")
        fast.dual_step()
        slow.dual_step()
        assert_close(fast.lambdas, slow.lambdas, "lambdas after the dual step")


def test_the_one_label_path_is_taken_for_the_drop_in_case(monkeypatch):
    """A module with one label on a CPU batch, with default arguments, calls the path."""
    from goloss import _one_label

    calls = []
    original = _one_label.rate_loss
    monkeypatch.setattr(_one_label, "rate_loss", lambda *a: calls.append(1) or original(*a))
    criterion = goloss.RecallAtPrecisionLoss(0.9)
    criterion(torch.randn(16, requires_grad=True), (torch.rand(16) < 0.3).float()).backward()
    assert calls == [1]
    several = goloss.RecallAtPrecisionLoss(0.9, num_labels=2)
    several(torch.randn(16, 2), (torch.rand(16, 2) < 0.3).float())
    criterion_none = goloss.RecallAtPrecisionLoss(0.9, reduction="none")
    criterion_none(torch.randn(16), (torch.rand(16) < 0.3).float())
    assert calls == [1]
    for size, taken in ((_one_label.MAX_ELEMENTS, [1, 1]), (_one_label.MAX_ELEMENTS + 1, [1, 1])):
        criterion(torch.randn(size), (torch.rand(size) < 0.3).float())
        assert calls == taken  # the largest batch it takes, and one more element: the general path


@pytest.mark.parametrize("cls", list(RATE_MODULES))
def test_eval_and_no_grad_forwards_on_the_one_label_path_change_no_state(cls):
    criterion = cls(RATE_MODULES[cls])
    x, y = torch.randn(32), (torch.rand(32) < 0.3).float()
    before = {k: v.clone() for k, v in criterion.state_dict().items()}
    with torch.no_grad():
        criterion(x, y)
    criterion.eval()
    criterion(x.requires_grad_(), y)
    for key, value in criterion.state_dict().items():
        assert torch.equal(value, before[key]), key
    assert set(criterion.last_aux) >= {"strict_violation", "objective", "violation", "lambdas"}


@pytest.mark.parametrize("surrogate", ["xent", "hinge"])
@pytest.mark.parametrize("lambdas_init", [0.0, 1.5])
def test_second_derivatives_on_the_one_label_path(surrogate, lambdas_init):
    """Double backward (e.g. a gradient penalty) through the path equals the general path."""
    fast = goloss.RecallAtPrecisionLoss(0.8, surrogate_type=surrogate, lambdas_init=lambdas_init).double()
    slow = general(fast)
    x = torch.randn(24, dtype=torch.float64)
    y = (torch.rand(24) < 0.4).double()
    results = []
    for module in (fast, slow):
        leaf = x.clone().requires_grad_()
        (grad,) = torch.autograd.grad(module(leaf, y), leaf, create_graph=True)
        (second,) = torch.autograd.grad(grad.pow(2).sum(), leaf)
        results.append((grad.detach(), second))
    assert_close(results[0][0], results[1][0], "gradient")
    assert_close(results[0][1], results[1][1], "second derivative")


def test_gradcheck_on_the_one_label_path():
    for surrogate in ("xent", "hinge"):
        criterion = goloss.PrecisionAtRecallLoss(0.7, surrogate_type=surrogate).double().eval()
        x = torch.randn(12, dtype=torch.float64) * 2 + 0.3  # away from the hinge's kinks
        y = (torch.rand(12) < 0.5).double()
        assert torch.autograd.gradcheck(lambda logits: criterion(logits, y), (x.requires_grad_(),))


@settings(max_examples=200, deadline=None)
@given(
    tp=st.floats(0, 50), fp=st.floats(0, 50), extra_positives=st.floats(0, 50), negatives_extra=st.floats(0, 50),
    target=st.floats(0, 1), constraint=st.sampled_from(_strict.CONSTRAINTS), empty=st.booleans(),
)
def test_scalar_twins_equal_the_tensor_functions(tp, fp, extra_positives, negatives_extra, target, constraint, empty):
    if empty:
        tp = fp = 0.0
    counts = (tp, fp, tp + extra_positives, fp + negatives_extra)
    tensors = goloss.ThresholdCounts(*(torch.tensor([c], dtype=torch.float64) for c in counts))
    rate, violation = _strict.rate_and_violation(tensors, target, constraint)
    scalar_rate, scalar_violation = _strict.scalar_rate_and_violation(*counts, target, constraint)
    assert math.isclose(scalar_rate, rate.item(), rel_tol=1e-12, abs_tol=1e-15)
    assert math.isclose(scalar_violation, violation.item(), rel_tol=1e-12, abs_tol=1e-15)
    normalised = _strict.normalised_violation(violation, target, constraint)
    assert math.isclose(
        _strict.scalar_normalised_violation(scalar_violation, target, constraint), normalised.item(),
        rel_tol=1e-12, abs_tol=1e-15,
    )
    lam = torch.tensor([tp], dtype=torch.float64)
    stepped = strict_dual_step(lam, normalised, 0.05)
    assert math.isclose(scalar_strict_dual_step(tp, normalised.item(), 0.05), stepped.item(), rel_tol=1e-12)


@pytest.mark.parametrize("signal", ["strict", "surrogate"])
def test_auto_dual_step_on_the_one_label_path_equals_the_general_path(signal):
    fast = goloss.TPRAtFPRLoss(0.1, dual_signal=signal, auto_dual_step=True).double()
    slow = general(fast)
    generator = torch.Generator().manual_seed(3)
    for _ in range(4):
        x = torch.randn(48, generator=generator, dtype=torch.float64) * 2
        y = (torch.rand(48, generator=generator) < 0.3).double()
        for module in (fast, slow):
            forward_backward(module, x, y, None)
        assert_same(fast, slow)
    assert fast.violation_count.item() == 0.0  # every forward stepped


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize(
    "name, value",
    [("logits", math.inf), ("logits", -math.inf), ("logits", math.nan),
     ("labels", 1.5), ("labels", -0.5), ("labels", math.nan), ("labels", math.inf)],
)
def test_bad_values_raise_as_on_the_general_path_and_change_nothing(name, value, weighted):
    """The path's Gram matrix makes the value checks: the same error as the general path, also
    for a bad label on a row of zero weight, and no state change."""
    fast = goloss.RecallAtPrecisionLoss(0.8)
    slow = general(fast)
    x, y = torch.randn(20), (torch.rand(20) < 0.4).float()
    (x if name == "logits" else y)[7] = value
    weights = torch.rand(20).index_fill_(0, torch.tensor([7]), 0.0) if weighted else None
    before = copy.deepcopy(fast.state_dict())
    messages = []
    for module in (fast, slow):
        with pytest.raises(ValueError, match=name) as error:
            module(x.requires_grad_(), y, weights)
        messages.append(str(error.value))
    assert messages[0] == messages[1]
    for key, tensor in fast.state_dict().items():
        assert torch.equal(tensor, before[key]), key


def test_soft_labels_large_finite_logits_and_disabled_checks_pass():
    criterion = goloss.RecallAtPrecisionLoss(0.8)
    x, y = torch.randn(20), torch.rand(20)  # soft labels in [0, 1]
    criterion(x, y)
    x[3] = 3e38  # finite: sums over it overflow, but the logit is valid
    criterion(x, (y > 0.5).float())
    goloss.set_value_checks(False)
    try:
        criterion(torch.randn(20), torch.full((20,), 2.0))  # unchecked, as on the general path
    finally:
        goloss.set_value_checks(True)
