"""The decision threshold that meets a rate target on a given (validation) set, per label.

A model trained with a constrained loss decides ``logits > threshold``. Training puts the
threshold at logit 0 on the *training* data; on new data the rate at logit 0 drifts (most
when the model fits its training set). :func:`calibrate_threshold` picks, on a held-out set,
the threshold at which that set meets the target with the best objective, the way a user of
cross-entropy tunes a threshold on a validation split. It is a pure function of its inputs:
``vmap`` it over targets to sweep them.
"""

from __future__ import annotations

from typing import Optional

import torch

from ._math import CONSTRAINTS, rate_and_violation
from ._strict import ThresholdCounts
from ._validation import TensorLike, as_batch_by_label, as_tensor, check_choice, check_unit_interval

#: Slack of the comparison ``rate >= target`` (float64 counts): a rate equal to the target meets it.
TOLERANCE = 1e-12


def calibrate_threshold(
    logits: torch.Tensor, labels: torch.Tensor, target: TensorLike, constraint: str, *,
    weights: Optional[TensorLike] = None,
) -> tuple[torch.Tensor, dict]:
    """The threshold ``[L]`` at which ``logits > threshold`` meets ``target`` with the best objective.

    Every cut between two distinct logits of a label (and above or below all of them) is a
    candidate; the threshold is the midpoint of the cut chosen:

    - ``constraint="precision"`` (recall at precision): the lowest threshold with
      precision >= target, which maximises recall. With none, the threshold lies above every
      logit (nothing predicted) and ``aux["met"]`` is False.
    - ``"recall"`` (precision, or FPR, at recall): the highest threshold with recall >= target,
      which maximises precision and minimises FPR.
    - ``"false_positive_rate"`` (TPR at FPR): the lowest threshold with FPR <= target, which
      maximises TPR.

    Rates are weighted (``w y`` positives, ``w (1 - y)`` negatives) and counted in float64.
    No gradient flows; ``vmap`` over ``target`` sweeps targets.

    Args:
      logits: ``[B]`` or ``[B, L]``, finite.
      labels: shape of ``logits``, values in [0, 1].
      target: number or ``[L]``, in [0, 1].
      constraint: ``"precision"``, ``"recall"`` or ``"false_positive_rate"``.
      weights: None, a number, ``[B]``, ``[B, 1]`` or ``[B, L]``, >= 0.

    Returns:
      ``(threshold, aux)``: ``threshold`` ``[L]`` in the logits' dtype (``[]`` for ``[B]``
      logits); ``aux`` holds the counts at it (``true_positives``, ``false_positives``,
      ``positives``, ``negatives``, float64), the constrained rate under the ``constraint``'s
      name and ``met`` (bool), each the threshold's shape.

    Example:
      >>> import torch, goloss
      >>> logits, labels = torch.tensor([3.0, 2.0, 1.0, 0.0, -1.0]), torch.tensor([1.0, 1.0, 0.0, 1.0, 0.0])
      >>> threshold, aux = goloss.calibrate_threshold(logits, labels, 0.75, "precision")
      >>> threshold, aux["precision"]  # 3 of the 4 logits above -0.5 are positive
      (tensor(-0.5000), tensor(0.7500, dtype=torch.float64))
    """
    check_choice("constraint", constraint, CONSTRAINTS)
    check_unit_interval("target", target)
    x, y, w = as_batch_by_label(logits.detach(), labels, weights)
    assert w is not None  # ones for None
    with torch.no_grad():
        counting = torch.float64 if x.device.type != "mps" else x.dtype
        values, order = torch.sort(x, dim=0, descending=True)
        on_positives = (w * y).gather(0, order).to(counting)
        on_negatives = (w - w * y).gather(0, order).to(counting)
        zero = torch.zeros_like(on_positives[:1])
        # cut k (row k) predicts the k largest logits of each label, k = 0..B
        true_positives = torch.cat([zero, on_positives.cumsum(0)])
        false_positives = torch.cat([zero, on_negatives.cumsum(0)])
        positives = true_positives[-1].expand_as(true_positives)
        negatives = false_positives[-1].expand_as(true_positives)
        rate, deficit = rate_and_violation(
            true_positives, false_positives, positives, negatives, as_tensor(target, true_positives), constraint)
        # a cut between equal logits cannot be made by a threshold
        between = values[:-1] > values[1:]
        edge = torch.ones_like(values[:1], dtype=torch.bool)
        meets = (deficit <= TOLERANCE) & torch.cat([edge, between, edge])
        cut = torch.arange(len(rate), device=x.device).unsqueeze(-1).expand_as(rate)
        if constraint == "recall":  # the fewest predicted: the highest threshold
            chosen = torch.where(meets, cut, len(rate)).amin(0, keepdim=True)
        else:  # the most predicted: the lowest threshold
            chosen = torch.where(meets, cut, -1).amax(0, keepdim=True)
        # the cut's midpoint, between the lowest logit above it and the highest below (one
        # beyond the extremes); where the midpoint rounds up to the logit above, the logit below
        padded = torch.cat([values[:1] + 1.0, values, values[-1:] - 1.0])
        above, below = padded.gather(0, chosen), padded.gather(0, chosen + 1)
        middle = below + (above - below) / 2
        threshold = torch.where(middle < above, middle, below).squeeze(0)
        counts = ThresholdCounts(*(c.gather(0, chosen).squeeze(0) for c in (
            true_positives, false_positives, positives, negatives)))
        chosen_rate = rate.gather(0, chosen).squeeze(0)
        met = deficit.gather(0, chosen).squeeze(0) <= TOLERANCE
        if constraint == "precision":  # met by predicting nothing only without positives
            met = met & ((counts.true_positives + counts.false_positives > 0) | (counts.positives <= 0))
    aux = {**counts._asdict(), constraint: chosen_rate, "met": met}
    if logits.dim() == 1:
        threshold, aux = threshold.squeeze(0), {key: value.squeeze(0) for key, value in aux.items()}
    return threshold, aux
