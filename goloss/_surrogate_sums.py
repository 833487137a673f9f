"""Kernel: the per-label batch sums of the weighted surrogate, ``S+ = sum_b c L+(x)`` and
``S- = sum_b d L-(x)`` for ``x, c, d [B, L]`` (``c = w y``, ``d = w (1 - y)``).

The rate losses with ``reduction="mean"`` or ``"sum"``, and every bound, need only these sums.
The Function evaluates the surrogate once (:func:`~goloss._math.surrogate_values`), contracts
over the batch with dot products, keeps only its inputs for backward and forms the gradient with
:func:`~goloss._math.logits_grad`. Plain ops + autograd are the reference (``tests/test_surrogate_sums.py``)
and the path for small inputs and under ``torch.compile`` (:func:`~goloss._dispatch.use_kernel`).
Measured gain over the plain ops: ``python -m benchmarks.functions``.
"""

from __future__ import annotations

from typing import Optional

import torch

from . import _dispatch
from ._math import logits_grad, loss_if_positive, surrogate_values


def batch_dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``(a * b).sum(0)`` over the batch axis of ``b [B, ...]`` (``a`` broadcasts to it).

    Small inputs: ``vecdot`` (the least per-call overhead). One label (``b [B, 1]``): a single
    dot product, with no product tensor (a reduction over the batch axis of a ``[B, 1]``
    product is a slow strided one). Otherwise the product and a contiguous reduction.
    """
    a = a.expand_as(b)
    if _dispatch.small(b):
        return torch.linalg.vecdot(a, b, dim=0)
    if b.dim() == 2 and b.shape[1] == 1:
        return torch.dot(a.reshape(-1), b.reshape(-1)).reshape(1)
    return (a * b).sum(0)


def batch_sum(part: torch.Tensor) -> torch.Tensor:
    """``part.sum(-2)``; one label as a contiguous sum (a strided reduction of ``[B, 1]`` is slow)."""
    if part.dim() == 2 and part.shape[1] == 1:
        return part.reshape(-1).sum(0, keepdim=True)
    return part.sum(-2)


def plain_surrogate_sums(x, on_positives, on_negatives, hinge: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """``(S+ [L], S- [L])`` as plain ops (the reference, and the path where no kernel runs;
    ``on_negatives`` None: ``1 - on_positives``). Cross-entropy: ``-L+(x)`` in one pass,
    ``L-(x) = x - (-L+(x))``."""
    if hinge:
        positive, negative = surrogate_values(x, True)
        on_negatives = 1.0 - on_positives if on_negatives is None else on_negatives
        return batch_dot(on_positives, positive), batch_dot(on_negatives, negative)
    signed = loss_if_positive(x, False, negated=True)
    negative = x - signed
    if on_negatives is None and not _dispatch.small(x):  # sum (1 - c) L- = sum L- - sum c L-
        return -batch_dot(on_positives, signed), batch_sum(negative) - batch_dot(on_positives, negative)
    on_negatives = 1.0 - on_positives if on_negatives is None else on_negatives  # fewer ops when small
    return -batch_dot(on_positives, signed), batch_dot(on_negatives, negative)


class SurrogateSums(torch.autograd.Function):
    """``(S+ [L], S- [L])``; differentiable in ``x`` and both weights (backward; no ``jvp``:
    under forward-mode AD the plain ops run).

    Measured gain over :func:`plain_surrogate_sums` (``python -m benchmarks.functions``, one
    thread, cross-entropy): with several labels from 2^17 elements 1.42-1.64x in 15 of 17 runs,
    1.26x and 1.34x in two (its products with the weights in place; 1.08-1.21x before); with one
    label 1.43-1.58x at 2^20 and 1.17-1.40x at 2^17. Where it runs: :data:`goloss._dispatch.KERNELS`.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(x, on_positives, on_negatives, hinge):
        if hinge:
            return plain_surrogate_sums(x, on_positives, on_negatives, True)
        signed = loss_if_positive(x, False, negated=True)  # -L+(x), in one pass
        weights = (on_positives,) if on_negatives is None else (on_positives, on_negatives)
        if _dispatch.multiply_in_place(x, *weights):
            # The products with the weights in place on two fresh tensors, -L+(x) and L-(x).
            # Unweighted labels: sum (1 - c) L- = sum L- - sum c L-.
            negative = x - signed
            if on_negatives is None:
                negative_sum = batch_sum(negative)
                negative_sum = negative_sum - batch_sum(negative.mul_(on_positives))
            else:
                negative_sum = batch_sum(negative.mul_(on_negatives))
            return batch_sum(signed.mul_(on_positives)).neg_(), negative_sum
        positive_sum = batch_dot(on_positives, signed).neg_()
        # L-(x), in place once S+ is summed (under a transform out of place: it may batch x, not signed)
        negative = torch.sub(x, signed, out=signed) if _dispatch.plain_eager() else x - signed
        if on_negatives is None:
            return positive_sum, batch_sum(negative) - batch_dot(on_positives, negative)
        return positive_sum, batch_dot(on_negatives, negative)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, on_positives, on_negatives, hinge = inputs
        ctx.hinge = hinge
        ctx.save_for_backward(x, on_positives, on_negatives)

    @staticmethod
    def backward(ctx, grad_positive, grad_negative):
        x, on_positives, on_negatives = ctx.saved_tensors
        needs = ctx.needs_input_grad
        grad_x = grad_on_positives = grad_on_negatives = None
        if needs[0]:
            grad_x = logits_grad(x, on_positives, grad_positive, on_negatives, grad_negative, ctx.hinge)
        if needs[1] or needs[2]:
            positive, negative = surrogate_values(x, ctx.hinge)
            grad_on_positives = grad_positive * positive if needs[1] else None
            if needs[1] and on_negatives is None:  # d = 1 - c moves with c
                grad_on_positives = grad_on_positives - grad_negative * negative
            grad_on_negatives = grad_negative * negative if needs[2] else None
        return grad_x, grad_on_positives, grad_on_negatives, None


def surrogate_sums(
    x: torch.Tensor, on_positives: torch.Tensor, on_negatives: Optional[torch.Tensor], hinge: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(S+, S-)``, each ``x.shape[1:]`` (``on_negatives`` None: ``1 - on_positives``, with no
    ``[B, L]`` tensor for it in the kernel): the kernel where :func:`~goloss._dispatch.use_kernel`
    says so, the plain ops otherwise."""
    if _dispatch.use_kernel("sums", x, hinge):
        return _dispatch.apply(SurrogateSums, x, on_positives, on_negatives, hinge)
    return plain_surrogate_sums(x, on_positives, on_negatives, hinge)
