"""The pure, ``torch.func``-ready API of goloss: losses, their pieces and pure state.

Every function here is stateless: multipliers, biases and label-prior counts
are passed in and returned, never stored.
"""

from ._anchors import range_to_anchors_and_delta
from ._calibration import calibrate_threshold
from ._bounds import false_positives_upper_bound, true_positives_lower_bound
from ._dual import dual_ascent_step, reverse_gradient, strict_dual_step
from ._losses import (
    false_positive_rate_at_true_positive_rate_loss,
    init_loss_state,
    precision_at_recall_loss,
    precision_recall_auc_loss,
    recall_at_precision_loss,
    roc_auc_loss,
    true_positive_rate_at_false_positive_rate_loss,
)
from ._strict import ThresholdCounts, normalised_violation, rates_at_threshold, strict_violation, threshold_counts
from ._priors import LabelPriorCounts, init_label_prior_counts, update_label_prior_counts
from ._validation import set_value_checks
from ._surrogates import (
    weighted_hinge_loss,
    weighted_sigmoid_cross_entropy_with_logits,
    weighted_surrogate_loss,
)

__all__ = [
    "LabelPriorCounts",
    "ThresholdCounts",
    "calibrate_threshold",
    "dual_ascent_step",
    "false_positive_rate_at_true_positive_rate_loss",
    "false_positives_upper_bound",
    "init_label_prior_counts",
    "init_loss_state",
    "normalised_violation",
    "precision_at_recall_loss",
    "precision_recall_auc_loss",
    "range_to_anchors_and_delta",
    "recall_at_precision_loss",
    "reverse_gradient",
    "roc_auc_loss",
    "rates_at_threshold",
    "set_value_checks",
    "strict_dual_step",
    "strict_violation",
    "threshold_counts",
    "true_positive_rate_at_false_positive_rate_loss",
    "true_positives_lower_bound",
    "update_label_prior_counts",
    "weighted_hinge_loss",
    "weighted_sigmoid_cross_entropy_with_logits",
    "weighted_surrogate_loss",
]
