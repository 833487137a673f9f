"""Anchor points of the Riemann sum behind the precision-recall AUC loss."""

from __future__ import annotations

from collections.abc import Sequence

from ._validation import check_positive_int


def check_precision_range(precision_range: Sequence[float], num_anchors: int) -> tuple[float, float]:
    """Validate ``precision_range`` and ``num_anchors``; return ``(lo, hi)`` as floats.

    Raises ``ValueError`` unless ``0 <= lo < hi <= 1`` and ``num_anchors`` is a
    positive integer. (The original accepted a length-1 range and equal ends,
    then failed with ``IndexError`` or returned NaN.)
    """
    check_positive_int("num_anchors", num_anchors)
    try:
        lo, hi = (float(v) for v in precision_range)
    except (TypeError, ValueError):
        raise ValueError(
            f"precision_range must be a pair (lo, hi) of numbers, got {precision_range!r}"
        ) from None
    if not 0.0 <= lo < hi <= 1.0:
        raise ValueError(f"precision_range must satisfy 0 <= lo < hi <= 1, got {precision_range!r}")
    return lo, hi


def range_to_anchors_and_delta(
    precision_range: Sequence[float] = (0.0, 1.0), num_anchors: int = 20
) -> tuple[list[float], float]:
    """Equally spaced anchors strictly inside ``precision_range``, and their spacing.

    The anchors are ``linspace(lo, hi, num_anchors + 2)[1:-1]`` and
    ``delta = anchors[0] - lo``, computed in double precision.

    Returns:
      ``(anchors, delta)``: a list of ``num_anchors`` floats and a float.
    """
    lo, hi = check_precision_range(precision_range, num_anchors)
    step = (hi - lo) / (num_anchors + 1)
    anchors = [lo + i * step for i in range(1, num_anchors + 1)]
    return anchors, anchors[0] - lo
