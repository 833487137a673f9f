"""The strict violation: the real 0-1 constraint at the threshold, as a rate deficit."""

from __future__ import annotations

import pytest
import torch

import goloss

CONSTRAINT_OF = {
    goloss.recall_at_precision_loss: ("target_precision", "precision"),
    goloss.precision_at_recall_loss: ("target_recall", "recall"),
    goloss.false_positive_rate_at_true_positive_rate_loss: ("target_rate", "recall"),
    goloss.true_positive_rate_at_false_positive_rate_loss: ("target_rate", "false_positive_rate"),
}


def direct_rates(x, y, w, threshold_shift=0.0):
    """Rates of one label counted example by example in plain Python: (precision, recall, fpr),
    and whether nothing / everything (of non-zero weight) is predicted positive."""
    tp = fp = pos = neg = 0.0
    for xi, yi, wi in zip(x.tolist(), y.tolist(), w.tolist()):
        predicted = xi + threshold_shift > 0
        pos += wi * yi
        neg += wi * (1 - yi)
        tp += wi * yi * predicted
        fp += wi * (1 - yi) * predicted
    rate = lambda a, b: a / b if b > 0 else None  # noqa: E731
    # No predicted positive: precision 1 (flagged by a negative count, read by expected_violation).
    rates = (rate(tp, tp + fp) if tp + fp > 0 else -1.0), rate(tp, pos), rate(fp, neg)
    return rates, tp + fp <= 0, tp + fp >= pos + neg


def expected_violation(counted, constraint, target):
    """The deficit; a tenth of it where the constraint holds vacuously (precision or FPR with
    nothing predicted positive, recall with everything predicted positive)."""
    (precision, recall, fpr), nothing, everything = counted
    if constraint == "precision" and precision == -1.0:  # nothing predicted: a tenth of target - 1
        return 0.1 * (target - 1.0)
    value = {"precision": precision, "recall": recall, "false_positive_rate": fpr}[constraint]
    if value is None:
        return 0.0
    deficit = value - target if constraint == "false_positive_rate" else target - value
    vacuous = nothing if constraint == "false_positive_rate" else everything if constraint == "recall" else False
    return 0.1 * deficit if vacuous else deficit


def random_batch(seed, rows, labels):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, labels, generator=generator, dtype=torch.float64)
    y = (torch.rand(rows, labels, generator=generator) < 0.3).double()
    w = torch.rand(rows, labels, generator=generator, dtype=torch.float64)
    w[w < 0.2] = 0.0
    return x, y, w


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("fn", CONSTRAINT_OF, ids=lambda f: f.__name__)
def test_strict_violation_equals_a_direct_count(fn, seed):
    rows = [1, 5, 17, 64][seed]
    x, y, w = random_batch(seed, rows, labels=3)
    targets = torch.tensor([0.2, 0.5, 0.9], dtype=torch.float64)
    name, constraint = CONSTRAINT_OF[fn]
    for weights in (None, w):
        _, aux = fn(None, 1.0, x, y, **{name: targets}, weights=weights)
        for label in range(3):
            ones = torch.ones(rows, dtype=torch.float64)
            counted = direct_rates(x[:, label], y[:, label], ones if weights is None else w[:, label])
            expected = expected_violation(counted, constraint, targets[label].item())
            assert aux["strict_violation"][label].item() == pytest.approx(expected, abs=1e-12)
            counts = goloss.ThresholdCounts(*(aux[k] for k in ("true_positives", "false_positives", "positives", "negatives")))
            rates = counted[0]
            rates = (1.0 if rates[0] == -1.0 else rates[0], *rates[1:])
            for key, value, rate in zip(("precision", "recall", "false_positive_rate"), rates,
                                        goloss.rates_at_threshold(counts)):
                assert rate[label].item() == pytest.approx(0.0 if value is None else value, abs=1e-12)
                if key == constraint:
                    assert aux[key][label].item() == pytest.approx(0.0 if value is None else value, abs=1e-12)


@pytest.mark.parametrize("seed", range(3))
def test_pr_auc_strict_violation_per_anchor_at_its_bias(seed):
    x, y, w = random_batch(seed, 40, labels=2)
    biases = torch.randn(2, 5, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    anchors, _ = goloss.range_to_anchors_and_delta((0.1, 0.9), 5)
    _, aux = goloss.precision_recall_auc_loss({"biases": biases}, 1.0, x, y, weights=w, num_anchors=5,
                                              precision_range=(0.1, 0.9))
    assert aux["strict_violation"].shape == (2, 5)
    for label in range(2):
        for k in range(5):
            counted = direct_rates(x[:, label], y[:, label], w[:, label], biases[label, k].item())
            expected = expected_violation(counted, "precision", anchors[k])
            assert aux["strict_violation"][label, k].item() == pytest.approx(expected, abs=1e-12)


def test_public_strict_helpers_agree_with_aux():
    x, y, w = random_batch(5, 30, labels=2)
    _, aux = goloss.recall_at_precision_loss(None, 1.0, x, y, target_precision=0.7, weights=w)
    counts = goloss.threshold_counts(x, y, weights=w)
    torch.testing.assert_close(goloss.strict_violation(counts, 0.7, "precision"), aux["strict_violation"])
    precision, recall, fpr = goloss.rates_at_threshold(counts)
    torch.testing.assert_close(precision, aux["precision"])
    torch.testing.assert_close(recall, counts.true_positives / counts.positives)
    torch.testing.assert_close(counts.true_positives, aux["true_positives"])
    with pytest.raises(ValueError, match="constraint"):
        goloss.strict_violation(counts, 0.7, "accuracy")


def test_strict_violation_batches_like_the_loss_under_vmap_over_targets():
    x, y, _ = random_batch(6, 50, labels=2)
    targets = torch.linspace(0.1, 0.95, 7, dtype=torch.float64)
    lambdas = torch.ones(7, 2, dtype=torch.float64)

    def one(target, lam):
        loss, aux = goloss.recall_at_precision_loss(None, lam, x, y, target_precision=target, reduction="mean")
        return loss, aux["strict_violation"], aux["violation"]

    losses, strict, violation = torch.func.vmap(one)(targets, lambdas)
    for k in range(7):
        expected = one(targets[k], lambdas[k])
        torch.testing.assert_close(losses[k], expected[0])
        torch.testing.assert_close(strict[k], expected[1])
        torch.testing.assert_close(violation[k], expected[2])


def test_no_predicted_positive_is_precision_one_and_an_undefined_recall_is_no_signal():
    x = -torch.ones(6, dtype=torch.float64)  # nothing predicted positive
    y = torch.tensor([1.0, 0, 0, 1, 0, 0], dtype=torch.float64)
    _, aux = goloss.recall_at_precision_loss(None, 1.0, x, y, target_precision=0.9)
    assert aux["precision"].item() == 1.0
    # The multiplier comes down, at a tenth of the rate a precision of 1 on predictions gives.
    assert aux["strict_violation"].item() == pytest.approx(0.1 * (0.9 - 1.0))
    x[0] = 1.0  # one true positive: precision 1, the full deficit
    _, aux = goloss.recall_at_precision_loss(None, 1.0, x, y, target_precision=0.9)
    assert aux["strict_violation"].item() == pytest.approx(0.9 - 1.0)
    _, aux = goloss.precision_at_recall_loss(None, 1.0, x, torch.zeros(6, dtype=torch.float64), target_recall=0.9)
    assert aux["strict_violation"].item() == 0.0


def test_a_vacuously_met_fpr_or_recall_gives_a_tenth_of_the_deficit():
    y = torch.tensor([1.0, 0, 0, 1, 0, 0], dtype=torch.float64)
    nothing, everything = -torch.ones(6, dtype=torch.float64), torch.ones(6, dtype=torch.float64)
    tpr_at_fpr = goloss.true_positive_rate_at_false_positive_rate_loss
    _, aux = tpr_at_fpr(None, 1.0, nothing, y, target_rate=0.05)  # FPR 0 because nothing is predicted
    assert aux["false_positive_rate"].item() == 0.0
    assert aux["strict_violation"].item() == pytest.approx(0.1 * (0.0 - 0.05))
    one_positive = nothing.clone()
    one_positive[0] = 1.0  # a true positive and no false one: FPR 0 is earned, the full deficit
    _, aux = tpr_at_fpr(None, 1.0, one_positive, y, target_rate=0.05)
    assert aux["strict_violation"].item() == pytest.approx(-0.05)
    _, aux = goloss.precision_at_recall_loss(None, 1.0, everything, y, target_recall=0.9)  # recall 1, vacuous
    assert aux["recall"].item() == 1.0
    assert aux["strict_violation"].item() == pytest.approx(0.1 * (0.9 - 1.0))
    one_negative = everything.clone()
    one_negative[1] = -1.0  # a negative predicted negative: recall 1 is earned
    _, aux = goloss.precision_at_recall_loss(None, 1.0, one_negative, y, target_recall=0.9)
    assert aux["strict_violation"].item() == pytest.approx(0.9 - 1.0)


@pytest.mark.parametrize("make", [
    lambda: goloss.RecallAtPrecisionLoss(0.9, 2),
    lambda: goloss.TPRAtFPRLoss(0.05, 2),
    lambda: goloss.PrecisionRecallAUCLoss(2, num_anchors=3),
])
def test_held_out_dual_step_uses_the_held_out_batch_and_touches_nothing_else(make):
    train_x, train_y, _ = random_batch(7, 32, labels=2)
    held_x, held_y, held_w = random_batch(8, 50, labels=2)
    criterion, reference = make().double(), make().double()
    criterion(train_x.clone().requires_grad_(), train_y).backward()  # records a training signal
    reference(train_x.clone().requires_grad_(), train_y).backward()
    if isinstance(criterion, goloss.PrecisionRecallAUCLoss):  # the counts are at logit + bias
        with torch.no_grad():
            criterion.biases.copy_(torch.randn(criterion.biases.shape, generator=torch.Generator().manual_seed(3)))
    before = {key: value.clone() for key, value in criterion.state_dict().items()}
    expected = criterion.held_out_violation(held_x, held_y, held_w)
    criterion.dual_step(logits=held_x, labels=held_y, weights=held_w, lr=0.5)
    target = criterion.target if hasattr(criterion, "target") else criterion.anchors.double()
    constraint = "false_positive_rate" if isinstance(criterion, goloss.TPRAtFPRLoss) else "precision"
    signal = goloss.normalised_violation(expected, target, constraint)
    torch.testing.assert_close(criterion.lambdas, goloss.strict_dual_step(before["lambdas"], signal, 0.5))
    for key in ("weighted_label_counts", "weight_sum"):
        assert torch.equal(criterion.state_dict()[key], before[key])  # priors untouched
    assert criterion.violation_count == 0  # it counted as the step: the training signal is consumed
    if isinstance(criterion, goloss.RecallAtPrecisionLoss):
        _, aux = goloss.recall_at_precision_loss(None, 1.0, held_x, held_y, target_precision=0.9, weights=held_w)
        torch.testing.assert_close(expected, aux["strict_violation"])
    if isinstance(criterion, goloss.PrecisionRecallAUCLoss):
        _, aux = goloss.precision_recall_auc_loss({"biases": criterion.biases.detach()}, 1.0, held_x, held_y,
                                                  num_anchors=3, weights=held_w)
        torch.testing.assert_close(expected, aux["strict_violation"])
    with pytest.raises(ValueError, match="labels"):
        criterion.dual_step(logits=held_x)


def test_strict_signal_changes_only_the_multipliers_not_the_model_gradient():
    x, y, _ = random_batch(9, 40, labels=2)
    grads = {}
    for signal in ("strict", "surrogate"):
        criterion = goloss.RecallAtPrecisionLoss(0.9, 2, dual_signal=signal).double()
        logits = x.clone().requires_grad_()
        criterion(logits, y).backward()
        grads[signal] = (logits.grad, criterion.pending_violation)
    torch.testing.assert_close(grads["strict"][0], grads["surrogate"][0])
    assert not torch.allclose(grads["strict"][1], grads["surrogate"][1])


def test_default_strict_signal_reaches_the_target_precision_on_overlapping_gaussians():
    """A model that can trade recall for precision ends near the target at its own threshold."""
    generator = torch.Generator().manual_seed(0)
    n = 4000
    y = (torch.rand(n, generator=generator) < 0.3).float()
    x = torch.randn(n, 2, generator=generator) + 1.2 * y.unsqueeze(1)
    model = torch.nn.Linear(2, 1)
    criterion = goloss.RecallAtPrecisionLoss(0.8)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.02)
    for epoch in range(25):
        for rows in torch.randperm(n, generator=generator).split(200):
            loss = criterion(model(x[rows]).squeeze(-1), y[rows])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            criterion.dual_step()
    with torch.no_grad():
        predicted = model(x).squeeze(-1) > 0
    precision = (predicted & (y > 0)).sum() / predicted.sum()
    assert abs(precision.item() - 0.8) < 0.03


def test_normalised_violation_is_relative_to_the_room_for_error_and_clipped():
    v = torch.tensor([0.05, -0.1, 0.5, -1.0])
    torch.testing.assert_close(goloss.normalised_violation(v, 0.9, "precision"), torch.tensor([0.5, -1.0, 1.0, -1.0]))
    torch.testing.assert_close(goloss.normalised_violation(v, 0.5, "recall"), torch.tensor([0.1, -0.2, 1.0, -1.0]))
    torch.testing.assert_close(goloss.normalised_violation(v, 0.1, "false_positive_rate"), torch.tensor([0.5, -1.0, 1.0, -1.0]))


def test_strict_dual_step_is_additive_near_zero_and_relative_when_large():
    lambdas = torch.tensor([0.0, 0.0, 10.0, 10.0])
    signal = torch.tensor([1.0, -1.0, 1.0, -1.0])
    torch.testing.assert_close(goloss.strict_dual_step(lambdas, signal, 0.1), torch.tensor([0.1, 0.0, 11.1, 8.9]))


def test_the_strict_step_is_capped_at_1000_in_the_function_and_in_the_module():
    """The documented cap: a multiplier never exceeds ``max_lambda`` (1000 by default), whichever path steps it."""
    stepped = goloss.strict_dual_step(torch.tensor([999.0, 5.0]), torch.tensor([1.0, 1.0]), 0.5)
    torch.testing.assert_close(stepped, torch.tensor([1000.0, 8.0]))  # 999 + 0.5 * 1000 capped; 5 + 0.5 * 6
    criterion = goloss.RecallAtPrecisionLoss(0.95, lambdas_init=999.0)
    logits, labels = torch.tensor([2.0, 1.0, -1.0, -2.0]), torch.tensor([1.0, 0.0, 1.0, 0.0])
    criterion(logits.requires_grad_(), labels)  # precision 0.5 at logit 0: the signal is +1
    criterion.dual_step(lr=0.5)
    assert criterion.lambdas.tolist() == [1000.0]
