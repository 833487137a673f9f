"""Small shared input checks and shape helpers.

Every check here reads only shapes, dtypes and Python values, never tensor
values, so it behaves the same in eager mode, under ``torch.func`` transforms
(where it sees the per-example shapes) and under ``torch.compile``.
"""

from __future__ import annotations

import numbers
from typing import Union

import torch

Scalar = Union[float, int]
TensorLike = Union[torch.Tensor, float, int]

SURROGATE_TYPES = ("xent", "hinge")
REDUCTIONS = ("none", "mean", "sum")


def check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    """Raise ``ValueError`` unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")


def check_floating(name: str, tensor: torch.Tensor) -> None:
    """Raise ``TypeError`` unless ``tensor`` is a floating-point tensor."""
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(tensor).__name__}")
    if not tensor.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {tensor.dtype}")


def check_unit_interval(name: str, value: TensorLike) -> None:
    """Raise ``ValueError`` if a Python number ``value`` lies outside [0, 1].

    Tensor values are not read here (that would break ``vmap`` and ``compile``).
    """
    if isinstance(value, numbers.Real) and not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"{name} must lie in [0, 1], got {value!r}")


def as_tensor(value: TensorLike, like: torch.Tensor) -> torch.Tensor:
    """``value`` as a tensor with the dtype and device of ``like``."""
    if isinstance(value, torch.Tensor):
        return value.to(dtype=like.dtype, device=like.device)
    return torch.tensor(value, dtype=like.dtype, device=like.device)


def broadcast_to(name: str, value: torch.Tensor, shape: tuple[int, ...], expected: str) -> torch.Tensor:
    """Broadcast ``value`` to ``shape``, or raise ``ValueError`` naming ``name``."""
    try:
        broadcast = torch.broadcast_shapes(tuple(value.shape), shape)
    except RuntimeError:
        broadcast = None
    if broadcast != torch.Size(shape):
        raise ValueError(f"{name} must have shape {expected}, got {tuple(value.shape)}")
    return value.expand(shape)


def as_batch_by_label(
    logits: torch.Tensor, labels: torch.Tensor, weights: TensorLike | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Validate and bring ``logits``, ``labels``, ``weights`` to shape ``[B, L]``.

    Args:
      logits: ``[B]`` or ``[B, L]`` floating tensor.
      labels: same shape as ``logits``; cast to the dtype of ``logits``.
      weights: None, a number, or a tensor of shape ``[]``, ``[B]``, ``[B, 1]``
        or ``[B, L]``.

    Returns:
      ``(logits, labels, weights)``, each ``[B, L]`` (weights possibly expanded).
    """
    check_floating("logits", logits)
    if not isinstance(labels, torch.Tensor):
        raise TypeError(f"labels must be a torch.Tensor, got {type(labels).__name__}")
    if logits.dim() not in (1, 2):
        raise ValueError(f"logits must have shape [B] or [B, L], got {tuple(logits.shape)}")
    if labels.shape != logits.shape:
        raise ValueError(
            f"labels must have the shape of logits {tuple(logits.shape)}, got {tuple(labels.shape)}"
        )
    if logits.dim() == 1:
        logits, labels = logits.unsqueeze(1), labels.unsqueeze(1)
    labels = labels.to(logits.dtype)
    shape = tuple(logits.shape)
    if weights is None:
        weights = torch.ones((), dtype=logits.dtype, device=logits.device)
    weights = as_tensor(weights, logits)
    if weights.dim() == 1:
        weights = weights.unsqueeze(1)
    weights = broadcast_to("weights", weights, shape, f"[], [B], [B, 1] or [B, L] with B, L = {shape}")
    return logits, labels, weights


def reduce(loss: torch.Tensor, reduction: str) -> torch.Tensor:
    """Apply ``reduction`` (``"none"``, ``"mean"`` or ``"sum"``) to ``loss``."""
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss
