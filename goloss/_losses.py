"""The six global-objective losses as pure functions ``f(params, lambdas, logits, labels) -> (loss, aux)``.

Notation, per label: ``x`` logits, ``y`` labels in {0, 1}, ``w`` example
weights, ``lam`` the Lagrange multiplier, ``t`` the target, ``p`` the label
prior, ``L+`` / ``L-`` the surrogate on positives / negatives and ``s`` its
value at the threshold (``log 2`` for xent, 1 for hinge). Each loss is the
per-example Lagrangian of Eban et al. (2017); its constraint term is added to
every row, so with ``reduction="sum"`` it scales with the batch size, and with
``"mean"`` it does not.

Reference: Eban et al., *Scalable Learning of Non-Decomposable Objectives*,
AISTATS 2017 (arXiv:1608.04802); TensorFlow ``global_objectives``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional, Union, cast
from collections.abc import Callable, Mapping, Sequence

import torch

from ._anchor_sum import anchor_sum
from ._anchors import range_to_anchors_and_delta
from ._math import (
    PRECISION_AT_RECALL,
    RECALL_AT_PRECISION,
    TPR_AT_FPR,
    RateLagrangian,
    batch_label_prior,
    bounds_from_sums,
    indicator_scale,
    row_weights,
    times,
)
from ._roc_auc import roc_auc_elementwise
from ._strict import ThresholdCounts, assemble_counts, counts_from_batch, counts_rate_and_violation
from ._surrogate_rows import surrogate_rows
from ._surrogate_sums import surrogate_sums
from ._validation import (
    REDUCTIONS,
    TensorLike,
    as_batch_by_label,
    as_tensor,
    broadcast_to,
    check_choice,
    check_logits_and_labels,
    check_num_labels,
    check_unit_interval,
    check_values,
    reduce,
    value_checks_active,
)

Params = Optional[Mapping[str, torch.Tensor]]
Aux = dict
#: What a module passes as ``label_priors``: ``(sum w y [L], sum w [L] or a number) -> priors [L]``.
PriorSource = Callable[[torch.Tensor, Any], torch.Tensor]


@dataclass
class ModuleCall:
    """A module's forward as the entry points see it: its ``num_labels``, and ``probes`` (device
    tensors of one floating dtype) read back with the one value check of the logits and labels;
    their values, flattened, land in ``read`` (empty without value checks)."""

    num_labels: int
    probes: Sequence[torch.Tensor] = ()
    read: list = field(default_factory=list)


class Batch:
    """Validated inputs of one call, brought to ``[B, L]``, with the per-label counts every loss reads.

    ``module`` is a module's call (:class:`ModuleCall`): the label count is checked, and the module's own state
    (multipliers, targets, priors) is trusted (its values were checked when set) and the aux
    keeps its ``L`` axis for ``[B]`` input. Without weights, ``active`` is 1, ``active_rows``
    and ``weight_sum`` are the number ``B``, and the positives are formed on first use.
    """

    active: Union[torch.Tensor, float]
    active_rows: Union[torch.Tensor, float]
    weight_sum: Union[torch.Tensor, float]
    positives: Optional[torch.Tensor]
    _on_negatives: Optional[torch.Tensor]

    def __init__(self, logits, labels, weights, surrogate_type, reduction, module: Optional[ModuleCall] = None):
        self.scale = indicator_scale(surrogate_type)  # validates surrogate_type
        check_choice("reduction", reduction, REDUCTIONS)
        self.shape = logits.shape
        self.reduction = reduction
        self.hinge = surrogate_type == "hinge"
        self.module = module is not None
        self.weighted = weights is not None  # without weights, w = 1 is never multiplied in
        self.x, self.y, self._w = as_batch_by_label(logits, labels, weights, ones_for_none=False,
                                                    value_checks=module is None)
        self.num_labels = self.x.shape[1]
        if module is not None:
            check_num_labels(self.x, module.num_labels, logits)
            module.read = check_logits_and_labels(self.x, self.y, module.probes)
        rows = float(self.x.shape[0])
        # aux["objective"] and aux["violation"] are of the reduced loss (of the sum for "none").
        self.norm = float(self.x.numel()) if reduction == "mean" else 1.0
        if self.weighted:
            self.active = (self.w > 0).to(self.x.dtype)  # zero weights mask examples out
            self.on_positives = self.w * self.y
            self._on_negatives = self.w - self.on_positives
            self.positives, self.active_rows, self.weight_sum = (
                self.on_positives.sum(0), self.active.sum(0), self.w.sum(0)
            )
        else:
            self.active, self.on_positives, self._on_negatives, self.positives = 1.0, self.y, None, None
            self.active_rows, self.weight_sum = rows, rows


    @property
    def on_negatives(self) -> torch.Tensor:
        """``w * (1 - y)``, ``[B, L]`` (formed on first use without weights)."""
        if self._on_negatives is None:
            self._on_negatives = torch.rsub(self.y, 1.0)
        return self._on_negatives

    @property
    def w(self) -> torch.Tensor:
        """The weights, ``[B, L]`` (expanded ones without weights)."""
        if self._w is None:
            self._w = torch.ones((), dtype=self.x.dtype, device=self.x.device).expand(self.x.shape)
        return self._w

    def label_counts(self) -> torch.Tensor:
        """``sum w * y``, ``[L]``."""
        if self.positives is None:
            self.positives = self.y.sum(0)
        return self.positives

    def per_label(
        self, name: str, value: TensorLike, extra: tuple[int, ...] = (), unit_interval: bool = False,
        non_negative: bool = False,
    ) -> torch.Tensor:
        """``value`` broadcast to ``[L, *extra]`` in the logits' dtype, named in errors, its values
        checked (finite; in [0, 1] or >= 0 if asked) unless it is a module's own state."""
        if unit_interval and not self.module:
            check_unit_interval(name, value)
        shape = (self.num_labels, *extra)
        expected = "[] or [L]" if not extra else "[A], [1, A] or [L, A]"
        value = as_tensor(value, self.x)
        if not (self.module or unit_interval):
            check_values(name, value, "finite and >= 0" if non_negative else "finite", 0.0 if non_negative else None)
        return broadcast_to(name, value, shape, f"{expected} with L, A = {shape}")

    def priors(self, label_priors: Union[None, TensorLike, PriorSource]) -> torch.Tensor:
        """``[L]``: the one-batch estimate (None), a module's streaming estimate (a callable of the
        batch's label counts), or the given priors."""
        if label_priors is None:
            return batch_label_prior(self.label_counts(), self.weight_sum)
        if callable(label_priors):
            return label_priors(self.label_counts(), self.weight_sum).to(self.x.dtype)
        return self.per_label("label_priors", label_priors, unit_interval=True)

    def counts_aux(self, target, constraint: str, counts: Optional[ThresholdCounts] = None) -> dict:
        """The strict terms of aux: the counts at the threshold (no gradient; formed here unless
        given), the constrained rate and its deficit to ``target`` (``strict_violation``)."""
        if counts is None:
            counts = counts_from_batch(self.x, self.on_positives, self._w, self.label_counts(), self.weight_sum)
        rate, violation = counts_rate_and_violation(counts, target, constraint)
        return {"strict_violation": violation, constraint: rate, **counts._asdict()}

    def finish(self, loss: torch.Tensor, aux: dict) -> tuple[torch.Tensor, Aux]:
        """Loss back to the input's shape and reduced (unless already reduced); aux without the
        L axis for ``[B]`` input to a function."""
        if loss.dim() > 0:
            loss = reduce(loss.reshape(self.shape), self.reduction)
        if len(self.shape) == 1 and not self.module:
            aux = {key: value.squeeze(0) for key, value in aux.items()}
        return loss, aux


def _check_no_params(params: Params, name: str) -> None:
    if params:
        raise ValueError(f"{name} has no primal parameters: params must be None or {{}}, got keys {list(params)}")


def _aux(batch: Batch, lam, p, sums, objective, violation, target, constraint: str, biases=None, counts=None) -> dict:
    """The aux of a constrained loss: multipliers (and biases), priors, the bounds from the
    per-label surrogate ``sums``, the Lagrangian's objective and violation, the strict terms."""
    tp_lower, fp_upper = bounds_from_sums(batch.label_counts(), sums[0], sums[1], batch.scale)
    return {
        "lambdas": lam,
        **({} if biases is None else {"biases": biases}),
        "label_priors": p,
        "true_positives_lower_bound": tp_lower,
        "false_positives_upper_bound": fp_upper,
        "objective": objective,
        "violation": violation,
        **batch.counts_aux(target, constraint, counts),
    }


def rate_loss(
    lagrangian: RateLagrangian, name: str, params: Params, lambdas: TensorLike, logits: torch.Tensor,
    labels: torch.Tensor, target: TensorLike, target_name: str, *, weights: Optional[TensorLike],
    label_priors: Union[None, TensorLike, PriorSource], surrogate_type: str, reduction: str,
    module: Optional[ModuleCall] = None, convex: bool = False,
) -> tuple[torch.Tensor, Aux]:
    """The entry point of the four rate losses, functions and modules alike (``module``: a
    module's call, see :class:`Batch`; ``convex``: each label's loss divided by ``1 + lam``,
    ``lam`` without gradient, the model's part of the proxy-Lagrangian; aux unchanged).

    The objective and the violation (``dL/dlam`` of the reduced loss; of the sum for
    ``reduction="none"``) are formed from per-label batch sums, the same sums as the bounds;
    with ``reduction="mean"`` or ``"sum"`` the loss is ``sum(objective + lam * violation)``, so
    no ``[B, L]`` Lagrangian is built and a ``vmap`` over targets or multipliers only batches
    ``[L]``-sized work. With ``"none"`` the rows and the sums come from one kernel
    (:func:`~goloss._surrogate_rows.surrogate_rows`). The constraint term is added to rows of
    non-zero weight only.
    """
    _check_no_params(params, name)
    batch = Batch(logits, labels, weights, surrogate_type, reduction, module)
    lam = batch.per_label("lambdas", lambdas, non_negative=True)
    t = batch.per_label(target_name, target, unit_interval=True)
    p = batch.priors(label_priors)
    a, b, k = lagrangian.coefficients(t, p, batch.scale)
    convex_scale = 1.0 / (1.0 + lam.detach()) if convex else 1.0
    if reduction == "none":
        alpha, beta = row_weights(lagrangian, lam, a, b)
        coefficients = (times(convex_scale, alpha), times(convex_scale, beta), times(convex_scale, lam * k))
        loss, s_positive, s_negative = surrogate_rows(  # without weights, d = 1 - y stays implicit
            batch.x, batch.on_positives, batch.on_negatives if batch.weighted else None, *coefficients,
            batch.active if batch.weighted else None, batch.hinge,
        )
    else:
        on_negatives = batch.on_negatives if batch.weighted else None  # None: 1 - y, implicit in the kernel
        s_positive, s_negative = surrogate_sums(batch.x, batch.on_positives, on_negatives, batch.hinge)
    objective = s_positive if lagrangian.objective_on_positives else s_negative
    violation = cast(torch.Tensor, times(a, s_positive) + times(b, s_negative) + k * batch.active_rows)
    if reduction != "none":  # few graph nodes on the loss's path: [L] terms, normalised, summed
        # (normalised before the sum: under torch.func.jvp a 0-dim tensor divided by a Python
        # float has a float64 tangent, torch 2.13)
        loss = cast(torch.Tensor, times(convex_scale, torch.addcmul(objective, lam, violation)))
        loss = (loss / batch.norm if batch.norm != 1.0 else loss).sum()
    if batch.norm != 1.0:
        objective, violation = objective / batch.norm, violation / batch.norm
    aux = _aux(batch, lam, p, (s_positive, s_negative), objective, violation, t, lagrangian.constraint)
    return batch.finish(loss, aux)


def recall_at_precision_loss(
    params: Params,
    lambdas: TensorLike,
    logits: torch.Tensor,
    labels: torch.Tensor,
    *,
    target_precision: TensorLike,
    weights: Optional[TensorLike] = None,
    label_priors: Optional[TensorLike] = None,
    surrogate_type: str = "xent",
    reduction: str = "none",
) -> tuple[torch.Tensor, Aux]:
    """Maximise recall subject to precision >= ``target_precision``.

    .. math::

       \\ell = w\\,[(1 + \\lambda(1 - t))\\,y\\,L^+(x) + \\lambda t\\,(1 - y)\\,L^-(x)] - \\lambda (1 - t)\\,p\\,s

    per example, where ``x`` is its logit, ``y`` its label, ``w`` its weight, ``t`` the target,
    ``lambda`` the multiplier, ``p`` the label prior, ``L+`` / ``L-`` the surrogate losses of a
    positive / a negative (``softplus(-x)`` / ``softplus(x)`` for ``"xent"``, ``max(0, 1 - x)``
    / ``max(0, 1 + x)`` for ``"hinge"``) and ``s`` their value at 0 (``log 2`` or 1). The term
    in ``p s`` is added to every row of non-zero weight.

    Args:
      params: None or ``{}`` (no primal variables).
      lambdas: multipliers, ``[]`` or ``[L]`` (``[]`` per label under vmap).
      logits: ``[B]`` or ``[B, L]``.
      labels: shape of ``logits``, values in {0, 1}.
      target_precision: number, ``[]`` or ``[L]``, in [0, 1].
      weights: None, number, ``[B]``, ``[B, 1]`` or ``[B, L]``.
      label_priors: ``[L]`` (or a number), or None for the batch estimate
        ``(1 + sum w*y) / (2 + sum w)``.
      surrogate_type: ``"xent"`` or ``"hinge"``.
      reduction: ``"none"`` (shape of ``logits``), ``"mean"`` or ``"sum"``.

    Returns:
      ``(loss, aux)``: ``loss`` has the shape of ``logits`` (``reduction="none"``) or is ``[]``;
      ``aux`` holds, each ``[L]`` (``[]`` for ``[B]`` input): ``lambdas``, ``label_priors``,
      ``true_positives_lower_bound``, ``false_positives_upper_bound``, ``objective`` and
      ``violation`` (``dL/dlambda``; the reduced loss is ``sum(objective + lambdas *
      violation)``), ``strict_violation`` (the rate deficit at logit 0, > 0 while violated), the
      constrained rate at logit 0 (``precision`` here; ``recall`` or ``false_positive_rate`` in
      the other rate losses), and the counts behind it, ``true_positives``,
      ``false_positives``, ``positives`` and ``negatives``.

    Example:
      >>> import torch, goloss
      >>> logits, labels = torch.tensor([2.0, -1.0, 0.5]), torch.tensor([1.0, 0.0, 0.0])
      >>> loss, aux = goloss.recall_at_precision_loss(None, torch.tensor(1.0), logits, labels,
      ...                                             target_precision=0.8, reduction="mean")
      >>> loss.shape, aux["label_priors"]
      (torch.Size([]), tensor(0.4000))
    """
    return rate_loss(
        RECALL_AT_PRECISION, "recall_at_precision_loss", params, lambdas, logits, labels,
        target_precision, "target_precision", weights=weights, label_priors=label_priors, surrogate_type=surrogate_type,
        reduction=reduction,
    )


def precision_at_recall_loss(
    params: Params,
    lambdas: TensorLike,
    logits: torch.Tensor,
    labels: torch.Tensor,
    *,
    target_recall: TensorLike,
    weights: Optional[TensorLike] = None,
    label_priors: Optional[TensorLike] = None,
    surrogate_type: str = "xent",
    reduction: str = "none",
) -> tuple[torch.Tensor, Aux]:
    """Maximise precision subject to recall >= ``target_recall``.

    .. math::

       \\ell = w\\,[\\lambda\\,y\\,L^+(x) + (1 - y)\\,L^-(x)] + \\lambda\\,p\\,(t - 1)\\,s

    Symbols, args and returns as in :func:`recall_at_precision_loss`, with
    ``target_recall`` (number, ``[]`` or ``[L]``) as the target.
    """
    return rate_loss(
        PRECISION_AT_RECALL, "precision_at_recall_loss", params, lambdas, logits, labels,
        target_recall, "target_recall", weights=weights, label_priors=label_priors, surrogate_type=surrogate_type,
        reduction=reduction,
    )


def false_positive_rate_at_true_positive_rate_loss(
    params: Params,
    lambdas: TensorLike,
    logits: torch.Tensor,
    labels: torch.Tensor,
    *,
    target_rate: TensorLike,
    weights: Optional[TensorLike] = None,
    label_priors: Optional[TensorLike] = None,
    surrogate_type: str = "xent",
    reduction: str = "none",
) -> tuple[torch.Tensor, Aux]:
    """Minimise the false positive rate subject to TPR (recall) >= ``target_rate``.

    Equal to :func:`precision_at_recall_loss` with ``target_recall=target_rate``
    (at fixed recall, fewer false positives is higher precision). Args and
    returns as in :func:`recall_at_precision_loss`.
    """
    return rate_loss(
        PRECISION_AT_RECALL, "false_positive_rate_at_true_positive_rate_loss", params, lambdas, logits, labels,
        target_rate, "target_rate", weights=weights, label_priors=label_priors, surrogate_type=surrogate_type,
        reduction=reduction,
    )


def true_positive_rate_at_false_positive_rate_loss(
    params: Params,
    lambdas: TensorLike,
    logits: torch.Tensor,
    labels: torch.Tensor,
    *,
    target_rate: TensorLike,
    weights: Optional[TensorLike] = None,
    label_priors: Optional[TensorLike] = None,
    surrogate_type: str = "xent",
    reduction: str = "none",
) -> tuple[torch.Tensor, Aux]:
    """Maximise the true positive rate subject to FPR <= ``target_rate``.

    .. math::

       \\ell = w\\,[y\\,L^+(x) + \\lambda\\,(1 - y)\\,L^-(x)] - \\lambda\\,t\\,(1 - p)\\,s

    Symbols, args and returns as in :func:`recall_at_precision_loss`, with
    ``target_rate`` (number, ``[]`` or ``[L]``) as the target.
    """
    return rate_loss(
        TPR_AT_FPR, "true_positive_rate_at_false_positive_rate_loss", params, lambdas, logits, labels,
        target_rate, "target_rate", weights=weights, label_priors=label_priors, surrogate_type=surrogate_type,
        reduction=reduction,
    )


def precision_recall_auc_loss(
    params: Params,
    lambdas: TensorLike,
    logits: torch.Tensor,
    labels: torch.Tensor,
    *,
    precision_range: Sequence[float] = (0.0, 1.0),
    num_anchors: int = 20,
    weights: Optional[TensorLike] = None,
    label_priors: Optional[TensorLike] = None,
    surrogate_type: str = "xent",
    reduction: str = "none",
) -> tuple[torch.Tensor, Aux]:
    """Maximise the area under the precision-recall curve over ``precision_range``.

    A Riemann sum of recall-at-precision losses at ``A = num_anchors`` anchors
    ``a_k`` (see :func:`range_to_anchors_and_delta`), each with its own bias
    ``b_k`` and multiplier ``lambda_k``, normalised so that a perfect scorer has
    AUC 1 (``(lo, hi) = precision_range``, ``delta`` the anchors' spacing, the other symbols
    as in :func:`recall_at_precision_loss`):

    .. math::

       \\ell = \\frac{\\delta}{hi - lo - \\delta} \\sum_k \\Big(
       w\\,[(1 + \\lambda_k(1 - a_k))\\,y\\,L^+(x + b_k) + \\lambda_k a_k\\,(1 - y)\\,L^-(x + b_k)]
       - \\lambda_k (1 - a_k)\\,p\\,s \\Big)

    Args:
      params: ``{"biases": [L, A]}`` (``[A]`` broadcasts), or None for zero biases.
      lambdas: multipliers ``[L, A]`` (``[A]`` broadcasts).
      logits: ``[B]`` or ``[B, L]``.
      labels: shape of ``logits``, values in {0, 1}.
      precision_range: ``(lo, hi)`` with ``0 <= lo < hi <= 1``.
      num_anchors: ``A``, a positive integer.
      weights, label_priors, surrogate_type, reduction: as in
        :func:`recall_at_precision_loss`.

    Returns:
      ``(loss, aux)``: aux has ``lambdas`` and ``biases`` ``[L, A]``, ``label_priors`` and
      ``objective`` ``[L]``, the bounds ``[L]`` computed from ``logits`` without the biases, as
      in the original, and per anchor ``[L, A]`` the ``violation`` (``dL/dlambda``), the
      ``strict_violation``, the ``precision`` at ``logit + b_k > 0`` and its counts (the ``L``
      axis is dropped for ``[B]`` input).
    """
    return pr_auc_loss(
        params, lambdas, logits, labels, precision_range=precision_range, num_anchors=num_anchors, weights=weights,
        label_priors=label_priors, surrogate_type=surrogate_type, reduction=reduction,
    )


def pr_auc_loss(
    params: Params, lambdas: TensorLike, logits: torch.Tensor, labels: torch.Tensor, *,
    precision_range: Sequence[float], num_anchors: int, weights: Optional[TensorLike],
    label_priors: Union[None, TensorLike, PriorSource], surrogate_type: str, reduction: str,
    module: Optional[ModuleCall] = None,
) -> tuple[torch.Tensor, Aux]:
    """The entry point of PR-AUC, function and module alike: recall at precision ``a_k`` per anchor
    (:data:`~goloss._math.RECALL_AT_PRECISION`'s coefficients with ``t = a_k``), normalised.

    ``aux["objective"]`` is ``[L]`` and ``aux["violation"]`` (``dL/dlam``, of the reduced loss)
    ``[L, A]``, formed from the per-anchor batch sums that the anchor sum returns.
    """
    anchor_list, delta = range_to_anchors_and_delta(precision_range, num_anchors)
    lo, hi = float(precision_range[0]), float(precision_range[1])
    unknown = set(params or {}) - {"biases"}
    if unknown:
        raise ValueError(f"precision_recall_auc_loss params has one key, 'biases'; got unknown keys {sorted(unknown)}")
    batch = Batch(logits, labels, weights, surrogate_type, reduction, module)
    biases = (params or {}).get("biases")
    biases = batch.per_label("biases", 0.0 if biases is None else biases, (num_anchors,))
    lam = batch.per_label("lambdas", lambdas, (num_anchors,), non_negative=True)
    anchors = torch.tensor(anchor_list, dtype=batch.x.dtype, device=batch.x.device)
    p = batch.priors(label_priors)
    normaliser = delta / (hi - lo - delta)
    a, b, k = RECALL_AT_PRECISION.coefficients(anchors, p.unsqueeze(-1), batch.scale)  # [A], [A], [L, A]
    weighted, positive_sums, negative_sums, true_positives, false_positives = anchor_sum(
        batch.x, batch.y, batch.w, biases, lam, anchors, batch.hinge)
    counts = assemble_counts(true_positives, false_positives, batch.label_counts(), batch.weight_sum)
    loss = (weighted + (lam * k).sum(-1) * batch.active) * normaliser
    scale = normaliser / batch.norm
    rows = batch.active_rows.unsqueeze(-1) if isinstance(batch.active_rows, torch.Tensor) else batch.active_rows
    objective = positive_sums.sum(-1) * scale
    violation = (a * positive_sums + b * negative_sums + k * rows) * scale
    # The bounds, as in the original, are those of the logits without the biases.
    sums = surrogate_sums(batch.x, batch.on_positives, batch.on_negatives if batch.weighted else None, batch.hinge)
    aux = _aux(batch, lam, p, sums, objective, violation, anchors, "precision", biases, counts)
    return batch.finish(loss, aux)


def roc_auc_loss(
    params: Params,
    lambdas: Any,
    logits: torch.Tensor,
    labels: torch.Tensor,
    *,
    weights: Optional[TensorLike] = None,
    surrogate_type: str = "xent",
    reduction: str = "none",
) -> tuple[torch.Tensor, Aux]:
    """Surrogate of 1 - ROC AUC: the pairwise ranking loss over positive/negative pairs.

    .. math::

       \\ell_j = \\frac{1}{2B} \\sum_i |y_j - y_i|\\,w_i w_j\\,
       L^+\\big((y_j - y_i)(x_j - x_i)\\big)

    over the examples ``i`` of the batch (``L+`` as in :func:`recall_at_precision_loss`).
    Each pair's loss is split half-and-half between its two examples and
    normalised by the batch size ``B`` (not the number of pairs), as in the
    original; a batch with one class gives 0. No ``[B, B]`` pair tensor is built:
    the hinge form is computed exactly in O(B log B) by sorting (labels must be 0
    or 1), the cross-entropy form exactly in blocks of rows, O(B * block) memory.

    Args:
      params, lambdas: unused (None); accepted for a uniform signature.
      logits: ``[B]`` or ``[B, L]``.
      labels: shape of ``logits``, values in {0, 1}.
      weights: None, number, ``[B]``, ``[B, 1]`` or ``[B, L]``.
      surrogate_type: ``"xent"`` or ``"hinge"``.
      reduction: ``"none"`` (shape of ``logits``), ``"mean"`` or ``"sum"``.

    Returns:
      ``(loss, {})``.
    """
    _check_no_params(params, "roc_auc_loss")
    batch = Batch(logits, labels, weights, surrogate_type, reduction)
    if batch.hinge and value_checks_active():  # y * (1 - y) is built only when read
        check_values("labels", batch.y * (1.0 - batch.y), "0 or 1 with the hinge surrogate", 0.0, 0.0)
    return batch.finish(roc_auc_elementwise(batch.x, batch.y, batch.w, surrogate_type), {})


LOSSES = {
    fn.__name__: fn
    for fn in (
        precision_recall_auc_loss,
        roc_auc_loss,
        recall_at_precision_loss,
        precision_at_recall_loss,
        false_positive_rate_at_true_positive_rate_loss,
        true_positive_rate_at_false_positive_rate_loss,
    )
}


def init_loss_state(
    loss: Union[str, Callable[..., Any]],
    num_labels: int = 1,
    *,
    num_anchors: int = 20,
    lambdas_init: float = 1.0,
    dtype: Optional[torch.dtype] = None,
    device: Optional[Union[str, torch.device]] = None,
) -> tuple[dict, Optional[torch.Tensor]]:
    """Initial ``(params, lambdas)`` for one of the losses.

    Args:
      loss: a loss function of this module, or its name.
      num_labels: ``L``.
      num_anchors: ``A`` (PR-AUC only).
      lambdas_init: initial multiplier value (1.0 in the original).
      dtype, device: of the returned tensors.

    Returns:
      PR-AUC: ``({"biases": zeros [L, A]}, full [L, A])``; ROC-AUC: ``({}, None)``;
      the rate losses: ``({}, full [L])``.
    """
    name = loss if isinstance(loss, str) else getattr(loss, "__name__", repr(loss))
    if name not in LOSSES:
        raise ValueError(f"loss must be one of {sorted(LOSSES)}, got {name!r}")
    if isinstance(num_labels, bool) or not isinstance(num_labels, int) or num_labels < 1:
        raise ValueError(f"num_labels must be a positive integer, got {num_labels!r}")
    if name == "roc_auc_loss":
        return {}, None
    if name == "precision_recall_auc_loss":
        range_to_anchors_and_delta((0.0, 1.0), num_anchors)  # validates num_anchors
        shape = (num_labels, num_anchors)
        biases = torch.zeros(shape, dtype=dtype, device=device)
        return {"biases": biases}, torch.full(shape, float(lambdas_init), dtype=dtype, device=device)
    return {}, torch.full((num_labels,), float(lambdas_init), dtype=dtype, device=device)
