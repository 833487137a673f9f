"""Per-label batch sums of the weighted surrogate in few passes over the batch.

For logits ``x [B, L]`` and the weights on positives and on negatives ``c = w * y`` and
``d = w * (1 - y)``:

.. math::

   S^+_l = \\sum_b c_{bl}\\,L^+(x_{bl}), \\qquad S^-_l = \\sum_b d_{bl}\\,L^-(x_{bl})

The rate losses with ``reduction="mean"`` or ``"sum"`` (and their bounds) need only these sums.
Written as plain autograd ops they cost a chain of ``[B, L]`` products forward and backward;
this Function computes them with one transcendental pass and batched dot products, keeps only
its inputs for backward, and forms the gradient in one expression (cross-entropy:
``dL+/dx = sigmoid(x) - 1``, ``dL-/dx = sigmoid(x)``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ._validation import SMALL


def batch_dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``(a * b).sum(0)`` over the batch axis of ``b [B, ...]`` (``a`` broadcasts to it).

    Small inputs: ``vecdot`` (the least per-call overhead). One label (``b [B, 1]``): a single
    dot product, with no product tensor (a reduction over the batch axis of a ``[B, 1]``
    product is a slow strided one). Otherwise the product and a contiguous reduction, which
    beat batched matrix products of many short vectors.
    """
    a = a.expand_as(b)
    if b.numel() <= SMALL:
        return torch.linalg.vecdot(a, b, dim=0)
    if b.dim() == 2 and b.shape[1] == 1:
        return torch.dot(a.reshape(-1), b.reshape(-1)).reshape(1)
    return (a * b).sum(0)


def eager_without_transforms() -> bool:
    """Plain eager mode, no ``torch.func`` transform and no compilation: in-place updates of fresh
    temporaries are safe (a transform may batch an input but not the temporary)."""
    return not torch.compiler.is_compiling() and torch._C._functorch.maybe_current_level() is None


def in_place_in_backward() -> bool:
    """In a Function's backward: in place on fresh temporaries unless a graph of the backward
    itself is being recorded (``create_graph=True``, for double backward)."""
    return eager_without_transforms() and not torch.is_grad_enabled()


try:  # Function.apply's C entry point and its eager-mode preamble (private torch API)
    from torch._functorch.utils import unwrap_dead_wrappers as _unwrap_dead_wrappers

    _C_APPLY = torch._C._FunctionBase.__dict__["apply"]
except (ImportError, AttributeError, KeyError):  # pragma: no cover - another torch release
    _C_APPLY = None


def apply_function(function: type, *args):
    """``function.apply(*args)``. In plain eager mode this skips ``Function.apply``'s per-call
    ``inspect`` binding of the arguments (about 25 us, most of a small batch's cost); every
    argument must be given positionally. Under ``torch.func`` transforms, the full ``apply``."""
    if _C_APPLY is None or torch._C._are_functorch_transforms_active():
        return function.apply(*args)
    return _C_APPLY.__get__(None, function)(*_unwrap_dead_wrappers(args))


def _slopes(x: torch.Tensor, hinge: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """``(dL+/dx, dL-/dx)``: ``(sigmoid - 1, sigmoid)`` or ``(-[x < 1], [x > -1])``."""
    if hinge:  # as sign-and-clamp passes (cheaper than compare-and-cast)
        return torch.sign(x - 1.0).clamp_max_(0.0), torch.sign(x + 1.0).clamp_min_(0.0)
    sigmoid = torch.sigmoid(x)
    return sigmoid - 1.0, sigmoid


def _parts(x: torch.Tensor, hinge: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """``(L+(x), L-(x))``."""
    if hinge:
        return torch.relu(1.0 - x), torch.relu(1.0 + x)
    positive = -F.logsigmoid(x)
    return positive, positive + x


def sigmoid_weighted(x, c, a, d, b) -> torch.Tensor:
    """``sigmoid(x) * (a c + b d) - a c``: the cross-entropy gradient in ``x [B, L]`` of ``a . S+ +
    b . S-`` (``a``, ``b`` broadcast to ``c``, ``d``; tensors or Python numbers; ``d`` None means
    ``1 - c``). In a backward that records no graph, two fresh ``[B, L]`` tensors worked in place
    (each fresh tensor of that size costs its page faults, often more than the arithmetic)."""
    in_place = in_place_in_backward()
    numbers = not isinstance(a, torch.Tensor)
    if d is None:  # the weight a c + b (1 - c) is b + (a - b) c
        weight = torch.mul(c, a - b)
        fits = in_place and weight.shape == x.shape
        weight = weight.add_(b) if fits else weight + b
    else:
        weight = torch.mul(d, b)
        fits = in_place and weight.shape == torch.broadcast_shapes(x.shape, c.shape, d.shape) == x.shape
        if fits:
            weight = weight.add_(c, alpha=a) if numbers else weight.addcmul_(c, a)
        else:
            weight = weight + c * a
    if fits:
        sigmoid = torch.sigmoid(x).mul_(weight)
        return sigmoid.add_(c, alpha=-a) if numbers else sigmoid.addcmul_(c, a, value=-1.0)
    return torch.sigmoid(x) * weight - c * a


def complement(on_positives, on_negatives):
    """``on_negatives``, or ``1 - on_positives`` where it is None (unweighted labels)."""
    return 1.0 - on_positives if on_negatives is None else on_negatives


def logits_grad(x, on_positives, on_negatives, grad_positive, grad_negative, hinge: bool) -> torch.Tensor:
    """The gradient in ``x [B, L]`` of ``g+ . S+ + g- . S-`` for ``g+, g-`` broadcasting to ``x``
    (``[L]``, ``[]``, Python numbers, ...): ``c g+ dL+/dx + d g- dL-/dx`` (``d`` None: ``1 - c``)."""
    if hinge:
        slope_positive, slope_negative = _slopes(x, True)
        return (slope_negative * (complement(on_positives, on_negatives) * grad_negative)
                + slope_positive * (on_positives * grad_positive))
    return sigmoid_weighted(x, on_positives, grad_positive, on_negatives, grad_negative)


class SurrogateSums(torch.autograd.Function):
    """``(S+ [L], S- [L])`` above; differentiable in ``x`` and both weights (backward and jvp)."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x, on_positives, on_negatives, hinge):
        if hinge:
            return batch_dot(on_positives, torch.relu(1.0 - x)), batch_dot(on_negatives, torch.relu(1.0 + x))
        log_sigmoid = F.logsigmoid(x)  # -L+(x)
        positive = -batch_dot(on_positives, log_sigmoid)
        # L-(x) = x - log_sigmoid, in place in eager mode (a transform may batch x but not it)
        eager = eager_without_transforms()
        negative_part = torch.sub(x, log_sigmoid, out=log_sigmoid) if eager else x - log_sigmoid
        return positive, batch_dot(on_negatives, negative_part)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, on_positives, on_negatives, hinge = inputs
        ctx.hinge = hinge
        ctx.save_for_backward(x, on_positives, on_negatives)
        ctx.save_for_forward(x, on_positives, on_negatives)

    @staticmethod
    def backward(ctx, grad_positive, grad_negative):
        x, on_positives, on_negatives = ctx.saved_tensors
        grad_x = grad_on_positives = grad_on_negatives = None
        if ctx.needs_input_grad[0]:
            grad_x = logits_grad(x, on_positives, on_negatives, grad_positive, grad_negative, ctx.hinge)
        if ctx.needs_input_grad[1] or ctx.needs_input_grad[2]:
            positive, negative = _parts(x, ctx.hinge)
            grad_on_positives = grad_positive * positive if ctx.needs_input_grad[1] else None
            grad_on_negatives = grad_negative * negative if ctx.needs_input_grad[2] else None
        return grad_x, grad_on_positives, grad_on_negatives, None

    @staticmethod
    def jvp(ctx, x_t, on_positives_t, on_negatives_t, _):
        x, on_positives, on_negatives = ctx.saved_tensors
        slope_positive, slope_negative = _slopes(x, ctx.hinge)
        tangent_positive = torch.zeros_like(x[0])
        tangent_negative = torch.zeros_like(x[0])
        if x_t is not None:
            tangent_positive = tangent_positive + batch_dot(on_positives * slope_positive, x_t)
            tangent_negative = tangent_negative + batch_dot(on_negatives * slope_negative, x_t)
        if on_positives_t is not None or on_negatives_t is not None:
            positive, negative = _parts(x, ctx.hinge)
            if on_positives_t is not None:
                tangent_positive = tangent_positive + batch_dot(on_positives_t, positive)
            if on_negatives_t is not None:
                tangent_negative = tangent_negative + batch_dot(on_negatives_t, negative)
        return tangent_positive, tangent_negative


def surrogate_sums(
    x: torch.Tensor, on_positives: torch.Tensor, on_negatives: torch.Tensor, surrogate_type: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(S+, S-)``, each ``x.shape[1:]``: :class:`SurrogateSums` in eager mode and under
    ``torch.func``; the plain expression under ``torch.compile`` (Dynamo cannot trace a custom
    ``jvp``, and the compiler fuses the products itself) and for small inputs (up to ``SMALL``
    elements, where a few plain ops cost less than a Function's node)."""
    hinge = surrogate_type == "hinge"
    if torch.compiler.is_compiling():
        positive, negative = _parts(x, hinge)
        return (on_positives * positive).sum(0), (on_negatives * negative).sum(0)
    if x.numel() <= SMALL:  # a few plain ops cost less than a Function's node
        positive, negative = _parts(x, hinge)
        return batch_dot(on_positives, positive), batch_dot(on_negatives, negative)
    return apply_function(SurrogateSums, x, on_positives, on_negatives, hinge)
