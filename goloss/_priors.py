"""Label priors: the fraction of (weighted) positives per label, as pure state.

The original keeps two accumulators per label, initialised to pseudo-counts
``P`` and ``P + N``, adds each batch *before* using them, and reads

.. math::

   \\pi_l = \\frac{P + \\sum_{t, i} w_{til} y_{til}}{P + N + \\sum_{t, i} w_{til}}.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Optional, cast

import torch

from ._math import NEGATIVE_PSEUDOCOUNT, POSITIVE_PSEUDOCOUNT, add_to_prior_counts
from ._validation import TensorLike, as_batch_by_label, check_positive_int


class LabelPriorCounts(NamedTuple):
    """Accumulators of the streaming label-prior estimate (a pytree).

    Attributes:
      weighted_label_counts: ``[L]``, ``P + sum w*y`` so far.
      weight_sum: ``[L]``, ``P + N + sum w`` so far.
    """

    weighted_label_counts: torch.Tensor
    weight_sum: torch.Tensor


def init_label_prior_counts(
    num_labels: int = 1,
    *,
    positive_pseudocount: float = POSITIVE_PSEUDOCOUNT,
    negative_pseudocount: float = NEGATIVE_PSEUDOCOUNT,
    dtype: Optional[torch.dtype] = None,
    device: Optional[torch.device] = None,
) -> LabelPriorCounts:
    """Fresh accumulators: ``[L]`` tensors filled with ``P`` and ``P + N`` (``P, N >= 0``, ``P + N > 0``)."""
    check_positive_int("num_labels", num_labels)
    if not (positive_pseudocount >= 0 and negative_pseudocount >= 0 and positive_pseudocount + negative_pseudocount > 0
            and math.isfinite(positive_pseudocount + negative_pseudocount)):
        raise ValueError(
            "pseudocounts must be finite, >= 0 and not both 0, got "
            f"positive_pseudocount={positive_pseudocount!r}, negative_pseudocount={negative_pseudocount!r}"
        )
    full = lambda value: torch.full((num_labels,), float(value), dtype=dtype, device=device)  # noqa: E731
    return LabelPriorCounts(full(positive_pseudocount), full(positive_pseudocount + negative_pseudocount))


def update_label_prior_counts(
    counts: LabelPriorCounts,
    labels: torch.Tensor,
    weights: TensorLike | None = None,
) -> tuple[LabelPriorCounts, torch.Tensor]:
    """Add one batch to the accumulators and read the priors.

    Args:
      counts: the current :class:`LabelPriorCounts`, ``[L]`` each.
      labels: ``[B]`` or ``[B, L]``, values in [0, 1].
      weights: None, a number, ``[B]``, ``[B, 1]`` or ``[B, L]``.

    Returns:
      ``(new_counts, label_priors)``; ``label_priors`` is ``[L]``.
    """
    if not isinstance(counts, LabelPriorCounts):
        raise TypeError(f"counts must be a LabelPriorCounts, got {type(counts).__name__}")
    dtype = counts.weight_sum.dtype
    labels = labels.to(dtype) if isinstance(labels, torch.Tensor) else labels
    _, labels, weights = as_batch_by_label(labels, labels, weights)
    assert weights is not None  # ones for None
    if labels.shape[1] != counts.weight_sum.shape[0]:
        raise ValueError(
            f"labels must have {counts.weight_sum.shape[0]} label(s), the length of counts, "
            f"got {labels.shape[1]}"
        )
    label_count, weight_sum, priors = add_to_prior_counts(*counts, (weights * labels).sum(0), weights.sum(0))
    return LabelPriorCounts(label_count, cast(torch.Tensor, weight_sum)), priors
