"""Differentiable bounds on the weighted true- and false-positive counts.

With threshold 0 and ``s`` the surrogate divided by its value at the threshold
(``log 2`` for xent, 1 for hinge), ``s(x) >= 1[x <= 0]`` on positives and
``s(x) >= 1[x >= 0]`` on negatives, hence

.. math::

   TP_{lb} = \\sum_i w_i\\,(y_i - y_i\\,s(-x_i)) \\le \\sum_i w_i y_i 1[x_i > 0],
   \\qquad
   FP_{ub} = \\sum_i w_i (1 - y_i)\\,s(x_i) \\ge \\sum_i w_i (1 - y_i) 1[x_i \\ge 0].
"""

from __future__ import annotations

import torch

from ._math import bounds_from_sums, indicator_scale
from ._surrogates import _align_labels, surrogate_parts, weight_like
from ._validation import TensorLike, as_tensor, check_floating, check_values, promote_low_precision


def bounds_from_parts(
    labels: torch.Tensor,
    weights: torch.Tensor,
    positive_part: torch.Tensor,
    negative_part: torch.Tensor,
    scale: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Both bounds from already-computed surrogate parts, summed over the batch axis 0.

    Args:
      labels, weights: broadcastable to the parts' shape ``[B, ...]``.
      positive_part, negative_part: from :func:`~goloss.surrogate_parts`.
      scale: :func:`~goloss.indicator_scale` of the surrogate.

    Returns:
      ``(true_positives_lower_bound, false_positives_upper_bound)``, each ``[...]``.
    """
    return bounds_from_sums(
        (weights * labels).sum(0), (weights * positive_part).sum(0), (weights * negative_part).sum(0), scale
    )


def _bounds(
    logits: torch.Tensor, labels: torch.Tensor, weights: TensorLike, surrogate_type: str
) -> tuple[torch.Tensor, torch.Tensor]:
    check_floating("logits", logits)
    logits = promote_low_precision(logits)
    weights = as_tensor(weights, logits)
    if weights.dim() == 1 and logits.dim() >= 2:
        # [B] weights are per example, as in the losses (also when B happens to equal L).
        if weights.shape[0] != logits.shape[0]:
            raise ValueError(f"weights of shape [B] must have B = {logits.shape[0]} entries, got {weights.shape[0]}")
        weights = weights.reshape(-1, *([1] * (logits.dim() - 1)))
    elif logits.dim() == 3 and weights.dim() == 2 and labels.dim() == 2:
        weights = weights.unsqueeze(-1)  # [B, L] weights for [B, L, K] logits.
    labels = _align_labels(labels, logits)
    weights = weight_like("weights", weights, logits)
    check_values("weights", weights, "finite and >= 0", 0.0)
    parts = surrogate_parts(logits, labels, surrogate_type)
    return bounds_from_parts(labels, weights, *parts, indicator_scale(surrogate_type))


def true_positives_lower_bound(
    logits: torch.Tensor, labels: torch.Tensor, *, weights: TensorLike = 1.0, surrogate_type: str = "xent"
) -> torch.Tensor:
    """Lower bound on the weighted number of true positives at threshold 0.

    Args:
      logits: ``[B, L]`` or ``[B, L, K]`` (each slice ``[:, :, k]`` bounded separately).
      labels: ``[B, L]``, values in {0, 1}.
      weights: number, ``[B]`` or ``[B, 1]`` (per example), ``[B, L]`` or ``[B, L, 1]``.
      surrogate_type: ``"xent"`` or ``"hinge"``.

    Returns:
      ``[L]`` or ``[L, K]``.
    """
    return _bounds(logits, labels, weights, surrogate_type)[0]


def false_positives_upper_bound(
    logits: torch.Tensor, labels: torch.Tensor, *, weights: TensorLike = 1.0, surrogate_type: str = "xent"
) -> torch.Tensor:
    """Upper bound on the weighted number of false positives at threshold 0.

    Args and shapes as in :func:`true_positives_lower_bound`.

    Returns:
      ``[L]`` or ``[L, K]``.
    """
    return _bounds(logits, labels, weights, surrogate_type)[1]
