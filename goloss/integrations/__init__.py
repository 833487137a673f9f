"""Small adapters for training frameworks; each submodule imports its framework when imported
itself, so ``import goloss`` needs only torch and optree.

- :mod:`goloss.integrations.skorch`: ``DualStep`` and ``Diagnostics`` callbacks,
  ``sigmoid_then_2d`` for ``predict_nonlinearity``.
- :mod:`goloss.integrations.lightning`: a ``DualStep`` callback.
"""

from __future__ import annotations

from collections.abc import Iterator

from torch import nn

from ..nn import _ConstrainedLoss


def constrained_losses(module: nn.Module) -> Iterator[tuple[str, _ConstrainedLoss]]:
    """``(name, loss)`` for every goloss constrained loss in ``module`` (itself included) whose
    multipliers a dual step updates: ``dual_mode="explicit"`` without ``auto_dual_step``."""
    for name, child in module.named_modules():
        if isinstance(child, _ConstrainedLoss) and child.dual_mode == "explicit" and not child.auto_dual_step:
            yield name, child
