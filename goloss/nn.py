"""Thin ``torch.nn.Module`` wrappers: the state (multipliers, biases, label-prior counts) and the dual step.

A module's ``forward(logits, labels, weights=None)`` returns the loss like
``BCEWithLogitsLoss``. The multipliers ``lambdas`` are *maximised*: by default
they are a buffer (not in ``parameters()``, so the model's optimizer never
touches them) whose gradient is accumulated during ``backward()`` and applied
by :meth:`dual_step`, a projected ascent step with its own learning rate::

    loss = criterion(model(x), y)
    loss.backward()
    optimizer.step()         # descent on the model (and on PR-AUC's biases)
    criterion.dual_step()    # ascent on the multipliers: max(0, lambda + dual_lr * grad)

``dual_mode="reverse_gradient"`` reproduces the original instead: ``lambdas`` is
a parameter ``v`` used as ``|v|`` whose gradient is multiplied by
``-dual_rate_factor``, so the model's optimizer does ascent on it.
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import nn

from . import _losses, distributed
from ._anchors import range_to_anchors_and_delta
from ._bounds import false_positives_upper_bound, true_positives_lower_bound
from ._dual import dual_ascent_step, reverse_gradient
from ._priors import batch_label_counts, init_label_prior_counts
from ._surrogates import indicator_scale
from ._validation import REDUCTIONS, TensorLike, as_batch_by_label, check_choice, check_unit_interval, reduce

DUAL_MODES = ("explicit", "reverse_gradient")


def _recall_at_precision_terms(positives, tp_lower, fp_upper, target, prior, batch_size, scale):
    """Per-label batch sums of the objective and constraint parts of a recall-at-precision Lagrangian."""
    objective = scale * (positives - tp_lower)
    constraint = (1 - target) * objective + target * scale * fp_upper - batch_size * (1 - target) * prior * scale
    return objective, constraint


def _precision_at_recall_terms(positives, tp_lower, fp_upper, target, prior, batch_size, scale):
    objective = scale * fp_upper
    constraint = scale * (positives - tp_lower) + batch_size * prior * (target - 1) * scale
    return objective, constraint


def _tpr_at_fpr_terms(positives, tp_lower, fp_upper, target, prior, batch_size, scale):
    objective = scale * (positives - tp_lower)
    constraint = scale * fp_upper - batch_size * target * (1 - prior) * scale
    return objective, constraint


class _GlobalObjectiveLoss(nn.Module):
    """Shared state handling of the constrained losses (multipliers, priors, dual step, diagnostics)."""

    _function = None  # the functional loss
    _terms = None  # closed-form objective and constraint from the bounds

    def __init__(
        self,
        num_labels: int,
        lambdas_shape: tuple[int, ...],
        *,
        surrogate_type: str,
        reduction: str,
        lambdas_init: float,
        label_priors: Optional[TensorLike],
        dual_lr: float,
        dual_mode: str,
        dual_rate_factor: float,
        positive_pseudocount: float,
        negative_pseudocount: float,
        auto_dual_step: bool,
        process_group,
    ) -> None:
        super().__init__()
        self.process_group = process_group
        check_choice("reduction", reduction, REDUCTIONS)
        check_choice("dual_mode", dual_mode, DUAL_MODES)
        indicator_scale(surrogate_type)  # validates surrogate_type
        if isinstance(num_labels, bool) or not isinstance(num_labels, int) or num_labels < 1:
            raise ValueError(f"num_labels must be a positive integer, got {num_labels!r}")
        if not float(lambdas_init) >= 0.0:
            raise ValueError(f"lambdas_init must be >= 0, got {lambdas_init!r}")
        self.num_labels = num_labels
        self.surrogate_type = surrogate_type
        self.reduction = reduction
        self.dual_lr = float(dual_lr)
        self.dual_mode = dual_mode
        self.dual_rate_factor = float(dual_rate_factor)
        self.auto_dual_step = bool(auto_dual_step)
        if self.auto_dual_step and dual_mode != "explicit":
            raise ValueError("auto_dual_step=True needs dual_mode='explicit'")
        initial = torch.full(lambdas_shape, float(lambdas_init))
        if dual_mode == "explicit":
            self.register_buffer("lambdas", initial)
        else:
            self.lambdas = nn.Parameter(initial)
        if label_priors is not None:
            check_unit_interval("label_priors", label_priors)
            priors = torch.as_tensor(label_priors, dtype=torch.get_default_dtype())
            self.register_buffer("label_priors", priors.expand(num_labels).clone())
        else:
            counts = init_label_prior_counts(
                num_labels, positive_pseudocount=positive_pseudocount, negative_pseudocount=negative_pseudocount
            )
            self.register_buffer("weighted_label_counts", counts.weighted_label_counts)
            self.register_buffer("weight_sum", counts.weight_sum)
            self.label_priors = None
        self._dual_grad: Optional[torch.Tensor] = None
        self.last_aux: dict = {}
        self.last_diagnostics: dict = {}

    # -- state -----------------------------------------------------------------------------
    def current_label_priors(self) -> torch.Tensor:
        """The priors the next eval-mode call uses: fixed, or the streaming estimate ``[L]``."""
        if self.label_priors is not None:
            return self.label_priors
        return self.weighted_label_counts / self.weight_sum

    def _priors_for(self, labels: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """Fixed priors, or the streaming estimate updated with this batch first (training only)."""
        if self.label_priors is not None:
            return self.label_priors
        if self.training:
            with torch.no_grad():
                counts = torch.stack(batch_label_counts(labels, weights)).to(self.weight_sum.dtype)
                positives, total = distributed.all_reduce_sum(counts, self.process_group)
                self.weighted_label_counts.add_(positives)
                self.weight_sum.add_(total)
        return self.current_label_priors()

    def _multipliers(self) -> torch.Tensor:
        """The multipliers to use in this forward, wired for the dual update."""
        if self.dual_mode == "reverse_gradient":
            return reverse_gradient(self.lambdas, self.dual_rate_factor)
        if not (self.training and torch.is_grad_enabled()):
            return self.lambdas
        # A copy, so that a dual step during backward cannot change what backward reads.
        leaf = self.lambdas.detach().clone().requires_grad_()
        leaf.register_hook(self._accumulate_dual_grad)
        return leaf

    def _accumulate_dual_grad(self, grad: torch.Tensor) -> None:
        grad = grad.detach()
        self._dual_grad = grad if self._dual_grad is None else self._dual_grad + grad
        if self.auto_dual_step:
            self.dual_step()

    @property
    def dual_grad(self) -> Optional[torch.Tensor]:
        """``d loss / d lambdas`` accumulated by ``backward()`` since the last :meth:`dual_step`."""
        return self._dual_grad

    @torch.no_grad()
    def dual_step(self, lr: Optional[float] = None) -> None:
        """Projected ascent on the multipliers, ``max(0, lambdas + lr * grad)``; consumes the gradient.

        Under ``torch.distributed`` the gradient is first averaged over the ranks, so every rank
        takes the same step (every rank must call it).

        Args:
          lr: dual learning rate; defaults to the ``dual_lr`` given at construction.
        """
        if self.dual_mode != "explicit":
            raise RuntimeError(
                "dual_step() is for dual_mode='explicit'; with 'reverse_gradient' the model's "
                "optimizer updates the multipliers"
            )
        if self._dual_grad is not None:
            grad = distributed.all_reduce_mean(self._dual_grad, self.process_group)
            new = dual_ascent_step(self.lambdas, grad, self.dual_lr if lr is None else lr)
            self.lambdas.copy_(new)
        self._dual_grad = None

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        """Refuse, with a ``ValueError`` naming the entry, a state of another shape (e.g. another
        number of labels or anchors) or with negative multipliers."""
        for name, current in [*self._parameters.items(), *self._buffers.items()]:
            saved = state_dict.get(prefix + name)
            if current is None or not isinstance(saved, torch.Tensor):
                continue
            if saved.shape != current.shape:
                raise ValueError(
                    f"state_dict entry {prefix + name!r} has shape {tuple(saved.shape)}, but this "
                    f"{type(self).__name__} (num_labels={self.num_labels}) expects {tuple(current.shape)}"
                )
        saved_lambdas = state_dict.get(prefix + "lambdas")
        if self.dual_mode == "explicit" and isinstance(saved_lambdas, torch.Tensor) and bool((saved_lambdas < 0).any()):
            raise ValueError(f"state_dict entry {prefix + 'lambdas'!r} must be >= 0 in dual_mode='explicit'")
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    # -- forward ---------------------------------------------------------------------------
    def _call(self, lambdas, logits, labels, weights, priors):
        raise NotImplementedError

    def forward(self, logits: torch.Tensor, labels: torch.Tensor, weights: Optional[TensorLike] = None) -> torch.Tensor:
        """The loss, reduced by ``self.reduction``.

        Args:
          logits: ``[B]`` or ``[B, L]`` with ``L = num_labels``.
          labels: shape of ``logits``, values in {0, 1}.
          weights: None, a number, ``[B]``, ``[B, 1]`` or ``[B, L]``.
        """
        x, y, w = as_batch_by_label(logits, labels, weights)
        if x.shape[1] != self.num_labels:
            raise ValueError(
                f"logits must have {self.num_labels} label(s) (num_labels), got shape {tuple(logits.shape)}"
            )
        priors = self._priors_for(y, w)
        lambdas = self._multipliers()
        loss, aux = self._call(lambdas, x, y, None if weights is None else w, priors)
        self.last_aux = {key: value.detach().clone() for key, value in aux.items()}
        with torch.no_grad():
            self.last_diagnostics = self._diagnostics(x, y, w, loss.detach(), self.last_aux)
        return reduce(loss.reshape(logits.shape), self.reduction)

    def _diagnostics(self, x, y, w, loss, aux) -> dict:
        positives = (w * y).sum(0)
        scale = indicator_scale(self.surrogate_type)
        objective, constraint = type(self)._terms(
            positives, aux["true_positives_lower_bound"], aux["false_positives_upper_bound"],
            self.target, aux["label_priors"], (w > 0).sum(0), scale,
        )
        return {
            "lagrangian": loss.sum(0),
            "objective": objective,
            "constraint": constraint,
            "slack": -constraint / scale,
            "lambdas": aux["lambdas"],
            "true_positives_lower_bound": aux["true_positives_lower_bound"],
            "false_positives_upper_bound": aux["false_positives_upper_bound"],
            "weighted_positives": positives,
        }

    def extra_repr(self) -> str:
        return (
            f"num_labels={self.num_labels}, surrogate_type={self.surrogate_type!r}, "
            f"reduction={self.reduction!r}, dual_mode={self.dual_mode!r}, dual_lr={self.dual_lr}"
            + (", auto_dual_step=True" if self.auto_dual_step else "")
        )


class _RateLoss(_GlobalObjectiveLoss):
    """A constrained loss with one multiplier and one target per label."""

    _target_name = ""

    def __init__(
        self,
        target: TensorLike,
        num_labels: int = 1,
        *,
        surrogate_type: str = "xent",
        reduction: str = "mean",
        lambdas_init: float = 1.0,
        label_priors: Optional[TensorLike] = None,
        dual_lr: float = 1.0,
        dual_mode: str = "explicit",
        dual_rate_factor: float = 0.1,
        positive_pseudocount: float = 1.0,
        negative_pseudocount: float = 1.0,
        auto_dual_step: bool = False,
        process_group=None,
    ) -> None:
        super().__init__(
            num_labels, (num_labels,), surrogate_type=surrogate_type, reduction=reduction,
            lambdas_init=lambdas_init, label_priors=label_priors, dual_lr=dual_lr, dual_mode=dual_mode,
            dual_rate_factor=dual_rate_factor, positive_pseudocount=positive_pseudocount,
            negative_pseudocount=negative_pseudocount, auto_dual_step=auto_dual_step,
            process_group=process_group,
        )
        check_unit_interval(self._target_name, target)
        target = torch.as_tensor(target, dtype=torch.get_default_dtype())
        if target.dim() > 1 or target.numel() not in (1, num_labels):
            raise ValueError(f"{self._target_name} must be a number or have shape [{num_labels}], got {tuple(target.shape)}")
        self.register_buffer("target", target.expand(num_labels).clone())

    def _call(self, lambdas, x, y, w, priors):
        return type(self)._function(
            None, lambdas, x, y, **{self._target_name: self.target}, weights=w,
            label_priors=priors, surrogate_type=self.surrogate_type,
        )

    def extra_repr(self) -> str:
        targets = ", ".join(f"{t:g}" for t in self.target.tolist())
        return f"{self._target_name}=[{targets}], " + super().extra_repr()


_RATE_DOC = """{summary}

    Args:
      {target}: number or ``[L]`` tensor in [0, 1].
      num_labels: ``L``.
      surrogate_type: ``"xent"`` or ``"hinge"``.
      reduction: ``"mean"`` (default), ``"sum"`` or ``"none"``.
      lambdas_init: initial multiplier value.
      label_priors: fixed ``[L]`` priors, or None for streaming counts updated once per
        training-mode forward (never in eval mode).
      dual_lr: learning rate of :meth:`dual_step`.
      dual_mode: ``"explicit"`` (buffer + :meth:`dual_step`) or ``"reverse_gradient"`` (the
        original: a parameter whose gradient is multiplied by ``-dual_rate_factor``).
      dual_rate_factor: used by ``"reverse_gradient"`` only.
      positive_pseudocount, negative_pseudocount: initial streaming counts.
      process_group: the ``torch.distributed`` group to synchronise over (default: the world,
        when ``torch.distributed`` is initialised): prior counts are summed and multiplier
        gradients averaged over ranks, so every rank holds the same state.
      auto_dual_step: apply :meth:`dual_step` by itself as soon as ``backward()`` has produced
        the multipliers' gradient (simultaneous descent-ascent), so a training loop written for
        ``BCEWithLogitsLoss`` needs no extra line.

    Shape:
      logits and labels ``[B]`` or ``[B, L]``; output ``[]`` or, with ``reduction="none"``, the
      shape of logits.
    """


class RecallAtPrecisionLoss(_RateLoss):
    __doc__ = _RATE_DOC.format(summary="Maximise recall subject to precision >= ``target_precision``.", target="target_precision")
    _function = staticmethod(_losses.recall_at_precision_loss)
    _terms = staticmethod(_recall_at_precision_terms)
    _target_name = "target_precision"

    def __init__(self, target_precision: TensorLike, num_labels: int = 1, **kwargs) -> None:
        super().__init__(target_precision, num_labels, **kwargs)


class PrecisionAtRecallLoss(_RateLoss):
    __doc__ = _RATE_DOC.format(summary="Maximise precision subject to recall >= ``target_recall``.", target="target_recall")
    _function = staticmethod(_losses.precision_at_recall_loss)
    _terms = staticmethod(_precision_at_recall_terms)
    _target_name = "target_recall"

    def __init__(self, target_recall: TensorLike, num_labels: int = 1, **kwargs) -> None:
        super().__init__(target_recall, num_labels, **kwargs)


class FalsePositiveRateAtTruePositiveRateLoss(_RateLoss):
    __doc__ = _RATE_DOC.format(summary="Minimise FPR subject to TPR >= ``target_rate``.", target="target_rate")
    _function = staticmethod(_losses.false_positive_rate_at_true_positive_rate_loss)
    _terms = staticmethod(_precision_at_recall_terms)
    _target_name = "target_rate"

    def __init__(self, target_rate: TensorLike, num_labels: int = 1, **kwargs) -> None:
        super().__init__(target_rate, num_labels, **kwargs)


class TruePositiveRateAtFalsePositiveRateLoss(_RateLoss):
    __doc__ = _RATE_DOC.format(summary="Maximise TPR subject to FPR <= ``target_rate``.", target="target_rate")
    _function = staticmethod(_losses.true_positive_rate_at_false_positive_rate_loss)
    _terms = staticmethod(_tpr_at_fpr_terms)
    _target_name = "target_rate"

    def __init__(self, target_rate: TensorLike, num_labels: int = 1, **kwargs) -> None:
        super().__init__(target_rate, num_labels, **kwargs)


FPRAtTPRLoss = FalsePositiveRateAtTruePositiveRateLoss
TPRAtFPRLoss = TruePositiveRateAtFalsePositiveRateLoss


class PrecisionRecallAUCLoss(_GlobalObjectiveLoss):
    """Maximise the area under the precision-recall curve over ``precision_range``.

    ``biases`` (``[L, A]``) is an ``nn.Parameter`` trained by the model's optimizer, as in
    the original; ``lambdas`` (``[L, A]``) follow ``dual_mode`` as in
    :class:`RecallAtPrecisionLoss`, whose other arguments this module shares.

    Args:
      num_labels: ``L``.
      precision_range: ``(lo, hi)`` with ``0 <= lo < hi <= 1``.
      num_anchors: ``A``.

    Shape:
      logits and labels ``[B]`` or ``[B, L]``; output ``[]`` or the shape of logits.
    """

    _function = staticmethod(_losses.precision_recall_auc_loss)

    def __init__(
        self,
        num_labels: int = 1,
        *,
        precision_range: Sequence[float] = (0.0, 1.0),
        num_anchors: int = 20,
        surrogate_type: str = "xent",
        reduction: str = "mean",
        lambdas_init: float = 1.0,
        label_priors: Optional[TensorLike] = None,
        dual_lr: float = 1.0,
        dual_mode: str = "explicit",
        dual_rate_factor: float = 0.1,
        positive_pseudocount: float = 1.0,
        negative_pseudocount: float = 1.0,
        auto_dual_step: bool = False,
        process_group=None,
    ) -> None:
        anchors, self._delta = range_to_anchors_and_delta(precision_range, num_anchors)
        super().__init__(
            num_labels, (num_labels, num_anchors), surrogate_type=surrogate_type, reduction=reduction,
            lambdas_init=lambdas_init, label_priors=label_priors, dual_lr=dual_lr, dual_mode=dual_mode,
            dual_rate_factor=dual_rate_factor, positive_pseudocount=positive_pseudocount,
            negative_pseudocount=negative_pseudocount, auto_dual_step=auto_dual_step,
            process_group=process_group,
        )
        self.precision_range = (float(precision_range[0]), float(precision_range[1]))
        self.num_anchors = num_anchors
        self.biases = nn.Parameter(torch.zeros(num_labels, num_anchors))
        # Under torch.distributed the biases' gradient is averaged over ranks as soon as it is
        # accumulated, as DistributedDataParallel would do: no DDP wrapper is needed for them.
        self.biases.register_post_accumulate_grad_hook(self._average_bias_grad)
        self.register_buffer("anchors", torch.tensor(anchors), persistent=False)

    def _average_bias_grad(self, biases: torch.Tensor) -> None:
        if distributed.is_active(self.process_group):
            biases.grad.copy_(distributed.all_reduce_mean(biases.grad, self.process_group))

    def _call(self, lambdas, x, y, w, priors):
        return self._function(
            {"biases": self.biases}, lambdas, x, y, precision_range=self.precision_range,
            num_anchors=self.num_anchors, weights=w, label_priors=priors, surrogate_type=self.surrogate_type,
        )

    def _diagnostics(self, x, y, w, loss, aux) -> dict:
        scale = indicator_scale(self.surrogate_type)
        shifted = x.unsqueeze(-1) + aux["biases"]
        options = {"weights": w.unsqueeze(-1), "surrogate_type": self.surrogate_type}
        tp_lower = true_positives_lower_bound(shifted, y, **options)
        fp_upper = false_positives_upper_bound(shifted, y, **options)
        positives = (w * y).sum(0)
        objective, constraint = _recall_at_precision_terms(
            positives.unsqueeze(-1), tp_lower, fp_upper, self.anchors.to(x.dtype),
            aux["label_priors"].unsqueeze(-1), (w > 0).sum(0).unsqueeze(-1), scale,
        )
        normaliser = self._delta / (self.precision_range[1] - self.precision_range[0] - self._delta)
        return {
            "lagrangian": loss.sum(0),
            "objective": normaliser * objective.sum(-1),
            "constraint": normaliser * constraint,
            "slack": -constraint / scale,
            "lambdas": aux["lambdas"],
            "true_positives_lower_bound": tp_lower,
            "false_positives_upper_bound": fp_upper,
            "weighted_positives": positives,
        }

    def extra_repr(self) -> str:
        return f"precision_range={self.precision_range}, num_anchors={self.num_anchors}, " + super().extra_repr()


class ROCAUCLoss(nn.Module):
    """Surrogate of 1 - ROC AUC over the positive/negative pairs of each batch (no state).

    Args:
      surrogate_type: ``"xent"`` or ``"hinge"``.
      reduction: ``"mean"`` (default), ``"sum"`` or ``"none"``.
      cross_rank: under ``torch.distributed``, pair this rank's examples with every rank's
        (:func:`goloss.distributed.roc_auc_loss_across_ranks`; equal batch sizes on all ranks).
      process_group: the group for ``cross_rank`` (default: the world).

    Shape:
      logits and labels ``[B]`` or ``[B, L]``; output ``[]`` or the shape of logits.
    """

    def __init__(
        self, *, surrogate_type: str = "xent", reduction: str = "mean", cross_rank: bool = False, process_group=None
    ) -> None:
        super().__init__()
        indicator_scale(surrogate_type)
        check_choice("reduction", reduction, REDUCTIONS)
        self.surrogate_type = surrogate_type
        self.reduction = reduction
        self.cross_rank = bool(cross_rank)
        self.process_group = process_group

    def forward(self, logits: torch.Tensor, labels: torch.Tensor, weights: Optional[TensorLike] = None) -> torch.Tensor:
        if self.cross_rank:
            return distributed.roc_auc_loss_across_ranks(
                logits, labels, weights=weights, surrogate_type=self.surrogate_type, reduction=self.reduction,
                group=self.process_group,
            )
        return _losses.roc_auc_loss(
            None, None, logits, labels, weights=weights, surrogate_type=self.surrogate_type, reduction=self.reduction
        )[0]

    def extra_repr(self) -> str:
        return f"surrogate_type={self.surrogate_type!r}, reduction={self.reduction!r}, cross_rank={self.cross_rank}"
