"""Surrogates for the 0-1 indicator: weighted sigmoid cross-entropy and hinge.

For a logit ``x``, a label ``z`` in [0, 1], a positive weight ``c`` and a
negative weight ``d``:

.. math::

   \\ell_{xent}(x, z) = c\\,z\\,\\mathrm{softplus}(-x) + d\\,(1 - z)\\,\\mathrm{softplus}(x)

   \\ell_{hinge}(x, z) = c\\,z\\,\\max(0, 1 - x) + d\\,(1 - z)\\,\\max(0, 1 + x)

Cross-entropy is an upper bound on the indicator only once divided by
``log(2)``; :func:`indicator_scale` returns that divisor (1 for hinge).
"""

from __future__ import annotations

import torch

from ._math import indicator_scale, surrogate_values
from ._validation import TensorLike, as_tensor, broadcast_to, check_floating, check_values, promote_low_precision

__all__ = ["indicator_scale", "surrogate_parts", "weighted_surrogate_loss"]


def surrogate_parts(
    logits: torch.Tensor, labels: torch.Tensor, surrogate_type: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(z L+(x), (1 - z) L-(x))``, the surrogate evaluated once (:func:`~goloss._math.surrogate_values`).

    Args:
      logits: ``[...]`` floating tensor.
      labels: broadcastable to ``logits``, values in [0, 1].
      surrogate_type: ``"xent"`` or ``"hinge"``.

    Returns:
      ``(positive_part, negative_part)``, each of the broadcast shape.
    """
    indicator_scale(surrogate_type)  # validates it
    positive, negative = surrogate_values(logits, surrogate_type == "hinge")
    return labels * positive, (1.0 - labels) * negative


def _align_labels(labels: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """Labels ``[B, L]`` given with logits ``[B, L, K]`` gain a trailing axis."""
    if not isinstance(labels, torch.Tensor):
        raise TypeError(f"labels must be a torch.Tensor, got {type(labels).__name__}")
    if labels.dim() == logits.dim() - 1 and labels.shape == logits.shape[:-1]:
        labels = labels.unsqueeze(-1)
    if labels.shape != logits.shape and labels.shape != logits.shape[:-1] + (1,):
        raise ValueError(
            f"labels must have the shape of logits {tuple(logits.shape)} or that shape "
            f"without its last axis, got {tuple(labels.shape)}"
        )
    labels = labels.to(logits.dtype)
    check_values("labels", labels, "in [0, 1]", 0.0, 1.0)
    return labels


def weight_like(name: str, weights: TensorLike, logits: torch.Tensor) -> torch.Tensor:
    """``weights`` as a tensor broadcast to the shape of ``logits``, or a ``ValueError``."""
    shape = tuple(logits.shape)
    return broadcast_to(name, as_tensor(weights, logits), shape, f"broadcastable to logits {shape}")


def weighted_surrogate_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    *,
    surrogate_type: str = "xent",
    positive_weights: TensorLike = 1.0,
    negative_weights: TensorLike = 1.0,
) -> torch.Tensor:
    """Elementwise weighted surrogate loss, ``c*z*loss(+) + d*(1-z)*loss(-)``.

    Args:
      logits: ``[B, L]`` or ``[B, L, K]``; each slice ``[:, :, k]`` is scored
        separately.
      labels: ``[B, L]`` (broadcast over ``K``) or the shape of ``logits``;
        values in [0, 1], soft labels allowed for xent.
      surrogate_type: ``"xent"`` or ``"hinge"``.
      positive_weights: number, ``[K]``, ``[L, K]``, ``[L, 1]`` or any shape
        that broadcasts against ``logits`` from the right.
      negative_weights: same as ``positive_weights``.

    Returns:
      Tensor with the shape of ``logits``.

    Example:
      >>> import torch, goloss
      >>> goloss.weighted_surrogate_loss(torch.zeros(1, 1), torch.ones(1, 1), surrogate_type="hinge")
      tensor([[1.]])
    """
    check_floating("logits", logits)
    logits = promote_low_precision(logits)
    labels = _align_labels(labels, logits)
    positive_part, negative_part = surrogate_parts(logits, labels, surrogate_type)
    return (
        weight_like("positive_weights", positive_weights, logits) * positive_part
        + weight_like("negative_weights", negative_weights, logits) * negative_part
    )


def weighted_sigmoid_cross_entropy_with_logits(
    logits: torch.Tensor, labels: torch.Tensor, *, positive_weights: TensorLike = 1.0,
    negative_weights: TensorLike = 1.0,
) -> torch.Tensor:
    """Weighted sigmoid cross-entropy, ``c z softplus(-x) + d (1 - z) softplus(x)``.

    :func:`weighted_surrogate_loss` with ``"xent"``: ``c`` the ``positive_weights``, ``d`` the
    ``negative_weights``; shapes as there, returns the shape of ``logits``.
    """
    weights = {"positive_weights": positive_weights, "negative_weights": negative_weights}
    return weighted_surrogate_loss(logits, labels, surrogate_type="xent", **weights)


def weighted_hinge_loss(
    logits: torch.Tensor, labels: torch.Tensor, *, positive_weights: TensorLike = 1.0,
    negative_weights: TensorLike = 1.0,
) -> torch.Tensor:
    """Weighted hinge loss, ``c z max(0, 1 - x) + d (1 - z) max(0, 1 + x)``: :func:`weighted_surrogate_loss`
    with ``"hinge"`` (``c``, ``d`` the positive and negative weights; its shapes)."""
    weights = {"positive_weights": positive_weights, "negative_weights": negative_weights}
    return weighted_surrogate_loss(logits, labels, surrogate_type="hinge", **weights)
