"""Edge cases, numerics, value checks and state errors: each line of the README's Guarantees table."""

from __future__ import annotations

import pytest
import torch

import goloss
import goloss.nn as gnn

LOSSES = {
    "pr_auc": (goloss.precision_recall_auc_loss, {"num_anchors": 4}),
    "roc_auc": (goloss.roc_auc_loss, {}),
    "r_at_p": (goloss.recall_at_precision_loss, {"target_precision": 0.8}),
    "p_at_r": (goloss.precision_at_recall_loss, {"target_recall": 0.8}),
    "fpr_at_tpr": (goloss.false_positive_rate_at_true_positive_rate_loss, {"target_rate": 0.8}),
    "tpr_at_fpr": (goloss.true_positive_rate_at_false_positive_rate_loss, {"target_rate": 0.1}),
}


def call(name, logits, labels, **options):
    fn, target = LOSSES[name]
    num_labels = 1 if logits.dim() == 1 else logits.shape[1]
    params, lambdas = goloss.init_loss_state(fn, num_labels, num_anchors=4, dtype=torch.float32)
    return fn(params, lambdas, logits, labels, **target, **options)


def loss_and_grad(name, logits, labels, **options):
    logits = logits.detach().clone().requires_grad_()
    loss, aux = call(name, logits, labels, **options)
    (grad,) = torch.autograd.grad(loss.sum(), logits)
    return loss, grad, aux


EDGE_BATCHES = {
    "B=1 positive": (torch.tensor([[0.3]]), torch.tensor([[1.0]])),
    "B=1 negative": (torch.tensor([[0.3]]), torch.tensor([[0.0]])),
    "all positive": (torch.randn(6, 2), torch.ones(6, 2)),
    "all negative": (torch.randn(6, 2), torch.zeros(6, 2)),
    "label never appears": (torch.randn(6, 2), torch.tensor([[1.0, 0.0]] * 6)),
}


@pytest.mark.parametrize("batch", list(EDGE_BATCHES))
@pytest.mark.parametrize("name", list(LOSSES))
def test_edge_batches_give_finite_loss_and_gradients(name, batch):
    logits, labels = EDGE_BATCHES[batch]
    loss, grad, aux = loss_and_grad(name, logits, labels)
    assert loss.shape == logits.shape
    assert torch.isfinite(loss).all() and torch.isfinite(grad).all()
    assert all(torch.isfinite(value).all() for value in aux.values())
    if name != "roc_auc":  # only ROC-AUC is 0 on one class (documented): the others still teach
        assert (grad != 0).any()
    elif batch != "label never appears":
        assert (loss == 0).all() and (grad == 0).all()


@pytest.mark.parametrize("name", list(LOSSES))
def test_all_zero_weights_give_zero_loss_and_gradient(name):
    logits, labels = torch.randn(5, 2), (torch.rand(5, 2) < 0.5).float()
    loss, grad, _ = loss_and_grad(name, logits, labels, weights=torch.zeros(5, 2))
    assert (loss == 0).all() and (grad == 0).all()


@pytest.mark.parametrize("name", list(LOSSES))
def test_one_label_as_vector_or_column(name):
    logits, labels = torch.randn(7, 1), torch.tensor([1.0, 0, 0, 1, 0, 1, 0]).unsqueeze(1)
    column, _, column_aux = loss_and_grad(name, logits, labels)
    vector, _, vector_aux = loss_and_grad(name, logits[:, 0], labels[:, 0])
    torch.testing.assert_close(vector, column[:, 0])
    for key in column_aux:
        torch.testing.assert_close(vector_aux[key], column_aux[key][0])


@pytest.mark.parametrize("name", list(LOSSES))
@pytest.mark.parametrize("dtype,limit", [(torch.float32, 1e4), (torch.float16, 6e4), (torch.bfloat16, 6e4)])
def test_extreme_logits_stay_finite(name, dtype, limit):
    logits = torch.tensor([[limit, -limit], [-limit, limit], [0.5, -0.5], [limit, limit]], dtype=dtype)
    labels = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    loss, grad, _ = loss_and_grad(name, logits, labels)
    assert torch.isfinite(loss).all() and torch.isfinite(grad).all()
    assert grad.dtype == dtype
    assert loss.dtype == (torch.float32 if dtype != torch.float64 else dtype)


@pytest.mark.parametrize("name", list(LOSSES))
def test_autocast_cpu_bfloat16_returns_float32_like_bce(name):
    model = torch.nn.Linear(3, 2)
    x, labels = torch.randn(8, 3), (torch.rand(8, 2) < 0.5).float()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model(x)
        loss, _ = call(name, logits, labels, reduction="mean")
        reference = torch.nn.functional.binary_cross_entropy_with_logits(logits, labels)
    assert logits.dtype == torch.bfloat16
    assert loss.dtype == reference.dtype == torch.float32
    loss.backward()
    assert torch.isfinite(model.weight.grad).all()


@pytest.mark.parametrize("surrogate_type", ["xent", "hinge"])
@pytest.mark.parametrize("name", list(LOSSES))
def test_gradcheck_in_float64(name, surrogate_type):
    generator = torch.Generator().manual_seed(3)
    logits = torch.randn(6, 2, generator=generator, dtype=torch.float64) * 2
    logits = logits + 0.05 * torch.sign(logits)  # away from 0
    labels = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.0, 0.0], [1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    fn, target = LOSSES[name]
    params, lambdas = goloss.init_loss_state(fn, 2, num_anchors=3, lambdas_init=0.7, dtype=torch.float64)
    target = {**target, "num_anchors": 3} if name == "pr_auc" else target
    if surrogate_type == "hinge":  # keep every (shifted, pairwise) margin away from the kinks
        logits = torch.tensor([[3.1, -2.7], [-2.2, 2.9], [2.6, 3.3], [-3.4, -2.4], [4.2, -4.5], [-4.4, 4.0]], dtype=torch.float64)
    weights = torch.rand(6, 2, generator=generator, dtype=torch.float64) + 0.5
    tensors = [logits.requires_grad_()] + ([lambdas.requires_grad_()] if lambdas is not None else [])

    def f(*inputs):
        return fn(params, inputs[1] if len(inputs) > 1 else None, inputs[0], labels, weights=weights,
                  surrogate_type=surrogate_type, **target)[0]

    assert torch.autograd.gradcheck(f, tensors)


BAD_VALUES = {
    "labels outside [0, 1]": ("labels", lambda x, y, w: (x, y * 2, w)),
    "NaN logits": ("logits", lambda x, y, w: (x.index_fill(0, torch.tensor([0]), float("nan")), y, w)),
    "inf logits": ("logits", lambda x, y, w: (x.index_fill(0, torch.tensor([1]), float("inf")), y, w)),
    "negative weights": ("weights", lambda x, y, w: (x, y, -w)),
    "NaN weights": ("weights", lambda x, y, w: (x, y, w * float("nan"))),
}


@pytest.mark.parametrize("case", list(BAD_VALUES))
@pytest.mark.parametrize("name", list(LOSSES))
def test_bad_values_raise_value_error_naming_the_argument(name, case):
    argument, corrupt = BAD_VALUES[case]
    x, y, w = corrupt(torch.randn(5, 2), (torch.rand(5, 2) < 0.5).float(), torch.ones(5, 2))
    with pytest.raises(ValueError, match=argument):
        call(name, x, y, weights=w)


@pytest.mark.parametrize("argument,options", [
    ("target_precision", {"target_precision": torch.tensor([0.5, 1.2])}),
    ("label_priors", {"target_precision": 0.5, "label_priors": torch.tensor([0.5, -0.2])}),
    ("lambdas", {"target_precision": 0.5, "lambdas": torch.tensor([1.0, -1.0])}),
    ("lambdas", {"target_precision": 0.5, "lambdas": torch.tensor([1.0, float("nan")])}),
])
def test_bad_tensor_hyperparameters_raise(argument, options):
    lambdas = options.pop("lambdas", torch.ones(2))
    with pytest.raises(ValueError, match=argument):
        goloss.recall_at_precision_loss(None, lambdas, torch.randn(4, 2), torch.ones(4, 2), **options)


def test_value_checks_can_be_switched_off_and_are_skipped_under_vmap():
    labels = torch.full((4, 2), 2.0)
    try:
        goloss.set_value_checks(False)
        goloss.roc_auc_loss(None, None, torch.randn(4, 2), labels)  # no check, no error
    finally:
        goloss.set_value_checks(True)
    with pytest.raises(ValueError):
        goloss.roc_auc_loss(None, None, torch.randn(4, 2), labels)
    targets = torch.tensor([0.5, 1.5])  # out of range, but values are not read under vmap
    logits = torch.randn(4)
    out = torch.func.vmap(
        lambda t: goloss.recall_at_precision_loss(None, 1.0, logits, torch.ones(4), target_precision=t)[0]
    )(targets)
    assert out.shape == (2, 4)


def test_empty_batch_raises():
    with pytest.raises(ValueError, match="logits"):
        goloss.recall_at_precision_loss(None, 1.0, torch.zeros(0, 2), torch.zeros(0, 2), target_precision=0.5)


def test_state_dict_of_another_size_raises_value_error_and_leaves_the_module_intact():
    three, two = gnn.PrecisionRecallAUCLoss(3, num_anchors=4), gnn.PrecisionRecallAUCLoss(2, num_anchors=4)
    before = {key: value.clone() for key, value in two.state_dict().items()}
    with pytest.raises(ValueError, match="num_labels=2"):
        two.load_state_dict(three.state_dict())
    assert all(torch.equal(before[key], value) for key, value in two.state_dict().items())
    state = gnn.RecallAtPrecisionLoss(0.5, 2).state_dict()
    state["lambdas"] = torch.tensor([1.0, -1.0])
    with pytest.raises(ValueError, match="lambdas"):
        gnn.RecallAtPrecisionLoss(0.5, 2).load_state_dict(state)


def test_forward_never_reinitialises_state_and_multipliers_stay_non_negative():
    module = gnn.PrecisionAtRecallLoss(0.9, 2, dual_lr=5.0)
    model = torch.nn.Linear(3, 2)
    for step in range(20):
        x = torch.randn(16, 3)
        y = (torch.rand(16, 2) < 0.3).float()
        counts_before = module.weight_sum.clone()
        lambdas_before = module.lambdas.clone()
        loss = module(model(x), y)
        assert torch.equal(module.lambdas, lambdas_before)
        torch.testing.assert_close(module.weight_sum, counts_before + 16)
        loss.backward()
        module.dual_step()
        assert (module.lambdas >= 0).all()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name", list(LOSSES))
def test_autocast_cuda_float16_returns_float32_like_bce(name):
    model = torch.nn.Linear(3, 2).cuda()
    x, labels = torch.randn(8, 3, device="cuda"), (torch.rand(8, 2, device="cuda") < 0.5).float()
    with torch.autocast("cuda", dtype=torch.float16):
        logits = model(x)
        fn, target = LOSSES[name]
        params, lambdas = goloss.init_loss_state(fn, 2, num_anchors=4, device="cuda")
        loss, _ = fn(params, lambdas, logits, labels, **target, reduction="mean")
        reference = torch.nn.functional.binary_cross_entropy_with_logits(logits, labels)
    assert logits.dtype == torch.float16 and loss.dtype == reference.dtype == torch.float32
    loss.backward()
    assert torch.isfinite(model.weight.grad).all()
