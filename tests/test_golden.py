"""Every case of the reference vectors computed by the original TensorFlow library.

The file keeps the original's shapes (PR-AUC lambdas and biases ``[1, L, K]``,
bounds ``[L, 1]``, raw multiplier variables ``v`` with ``lambda = |v|``); the
adapter below maps them onto goloss's shapes by reshaping (same number of
elements, asserted), and nothing else is changed.
"""

from __future__ import annotations

import json
import pathlib

import pytest
import torch

import goloss

DATA = json.loads((pathlib.Path(__file__).parent / "data" / "global_objectives_reference.json").read_text())
RTOL, ATOL = DATA["tolerance"]["rtol"], DATA["tolerance"]["atol"]
TARGET_NAMES = ("target_precision", "target_recall", "target_rate")
CASES = {case["name"]: case for case in DATA["cases"]}


def tensor(value):
    return torch.tensor(value, dtype=torch.float64)


def scalar_or_tensor(value):
    return value if isinstance(value, (int, float)) else tensor(value)


def assert_matches(got, expected, what):
    """Compare at the golden tolerance, ``expected`` reshaped to ``got`` (same element count)."""
    expected = tensor(expected)
    assert got.numel() == expected.numel(), f"{what}: {tuple(got.shape)} vs {tuple(expected.shape)}"
    torch.testing.assert_close(
        got.detach(), expected.reshape(got.shape), rtol=RTOL, atol=ATOL, msg=lambda m: f"{what}: {m}"
    )


def loss_options(kwargs):
    """Keyword arguments of goloss's loss from the original's kwargs (inputs excluded)."""
    options = {}
    for key in TARGET_NAMES + ("weights", "label_priors"):
        if kwargs.get(key) is not None:
            options[key] = scalar_or_tensor(kwargs[key])
    for key in ("surrogate_type",):
        if key in kwargs:
            options[key] = kwargs[key]
    if "precision_range" in kwargs:
        options["precision_range"] = tuple(kwargs["precision_range"])
    if "num_anchors" in kwargs:
        options["num_anchors"] = int(kwargs["num_anchors"])
    return options


def run_and_check(function_name, kwargs, state, inputs, expected, label_priors=None):
    """Call goloss on one case and compare loss, aux and gradients with ``expected``."""
    fn = getattr(goloss, function_name)
    options = loss_options(kwargs)
    if label_priors is not None:
        options["label_priors"] = label_priors
    logits = tensor(inputs["logits"]).requires_grad_()
    labels = tensor(inputs["labels"])
    if inputs.get("weights") is not None:
        options["weights"] = scalar_or_tensor(inputs["weights"])
    num_labels = 1 if logits.dim() == 1 else logits.shape[1]

    if function_name == "roc_auc_loss":
        loss, aux = fn(None, None, logits, labels, **options)
        assert aux == {}
        (grad_logits,) = torch.autograd.grad(loss.sum(), logits)
        assert_matches(loss, expected["loss"], "loss")
        assert loss.shape == logits.shape
        assert_matches(grad_logits, expected["grad_logits"], "grad_logits")
        return

    is_auc = function_name == "precision_recall_auc_loss"
    anchors = options.get("num_anchors", 20)
    ours = (num_labels, anchors) if is_auc else (num_labels,)
    raw = tensor(state["lambdas"]) if "lambdas" in state else torch.ones(ours, dtype=torch.float64)
    lambdas = raw.abs().reshape(ours).requires_grad_()
    params, tensors = None, [logits, lambdas]
    if is_auc:
        biases = tensor(state["biases"]) if "biases" in state else torch.zeros(ours, dtype=torch.float64)
        biases = biases.reshape(ours).requires_grad_()
        params, tensors = {"biases": biases}, tensors + [biases]

    loss, aux = fn(params, lambdas, logits, labels, **options)
    grads = torch.autograd.grad(loss.sum(), tensors)
    assert loss.shape == logits.shape
    assert_matches(loss, expected["loss"], "loss")
    assert_matches(grads[0], expected["grad_logits"], "grad_logits")
    assert_matches(grads[1], expected["grad_lambdas_plain"], "grad_lambdas_plain")
    if is_auc:
        assert_matches(grads[2], expected["grad_biases"], "grad_biases")
    other = expected["other_outputs"]
    assert set(other) <= set(aux) | {"lambdas"}
    # The original returns the raw variable v; goloss returns the multipliers it used, |v|.
    assert_matches(aux["lambdas"], expected["effective_lambdas"], "aux lambdas")
    assert_matches(raw, other["lambdas"], "raw lambdas variable")
    for key in set(other) - {"lambdas"}:
        assert_matches(aux[key], other[key], f"aux {key}")

    # The original's single-optimizer mode: gradient w.r.t. the raw variable v.
    variable = raw.clone().requires_grad_()
    dual_rate_factor = kwargs.get("dual_rate_factor", 0.1)
    reversed_lambdas = goloss.reverse_gradient(variable, dual_rate_factor).reshape(ours)
    assert_matches(reversed_lambdas, expected["effective_lambdas"], "reverse_gradient value")
    loss2, _ = fn(params, reversed_lambdas, logits.detach(), labels, **options)
    (grad_variable,) = torch.autograd.grad(loss2.sum(), variable)
    assert_matches(grad_variable, expected["grad_lambdas_variable"], "grad_lambdas_variable")


@pytest.mark.parametrize("name", [n for n, c in CASES.items() if c["kind"] == "loss"])
def test_loss_case(name):
    case = CASES[name]
    kwargs = case["kwargs"]
    inputs = {key: kwargs.get(key) for key in ("logits", "labels", "weights")}
    run_and_check(case["function"], kwargs, case.get("state", {}), inputs, case["expected"])


@pytest.mark.parametrize("name", [n for n, c in CASES.items() if c["kind"] == "loss_stream"])
def test_loss_stream_case(name):
    case = CASES[name]
    state = case["state"]
    counts = goloss.LabelPriorCounts(
        tensor(state["label_prior_counts"]["weighted_label_counts"]),
        tensor(state["label_prior_counts"]["weight_sum"]),
    )
    num_labels = counts.weight_sum.shape[0]
    fresh = goloss.init_label_prior_counts(num_labels, dtype=torch.float64)
    assert all(torch.equal(a, b) for a, b in zip(counts, fresh))
    for step in case["steps"]:
        inputs = step["inputs"]
        weights = inputs.get("weights")
        counts, priors = goloss.update_label_prior_counts(
            counts, tensor(inputs["labels"]), None if weights is None else scalar_or_tensor(weights)
        )
        run_and_check(case["function"], case["kwargs"], state, inputs, step["expected"], label_priors=priors)


@pytest.mark.parametrize("name", [n for n, c in CASES.items() if c["kind"] == "util"])
def test_util_case(name):
    case = CASES[name]
    kwargs, expected, function = case["kwargs"], case["expected"], case["function"]
    if function == "_range_to_anchors_and_delta":
        anchors, delta = goloss.range_to_anchors_and_delta(tuple(kwargs["precision_range"]), kwargs["num_anchors"])
        assert_matches(tensor(anchors), expected["precision_values"], "precision_values")
        assert_matches(tensor(delta), expected["delta"], "delta")
        return
    logits = tensor(kwargs["logits"]).requires_grad_()
    labels = tensor(kwargs["labels"])
    if function in ("true_positives_lower_bound", "false_positives_upper_bound"):
        options = {"weights": scalar_or_tensor(kwargs["weights"]), "surrogate_type": kwargs["surrogate_type"]}
    else:
        options = {k: scalar_or_tensor(kwargs[k]) for k in ("positive_weights", "negative_weights") if k in kwargs}
    output = getattr(goloss, function)(logits, labels, **options)
    (grad_logits,) = torch.autograd.grad(output.sum(), logits)
    assert output.shape == tensor(expected["output"]).shape
    assert_matches(output, expected["output"], "output")
    assert_matches(grad_logits, expected["grad_logits"], "grad_logits")


@pytest.mark.parametrize("name", [n for n, c in CASES.items() if c["kind"] == "util_stream"])
def test_label_priors_stream_case(name):
    case = CASES[name]
    kwargs = case["kwargs"]
    num_labels = len(case["steps"][0]["inputs"]["labels"][0])
    counts = goloss.init_label_prior_counts(
        num_labels,
        positive_pseudocount=kwargs.get("positive_pseudocount", 1.0),
        negative_pseudocount=kwargs.get("negative_pseudocount", 1.0),
        dtype=torch.float64,
    )
    for step in case["steps"]:
        weights = step["inputs"].get("weights")
        counts, priors = goloss.update_label_prior_counts(
            counts, tensor(step["inputs"]["labels"]), None if weights is None else tensor(weights)
        )
        assert priors.shape == (num_labels,)
        assert_matches(priors, step["expected"]["label_priors"], "label_priors")


@pytest.mark.parametrize("case", DATA["error_cases"], ids=lambda c: c["name"])
def test_error_case(case):
    kwargs = dict(case["kwargs"])
    function = case["function"]
    with pytest.raises((ValueError, TypeError)):
        if function == "_range_to_anchors_and_delta":
            goloss.range_to_anchors_and_delta(tuple(kwargs["precision_range"]), kwargs["num_anchors"])
        else:
            logits, labels = tensor(kwargs.pop("logits")), tensor(kwargs.pop("labels"))
            lambdas = torch.ones(1 if logits.dim() == 1 else logits.shape[1], dtype=torch.float64)
            getattr(goloss, function)(None, lambdas, logits, labels, **loss_options(kwargs))
