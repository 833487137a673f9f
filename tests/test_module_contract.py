"""The modules as users meet them: compile, torch.func, no silent pitfalls, signatures."""

from __future__ import annotations

import inspect
import pydoc
import warnings

import pytest
import torch
from torch.func import functional_call, grad, vmap

import goloss

CONSTRAINED = {
    "RecallAtPrecisionLoss": lambda **kw: goloss.RecallAtPrecisionLoss(0.8, 2, **kw),
    "PrecisionAtRecallLoss": lambda **kw: goloss.PrecisionAtRecallLoss(0.8, 2, **kw),
    "FPRAtTPRLoss": lambda **kw: goloss.FPRAtTPRLoss(0.8, 2, **kw),
    "TPRAtFPRLoss": lambda **kw: goloss.TPRAtFPRLoss(0.1, 2, **kw),
    "PrecisionRecallAUCLoss": lambda **kw: goloss.PrecisionRecallAUCLoss(2, num_anchors=4, **kw),
}
PUBLIC_MODULES = [goloss.RecallAtPrecisionLoss, goloss.PrecisionAtRecallLoss, goloss.FPRAtTPRLoss,
                  goloss.TPRAtFPRLoss, goloss.PrecisionRecallAUCLoss]


def data(seed, steps=3, rows=32, labels=2):
    generator = torch.Generator().manual_seed(seed)
    return [(torch.randn(rows, labels, generator=generator), (torch.rand(rows, labels, generator=generator) < 0.3).float())
            for _ in range(steps)]


def state(module):
    return {key: value.clone() for key, value in module.state_dict().items()}


def assert_same_state(before, module):
    after = module.state_dict()
    assert before.keys() == after.keys()
    for key in before:
        assert torch.equal(before[key], after[key]), key


@pytest.mark.parametrize("signal", ["strict", "surrogate"])
@pytest.mark.parametrize("name", CONSTRAINED)
def test_compiled_module_equals_eager_after_three_steps(name, signal):
    torch._dynamo.reset()
    eager, compiled_module = CONSTRAINED[name](dual_signal=signal), CONSTRAINED[name](dual_signal=signal)
    compiled = torch.compile(compiled_module, fullgraph=True, backend="aot_eager")
    for x, y in data(0):
        xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
        loss_a, loss_b = eager(xa, y), compiled(xb, y)
        loss_a.backward()
        loss_b.backward()
        eager.dual_step()
        compiled_module.dual_step()
        torch.testing.assert_close(loss_b, loss_a)
        torch.testing.assert_close(xb.grad, xa.grad)
    for key, value in eager.state_dict().items():
        torch.testing.assert_close(compiled_module.state_dict()[key], value, msg=key)
    assert not torch.equal(eager.lambdas, CONSTRAINED[name]().lambdas)


def test_compiled_module_with_inductor_and_auto_dual_step():
    torch._dynamo.reset()
    eager = goloss.RecallAtPrecisionLoss(0.8, 2, auto_dual_step=True)
    compiled_module = goloss.RecallAtPrecisionLoss(0.8, 2, auto_dual_step=True)
    compiled = torch.compile(compiled_module, fullgraph=True)
    for x, y in data(1):
        torch.testing.assert_close(compiled(x.clone().requires_grad_(), y), eager(x.clone().requires_grad_(), y))
    torch.testing.assert_close(compiled_module.lambdas, eager.lambdas)


@pytest.mark.parametrize("name", CONSTRAINED)
def test_torch_func_grad_through_a_module_equals_autograd_and_changes_no_state(name):
    torch.manual_seed(0)
    model, criterion = torch.nn.Linear(3, 2), CONSTRAINED[name]()
    params = {key: value.detach() for key, value in model.named_parameters()}
    generator = torch.Generator().manual_seed(2)
    x, y = torch.randn(16, 3, generator=generator), (torch.rand(16, 2, generator=generator) < 0.4).float()
    before = state(criterion)

    def loss_fn(p, x, y):
        return criterion(functional_call(model, p, (x,)), y)

    grads = grad(loss_fn)(params, x, y)
    assert_same_state(before, criterion)  # read-only under transforms
    criterion.eval()  # the same priors, read-only
    loss_fn(dict(model.named_parameters()), x, y).backward()
    for key, value in model.named_parameters():
        torch.testing.assert_close(grads[key], value.grad)


@pytest.mark.parametrize("name", ["RecallAtPrecisionLoss", "PrecisionRecallAUCLoss"])
def test_per_example_gradients_through_a_module(name):
    torch.manual_seed(0)
    model, criterion = torch.nn.Linear(3, 2), CONSTRAINED[name]()
    params = {key: value.detach() for key, value in model.named_parameters()}
    x, y = torch.randn(6, 3), (torch.rand(6, 2) < 0.5).float()

    def loss_fn(p, xi, yi):
        return criterion(functional_call(model, p, (xi.unsqueeze(0),)), yi.unsqueeze(0))

    per_example = vmap(grad(loss_fn), in_dims=(None, 0, 0))(params, x, y)
    criterion.eval()
    for i in range(6):
        model.zero_grad()
        criterion(model(x[i:i + 1]), y[i:i + 1]).backward()
        torch.testing.assert_close(per_example["weight"][i], model.weight.grad)


@pytest.mark.parametrize("name", CONSTRAINED)
def test_no_grad_and_eval_forwards_never_change_state(name):
    criterion = CONSTRAINED[name]()
    (x, y), = data(3, steps=1)
    before = state(criterion)
    with torch.no_grad():
        criterion(x, y)  # a validation forward, criterion still in train mode
    criterion.eval()
    criterion(x.requires_grad_(), y).backward()
    assert_same_state(before, criterion)


def test_forgotten_dual_step_warns_once_and_a_late_step_uses_the_mean_signal():
    criterion = goloss.RecallAtPrecisionLoss(0.9, 2, dual_signal="surrogate", label_priors=0.3)
    x, y = data(4, steps=1)[0]
    with pytest.warns(UserWarning, match="dual_step"):
        for _ in range(100):
            criterion(x.clone().requires_grad_(), y).backward()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        criterion(x.clone().requires_grad_(), y)  # once only
    one = goloss.RecallAtPrecisionLoss(0.9, 2, dual_signal="surrogate", label_priors=0.3)
    one(x.clone().requires_grad_(), y)
    torch.testing.assert_close(criterion.pending_violation, one.pending_violation)  # a mean, no pile-up
    criterion.dual_step()
    one.dual_step()
    torch.testing.assert_close(criterion.lambdas, one.lambdas)


def test_auto_dual_step_never_warns():
    criterion = goloss.RecallAtPrecisionLoss(0.9, auto_dual_step=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(60):
            criterion(torch.randn(8, requires_grad=True), (torch.rand(8) < 0.5).float())


def train_pr_auc_for_15_steps(biases_in_optimizer: bool) -> None:
    torch.manual_seed(0)
    model, criterion = torch.nn.Linear(3, 1), goloss.PrecisionRecallAUCLoss(num_anchors=5)
    parameters = [*model.parameters(), *(criterion.parameters() if biases_in_optimizer else [])]
    optimizer = torch.optim.SGD(parameters, lr=0.1)
    x, y = torch.randn(32, 3), (torch.rand(32) < 0.4).float()
    for _ in range(15):
        optimizer.zero_grad()
        criterion(model(x).squeeze(-1), y).backward()
        optimizer.step()
        criterion.dual_step()


def test_pr_auc_biases_left_out_of_the_optimizer_warn():
    with pytest.warns(UserWarning, match=r"biases.*criterion\.parameters\(\)"):
        train_pr_auc_for_15_steps(biases_in_optimizer=False)  # the pitfall


def test_pr_auc_biases_in_the_optimizer_do_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        train_pr_auc_for_15_steps(biases_in_optimizer=True)


def test_loading_another_target_warns_and_says_which_holds():
    saved = goloss.RecallAtPrecisionLoss(0.9).state_dict()
    criterion = goloss.RecallAtPrecisionLoss(0.95)
    with pytest.warns(UserWarning, match=r"target_precision.*0\.9.*now holds"):
        criterion.load_state_dict(saved)
    assert torch.allclose(criterion.target, torch.tensor([0.9]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        goloss.RecallAtPrecisionLoss(0.9).load_state_dict(saved)


@pytest.mark.parametrize("options", [
    {"dual_lr": -1.0}, {"dual_lr": float("nan")}, {"dual_lr": "fast"}, {"lambdas_init": -0.5},
    {"dual_signal": "proxy"}, {"dual_mode": "adam"}, {"auto_dual_step": "yes"}, {"dual_rate_factor": float("inf")},
    {"positive_pseudocount": -1.0}, {"reduction": "avg"}, {"surrogate_type": "log"},
])
@pytest.mark.parametrize("module", PUBLIC_MODULES, ids=lambda m: m.__name__)
def test_constructor_arguments_are_validated(module, options):
    args = () if module is goloss.PrecisionRecallAUCLoss else (0.5,)
    with pytest.raises(ValueError, match=next(iter(options))):
        module(*args, **options)


@pytest.mark.parametrize("module", PUBLIC_MODULES, ids=lambda m: m.__name__)
def test_unknown_constructor_argument_is_a_type_error(module):
    args = () if module is goloss.PrecisionRecallAUCLoss else (0.5,)
    with pytest.raises(TypeError, match="dual_rate"):
        module(*args, dual_rate=0.1)


@pytest.mark.parametrize("module", PUBLIC_MODULES, ids=lambda m: m.__name__)
def test_help_shows_the_full_signature_and_the_state(module):
    parameters = inspect.signature(module).parameters
    assert parameters["dual_lr"].default is None and parameters["dual_signal"].default == "strict"
    assert not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    text = pydoc.render_doc(module, renderer=pydoc.plaintext)
    for name in ("dual_lr", "last_diagnostics", "lambdas", "last_aux", "weight_sum", "forward", "dual_step"):
        assert name in text, name
    assert "Initialize internal Module state" not in text
    assert "Should be overridden" not in text


def test_roc_auc_module_help_documents_forward():
    text = pydoc.render_doc(goloss.ROCAUCLoss, renderer=pydoc.plaintext)
    assert "Should be overridden" not in text and "pairwise ranking loss" in text
