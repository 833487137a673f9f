"""One label, a small batch, on the CPU: a rate module's forward with its per-label arithmetic
on Python numbers.

A rate loss reduces its batch to six sums per label: ``S+ = sum c L+(x)``, ``S- = sum d L-(x)``,
the true and false positives at logit 0, the positives and the negatives (``c = w y``, ``d = w
(1 - y)``). Everything else, the priors, the Lagrangian's coefficients, the loss, the bounds and
the strict rate with its deficit, is arithmetic on ``[L]``-sized values. For one label on the
CPU a tensor op per value costs a few microseconds each, more in all than the batch itself at a
few hundred examples. This path forms the six sums, and the value checks of logits and labels,
from one Gram matrix, runs the same formulas (:class:`~goloss._losses.RateLagrangian`'s
coefficients, :func:`~goloss._bounds.bounds_from_sums`,
:func:`~goloss._strict.scalar_rate_and_violation`) on Python numbers, and returns the loss as one
``binary_cross_entropy_with_logits`` (cross-entropy surrogate) or from a single autograd node
whose backward is the batch sums' (:func:`~goloss._surrogate_sums.logits_grad`; hinge). The
module (``goloss.nn``) decides when it applies; ``tests/test_one_label.py`` holds it to the
general path.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ._bounds import bounds_from_sums
from ._strict import scalar_rate_and_violation
from ._surrogate_sums import _parts, apply_function, logits_grad

#: The largest batch the path takes: measured against the general path for one label on one CPU
#: thread (forward, backward, dual step), it costs 0.6x at 2^13, 0.7x at 2^14, 0.9x at 2^15 and
#: 1.05-1.17x at 2^16 elements.
MAX_ELEMENTS = 1 << 15


def batch_sums(batch) -> tuple[float, float, float, float, float, float]:
    """``(S+, S-, true positives, false positives, positives, negatives)`` of a validated
    ``[B, 1]`` batch (:class:`~goloss._losses.Batch`), as Python numbers, from one Gram matrix.
    It also makes the value checks of logits and labels (the module leaves them to it): a
    non-finite logit makes the columns' sums non-finite, and ``min(y - y^2, 0)`` sums to 0
    exactly when every label lies in [0, 1]; then :meth:`~goloss._losses.Batch.check_values`
    names the culprit."""
    x = batch.x.detach()  # the weights need no gradient on this path: nothing is recorded
    if batch.surrogate_type == "hinge":
        positive, negative = _parts(x, True)
    else:  # -L+(x) = log sigmoid(x) and L-(x) = x - log sigmoid(x), so S+ changes sign below
        positive = F.logsigmoid(x)
        negative = x - positive
    outside = torch.addcmul(batch.y, batch.y, batch.y, value=-1.0).clamp_max_(0.0)  # y (1 - y) < 0 outside [0, 1]
    predicted = torch.relu(x).sign_()  # [x > 0] in x's dtype (heaviside is not vectorised)
    # [7, B]: L+ (or its negative), L-, [x > 0], c, d, outside and 1
    rows = torch.cat([positive, negative, predicted, batch.on_positives, batch.on_negatives, outside,
                      torch.ones_like(x)]).view(7, -1)
    gram = rows.mm(rows.t()).tolist()
    c, d, ones = gram[3], gram[4], gram[6]
    if not (ones[5] == 0.0 and math.isfinite(ones[0] + ones[1])):
        batch.check_values()  # raises, unless the checks are off or a finite logit overflowed a sum
    s_positive = c[0] if batch.surrogate_type == "hinge" else -c[0]
    return s_positive, d[1], c[2], d[2], c[6], d[6]


_SUM = 2  # reduction="sum" of torch.binary_cross_entropy_with_logits (F's wrapper, without its checks)


class _Loss(torch.autograd.Function):
    """A reduced loss whose gradient in the logits is ``alpha dS+/dx + beta dS-/dx``."""

    @staticmethod
    def forward(x, on_positives, on_negatives, value, alpha, beta, hinge):
        return torch.full((), value, dtype=x.dtype)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, on_positives, on_negatives, _, alpha, beta, hinge = inputs
        ctx.save_for_backward(x, on_positives, on_negatives)
        ctx.coefficients = alpha, beta, hinge

    @staticmethod
    def backward(ctx, grad):
        x, on_positives, on_negatives = ctx.saved_tensors
        alpha, beta, hinge = ctx.coefficients
        if not torch.is_grad_enabled():  # no graph of the backward: numbers suffice
            grad = grad.item()
        grad_x = logits_grad(x, on_positives, on_negatives, grad * alpha, grad * beta, hinge)
        return grad_x, None, None, None, None, None, None


def _cross_entropy_form(batch, alpha: float, beta: float, constant: float) -> torch.Tensor:
    """``alpha S+ + beta S- + constant`` (cross-entropy surrogate, ``beta >= 0``) as one
    ``binary_cross_entropy_with_logits`` (a built-in op with a fused, twice differentiable
    backward). With ``pos_weight = alpha / beta`` its term is ``w [(alpha / beta) y L+(x) + (1 - y)
    L-(x)]``, linear in ``y``, so ``beta`` times its sum is the loss; for ``beta = 0``, ``L+(x)``
    is the cross-entropy of target 1, so ``S+`` is its sum weighted by ``c = w y``."""
    x = batch.x
    if beta > 0.0:
        positive_weight = torch.full((1,), alpha / beta, dtype=x.dtype)
        if batch.weighted:
            loss = torch.binary_cross_entropy_with_logits(x, batch.y, batch.w, positive_weight, _SUM).mul(beta)
        else:  # beta as the weight: no multiplication node
            weight = torch.full((1,), beta, dtype=x.dtype)
            loss = torch.binary_cross_entropy_with_logits(x, batch.y, weight, positive_weight, _SUM)
    else:  # alpha c as the weight
        weight = torch.mul(batch.on_positives, alpha)
        loss = torch.binary_cross_entropy_with_logits(x, torch.ones_like(x), weight, None, _SUM)
    return loss.add_(constant) if constant else loss


def rate_loss(lagrangian, batch, sums, lam: float, t: float, p: float) -> tuple[torch.Tensor, dict]:
    """:func:`~goloss._losses.rate_loss_impl` (``reduction`` ``"mean"`` or ``"sum"``) of a
    ``[B, 1]`` batch from its :func:`batch_sums`, with the multiplier, target and prior as
    numbers. Returns the loss (differentiable in ``batch.x`` only) and aux as numbers."""
    s_positive, s_negative, tp, fp, positives, negatives = sums
    active = batch.active_rows if isinstance(batch.active_rows, float) else batch.active_rows.item()
    a, b, c = lagrangian.violation(t, p, batch.scale * active)
    keep = float(lagrangian.objective_on_positives)
    objective = s_positive if keep else s_negative
    violation = c + a * s_positive + b * s_negative
    norm = batch.norm
    alpha, beta = (keep + lam * a) / norm, (1.0 - keep + lam * b) / norm  # dloss/dS+, dloss/dS-
    if batch.surrogate_type == "xent" and beta >= 0.0:
        loss = _cross_entropy_form(batch, alpha, beta, lam * c / norm)
    else:
        loss = apply_function(
            _Loss, batch.x, batch.on_positives, batch.on_negatives, (objective + lam * violation) / norm,
            alpha, beta, batch.surrogate_type == "hinge",
        )
    tp_lower, fp_upper = bounds_from_sums(positives, s_positive, s_negative, batch.scale)
    rate, strict = scalar_rate_and_violation(tp, fp, positives, negatives, t, lagrangian.constraint)
    aux = {
        "lambdas": lam,
        "label_priors": p,
        "true_positives_lower_bound": tp_lower,
        "false_positives_upper_bound": fp_upper,
        "objective": objective / norm,
        "violation": violation / norm,
        "strict_violation": strict,
        lagrangian.constraint: rate,
        "true_positives": tp,
        "false_positives": fp,
        "positives": positives,
        "negatives": negatives,
    }
    return loss, aux
