"""Small explicit helpers for multi-process training with ``torch.distributed``.

The functional core never communicates. These helpers do, for functional loops, and the modules
of :mod:`goloss.nn` call them when ``torch.distributed`` is initialised (or a ``process_group``
is given), so that every rank holds the same label priors and multipliers:

- the weighted label counts behind the streaming priors are summed over ranks
  (:func:`all_reduce_sum`) before each update;
- the multipliers' gradient is averaged over ranks (:func:`all_reduce_mean`) before each dual
  step, like ``DistributedDataParallel`` averages the model's gradients;
- :func:`roc_auc_loss_across_ranks` forms the ROC-AUC pairs over every rank's examples.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.distributed as dist

from ._losses import roc_auc_loss
from ._validation import REDUCTIONS, SURROGATE_TYPES, TensorLike, as_batch_by_label, check_choice, reduce


def is_active(group: Optional[dist.ProcessGroup] = None) -> bool:
    """True when ``torch.distributed`` is initialised and the group has more than one rank."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size(group) > 1


def all_reduce_sum(tensor: torch.Tensor, group: Optional[dist.ProcessGroup] = None) -> torch.Tensor:
    """The sum of ``tensor`` over the ranks (a new tensor; any shape). Identity without distributed."""
    if not is_active(group):
        return tensor
    total = tensor.detach().clone()
    dist.all_reduce(total, op=dist.ReduceOp.SUM, group=group)
    return total


def all_reduce_mean(tensor: torch.Tensor, group: Optional[dist.ProcessGroup] = None) -> torch.Tensor:
    """The mean of ``tensor`` over the ranks (a new tensor; any shape). Identity without distributed."""
    if not is_active(group):
        return tensor
    return all_reduce_sum(tensor, group) / dist.get_world_size(group)


def all_gather_rows(tensor: torch.Tensor, group: Optional[dist.ProcessGroup] = None) -> torch.Tensor:
    """Every rank's ``tensor [B_r, ...]`` concatenated along the first axis in rank order (the
    ``B_r`` may differ; the other axes must agree). Itself without distributed."""
    if not is_active(group):
        return tensor
    size = torch.tensor([tensor.shape[0]], device=tensor.device)
    sizes = [torch.zeros_like(size) for _ in range(dist.get_world_size(group))]
    dist.all_gather(sizes, size, group=group)
    rows = [int(s) for s in torch.cat(sizes).tolist()]
    padded = tensor.new_zeros((max(rows), *tensor.shape[1:]))
    padded[: tensor.shape[0]] = tensor
    parts = [torch.empty_like(padded) for _ in rows]
    dist.all_gather(parts, padded, group=group)
    return torch.cat([part[:n] for part, n in zip(parts, rows)])


def roc_auc_loss_across_ranks(
    logits: torch.Tensor,
    labels: torch.Tensor,
    *,
    weights: Optional[TensorLike] = None,
    surrogate_type: str = "xent",
    reduction: str = "none",
    group: Optional[dist.ProcessGroup] = None,
) -> torch.Tensor:
    """ROC-AUC loss of this rank's examples, paired with the examples of *every* rank.

    Every rank must pass the same batch size. The examples are gathered with the differentiable
    ``torch.distributed.nn.functional.all_gather``, so gradients reach each rank's own logits;
    the per-example losses equal those of :func:`~goloss.roc_auc_loss` on the concatenation of
    all ranks' batches (rank order). Cost: a gather of ``B * world_size`` examples per call and
    the pairwise loss over them on every rank (``world_size`` times the work of one rank's share).

    Args:
      logits, labels: ``[B]`` or ``[B, L]``, the same ``B`` on every rank.
      weights: None, a number, or a tensor broadcastable to ``[B, L]``.
      surrogate_type, reduction: as in :func:`~goloss.roc_auc_loss`.

    Returns:
      The loss of this rank's rows: the shape of ``logits``, or reduced.
    """
    if not is_active(group):
        return roc_auc_loss(None, None, logits, labels, weights=weights, surrogate_type=surrogate_type,
                            reduction=reduction)[0]
    from torch.distributed.nn.functional import all_gather

    check_choice("surrogate_type", surrogate_type, SURROGATE_TYPES)
    check_choice("reduction", reduction, REDUCTIONS)
    x, y, w = as_batch_by_label(logits, labels, weights)
    assert w is not None  # ones for None
    gathered = [torch.cat(all_gather(t.contiguous(), group=group)) for t in (x, y, w)]
    for tensor in gathered:
        if tensor.requires_grad:
            # all_gather's backward hands the gradient's raw storage to the collective: make it
            # contiguous (the fast ROC-AUC forms return transposed gradients).
            tensor.register_hook(torch.Tensor.contiguous)
    loss, _ = roc_auc_loss(None, None, *gathered[:2], weights=gathered[2], surrogate_type=surrogate_type)
    rank, batch = dist.get_rank(group), x.shape[0]
    return reduce(loss[rank * batch:(rank + 1) * batch].reshape(logits.shape), reduction)
