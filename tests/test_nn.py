"""The stateful modules: dual step, priors, state round trips, diagnostics, and the golden streams."""

from __future__ import annotations

import io

import pytest
import torch

import goloss
import goloss.nn as gnn
from test_golden import CASES, assert_matches, tensor

MODULE_FOR = {
    "recall_at_precision_loss": (gnn.RecallAtPrecisionLoss, "target_precision"),
    "precision_at_recall_loss": (gnn.PrecisionAtRecallLoss, "target_recall"),
    "false_positive_rate_at_true_positive_rate_loss": (gnn.FPRAtTPRLoss, "target_rate"),
    "true_positive_rate_at_false_positive_rate_loss": (gnn.TPRAtFPRLoss, "target_rate"),
    "precision_recall_auc_loss": (gnn.PrecisionRecallAUCLoss, None),
}


def module_from_case(case, dual_mode):
    """A module configured and initialised like a golden case (raw variable v for reverse mode)."""
    function, kwargs, state = case["function"], case["kwargs"], case.get("state", {})
    cls, target_name = MODULE_FOR[function]
    num_labels = 1 if isinstance(case["steps"][0]["inputs"]["logits"][0], float) else len(case["steps"][0]["inputs"]["logits"][0])
    options = {"surrogate_type": kwargs.get("surrogate_type", "xent"), "reduction": "none", "dual_mode": dual_mode,
               "dual_rate_factor": kwargs.get("dual_rate_factor", 0.1), "dual_signal": "surrogate"}
    if target_name:
        target = kwargs[target_name]
        module = cls(target if isinstance(target, float) else tensor(target), num_labels, **options)
    else:
        module = cls(num_labels, precision_range=tuple(kwargs["precision_range"]), num_anchors=kwargs["num_anchors"], **options)
    module = module.double()
    with torch.no_grad():
        raw = tensor(state["lambdas"]).reshape(module.lambdas.shape)
        module.lambdas.copy_(raw if dual_mode == "reverse_gradient" else raw.abs())
        if "biases" in state:
            module.biases.copy_(tensor(state["biases"]).reshape(module.biases.shape))
    return module


STREAMS = [name for name, case in CASES.items() if case["kind"] == "loss_stream"]


@pytest.mark.parametrize("dual_mode", ["explicit", "reverse_gradient"])
@pytest.mark.parametrize("name", STREAMS)
def test_module_reproduces_the_golden_streams(name, dual_mode):
    """Streaming priors updated once per training forward, multiplier gradients in both modes."""
    case = CASES[name]
    module = module_from_case(case, dual_mode)
    for step in case["steps"]:
        inputs, expected = step["inputs"], step["expected"]
        logits = tensor(inputs["logits"]).requires_grad_()
        weights = inputs.get("weights")
        loss = module(logits, tensor(inputs["labels"]), None if weights is None else tensor(weights))
        module.zero_grad()
        loss.sum().backward()
        assert_matches(loss, expected["loss"], "loss")
        assert_matches(logits.grad, expected["grad_logits"], "grad_logits")
        assert_matches(module.last_aux["label_priors"], expected["other_outputs"]["label_priors"], "label_priors")
        if dual_mode == "explicit":
            # the recorded surrogate violation is dL/dlambda of loss.sum() (reduction="none")
            assert_matches(module.pending_violation, expected["grad_lambdas_plain"], "grad_lambdas_plain")
            module.violation_sum.zero_()  # the golden streams keep the multipliers fixed
            module.violation_count.zero_()
        else:
            assert_matches(module.lambdas.grad, expected["grad_lambdas_variable"], "grad_lambdas_variable")
        if "grad_biases" in expected:
            assert_matches(module.biases.grad, expected["grad_biases"], "grad_biases")


def violated_batch(seed=0, num_labels=2):
    """A batch where every label scores negatives above positives: every constraint is violated."""
    generator = torch.Generator().manual_seed(seed)
    labels = (torch.arange(16) % 4 == 0).double().unsqueeze(1).repeat(1, num_labels)
    logits = (1.0 - 2.0 * labels) + 0.1 * torch.randn(16, num_labels, generator=generator, dtype=torch.float64)
    return logits, labels


CONSTRAINED = [
    lambda **kw: gnn.RecallAtPrecisionLoss(0.9, 2, **kw),
    lambda **kw: gnn.PrecisionAtRecallLoss(0.9, 2, **kw),
    lambda **kw: gnn.FPRAtTPRLoss(0.9, 2, **kw),
    lambda **kw: gnn.TPRAtFPRLoss(0.05, 2, **kw),
    lambda **kw: gnn.PrecisionRecallAUCLoss(2, num_anchors=4, **kw),
]


@pytest.mark.parametrize("signal", ["strict", "surrogate"])
@pytest.mark.parametrize("make", CONSTRAINED)
def test_explicit_dual_step_is_ascent_and_the_model_optimizer_never_touches_lambdas(make, signal):
    module = make(dual_signal=signal).double()
    assert all(param is not module.lambdas for param in module.parameters())
    logits, labels = violated_batch()
    logits.requires_grad_()
    optimizer = torch.optim.SGD([logits, *module.parameters()], lr=0.5)
    before = module.lambdas.clone()
    module(logits, labels).backward()
    optimizer.step()
    assert torch.equal(module.lambdas, before)  # the primal step left them alone
    grad = module.pending_violation.clone()
    assert (grad > 0).all()  # violated constraints push the multipliers up
    module.dual_step(lr=0.3)
    step = 0.3 * grad if signal == "surrogate" else 0.3 * (1.0 + before) * grad  # strict: relative step
    torch.testing.assert_close(module.lambdas, before + step)
    assert module.violation_count == 0 and (module.pending_violation == 0).all()


@pytest.mark.parametrize("make", CONSTRAINED)
def test_reverse_gradient_mode_is_ascent_under_the_model_optimizer(make):
    module = make(dual_mode="reverse_gradient", dual_rate_factor=2.0).double()
    logits, labels = violated_batch()
    optimizer = torch.optim.SGD(module.parameters(), lr=0.1)
    before = module.lambdas.detach().clone()
    module(logits, labels).backward()
    optimizer.step()
    assert (module.lambdas.detach() > before).all()
    with pytest.raises(RuntimeError, match="dual_step"):
        module.dual_step()


def test_projection_keeps_multipliers_non_negative():
    module = gnn.RecallAtPrecisionLoss(0.1, 1, lambdas_init=0.01).double()
    logits = torch.tensor([5.0, 4.0, -5.0, -4.0], dtype=torch.float64)  # perfectly separated
    labels = torch.tensor([1.0, 1.0, 0.0, 0.0], dtype=torch.float64)
    for _ in range(3):
        module(logits.clone().requires_grad_(), labels).backward()
        module.dual_step(lr=100.0)
        assert (module.lambdas >= 0).all()
    assert module.lambdas.item() == 0.0


def test_eval_mode_neither_updates_priors_nor_records_dual_gradients():
    module = gnn.PrecisionAtRecallLoss(0.8, 2).double()
    logits, labels = violated_batch()
    module.eval()
    module(logits.requires_grad_(), labels).backward()
    assert torch.equal(module.weight_sum, torch.full((2,), 2.0, dtype=torch.float64))
    assert module.violation_count == 0
    module.train()
    module(logits, labels)
    torch.testing.assert_close(module.weight_sum, torch.full((2,), 18.0, dtype=torch.float64))


@pytest.mark.parametrize("make", [
    lambda: gnn.RecallAtPrecisionLoss(0.7, 1, reduction="sum"),
    lambda: gnn.PrecisionAtRecallLoss(0.7, 1, reduction="sum"),
    lambda: gnn.TPRAtFPRLoss(0.2, 1, reduction="sum"),
    lambda: gnn.PrecisionRecallAUCLoss(1, num_anchors=3, reduction="sum"),
])
def test_zero_weights_mask_examples_out_of_the_loss_and_priors(make):
    logits, labels = violated_batch(num_labels=1)
    logits.requires_grad_()
    weights = torch.ones(16, 1, dtype=torch.float64)
    weights[8:] = 0
    module, fresh = make().double(), make().double()
    masked = module(logits, labels, weights)
    kept = fresh(logits[:8], labels[:8])
    torch.testing.assert_close(masked, kept)
    torch.testing.assert_close(module.weight_sum, fresh.weight_sum)
    torch.testing.assert_close(module.weighted_label_counts, fresh.weighted_label_counts)
    (grad,) = torch.autograd.grad(masked, logits)
    assert (grad[8:] == 0).all() and (grad[:8] != 0).any()


def train(module, model, steps, data, optimizer_state=None):
    optimizer = torch.optim.SGD([*model.parameters(), *module.parameters()], lr=0.1, momentum=0.9)
    if optimizer_state is not None:
        optimizer.load_state_dict(optimizer_state)
    for x, y in data[:steps]:
        loss = module(model(x).squeeze(-1), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        module.dual_step(lr=0.5)
    return optimizer


@pytest.mark.parametrize("make", [
    lambda: gnn.RecallAtPrecisionLoss(0.8),
    lambda: gnn.PrecisionRecallAUCLoss(num_anchors=5),
    lambda: gnn.TPRAtFPRLoss(0.1, surrogate_type="hinge"),
])
def test_state_dict_round_trip_resumes_bit_for_bit(make):
    generator = torch.Generator().manual_seed(0)
    data = [(torch.randn(32, 3, generator=generator), (torch.rand(32, generator=generator) < 0.3).float()) for _ in range(10)]

    torch.manual_seed(1)
    model, module = torch.nn.Linear(3, 1), make()
    train(module, model, 10, data)

    torch.manual_seed(1)
    model_a, module_a = torch.nn.Linear(3, 1), make()
    optimizer = train(module_a, model_a, 5, data)
    buffer = io.BytesIO()
    torch.save({"model": model_a.state_dict(), "loss": module_a.state_dict(), "opt": optimizer.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    model_b, module_b = torch.nn.Linear(3, 1), make()
    model_b.load_state_dict(saved["model"])
    module_b.load_state_dict(saved["loss"])
    train(module_b, model_b, 5, data[5:], saved["opt"])

    for a, b in zip([*model.state_dict().values(), *module.state_dict().values()],
                    [*model_b.state_dict().values(), *module_b.state_dict().values()]):
        assert torch.equal(a, b)
    assert not torch.equal(module.lambdas, make().lambdas)  # training did move them


def test_to_dtype_moves_every_buffer_and_parameter():
    module = gnn.PrecisionRecallAUCLoss(3, num_anchors=4).to(torch.float64)
    assert all(t.dtype == torch.float64 for t in [*module.buffers(), *module.parameters()])
    logits, labels = torch.randn(8, 3, dtype=torch.float64), (torch.rand(8, 3) < 0.5).double()
    assert module(logits, labels).dtype == torch.float64


def test_diagnostics_decompose_the_lagrangian():
    logits, labels = violated_batch()
    weights = torch.rand(16, 2, dtype=torch.float64)
    for make in CONSTRAINED:
        module = make(lambdas_init=0.6, reduction="mean").double()
        loss = module(logits, labels, weights)
        d = module.last_diagnostics
        constraint = d["violation"] * d["lambdas"]
        constraint = constraint.sum(-1) if constraint.dim() == 2 else constraint
        torch.testing.assert_close(d["lagrangian"], d["objective"] + constraint)
        torch.testing.assert_close(d["lagrangian"].sum(), loss.detach())
        assert (d["violation"] > 0).all() and (d["strict_violation"] > 0).all()  # violated on this batch


def test_roc_auc_module_equals_the_functional_loss():
    logits, labels = violated_batch()
    module = gnn.ROCAUCLoss(surrogate_type="hinge", reduction="sum")
    expected, _ = goloss.roc_auc_loss(None, None, logits, labels, surrogate_type="hinge", reduction="sum")
    torch.testing.assert_close(module(logits, labels), expected)


def test_module_is_a_drop_in_for_bce_with_logits():
    model = torch.nn.Linear(4, 1)
    criterion = gnn.RecallAtPrecisionLoss(target_precision=0.9)
    x, y = torch.randn(20, 4), (torch.rand(20) < 0.3).float()
    loss = criterion(model(x).squeeze(-1), y)
    assert loss.shape == () and loss.requires_grad
    loss.backward()
    assert model.weight.grad is not None and criterion.pending_violation.shape == (1,)


@pytest.mark.parametrize("bad", [
    lambda: gnn.RecallAtPrecisionLoss(1.5),
    lambda: gnn.RecallAtPrecisionLoss(0.5, 2, reduction="avg"),
    lambda: gnn.RecallAtPrecisionLoss(torch.tensor([0.5, 0.6, 0.7]), 2),
    lambda: gnn.RecallAtPrecisionLoss(torch.full((1, 2), 0.5), 2),
    lambda: gnn.PrecisionAtRecallLoss(0.5, 2, label_priors=torch.tensor([0.1, 0.2, 0.3])),
    lambda: gnn.PrecisionAtRecallLoss(0.5, 0),
    lambda: gnn.TPRAtFPRLoss(0.1, dual_mode="adam"),
    lambda: gnn.PrecisionRecallAUCLoss(precision_range=(0.9, 0.1)),
    lambda: gnn.ROCAUCLoss(surrogate_type="log"),
])
def test_bad_configuration_raises(bad):
    with pytest.raises(ValueError):
        bad()


def test_wrong_number_of_labels_raises():
    with pytest.raises(ValueError, match="num_labels"):
        gnn.RecallAtPrecisionLoss(0.5, 3)(torch.randn(4, 2), torch.ones(4, 2))


def test_auto_dual_step_applies_the_step_in_the_training_forward():
    logits, labels = violated_batch()
    logits.requires_grad_()
    explicit = gnn.RecallAtPrecisionLoss(0.9, 2, dual_lr=0.4).double()
    auto = gnn.RecallAtPrecisionLoss(0.9, 2, dual_lr=0.4, auto_dual_step=True).double()
    explicit(logits, labels).backward()
    explicit.dual_step()
    auto(logits, labels).backward()
    assert auto.violation_count == 0
    assert torch.equal(auto.lambdas, explicit.lambdas)
    assert (auto.lambdas > 1.0).all()
