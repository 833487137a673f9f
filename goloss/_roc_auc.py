"""Per-example ROC-AUC pair losses without the ``[B, B, L]`` pair tensor.

For one label column with logits ``x``, labels ``y`` in {0, 1} and weights
``w`` (all ``[B]``), the per-example loss of :func:`goloss.roc_auc_loss` is

.. math::

   \\ell_j = \\frac{1}{2B} \\sum_i |y_j - y_i|\\, w_i w_j\\,
   S\\big((y_j - y_i)(x_j - x_i)\\big)

with ``S(m) = softplus(-m)`` (``"xent"``) or ``relu(1 - m)`` (``"hinge"``):
each positive/negative pair ``(p, n)`` costs ``w_p w_n S(x_p - x_n)``, split
half to row ``p`` and half to row ``n``, divided by the batch size.

Three ways to compute it, all taking and returning ``[B, L]`` tensors (one
independent problem per label column, no Python loop over labels):

* :func:`pairwise_roc_auc` -- the literal definition; ``O(B^2 L)`` time and
  memory (forward and autograd backward). The reference.
* :func:`sorted_hinge_roc_auc` -- the hinge case, exactly, in
  ``O(B log B)`` per label: for a positive ``p``

  .. math::

     \\sum_{n:\\,x_n > x_p - 1} w_n (1 - x_p + x_n)
     = (1 - x_p)\\,W(x_p - 1) + XW(x_p - 1),

  where ``W(t)`` and ``XW(t)`` are the sums of ``w_n`` and ``w_n x_n`` over
  the negatives with ``x_n > t``: suffix sums over the logits sorted per
  column, located by binary search (``torch.searchsorted``). Symmetrically,
  a negative ``n`` sums ``w_p (1 + x_n - x_p)`` over the positives with
  ``x_p < x_n + 1`` (prefix sums, located by counting the first search's
  results instead of a second search). The sort order and the located
  positions are integer constants; gradients come from autograd through
  ``gather`` (of the logits and weights in sorted order), ``cumsum`` and
  ``scatter``. A pair exactly at the kink (margin 1) is left out of both
  sums, which is where its value is 0 and ``relu``'s gradient convention (0
  at 0) puts its gradient, so even there the gradients agree with the
  pairwise form whenever ``x_p - 1`` is computed exactly.
* :func:`blocked_xent_roc_auc` -- the cross-entropy case, the exact pairwise
  sum, computed over slabs of ``block_size`` rows against the columns from
  that block on (the pair matrix is symmetric, so each unordered pair is
  evaluated once per pass): extra memory ``O(block_size * B * L)``, time
  ``O(B^2 L)``. A custom :class:`torch.autograd.Function` whose backward
  recomputes the slabs, so the pair matrix is never stored.

:func:`roc_auc_elementwise` picks the sorted form for ``"hinge"`` and the
blocked form for ``"xent"``.

Labels: :func:`pairwise_roc_auc` and :func:`blocked_xent_roc_auc` evaluate
the literal formula, so they agree for any label values (soft labels
included); :func:`sorted_hinge_roc_auc` splits the batch into positives
(weight ``w * y``) and negatives (weight ``w * (1 - y)``) and equals the
literal formula for labels in {0, 1} only. The fast forms treat the labels
as constants (no gradient with respect to them).

Transforms: both fast forms work under ``torch.func.grad``, ``vmap``,
``jacrev``, ``jacfwd`` and ``torch.compile(fullgraph=True)`` (the blocked
form as the pairwise one under forward-mode AD: it has no ``jvp`` rule). The blocked
form's Python loop over blocks depends on ``B``, so a compiled function is
specialised to (and recompiled for) each batch size.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from . import _dispatch
from ._math import loss_if_positive
from ._validation import SURROGATE_TYPES, check_choice, check_positive_int

__all__ = [
    "pairwise_roc_auc",
    "sorted_hinge_roc_auc",
    "blocked_xent_roc_auc",
    "roc_auc_elementwise",
    "default_block_size",
]

# Pair values in one ``[L, block, columns]`` slab chosen by ``default_block_size``:
# 2**18 (1 MiB in float32) measured fastest on CPU (the slab's passes stay in
# cache); the backward keeps about five slabs alive.
_SLAB_ELEMENTS = 2**18


def _check_shapes(x: torch.Tensor, y: torch.Tensor, w: torch.Tensor) -> None:
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError("x must be a floating-point torch.Tensor")
    if x.dim() != 2:
        raise ValueError(f"x must have shape [B, L], got {tuple(x.shape)}")
    for name, value in (("y", y), ("w", w)):
        if not isinstance(value, torch.Tensor) or value.shape != x.shape:
            shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
            raise ValueError(f"{name} must be a tensor with the shape of x {tuple(x.shape)}, got {shape}")


def pairwise_roc_auc(
    x: torch.Tensor, y: torch.Tensor, w: torch.Tensor, surrogate_type: str
) -> torch.Tensor:
    """The per-example ROC-AUC loss from its definition, via ``[B, B, L]`` pair tensors.

    Args:
      x: logits ``[B, L]``, floating.
      y: labels ``[B, L]`` (same dtype as ``x``), values in {0, 1}.
      w: example weights ``[B, L]``.
      surrogate_type: ``"xent"`` or ``"hinge"``.

    Returns:
      ``[B, L]``: ``0.5 / B * sum_i |y_j - y_i| w_i w_j S((y_j - y_i)(x_j - x_i))``.
      ``O(B^2 L)`` memory; the reference for the other forms.
    """
    check_choice("surrogate_type", surrogate_type, SURROGATE_TYPES)
    _check_shapes(x, y, w)
    label_difference = y.unsqueeze(0) - y.unsqueeze(1)  # [i, j, L] = y_j - y_i
    signed_difference = label_difference * (x.unsqueeze(0) - x.unsqueeze(1))
    pair_loss = label_difference.abs() * (w.unsqueeze(0) * w.unsqueeze(1)) * loss_if_positive(
        signed_difference, surrogate_type == "hinge"
    )
    return 0.5 * pair_loss.mean(0)


# --------------------------------------------------------------------------- hinge


def sorted_hinge_roc_auc(x: torch.Tensor, y: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """The hinge ROC-AUC loss per example in ``O(B log B)`` per label, exactly.

    Args:
      x: logits ``[B, L]``, floating.
      y: labels ``[B, L]`` (same dtype as ``x``), values in {0, 1}.
      w: example weights ``[B, L]``.

    Returns:
      ``[B, L]``, equal to ``pairwise_roc_auc(x, y, w, "hinge")`` (ties in
      ``x`` and margins exactly at 1 included), and in gradient with
      respect to ``x`` and ``w`` wherever no pair margin is exactly 1.
      Memory ``O(B L)``.
    """
    _check_shapes(x, y, w)
    batch_size = x.shape[0]
    if batch_size == 0:
        return x * 0.0
    # Work on [L, B] so that the sort and the binary search run along the last axis.
    xt, yt, wt = (t.transpose(0, 1) for t in (x, y, w))
    with torch.no_grad():
        order = _argsort_rows(xt.detach())
    xs = torch.gather(xt, -1, order)  # differentiable: the gradient goes back through gather
    ys = torch.gather(yt.detach(), -1, order)
    ws = torch.gather(wt, -1, order)
    positive = ws * ys  # weight of a row as a positive
    negative = ws - positive  # ... and as a negative: w * (1 - y)
    # Sums of w x run on logits centred at the column median (a constant), which
    # changes nothing mathematically but keeps (1 - x_p) W + XW from cancelling
    # two large numbers when the logits sit far from 0.
    centre = xs[..., batch_size // 2 : batch_size // 2 + 1].detach()
    xc = xs - centre
    zero = xs.new_zeros(xs.shape[:-1] + (1,))

    with torch.no_grad():
        boundaries = xs.detach().contiguous()
        # start[k]: the number of entries <= x_k - 1. Entries from sorted
        # position start[k] on are exactly those with x > x_k - 1.
        start = torch.searchsorted(boundaries, boundaries - 1.0, right=True)
        # stop[k] = #{i : x_i - 1 < x_k} = #{i : start[i] <= k}: a prefix (as
        # x_i - 1 is nondecreasing in i), so the entries before sorted position
        # stop[k] are those with x_i < x_k + 1. Counting replaces a second search
        # and makes a pair count in its positive's sum iff in its negative's.
        counts = torch.zeros_like(start).scatter_add(-1, start, torch.ones_like(start))
        stop = torch.cumsum(counts, dim=-1)

    # Positive rows: negatives with x_n > x_p - 1, weighted by 1 - x_p + x_n:
    # suffix sums (reversed cumulative sums, so that a short suffix does not
    # lose precision to the total), read at start.
    suffix_w = torch.cat([_reverse_cumsum(negative), zero], dim=-1)  # [L, B + 1]
    suffix_xw = torch.cat([_reverse_cumsum(negative * xc), zero], dim=-1)
    as_positive = (1.0 - xc) * torch.gather(suffix_w, -1, start) + torch.gather(suffix_xw, -1, start)

    # Negative rows: positives with x_p < x_n + 1, weighted by 1 + x_n - x_p:
    # prefix sums read at stop.
    prefix_w = torch.cat([zero, torch.cumsum(positive, dim=-1)], dim=-1)
    prefix_xw = torch.cat([zero, torch.cumsum(positive * xc, dim=-1)], dim=-1)
    as_negative = (1.0 + xc) * torch.gather(prefix_w, -1, stop) - torch.gather(prefix_xw, -1, stop)

    loss_sorted = (0.5 / batch_size) * (positive * as_positive + negative * as_negative)
    loss = torch.zeros_like(loss_sorted).scatter(-1, order, loss_sorted)
    return loss.transpose(0, 1)


def _reverse_cumsum(values: torch.Tensor) -> torch.Tensor:
    return torch.flip(torch.cumsum(torch.flip(values, (-1,)), dim=-1), (-1,))


_SORT_KEY_DTYPES = {
    torch.float16: torch.int16,
    torch.bfloat16: torch.int16,
    torch.float32: torch.int32,
    torch.float64: torch.int64,
}


def _argsort_rows(values: torch.Tensor) -> torch.Tensor:
    """Indices that sort each row of ``values [L, B]`` ascending (no gradient).

    Sorting the rows with one 1-D sort of integer keys is several times faster
    on CPU than ``torch.sort(values, dim=-1)``: PyTorch sorts a 1-D integer
    tensor by parallel radix sort where available. A float's bits, read as a
    signed integer with the 31 (or 15, 63) low bits flipped for negative
    numbers, order like the float (``-0.0`` just before ``0.0``); the row
    index goes into the bits above, when they are free (keys of 32 bits or
    less, or a single row). Otherwise, and for other dtypes, ``torch.sort``.
    """
    rows, columns = values.shape
    key_dtype = _SORT_KEY_DTYPES.get(values.dtype)
    if key_dtype is None or (key_dtype == torch.int64 and rows > 1):
        return torch.sort(values, dim=-1)[1]
    bits = torch.finfo(values.dtype).bits
    raw = values.contiguous().view(key_dtype)
    key = raw ^ ((raw >> (bits - 1)) & (2 ** (bits - 1) - 1))  # monotone in the float
    if rows == 1:
        return torch.sort(key.reshape(-1))[1].reshape(rows, columns)
    row_index = torch.arange(rows, device=values.device).unsqueeze(1)
    key = (key.to(torch.int64) + 2 ** (bits - 1)) + (row_index << bits)  # >= 0, rows first
    order = torch.sort(key.reshape(-1))[1].reshape(rows, columns)
    return order - row_index * columns


# --------------------------------------------------------------------------- xent


def default_block_size(batch_size: int, num_labels: int = 1) -> int:
    """Rows per slab for :func:`blocked_xent_roc_auc`: about 2**18 pair values per slab."""
    return max(1, min(batch_size, _SLAB_ELEMENTS // max(1, batch_size * num_labels)))


def _pair_slab(x, y, start, stop):
    """Rows ``start:stop`` against columns ``start:`` of one ``[L, B]`` problem.

    Returns ``(d, m)``, each ``[L, rows, columns]``: ``d = y_j - y_i`` and
    ``-m = d (x_i - x_j)`` (``j`` a row, ``i`` a column), so that the pair's
    surrogate is ``softplus(-m)``.
    """
    d = y[:, start:stop].unsqueeze(2) - y[:, start:].unsqueeze(1)
    minus_m = d * (x[:, start:].unsqueeze(1) - x[:, start:stop].unsqueeze(2))
    return d, minus_m


def _matvec(matrix, vectors):
    """``matrix [L, R, C] @ vectors [L, C, k] -> [L, R, k]``."""
    return torch.matmul(matrix, vectors)


def _vecmat(vectors, matrix):
    """``vectors [L, R, k]`` contracted with ``matrix [L, R, C]`` over ``R`` -> ``[L, C, k]``."""
    return torch.matmul(matrix.transpose(1, 2), vectors)


def _over_slabs(x, y, block_size, slab) -> list:
    """The one loop over the slabs: rows ``start:stop`` against columns ``start:`` of each ``[L, B]``
    problem. ``slab(start, stop, d, minus_m)`` gives, per output, ``(row, columns)``: the slab's
    sums for its rows ``[L, stop - start]`` and for the columns ``start:`` (``[L, B - start]``,
    None if none), or None for an output not wanted. Returns each output's total times
    ``0.5 / B``, ``[L, B]`` (None where not wanted)."""
    batch_size = x.shape[-1]
    rows: list = []
    later: list = []
    for start in range(0, batch_size, block_size):
        stop = min(start + block_size, batch_size)
        parts = slab(start, stop, *_pair_slab(x, y, start, stop))
        if not rows:
            rows, later = [[] for _ in parts], [torch.zeros_like(x) for _ in parts]
        for index, part in enumerate(parts):
            if part is not None:
                rows[index].append(part[0])
                if part[1] is not None:
                    later[index] = later[index] + F.pad(part[1], (start, 0))
    scale = 0.5 / batch_size
    return [scale * (torch.cat(row, -1) + total) if row else None for row, total in zip(rows, later)]


def _blocked_xent_forward(x, y, w, block_size):
    """Row sums of the symmetric matrix ``F_ji = w_j w_i |d| softplus(-m)``, times ``0.5 / B``.

    Inputs and output ``[L, B]``. Block ``J = start:stop`` is paired with the
    columns ``start:``: its row sums give every pair of a row of ``J`` (both
    orders within the diagonal block), and the column sums past ``stop`` give
    the same pairs to the later rows, so each pair off the diagonal blocks is
    evaluated once. The weights enter through batched matrix-vector products
    ``w_J * (K @ w)`` and ``w * (K^T @ w_J)`` with ``K = |d| softplus(-m)``.
    Everything is out of place, so the function also runs under ``vmap``.
    """

    def slab(start, stop, d, minus_m):
        k = d.abs() * F.softplus(minus_m)
        row = w[:, start:stop] * _matvec(k, w[:, start:].unsqueeze(-1)).squeeze(-1)
        if stop == x.shape[-1]:
            return [(row, None)]
        column_sums = _vecmat(w[:, start:stop].unsqueeze(-1), k[:, :, stop - start :]).squeeze(-1)
        return [(row, F.pad(w[:, stop:] * column_sums, (stop - start, 0)))]

    return _over_slabs(x, y, block_size, slab)[0]


def _blocked_xent_backward(grad_out, x, y, w, block_size, need_x, need_w):
    """Gradients of ``sum(grad_out * forward)`` with respect to ``x`` and ``w`` (all ``[L, B]``).

    A pair ``(j, i)`` of the slab has coefficient ``G_ji = c (g_j + h_i)``
    with ``c = 0.5 / B``, ``h_i = 0`` on the diagonal block (both orders are
    there, each feeding its own row) and ``h_i = g_i`` past it (the unordered
    pair, evaluated only here, feeds both rows). With
    ``dF/dx_j = -dF/dx_i = -w_j w_i Q_ji``, ``Q = |d| d sigmoid(-m)``, and
    ``dF/dw_j = w_i K_ji``, ``dF/dw_i = w_j K_ji``, ``K = |d| softplus(-m)``:

    * ``grad_x_j -= c w_j (g_j (Q w)_j + (Q (h w))_j)``,
      ``grad_x_i += c w_i ((Q^T (g w))_i + h_i (Q^T w)_i)``;
    * ``grad_w_j += c (g_j (K w)_j + (K (h w))_j)``,
      ``grad_w_i += c ((K^T (g w))_i + h_i (K^T w)_i)``.

    Each slab is read by two batched matrix products per matrix, never by
    elementwise products with ``G``.
    """

    def slab(start, stop, d, minus_m):
        abs_d = d.abs()
        g_rows, w_rows, w_columns = grad_out[:, start:stop], w[:, start:stop], w[:, start:]
        h = torch.cat([torch.zeros_like(g_rows), grad_out[:, stop:]], -1)  # [L, columns]
        right = torch.stack([w_columns, h * w_columns], -1)  # [L, columns, 2]
        left = torch.stack([w_rows, g_rows * w_rows], -1)  # [L, rows, 2]

        def contract(matrix):
            """``(g_j (M w)_j + (M (h w))_j, (M^T (g w))_i + h_i (M^T w)_i)``."""
            row_part = _matvec(matrix, right)  # [L, rows, 2]
            column_part = _vecmat(left, matrix)  # [L, columns, 2]
            return g_rows * row_part[..., 0] + row_part[..., 1], column_part[..., 1] + h * column_part[..., 0]

        parts: list = [None, None]
        if need_x:
            row_grad, column_grad = contract(abs_d * d * torch.sigmoid(minus_m))
            parts[0] = (-w_rows * row_grad, w_columns * column_grad)
        if need_w:
            parts[1] = contract(abs_d * F.softplus(minus_m))
        return parts

    grad_x, grad_w = _over_slabs(x, y, block_size, slab)
    return grad_x, grad_w


class _BlockedXentRocAuc(torch.autograd.Function):
    """Blocked pairwise xent ROC-AUC on ``[L, B]`` inputs, with a backward that recomputes the slabs.

    Measured gain over :func:`pairwise_roc_auc` (``python -m benchmarks.functions``, one thread):
    1.39x at B = 1024 and 4.6x at 4096, keeping nothing but its inputs for backward (the pairwise
    form keeps B^2 pair values: 192 MiB at B = 4096).

    ``generate_vmap_rule = True``: forward and backward are plain out-of-place
    torch code, so ``torch.func.vmap`` runs them on batched tensors directly.
    The backward is itself made of differentiable torch operations, so higher
    derivatives work too (they store the backward's slabs). No forward-mode rule:
    under forward-mode AD :func:`blocked_xent_roc_auc` takes the pairwise form.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(x, y, w, block_size):
        return _blocked_xent_forward(x, y, w, block_size)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, y, w, block_size = inputs
        ctx.save_for_backward(x, y, w)
        ctx.block_size = block_size

    @staticmethod
    def backward(ctx, grad_out):
        x, y, w = ctx.saved_tensors
        need_x, _, need_w, _ = ctx.needs_input_grad
        if not (need_x or need_w):
            return None, None, None, None
        grad_x, grad_w = _blocked_xent_backward(grad_out, x, y, w, ctx.block_size, need_x, need_w)
        return grad_x, None, grad_w, None


def blocked_xent_roc_auc(
    x: torch.Tensor, y: torch.Tensor, w: torch.Tensor, block_size: Optional[int] = None
) -> torch.Tensor:
    """The xent ROC-AUC loss per example, exactly, without storing the pair matrix.

    Args:
      x: logits ``[B, L]``, floating.
      y: labels ``[B, L]`` (same dtype as ``x``); treated as constants.
      w: example weights ``[B, L]``.
      block_size: rows per slab; None picks :func:`default_block_size` (about
        2**18 pair values per slab).

    Returns:
      ``[B, L]``, equal to ``pairwise_roc_auc(x, y, w, "xent")`` in value and
      in gradient with respect to ``x`` and ``w``. Time ``O(B^2 L)`` (each
      unordered pair evaluated once in the forward, once in the backward);
      extra memory ``O(block_size * B * L)``. Works under ``torch.func``
      transforms (``vmap`` through a generated vmap rule; under forward-mode AD,
      ``jacfwd``, the pairwise form computes it) and ``torch.compile``.
    """
    _check_shapes(x, y, w)
    batch_size = x.shape[0]
    if block_size is None:
        block_size = default_block_size(batch_size, x.shape[1])
    check_positive_int("block_size", block_size)
    if batch_size == 0:
        return x * 0.0
    if _dispatch.forward_mode():
        return pairwise_roc_auc(x, y, w, "xent")
    # The Function works on [L, B], so that its batched matrix products need no copies.
    loss = _BlockedXentRocAuc.apply(x.transpose(0, 1), y.transpose(0, 1), w.transpose(0, 1), block_size)
    return loss.transpose(0, 1)


def roc_auc_elementwise(
    x: torch.Tensor,
    y: torch.Tensor,
    w: torch.Tensor,
    surrogate_type: str,
    *,
    block_size: Optional[int] = None,
) -> torch.Tensor:
    """The per-example ROC-AUC loss ``[B, L]`` by the fast exact form for ``surrogate_type``.

    ``"hinge"``: :func:`sorted_hinge_roc_auc` (labels must be 0 or 1);
    ``"xent"``: :func:`blocked_xent_roc_auc` with ``block_size``.
    """
    check_choice("surrogate_type", surrogate_type, SURROGATE_TYPES)
    if surrogate_type == "hinge":
        return sorted_hinge_roc_auc(x, y, w)
    return blocked_xent_roc_auc(x, y, w, block_size=block_size)
