"""Thin ``torch.nn.Module`` wrappers: the state (multipliers, biases, label-prior counts) and the dual step.

A module's ``forward(logits, labels, weights=None)`` returns the loss like
``BCEWithLogitsLoss``. The multipliers ``lambdas`` are *maximised*: by default they are a buffer
(not in ``parameters()``, so the model's optimizer never touches them) updated by
:meth:`~_ConstrainedLoss.dual_step`, a projected ascent step with its own learning rate::

    loss = criterion(model(x), y)
    loss.backward()
    optimizer.step()         # descent on the model (and on PR-AUC's biases)
    criterion.dual_step()    # ascent on the multipliers

The loss is linear in the multipliers, so its gradient with respect to them is the surrogate
constraint's violation, which the core returns in ``aux``: each training forward records a
dual signal (no autograd hook), and ``dual_step()`` consumes the *mean* of those recorded since
the last step. ``dual_signal="strict"`` (default) records the real 0-1 constraint at the
threshold as a rate deficit (e.g. ``target - precision``) over the room for error the target
leaves, clipped to [-1, 1], and steps ``clamp(lambda + dual_lr (1 + lambda) signal, 0, 1000)``,
as in the proxy-Lagrangian of Cotter et al. (2019): the model's gradient is the same, only the
multipliers' direction differs. ``dual_signal="surrogate"`` records the surrogate violation and
steps ``max(0, lambda + dual_lr * violation)``, the original's ascent.

State changes only in a training forward with gradients enabled, in eager mode or under
``torch.compile``; under ``torch.no_grad()``, in eval mode, and under ``torch.func`` transforms
(``grad``, ``vmap``, ...) a forward reads the state and changes nothing.

``dual_mode="reverse_gradient"`` reproduces the original instead: ``lambdas`` is a parameter ``v``
used as ``|v|`` whose gradient is multiplied by ``-dual_rate_factor``, so the model's optimizer
does ascent on it (always on the surrogate gradient).
"""

from __future__ import annotations

import inspect
import math
import os
import textwrap
import warnings
from typing import Any, Optional, cast
from collections.abc import Sequence

import torch
from torch import nn

from . import _dispatch, _losses, _math, distributed
from ._dual import reverse_gradient, strict_dual_step
from ._math import RateLagrangian
from ._calibration import calibrate_threshold
from ._priors import init_label_prior_counts
from ._strict import (
    ThresholdCounts,
    counts_rate_and_violation,
    normalised_violation,
    rates_at_threshold,
)
from ._validation import (
    REDUCTIONS,
    TensorLike,
    as_batch_by_label,
    broadcast_to,
    check_choice,
    check_num_labels,
    check_number,
    check_positive_int,
    check_unit_interval,
    value_checks_active,
)

DUAL_MODES = ("explicit", "reverse_gradient")
DUAL_SIGNALS = ("strict", "surrogate")
#: The default dual learning rate of each signal.
DEFAULT_DUAL_LR = {"strict": 0.05, "surrogate": 1.0}
#: Training forwards without a dual step before the module warns (once).
UNSTEPPED_FORWARDS_WARNING = 50
#: Backward passes in a row that leave PR-AUC's biases unchanged before it warns.
FROZEN_BIASES_WARNING = 10
#: Training forwards in a row whose logits all lie in [0, 1] (probabilities?) before it warns.
PROBABILITY_FORWARDS_WARNING = 20
#: Training forwards between two reads of the multipliers for the cap warning (each rides on the
#: input check's read; reading them every step cost 3% of a small-MLP step).
CAP_CHECK_EVERY = 10

_LIBRARY_DIRS = tuple(os.path.dirname(module.__file__ or "") + os.sep for module in (torch, _losses))


def _user_stacklevel() -> int:
    """The ``stacklevel`` of a warning issued by the caller of this function that points at the
    first frame outside goloss and torch: the user's line (e.g. ``criterion(logits, labels)``)."""
    frame, level = inspect.currentframe(), 0
    while frame is not None and frame.f_code.co_filename.startswith(_LIBRARY_DIRS):
        frame, level = frame.f_back, level + 1
    return level


class _ConstrainedLoss(nn.Module):
    """The state of a constrained loss (multipliers, label-prior counts, the recorded dual signal)
    around one call of its entry point in :mod:`goloss._losses`, and the dual step.

    Attributes:
      lambdas: the multipliers, ``[L]`` (``[L, A]`` for PR-AUC), >= 0 (a buffer; a parameter with
        ``dual_mode="reverse_gradient"``).
      weighted_label_counts: ``[L]``, ``P + sum w*y`` over the training batches so far, the
        streaming prior's numerator (without fixed ``label_priors``; ``label_priors`` is then None).
      weight_sum: ``[L]``, ``P + N + sum w`` so far, its denominator.
      violation_sum: the dual signal recorded since the last :meth:`dual_step`, summed: the
        surrogate violation, or the normalised strict violation.
      violation_count: the number of training forwards in ``violation_sum`` (the mean is
        :attr:`pending_violation`).
      last_aux: the ``aux`` dict of the latest call (detached): bounds, ``objective``,
        ``violation``, ``strict_violation``, the rates at the threshold, ...
      last_diagnostics: per label, from ``last_aux``: ``lagrangian = objective + lambdas *
        violation``, the surrogate ``violation`` (``dL/dlambda``), the ``strict_violation``,
        the batch's ``precision``, ``recall`` and ``false_positive_rate`` at the threshold,
        the bounds, ``lambdas`` and ``label_priors``.

    Shape:
      logits and labels ``[B]`` or ``[B, L]``; output ``[]``, or with ``reduction="none"`` the
      shape of logits.
    """

    _constraint = "precision"
    _target_name = "target"
    lambdas: torch.Tensor
    label_priors: Optional[torch.Tensor]
    weighted_label_counts: torch.Tensor
    weight_sum: torch.Tensor
    violation_sum: torch.Tensor
    violation_count: torch.Tensor

    def __init__(
        self, num_labels: int, lambdas_shape: tuple[int, ...], *, surrogate_type: str, reduction: str,
        lambdas_init: float, label_priors: Optional[TensorLike], dual_lr: Optional[float], dual_signal: str,
        dual_mode: str, dual_rate_factor: float, positive_pseudocount: float, negative_pseudocount: float,
        auto_dual_step: bool, process_group: Any,
    ) -> None:
        """The keyword arguments that every constrained module takes:
        surrogate_type (default "xent"): ``"xent"`` or ``"hinge"``.
        reduction (default "mean"): ``"mean"``, ``"sum"`` or ``"none"``, as in ``BCEWithLogitsLoss``.
        lambdas_init (default 1.0): initial value of the multipliers, >= 0.
        label_priors (default None): fixed ``[L]`` priors, or None for streaming counts updated by each
          training forward.
        dual_lr (default None): learning rate of :meth:`dual_step`, >= 0, or None for the signal's
          default (``DEFAULT_DUAL_LR``: 0.05 strict, 1.0 surrogate).
        dual_signal (default "strict"): ``"strict"``: the multipliers ascend on the 0-1 constraint at
          the threshold (a rate deficit); ``"surrogate"``: on the gradient of the loss, the surrogate
          bound's violation (the original).
        dual_mode (default "explicit"): ``"explicit"`` (a buffer and :meth:`dual_step`) or
          ``"reverse_gradient"`` (the original: a parameter whose gradient is multiplied by
          ``-dual_rate_factor``).
        dual_rate_factor (default 0.1): ``"reverse_gradient"`` only: the gradient reversal factor.
        positive_pseudocount, negative_pseudocount (default 1.0): initial streaming counts, >= 0.
        auto_dual_step (default False): take the dual step at the end of every training forward
          (simultaneous descent-ascent), so that a loop written for ``BCEWithLogitsLoss`` needs no
          extra line.
        process_group (default None): the ``torch.distributed`` group to synchronise over (default:
          the world, when initialised): prior counts and strict counts are summed, surrogate
          violations averaged over ranks, so every rank holds the same state.
        """
        super().__init__()
        check_positive_int("num_labels", num_labels)
        _math.indicator_scale(surrogate_type)  # validates surrogate_type
        check_choice("reduction", reduction, REDUCTIONS)
        check_choice("dual_mode", dual_mode, DUAL_MODES)
        check_choice("dual_signal", dual_signal, DUAL_SIGNALS)
        dual_lr = DEFAULT_DUAL_LR[dual_signal] if dual_lr is None else dual_lr
        for name, value in (("lambdas_init", lambdas_init), ("dual_lr", dual_lr),
                            ("positive_pseudocount", positive_pseudocount),
                            ("negative_pseudocount", negative_pseudocount)):
            check_number(name, value, low=0.0)
        check_number("dual_rate_factor", dual_rate_factor)
        if not isinstance(auto_dual_step, bool):
            raise ValueError(f"auto_dual_step must be True or False, got {auto_dual_step!r}")
        if auto_dual_step and dual_mode != "explicit":
            raise ValueError("auto_dual_step=True needs dual_mode='explicit'")
        self.num_labels, self.surrogate_type, self.reduction = num_labels, surrogate_type, reduction
        self.dual_lr, self.dual_signal, self.dual_mode = float(dual_lr), dual_signal, dual_mode
        self.dual_rate_factor, self.auto_dual_step = float(dual_rate_factor), auto_dual_step
        self.process_group = process_group
        initial = torch.full(lambdas_shape, float(lambdas_init))
        if dual_mode == "explicit":
            self.register_buffer("lambdas", initial)
        else:
            self.lambdas = nn.Parameter(initial)
        self.register_buffer("violation_sum", torch.zeros(lambdas_shape))
        self.register_buffer("violation_count", torch.zeros(()))
        if label_priors is not None:
            self.register_buffer("label_priors", self._per_label("label_priors", label_priors))
        else:
            counts = init_label_prior_counts(num_labels, positive_pseudocount=positive_pseudocount,
                                             negative_pseudocount=negative_pseudocount)
            self.register_buffer("weighted_label_counts", counts.weighted_label_counts)
            self.register_buffer("weight_sum", counts.weight_sum)
            self.label_priors = None
        # Plain Python state in one dict, mutated in place (no nn.Module.__setattr__ on the hot path):
        # the latest aux, training forwards since the last dual step, warnings given.
        # unit_forwards: training forwards in a row with logits in [0, 1], None once settled.
        self._state: dict[str, Any] = {"last_aux": {}, "unstepped": 0, "warned": set(), "unit_forwards": 0,
                                       "forwards": 0}

    def _per_label(self, name: str, value: TensorLike) -> torch.Tensor:
        """A number or ``[L]`` value in [0, 1] as an ``[L]`` tensor (a target or fixed priors)."""
        check_unit_interval(name, value)
        value = torch.as_tensor(value, dtype=torch.get_default_dtype())
        return broadcast_to(name, value, (self.num_labels,), f"[] or [{self.num_labels}]").clone()

    # -- state ---------------------------------------------------------------------------------
    def _all_reduce(self, tensor: torch.Tensor, mean: bool = False) -> torch.Tensor:
        """The one place of the distributed synchronisation: ``tensor`` summed (or averaged) over
        the ranks of ``process_group``; itself without ``torch.distributed``."""
        if not distributed.is_active(self.process_group):
            return tensor
        reduce = distributed.all_reduce_mean if mean else distributed.all_reduce_sum
        return reduce(tensor, self.process_group)

    def current_label_priors(self) -> torch.Tensor:
        """The priors the next eval-mode call uses: fixed, or the streaming estimate ``[L]``."""
        if self.label_priors is not None:
            return self.label_priors
        return _math.label_prior(self.weighted_label_counts, self.weight_sum)

    @torch.no_grad()
    def _add_to_prior_counts(self, positives: torch.Tensor, total) -> torch.Tensor:
        """A training batch's label counts added to the streaming counts (summed over the ranks
        first), and the priors they give: the entry point's ``label_priors`` source."""
        if distributed.is_active(self.process_group):
            counts = torch.stack([positives, torch.as_tensor(total, dtype=positives.dtype).expand_as(positives)])
            positives, total = self._all_reduce(counts)
        label_count, weight_sum, priors = _math.add_to_prior_counts(
            self.weighted_label_counts, self.weight_sum, positives, total)
        self.weighted_label_counts.copy_(label_count)
        self.weight_sum.copy_(cast(torch.Tensor, weight_sum))
        return priors

    def _multipliers(self) -> torch.Tensor:
        if self.dual_mode == "reverse_gradient":
            return reverse_gradient(self.lambdas, self.dual_rate_factor)
        # A copy: a dual step between this forward and its backward must not change what backward reads.
        return self.lambdas.clone()

    @property
    def pending_violation(self) -> torch.Tensor:
        """The mean dual signal recorded since the last :meth:`dual_step` (0 if none), ``lambdas``' shape."""
        return self.violation_sum / self.violation_count.clamp_min(1.0)

    def _strict_violation(self, aux: dict) -> torch.Tensor:
        """The strict violation of a call's ``aux``, ``lambdas``' shape: its own, or under
        ``torch.distributed`` the one of its counts summed over the ranks."""
        violation = aux["strict_violation"]
        if distributed.is_active(self.process_group):
            counts = ThresholdCounts(*self._all_reduce(torch.stack([aux[name] for name in ThresholdCounts._fields])))
            violation = counts_rate_and_violation(counts, self._strict_target(counts[0].dtype), self._constraint)[1]
        return violation.reshape(self.lambdas.shape)

    def _normalised(self, violation: torch.Tensor) -> torch.Tensor:
        """A strict violation over the room for error this module's targets leave, in [-1, 1]."""
        target = self._strict_target(violation.dtype)
        return normalised_violation(violation, target, self._constraint)

    def _record(self, aux: dict) -> None:
        """Add a training forward's dual signal to the pending sum (and step if automatic)."""
        if self.dual_signal == "surrogate":
            signal = aux["violation"].detach()
        else:
            signal = self._normalised(self._strict_violation(aux))
        self.violation_sum.add_(signal.reshape(self.violation_sum.shape))
        self.violation_count.add_(1.0)
        if self.auto_dual_step:
            self.dual_step()
        elif not _dispatch.compiling():
            self._state["unstepped"] += 1
            if self._state["unstepped"] == UNSTEPPED_FORWARDS_WARNING:
                self._warn_once(
                    "dual_step",
                    f"{type(self).__name__}: {UNSTEPPED_FORWARDS_WARNING} training forwards without a "
                    "dual_step(): the multipliers are not being updated. Call criterion.dual_step() once "
                    "per batch (after optimizer.step()), or construct it with auto_dual_step=True.",
                )

    def _probes(self, logits: torch.Tensor, record: bool) -> list[torch.Tensor]:
        """What a training forward's one value check also reads back (value checks on): the
        logits' distance from [0, 1] (``||logits - 0.5||_inf``; the first forwards only), and
        every :data:`CAP_CHECK_EVERY`-th forward the multipliers, until one reaches the strict
        step's cap. Other forwards add no op."""
        state = self._state
        state["unit_probed"] = False
        if not record:
            return []
        state["forwards"] += 1
        probes = []
        if state["unit_forwards"] is not None and isinstance(logits, torch.Tensor) and logits.numel() > 0:
            state["unit_probed"] = True
            probes.append(torch.linalg.vector_norm(logits.detach() - 0.5, math.inf).reshape(1))
        if (state["forwards"] % CAP_CHECK_EVERY == 0 and self.dual_signal == "strict"
                and self.dual_mode == "explicit" and "cap" not in state["warned"]):
            probes.append(self.lambdas)
        return probes

    def _read_probes(self, read: list) -> None:
        """Warn, once each, about logits that look like probabilities and multipliers at their cap."""
        if self._state["unit_probed"]:
            in_unit_interval = read.pop(0) <= 0.5
            self._state["unit_forwards"] = self._state["unit_forwards"] + 1 if in_unit_interval else None
            if self._state["unit_forwards"] == PROBABILITY_FORWARDS_WARNING:
                self._state["unit_forwards"] = None
                self._warn_once("probabilities", (
                    f"{type(self).__name__}: the logits of {PROBABILITY_FORWARDS_WARNING} training forwards in a "
                    "row all lay in [0, 1]. goloss expects logits (any real number, decided at > 0), not "
                    "probabilities: remove a final Sigmoid/Softmax, or pass torch.logit(p)."))
        capped = [index for index, value in enumerate(read) if value >= _math.MAX_LAMBDA]
        if capped:
            label, column = divmod(capped[0], self.lambdas.shape[-1]) if self.lambdas.dim() > 1 else (capped[0], 0)
            targets = self._strict_target(torch.float64)
            target = targets[column if self.lambdas.dim() > 1 else label].item()
            what = "anchor precision" if self.lambdas.dim() > 1 else self._target_name
            self._warn_once("cap", (
                f"{type(self).__name__}: the multiplier of label {label} reached its cap {_math.MAX_LAMBDA:g}: on the "
                f"batches that step it the model does not reach its {what} {target:g} ({len(capped)} multiplier(s) "
                "at the cap). If the model fits its training set and the steps use held-out batches, training "
                "longer will not close the gap: calibrate the decision threshold on a validation split "
                "(criterion.calibrate), stop early or regularise. Otherwise lower the target, give the model more "
                "capacity, or check the labels."))

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._state["warned"]:
            self._state["warned"].add(key)
            warnings.warn(message, UserWarning, stacklevel=_user_stacklevel())

    def dual_step(
        self, *positional: Any, lr: Optional[float] = None, logits: Optional[torch.Tensor] = None,
        labels: Optional[torch.Tensor] = None, weights: Optional[TensorLike] = None,
    ) -> None:
        """Projected ascent on the multipliers.

        Without ``logits``/``labels`` the signal is the mean of the one recorded by the training
        forwards since the last step (nothing recorded: no change). ``dual_signal="surrogate"``:
        ``lambdas <- max(0, lambdas + lr * violation)``, the original's ascent on the surrogate
        gradient. ``"strict"``: the strict violation normalised by the room for error the target
        leaves and clipped to [-1, 1] (:func:`~goloss.normalised_violation`), then
        :func:`~goloss.strict_dual_step`, ``max(0, lambdas + lr * (1 + lambdas) * signal)``:
        additive near 0, relative for large multipliers. With ``logits``/``labels`` the signal is
        the strict one of that (held-out) batch, computed without gradient and touching no
        other state; it replaces the recorded signal for this step. Under
        ``torch.distributed`` every rank must call it; counts are summed (strict) or the
        recorded violation averaged (surrogate) over ranks, so every rank takes the same step.

        Every argument is a keyword: ``dual_step(logits=..., labels=...)``.

        Args:
          lr: dual learning rate, >= 0; defaults to ``dual_lr``.
          logits, labels, weights: a held-out batch, as in ``forward``.
        """
        if positional:
            raise TypeError(
                f"{type(self).__name__}.dual_step() takes keyword arguments only: "
                "dual_step(logits=val_logits, labels=val_labels) for a held-out batch, dual_step(lr=...) for a "
                "learning rate")
        if self.dual_mode != "explicit":
            raise RuntimeError(
                "dual_step() is for dual_mode='explicit'; with 'reverse_gradient' the model's "
                "optimizer updates the multipliers"
            )
        lr = self.dual_lr if lr is None else lr
        if isinstance(lr, torch.Tensor):
            lr = lr.detach()
        else:
            check_number("lr", lr, low=0.0)
        if logits is not None or labels is not None:
            if logits is None or labels is None:
                raise ValueError("a held-out dual_step needs both logits= and labels=")
            new = strict_dual_step(self.lambdas, self._normalised(self.held_out_violation(logits, labels, weights)), lr)
        elif self.dual_signal == "strict":
            new = strict_dual_step(self.lambdas, self.pending_violation, lr)
        else:
            new = _math.surrogate_dual_step(self.lambdas, self._all_reduce(self.pending_violation, mean=True), lr)
        self.lambdas.copy_(new)
        self.violation_sum.zero_()
        self.violation_count.zero_()
        self._state["unstepped"] = 0

    @torch.no_grad()
    def held_out_violation(
        self, logits: torch.Tensor, labels: torch.Tensor, weights: Optional[TensorLike] = None
    ) -> torch.Tensor:
        """The strict violation of a batch (e.g. held out), ``lambdas``' shape; changes no state."""
        call = _losses.ModuleCall(self.num_labels)
        return self._strict_violation(self._call(logits, labels, weights, self.lambdas, self.current_label_priors(),
                                                 call)[1])

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        """Refuse, with a ``ValueError`` naming the entry, a state of another shape (e.g. another
        number of labels or anchors) or with negative multipliers; warn when the saved target
        differs from this module's (the saved one then holds)."""
        for name, current in [*self._parameters.items(), *self._buffers.items()]:
            saved = state_dict.get(prefix + name)
            if current is not None and isinstance(saved, torch.Tensor) and saved.shape != current.shape:
                raise ValueError(
                    f"state_dict entry {prefix + name!r} has shape {tuple(saved.shape)}, but this "
                    f"{type(self).__name__} (num_labels={self.num_labels}) expects {tuple(current.shape)}"
                )
        saved_lambdas = state_dict.get(prefix + "lambdas")
        if self.dual_mode == "explicit" and isinstance(saved_lambdas, torch.Tensor) and bool((saved_lambdas < 0).any()):
            raise ValueError(f"state_dict entry {prefix + 'lambdas'!r} must be >= 0 in dual_mode='explicit'")
        if "threshold" in self._buffers and prefix + "threshold" not in state_dict:  # saved before calibrate existed
            state_dict[prefix + "threshold"] = torch.zeros_like(cast(torch.Tensor, self._buffers["threshold"]))
        saved_target, current_target = state_dict.get(prefix + "target"), self._buffers.get("target")
        if isinstance(saved_target, torch.Tensor) and current_target is not None and not torch.equal(
            saved_target.to(current_target), current_target
        ):
            warnings.warn(
                f"{type(self).__name__}.load_state_dict: the state_dict's {self._target_name} "
                f"{saved_target.tolist()} differs from this module's {current_target.tolist()}; "
                f"the loaded value {saved_target.tolist()} now holds",
                UserWarning, stacklevel=3,
            )
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    # -- forward -------------------------------------------------------------------------------
    def forward(self, logits: torch.Tensor, labels: torch.Tensor, weights: Optional[TensorLike] = None) -> torch.Tensor:
        """The loss, reduced by ``reduction``; in a training forward, also updates the state.

        Args:
          logits: ``[B]`` or ``[B, L]`` with ``L = num_labels``.
          labels: shape of ``logits``, values in {0, 1}.
          weights: None, a number, ``[B]``, ``[B, 1]`` or ``[B, L]``.

        Returns:
          ``[]``, or the shape of ``logits`` with ``reduction="none"``.
        """
        transformed = _dispatch.under_transform()
        record = self.training and torch.is_grad_enabled() and not transformed
        if self.label_priors is not None:
            priors: Any = self.label_priors
        else:
            priors = self._add_to_prior_counts if record else self.current_label_priors()
        call = _losses.ModuleCall(self.num_labels, self._probes(logits, record))
        loss, aux = self._call(logits, labels, weights, self._multipliers(), priors, call)
        if call.read:
            self._read_probes(call.read)
        if record and self.dual_mode == "explicit":
            self._record(aux)
        if not transformed:
            self._state["last_aux"] = {key: value.detach() if value.requires_grad else value
                                       for key, value in aux.items()}
        return loss

    @property
    def last_aux(self) -> dict:
        """The ``aux`` of the latest call, detached (empty before the first call)."""
        return self._state["last_aux"]

    @property
    def last_diagnostics(self) -> dict:
        """Per label, from :attr:`last_aux` (empty before the first call); see the class docstring."""
        aux = self.last_aux
        if not aux:
            return {}
        weighted = aux["lambdas"] * aux["violation"]
        if weighted.dim() > aux["objective"].dim():  # PR-AUC: summed over the anchors
            weighted = weighted.sum(-1)
        precision, recall, fpr = rates_at_threshold(ThresholdCounts(*(aux[name] for name in ThresholdCounts._fields)))
        keys = ("objective", "violation", "strict_violation", "lambdas", "label_priors",
                "true_positives_lower_bound", "false_positives_upper_bound")
        return {
            "lagrangian": aux["objective"] + weighted,
            **{key: aux[key] for key in keys},
            "precision": precision,
            "recall": recall,
            "false_positive_rate": fpr,
        }

    def extra_repr(self) -> str:
        return (
            f"num_labels={self.num_labels}, surrogate_type={self.surrogate_type!r}, "
            f"reduction={self.reduction!r}, dual_mode={self.dual_mode!r}, dual_signal={self.dual_signal!r}, "
            f"dual_lr={self.dual_lr}" + (", auto_dual_step=True" if self.auto_dual_step else "")
        )

    def _call(self, logits, labels, weights, lambdas, priors, call) -> tuple[torch.Tensor, dict]:
        raise NotImplementedError

    def _strict_target(self, dtype: torch.dtype) -> torch.Tensor:
        raise NotImplementedError


class _RateLoss(_ConstrainedLoss):
    """A constrained loss with one multiplier and one target per label."""

    _lagrangian: RateLagrangian
    target: torch.Tensor
    threshold: torch.Tensor

    def _init_rate(self, target: TensorLike, convex_lagrangian: bool) -> None:
        """The per-label target, the decision threshold (0 until calibrated) and the option."""
        if not isinstance(convex_lagrangian, bool):
            raise ValueError(f"convex_lagrangian must be True or False, got {convex_lagrangian!r}")
        if convex_lagrangian and self.dual_mode != "explicit":
            raise ValueError("convex_lagrangian=True needs dual_mode='explicit'")
        self.convex_lagrangian = convex_lagrangian
        self.register_buffer("target", self._per_label(self._target_name, target))
        self.register_buffer("threshold", torch.zeros(self.num_labels))

    @torch.no_grad()
    def calibrate(self, logits: torch.Tensor, labels: torch.Tensor, weights: Optional[TensorLike] = None) -> dict:
        """Set :attr:`threshold` to where a held-out (validation) set meets the target with the best
        objective, per label (:func:`goloss.calibrate_threshold`); the decision is then
        ``logits > criterion.threshold`` (:meth:`predict`).

        Under ``torch.distributed`` every rank must call it: the ranks' examples are gathered, so
        every rank sets the same threshold. It warns, naming the labels, where the set cannot meet
        the target. To fold the threshold into a final ``nn.Linear``:
        ``linear.bias -= criterion.threshold`` (under ``torch.no_grad()``), after which logit 0
        is the decision again.

        Args:
          logits: ``[B]`` or ``[B, L]`` with ``L = num_labels``, the model's outputs on the set.
          labels: shape of ``logits``, values in {0, 1}.
          weights: None, a number, ``[B]``, ``[B, 1]`` or ``[B, L]``.

        Returns:
          The ``aux`` of :func:`goloss.calibrate_threshold`, each ``[L]``: the counts at the new
          threshold, the constrained rate, ``met``.
        """
        x, y, w = as_batch_by_label(logits.detach(), labels, weights)
        assert w is not None  # ones for None
        check_num_labels(x, self.num_labels, logits)
        if distributed.is_active(self.process_group):
            x, y, w = (distributed.all_gather_rows(t.contiguous(), self.process_group) for t in (x, y, w))
        threshold, aux = calibrate_threshold(x, y, self.target.to(x.dtype), self._constraint, weights=w)
        self.threshold.copy_(threshold)
        missed = [label for label, met in enumerate(aux["met"].tolist()) if not met]
        if missed:
            warnings.warn(
                f"{type(self).__name__}.calibrate: no threshold meets {self._target_name} "
                f"{[round(t, 6) for t in self.target[missed].tolist()]} on this set for label(s) {missed}; "
                "their threshold now lies above every logit (nothing predicted positive)",
                UserWarning, stacklevel=3,
            )
        return aux

    def predict(self, logits: torch.Tensor) -> torch.Tensor:
        """The decision ``logits > threshold``: bool, the shape of ``logits`` (``[B]`` or ``[B, L]``)."""
        return logits > self.threshold.to(logits.dtype)

    @property
    def _constraint(self) -> str:  # type: ignore[override]
        return self._lagrangian.constraint

    def _strict_target(self, dtype: torch.dtype) -> torch.Tensor:
        return self.target.to(dtype)

    def _call(self, logits, labels, weights, lambdas, priors, call):
        return _losses.rate_loss(
            self._lagrangian, type(self).__name__, None, lambdas, logits, labels, self.target, self._target_name,
            weights=weights, label_priors=priors, surrogate_type=self.surrogate_type, reduction=self.reduction,
            module=call, convex=self.convex_lagrangian,
        )

    def extra_repr(self) -> str:
        targets = ", ".join(f"{t:g}" for t in self.target.tolist())
        convex = ", convex_lagrangian=True" if self.convex_lagrangian else ""
        return f"{self._target_name}=[{targets}], " + super().extra_repr() + convex


def _module_doc(head: str, attributes: str, example: str = "") -> str:
    """A public module's docstring: its own ``head`` (summary and first arguments), the shared
    keyword arguments (``_ConstrainedLoss.__init__``), the shared attributes (``_ConstrainedLoss``)
    with its own ``attributes`` after them, and an ``example``."""
    arguments = inspect.cleandoc(_ConstrainedLoss.__init__.__doc__ or "").split("\n", 1)[1]
    shared_arguments = textwrap.indent(arguments, " " * 6)
    state, shape = (_ConstrainedLoss.__doc__ or "").split("\n\n", 1)[1].rstrip().split("\n\n")
    return f"{head}\n{shared_arguments}\n\n{state}{attributes}\n\n{shape}\n{example}"


def _rate_module_doc(summary: str, target: str, example: str) -> str:
    head = f"""{summary}

    Args:
      {target}: number or ``[L]`` tensor in [0, 1].
      num_labels (default 1): ``L``.
      convex_lagrangian (default False): divide each label's loss by ``1 + lambda``, so that the
        model descends on the convex combination ``(f + lambda g) / (1 + lambda)`` of objective
        and constraint (the proxy-Lagrangian's model step, Cotter et al. 2019): a large
        multiplier no longer scales the model's gradient up. The route measured for a model that
        fits its training set (``docs/guide/operating_point.md``); ``dual_mode="explicit"`` only."""
    return _module_doc(head, "\n      target: ``[L]``, the target (in ``state_dict``)."
                       "\n      threshold: ``[L]`` logits, the decision threshold that :meth:`calibrate` sets (in"
                       "\n        ``state_dict``; 0 until calibrated): decide ``logits > threshold``.", f"""
    Example:
      >>> import torch, goloss
      >>> criterion = goloss.{example}
      >>> logits, labels = torch.tensor([2.0, 1.0, -1.0, -2.0]), torch.tensor([1.0, 0.0, 1.0, 0.0])
      >>> loss = criterion(logits, labels)  # at logit 0: precision, recall and FPR are all 0.5
      >>> criterion.last_diagnostics["strict_violation"]  # the rate deficit to the target
      tensor([0.4000])
      >>> criterion.dual_step()  # 0.4 exceeds the room for error (0.1): lambdas * (1 + 0.05) + 0.05
      >>> criterion.lambdas
      tensor([1.1000])
    """)


_SHARED = ("surrogate_type", "reduction", "lambdas_init", "label_priors", "dual_lr", "dual_signal", "dual_mode",
           "dual_rate_factor", "positive_pseudocount", "negative_pseudocount", "auto_dual_step", "process_group")


def _shared(arguments: dict) -> dict:
    """The shared keyword arguments of a constructor's ``locals()``."""
    return {name: arguments[name] for name in _SHARED}


class RecallAtPrecisionLoss(_RateLoss):
    __doc__ = _rate_module_doc("Maximise recall subject to precision >= ``target_precision``.", "target_precision",
                               "RecallAtPrecisionLoss(target_precision=0.9)")
    _lagrangian = _math.RECALL_AT_PRECISION
    _target_name = "target_precision"

    def __init__(
        self, target_precision: TensorLike, num_labels: int = 1, *, surrogate_type: str = "xent",
        reduction: str = "mean", lambdas_init: float = 1.0, label_priors: Optional[TensorLike] = None,
        dual_lr: Optional[float] = None, dual_signal: str = "strict", dual_mode: str = "explicit",
        dual_rate_factor: float = 0.1, positive_pseudocount: float = 1.0, negative_pseudocount: float = 1.0,
        auto_dual_step: bool = False, process_group: Any = None, convex_lagrangian: bool = False,
    ) -> None:
        super().__init__(num_labels, (num_labels,), **_shared(locals()))
        self._init_rate(target_precision, convex_lagrangian)


class PrecisionAtRecallLoss(_RateLoss):
    __doc__ = _rate_module_doc("Maximise precision subject to recall >= ``target_recall``.", "target_recall",
                               "PrecisionAtRecallLoss(target_recall=0.9)")
    _lagrangian = _math.PRECISION_AT_RECALL
    _target_name = "target_recall"

    def __init__(
        self, target_recall: TensorLike, num_labels: int = 1, *, surrogate_type: str = "xent",
        reduction: str = "mean", lambdas_init: float = 1.0, label_priors: Optional[TensorLike] = None,
        dual_lr: Optional[float] = None, dual_signal: str = "strict", dual_mode: str = "explicit",
        dual_rate_factor: float = 0.1, positive_pseudocount: float = 1.0, negative_pseudocount: float = 1.0,
        auto_dual_step: bool = False, process_group: Any = None, convex_lagrangian: bool = False,
    ) -> None:
        super().__init__(num_labels, (num_labels,), **_shared(locals()))
        self._init_rate(target_recall, convex_lagrangian)


class FalsePositiveRateAtTruePositiveRateLoss(_RateLoss):
    __doc__ = _rate_module_doc("Minimise FPR subject to TPR >= ``target_rate`` (the precision-at-recall "
                               "Lagrangian).", "target_rate", "FPRAtTPRLoss(target_rate=0.9)")
    _lagrangian = _math.PRECISION_AT_RECALL
    _target_name = "target_rate"

    def __init__(
        self, target_rate: TensorLike, num_labels: int = 1, *, surrogate_type: str = "xent",
        reduction: str = "mean", lambdas_init: float = 1.0, label_priors: Optional[TensorLike] = None,
        dual_lr: Optional[float] = None, dual_signal: str = "strict", dual_mode: str = "explicit",
        dual_rate_factor: float = 0.1, positive_pseudocount: float = 1.0, negative_pseudocount: float = 1.0,
        auto_dual_step: bool = False, process_group: Any = None, convex_lagrangian: bool = False,
    ) -> None:
        super().__init__(num_labels, (num_labels,), **_shared(locals()))
        self._init_rate(target_rate, convex_lagrangian)


class TruePositiveRateAtFalsePositiveRateLoss(_RateLoss):
    __doc__ = _rate_module_doc("Maximise TPR subject to FPR <= ``target_rate``.", "target_rate",
                               "TPRAtFPRLoss(target_rate=0.1)")
    _lagrangian = _math.TPR_AT_FPR
    _target_name = "target_rate"

    def __init__(
        self, target_rate: TensorLike, num_labels: int = 1, *, surrogate_type: str = "xent",
        reduction: str = "mean", lambdas_init: float = 1.0, label_priors: Optional[TensorLike] = None,
        dual_lr: Optional[float] = None, dual_signal: str = "strict", dual_mode: str = "explicit",
        dual_rate_factor: float = 0.1, positive_pseudocount: float = 1.0, negative_pseudocount: float = 1.0,
        auto_dual_step: bool = False, process_group: Any = None, convex_lagrangian: bool = False,
    ) -> None:
        super().__init__(num_labels, (num_labels,), **_shared(locals()))
        self._init_rate(target_rate, convex_lagrangian)


FPRAtTPRLoss = FalsePositiveRateAtTruePositiveRateLoss
TPRAtFPRLoss = TruePositiveRateAtFalsePositiveRateLoss


class PrecisionRecallAUCLoss(_ConstrainedLoss):
    __doc__ = _module_doc("""Maximise the area under the precision-recall curve over ``precision_range``.

    A Riemann sum of recall-at-precision constraints at ``A = num_anchors`` anchor precisions,
    each with its own bias and multiplier; the strict violation of anchor ``k`` is ``a_k`` minus
    the batch's precision at ``logit + biases[:, k] > 0``.

    Args:
      num_labels (default 1): ``L``.
      precision_range (default (0.0, 1.0)): ``(lo, hi)`` with ``0 <= lo < hi <= 1``.
      num_anchors (default 20): ``A``.""",
        "\n      biases: ``[L, A]`` per-anchor biases, an ``nn.Parameter``: put ``criterion.parameters()``"
        "\n        in your optimizer (it warns if they never move).")
    anchors: torch.Tensor

    def __init__(
        self, num_labels: int = 1, *, precision_range: Sequence[float] = (0.0, 1.0), num_anchors: int = 20,
        surrogate_type: str = "xent", reduction: str = "mean", lambdas_init: float = 1.0,
        label_priors: Optional[TensorLike] = None, dual_lr: Optional[float] = None, dual_signal: str = "strict",
        dual_mode: str = "explicit", dual_rate_factor: float = 0.1, positive_pseudocount: float = 1.0,
        negative_pseudocount: float = 1.0, auto_dual_step: bool = False, process_group: Any = None,
    ) -> None:
        anchors, _ = _losses.range_to_anchors_and_delta(precision_range, num_anchors)
        super().__init__(num_labels, (num_labels, num_anchors), **_shared(locals()))
        self.precision_range = (float(precision_range[0]), float(precision_range[1]))
        self.num_anchors = num_anchors
        self.biases = nn.Parameter(torch.zeros(num_labels, num_anchors))
        self.biases.register_post_accumulate_grad_hook(self._after_bias_grad)
        self.register_buffer("anchors", torch.tensor(anchors), persistent=False)
        self._state.update(bias_version=None, frozen_bias_steps=0)

    def _after_bias_grad(self, biases: torch.Tensor) -> None:
        """Average the biases' gradient over ranks (as DDP would); warn once if an optimizer
        never changes them (their in-place version counter, no value read; without one, their
        values while value checks are on)."""
        assert biases.grad is not None  # a post-accumulate-grad hook
        grad = self._all_reduce(biases.grad, mean=True)
        if grad is not biases.grad:
            biases.grad.copy_(grad)
        if "biases" in self._state["warned"]:
            return
        version: Any = _dispatch.version(biases)
        if version is None:
            if not value_checks_active():
                return
            version = biases.detach().clone()
        previous, self._state["bias_version"] = self._state["bias_version"], version
        unchanged = previous is not None and (
            previous == version if isinstance(version, int) else torch.equal(previous, version))
        self._state["frozen_bias_steps"] = self._state["frozen_bias_steps"] + 1 if unchanged else 0
        if self._state["frozen_bias_steps"] == FROZEN_BIASES_WARNING:
            self._warn_once(
                "biases",
                f"PrecisionRecallAUCLoss: the per-anchor biases received gradients in {FROZEN_BIASES_WARNING} "
                "backward passes but never changed: add criterion.parameters() to your optimizer, e.g. "
                "torch.optim.Adam([*model.parameters(), *criterion.parameters()]).",
            )

    def _strict_target(self, dtype: torch.dtype) -> torch.Tensor:
        return self.anchors.to(dtype)

    def _call(self, logits, labels, weights, lambdas, priors, call):
        return _losses.pr_auc_loss(
            {"biases": self.biases}, lambdas, logits, labels, precision_range=self.precision_range,
            num_anchors=self.num_anchors, weights=weights, label_priors=priors, surrogate_type=self.surrogate_type,
            reduction=self.reduction, module=call,
        )

    def extra_repr(self) -> str:
        return f"precision_range={self.precision_range}, num_anchors={self.num_anchors}, " + super().extra_repr()


class ROCAUCLoss(nn.Module):
    """Surrogate of 1 - ROC AUC over the positive/negative pairs of each batch (no state).

    Args:
      surrogate_type (default "xent"): ``"xent"`` or ``"hinge"``.
      reduction (default "mean"): ``"mean"``, ``"sum"`` or ``"none"``.
      cross_rank (default False): under ``torch.distributed``, pair this rank's examples with
        every rank's (:func:`goloss.distributed.roc_auc_loss_across_ranks`; equal batch sizes).
      process_group (default None): the group for ``cross_rank`` (default: the world).

    Shape:
      logits and labels ``[B]`` or ``[B, L]``; output ``[]`` or the shape of logits.
    """

    def __init__(
        self, *, surrogate_type: str = "xent", reduction: str = "mean", cross_rank: bool = False, process_group=None
    ) -> None:
        super().__init__()
        _math.indicator_scale(surrogate_type)  # validates surrogate_type
        check_choice("reduction", reduction, REDUCTIONS)
        self.surrogate_type = surrogate_type
        self.reduction = reduction
        self.cross_rank = bool(cross_rank)
        self.process_group = process_group

    def forward(self, logits: torch.Tensor, labels: torch.Tensor, weights: Optional[TensorLike] = None) -> torch.Tensor:
        """The pairwise ranking loss, reduced by ``reduction``.

        Args:
          logits: ``[B]`` or ``[B, L]``.
          labels: shape of ``logits``, values in {0, 1}.
          weights: None, a number, ``[B]``, ``[B, 1]`` or ``[B, L]``.

        Returns:
          ``[]``, or the shape of ``logits`` with ``reduction="none"``.
        """
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
