"""Dual variables: the projected ascent step, and the original's gradient reversal."""

from __future__ import annotations

from typing import Any

import math
import numbers

import optree
import torch

from . import _math
from ._validation import broadcast_to, check_values


def dual_ascent_step(lambdas: Any, grads: Any, lr: float) -> Any:
    """Projected gradient ascent on Lagrange multipliers: ``max(0, lambdas + lr * grads)``.

    Args:
      lambdas: a tensor or a pytree of tensors (e.g. ``[L]`` or ``[L, A]``).
      grads: ``d loss / d lambdas`` (or a violation such as ``aux["strict_violation"]``), same
        structure, shapes that broadcast to those of ``lambdas`` (e.g. ``[]`` for ``[1]``).
      lr: the dual learning rate, a number >= 0 (or a tensor, not checked).

    Returns:
      The new multipliers, same structure; never negative.
    """
    if not isinstance(lr, torch.Tensor) and (
        isinstance(lr, bool) or not isinstance(lr, numbers.Real) or not (math.isfinite(lr) and lr >= 0)
    ):
        raise ValueError(f"lr must be a finite number >= 0, got {lr!r}")
    if optree.tree_structure(lambdas) != optree.tree_structure(grads):
        raise ValueError("grads must have the pytree structure of lambdas")

    def step(lam: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        broadcast_to("grads", g, tuple(lam.shape), f"{tuple(lam.shape)} (that of lambdas) or broadcast to it")
        new = _math.surrogate_dual_step(lam, g, lr)
        try:  # one read: a non-finite multiplier or gradient makes the result non-finite
            check_values("lambdas + lr * grads", new, "finite")
        except ValueError:
            check_values("lambdas", lam, "finite")
            check_values("grads", g, "finite")
            raise ValueError("lambdas + lr * grads must be finite (lr too large?)") from None
        return new

    return optree.tree_map(step, lambdas, grads)


def reverse_gradient(variable: torch.Tensor, dual_rate_factor: float = 0.1) -> torch.Tensor:
    """The original's dual variable: forward value ``|v|``, gradient ``-dual_rate_factor * sign(v) * g``.

    A descent step of any optimizer on ``variable`` is then an ascent step on
    the multiplier ``|v|`` scaled by ``dual_rate_factor``, as in the TensorFlow
    library. A ``v`` of exactly 0 gets gradient 0 (prefer :func:`dual_ascent_step`).

    Args:
      variable: the raw multiplier variable ``v``, any shape.
      dual_rate_factor: scale of the reversed gradient.

    Returns:
      A tensor of the shape of ``variable``, equal to ``|variable|``.
    """
    check_values("variable", variable, "finite")
    magnitude = variable.abs()
    # (magnitude - magnitude.detach()) is exactly 0 forward, so the value is |v|.
    return magnitude.detach() - dual_rate_factor * (magnitude - magnitude.detach())


def strict_dual_step(
    lambdas: torch.Tensor, signal: torch.Tensor, lr: float, *, max_lambda: float = _math.MAX_LAMBDA
) -> torch.Tensor:
    """The multipliers' step on a normalised strict violation:
    ``clamp(lambdas + lr * (1 + lambdas) * signal, 0, max_lambda)``.

    ``signal`` is :func:`~goloss.normalised_violation` (in [-1, 1]). The step is additive near 0
    (a slack constraint can reach 0) and relative for large multipliers (about ``exp(lr *
    signal)`` per step), so one ``lr`` serves targets whose multipliers settle near 0.5 and near
    20 alike, and a multiplier wound up early comes back down as fast as it went up. The cap
    (a constraint weighted ``max_lambda`` times the objective) keeps a model that lags, or a
    target it cannot reach, from winding them up without bound.

    Args:
      lambdas: ``[L]`` or ``[L, A]``, >= 0.
      signal: broadcastable to ``lambdas``.
      lr: a finite number >= 0.
      max_lambda: the largest multiplier.

    Returns:
      The new multipliers, shape of ``lambdas``.
    """
    return _math.strict_dual_step(lambdas, signal, lr, max_lambda)
