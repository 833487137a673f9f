"""Dual variables: the projected ascent step, and the original's gradient reversal."""

from __future__ import annotations

from typing import Any

import optree
import torch


def dual_ascent_step(lambdas: Any, grads: Any, lr: float) -> Any:
    """Projected gradient ascent on Lagrange multipliers: ``max(0, lambdas + lr * grads)``.

    Args:
      lambdas: a tensor or a pytree of tensors (e.g. ``[L]`` or ``[L, A]``).
      grads: ``d loss / d lambdas``, same structure and shapes.
      lr: the dual learning rate (positive).

    Returns:
      The new multipliers, same structure; never negative.
    """
    return optree.tree_map(lambda lam, g: torch.clamp(lam + lr * g, min=0.0), lambdas, grads)


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
    magnitude = variable.abs()
    # (magnitude - magnitude.detach()) is exactly 0 forward, so the value is |v|.
    return magnitude.detach() - dual_rate_factor * (magnitude - magnitude.detach())
