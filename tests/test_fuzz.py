"""Fuzzing every public entry point: a valid call gives finite results, an invalid one raises
the documented ValueError or TypeError, never another exception (IndexError, a RuntimeError from
inside torch, ...). Each entry point gets at least 2000 examples."""

from __future__ import annotations


import pytest
import torch
from hypothesis import HealthCheck, given, settings, strategies as st

import goloss
import goloss.nn as gnn

EXAMPLES = 2000
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
                suppress_health_check=list(HealthCheck))
DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.int64]
SPECIAL = [float("nan"), float("inf"), -float("inf")]
SURROGATE = st.sampled_from(["xent", "hinge", "xent", "hinge", "bogus"])
REDUCTION = st.sampled_from(["none", "mean", "sum", "avg"])


def tensor(draw, shape, dtype=torch.float32, low=-3.0, high=3.0, special=0.05, huge=None):
    """A tensor of ``shape``: uniform values, sometimes huge ones, sometimes NaN/inf entries."""
    generator = torch.Generator().manual_seed(draw(st.integers(0, 2**16)))
    values = torch.rand(shape, generator=generator, dtype=torch.float64) * (high - low) + low
    if huge is not None and draw(st.booleans()):
        values = torch.sign(values - (low + high) / 2) * huge
    if values.numel() and draw(st.floats(0, 1)) < special:
        values.view(-1)[0] = draw(st.sampled_from(SPECIAL))
    if dtype == torch.int64:
        return values.nan_to_num().round().to(dtype)
    return values.to(dtype)


def maybe_number_or_tensor(draw, shapes, low, high, dtype=torch.float32):
    kind = draw(st.sampled_from(["number", "tensor", "none"]))
    if kind == "none":
        return None
    if kind == "number":
        return draw(st.one_of(st.floats(low, high), st.sampled_from(SPECIAL + [-0.5, 1.5])))
    return tensor(draw, draw(st.sampled_from(shapes)), dtype, low, high)


@st.composite
def loss_inputs(draw):
    batch, labels_count = draw(st.integers(0, 6)), draw(st.integers(1, 3))
    rank = draw(st.sampled_from([1, 2, 2, 2, 3]))
    shape = {1: (batch,), 2: (batch, labels_count), 3: (batch, labels_count, 2)}[rank]
    dtype = draw(st.sampled_from(DTYPES))
    huge = {torch.float16: 6e4, torch.bfloat16: 6e4}.get(dtype, 1e4)
    logits = tensor(draw, shape, dtype, huge=huge)
    label_shape = shape if draw(st.floats(0, 1)) < 0.9 else (batch + 1,) + shape[1:]
    labels = tensor(draw, label_shape, low=0.0, high=1.0).round()
    if draw(st.floats(0, 1)) < 0.05:
        labels = labels * draw(st.sampled_from([2.0, -1.0, 0.5]))
    num_labels = 1 if rank == 1 else labels_count
    weight_shapes = [(), (batch,), (batch, 1), (batch, num_labels), (batch + 2,), (num_labels, 3)]
    weights = maybe_number_or_tensor(draw, weight_shapes, -0.1, 3.0)
    return logits, labels, weights, num_labels


def assert_finite(*trees):
    for tree in trees:
        values = tree.values() if isinstance(tree, dict) else (tree if isinstance(tree, tuple) else [tree])
        for value in values:
            if isinstance(value, torch.Tensor):
                assert torch.isfinite(value).all(), value


def expect_documented_error_or(call):
    """Run ``call``; a ValueError/TypeError is fine, anything else propagates and fails."""
    try:
        return call()
    except (ValueError, TypeError) as error:
        assert str(error)
        return None


RATE_LOSSES = {
    goloss.recall_at_precision_loss: "target_precision",
    goloss.precision_at_recall_loss: "target_recall",
    goloss.false_positive_rate_at_true_positive_rate_loss: "target_rate",
    goloss.true_positive_rate_at_false_positive_rate_loss: "target_rate",
}


@pytest.mark.parametrize("fn", list(RATE_LOSSES), ids=lambda f: f.__name__)
@FUZZ
@given(data=st.data())
def test_fuzz_rate_losses(fn, data):
    draw = data.draw
    logits, labels, weights, num_labels = draw(loss_inputs())
    lambdas = tensor(draw, draw(st.sampled_from([(), (num_labels,), (num_labels + 1,)])), low=-0.2, high=5.0)
    target = maybe_number_or_tensor(draw, [(), (num_labels,), (2, 2)], -0.1, 1.1)
    target = 0.5 if target is None else target
    priors = maybe_number_or_tensor(draw, [(num_labels,), (num_labels + 1,)], -0.1, 1.1)
    params = draw(st.sampled_from([None, {}, {"biases": torch.zeros(1)}]))
    result = expect_documented_error_or(lambda: fn(
        params, lambdas, logits, labels, **{RATE_LOSSES[fn]: target}, weights=weights, label_priors=priors,
        surrogate_type=draw(SURROGATE), reduction=draw(REDUCTION)))
    if result is not None:
        assert_finite(*result)


@FUZZ
@given(data=st.data())
def test_fuzz_precision_recall_auc_loss(data):
    draw = data.draw
    logits, labels, weights, num_labels = draw(loss_inputs())
    anchors = draw(st.sampled_from([1, 3, 0, -1, 2.5]))
    lo, hi = draw(st.floats(-0.2, 1.2)), draw(st.floats(-0.2, 1.2))
    shape = (num_labels, anchors) if isinstance(anchors, int) and anchors > 0 else (num_labels, 1)
    lambdas = tensor(draw, draw(st.sampled_from([shape, shape[1:], (num_labels + 1, 2)])), low=-0.2, high=5.0)
    biases = tensor(draw, draw(st.sampled_from([shape, shape[1:], (3, 7)])))
    params = draw(st.sampled_from([None, {}, {"biases": biases}]))
    priors = maybe_number_or_tensor(draw, [(num_labels,), (num_labels + 1,)], -0.1, 1.1)
    result = expect_documented_error_or(lambda: goloss.precision_recall_auc_loss(
        params, lambdas, logits, labels, precision_range=draw(st.sampled_from([(lo, hi), (0.0, 1.0), (lo,)])),
        num_anchors=anchors, weights=weights, label_priors=priors, surrogate_type=draw(SURROGATE),
        reduction=draw(REDUCTION)))
    if result is not None:
        assert_finite(*result)


@FUZZ
@given(data=st.data())
def test_fuzz_roc_auc_loss(data):
    draw = data.draw
    logits, labels, weights, _ = draw(loss_inputs())
    result = expect_documented_error_or(lambda: goloss.roc_auc_loss(
        None, None, logits, labels, weights=weights, surrogate_type=draw(SURROGATE), reduction=draw(REDUCTION)))
    if result is not None:
        assert_finite(*result)


SURROGATE_FUNCTIONS = [goloss.weighted_surrogate_loss, goloss.weighted_sigmoid_cross_entropy_with_logits,
                       goloss.weighted_hinge_loss]


@pytest.mark.parametrize("fn", SURROGATE_FUNCTIONS, ids=lambda f: f.__name__)
@FUZZ
@given(data=st.data())
def test_fuzz_surrogates(fn, data):
    draw = data.draw
    logits, labels, _, num_labels = draw(loss_inputs())
    options = {"positive_weights": draw(st.sampled_from([1.0, 2.5, torch.ones(num_labels), torch.ones(7, 5)])),
               "negative_weights": draw(st.sampled_from([1.0, 0.0, torch.rand(num_labels)]))}
    if fn is goloss.weighted_surrogate_loss:
        options["surrogate_type"] = draw(SURROGATE)
    result = expect_documented_error_or(lambda: fn(logits, labels, **options))
    if result is not None and torch.isfinite(logits).all() and torch.isfinite(labels).all():
        assert_finite(result)


@pytest.mark.parametrize("fn", [goloss.true_positives_lower_bound, goloss.false_positives_upper_bound],
                         ids=lambda f: f.__name__)
@FUZZ
@given(data=st.data())
def test_fuzz_bounds(fn, data):
    draw = data.draw
    logits, labels, weights, _ = draw(loss_inputs())
    result = expect_documented_error_or(
        lambda: fn(logits, labels, weights=1.0 if weights is None else weights, surrogate_type=draw(SURROGATE)))
    if result is not None and all(torch.isfinite(t).all() for t in (logits, labels) if t.is_floating_point()):
        if not isinstance(weights, torch.Tensor) or torch.isfinite(weights).all():
            assert_finite(result)


@FUZZ
@given(lo=st.one_of(st.floats(allow_nan=True), st.none()), hi=st.floats(allow_nan=True),
       anchors=st.one_of(st.integers(-3, 50), st.floats(allow_nan=True), st.booleans()))
def test_fuzz_range_to_anchors_and_delta(lo, hi, anchors):
    result = expect_documented_error_or(lambda: goloss.range_to_anchors_and_delta((lo, hi), anchors))
    if result is not None:
        values, delta = result
        assert len(values) == anchors and all(lo < v < hi for v in values) and delta > 0


@FUZZ
@given(data=st.data())
def test_fuzz_label_prior_counts(data):
    draw = data.draw
    logits, labels, weights, num_labels = draw(loss_inputs())
    counts = expect_documented_error_or(lambda: goloss.init_label_prior_counts(
        draw(st.sampled_from([num_labels, num_labels + 1])),
        positive_pseudocount=draw(st.floats(0.1, 5)), negative_pseudocount=draw(st.floats(0.1, 5)),
        dtype=draw(st.sampled_from([torch.float32, torch.float64]))))
    result = expect_documented_error_or(lambda: goloss.update_label_prior_counts(counts, labels, weights))
    if result is not None:
        new, priors = result
        assert_finite(tuple(new), priors)
        assert ((priors > 0) & (priors < 1)).all()


@FUZZ
@given(data=st.data())
def test_fuzz_dual_helpers(data):
    draw = data.draw
    shape = draw(st.sampled_from([(), (3,), (2, 4)]))
    lambdas = {"a": tensor(draw, shape, low=0, high=5)}
    grads = draw(st.sampled_from([{"a": tensor(draw, shape)}, {"b": tensor(draw, shape)}, {"a": tensor(draw, (5,))}]))
    lr = draw(st.one_of(st.floats(allow_nan=True), st.sampled_from([0.1, 1.0, -1.0, True])))
    result = expect_documented_error_or(lambda: goloss.dual_ascent_step(lambdas, grads, lr))
    if result is not None:
        assert_finite(result["a"])
        assert (result["a"] >= 0).all()
    variable = tensor(draw, shape)
    value = expect_documented_error_or(lambda: goloss.reverse_gradient(variable, draw(st.floats(0, 20))))
    if value is not None:
        assert torch.equal(value, variable.abs())


@FUZZ
@given(name=st.sampled_from(["precision_recall_auc_loss", "roc_auc_loss", "recall_at_precision_loss", "bogus"]),
       num_labels=st.integers(-1, 4), anchors=st.integers(-1, 4), init=st.floats(0, 3))
def test_fuzz_init_loss_state(name, num_labels, anchors, init):
    result = expect_documented_error_or(
        lambda: goloss.init_loss_state(name, num_labels, num_anchors=anchors, lambdas_init=init))
    if result is not None:
        params, lambdas = result
        assert_finite(params, lambdas)


MODULES = [gnn.RecallAtPrecisionLoss, gnn.PrecisionAtRecallLoss, gnn.FPRAtTPRLoss, gnn.TPRAtFPRLoss,
           gnn.PrecisionRecallAUCLoss, gnn.ROCAUCLoss]


@pytest.mark.parametrize("cls", MODULES, ids=lambda c: c.__name__)
@FUZZ
@given(data=st.data())
def test_fuzz_modules(cls, data):
    draw = data.draw
    logits, labels, weights, num_labels = draw(loss_inputs())
    options = {"surrogate_type": draw(SURROGATE), "reduction": draw(REDUCTION)}
    configured = draw(st.sampled_from([num_labels, num_labels + 1]))
    if cls is gnn.ROCAUCLoss:
        make = lambda: cls(**options)  # noqa: E731
    else:
        options.update(dual_lr=draw(st.floats(0, 10)), lambdas_init=draw(st.sampled_from([1.0, 0.0, -1.0])),
                       label_priors=draw(st.sampled_from([None, 0.3, 1.5])))
        if cls is gnn.PrecisionRecallAUCLoss:
            make = lambda: cls(configured, num_anchors=draw(st.integers(0, 4)), **options)  # noqa: E731
        else:
            target = draw(st.one_of(st.floats(-0.1, 1.1), st.just(float("nan"))))
            make = lambda: cls(target, configured, **options)  # noqa: E731
    module = expect_documented_error_or(make)
    if module is None:
        return
    if logits.is_floating_point():
        logits = logits.detach().requires_grad_()
    loss = expect_documented_error_or(lambda: module(logits, labels, weights))
    if loss is None:
        return
    assert_finite(loss)
    if loss.requires_grad:
        loss.sum().backward()
        assert_finite(logits.grad)
    if hasattr(module, "dual_step"):
        module.dual_step()
        assert_finite(module.lambdas)
        assert (module.lambdas >= 0).all()
