"""The per-row Lagrangian of a rate loss with ``reduction="none"``, and its batch sums, in one Function.

For logits ``x [B, L]``, the weights on positives and on negatives ``c = w * y`` and
``d = w * (1 - y)`` (``d`` None: ``1 - c``, unweighted labels, with no ``[B, L]`` tensor for it),
per-label coefficients ``alpha``, ``beta``, ``gamma`` and the mask of rows
of non-zero weight ``m``:

.. math::

   P = c\\,L^+(x), \\quad N = d\\,L^-(x), \\quad
   \\mathrm{rows} = \\alpha P + \\beta N + \\gamma m, \\quad
   S^+ = \\sum_b P_b, \\quad S^- = \\sum_b N_b

The coefficients may carry leading axes (``[K, 1, L]``: a ``vmap`` over K targets or
multipliers), so ``rows`` is ``[K, B, L]`` while ``P`` and ``N`` are computed once. Written as
plain autograd ops, every product would be a ``[B, L]`` (or ``[K, B, L]``) temporary forward and
backward; here the forward is a few in-place passes and the backward forms the logits' gradient
in one expression. When the incoming gradient is constant along the batch axis (it comes from
``.sum()``, stride 0), every contraction over the batch is a product of ``[L]``-sized numbers
and the sums ``S+``, ``S-`` already at hand, and a contraction over K costs nothing per row.
"""

from __future__ import annotations

import torch

from . import _dispatch
from ._large_outputs import empty_output
from ._math import logits_grad, loss_if_positive, surrogate_values
from ._surrogate_sums import batch_dot, batch_sum


def _sum_to(tensor: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """``tensor`` summed down to ``shape`` (the inverse of broadcasting)."""
    return tensor if tensor.shape == shape else tensor.sum_to_size(shape)


def _contract(grad: torch.Tensor, part: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """``sum(grad * part)`` down to ``shape``; :func:`batch_dot` where both are ``[B, L]``."""
    if grad.shape == part.shape and part.dim() == 2:
        return _sum_to(batch_dot(grad, part), shape)
    return _sum_to(grad * part, shape)


def _swept_rows(positive, alpha, negative, beta, gamma, mask, eager: bool) -> torch.Tensor:
    """``alpha * positive + beta * negative + gamma * mask`` for coefficients ``[K, 1, L]`` and data
    ``[B, L]``: per label one ``[K, 3] @ [3, B]`` product, so ``[K, B, L]`` is written once (in
    plain eager mode into an :func:`~goloss._large_outputs.empty_output`)."""
    size = max(t.shape[0] if t.dim() == 3 else 1 for t in (alpha, beta, gamma))
    labels, batch = positive.shape[-1], positive.shape[-2]
    coefficients = torch.stack([t.expand(size, 1, labels) for t in (alpha, beta, gamma)], -1)  # [K, 1, L, 3]
    constant = torch.ones((), dtype=positive.dtype, device=positive.device) if mask is None else mask
    data = torch.stack([positive, negative, constant.expand_as(positive)])  # [3, B, L]
    out = empty_output((labels, size, batch), positive.dtype, positive.device) if eager else None
    if labels == 1:  # one matrix product, [K, 3] @ [3, B]
        out = None if out is None else out[0]
        return torch.mm(coefficients.reshape(size, 3), data.reshape(3, -1), out=out).unsqueeze(-1)
    rows = torch.bmm(coefficients.squeeze(1).transpose(0, 1), data.permute(2, 0, 1), out=out)  # [L, K, B]
    return rows.permute(1, 2, 0)


def _data_shape(x, c, d) -> torch.Size:
    return torch.broadcast_shapes(x.shape, c.shape) if d is None else torch.broadcast_shapes(x.shape, c.shape, d.shape)


class SurrogateRows(torch.autograd.Function):
    """``(rows, S+, S-)`` above; differentiable in ``x``, ``c``, ``d`` and the coefficients
    (backward, and a vmap rule that keeps ``P`` and ``N`` unbatched; no ``jvp``: under
    forward-mode AD the plain ops run).

    Measured gain over :func:`plain_surrogate_rows` (``python -m benchmarks.functions``, one
    thread): 1.58x (one label) and 1.35x (eight labels) at 2^20 elements, cross-entropy; where it
    runs: :data:`goloss._dispatch.KERNELS`.
    """

    @staticmethod
    def forward(x, c, d, alpha, beta, gamma, mask, hinge):
        eager = _dispatch.plain_eager()
        data_shape = _data_shape(x, c, d)
        # Fresh, scaled in place where the shapes allow. Cross-entropy keeps -P (``signed``, one pass
        # less) and flips the sign of alpha and of S+ instead.
        if hinge:
            positive, negative = surrogate_values(x, True)
        else:
            positive = loss_if_positive(x, False, negated=True)
            negative = x - positive  # L-(x) = L+(x) + x
        sign = 1.0 if hinge else -1.0
        fits = eager and x.shape == data_shape
        positive = positive.mul_(c) if fits else positive * c
        if d is not None:
            negative = negative.mul_(d) if fits else negative * d
        else:  # (1 - c) L- = L- - c L-
            negative = negative.addcmul_(negative, c, value=-1.0) if fits else negative - negative * c
        if max(alpha.dim(), beta.dim(), gamma.dim()) > 2 == len(data_shape):  # a sweep over K coefficients
            rows = _swept_rows(positive, sign * alpha, negative, beta, gamma, mask, eager)
        else:  # alpha P, + gamma, + beta N: passes that vectorise (an addcmul with two broadcast operands does not)
            rows = positive * (sign * alpha)
            constant = gamma if mask is None else gamma * mask
            shape = torch.broadcast_shapes(rows.shape, constant.shape, beta.shape, negative.shape)
            fits = eager and rows.shape == shape
            rows = rows.add_(constant).addcmul_(beta, negative) if fits else rows + constant + beta * negative
        return rows, sign * batch_sum(positive), batch_sum(negative), positive, negative

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, c, d, alpha, beta, gamma, mask, hinge = inputs
        ctx.hinge = hinge
        ctx.gamma_shape = gamma.shape
        ctx.set_materialize_grads(False)  # unused outputs (often the sums, always P and N) get None
        ctx.mark_non_differentiable(output[3], output[4])  # +-P and N, kept for the coefficients' gradients
        ctx.save_for_backward(x, c, d, alpha, beta, mask, *output[1:])

    @staticmethod
    def backward(ctx, grad_rows, grad_positive_sum, grad_negative_sum, _grad_positive, _grad_negative):
        x, c, d, alpha, beta, mask, positive_sum, negative_sum, signed, negative = ctx.saved_tensors
        needs = ctx.needs_input_grad
        data_shape = _data_shape(x, c, d)
        if grad_rows is None:  # only the sums are used: a stride-0 zero takes the cheap path
            shape = torch.broadcast_shapes(data_shape, alpha.shape, beta.shape, ctx.gamma_shape)
            grad_rows = torch.zeros((), dtype=x.dtype, device=x.device).expand(shape)
        # g constant along the batch axis (from .sum()): work with G = g[..., :1, :] instead.
        uniform = mask is None and grad_rows.dim() >= 2 and grad_rows.stride(-2) == 0
        if uniform:
            grad_rows = grad_rows.narrow(-2, 0, 1)
            reach = torch.Size((*data_shape[:-2], 1, data_shape[-1]))
        else:
            reach = data_shape
        # Cross-entropy, one gradient per row of the data and none on the sums: in six passes,
        # g * (sigmoid * (alpha c + beta d) - alpha c).
        direct = (needs[0] and not ctx.hinge and not uniform and grad_positive_sum is None
                  and grad_negative_sum is None and grad_rows.shape == x.shape == data_shape
                  and _dispatch.in_place_in_backward())
        grad_x = grad_c = grad_d = grad_alpha = grad_beta = grad_gamma = None
        if direct:
            grad_x = logits_grad(x, c, alpha, d, beta, False).mul_(grad_rows)
        if (needs[0] and not direct) or needs[1] or needs[2]:
            # The gradient reaching P and N (summed over any coefficient axis K not in the data).
            on_positive = _sum_to(grad_rows * alpha, reach)
            on_negative = _sum_to(grad_rows * beta, reach)
            if grad_positive_sum is not None:
                on_positive = on_positive + grad_positive_sum.unsqueeze(-2)
            if grad_negative_sum is not None:
                on_negative = on_negative + grad_negative_sum.unsqueeze(-2)
            if needs[0] and not direct:
                grad_x = _sum_to(logits_grad(x, c, on_positive, d, on_negative, ctx.hinge), x.shape)
        if needs[1] or needs[2]:
            positive_part, negative_part = surrogate_values(x, ctx.hinge)
            if needs[1]:  # with d = 1 - c, c also reaches N, with the opposite sign
                on_c = on_positive * positive_part
                grad_c = _sum_to(on_c if d is not None else on_c - on_negative * negative_part, c.shape)
            grad_d = _sum_to(on_negative * negative_part, d.shape) if needs[2] else None
        if uniform:  # sum_b g P = G S+, sum_b g N = G S-, sum_b g = G B
            grad_alpha = _sum_to(grad_rows * positive_sum.unsqueeze(-2), alpha.shape) if needs[3] else None
            grad_beta = _sum_to(grad_rows * negative_sum.unsqueeze(-2), beta.shape) if needs[4] else None
            grad_gamma = _sum_to(grad_rows * float(data_shape[-2]), ctx.gamma_shape) if needs[5] else None
        else:
            grad_alpha = _contract(grad_rows, signed, alpha.shape) if needs[3] else None
            grad_alpha = grad_alpha if ctx.hinge or grad_alpha is None else -grad_alpha
            grad_beta = _contract(grad_rows, negative, beta.shape) if needs[4] else None
            if needs[5]:
                grad_gamma = _sum_to(grad_rows if mask is None else grad_rows * mask, ctx.gamma_shape)
        return grad_x, grad_c, grad_d, grad_alpha, grad_beta, grad_gamma, None, None

    @staticmethod
    def vmap(info, in_dims, x, c, d, alpha, beta, gamma, mask, hinge):
        def front(tensor, dim):
            """The vmap axis first, then the logical ``[L]`` / ``[B, L]`` aligned to ``[K, B, L]``."""
            if dim is None:
                return tensor
            tensor = tensor.movedim(dim, 0)
            return tensor.reshape(tensor.shape[0], *([1] * (3 - tensor.dim())), *tensor.shape[1:])

        x_dim, c_dim, d_dim, *_ = in_dims
        args = [front(tensor, dim) for tensor, dim in zip((x, c, d, alpha, beta, gamma, mask), in_dims)]
        outputs = SurrogateRows.apply(*args, hinge)
        positive = 0 if x_dim is not None or c_dim is not None else None
        implicit = d is None  # N = (1 - c) L-(x) moves with c
        negative = 0 if x_dim is not None or d_dim is not None or (implicit and c_dim is not None) else None
        return outputs, (0, positive, negative, positive, negative)


def plain_surrogate_rows(x, on_positives, on_negatives, alpha, beta, gamma, mask, hinge: bool):
    """``(rows, S+, S-)`` as plain ops: the reference, and the small, hinge and compiled path."""
    positive, negative = surrogate_values(x, hinge)
    positive = on_positives * positive
    negative = (1.0 - on_positives if on_negatives is None else on_negatives) * negative
    constant = gamma if mask is None else gamma * mask
    return alpha * positive + beta * negative + constant, positive.sum(-2), negative.sum(-2)


def surrogate_rows(x, on_positives, on_negatives, alpha, beta, gamma, mask, hinge: bool):
    """``(rows [B, L], S+ [L], S- [L])`` as above; ``alpha``, ``beta``, ``gamma`` are ``[L]``
    (or numbers), ``mask`` the ``[B, L]`` mask of rows of non-zero weight or None for all rows,
    ``on_negatives`` None for ``1 - on_positives``. The kernel where
    :func:`~goloss._dispatch.use_kernel` says so, the plain ops otherwise."""
    if not _dispatch.use_kernel("rows", x, hinge):
        return plain_surrogate_rows(x, on_positives, on_negatives, alpha, beta, gamma, mask, hinge)
    alpha, beta, gamma = (
        value if isinstance(value, torch.Tensor) else torch.tensor(float(value), dtype=x.dtype, device=x.device)
        for value in (alpha, beta, gamma)
    )
    return _dispatch.apply(SurrogateRows, x, on_positives, on_negatives, alpha, beta, gamma, mask, hinge)[:3]
