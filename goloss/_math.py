"""The formulas of goloss, each written once: every path (functional, module, kernel, compile
branch) calls these.

Notation, per label: ``x`` logits, ``y`` labels, ``w`` weights, ``c = w y`` and ``d = w (1 - y)``
the weights on positives and on negatives, ``lam`` the multiplier, ``t`` the target, ``p`` the
label prior, ``L+`` / ``L-`` the surrogate of a positive / a negative and ``s`` its value at the
threshold (:func:`indicator_scale`). ``S+ = sum c L+(x)`` and ``S- = sum d L-(x)`` are the
per-label batch sums that every rate loss and bound reduces to. The functions take tensors or
Python numbers alike where their docstring says so.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Optional, Union
from collections.abc import Callable

import torch
import torch.nn.functional as F

from . import _dispatch
from ._validation import SURROGATE_TYPES, check_choice

Number = Union[torch.Tensor, float]

# -- surrogates -------------------------------------------------------------------------------


def indicator_scale(surrogate_type: str) -> float:
    """``s``: the surrogate's value at the threshold, ``log 2`` (``"xent"``) or 1 (``"hinge"``);
    ``L+ / s >= [x <= 0]`` and ``L- / s >= [x >= 0]``."""
    check_choice("surrogate_type", surrogate_type, SURROGATE_TYPES)
    return math.log(2.0) if surrogate_type == "xent" else 1.0


def loss_if_positive(x: torch.Tensor, hinge: bool, negated: bool = False) -> torch.Tensor:
    """``L+(x)`` (``-L+(x)`` if ``negated``), shape of ``x``: ``softplus(-x)`` or ``relu(1 - x)``.
    Cross-entropy is one kernel that keeps no buffer and is stable for any ``x``,
    ``softplus(x, beta=-1) = -softplus(-x)``; a kernel that wants one pass less takes it negated."""
    if hinge:
        value = torch.relu(1.0 - x)
        return value.neg_() if negated else value
    signed = F.softplus(x, beta=-1.0)  # -softplus(-x)
    return signed if negated else signed.neg_()


def loss_if_negative(x: torch.Tensor, hinge: bool) -> torch.Tensor:
    """``L-(x)``, shape of ``x``: ``softplus(x)`` or ``relu(1 + x)``."""
    return torch.relu(1.0 + x) if hinge else F.softplus(x)


def surrogate_values(x: torch.Tensor, hinge: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """``(L+(x), L-(x))``, shape of ``x``; cross-entropy evaluates its transcendental part once:
    ``L-(x) = softplus(x) = softplus(-x) + x``."""
    positive = loss_if_positive(x, hinge)
    return positive, loss_if_negative(x, True) if hinge else positive + x


def slope_if_positive(x: torch.Tensor, hinge: bool) -> torch.Tensor:
    """``dL+/dx``: ``sigmoid(x) - 1`` or ``-[x < 1]`` (a sign-and-clamp pass, cheaper than compare-and-cast)."""
    return torch.sign(x - 1.0).clamp_max_(0.0) if hinge else torch.sigmoid(x) - 1.0


def slope_if_negative(x: torch.Tensor, hinge: bool) -> torch.Tensor:
    """``dL-/dx``: ``sigmoid(x)`` or ``[x > -1]``. For cross-entropy ``dL+/dx = dL-/dx - 1``."""
    return torch.sign(x + 1.0).clamp_min_(0.0) if hinge else torch.sigmoid(x)


def surrogate_slopes(x: torch.Tensor, hinge: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """``(dL+/dx, dL-/dx)``, shape of ``x`` (cross-entropy: one ``sigmoid``)."""
    negative = slope_if_negative(x, hinge)
    return slope_if_positive(x, True) if hinge else negative - 1.0, negative


def _plus_product(tensor: torch.Tensor, c: torch.Tensor, a: Number, sign: float = 1.0) -> torch.Tensor:
    """``tensor + sign * c * a`` in place (``a`` a tensor or a number)."""
    if isinstance(a, torch.Tensor):
        return tensor.addcmul_(c, a, value=sign)
    return tensor.add_(c, alpha=sign * a)


def logits_grad(
    x: torch.Tensor, c: torch.Tensor, a: Number, d: Optional[torch.Tensor], b: Number, hinge: bool
) -> torch.Tensor:
    """``a c dL+/dx + b d dL-/dx``: the gradient in ``x [B, L]`` of ``a S+ + b S-``; ``a``, ``b``
    broadcast to ``x`` (``[L]``, ``[]`` or numbers), ``d`` None means ``1 - c``.

    Cross-entropy uses ``dL+/dx = dL-/dx - 1``: ``sigmoid(x) (a c + b d) - a c``, on two fresh
    ``[B, L]`` tensors worked in place in a backward that records no graph (on the CPU each
    fresh tensor of that size costs its page faults, often more than the arithmetic)."""
    if hinge:
        slope_positive, slope_negative = surrogate_slopes(x, True)
        return slope_positive * (c * a) + slope_negative * ((1.0 - c if d is None else d) * b)
    if d is None:  # the weight a c + b (1 - c) = b + (a - b) c, in one pass
        a, b = (v if isinstance(v, torch.Tensor) else x.new_tensor(v) for v in (a, b))
        weight = torch.addcmul(b, c, a - b)
    else:  # b d, then + a c
        weight = torch.mul(d, b)
    in_place = _dispatch.in_place_in_backward() and weight.shape == torch.broadcast_shapes(
        x.shape, weight.shape, *(t.shape for t in (c, a, d, b) if isinstance(t, torch.Tensor))) == x.shape
    if not in_place:
        positive = c * a
        return slope_if_negative(x, False) * (weight if d is None else weight + positive) - positive
    if d is not None:
        weight = _plus_product(weight, c, a)
    return _plus_product(slope_if_negative(x, False).mul_(weight), c, a, -1.0)


# -- the Lagrangians of the rate losses -------------------------------------------------------


class RateLagrangian(NamedTuple):
    """What tells the rate losses apart, per label.

    The batch sum of a rate loss is ``objective + lam * violation``: ``objective`` is ``S+``
    (``objective_on_positives``) or ``S-``, and ``violation = a S+ + b S- + k * rows`` with
    ``(a, b, k) = coefficients(t, p, s)`` (``rows``: of non-zero weight); ``constraint`` names the
    strict constraint's rate. PR-AUC is :data:`RECALL_AT_PRECISION` at each anchor precision.
    """

    objective_on_positives: bool
    coefficients: Callable[[Number, Number, Number], tuple[Number, Number, Number]]
    constraint: str


#: Recall subject to precision >= t: ``(1 - t) S+ + t S- - (1 - t) p s rows``.
RECALL_AT_PRECISION = RateLagrangian(True, lambda t, p, s: (1.0 - t, t, (t - 1.0) * p * s), "precision")
#: Precision (or FPR) subject to recall >= t: ``S+ + (t - 1) p s rows``.
PRECISION_AT_RECALL = RateLagrangian(False, lambda t, p, s: (1.0, 0.0, (t - 1.0) * p * s), "recall")
#: TPR subject to FPR <= t: ``S- - t (1 - p) s rows``.
TPR_AT_FPR = RateLagrangian(True, lambda t, p, s: (0.0, 1.0, -t * (1.0 - p) * s), "false_positive_rate")


def times(coefficient: Number, value: Number) -> Number:
    """``coefficient * value``, with no kernel for a Python 0 or 1."""
    if isinstance(coefficient, float) and coefficient in (0.0, 1.0):
        return value if coefficient == 1.0 else 0.0
    return coefficient * value


def row_weights(lagrangian: RateLagrangian, lam: Number, a: Number, b: Number) -> tuple[Number, Number]:
    """``(alpha, beta)``: the weights of ``L+`` and ``L-`` in a row of the Lagrangian, ``d loss / d S+``
    and ``d loss / d S-`` (``keep + lam a`` and ``1 - keep + lam b``)."""
    keep = lagrangian.objective_on_positives
    alpha, beta = times(a, lam), times(b, lam)
    return (alpha + 1.0, beta) if keep else (alpha, beta + 1.0)


def above_threshold(z: torch.Tensor, in_place: bool = False) -> torch.Tensor:
    """``[z > 0]`` in ``z``'s dtype: the 0-1 prediction at the threshold. Out of place as relu and
    sign (cheaper than a comparison and a cast); ``in_place`` on a tensor the caller owns, one pass."""
    return z.gt_(0.0) if in_place else torch.relu(z).sign_()


def bounds_from_sums(
    positives: torch.Tensor, s_positive: torch.Tensor, s_negative: torch.Tensor, scale: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(TP lower bound, FP upper bound) = (sum c - S+ / s, S- / s)`` from batch sums (any shapes)."""
    return positives - s_positive / scale, s_negative / scale


# -- the strict constraint and the dual steps ------------------------------------------------

CONSTRAINTS = ("precision", "recall", "false_positive_rate")
#: Smallest room for error used to normalise a violation (a target of exactly 1, or an FPR of 0).
MIN_ALLOWED_ERROR = 1e-3
#: The weight in the violation of a batch on which the constraint holds vacuously (no predicted
#: positive for a precision or an FPR, every example predicted positive for a recall): the
#: multiplier comes down at a tenth of the full rate, so that it does not collapse to 0 and
#: swing the model to the opposite extreme (a relay oscillation).
EMPTY_BATCH_WEIGHT = 0.1
#: The largest multiplier of the strict dual step (a constraint weighted 1000 times the objective).
MAX_LAMBDA = 1000.0


def rate_and_violation(
    true_positives: torch.Tensor, false_positives: torch.Tensor, positives: torch.Tensor, negatives: torch.Tensor,
    target: Number, constraint: str,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The constrained rate at the threshold and its deficit to ``target`` (> 0 while violated),
    each the counts' shape.

    Precision is 1 with no predicted positive; recall and FPR are 0 with a zero denominator, and
    then their deficit is 0 (the batch says nothing). Met vacuously (precision 1 or FPR 0 with
    nothing predicted, recall 1 with everything predicted), the deficit is weighted
    :data:`EMPTY_BATCH_WEIGHT`.
    """
    predicted = true_positives + false_positives
    tiny = torch.finfo(predicted.dtype).tiny
    defined = None
    if constraint == "precision":
        vacuous = predicted <= 0
        rate = true_positives / predicted.clamp_min(tiny) + vacuous
    else:
        achieved, denominator = (true_positives, positives) if constraint == "recall" else (false_positives, negatives)
        rate, defined = achieved / denominator.clamp_min(tiny), denominator > 0
        vacuous = predicted <= 0 if constraint == "false_positive_rate" else predicted >= positives + negatives
    deficit = rate - target if constraint == "false_positive_rate" else target - rate
    violation = torch.where(vacuous, EMPTY_BATCH_WEIGHT * deficit, deficit)
    return rate, violation if defined is None else violation * defined


def normalised_violation(violation: torch.Tensor, target: Number, constraint: str) -> torch.Tensor:
    """``violation`` over the room for error the target leaves (``1 - t``; ``t`` for an FPR; at
    least :data:`MIN_ALLOWED_ERROR`), clipped to [-1, 1]."""
    room = target if constraint == "false_positive_rate" else 1.0 - target
    if isinstance(room, torch.Tensor):
        return (violation / room.clamp_min(MIN_ALLOWED_ERROR)).clamp(-1.0, 1.0)
    return (violation / max(room, MIN_ALLOWED_ERROR)).clamp(-1.0, 1.0)


def strict_dual_step(
    lam: torch.Tensor, signal: torch.Tensor, lr: Number, max_lambda: float = MAX_LAMBDA
) -> torch.Tensor:
    """``clamp(lam + lr (1 + lam) signal, 0, max_lambda)``: additive near 0, relative for large ``lam``."""
    if isinstance(lr, torch.Tensor):
        return (lam + lr * (1.0 + lam) * signal).clamp(0.0, max_lambda)
    return torch.addcmul(lam, 1.0 + lam, signal, value=lr).clamp_(0.0, max_lambda)


def surrogate_dual_step(lam: torch.Tensor, grad: torch.Tensor, lr: Number) -> torch.Tensor:
    """``max(0, lam + lr grad)``: projected gradient ascent (the original's)."""
    return torch.clamp(lam + lr * grad, min=0.0)


# -- label priors ----------------------------------------------------------------------------

#: The original's pseudocounts ``P`` and ``N``: the streaming counts start at ``P`` (positives)
#: and ``P + N`` (weight), so the prior is ``(P + sum w y) / (P + N + sum w)``.
POSITIVE_PSEUDOCOUNT = 1.0
NEGATIVE_PSEUDOCOUNT = 1.0


def label_prior(label_count: torch.Tensor, weight_sum: Number) -> torch.Tensor:
    """The prior from streaming counts that include the pseudocounts: ``label_count / weight_sum``."""
    return label_count / weight_sum


def add_to_prior_counts(
    label_count: Number, weight_sum: Number, positives: torch.Tensor, total: Number
) -> tuple[torch.Tensor, Number, torch.Tensor]:
    """The streaming counts after a batch (``positives = sum w y``, ``total = sum w``), added
    *before* use as in the original, and the prior they give: ``(count, weight_sum, prior)``."""
    label_count, weight_sum = label_count + positives, weight_sum + total
    return label_count, weight_sum, label_prior(label_count, weight_sum)


def batch_label_prior(positives: torch.Tensor, total: Number) -> torch.Tensor:
    """The one-batch estimate: fresh counts after this batch, ``(P + sum w y) / (P + N + sum w)``."""
    fresh = POSITIVE_PSEUDOCOUNT, POSITIVE_PSEUDOCOUNT + NEGATIVE_PSEUDOCOUNT
    return add_to_prior_counts(*fresh, positives, total)[2]
