"""One source of truth per Lagrangian: aux's objective and violation against autograd, and the
contracts of the bounds and params."""

from __future__ import annotations

import pytest
import torch

import goloss

RATE_LOSSES = {
    goloss.recall_at_precision_loss: "target_precision",
    goloss.precision_at_recall_loss: "target_recall",
    goloss.false_positive_rate_at_true_positive_rate_loss: "target_rate",
    goloss.true_positive_rate_at_false_positive_rate_loss: "target_rate",
}


def batch(seed, rows=24, labels=3, weighted=True):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, labels, generator=generator, dtype=torch.float64)
    y = (torch.rand(rows, labels, generator=generator) < 0.35).double()
    w = torch.rand(rows, labels, generator=generator, dtype=torch.float64) if weighted else None
    if w is not None:
        w[:3] = 0.0  # masked rows
    return x, y, w


def call(fn, lambdas, x, y, w, reduction, surrogate_type, seed):
    if fn is goloss.precision_recall_auc_loss:
        biases = torch.randn(x.shape[1], 4, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
        return fn({"biases": biases}, lambdas, x, y, num_anchors=4, precision_range=(0.2, 0.9), weights=w,
                  surrogate_type=surrogate_type, reduction=reduction)
    return fn(None, lambdas, x, y, **{RATE_LOSSES[fn]: torch.tensor([0.3, 0.6, 0.9], dtype=torch.float64)},
              weights=w, surrogate_type=surrogate_type, reduction=reduction)


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("surrogate_type", ["xent", "hinge"])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("fn", [*RATE_LOSSES, goloss.precision_recall_auc_loss], ids=lambda f: f.__name__)
def test_violation_is_the_gradient_in_lambda_and_the_loss_decomposes(fn, reduction, surrogate_type, weighted):
    x, y, w = batch(hash((fn.__name__, reduction)) % 1000, weighted=weighted)
    shape = (3, 4) if fn is goloss.precision_recall_auc_loss else (3,)
    lambdas = (torch.rand(shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64) * 2).requires_grad_()
    loss, aux = call(fn, lambdas, x, y, w, reduction, surrogate_type, seed=1)
    total = loss.sum()  # "none": the violation is that of the sum
    (grad,) = torch.autograd.grad(total, lambdas)
    torch.testing.assert_close(aux["violation"], grad)
    weighted_violation = (lambdas * aux["violation"]).reshape(3, -1).sum(-1)
    torch.testing.assert_close((aux["objective"] + weighted_violation).sum(), total)


def test_objective_is_the_loss_at_zero_multipliers():
    x, y, w = batch(5)
    for fn in [*RATE_LOSSES, goloss.precision_recall_auc_loss]:
        shape = (3, 4) if fn is goloss.precision_recall_auc_loss else (3,)
        loss, aux = call(fn, torch.zeros(shape, dtype=torch.float64), x, y, w, "sum", "xent", seed=2)
        torch.testing.assert_close(aux["objective"].sum(), loss)


def test_bounds_read_vector_weights_per_example_when_batch_equals_labels():
    x, y, _ = batch(7, rows=3, labels=3)
    w = torch.tensor([0.5, 2.0, 1.0], dtype=torch.float64)
    for bound in (goloss.true_positives_lower_bound, goloss.false_positives_upper_bound):
        torch.testing.assert_close(bound(x, y, weights=w), bound(x, y, weights=w.unsqueeze(1)))
        expected_column = bound(x[:, :1], y[:, :1], weights=w.unsqueeze(1))
        torch.testing.assert_close(bound(x, y, weights=w)[:1], expected_column)


def test_bounds_agree_with_the_losses_on_vector_weights():
    x, y, _ = batch(8, rows=3, labels=3)
    w = torch.tensor([0.5, 2.0, 1.0], dtype=torch.float64)
    _, aux = goloss.recall_at_precision_loss(None, 1.0, x, y, target_precision=0.5, weights=w, label_priors=0.3)
    torch.testing.assert_close(goloss.true_positives_lower_bound(x, y, weights=w), aux["true_positives_lower_bound"])
    torch.testing.assert_close(goloss.false_positives_upper_bound(x, y, weights=w), aux["false_positives_upper_bound"])


def test_unknown_params_keys_raise():
    x, y, _ = batch(9)
    with pytest.raises(ValueError, match="bias"):
        goloss.precision_recall_auc_loss({"bias": torch.zeros(3, 20)}, 1.0, x, y)
    with pytest.raises(ValueError, match="params"):
        goloss.recall_at_precision_loss({"biases": torch.zeros(3)}, 1.0, x, y, target_precision=0.5)


def test_public_functions_validate_once_and_modules_once(monkeypatch):
    """A module forward validates its input once, like the functional call it wraps."""
    import goloss._losses as losses

    calls = []
    original = losses.as_batch_by_label
    monkeypatch.setattr(losses, "as_batch_by_label", lambda *a, **k: calls.append(1) or original(*a, **k))
    x, y, _ = batch(10)
    goloss.recall_at_precision_loss(None, 1.0, x, y, target_precision=0.5, reduction="mean")
    assert len(calls) == 1
    criterion = goloss.RecallAtPrecisionLoss(0.5, 3).double()
    criterion(x.requires_grad_(), y).backward()
    criterion.dual_step()
    assert len(calls) == 2
