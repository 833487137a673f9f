"""skorch adapters: the dual step after every training batch, what to monitor, probabilities.

Example::

    from skorch import NeuralNetBinaryClassifier
    from goloss.integrations.skorch import Diagnostics, DualStep, sigmoid_then_2d

    net = NeuralNetBinaryClassifier(
        MyModule, criterion=goloss.RecallAtPrecisionLoss, criterion__target_precision=0.9,
        predict_nonlinearity=sigmoid_then_2d, callbacks=[DualStep(), Diagnostics()],
    )

skorch infers its probabilities' nonlinearity only for ``BCEWithLogitsLoss``; give
``predict_nonlinearity=sigmoid_then_2d`` (else its scoring fails on 1-D probabilities). The
``train_loss`` / ``valid_loss`` columns are the Lagrangian, which rises when a multiplier does:
monitor a metric (``Diagnostics``' columns, or an ``EpochScoring``) in ``EarlyStopping`` and
``Checkpoint``, not the loss.
"""

from __future__ import annotations

from typing import Any

import torch
from skorch.callbacks import Callback

from .._strict import ThresholdCounts, rates_at_threshold
from . import constrained_losses


def sigmoid_then_2d(logits: torch.Tensor) -> torch.Tensor:
    """``[B]`` (or ``[B, 1]``) logits -> ``[B, 2]`` probabilities ``(1 - p, p)``, ``p = sigmoid``."""
    probability = torch.sigmoid(logits.reshape(len(logits)))
    return torch.stack([1.0 - probability, probability], dim=1)


class DualStep(Callback):
    """Calls ``dual_step()`` on the net's goloss criterion (every constrained loss in
    ``net.criterion_``) after every training batch, after the optimizer's step."""

    def on_batch_end(self, net: Any, batch: Any = None, training: bool = False, **kwargs: Any) -> None:
        if training:
            for _, loss in constrained_losses(net.criterion_):
                loss.dual_step()


class Diagnostics(Callback):
    """Records, per epoch, the training batches' rates at the threshold (logit 0) from their
    summed counts, and the multiplier: history columns ``goloss_precision``, ``goloss_recall``,
    ``goloss_false_positive_rate`` and ``goloss_lambda`` (means over labels, and over anchors
    for PR-AUC). Monitor these instead of the loss."""

    def on_epoch_begin(self, net: Any, **kwargs: Any) -> None:
        self._counts: list[torch.Tensor] = []

    def on_batch_end(self, net: Any, batch: Any = None, training: bool = False, **kwargs: Any) -> None:
        aux = getattr(net.criterion_, "last_aux", {})
        if training and aux:
            self._counts.append(torch.stack([aux[name].detach().double() for name in ThresholdCounts._fields]))

    def on_epoch_end(self, net: Any, **kwargs: Any) -> None:
        if not self._counts:
            return
        precision, recall, fpr = rates_at_threshold(ThresholdCounts(*torch.stack(self._counts).sum(0)))
        for name, value in (("precision", precision), ("recall", recall), ("false_positive_rate", fpr),
                            ("lambda", net.criterion_.lambdas.detach().double())):
            net.history.record(f"goloss_{name}", value.mean().item())
