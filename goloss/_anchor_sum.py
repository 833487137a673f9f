"""The per-anchor surrogate sum of the PR-AUC loss without ``[B, L, A]`` tensors kept for backward.

For logits ``x [B, L]``, labels ``y``, weights ``w``, biases ``b [L, A]``, and per-anchor
weights ``c = 1 + lam (1 - a)``, ``d = lam a`` (``[L, A]``):

.. math::

   g_{bl} = w_{bl} \\sum_k c_{lk}\\, y_{bl}\\, L^+(x_{bl} + b_{lk}) + d_{lk} (1 - y_{bl})\\, L^-(x_{bl} + b_{lk})

Autograd through the plain expression stores several ``[B, L, A]`` tensors; this Function keeps
only the ``[B, L]`` and ``[L, A]`` inputs and recomputes the anchor axis in backward, so the peak
extra memory stays at a few ``[B, L, A]`` temporaries and nothing of that size lives between
forward and backward.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ._surrogate_sums import apply_function


def _anchor_weights(lambdas, anchors):
    return 1.0 + lambdas * (1.0 - anchors), lambdas * anchors


def _per_label_sum(values, coefficients):
    """``sum_k values[b, l, k] * coefficients[l, k]`` -> ``[B, L]``."""
    return torch.einsum("blk,lk->bl", values, coefficients)


def _label_major(logits, biases):
    """``z[l, b, k] = logits[b, l] + biases[l, k]``: ``[L, B, A]``, so that sums over the anchor
    axis or the batch axis are batched matrix products with no copy."""
    return logits.t().unsqueeze(-1) + biases.unsqueeze(1)


def _softplus_of_negative(z):
    """``softplus(-z)`` in one kernel (``softplus`` with ``beta=-1`` is ``-softplus(-z)``)."""
    return F.softplus(z, beta=-1.0).neg_()


def _anchor_sums(values, columns):
    """``[L, B, A] x [L, A, n] -> [B, L, n]``: per-label sums over the anchor axis."""
    return torch.bmm(values, columns).transpose(0, 1)


def _batch_sums(rows, values):
    """``[L, n, B] x [L, B, A] -> [L, n, A]``: per-label weighted sums over the batch axis."""
    return torch.bmm(rows, values)


class AnchorSum(torch.autograd.Function):
    """``g [B, L]`` above, for ``hinge`` False (xent) or True; differentiable in x, w, b and lambdas.

    Peak extra memory: two ``[L, B, A]`` tensors in forward and in backward.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(logits, labels, weights, biases, lambdas, anchors, hinge):
        c, d = _anchor_weights(lambdas, anchors)
        shifted = _label_major(logits, biases)
        on_positive_rows = weights * labels
        on_negative_rows = weights - on_positive_rows
        rows = torch.stack([on_positive_rows.t(), on_negative_rows.t()], 1)  # [L, 2, B]
        if hinge:
            positive = torch.relu_(1.0 - shifted)
            on_positives = _anchor_sums(positive, c.unsqueeze(-1))[..., 0]
            positive_sums = _batch_sums(rows[:, :1], positive)[:, 0]
            del positive
            negative = torch.relu_(shifted.add_(1.0))
            on_negatives = _anchor_sums(negative, d.unsqueeze(-1))[..., 0]
            negative_sums = _batch_sums(rows[:, 1:], negative)[:, 0]
        else:
            positive = _softplus_of_negative(shifted)
            sums = _anchor_sums(positive, torch.stack([c, d], -1))
            batch = _batch_sums(rows, positive)  # [L, 2, A]
            on_positives, positive_sums = sums[..., 0], batch[:, 0]
            # softplus(z) = softplus(-z) + z, summed without a second [L, B, A] tensor.
            on_negatives = sums[..., 1] + logits * d.sum(-1) + (d * biases).sum(-1)
            negative_sums = batch[:, 1] + ((on_negative_rows * logits).sum(0).unsqueeze(-1)
                                           + on_negative_rows.sum(0).unsqueeze(-1) * biases)
        unweighted = labels * on_positives + (1.0 - labels) * on_negatives
        return weights * unweighted, unweighted, positive_sums, negative_sums

    @staticmethod
    def setup_context(ctx, inputs, output):
        logits, labels, weights, biases, lambdas, anchors, hinge = inputs
        ctx.hinge = hinge
        ctx.save_for_backward(logits, labels, weights, biases, lambdas, anchors, output[1])
        ctx.save_for_forward(logits, labels, weights, biases, lambdas, anchors, output[1])
        ctx.mark_non_differentiable(*output[1:])

    @staticmethod
    def _slopes_and_parts(hinge, shifted):
        """``dL+/dz``, ``dL-/dz``, ``L+``, ``L-`` on ``[B, L, A]``."""
        if hinge:
            return (-(shifted < 1.0).to(shifted.dtype), (shifted > -1.0).to(shifted.dtype),
                    torch.relu(1.0 - shifted), torch.relu(1.0 + shifted))
        positive = -F.logsigmoid(shifted)
        slope_positive = -torch.sigmoid(-shifted)
        return slope_positive, 1.0 + slope_positive, positive, positive + shifted

    @staticmethod
    def jvp(ctx, logits_t, labels_t, weights_t, biases_t, lambdas_t, anchors_t, hinge_t):
        logits, labels, weights, biases, lambdas, anchors, unweighted = ctx.saved_tensors
        c, d = _anchor_weights(lambdas, anchors)
        shifted = logits.unsqueeze(-1) + biases
        slope_positive, slope_negative, positive, negative = AnchorSum._slopes_and_parts(ctx.hinge, shifted)
        dz = labels.unsqueeze(-1) * slope_positive * c + (1.0 - labels.unsqueeze(-1)) * slope_negative * d
        tangent = torch.zeros_like(unweighted)
        if logits_t is not None:
            tangent = tangent + logits_t * dz.sum(-1)
        if biases_t is not None:
            tangent = tangent + _per_label_sum(dz, biases_t)
        if lambdas_t is not None:
            tangent = tangent + labels * _per_label_sum(positive, lambdas_t * (1.0 - anchors))
            tangent = tangent + (1.0 - labels) * _per_label_sum(negative, lambdas_t * anchors)
        tangent = weights * tangent
        if weights_t is not None:
            tangent = tangent + weights_t * unweighted
        return tangent, None, None, None

    @staticmethod
    def backward(ctx, grad_output, *_):
        logits, labels, weights, biases, lambdas, anchors, unweighted = ctx.saved_tensors
        c, d = _anchor_weights(lambdas, anchors)
        scaled = grad_output * weights
        on_positives, on_negatives = scaled * labels, scaled * (1.0 - labels)
        rows = torch.stack([on_positives.t(), on_negatives.t()], 1)  # [L, 2, B]
        shifted = _label_major(logits, biases)
        if ctx.hinge:
            below = (shifted < 1.0).to(shifted.dtype)  # -dL+/dz
            slope_sum_positive = _anchor_sums(below, c.unsqueeze(-1))[..., 0]
            batch_positive = _batch_sums(rows[:, :1], below)[:, 0]
            above = below.copy_(shifted > -1.0)  # dL-/dz, reusing the buffer
            slope_sum_negative = _anchor_sums(above, d.unsqueeze(-1))[..., 0]
            batch_negative = _batch_sums(rows[:, 1:], above)[:, 0]
            del below, above
            grad_logits = -labels * slope_sum_positive + (1.0 - labels) * slope_sum_negative
            grad_biases = -c * batch_positive + d * batch_negative
            grad_c = _batch_sums(rows[:, :1], torch.relu(1.0 - shifted))[:, 0]
            grad_d = _batch_sums(rows[:, 1:], torch.relu_(shifted.add_(1.0)))[:, 0]
        else:
            sigmoid = torch.sigmoid(shifted)  # dL-/dz; dL+/dz = sigmoid - 1
            anchor = _anchor_sums(sigmoid, torch.stack([c, d], -1))  # [B, L, 2]
            batch = _batch_sums(rows, sigmoid)  # [L, 2, A]
            del sigmoid
            grad_logits = labels * (anchor[..., 0] - c.sum(-1)) + (1.0 - labels) * anchor[..., 1]
            grad_biases = c * (batch[:, 0] - on_positives.sum(0).unsqueeze(-1)) + d * batch[:, 1]
            positive = _batch_sums(rows, _softplus_of_negative(shifted))  # [L, 2, A]
            grad_c = positive[:, 0]
            # sum_b on_neg * softplus(z) = sum_b on_neg * (softplus(-z) + x + b_k)
            grad_d = positive[:, 1] + ((on_negatives * logits).sum(0).unsqueeze(-1)
                                       + on_negatives.sum(0).unsqueeze(-1) * biases)
        grad_lambdas = (1.0 - anchors) * grad_c + anchors * grad_d
        return scaled * grad_logits, None, grad_output * unweighted, grad_biases, grad_lambdas, None, None


def anchor_sum_reference(logits, labels, weights, biases, lambdas, anchors, hinge):
    """The same ``g [B, L]`` written as plain autograd ops over ``[B, L, A]``."""
    c, d = _anchor_weights(lambdas, anchors)
    shifted = logits.unsqueeze(-1) + biases
    _, _, positive, negative = AnchorSum._slopes_and_parts(hinge, shifted)
    y = labels.unsqueeze(-1)
    return weights * (c * y * positive + d * (1.0 - y) * negative).sum(-1)


def _per_anchor_sums_reference(logits, labels, weights, biases, hinge):
    """``(sum_b w y L+(x + b_k), sum_b w (1 - y) L-(x + b_k))``, ``[L, A]`` each, as plain ops."""
    _, _, positive, negative = AnchorSum._slopes_and_parts(hinge, logits.unsqueeze(-1) + biases)
    on_positive = (weights * labels).unsqueeze(-1)
    return (on_positive * positive).sum(0), ((weights.unsqueeze(-1) - on_positive) * negative).sum(0)


def anchor_sum(logits, labels, weights, biases, lambdas, anchors, hinge: bool):
    """``(g [B, L], sum_b w y L+ [L, A], sum_b w (1 - y) L- [L, A])``; the sums carry no gradient.

    The memory-lean :class:`AnchorSum` in eager mode and under ``torch.func``; the plain
    expression under ``torch.compile`` (Dynamo cannot trace a custom ``jvp``, and the compiler
    fuses the anchor axis itself).
    """
    if torch.compiler.is_compiling():
        sums = _per_anchor_sums_reference(logits.detach(), labels, weights.detach(), biases.detach(), hinge)
        return (anchor_sum_reference(logits, labels, weights, biases, lambdas, anchors, hinge), *sums)
    weighted, _, positive_sums, negative_sums = apply_function(AnchorSum, logits, labels, weights, biases, lambdas, anchors, hinge)
    return weighted, positive_sums, negative_sums
