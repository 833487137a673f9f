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

from typing import Any, Callable, Mapping, NamedTuple, Optional, Sequence, Union

import torch

from ._anchor_sum import anchor_sum
from ._anchors import range_to_anchors_and_delta
from ._roc_auc import roc_auc_elementwise
from ._bounds import bounds_from_sums
from ._surrogate_rows import surrogate_rows
from ._surrogate_sums import surrogate_sums
from ._strict import counts_from_batch, rate_and_violation
from ._surrogates import indicator_scale
from ._validation import (
    REDUCTIONS,
    SURROGATE_TYPES,
    TensorLike,
    as_batch_by_label,
    as_tensor,
    broadcast_to,
    check_choice,
    check_logits_and_labels,
    check_unit_interval,
    check_values,
    reduce,
    value_checks_active,
)

Params = Optional[Mapping[str, torch.Tensor]]
Aux = dict


class Batch:
    """Validated inputs of one call, brought to ``[B, L]``, with the surrogate parts."""

    def __init__(self, logits, labels, weights, surrogate_type, reduction, value_checks=True):
        check_choice("surrogate_type", surrogate_type, SURROGATE_TYPES)
        check_choice("reduction", reduction, REDUCTIONS)
        self.shape = logits.shape
        self.reduction = reduction
        self.keep_label_axis = False  # modules keep aux's L axis for [B] input
        self.weighted = weights is not None  # without weights, w = 1 is never multiplied in
        # Without weights, w, positives and on_negatives are formed on first use.
        self.x, self.y, self._w = as_batch_by_label(logits, labels, weights, ones_for_none=False,
                                                    value_checks=value_checks)
        self._positives = None
        self.num_labels = self.x.shape[1]
        self.surrogate_type = surrogate_type
        self.scale = indicator_scale(surrogate_type)
        rows = float(self.x.shape[0])
        # aux["objective"] and aux["violation"] are of the reduced loss (of the sum for "none").
        self.norm = float(self.x.numel()) if reduction == "mean" else 1.0
        if self.weighted:
            self.active = (self.w > 0).to(self.x.dtype)  # zero weights mask examples out
            self.on_positives = self.w * self.y
            self._on_negatives = self.w - self.on_positives
            self._positives, self.active_rows, self.weight_sum = (
                self.on_positives.sum(0), self.active.sum(0), self.w.sum(0)
            )
        else:
            self.active, self.on_positives, self._on_negatives = 1.0, self.y, None
            self.active_rows, self.weight_sum = rows, rows

    def check_values(self) -> None:
        """The value checks of logits and labels, where the constructor was told to leave them."""
        check_logits_and_labels(self.x, self.y)

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

    @property
    def positives(self) -> torch.Tensor:
        """``sum w * y``, ``[L]``."""
        if self._positives is None:
            self._positives = self.y.sum(0)
        return self._positives

    def per_label(
        self, name: str, value: TensorLike, extra: tuple[int, ...] = (), unit_interval: bool = False,
        non_negative: bool = False,
    ) -> torch.Tensor:
        """``value`` broadcast to ``[L, *extra]``, checked (finite; in [0, 1] or >= 0 if asked)
        and named in errors."""
        if unit_interval:
            check_unit_interval(name, value)
        shape = (self.num_labels, *extra)
        expected = "[] or [L]" if not extra else "[A], [1, A] or [L, A]"
        value = as_tensor(value, self.x)
        if non_negative:
            check_values(name, value, "finite and >= 0", 0.0)
        elif not unit_interval:
            check_values(name, value, "finite")
        return broadcast_to(name, value, shape, f"{expected} with L, A = {shape}")

    def priors(self, label_priors: Optional[TensorLike]) -> torch.Tensor:
        """Given priors as ``[L]``, or the one-batch streaming estimate ``(1 + sum w*y) / (2 + sum w)``."""
        if label_priors is None:
            return (1.0 + self.positives) / (2.0 + self.weight_sum)
        return self.per_label("label_priors", label_priors, unit_interval=True)

    def finish(self, loss: torch.Tensor, aux: dict) -> tuple[torch.Tensor, Aux]:
        """Loss back to the input's shape and reduced (unless already reduced); aux without the
        L axis for ``[B]`` input."""
        if loss.dim() > 0:
            loss = reduce(loss.reshape(self.shape), self.reduction)
        if len(self.shape) == 1 and not self.keep_label_axis:
            aux = {key: value.squeeze(0) for key, value in aux.items()}
        return loss, aux


def _check_no_params(params: Params, name: str) -> None:
    if params:
        raise ValueError(f"{name} has no primal parameters: params must be None or {{}}, got keys {list(params)}")


class RateLagrangian(NamedTuple):
    """What tells the four rate losses apart, per label (``t`` target, ``p`` prior, ``s`` scale).

    The batch sum of a rate loss is ``objective + lam * violation`` with ``objective`` the sum of
    the surrogate on positives (``objective_on_positives``) or on negatives, and ``violation =
    a * sum w*y*L+ + b * sum w*(1-y)*L- + c * (rows of non-zero weight)`` where
    ``(a, b, c) = violation(t, p, s)``; ``constraint`` names the strict constraint's rate.
    """

    objective_on_positives: bool
    violation: Callable[..., tuple]
    constraint: str


RECALL_AT_PRECISION = RateLagrangian(True, lambda t, p, s: ((u := 1.0 - t), t, u * p * -s), "precision")
PRECISION_AT_RECALL = RateLagrangian(False, lambda t, p, s: (1.0, 0.0, p * (t - 1.0) * s), "recall")
TPR_AT_FPR = RateLagrangian(True, lambda t, p, s: (0.0, 1.0, t * (1.0 - p) * -s), "false_positive_rate")


def _times(coefficient, value):
    """``coefficient * value``, with no kernel for a Python 0, 1 or None (None meaning 0)."""
    if coefficient is None:
        return None
    if isinstance(coefficient, float):
        return None if coefficient == 0.0 else value if coefficient == 1.0 else coefficient * value
    return coefficient * value


def _row_weight(coefficient, lam, objective: bool):
    """The weight of a surrogate part in a row: ``lam * coefficient``, plus 1 on the objective's part."""
    scaled = _times(coefficient, lam)
    if not objective:
        return scaled
    return 1.0 if scaled is None else scaled + 1.0


def _affine(constant: torch.Tensor, *terms) -> torch.Tensor:
    """``constant + sum(coefficient * value)`` over ``(coefficient, value)`` terms, one op per
    term (``addcmul``; an ``add`` for a Python 1, nothing for a Python 0)."""
    total = constant
    for coefficient, value in terms:
        if isinstance(coefficient, float):
            if coefficient != 0.0:
                total = total + (value if coefficient == 1.0 else coefficient * value)
        else:
            total = torch.addcmul(total, coefficient, value)
    return total


def _constrained_aux(batch, lam, p, sums, objective, violation, target, constraint, biases=None) -> dict:
    """The aux of a constrained loss: multipliers (and biases), priors, the bounds from the
    per-label surrogate ``sums``, the Lagrangian's objective and violation, the strict terms."""
    tp_lower, fp_upper = bounds_from_sums(batch.positives, *sums, batch.scale)
    return {
        "lambdas": lam,
        **({} if biases is None else {"biases": biases}),
        "label_priors": p,
        "true_positives_lower_bound": tp_lower,
        "false_positives_upper_bound": fp_upper,
        "objective": objective,
        "violation": violation,
        **_strict_aux(batch, target, constraint, biases),
    }


def _strict_aux(batch: "Batch", target: torch.Tensor, constraint: str, biases=None) -> dict:
    """The strict violation (rate deficit), the constrained rate and the counts at the threshold
    (no gradient); :func:`~goloss.rates_at_threshold` of the counts gives every rate."""
    counts = counts_from_batch(
        batch.x, batch.on_positives, batch.w if batch.weighted else None, batch.positives, batch.weight_sum,
        biases,
    )
    rate, violation = rate_and_violation(counts, target, constraint)
    return {
        "strict_violation": violation,
        constraint: rate,
        "true_positives": counts.true_positives,
        "false_positives": counts.false_positives,
        "positives": counts.positives,
        "negatives": counts.negatives,
    }


def rate_loss_impl(
    lagrangian: RateLagrangian, batch: "Batch", lam: torch.Tensor, t: torch.Tensor, p: torch.Tensor
) -> tuple[torch.Tensor, Aux]:
    """A rate loss of validated inputs: ``lam``, ``t``, ``p`` are ``[L]``.

    The objective and the violation (``dL/dlam`` of the reduced loss; of the sum for
    ``reduction="none"``) are formed from per-label batch sums, the same sums as the bounds;
    with ``reduction="mean"`` or ``"sum"`` the loss is ``sum(objective + lam * violation)``, so
    no second ``[B, L]`` Lagrangian is built and a ``vmap`` over targets or multipliers only
    batches ``[L]``-sized work. With ``"none"`` the rows and the sums come from one Function
    (:func:`~goloss._surrogate_rows.surrogate_rows`). The constraint term is added to rows of
    non-zero weight only.
    """
    if batch.reduction == "none":
        on_positive, on_negative, per_row = lagrangian.violation(t, p, batch.scale)
        constant = per_row * batch.active_rows  # over the rows of non-zero weight
        keep = lagrangian.objective_on_positives
        loss, positive_sum, negative_sum = surrogate_rows(  # without weights, d = 1 - y stays implicit
            batch.x, batch.on_positives, batch.on_negatives if batch.weighted else None,
            _row_weight(on_positive, lam, keep), _row_weight(on_negative, lam, not keep),
            per_row * lam, batch.active if batch.weighted else None, batch.surrogate_type,
        )
    else:
        # The constant term over the batch: s times the rows of non-zero weight (a number if unweighted).
        on_positive, on_negative, constant = lagrangian.violation(t, p, batch.scale * batch.active_rows)
        positive_sum, negative_sum = surrogate_sums(
            batch.x, batch.on_positives, batch.on_negatives, batch.surrogate_type
        )
    objective = positive_sum if lagrangian.objective_on_positives else negative_sum
    violation = _affine(constant, (on_positive, positive_sum), (on_negative, negative_sum))
    if batch.reduction != "none":  # few graph nodes: the normalisation once, on the total
        loss = torch.addcmul(objective, lam, violation).sum()
        loss = loss / batch.norm if batch.norm != 1.0 else loss
    if batch.norm != 1.0:
        objective, violation = objective / batch.norm, violation / batch.norm
    aux = _constrained_aux(batch, lam, p, (positive_sum, negative_sum), objective, violation, t, lagrangian.constraint)
    return batch.finish(loss, aux)


def _rate_loss(
    name: str,
    lagrangian: RateLagrangian,
    params: Params,
    lambdas: TensorLike,
    logits: torch.Tensor,
    labels: torch.Tensor,
    target: TensorLike,
    target_name: str,
    weights: Optional[TensorLike],
    label_priors: Optional[TensorLike],
    surrogate_type: str,
    reduction: str,
) -> tuple[torch.Tensor, Aux]:
    """Validate the inputs of a rate loss, then :func:`rate_loss_impl`."""
    _check_no_params(params, name)
    batch = Batch(logits, labels, weights, surrogate_type, reduction)
    lam = batch.per_label("lambdas", lambdas, non_negative=True)
    t = batch.per_label(target_name, target, unit_interval=True)
    return rate_loss_impl(lagrangian, batch, lam, t, batch.priors(label_priors))


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

       \\ell = w\\,[(1 + \\lambda(1 - t))L^+ + \\lambda t L^-] - \\lambda (1 - t)\\,p\\,s

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
      ``(loss, aux)``; aux has ``lambdas``, ``label_priors``,
      ``true_positives_lower_bound`` and ``false_positives_upper_bound``, each
      ``[L]`` (``[]`` for ``[B]`` input).

    Example:
      >>> import torch, goloss
      >>> logits, labels = torch.tensor([2.0, -1.0, 0.5]), torch.tensor([1.0, 0.0, 0.0])
      >>> loss, aux = goloss.recall_at_precision_loss(None, torch.tensor(1.0), logits, labels,
      ...                                             target_precision=0.8, reduction="mean")
      >>> loss.shape, aux["label_priors"]
      (torch.Size([]), tensor(0.4000))
    """
    return _rate_loss(
        "recall_at_precision_loss", RECALL_AT_PRECISION, params, lambdas, logits, labels, target_precision,
        "target_precision", weights, label_priors, surrogate_type, reduction,
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

       \\ell = w\\,[\\lambda L^+ + L^-] + \\lambda\\,p\\,(t - 1)\\,s

    Args and returns as in :func:`recall_at_precision_loss`, with
    ``target_recall`` (number, ``[]`` or ``[L]``) as the target.
    """
    return _rate_loss(
        "precision_at_recall_loss", PRECISION_AT_RECALL, params, lambdas, logits, labels, target_recall,
        "target_recall", weights, label_priors, surrogate_type, reduction,
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
    return _rate_loss(
        "false_positive_rate_at_true_positive_rate_loss", PRECISION_AT_RECALL, params, lambdas, logits, labels,
        target_rate, "target_rate", weights, label_priors, surrogate_type, reduction,
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

       \\ell = w\\,[L^+ + \\lambda L^-] - \\lambda\\,t\\,(1 - p)\\,s

    Args and returns as in :func:`recall_at_precision_loss`, with
    ``target_rate`` (number, ``[]`` or ``[L]``) as the target.
    """
    return _rate_loss(
        "true_positive_rate_at_false_positive_rate_loss", TPR_AT_FPR, params, lambdas, logits, labels,
        target_rate, "target_rate", weights, label_priors, surrogate_type, reduction,
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
    ``b_k`` and multiplier ``lam_k``, normalised so that a perfect scorer has
    AUC 1:

    .. math::

       \\ell = \\frac{\\delta}{hi - lo - \\delta} \\sum_k
       w[(1 + \\lambda_k(1 - a_k))L^+(x + b_k) + \\lambda_k a_k L^-(x + b_k)]
       - \\lambda_k (1 - a_k)\\,p\\,s

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
      ``(loss, aux)``; aux has ``lambdas`` and ``biases`` ``[L, A]``,
      ``label_priors`` ``[L]``, and the bounds ``[L]`` computed from ``logits``
      without the biases, as in the original (the L axis is dropped for ``[B]``
      input).
    """
    anchors, delta = range_to_anchors_and_delta(precision_range, num_anchors)
    lo, hi = float(precision_range[0]), float(precision_range[1])
    unknown = set(params or {}) - {"biases"}
    if unknown:
        raise ValueError(f"precision_recall_auc_loss params has one key, 'biases'; got unknown keys {sorted(unknown)}")
    batch = Batch(logits, labels, weights, surrogate_type, reduction)
    biases = (params or {}).get("biases")
    biases = batch.per_label("biases", 0.0 if biases is None else biases, (num_anchors,))
    lam = batch.per_label("lambdas", lambdas, (num_anchors,), non_negative=True)
    a = torch.tensor(anchors, dtype=batch.x.dtype, device=batch.x.device)
    return pr_auc_loss_impl(batch, biases, lam, a, delta / (hi - lo - delta), batch.priors(label_priors))


def pr_auc_loss_impl(
    batch: Batch, biases: torch.Tensor, lam: torch.Tensor, anchors: torch.Tensor, normaliser: float,
    p: torch.Tensor,
) -> tuple[torch.Tensor, Aux]:
    """PR-AUC of validated inputs: ``biases``, ``lam`` ``[L, A]``, ``anchors`` ``[A]``, ``p`` ``[L]``.

    ``aux["objective"]`` is ``[L]`` and ``aux["violation"]`` (``dL/dlam``, of the reduced loss)
    ``[L, A]``, formed from the per-anchor batch sums that the anchor sum returns.
    """
    weighted, positive_sums, negative_sums = anchor_sum(
        batch.x, batch.y, batch.w, biases, lam, anchors, batch.surrogate_type == "hinge"
    )
    lambda_term = (lam * (1.0 - anchors)).sum(-1) * p * batch.scale  # [L]
    loss = (weighted - lambda_term * batch.active) * normaliser
    scale = normaliser / batch.norm
    objective = positive_sums.sum(-1) * scale
    violation = (
        (1.0 - anchors) * (positive_sums - (p * batch.scale * batch.active_rows).unsqueeze(-1))
        + anchors * negative_sums
    ) * scale

    # The bounds, as in the original, are those of the logits without the biases.
    sums = surrogate_sums(batch.x, batch.on_positives, batch.on_negatives, batch.surrogate_type)
    aux = _constrained_aux(batch, lam, p, sums, objective, violation, anchors, "precision", biases)
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
    if surrogate_type == "hinge" and value_checks_active():  # y * (1 - y) is built only when read
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
    options = {"dtype": dtype, "device": device}
    if name == "roc_auc_loss":
        return {}, None
    if name == "precision_recall_auc_loss":
        range_to_anchors_and_delta((0.0, 1.0), num_anchors)  # validates num_anchors
        shape = (num_labels, num_anchors)
        return {"biases": torch.zeros(shape, **options)}, torch.full(shape, float(lambdas_init), **options)
    return {}, torch.full((num_labels,), float(lambdas_init), **options)
