"""``convex_lagrangian=True``: each label's loss divided by ``1 + lambda`` (the proxy-Lagrangian's
model step), the route adopted for models that fit their training set (issue 19)."""

import pytest
import torch

import goloss
from goloss import _dispatch

RATE_MODULES = [
    (goloss.RecallAtPrecisionLoss, 0.8),
    (goloss.PrecisionAtRecallLoss, 0.7),
    (goloss.FalsePositiveRateAtTruePositiveRateLoss, 0.8),
    (goloss.TruePositiveRateAtFalsePositiveRateLoss, 0.1),
]
LAMBDAS = torch.tensor([0.0, 0.5, 2.0, 300.0], dtype=torch.float64)


def data(batch=48, labels=4, seed=0):
    generator = torch.Generator().manual_seed(seed)
    x = 3.0 * torch.randn(batch, labels, generator=generator, dtype=torch.float64)
    y = (torch.rand(batch, labels, generator=generator) < 0.35).double()
    w = torch.rand(batch, labels, generator=generator, dtype=torch.float64)
    w[::7] = 0.0  # rows of zero weight carry no constraint term, with or without the scaling
    return x, y, w


def module(cls, target, reduction, convex, labels=4):
    criterion = cls(target, labels, reduction=reduction, convex_lagrangian=convex,
                    label_priors=torch.linspace(0.2, 0.5, labels)).double()
    criterion.lambdas.copy_(LAMBDAS[:labels])
    return criterion


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize(("cls", "target"), RATE_MODULES, ids=lambda v: getattr(v, "__name__", str(v)))
def test_each_labels_loss_and_gradient_are_divided_by_one_plus_its_multiplier(cls, target, reduction):
    """Against the rows of the unscaled loss, each column divided by 1 + lambda, then reduced."""
    x, y, w = data()
    logits = x.clone().requires_grad_()
    loss = module(cls, target, reduction, True)(logits, y, w)
    reference_logits = x.clone().requires_grad_()
    rows = module(cls, target, "none", False)(reference_logits, y, w) / (1.0 + LAMBDAS)
    expected = {"mean": rows.mean(), "sum": rows.sum(), "none": rows}[reduction]
    torch.testing.assert_close(loss, expected)
    loss.sum().backward()
    expected.sum().backward()
    torch.testing.assert_close(logits.grad, reference_logits.grad)
    # a multiplier at 300 would scale its label's gradient by 300 without the division
    assert logits.grad[:, 3].abs().max() < 1.0


def test_one_label_equals_the_documented_line():
    """The guide's one-liner, ``loss / (1 + criterion.lambdas.mean())``, for one label."""
    x, y, w = data(labels=1)
    plain = module(goloss.RecallAtPrecisionLoss, 0.9, "mean", False, labels=1)
    convex = module(goloss.RecallAtPrecisionLoss, 0.9, "mean", True, labels=1)
    torch.testing.assert_close(convex(x, y, w), plain(x, y, w) / (1 + plain.lambdas.mean()))


def test_the_kernel_path_is_scaled_alike():
    """At the size where the rows kernel runs, the same division as the plain ops."""
    batch = _dispatch.KERNELS["rows"].fewest
    generator = torch.Generator().manual_seed(3)
    x = torch.randn(batch, 1, generator=generator)
    y = (torch.rand(batch, 1, generator=generator) < 0.3).float()
    losses = []
    for convex in (False, True):
        criterion = goloss.RecallAtPrecisionLoss(0.8, reduction="none", convex_lagrangian=convex, label_priors=0.3)
        criterion.lambdas.fill_(4.0)
        losses.append(criterion(x, y))
    torch.testing.assert_close(losses[1], losses[0] / 5.0)


@pytest.mark.parametrize(("cls", "target"), RATE_MODULES, ids=lambda v: getattr(v, "__name__", str(v)))
def test_the_multipliers_priors_and_aux_do_not_change(cls, target):
    """The division touches the model's loss only: the dual step, the streaming priors and
    the diagnostics are those of the unscaled module."""
    x, y, w = data(seed=1)
    modules = [cls(target, 4, convex_lagrangian=convex).double() for convex in (False, True)]
    for step in range(3):
        for criterion in modules:
            criterion(x[step:] * (step + 1), y[step:], w[step:])
            criterion.dual_step()
    plain, convex = modules
    torch.testing.assert_close(convex.lambdas, plain.lambdas)
    torch.testing.assert_close(convex.current_label_priors(), plain.current_label_priors())
    for key, value in plain.last_aux.items():
        torch.testing.assert_close(convex.last_aux[key], value)


def test_arguments_and_repr():
    criterion = goloss.PrecisionAtRecallLoss(0.9, convex_lagrangian=True)
    assert "convex_lagrangian=True" in repr(criterion)
    assert "convex_lagrangian" not in repr(goloss.PrecisionAtRecallLoss(0.9))
    assert set(criterion.state_dict()) == set(goloss.PrecisionAtRecallLoss(0.9).state_dict())
    with pytest.raises(ValueError, match="convex_lagrangian must be True or False"):
        goloss.RecallAtPrecisionLoss(0.9, convex_lagrangian=1)
    with pytest.raises(ValueError, match="needs dual_mode='explicit'"):
        goloss.RecallAtPrecisionLoss(0.9, convex_lagrangian=True, dual_mode="reverse_gradient")


def test_compiles_with_fullgraph_and_matches_eager():
    x, y, w = data(seed=2)
    eager, compiled = (module(goloss.RecallAtPrecisionLoss, 0.8, "mean", True).train() for _ in range(2))
    loss = torch.compile(compiled, fullgraph=True, backend="eager")(x, y, w)
    torch.testing.assert_close(loss, eager(x, y, w))
    torch.testing.assert_close(compiled.violation_sum, eager.violation_sum)  # the recorded dual signal
