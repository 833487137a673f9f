"""Hypothesis properties from the math: the bounds bound, the losses stay finite."""

from __future__ import annotations

import torch
from hypothesis import given, settings, strategies as st

import goloss

SURROGATES = st.sampled_from(["xent", "hinge"])
RATE_LOSSES = {
    goloss.recall_at_precision_loss: "target_precision",
    goloss.precision_at_recall_loss: "target_recall",
    goloss.false_positive_rate_at_true_positive_rate_loss: "target_rate",
    goloss.true_positive_rate_at_false_positive_rate_loss: "target_rate",
}


@st.composite
def batches(draw, max_abs_logit=20.0, dtype=torch.float64):
    """Random ``(logits [B, L], labels [B, L], weights [B, L])`` from a drawn seed and shape."""
    batch_size = draw(st.integers(1, 24))
    num_labels = draw(st.integers(1, 4))
    seed = draw(st.integers(0, 2**31 - 1))
    generator = torch.Generator().manual_seed(seed)
    shape = (batch_size, num_labels)
    scale = draw(st.sampled_from([0.1, 1.0, 5.0, max_abs_logit]))
    logits = (torch.rand(shape, generator=generator, dtype=dtype) * 2 - 1) * scale
    labels = (torch.rand(shape, generator=generator) < draw(st.floats(0.0, 1.0))).to(dtype)
    weights = torch.rand(shape, generator=generator, dtype=dtype) * draw(st.sampled_from([0.0, 1.0, 3.0]))
    return logits, labels, weights


@settings(max_examples=200, deadline=None)
@given(batches(), SURROGATES)
def test_true_positives_lower_bound_never_exceeds_true_positives(batch, surrogate_type):
    logits, labels, weights = batch
    bound = goloss.true_positives_lower_bound(logits, labels, weights=weights, surrogate_type=surrogate_type)
    true_positives = (weights * labels * (logits > 0)).sum(0)
    assert bound.shape == true_positives.shape
    assert torch.all(bound <= true_positives + 1e-9 * (1 + weights.sum(0)))


@settings(max_examples=200, deadline=None)
@given(batches(), SURROGATES)
def test_false_positives_upper_bound_never_below_false_positives(batch, surrogate_type):
    logits, labels, weights = batch
    bound = goloss.false_positives_upper_bound(logits, labels, weights=weights, surrogate_type=surrogate_type)
    false_positives = (weights * (1 - labels) * (logits >= 0)).sum(0)
    assert torch.all(bound >= false_positives - 1e-9 * (1 + weights.sum(0)))


@settings(max_examples=100, deadline=None)
@given(batches(), SURROGATES, st.integers(1, 5))
def test_bounds_per_anchor_slice_equal_bounds_of_each_slice(batch, surrogate_type, num_slices):
    logits, labels, weights = batch
    shifts = torch.linspace(-2, 2, num_slices, dtype=logits.dtype)
    stacked = logits.unsqueeze(-1) + shifts
    for bound in (goloss.true_positives_lower_bound, goloss.false_positives_upper_bound):
        together = bound(stacked, labels, weights=weights, surrogate_type=surrogate_type)
        for k in range(num_slices):
            alone = bound(stacked[..., k], labels, weights=weights, surrogate_type=surrogate_type)
            torch.testing.assert_close(together[:, k], alone)


def _call(fn, logits, labels, weights, surrogate_type, target=0.7, priors=None, reduction="none"):
    num_labels = logits.shape[1]
    params, lambdas = goloss.init_loss_state(fn, num_labels, num_anchors=5, dtype=logits.dtype)
    options = {"weights": weights, "surrogate_type": surrogate_type, "reduction": reduction}
    if fn in RATE_LOSSES:
        options.update({RATE_LOSSES[fn]: target, "label_priors": priors})
    elif fn is goloss.precision_recall_auc_loss:
        options.update({"num_anchors": 5, "label_priors": priors})
    return params, lambdas, options


ALL_LOSSES = [*RATE_LOSSES, goloss.precision_recall_auc_loss, goloss.roc_auc_loss]


@settings(max_examples=60, deadline=None)
@given(batches(max_abs_logit=1e4, dtype=torch.float32), SURROGATES, st.sampled_from(ALL_LOSSES))
def test_loss_and_gradients_finite_for_huge_float32_logits(batch, surrogate_type, fn):
    logits, labels, weights = batch
    logits = logits.clone().requires_grad_()
    params, lambdas, options = _call(fn, logits, labels, weights, surrogate_type)
    tensors = [logits] + ([lambdas.requires_grad_()] if lambdas is not None else [])
    loss, aux = fn(params, lambdas, logits, labels, **options)
    grads = torch.autograd.grad(loss.sum(), tensors)
    assert torch.isfinite(loss).all()
    assert all(torch.isfinite(g).all() for g in grads)
    assert all(torch.isfinite(v).all() for v in aux.values())


@settings(max_examples=100, deadline=None)
@given(batches(), SURROGATES, st.sampled_from(ALL_LOSSES))
def test_reductions_agree_with_the_elementwise_loss(batch, surrogate_type, fn):
    logits, labels, weights = batch
    params, lambdas, options = _call(fn, logits, labels, weights, surrogate_type)
    elementwise, _ = fn(params, lambdas, logits, labels, **options)
    assert elementwise.shape == logits.shape
    options["reduction"] = "sum"
    torch.testing.assert_close(fn(params, lambdas, logits, labels, **options)[0], elementwise.sum())
    options["reduction"] = "mean"
    torch.testing.assert_close(fn(params, lambdas, logits, labels, **options)[0], elementwise.mean())


@settings(max_examples=100, deadline=None)
@given(batches(), SURROGATES, st.sampled_from(list(RATE_LOSSES)))
def test_zero_multipliers_leave_the_plain_weighted_surrogate(batch, surrogate_type, fn):
    """With lambda = 0 the constraint vanishes: R@P and TPR@FPR reduce to the loss on positives,
    P@R and FPR@TPR to the loss on negatives."""
    logits, labels, weights = batch
    _, _, options = _call(fn, logits, labels, weights, surrogate_type)
    loss, _ = fn(None, torch.zeros(logits.shape[1], dtype=logits.dtype), logits, labels, **options)
    on_positives = fn in (goloss.recall_at_precision_loss, goloss.true_positive_rate_at_false_positive_rate_loss)
    expected = weights * goloss.weighted_surrogate_loss(
        logits, labels, surrogate_type=surrogate_type,
        positive_weights=float(on_positives), negative_weights=float(not on_positives),
    )
    torch.testing.assert_close(loss, expected)


@settings(max_examples=100, deadline=None)
@given(batches(), SURROGATES)
def test_lagrangian_sums_to_objective_plus_lambda_times_constraint(batch, surrogate_type):
    """sum(R@P loss) = sum(w L+) + lam * [(1-t) (sum(w L+) - p s B') + t sum(w L-)]: per label, B' rows of w > 0,
    checked from the surrogate alone, with the log(2) indicator scale."""
    logits, labels, weights = batch
    lam, target, prior = torch.tensor(0.7, dtype=logits.dtype), 0.6, 0.3
    loss, _ = goloss.recall_at_precision_loss(
        None, lam, logits, labels, target_precision=target, weights=weights,
        label_priors=prior, surrogate_type=surrogate_type,
    )
    pos = (weights * goloss.weighted_surrogate_loss(logits, labels, surrogate_type=surrogate_type,
                                                    negative_weights=0.0)).sum(0)
    neg = (weights * goloss.weighted_surrogate_loss(logits, labels, surrogate_type=surrogate_type,
                                                    positive_weights=0.0)).sum(0)
    scale = torch.log(torch.tensor(2.0, dtype=logits.dtype)) if surrogate_type == "xent" else 1.0
    active_rows = (weights > 0).sum(0)  # zero-weight rows are masked out, constraint term included
    expected = pos + lam * ((1 - target) * (pos - prior * scale * active_rows) + target * neg)
    torch.testing.assert_close(loss.sum(0), expected)
