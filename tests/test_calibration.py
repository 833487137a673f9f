"""The calibrated threshold: ``calibrate_threshold`` against a direct search with exact
fractions, under vmap, and the modules' ``calibrate`` / ``threshold`` / ``predict``."""

from __future__ import annotations

import io
import warnings
from fractions import Fraction

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import goloss
from goloss._math import MAX_LAMBDA

CONSTRAINTS = ("precision", "recall", "false_positive_rate")
MODULES = {  # module -> its constraint
    goloss.RecallAtPrecisionLoss: "precision",
    goloss.PrecisionAtRecallLoss: "recall",
    goloss.FPRAtTPRLoss: "recall",
    goloss.TPRAtFPRLoss: "false_positive_rate",
}


def direct_search(logits, labels, weights, target, constraint):
    """The predicted set (a frozenset of row indices) of the best cut of one label, and its
    counts, by trying every threshold (each distinct logit, and one below all) with exact
    fractions: precision: most predicted with precision >= t (precision 1 with nothing of
    weight predicted);
    recall: fewest predicted with recall >= t; FPR: most predicted with FPR <= t."""
    t = Fraction(target)
    rows = range(len(logits))
    weights = [Fraction(w) for w in weights]
    positives = sum(w * y for w, y in zip(weights, labels))
    negatives = sum(w * (1 - y) for w, y in zip(weights, labels))
    best = None
    for cut in sorted(set(logits)) + [min(logits) - 1]:
        predicted = frozenset(i for i in rows if logits[i] > cut)
        tp = sum(weights[i] * labels[i] for i in predicted)
        fp = sum(weights[i] * (1 - labels[i]) for i in predicted)
        if constraint == "precision":
            meets = tp >= t * (tp + fp)  # vacuous with nothing (of weight) predicted
            better = best is None or len(predicted) > len(best[0])
        elif constraint == "recall":
            meets = positives == 0 or tp >= t * positives
            better = best is None or len(predicted) < len(best[0])
        else:
            meets = negatives == 0 or fp <= t * negatives
            better = best is None or len(predicted) > len(best[0])
        if meets and better:
            best = (predicted, tp, fp)
    return best


@settings(max_examples=60, deadline=None)
@given(
    rows=st.integers(1, 30),
    labels=st.integers(1, 3),
    distinct=st.integers(1, 8),  # few distinct logits: ties
    target=st.sampled_from([0.0, 0.25, 0.5, 0.6, 0.75, 0.9, 1.0]),
    constraint=st.sampled_from(CONSTRAINTS),
    weighted=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_threshold_matches_a_direct_search(rows, labels, distinct, target, constraint, weighted, seed):
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randint(-distinct, distinct + 1, (rows, labels), generator=generator).double() * 0.37
    y = (torch.rand(rows, labels, generator=generator) < 0.4).double()
    w = torch.randint(0, 4, (rows,), generator=generator).double() if weighted else torch.ones(rows).double()
    threshold, aux = goloss.calibrate_threshold(logits, y, target, constraint, weights=w if weighted else None)
    assert threshold.shape == (labels,)
    for label in range(labels):
        column = logits[:, label].tolist()
        predicted, tp, fp = direct_search(column, y[:, label].tolist(), w.tolist(), target, constraint)
        ours = frozenset(torch.nonzero(logits[:, label] > threshold[label]).flatten().tolist())
        assert ours == predicted, (label, threshold[label].item(), column)
        assert aux["true_positives"][label].item() == tp
        assert aux["false_positives"][label].item() == fp


@pytest.mark.parametrize("constraint", CONSTRAINTS)
def test_float32_logits_one_ulp_apart_are_separated(constraint):
    below = torch.tensor(1.0)
    above = torch.nextafter(below, torch.tensor(2.0))
    logits, labels = torch.stack([above, below]), torch.tensor([1.0, 0.0])
    target = {"precision": 1.0, "recall": 1.0, "false_positive_rate": 0.0}[constraint]
    threshold, aux = goloss.calibrate_threshold(logits, labels, target, constraint)
    assert (logits > threshold).tolist() == [True, False]
    assert bool(aux["met"])


def test_vmap_over_targets_equals_a_loop():
    generator = torch.Generator().manual_seed(0)
    logits, labels = torch.randn(500, 2, generator=generator), (torch.rand(500, 2, generator=generator) < 0.3).float()
    targets = torch.linspace(0.3, 0.95, 8)
    for constraint in CONSTRAINTS:
        swept = torch.vmap(lambda t, c=constraint: goloss.calibrate_threshold(logits, labels, t, c)[0])(targets)
        looped = torch.stack([goloss.calibrate_threshold(logits, labels, t, constraint)[0] for t in targets])
        torch.testing.assert_close(swept, looped, rtol=0, atol=0)
        assert swept.shape == (8, 2)


def test_unreachable_precision_predicts_nothing_and_says_so():
    logits, labels = torch.tensor([2.0, 1.0, 0.0]), torch.tensor([0.0, 1.0, 0.0])
    threshold, aux = goloss.calibrate_threshold(logits, labels, 0.9, "precision")
    assert not (logits > threshold).any()
    assert not bool(aux["met"])


def test_bad_input_is_refused():
    logits, labels = torch.randn(4), torch.tensor([1.0, 0.0, 1.0, 0.0])
    with pytest.raises(ValueError, match="constraint"):
        goloss.calibrate_threshold(logits, labels, 0.9, "accuracy")
    with pytest.raises(ValueError, match="target"):
        goloss.calibrate_threshold(logits, labels, 1.5, "precision")
    with pytest.raises(ValueError, match="logits"):
        goloss.calibrate_threshold(torch.tensor([1.0, float("nan"), 0.0, 0.0]), labels, 0.9, "precision")


@pytest.mark.parametrize("module", list(MODULES))
def test_module_calibrate_sets_the_threshold_of_the_pure_function(module):
    generator = torch.Generator().manual_seed(1)
    logits, labels = torch.randn(300, 3, generator=generator), (torch.rand(300, 3, generator=generator) < 0.3).float()
    weights = torch.rand(300, generator=generator)
    logits = logits + 2 * labels  # a model with some skill: every target is reachable
    targets = torch.tensor([0.2, 0.5, 0.8]) if module is not goloss.TPRAtFPRLoss else torch.tensor([0.05, 0.1, 0.3])
    criterion = module(targets, num_labels=3)
    assert torch.equal(criterion.threshold, torch.zeros(3))  # 0 until calibrated
    aux = criterion.calibrate(logits, labels, weights)
    expected, _ = goloss.calibrate_threshold(logits, labels, targets, MODULES[module], weights=weights)
    torch.testing.assert_close(criterion.threshold, expected, rtol=0, atol=0)
    assert aux["met"].all()
    assert torch.equal(criterion.predict(logits), logits > expected)
    # the set meets its target at the calibrated threshold
    counts = goloss.threshold_counts(logits - criterion.threshold, labels, weights=weights)
    precision, recall, fpr = goloss.rates_at_threshold(counts)
    rate = {"precision": precision, "recall": recall, "false_positive_rate": fpr}[MODULES[module]]
    if MODULES[module] == "false_positive_rate":
        assert (rate <= targets + 1e-6).all()
    else:
        assert (rate >= targets - 1e-6).all()


def test_module_calibrate_with_one_label_and_b_logits():
    criterion = goloss.RecallAtPrecisionLoss(0.75)
    criterion.calibrate(torch.tensor([3.0, 2.0, 1.0, 0.0, -1.0]), torch.tensor([1.0, 1.0, 0.0, 1.0, 0.0]))
    assert criterion.threshold.tolist() == [-0.5]
    assert criterion.predict(torch.tensor([0.0, -1.0])).tolist() == [True, False]


def test_threshold_survives_a_state_dict_round_trip_and_old_state_dicts_load():
    criterion = goloss.PrecisionAtRecallLoss(0.9, num_labels=2)
    criterion.calibrate(torch.randn(100, 2), (torch.rand(100, 2) < 0.5).float())
    buffer = io.BytesIO()
    torch.save(criterion.state_dict(), buffer)
    buffer.seek(0)
    restored = goloss.PrecisionAtRecallLoss(0.9, num_labels=2)
    restored.load_state_dict(torch.load(buffer, weights_only=True))
    assert torch.equal(restored.threshold, criterion.threshold)
    old = {key: value for key, value in criterion.state_dict().items() if key != "threshold"}
    fresh = goloss.PrecisionAtRecallLoss(0.9, num_labels=2)
    fresh.load_state_dict(old)  # strict, from before the threshold existed
    assert torch.equal(fresh.threshold, torch.zeros(2))


def test_module_calibrate_warns_for_an_unreachable_target_and_refuses_other_label_counts():
    criterion = goloss.RecallAtPrecisionLoss(torch.tensor([0.5, 0.99]), num_labels=2)
    logits = torch.tensor([[2.0, 2.0], [1.0, 1.0], [0.0, 0.0]])
    labels = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
    with pytest.warns(UserWarning, match=r"target_precision \[0.99\].*label\(s\) \[1\]"):
        aux = criterion.calibrate(logits, labels)
    assert aux["met"].tolist() == [True, False]
    with pytest.raises(ValueError, match="2 label"):
        criterion.calibrate(torch.randn(5), torch.ones(5))


def test_calibrate_changes_nothing_but_the_threshold():
    criterion = goloss.RecallAtPrecisionLoss(0.3)
    criterion(torch.randn(32, requires_grad=True), (torch.rand(32) < 0.5).float())
    before = {key: value.clone() for key, value in criterion.state_dict().items()}
    criterion.calibrate(torch.randn(50), (torch.rand(50) < 0.5).float())
    after = criterion.state_dict()
    assert [key for key in before if not torch.equal(before[key], after[key])] == ["threshold"]


# -- pitfalls -------------------------------------------------------------------------------------


def _train(criterion, logits_fn, steps, dual_lr=None):
    generator = torch.Generator().manual_seed(3)
    for _ in range(steps):
        labels = (torch.rand(64, generator=generator) < 0.3).float()
        logits = logits_fn(torch.randn(64, generator=generator)).requires_grad_()
        criterion(logits, labels).backward()
        criterion.dual_step() if dual_lr is None else criterion.dual_step(lr=dual_lr)


def test_probabilities_as_logits_warn_once():
    criterion = goloss.RecallAtPrecisionLoss(0.9)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _train(criterion, torch.sigmoid, goloss.nn.PROBABILITY_FORWARDS_WARNING + 30)
    messages = [str(w.message) for w in caught if "probabilities" in str(w.message)]
    assert len(messages) == 1 and "logits" in messages[0]


def test_probabilities_warn_only_after_many_forwards_in_a_row():
    criterion = goloss.RecallAtPrecisionLoss(0.9)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _train(criterion, torch.sigmoid, goloss.nn.PROBABILITY_FORWARDS_WARNING - 1)
        _train(criterion, lambda x: x, 1)  # a real logit breaks the run
        _train(criterion, torch.sigmoid, goloss.nn.PROBABILITY_FORWARDS_WARNING + 5)
    assert not [w for w in caught if "probabilities" in str(w.message)]


@pytest.mark.parametrize("module", list(MODULES))
def test_ordinary_training_warns_nothing(module):
    criterion = module(0.5 if module is not goloss.TPRAtFPRLoss else 0.2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _train(criterion, lambda x: 3 * x + 0.5, 120)  # positive logits in most rows, many above 1


def test_multiplier_at_its_cap_warns_once_naming_the_label_and_target():
    criterion = goloss.RecallAtPrecisionLoss(torch.tensor([0.3, 0.99]), num_labels=2)
    generator = torch.Generator().manual_seed(4)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(40):
            labels = (torch.rand(64, 2, generator=generator) < 0.3).float()
            logits = torch.randn(64, 2, generator=generator, requires_grad=True)  # no skill: 0.99 unreachable
            criterion(logits, labels).backward()
            criterion.dual_step(lr=1.0)
    messages = [str(w.message) for w in caught if "cap" in str(w.message)]
    assert len(messages) == 1
    assert "label 1" in messages[0] and "target_precision 0.99" in messages[0]
    assert criterion.lambdas[1].item() == MAX_LAMBDA


def test_pr_auc_multiplier_at_its_cap_names_the_anchor():
    criterion = goloss.PrecisionRecallAUCLoss(num_anchors=3, precision_range=(0.5, 0.999))
    generator = torch.Generator().manual_seed(5)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(40):
            labels = (torch.rand(64, generator=generator) < 0.3).float()
            criterion(torch.randn(64, generator=generator, requires_grad=True), labels).backward()
            criterion.dual_step(lr=1.0)
    messages = [str(w.message) for w in caught if "cap" in str(w.message)]
    assert len(messages) == 1 and "anchor precision" in messages[0]


def test_positional_dual_step_names_the_keywords():
    criterion = goloss.RecallAtPrecisionLoss(0.9)
    with pytest.raises(TypeError, match=r"logits=.*labels="):
        criterion.dual_step(torch.randn(8))
    with pytest.raises(TypeError, match="keyword"):
        criterion.dual_step(0.1)


def test_shape_mismatch_says_how_to_fix_it():
    criterion = goloss.RecallAtPrecisionLoss(0.9)
    with pytest.raises(ValueError, match=r"squeeze\(-1\).*view_as"):
        criterion(torch.randn(8, 1), torch.ones(8))
