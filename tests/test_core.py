"""Unit tests of the functional core against independent definitions (other shapes, seeds, data)."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

import goloss



@pytest.fixture(autouse=True)
def float64_by_default():
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


def random_batch(batch_size=9, num_labels=3, seed=0):
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(batch_size, num_labels, generator=generator) * 2
    labels = (torch.rand(batch_size, num_labels, generator=generator) < 0.4).double()
    labels[0], labels[1] = 1.0, 0.0  # both classes in every label
    weights = torch.rand(batch_size, num_labels, generator=generator) + 0.1
    return logits, labels, weights


def surrogate(x, surrogate_type):
    """Surrogate of a positive example, written directly from its definition."""
    return math.log1p(math.exp(-x)) if surrogate_type == "xent" else max(0.0, 1.0 - x)


@pytest.mark.parametrize("surrogate_type", ["xent", "hinge"])
@pytest.mark.parametrize("seed", [1, 2])
def test_roc_auc_equals_the_pairwise_definition(surrogate_type, seed):
    logits, labels, weights = random_batch(7, 2, seed)
    loss, aux = goloss.roc_auc_loss(None, None, logits, labels, weights=weights, surrogate_type=surrogate_type)
    batch_size, num_labels = logits.shape
    expected = torch.zeros_like(logits)
    for l, i, j in itertools.product(range(num_labels), range(batch_size), range(batch_size)):
        if labels[i, l] != labels[j, l]:
            positive, negative = (i, j) if labels[i, l] == 1 else (j, i)
            margin = float(logits[positive, l] - logits[negative, l])
            pair = float(weights[i, l] * weights[j, l]) * surrogate(margin, surrogate_type)
            expected[j, l] += 0.5 * pair / batch_size
    assert aux == {}
    torch.testing.assert_close(loss, expected)


@pytest.mark.parametrize("surrogate_type", ["xent", "hinge"])
def test_pr_auc_is_the_normalised_riemann_sum_of_recall_at_precision(surrogate_type):
    logits, labels, weights = random_batch(11, 2, 3)
    num_anchors, precision_range = 4, (0.2, 0.9)
    generator = torch.Generator().manual_seed(5)
    biases = torch.randn(2, num_anchors, generator=generator)
    lambdas = torch.rand(2, num_anchors, generator=generator) * 2
    priors = torch.tensor([0.3, 0.6])
    loss, aux = goloss.precision_recall_auc_loss(
        {"biases": biases}, lambdas, logits, labels, precision_range=precision_range,
        num_anchors=num_anchors, weights=weights, label_priors=priors, surrogate_type=surrogate_type,
    )
    anchors, delta = goloss.range_to_anchors_and_delta(precision_range, num_anchors)
    expected = sum(
        goloss.recall_at_precision_loss(
            None, lambdas[:, k], logits + biases[:, k], labels, target_precision=anchors[k],
            weights=weights, label_priors=priors, surrogate_type=surrogate_type,
        )[0]
        for k in range(num_anchors)
    ) * delta / (precision_range[1] - precision_range[0] - delta)
    torch.testing.assert_close(loss, expected)
    # The bounds are computed from the logits without the biases, as in the original.
    torch.testing.assert_close(
        aux["true_positives_lower_bound"],
        goloss.true_positives_lower_bound(logits, labels, weights=weights, surrogate_type=surrogate_type),
    )


def test_anchors_are_interior_and_evenly_spaced():
    anchors, delta = goloss.range_to_anchors_and_delta((0.25, 0.75), 3)
    assert anchors == pytest.approx([0.375, 0.5, 0.625])
    assert delta == pytest.approx(0.125)


def test_fpr_at_tpr_is_precision_at_recall():
    logits, labels, weights = random_batch(seed=4)
    lambdas = torch.tensor([0.5, 1.0, 2.0])
    a = goloss.false_positive_rate_at_true_positive_rate_loss(None, lambdas, logits, labels, target_rate=0.8, weights=weights)
    b = goloss.precision_at_recall_loss(None, lambdas, logits, labels, target_recall=0.8, weights=weights)
    torch.testing.assert_close(a[0], b[0])


@pytest.mark.parametrize("fn,target", [
    (goloss.recall_at_precision_loss, {"target_precision": 0.7}),
    (goloss.true_positive_rate_at_false_positive_rate_loss, {"target_rate": 0.1}),
    (goloss.precision_recall_auc_loss, {"num_anchors": 3}),
    (goloss.roc_auc_loss, {}),
])
def test_vector_input_equals_a_single_label_column(fn, target):
    logits, labels, weights = random_batch(8, 1, seed=6)
    params, lambdas = goloss.init_loss_state(fn, 1, num_anchors=3)
    column, column_aux = fn(params, lambdas, logits, labels, weights=weights, **target)
    vector, vector_aux = fn(params, lambdas, logits[:, 0], labels[:, 0], weights=weights[:, 0], **target)
    assert vector.shape == (8,)
    torch.testing.assert_close(vector, column[:, 0])
    for key, value in column_aux.items():
        torch.testing.assert_close(vector_aux[key], value[0])


def test_batch_label_prior_estimate_and_stream():
    logits, labels, weights = random_batch(seed=7)
    _, aux = goloss.recall_at_precision_loss(None, 1.0, logits, labels, target_precision=0.5, weights=weights)
    expected = (1 + (weights * labels).sum(0)) / (2 + weights.sum(0))
    torch.testing.assert_close(aux["label_priors"], expected)

    counts = goloss.init_label_prior_counts(3)
    total_positive, total_weight = torch.ones(3), torch.full((3,), 2.0)
    for seed in range(3):
        _, labels, weights = random_batch(5 + seed, 3, seed)
        counts, priors = goloss.update_label_prior_counts(counts, labels, weights)
        total_positive += (weights * labels).sum(0)
        total_weight += weights.sum(0)
        torch.testing.assert_close(priors, total_positive / total_weight)


def test_zero_weights_do_not_change_the_prior_counts():
    counts = goloss.init_label_prior_counts(2, positive_pseudocount=3.0, negative_pseudocount=4.0)
    _, labels, _ = random_batch(6, 2, 8)
    new, priors = goloss.update_label_prior_counts(counts, labels, torch.zeros(6, 2))
    torch.testing.assert_close(new.weighted_label_counts, torch.full((2,), 3.0))
    torch.testing.assert_close(priors, torch.full((2,), 3.0 / 7.0))


def test_dual_ascent_step_ascends_and_projects_on_pytrees():
    lambdas = {"a": torch.tensor([0.5, 0.1]), "b": torch.tensor([[2.0]])}
    grads = {"a": torch.tensor([1.0, -1.0]), "b": torch.tensor([[-0.5]])}
    new = goloss.dual_ascent_step(lambdas, grads, 0.2)
    torch.testing.assert_close(new["a"], torch.tensor([0.7, 0.0]))
    torch.testing.assert_close(new["b"], torch.tensor([[1.9]]))


def test_dual_ascent_step_refuses_grads_that_do_not_broadcast_and_changes_nothing():
    lambdas = {"a": torch.tensor([0.5, 0.1]), "b": torch.tensor([[2.0]])}
    before = {key: value.clone() for key, value in lambdas.items()}
    with pytest.raises(ValueError, match=r"grads must have shape \(2,\) \(that of lambdas\).*got \(3,\)"):
        goloss.dual_ascent_step(lambdas, {"a": torch.ones(3), "b": torch.ones(1, 1)}, 0.1)
    with pytest.raises(ValueError, match=r"grads must have shape \(1, 1\)"):
        goloss.dual_ascent_step(lambdas, {"a": torch.ones(2), "b": torch.ones(2, 1)}, 0.1)
    assert all(torch.equal(lambdas[key], before[key]) for key in lambdas)
    new = goloss.dual_ascent_step(lambdas, {"a": torch.tensor(1.0), "b": torch.tensor(-1.0)}, 0.5)  # [] broadcasts
    torch.testing.assert_close(new["a"], torch.tensor([1.0, 0.6]))
    torch.testing.assert_close(new["b"], torch.tensor([[1.5]]))


def test_reverse_gradient_value_and_gradient():
    variable = torch.tensor([-2.0, 0.0, 3.0], requires_grad=True)
    value = goloss.reverse_gradient(variable, 0.5)
    assert torch.equal(value, variable.abs())
    (value * torch.tensor([1.0, 1.0, 4.0])).sum().backward()
    torch.testing.assert_close(variable.grad, torch.tensor([0.5, 0.0, -2.0]))


def test_xent_gradient_at_logit_zero_is_the_true_derivative():
    """The original returned -c for a positive and 0 for a negative at x = 0 (QUIRKS.md); goloss is exact."""
    logits = torch.zeros(2, 1, requires_grad=True)
    labels = torch.tensor([[1.0], [0.0]])
    loss = goloss.weighted_sigmoid_cross_entropy_with_logits(logits, labels, positive_weights=3.0, negative_weights=2.0)
    (grad,) = torch.autograd.grad(loss.sum(), logits)
    torch.testing.assert_close(grad, torch.tensor([[-1.5], [1.0]]))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", ["precision_recall_auc_loss", "roc_auc_loss", "precision_at_recall_loss"])
def test_init_loss_state_shapes_and_dtype(name, dtype):
    params, lambdas = goloss.init_loss_state(name, 4, num_anchors=6, lambdas_init=0.5, dtype=dtype)
    if name == "roc_auc_loss":
        assert params == {} and lambdas is None
    elif name == "precision_recall_auc_loss":
        assert params["biases"].shape == (4, 6) and params["biases"].dtype == dtype
        assert torch.equal(lambdas, torch.full((4, 6), 0.5, dtype=dtype))
    else:
        assert params == {} and torch.equal(lambdas, torch.full((4,), 0.5, dtype=dtype))


def test_float32_inputs_give_float32_outputs_with_float64_state():
    logits, labels, _ = random_batch()
    loss, aux = goloss.recall_at_precision_loss(
        None, torch.ones(3), logits.float(), labels.float(), target_precision=torch.tensor([0.5, 0.6, 0.7])
    )
    assert loss.dtype == torch.float32 and aux["label_priors"].dtype == torch.float32


BAD_CALLS = {
    "surrogate": (lambda x, y: goloss.recall_at_precision_loss(None, 1.0, x, y, target_precision=0.5, surrogate_type="bogus"), "surrogate_type"),
    "reduction": (lambda x, y: goloss.roc_auc_loss(None, None, x, y, reduction="avg"), "reduction"),
    "shape": (lambda x, y: goloss.precision_at_recall_loss(None, 1.0, x, y[:, :2], target_recall=0.5), "labels"),
    "rank": (lambda x, y: goloss.precision_at_recall_loss(None, 1.0, x[..., None], y[..., None], target_recall=0.5), "logits"),
    "int logits": (lambda x, y: goloss.roc_auc_loss(None, None, x.long(), y), "logits"),
    "weights": (lambda x, y: goloss.roc_auc_loss(None, None, x, y, weights=torch.ones(4)), "weights"),
    "lambdas": (lambda x, y: goloss.recall_at_precision_loss(None, torch.ones(2), x, y, target_precision=0.5), "lambdas"),
    "pr lambdas": (lambda x, y: goloss.precision_recall_auc_loss(None, torch.ones(3, 4), x, y, num_anchors=5), "lambdas"),
    "biases": (lambda x, y: goloss.precision_recall_auc_loss({"biases": torch.zeros(2, 5)}, torch.ones(3, 5), x, y, num_anchors=5), "biases"),
    "target": (lambda x, y: goloss.true_positive_rate_at_false_positive_rate_loss(None, 1.0, x, y, target_rate=1.5), "target_rate"),
    "target shape": (lambda x, y: goloss.recall_at_precision_loss(None, 1.0, x, y, target_precision=torch.ones(2)), "target_precision"),
    "priors": (lambda x, y: goloss.recall_at_precision_loss(None, 1.0, x, y, target_precision=0.5, label_priors=-0.1), "label_priors"),
    "params": (lambda x, y: goloss.recall_at_precision_loss({"biases": torch.zeros(3)}, 1.0, x, y, target_precision=0.5), "params"),
    "equal range": (lambda x, y: goloss.precision_recall_auc_loss(None, 1.0, x, y, precision_range=(0.5, 0.5)), "precision_range"),
    "short range": (lambda x, y: goloss.precision_recall_auc_loss(None, 1.0, x, y, precision_range=(0.5,)), "precision_range"),
    "anchors": (lambda x, y: goloss.precision_recall_auc_loss(None, 1.0, x, y, num_anchors=0), "num_anchors"),
}


@pytest.mark.parametrize("name", list(BAD_CALLS))
def test_bad_input_raises_a_clear_error(name):
    call, argument = BAD_CALLS[name]
    logits, labels, _ = random_batch()
    with pytest.raises((ValueError, TypeError), match=argument):
        call(logits, labels)
