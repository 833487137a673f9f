"""Every loss under ``torch.func`` (grad, vmap, jacfwd) and ``torch.compile``.

Each transformed result is compared with an independent computation of the
same quantity: ``torch.autograd`` on the eager function for gradients,
separate eager calls (or the multi-label call) for ``vmap``, and the eager
function for ``torch.compile``. Inputs are float64, both classes are present
in every label column, and logits (also shifted by the PR-AUC biases, and
their pairwise differences for ROC-AUC) stay away from the hinge kinks at
+-1, so that every surrogate is differentiable at the test points.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any, Callable, Optional

import optree
import pytest
import torch
import torch._dynamo
from torch.func import grad, jacfwd, vmap

import goloss

DTYPE = torch.float64
B, L, A, K = 10, 3, 4, 3
RTOL, ATOL = 1e-9, 1e-11
SURROGATES = ("xent", "hinge")

PR_AUC = "precision_recall_auc_loss"
ROC_AUC = "roc_auc_loss"
TARGET_NAMES = {
    "recall_at_precision_loss": "target_precision",
    "precision_at_recall_loss": "target_recall",
    "false_positive_rate_at_true_positive_rate_loss": "target_rate",
    "true_positive_rate_at_false_positive_rate_loss": "target_rate",
}
RATE_LOSSES = tuple(TARGET_NAMES)
ALL_LOSSES = (PR_AUC, ROC_AUC, *RATE_LOSSES)
DUAL_LOSSES = (PR_AUC, *RATE_LOSSES)  # the losses with multipliers (and aux)


def close(got, expected, what=""):
    torch.testing.assert_close(got, expected, rtol=RTOL, atol=ATOL, msg=lambda m: f"{what}: {m}")


def assert_trees_close(got, expected, what=""):
    """Same pytree structure (dict keys included) and every leaf close."""
    got_leaves, got_spec = optree.tree_flatten(got, none_is_leaf=False)
    expected_leaves, expected_spec = optree.tree_flatten(expected, none_is_leaf=False)
    assert got_spec == expected_spec, f"{what}: structure {got_spec} != {expected_spec}"
    for index, (a, b) in enumerate(zip(got_leaves, expected_leaves)):
        close(a, b, f"{what} leaf {index}")


def assert_nonzero(tensor, what):
    """Guards the comparisons against both sides being trivially zero."""
    assert tensor.abs().sum() > 1e-6, f"{what} is identically zero"


# ---------------------------------------------------------------------------
# Test data


def _kink_distance(name: str, logits: torch.Tensor, labels: torch.Tensor, biases=None) -> float:
    """Smallest distance of any hinge argument of loss ``name`` from the kinks at +-1.

    The bounds in aux see ``logits`` ([B, L]); PR-AUC also ``logits + biases``;
    ROC-AUC the differences of opposite-class pairs.
    """
    arguments = [logits.reshape(-1)]
    if name == PR_AUC:
        arguments.append((logits.unsqueeze(-1) + biases).reshape(-1))
    if name == ROC_AUC:
        opposite = (labels.unsqueeze(0) != labels.unsqueeze(1))
        arguments.append((logits.unsqueeze(0) - logits.unsqueeze(1))[opposite])
    values = torch.cat(arguments)
    return float((values.abs() - 1.0).abs().min())


def draw_away_from_kinks(draw: Callable[[], Any], distance: Callable[[Any], float], margin: float = 1e-3):
    """``draw()`` again until ``distance`` of the draw exceeds ``margin``."""
    for _ in range(1000):
        value = draw()
        if distance(value) > margin:
            return value
    raise AssertionError("could not draw inputs away from the hinge kinks")  # pragma: no cover


@dataclass
class Case:
    """Inputs of one loss call; ``call`` runs the loss with them (or overrides)."""

    name: str
    surrogate: str
    params: Any
    lambdas: Optional[torch.Tensor]
    logits: torch.Tensor
    labels: torch.Tensor
    weights: Optional[torch.Tensor]
    label_priors: Optional[torch.Tensor]
    target: Any  # float, tensor [] or [L]; None for PR-AUC and ROC-AUC
    reduction: str = "none"

    @property
    def fn(self) -> Callable:
        return getattr(goloss, self.name)

    def kwargs(self, weights=None, target=None, label_priors=None) -> dict:
        """Keyword arguments of the loss, given the (possibly per-example) tensors."""
        options: dict[str, Any] = {"surrogate_type": self.surrogate, "reduction": self.reduction, "weights": weights}
        if self.name == PR_AUC:
            options["num_anchors"] = A
            options["precision_range"] = (0.1, 0.9)
        if self.name != ROC_AUC:
            options["label_priors"] = label_priors
        if self.name in TARGET_NAMES:
            options[TARGET_NAMES[self.name]] = target
        return options

    def positional(self) -> Callable:
        """The loss with every input positional: ``f(params, lambdas, logits, labels, weights, target, priors)``."""

        def f(params, lambdas, logits, labels, weights, target, label_priors):
            return self.fn(params, lambdas, logits, labels, **self.kwargs(weights, target, label_priors))

        return f

    def args(self) -> tuple:
        return (self.params, self.lambdas, self.logits, self.labels, self.weights, self.target, self.label_priors)

    def call(self, **overrides):
        values = dict(zip(("params", "lambdas", "logits", "labels", "weights", "target", "label_priors"), self.args()))
        values.update(overrides)
        return self.positional()(*values.values())


def make_case(
    name: str,
    surrogate: str,
    *,
    seed: int = 0,
    num_labels: int = L,
    batch: int = B,
    weights: bool = True,
    priors: bool = True,
    target: str = "per_label",
    single: bool = False,
    none_params: bool = False,
) -> Case:
    """Random inputs ``[B, L]`` (``[B]`` if ``single``) away from hinge kinks, both classes per label.

    ``target`` is ``"float"``, ``"scalar"`` (tensor []) or ``"per_label"`` (tensor [L]).
    Rate losses get ``params={}`` (as from ``init_loss_state``; torch.func.grad needs
    tensor leaves, so a ``None`` argument cannot be differentiated) or, with
    ``none_params``, ``None``.
    """
    generator = torch.Generator().manual_seed(seed)

    def uniform(shape, lo, hi):
        return lo + (hi - lo) * torch.rand(shape, generator=generator, dtype=DTYPE)

    labels = (torch.rand(batch, num_labels, generator=generator) < 0.5).to(DTYPE)
    labels[0], labels[1] = 1.0, 0.0  # both classes present in every column

    params, lambdas = goloss.init_loss_state(name, num_labels, num_anchors=A, dtype=DTYPE)
    biases = None
    if name == PR_AUC:
        biases = 0.5 * torch.randn(num_labels, A, generator=generator, dtype=DTYPE)
        params = {"biases": biases}
        lambdas = uniform((num_labels, A), 0.5, 1.5)
    elif name == ROC_AUC:
        params, lambdas = None, None
    else:
        params = None if none_params else {}  # both spellings of "no params"; {} is init_loss_state's
        lambdas = uniform((num_labels,), 0.5, 1.5)

    logits = draw_away_from_kinks(
        lambda: 1.5 * torch.randn(batch, num_labels, generator=generator, dtype=DTYPE),
        lambda x: _kink_distance(name, x, labels, biases),
    )

    case = Case(
        name=name,
        surrogate=surrogate,
        params=params,
        lambdas=lambdas,
        logits=logits,
        labels=labels,
        weights=uniform((batch, num_labels), 0.5, 1.5) if weights else None,
        label_priors=uniform((num_labels,), 0.2, 0.8) if priors and name != ROC_AUC else None,
        target=None,
    )
    if name in TARGET_NAMES:
        values = uniform((num_labels,), 0.3, 0.9)
        case.target = {"float": 0.7, "scalar": torch.tensor(0.6, dtype=DTYPE), "per_label": values}[target]
    if single:
        assert num_labels == 1
        squeeze = lambda t: t if not isinstance(t, torch.Tensor) or t.dim() == 0 else t.squeeze(0)  # noqa: E731
        case.logits, case.labels = case.logits[:, 0], case.labels[:, 0]
        case.weights = None if case.weights is None else case.weights[:, 0]
        case.lambdas = None if case.lambdas is None else squeeze(case.lambdas)
        case.label_priors = None if case.label_priors is None else squeeze(case.label_priors)
        case.target = squeeze(case.target)
        if name == PR_AUC:
            case.params = {"biases": biases[0]}
    return case


def detached_leaves(case: Case):
    """Fresh ``requires_grad`` copies of biases (if any), lambdas (if any) and logits."""
    params = case.params
    if case.name == PR_AUC:
        params = {"biases": case.params["biases"].detach().clone().requires_grad_()}
    lambdas = None if case.lambdas is None else case.lambdas.detach().clone().requires_grad_()
    logits = case.logits.detach().clone().requires_grad_()
    return params, lambdas, logits


def autograd_reference(case: Case):
    """Loss, aux and the autograd gradients of ``loss.sum()`` w.r.t. biases, lambdas and logits."""
    params, lambdas, logits = detached_leaves(case)
    loss, aux = case.call(params=params, lambdas=lambdas, logits=logits)
    leaves = [logits]
    if lambdas is not None:
        leaves.append(lambdas)
    if case.name == PR_AUC:
        leaves.append(params["biases"])
    grads = torch.autograd.grad(loss.sum(), leaves)
    named = dict(zip(["logits", "lambdas", "biases"][: len(grads)], grads))
    return loss.detach(), optree.tree_map(torch.Tensor.detach, aux), named


def summed(f: Callable) -> Callable:
    """``f`` with its loss summed, for ``torch.func.grad(..., has_aux=True)``."""

    def g(*args):
        loss, aux = f(*args)
        return loss.sum(), aux

    return g


# ---------------------------------------------------------------------------
# 1. torch.func.grad against torch.autograd

GRAD_CONFIGS = {
    # name: (make_case options, reduction)
    "plain": (dict(weights=False, priors=False, target="float"), "none"),
    "full": (dict(weights=True, priors=True, target="per_label"), "none"),
    "mean": (dict(weights=True, priors=False, target="scalar"), "mean"),
    "single": (dict(weights=True, priors=True, target="scalar", num_labels=1, single=True), "sum"),
}


def grad_case(name, surrogate, config) -> Case:
    options, reduction = GRAD_CONFIGS[config]
    return replace(make_case(name, surrogate, seed=1, **options), reduction=reduction)


@pytest.mark.parametrize("config", list(GRAD_CONFIGS))
@pytest.mark.parametrize("surrogate", SURROGATES)
@pytest.mark.parametrize("name", DUAL_LOSSES)
def test_grad_params_and_lambdas_match_autograd(name, surrogate, config):
    case = grad_case(name, surrogate, config)
    loss, aux, expected = autograd_reference(case)

    f = summed(case.positional())
    (grad_params, grad_lambdas), func_aux = grad(f, argnums=(0, 1), has_aux=True)(*case.args())

    close(grad_lambdas, expected["lambdas"], "d/d lambdas")
    assert_nonzero(grad_lambdas, "d/d lambdas")
    if name == PR_AUC:
        assert set(grad_params) == {"biases"}
        close(grad_params["biases"], expected["biases"], "d/d biases")
        assert_nonzero(grad_params["biases"], "d/d biases")
    else:
        assert grad_params == case.params  # None or {}: no primal parameters
    assert_trees_close(func_aux, aux, "aux under grad")


@pytest.mark.parametrize("config", list(GRAD_CONFIGS))
@pytest.mark.parametrize("surrogate", SURROGATES)
@pytest.mark.parametrize("name", ALL_LOSSES)
def test_grad_logits_matches_autograd(name, surrogate, config):
    case = grad_case(name, surrogate, config)
    loss, aux, expected = autograd_reference(case)

    f = summed(case.positional())
    grad_logits, func_aux = grad(f, argnums=2, has_aux=True)(*case.args())

    assert grad_logits.shape == case.logits.shape
    close(grad_logits, expected["logits"], "d/d logits")
    assert_nonzero(grad_logits, "d/d logits")
    assert_trees_close(func_aux, aux, "aux under grad")


@pytest.mark.parametrize("surrogate", SURROGATES)
@pytest.mark.parametrize("name", ALL_LOSSES)
def test_jacfwd_matches_autograd_jacobian(name, surrogate):
    """Forward-mode AD: the Jacobian of the [B, L] loss w.r.t. logits."""
    case = make_case(name, surrogate, seed=2, batch=6, num_labels=2)
    f = lambda logits: case.call(logits=logits)[0]  # noqa: E731
    expected = torch.autograd.functional.jacobian(f, case.logits)
    got = jacfwd(f)(case.logits)
    assert got.shape == (6, 2, 6, 2)
    close(got, expected, "jacfwd d loss / d logits")
    assert_nonzero(got, "jacobian")


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("name", ALL_LOSSES)
def test_forward_mode_derivatives_keep_the_dtype_of_float32_inputs(name, reduction):
    """``torch.func.jvp`` of a float32 loss gives a float32 tangent, equal to reverse mode's
    directional derivative (the modules' default, ``"mean"``, included)."""
    generator = torch.Generator().manual_seed(3)
    x, tangent = torch.randn(2, 16, 3, generator=generator)
    y = (torch.rand(16, 3, generator=generator) < 0.5).float()
    extra = {"num_anchors": 4} if name == PR_AUC else {TARGET_NAMES[name]: 0.7} if name in TARGET_NAMES else {}
    lambdas = torch.ones(3, 4) if name == PR_AUC else None if name == ROC_AUC else torch.ones(3)
    loss = lambda z: getattr(goloss, name)(None, lambdas, z, y, reduction=reduction, **extra)[0]  # noqa: E731
    value, derivative = torch.func.jvp(loss, (x,), (tangent,))
    assert value.dtype == derivative.dtype == torch.float32
    logits = x.clone().requires_grad_()
    weight = torch.linspace(0.5, 1.5, value.numel()).reshape(value.shape)
    grad, = torch.autograd.grad((loss(logits) * weight).sum(), logits)
    torch.testing.assert_close((derivative * weight).sum(), (grad * tangent).sum())


# ---------------------------------------------------------------------------
# 2. vmap over the label axis == the multi-label call

LABEL_CONFIGS = {
    "estimated_priors": dict(weights=False, priors=False, target="float"),
    "given_priors": dict(weights=False, priors=True, target="per_label", none_params=True),
    "weights_estimated_priors": dict(weights=True, priors=False, target="per_label"),
    "weights_given_priors": dict(weights=True, priors=True, target="scalar"),
}


@pytest.mark.parametrize("config", list(LABEL_CONFIGS))
@pytest.mark.parametrize("surrogate", SURROGATES)
@pytest.mark.parametrize("name", ALL_LOSSES)
def test_vmap_over_labels_matches_multilabel_call(name, surrogate, config):
    case = make_case(name, surrogate, seed=3, **LABEL_CONFIGS[config])
    loss, aux = case.call()
    assert loss.shape == (B, L)

    def per_label(value, dim):
        """in_dim of an input: ``dim`` for a per-label tensor, None for a shared value."""
        if isinstance(value, torch.Tensor) and value.dim() > 0:
            return dim
        return None

    in_dims = (
        {"biases": 0} if name == PR_AUC else None,
        per_label(case.lambdas, 0),
        1,
        1,
        per_label(case.weights, 1),
        per_label(case.target, 0),
        per_label(case.label_priors, 0),
    )
    vloss, vaux = vmap(case.positional(), in_dims=in_dims)(*case.args())

    assert vloss.shape == (L, B)
    close(vloss.T, loss, "loss")
    assert_nonzero(loss, "loss")
    if name == ROC_AUC:
        assert aux == {} and vaux == {}
        return
    assert set(vaux) == set(aux)
    assert set(aux) >= {"lambdas", "label_priors", "true_positives_lower_bound", "false_positives_upper_bound"}
    for key in aux:
        assert vaux[key].shape == aux[key].shape, key
        close(vaux[key], aux[key], f"aux[{key!r}]")


@pytest.mark.parametrize("name", DUAL_LOSSES)
def test_single_label_call_drops_label_axis(name):
    """The premise of the vmap tests: ``[B]`` input gives ``[]`` / ``[A]`` aux, equal to the L=1 call."""
    case = make_case(name, "xent", seed=4, num_labels=1)
    single = make_case(name, "xent", seed=4, num_labels=1, single=True)
    loss, aux = case.call()
    sloss, saux = single.call()
    close(sloss, loss[:, 0], "loss")
    for key in aux:
        assert saux[key].shape == aux[key].shape[1:], key
        close(saux[key], aux[key][0], f"aux[{key!r}]")


# ---------------------------------------------------------------------------
# 3. vmap over K targets / multipliers / models == K separate calls


def _stack_calls(results):
    losses, auxes = zip(*results)
    return torch.stack(losses), optree.tree_map(lambda *xs: torch.stack(xs), *auxes)


@pytest.mark.parametrize("surrogate", SURROGATES)
@pytest.mark.parametrize("name", RATE_LOSSES)
def test_vmap_over_targets_matches_separate_calls(name, surrogate):
    case = make_case(name, surrogate, seed=5, weights=True, priors=False, none_params=True)
    generator = torch.Generator().manual_seed(50)
    targets = 0.2 + 0.7 * torch.rand(K, generator=generator, dtype=DTYPE)
    lambdas = 0.5 + torch.rand(K, L, generator=generator, dtype=DTYPE)

    f = lambda target, lam: case.call(target=target, lambdas=lam)  # noqa: E731
    vloss, vaux = vmap(f)(targets, lambdas)

    # Separate calls, with the target as a Python float (the non-tensor code path).
    loss, aux = _stack_calls(f(float(targets[k]), lambdas[k]) for k in range(K))
    assert vloss.shape == (K, B, L)
    close(vloss, loss, "loss")
    assert_trees_close(vaux, aux, "aux")
    assert not torch.allclose(loss[0], loss[1]), "the K problems should differ"


@pytest.mark.parametrize("surrogate", SURROGATES)
def test_vmap_over_pr_auc_multipliers_and_biases_matches_separate_calls(surrogate):
    # precision_range is a Python-level option (it sets the anchors), so it is not vmapped;
    # the K problems are K (biases, lambdas) states instead.
    case = make_case(PR_AUC, surrogate, seed=6)
    generator = torch.Generator().manual_seed(60)
    biases = draw_away_from_kinks(
        lambda: 0.3 * torch.randn(K, L, A, generator=generator, dtype=DTYPE),
        lambda b: min(_kink_distance(PR_AUC, case.logits, case.labels, b[k]) for k in range(K)),
    )
    lambdas = 0.5 + torch.rand(K, L, A, generator=generator, dtype=DTYPE)

    f = lambda params, lam: case.call(params=params, lambdas=lam)  # noqa: E731
    vloss, vaux = vmap(f)({"biases": biases}, lambdas)
    loss, aux = _stack_calls(f({"biases": biases[k]}, lambdas[k]) for k in range(K))
    assert vloss.shape == (K, B, L)
    close(vloss, loss, "loss")
    assert_trees_close(vaux, aux, "aux")
    assert not torch.allclose(loss[0], loss[1]), "the K problems should differ"


@pytest.mark.parametrize("surrogate", SURROGATES)
@pytest.mark.parametrize("name", ALL_LOSSES)
def test_vmap_over_models_matches_separate_calls(name, surrogate):
    """K models' logits [K, B, L] against shared labels, weights and state."""
    case = make_case(name, surrogate, seed=7)
    generator = torch.Generator().manual_seed(70)
    biases = case.params["biases"] if name == PR_AUC else None
    logits = draw_away_from_kinks(
        lambda: case.logits + 0.1 * torch.randn(K, B, L, generator=generator, dtype=DTYPE),
        lambda x: min(_kink_distance(name, x[k], case.labels, biases) for k in range(K)),
    )

    f = lambda x: case.call(logits=x)  # noqa: E731
    vloss, vaux = vmap(f)(logits)
    loss, aux = _stack_calls(f(logits[k]) for k in range(K))
    close(vloss, loss, "loss")
    assert_trees_close(vaux, aux, "aux")


@pytest.mark.parametrize("surrogate", SURROGATES)
@pytest.mark.parametrize("name", RATE_LOSSES)
def test_vmap_of_grad_over_targets_matches_autograd(name, surrogate):
    """Per-target dual gradients, ``vmap(grad)``, as in a sweep over K targets."""
    case = make_case(name, surrogate, seed=8)
    generator = torch.Generator().manual_seed(80)
    targets = 0.2 + 0.7 * torch.rand(K, generator=generator, dtype=DTYPE)
    lambdas = 0.5 + torch.rand(K, L, generator=generator, dtype=DTYPE)

    def f(lam, logits, target):
        return case.call(lambdas=lam, logits=logits, target=target)[0].sum()

    got_lam, got_logits = vmap(grad(f, argnums=(0, 1)), in_dims=(0, None, 0))(lambdas, case.logits, targets)
    for k in range(K):
        lam = lambdas[k].clone().requires_grad_()
        logits = case.logits.clone().requires_grad_()
        expected = torch.autograd.grad(f(lam, logits, float(targets[k])), (lam, logits))
        close(got_lam[k], expected[0], f"d/d lambdas [{k}]")
        close(got_logits[k], expected[1], f"d/d logits [{k}]")


# ---------------------------------------------------------------------------
# 4. torch.compile(fullgraph=True) against eager


@pytest.fixture
def fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def check_compiled(case: Case, backend: str):
    """Compiled loss/aux and autograd gradients through the compiled function equal eager ones."""
    loss, aux, expected = autograd_reference(case)
    compiled = torch.compile(case.positional(), fullgraph=True, backend=backend)

    params, lambdas, logits = detached_leaves(case)
    args = list(case.args())
    args[:3] = [params, lambdas, logits]
    closs, caux = compiled(*args)
    close(closs, loss, f"compiled ({backend}) loss")
    assert_trees_close(optree.tree_map(torch.Tensor.detach, caux), aux, f"compiled ({backend}) aux")

    leaves = [logits] + ([lambdas] if lambdas is not None else []) + ([params["biases"]] if case.name == PR_AUC else [])
    grads = torch.autograd.grad(closs.sum(), leaves)
    for key, value in zip(["logits", "lambdas", "biases"], grads):
        close(value, expected[key], f"compiled ({backend}) d/d {key}")
        assert_nonzero(value, f"d/d {key}")


@pytest.mark.parametrize(
    "surrogate,config", [("xent", "full"), ("hinge", "single")], ids=["xent-full", "hinge-single"]
)
@pytest.mark.parametrize("name", ALL_LOSSES)
def test_compile_aot_eager_matches_eager(name, surrogate, config, fresh_dynamo):
    check_compiled(grad_case(name, surrogate, config), "aot_eager")


@pytest.mark.parametrize("name", ["recall_at_precision_loss", PR_AUC])
def test_compile_inductor_matches_eager(name, fresh_dynamo):
    """The default backend. Measured on 2 CPU cores: ~18 s for the first case with a cold
    inductor cache (C++ toolchain warm-up), ~5 s for the second, ~2 s each once cached."""
    start = time.perf_counter()
    check_compiled(grad_case(name, "xent", "full"), "inductor")
    assert time.perf_counter() - start < 120, "inductor compilation unexpectedly slow"


@pytest.mark.parametrize("name", ALL_LOSSES)
def test_compile_dynamic_batch_sizes_match_eager(name, fresh_dynamo):
    """One ``dynamic=True`` compiled function on batches of 10, 7 and 5 examples (symbolic shapes)."""
    compiled = None
    for seed, batch in ((1, 10), (2, 7), (3, 5)):
        case = make_case(name, "hinge", seed=seed, batch=batch)
        compiled = compiled or torch.compile(case.positional(), fullgraph=True, backend="aot_eager", dynamic=True)
        loss, aux, expected = autograd_reference(case)
        params, lambdas, logits = detached_leaves(case)
        closs, caux = compiled(params, lambdas, logits, *case.args()[3:])
        close(closs, loss, f"B={batch} loss")
        assert_trees_close(optree.tree_map(torch.Tensor.detach, caux), aux, f"B={batch} aux")
        (grad_logits,) = torch.autograd.grad(closs.sum(), logits)
        close(grad_logits, expected["logits"], f"B={batch} d/d logits")


@pytest.mark.parametrize("name", ALL_LOSSES)
def test_compile_of_func_grad_matches_autograd(name, fresh_dynamo):
    """``torch.compile(torch.func.grad(...))``: the transform traced by dynamo."""
    case = make_case(name, "xent", seed=13)
    _, aux, expected = autograd_reference(case)
    argnums = 2 if name == ROC_AUC else ((0, 1, 2) if name == PR_AUC else (1, 2))
    compiled = torch.compile(
        grad(summed(case.positional()), argnums=argnums, has_aux=True), fullgraph=True, backend="aot_eager"
    )
    grads, caux = compiled(*case.args())
    assert_trees_close(caux, aux, "aux")
    if name == ROC_AUC:
        close(grads, expected["logits"], "d/d logits")
        return
    if name == PR_AUC:
        close(grads[0]["biases"], expected["biases"], "d/d biases")
        grads = grads[1:]
    close(grads[0], expected["lambdas"], "d/d lambdas")
    close(grads[1], expected["logits"], "d/d logits")


# ---------------------------------------------------------------------------
# 5. dual_ascent_step and reverse_gradient under torch.func


def _dual_state():
    """A pytree of multipliers for two losses, and their gradients from torch.func.grad."""
    rate = make_case("recall_at_precision_loss", "xent", seed=9)
    auc = make_case(PR_AUC, "hinge", seed=10)

    def objective(lambdas):
        loss_rate, _ = rate.call(lambdas=lambdas["rate"])
        loss_auc, _ = auc.call(lambdas=lambdas["auc"])
        return loss_rate.mean() + loss_auc.mean()

    lambdas = {"rate": rate.lambdas, "auc": auc.lambdas}
    return objective, lambdas


DUAL_LR = 5.0


def _dual_state_with_projection():
    """As ``_dual_state``, with the multipliers of negative gradients set to half a step
    (``-lr * g / 2``), so that the ascent step projects them onto 0. The objective is
    linear in the multipliers, so the gradients do not change."""
    objective, lambdas = _dual_state()
    grads = grad(objective)(lambdas)
    assert any(bool((g < 0).any()) for g in grads.values()), "need a negative dual gradient"
    lambdas = {k: torch.where(grads[k] < 0, -0.5 * DUAL_LR * grads[k], lambdas[k]) for k in lambdas}
    return objective, lambdas


def test_dual_ascent_step_on_grad_pytree_matches_autograd():
    objective, lambdas = _dual_state_with_projection()
    grads = grad(objective)(lambdas)

    # The same gradients by autograd.
    leaves = {key: value.clone().requires_grad_() for key, value in lambdas.items()}
    expected = dict(zip(leaves, torch.autograd.grad(objective(leaves), list(leaves.values()))))
    assert_trees_close(grads, expected, "grad pytree")

    lr = DUAL_LR
    new = goloss.dual_ascent_step(lambdas, grads, lr)
    assert set(new) == set(lambdas)
    for key in lambdas:
        unprojected = lambdas[key] + lr * expected[key]
        close(new[key], torch.where(unprojected > 0, unprojected, torch.zeros_like(unprojected)), key)
    clipped = sum(int((lambdas[k] + lr * expected[k] < 0).sum()) for k in lambdas)
    kept = sum(int((lambdas[k] + lr * expected[k] > 0).sum()) for k in lambdas)
    assert clipped > 0 and kept > 0, "the test should exercise both sides of the projection"


def test_dual_ascent_step_differentiable_under_grad():
    """d/d(lambdas, grads) of a function of the projected step, torch.func vs autograd."""
    objective, lambdas = _dual_state_with_projection()
    grads = grad(objective)(lambdas)
    lr = DUAL_LR

    def after_step(lam, g):
        new = goloss.dual_ascent_step(lam, g, lr)
        return objective(new)

    got = grad(after_step, argnums=(0, 1))(lambdas, grads)
    lam_leaves = {k: v.clone().requires_grad_() for k, v in lambdas.items()}
    g_leaves = {k: v.clone().requires_grad_() for k, v in grads.items()}
    flat = list(lam_leaves.values()) + list(g_leaves.values())
    expected = torch.autograd.grad(after_step(lam_leaves, g_leaves), flat)
    keys = list(lambdas)
    assert_trees_close(got, (dict(zip(keys, expected[:2])), dict(zip(keys, expected[2:]))), "d step")


def test_dual_helpers_under_compile(fresh_dynamo):
    objective, lambdas = _dual_state_with_projection()
    grads = grad(objective)(lambdas)
    step = torch.compile(lambda lam, g: goloss.dual_ascent_step(lam, g, DUAL_LR), fullgraph=True, backend="aot_eager")
    assert_trees_close(step(lambdas, grads), goloss.dual_ascent_step(lambdas, grads, DUAL_LR), "compiled step")

    reverse = torch.compile(lambda v: goloss.reverse_gradient(v, 0.1), fullgraph=True, backend="aot_eager")
    v = torch.tensor([-1.5, -0.5, 0.25, 2.0], dtype=DTYPE, requires_grad=True)
    out = reverse(v)
    close(out, v.detach().abs(), "compiled reverse_gradient value")
    weights = torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=DTYPE)
    (d_v,) = torch.autograd.grad((weights * out).sum(), v)
    close(d_v, -0.1 * v.detach().sign() * weights, "compiled reverse_gradient grad")


def test_dual_ascent_step_under_vmap_matches_separate_calls():
    generator = torch.Generator().manual_seed(11)
    lambdas = {
        "a": torch.rand(K, L, generator=generator, dtype=DTYPE),
        "b": (torch.rand(K, L, A, generator=generator, dtype=DTYPE),),
    }
    grads = optree.tree_map(lambda t: torch.randn(t.shape, generator=generator, dtype=DTYPE), lambdas)
    got = vmap(lambda lam, g: goloss.dual_ascent_step(lam, g, 0.5))(lambdas, grads)
    index = lambda tree, k: optree.tree_map(lambda t: t[k], tree)  # noqa: E731
    expected = optree.tree_map(
        lambda *xs: torch.stack(xs),
        *[goloss.dual_ascent_step(index(lambdas, k), index(grads, k), 0.5) for k in range(K)],
    )
    assert_trees_close(got, expected, "vmapped dual_ascent_step")
    projected = optree.tree_map(lambda lam, g: torch.maximum(lam + 0.5 * g, torch.zeros_like(lam)), lambdas, grads)
    assert_trees_close(got, projected, "max(0, lambdas + lr * grads)")
    assert (got["a"] == 0).any() and (got["a"] > 0).any()


@pytest.mark.parametrize("name", DUAL_LOSSES)
def test_reverse_gradient_under_grad_and_vmap(name):
    """Gradient w.r.t. the raw variable v is -0.1 * sign(v) * d loss / d lambda at lambda = |v|."""
    case = make_case(name, "xent", seed=12)
    factor = 0.1
    generator = torch.Generator().manual_seed(120)
    variables = (0.5 + torch.rand((K, *case.lambdas.shape), generator=generator, dtype=DTYPE)) * torch.where(
        torch.rand((K, *case.lambdas.shape), generator=generator) < 0.5, -1.0, 1.0
    ).to(DTYPE)

    def through_reversal(v):
        return case.call(lambdas=goloss.reverse_gradient(v, factor))[0].sum()

    values = vmap(lambda v: goloss.reverse_gradient(v, factor))(variables)
    close(values, variables.abs(), "reverse_gradient value")

    got = vmap(grad(through_reversal))(variables)
    for k in range(K):
        lam = variables[k].abs().requires_grad_()
        (d_lambda,) = torch.autograd.grad(case.call(lambdas=lam)[0].sum(), lam)
        close(got[k], -factor * variables[k].sign() * d_lambda, f"d/d v [{k}]")
        assert_nonzero(got[k], "d/d v")
        # and autograd straight through reverse_gradient agrees
        v = variables[k].clone().requires_grad_()
        (d_v,) = torch.autograd.grad(through_reversal(v), v)
        close(got[k], d_v, f"autograd d/d v [{k}]")
