"""Kernel: the per-anchor surrogate sum of the PR-AUC loss without ``[B, L, A]`` tensors kept for backward.

For logits ``x [B, L]``, labels ``y``, weights ``w``, biases ``b [L, A]``, and per-anchor row
weights ``alpha = 1 + lam (1 - a)``, ``beta = lam a`` (``[L, A]``; recall at precision ``a_k``,
:func:`~goloss._math.row_weights` of :data:`~goloss._math.RECALL_AT_PRECISION`):

.. math::

   g_{bl} = w_{bl} \\sum_k \\alpha_{lk}\\, y_{bl}\\, L^+(x_{bl} + b_{lk})
            + \\beta_{lk} (1 - y_{bl})\\, L^-(x_{bl} + b_{lk})

Autograd through the plain expression (:func:`plain_anchor_sum`, the reference) stores several
``[B, L, A]`` tensors; this Function keeps only the ``[B, L]`` and ``[L, A]`` inputs, works in
label-major ``[L, B, A]`` layout where sums over the anchor or the batch axis are batched matrix
products, and recomputes the anchor axis in backward: peak extra memory two ``[L, B, A]``
tensors, nothing of that size kept between forward and backward. Cross-entropy sums
``L-(z) = L+(z) + z`` and ``dL+/dz = dL-/dz - 1`` (:mod:`goloss._math`) without a second
``[L, B, A]`` tensor. Measured gain: ``python -m benchmarks.functions``.
"""

from __future__ import annotations

import torch

from . import _dispatch
from ._math import (
    RECALL_AT_PRECISION,
    above_threshold,
    loss_if_negative,
    loss_if_positive,
    row_weights,
    slope_if_negative,
    slope_if_positive,
    surrogate_values,
)


def anchor_weights(lambdas: torch.Tensor, anchors: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(alpha, beta)`` ``[L, A]``: the row weights of recall at each anchor precision."""
    a, b, _ = RECALL_AT_PRECISION.coefficients(anchors, 0.0, 0.0)
    return row_weights(RECALL_AT_PRECISION, lambdas, a, b)  # type: ignore[return-value]


def _label_major(logits, biases):
    """``z[l, b, k] = logits[b, l] + biases[l, k]``: ``[L, B, A]``."""
    return logits.t().unsqueeze(-1) + biases.unsqueeze(1)


def _anchor_sums(values, columns):
    """``[L, B, A] x [L, A, n] -> [B, L, n]``: per-label sums over the anchor axis."""
    return torch.bmm(values, columns).transpose(0, 1)


def _batch_sums(rows, values):
    """``[L, n, B] x [L, B, A] -> [L, n, A]``: per-label weighted sums over the batch axis."""
    return torch.bmm(rows, values)


def _shifted_sums(on_rows, logits, biases):
    """``sum_b on_rows (x + b_k)``, ``[L, A]``: the sum of ``z`` that ``L- = L+ + z`` adds."""
    return (on_rows * logits).sum(0).unsqueeze(-1) + on_rows.sum(0).unsqueeze(-1) * biases


class AnchorSum(torch.autograd.Function):
    """``(g [B, L], g / w, sum_b w y L+ [L, A], sum_b w (1 - y) L- [L, A], TP [L, A], FP [L, A])``;
    differentiable in x, w, b and lambdas (the outputs after ``g`` carry no gradient); no ``jvp``:
    under forward-mode AD the plain ops run.

    Measured gain over :func:`plain_anchor_sum` (``python -m benchmarks.functions``, one thread):
    2.13x / 1.79x (cross-entropy / hinge) at B = 2^15, A = 20 and 3.4x / 1.9x at B = 2^18, with
    64-100x less memory kept for backward; where it runs: :data:`goloss._dispatch.KERNELS`.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(logits, labels, weights, biases, lambdas, anchors, hinge):
        alpha, beta = anchor_weights(lambdas, anchors)
        shifted = _label_major(logits, biases)
        on_positive_rows = weights * labels
        on_negative_rows = weights - on_positive_rows
        rows = torch.stack([on_positive_rows.t(), on_negative_rows.t()], 1)  # [L, 2, B]
        if hinge:
            positive = loss_if_positive(shifted, True)
            on_positives = _anchor_sums(positive, alpha.unsqueeze(-1))[..., 0]
            positive_sums = _batch_sums(rows[:, :1], positive)[:, 0]
            del positive
            negative = loss_if_negative(shifted, True)
            on_negatives = _anchor_sums(negative, beta.unsqueeze(-1))[..., 0]
            negative_sums = _batch_sums(rows[:, 1:], negative)[:, 0]
            del negative
        else:  # -L+ in one pass; the signs are flipped on the [B, L, 2] and [L, 2, A] sums
            signed = loss_if_positive(shifted, False, negated=True)
            sums = _anchor_sums(signed, torch.stack([alpha, beta], -1)).neg_()
            batch = _batch_sums(rows, signed).neg_()  # [L, 2, A]
            del signed
            on_positives, positive_sums = sums[..., 0], batch[:, 0]
            on_negatives = sums[..., 1] + logits * beta.sum(-1) + (beta * biases).sum(-1)
            negative_sums = batch[:, 1] + _shifted_sums(on_negative_rows, logits, biases)
        # The counts at each anchor's threshold, on the same [L, B, A] tensor (a fresh one).
        counts = _batch_sums(rows, above_threshold(shifted, in_place=True))  # [L, 2, A]: TP, FP
        unweighted = labels * on_positives + (1.0 - labels) * on_negatives
        return weights * unweighted, unweighted, positive_sums, negative_sums, counts[:, 0], counts[:, 1]

    @staticmethod
    def setup_context(ctx, inputs, output):
        logits, labels, weights, biases, lambdas, anchors, hinge = inputs
        ctx.hinge = hinge
        ctx.save_for_backward(logits, labels, weights, biases, lambdas, anchors, output[1])
        ctx.mark_non_differentiable(*output[1:])

    @staticmethod
    def backward(ctx, grad_output, *_):
        logits, labels, weights, biases, lambdas, anchors, unweighted = ctx.saved_tensors
        alpha, beta = anchor_weights(lambdas, anchors)
        scaled = grad_output * weights
        on_positives, on_negatives = scaled * labels, scaled * (1.0 - labels)
        rows = torch.stack([on_positives.t(), on_negatives.t()], 1)  # [L, 2, B]
        shifted = _label_major(logits, biases)
        if ctx.hinge:
            slope = slope_if_positive(shifted, True)
            slope_sum_positive = _anchor_sums(slope, alpha.unsqueeze(-1))[..., 0]
            batch_positive = _batch_sums(rows[:, :1], slope)[:, 0]
            slope = slope_if_negative(shifted, True)
            slope_sum_negative = _anchor_sums(slope, beta.unsqueeze(-1))[..., 0]
            batch_negative = _batch_sums(rows[:, 1:], slope)[:, 0]
            del slope
            grad_logits = labels * slope_sum_positive + (1.0 - labels) * slope_sum_negative
            grad_biases = alpha * batch_positive + beta * batch_negative
            if ctx.needs_input_grad[4]:
                positive, negative = surrogate_values(shifted, True)
                grad_alpha = _batch_sums(rows[:, :1], positive)[:, 0]
                grad_beta = _batch_sums(rows[:, 1:], negative)[:, 0]
        else:
            slope = slope_if_negative(shifted, False)  # dL-/dz; dL+/dz = slope - 1
            anchor = _anchor_sums(slope, torch.stack([alpha, beta], -1))  # [B, L, 2]
            batch = _batch_sums(rows, slope)  # [L, 2, A]
            del slope
            grad_logits = labels * (anchor[..., 0] - alpha.sum(-1)) + (1.0 - labels) * anchor[..., 1]
            grad_biases = alpha * (batch[:, 0] - on_positives.sum(0).unsqueeze(-1)) + beta * batch[:, 1]
            if ctx.needs_input_grad[4]:
                positive = _batch_sums(rows, loss_if_positive(shifted, False, negated=True)).neg_()  # [L, 2, A]
                grad_alpha = positive[:, 0]
                grad_beta = positive[:, 1] + _shifted_sums(on_negatives, logits, biases)
        # The multipliers' gradient (one more pass over [L, B, A]) only when they need one.
        grad_lambdas = (1.0 - anchors) * grad_alpha + anchors * grad_beta if ctx.needs_input_grad[4] else None
        grad_weights = grad_output * unweighted if ctx.needs_input_grad[2] else None
        return scaled * grad_logits, None, grad_weights, grad_biases, grad_lambdas, None, None


def plain_anchor_sum(logits, labels, weights, biases, lambdas, anchors, hinge: bool):
    """:class:`AnchorSum` as plain ops over ``[B, L, A]``: the reference, and the small and compiled path."""
    alpha, beta = anchor_weights(lambdas, anchors)
    shifted = logits.unsqueeze(-1) + biases
    positive, negative = surrogate_values(shifted, hinge)
    on_positive = (weights * labels).unsqueeze(-1)
    on_negative = weights.unsqueeze(-1) - on_positive
    weighted = (alpha * on_positive * positive + beta * on_negative * negative).sum(-1)
    with torch.no_grad():
        predicted = above_threshold(shifted)
        sums = (on_positive * positive).sum(0), (on_negative * negative).sum(0)
        counts = (on_positive * predicted).sum(0), (on_negative * predicted).sum(0)
    return weighted, *sums, *counts


def anchor_sum(logits, labels, weights, biases, lambdas, anchors, hinge: bool):
    """``(g [B, L], sum_b w y L+ [L, A], sum_b w (1 - y) L- [L, A], TP [L, A], FP [L, A])``, the last
    four without gradient (TP and FP: the weighted counts at ``x + b_k > 0``): the kernel where
    :func:`~goloss._dispatch.use_kernel` says so, the plain ops otherwise."""
    if not _dispatch.use_kernel("anchor_sum", logits, hinge, anchors.numel()):
        return plain_anchor_sum(logits, labels, weights, biases, lambdas, anchors, hinge)
    weighted, _, *sums = _dispatch.apply(AnchorSum, logits, labels, weights, biases, lambdas, anchors, hinge)
    return (weighted, *sums)
