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
import warnings
from typing import Optional, Sequence

import torch
from torch import nn

from . import _losses, _one_label, distributed
from ._anchors import range_to_anchors_and_delta
from ._dual import reverse_gradient, scalar_strict_dual_step, strict_dual_step
from ._priors import init_label_prior_counts
from ._strict import (
    ThresholdCounts,
    counts_from_batch,
    normalised_violation,
    rate_and_violation,
    rates_at_threshold,
    scalar_normalised_violation,
)
from ._surrogate_sums import eager_without_transforms
from ._surrogates import indicator_scale
from ._validation import (
    REDUCTIONS,
    TensorLike,
    check_choice,
    check_number,
    check_positive_int,
    check_unit_interval,
)

DUAL_MODES = ("explicit", "reverse_gradient")
DUAL_SIGNALS = ("strict", "surrogate")
#: The default dual learning rate of each signal.
DEFAULT_DUAL_LR = {"strict": 0.05, "surrogate": 1.0}
#: Training forwards without a dual step before the module warns (once).
UNSTEPPED_FORWARDS_WARNING = 50
#: Backward passes in a row that leave PR-AUC's biases unchanged, despite a gradient, before it warns.
FROZEN_BIASES_WARNING = 10

# The constructor arguments that every constrained module shares: (name, default, description).
SHARED_ARGUMENTS = (
    ("surrogate_type", "xent", '``"xent"`` or ``"hinge"``.'),
    ("reduction", "mean", '``"mean"``, ``"sum"`` or ``"none"``, as in ``BCEWithLogitsLoss``.'),
    ("lambdas_init", 1.0, "initial value of the multipliers, >= 0."),
    ("label_priors", None, "fixed ``[L]`` priors, or None for streaming counts updated by each training "
                           "forward."),
    ("dual_lr", None, "learning rate of :meth:`dual_step`, >= 0, or None for the signal's default "
                      "(``DEFAULT_DUAL_LR``: 0.05 strict, 1.0 surrogate)."),
    ("dual_signal", "strict", '``"strict"``: the multipliers ascend on the 0-1 constraint at the '
                              'threshold (a rate deficit); ``"surrogate"``: on the gradient of the loss, '
                              "the surrogate bound's violation (the original)."),
    ("dual_mode", "explicit", '``"explicit"`` (a buffer and :meth:`dual_step`) or ``"reverse_gradient"`` '
                              "(the original: a parameter whose gradient is multiplied by "
                              "``-dual_rate_factor``)."),
    ("dual_rate_factor", 0.1, '``"reverse_gradient"`` only: the gradient reversal factor.'),
    ("positive_pseudocount", 1.0, "initial streaming count of positives, >= 0."),
    ("negative_pseudocount", 1.0, "initial streaming count of negatives, >= 0."),
    ("auto_dual_step", False, "take the dual step at the end of every training forward "
                              "(simultaneous descent-ascent), so that a loop written for "
                              "``BCEWithLogitsLoss`` needs no extra line."),
    ("process_group", None, "the ``torch.distributed`` group to synchronise over (default: the world, "
                            "when initialised): prior counts and strict counts are summed, surrogate "
                            "violations averaged over ranks, so every rank holds the same state."),
)
_DEFAULTS = {name: default for name, default, _ in SHARED_ARGUMENTS}

_STATE_DOC = """
    Attributes:
      lambdas: the multipliers, ``{shape}``, >= 0 (a buffer; a parameter with
        ``dual_mode="reverse_gradient"``).{extra_attributes}
      weighted_label_counts, weight_sum: ``[L]`` streaming prior counts (without fixed
        ``label_priors``; ``label_priors`` is then None).
      violation_sum, violation_count: the recorded dual signal since the last
        :meth:`dual_step` (its mean is :attr:`pending_violation`): the surrogate violation, or
        the normalised strict violation.
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


def _shared_arguments_doc() -> str:
    return "\n".join(f"      {name} (default {default!r}): {doc}" for name, default, doc in SHARED_ARGUMENTS)


def _with_shared_arguments(init):
    """Show the shared keyword arguments, with their defaults, in ``init``'s signature (``help()``)."""
    signature = inspect.signature(init)
    leading = [p for p in signature.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
    shared = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default)
              for name, default, _ in SHARED_ARGUMENTS]
    init.__signature__ = signature.replace(parameters=leading + shared)
    init.__doc__ = "Build the loss; the arguments are described in the class docstring."
    return init


def _counts_in(aux: dict) -> ThresholdCounts:
    """The threshold counts a constrained loss returns in ``aux``."""
    return ThresholdCounts(*(aux[name] for name in ThresholdCounts._fields))


def _as_dtype(tensor: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return tensor if tensor.dtype == dtype else tensor.to(dtype)


def _under_transform() -> bool:
    return not torch.compiler.is_compiling() and torch._C._functorch.maybe_current_level() is not None


class _ConstrainedLoss(nn.Module):
    """Shared state handling of the constrained losses: multipliers, priors, dual step, diagnostics."""

    _constraint = "precision"

    def __init__(self, num_labels: int, lambdas_shape: tuple[int, ...], options: dict) -> None:
        super().__init__()
        unknown = set(options) - set(_DEFAULTS)
        if unknown:
            raise TypeError(f"{type(self).__name__}() got unexpected keyword argument(s) {sorted(unknown)}")
        o = {**_DEFAULTS, **options}
        check_positive_int("num_labels", num_labels)
        indicator_scale(o["surrogate_type"])  # validates surrogate_type
        check_choice("reduction", o["reduction"], REDUCTIONS)
        check_choice("dual_mode", o["dual_mode"], DUAL_MODES)
        check_choice("dual_signal", o["dual_signal"], DUAL_SIGNALS)
        if o["dual_lr"] is None:
            o["dual_lr"] = DEFAULT_DUAL_LR[o["dual_signal"]]
        for name in ("lambdas_init", "dual_lr", "positive_pseudocount", "negative_pseudocount"):
            check_number(name, o[name], low=0.0)
        check_number("dual_rate_factor", o["dual_rate_factor"])
        if not isinstance(o["auto_dual_step"], bool):
            raise ValueError(f"auto_dual_step must be True or False, got {o['auto_dual_step']!r}")
        if o["auto_dual_step"] and o["dual_mode"] != "explicit":
            raise ValueError("auto_dual_step=True needs dual_mode='explicit'")
        self.num_labels = num_labels
        self.surrogate_type = o["surrogate_type"]
        self.reduction = o["reduction"]
        self.dual_lr = float(o["dual_lr"])
        self.dual_signal = o["dual_signal"]
        self.dual_mode = o["dual_mode"]
        self.dual_rate_factor = float(o["dual_rate_factor"])
        self.auto_dual_step = o["auto_dual_step"]
        self.process_group = o["process_group"]
        initial = torch.full(lambdas_shape, float(o["lambdas_init"]))
        if self.dual_mode == "explicit":
            self.register_buffer("lambdas", initial)
        else:
            self.lambdas = nn.Parameter(initial)
        self.register_buffer("violation_sum", torch.zeros(lambdas_shape))
        self.register_buffer("violation_count", torch.zeros(()))
        if o["label_priors"] is not None:
            check_unit_interval("label_priors", o["label_priors"])
            priors = torch.as_tensor(o["label_priors"], dtype=torch.get_default_dtype())
            if priors.dim() > 1 or priors.numel() not in (1, num_labels):
                raise ValueError(f"label_priors must be a number or have shape [{num_labels}], got {tuple(priors.shape)}")
            self.register_buffer("label_priors", priors.expand(num_labels).clone())
        else:
            counts = init_label_prior_counts(
                num_labels, positive_pseudocount=o["positive_pseudocount"],
                negative_pseudocount=o["negative_pseudocount"],
            )
            self.register_buffer("weighted_label_counts", counts.weighted_label_counts)
            self.register_buffer("weight_sum", counts.weight_sum)
            self.label_priors = None
        self._last_aux = {}  # a dict, or (keys, numbers, dtype) from the one-label path
        self._unstepped_forwards = 0
        self._warned = set()

    # -- state -----------------------------------------------------------------------------
    def current_label_priors(self) -> torch.Tensor:
        """The priors the next eval-mode call uses: fixed, or the streaming estimate ``[L]``."""
        if self.label_priors is not None:
            return self.label_priors
        return self.weighted_label_counts / self.weight_sum

    def _priors(self, batch, record: bool) -> torch.Tensor:
        """Fixed priors, or the streaming estimate, updated with this batch first when recording."""
        if self.label_priors is not None or not record:
            return self.current_label_priors()
        with torch.no_grad():
            positives, total = batch.positives, batch.weight_sum
            if distributed.is_active(self.process_group):
                counts = torch.stack([positives, torch.as_tensor(total, dtype=positives.dtype).expand_as(positives)])
                positives, total = distributed.all_reduce_sum(counts, self.process_group)
            self.weighted_label_counts.add_(positives)
            self.weight_sum.add_(total)
        return self.current_label_priors()

    def _multipliers(self) -> torch.Tensor:
        if self.dual_mode == "reverse_gradient":
            return reverse_gradient(self.lambdas, self.dual_rate_factor)
        # A copy: a dual step between this forward and its backward must not change what
        # backward reads.
        return self.lambdas.clone()

    def _signal(self, aux: dict) -> torch.Tensor:
        """This training forward's dual signal from its ``aux`` (with the label axis). Under
        ``torch.distributed`` the strict signal is formed from the threshold counts summed over
        the ranks."""
        if self.dual_signal == "surrogate":
            return aux["violation"]
        signal = aux["strict_violation"]
        if distributed.is_active(self.process_group):
            signal = self._strict_violation(_counts_in(aux))
        return self._normalised(signal)

    def _record(self, signal, prior_counts: tuple = ()) -> None:
        """Add a training forward's dual signal to the pending sum (and step if automatic).

        ``signal`` is a tensor, or for one label a number; then ``prior_counts`` may hold the
        batch's ``(positives, total weight)`` for the streaming counts, added in the same op.
        """
        if isinstance(signal, torch.Tensor):
            signal = signal.detach()
            self.violation_sum.add_(signal if signal.shape == self.violation_sum.shape
                                    else signal.reshape(self.violation_sum.shape))
            self.violation_count.add_(1.0)
        else:
            counts = (self.weighted_label_counts, self.weight_sum) if prior_counts else ()
            torch._foreach_add_([self.violation_sum, self.violation_count, *counts], [signal, 1.0, *prior_counts])
        if self.auto_dual_step:
            self.dual_step()
        elif not torch.compiler.is_compiling():
            self._set("_unstepped_forwards", self._unstepped_forwards + 1)
            if self._unstepped_forwards == UNSTEPPED_FORWARDS_WARNING:
                self._warn_once(
                    "dual_step",
                    f"{type(self).__name__}: {UNSTEPPED_FORWARDS_WARNING} training forwards without a "
                    "dual_step(): the multipliers are not being updated. Call criterion.dual_step() once "
                    "per batch (after optimizer.step()), or construct it with auto_dual_step=True.",
                )

    def _set(self, name: str, value) -> None:
        """Set a plain attribute without ``nn.Module.__setattr__``'s checks (eager; a hot path)."""
        if torch.compiler.is_compiling():
            setattr(self, name, value)
        else:
            self.__dict__[name] = value

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            warnings.warn(message, UserWarning, stacklevel=4)

    @property
    def pending_violation(self) -> torch.Tensor:
        """The mean dual signal recorded since the last :meth:`dual_step` (0 if none), ``lambdas``' shape."""
        return self.violation_sum / self.violation_count.clamp_min(1.0)

    def dual_step(
        self,
        lr: Optional[float] = None,
        *,
        logits: Optional[torch.Tensor] = None,
        labels: Optional[torch.Tensor] = None,
        weights: Optional[TensorLike] = None,
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

        Args:
          lr: dual learning rate, >= 0; defaults to ``dual_lr``.
          logits, labels, weights: a held-out batch, as in ``forward``.
        """
        if self.dual_mode != "explicit":
            raise RuntimeError(
                "dual_step() is for dual_mode='explicit'; with 'reverse_gradient' the model's "
                "optimizer updates the multipliers"
            )
        lr = self.dual_lr if lr is None else lr
        if isinstance(lr, torch.Tensor):
            lr = lr.detach()  # with the buffers and a held-out signal (no gradient): nothing recorded
        else:
            check_number("lr", lr, low=0.0)
        if logits is not None or labels is not None:
            if logits is None or labels is None:
                raise ValueError("a held-out dual_step needs both logits= and labels=")
            signal = self._normalised(self.held_out_violation(logits, labels, weights))
            new = strict_dual_step(self.lambdas, _as_dtype(signal, self.lambdas.dtype), lr)
        elif self._steps_on_numbers(lr):  # one multiplier on the CPU: a few numbers, few ops
            lam, total, count = torch.cat([self.lambdas, self.violation_sum, self.violation_count.view(1)]).tolist()
            signal = total / max(count, 1.0)
            strict = self.dual_signal == "strict"
            new = scalar_strict_dual_step(lam, signal, lr) if strict else max(0.0, lam + lr * signal)
        elif self.dual_signal == "strict":
            new = strict_dual_step(self.lambdas, _as_dtype(self.pending_violation, self.lambdas.dtype), lr)
        else:
            violation = distributed.all_reduce_mean(self.pending_violation, self.process_group)
            # lr is finite and the logits are checked, so the violation is finite.
            new = torch.clamp(self.lambdas + lr * _as_dtype(violation, self.lambdas.dtype), min=0.0)
        if isinstance(new, torch.Tensor):
            self.lambdas.copy_(new)
        else:
            self.lambdas.fill_(new)
        torch._foreach_zero_([self.violation_sum, self.violation_count])
        self._set("_unstepped_forwards", 0)

    def _local_eager_cpu(self, tensor: torch.Tensor) -> bool:
        """``tensor`` on the CPU, plain eager mode and no process group: where the one-label path
        (:mod:`goloss._one_label`) may work on Python numbers."""
        return (
            tensor.device.type == "cpu" and eager_without_transforms()
            and not (self.process_group is not None or distributed.is_active())
        )

    def _steps_on_numbers(self, lr) -> bool:
        """One multiplier, a number ``lr``, on the CPU in plain eager mode with no process group."""
        return self.lambdas.shape == (1,) and not isinstance(lr, torch.Tensor) and self._local_eager_cpu(self.lambdas)

    @torch.no_grad()
    def held_out_violation(
        self, logits: torch.Tensor, labels: torch.Tensor, weights: Optional[TensorLike] = None
    ) -> torch.Tensor:
        """The strict violation of a batch (e.g. held out), ``lambdas``' shape; changes no state."""
        batch = self._batch(logits, labels, weights)
        biases = self._threshold_biases(batch.x.dtype)
        counts = counts_from_batch(
            batch.x, batch.on_positives, batch.w if batch.weighted else None, batch.positives,
            batch.weight_sum, biases,
        )
        return self._strict_violation(counts)

    def _strict_violation(self, counts: ThresholdCounts) -> torch.Tensor:
        """The strict violation from threshold counts, summed over the ranks first under
        ``torch.distributed``."""
        if distributed.is_active(self.process_group):
            counts = ThresholdCounts(*distributed.all_reduce_sum(torch.stack(list(counts)), self.process_group))
        return rate_and_violation(counts, self._strict_target(counts[0].dtype), self._constraint)[1]

    def _normalised(self, violation: torch.Tensor) -> torch.Tensor:
        """A strict violation over the room for error this module's target leaves, in [-1, 1]."""
        return normalised_violation(violation, self._strict_target(violation.dtype), self._constraint)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        """Refuse, with a ``ValueError`` naming the entry, a state of another shape (e.g. another
        number of labels or anchors) or with negative multipliers; warn when the saved target
        differs from this module's (the saved one then holds)."""
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
        saved_target = state_dict.get(prefix + "target")
        current_target = self._buffers.get("target")
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

    # -- forward ---------------------------------------------------------------------------
    def _batch(self, logits, labels, weights, value_checks=True):
        batch = _losses.Batch(logits, labels, weights, self.surrogate_type, self.reduction, value_checks)
        batch.keep_label_axis = True
        if batch.num_labels != self.num_labels:
            raise ValueError(
                f"logits must have {self.num_labels} label(s) (num_labels), got shape {tuple(logits.shape)}"
            )
        return batch

    def forward(self, logits: torch.Tensor, labels: torch.Tensor, weights: Optional[TensorLike] = None) -> torch.Tensor:
        """The loss, reduced by ``reduction``; in a training forward, also updates the state.

        Args:
          logits: ``[B]`` or ``[B, L]`` with ``L = num_labels``.
          labels: shape of ``logits``, values in {0, 1}.
          weights: None, a number, ``[B]``, ``[B, 1]`` or ``[B, L]``.

        Returns:
          ``[]``, or the shape of ``logits`` with ``reduction="none"``.
        """
        batch = self._batch(logits, labels, weights, value_checks=False)
        record = self.training and torch.is_grad_enabled() and not _under_transform()
        if self._on_numbers(batch):  # its batch sums make the value checks
            return self._forward_on_numbers(batch, record)
        batch.check_values()
        priors = _as_dtype(self._priors(batch, record), batch.x.dtype)
        loss, aux = self._impl(batch, _as_dtype(self._multipliers(), batch.x.dtype), priors)
        if record and self.dual_mode == "explicit":
            self._record(self._signal(aux))
        if not _under_transform():
            self._set("_last_aux", {key: value.detach() if value.requires_grad else value for key, value in aux.items()})
        return loss

    def _on_numbers(self, batch) -> bool:
        """Whether this call takes the one-label path on Python numbers (rate losses only)."""
        return False

    @property
    def last_aux(self) -> dict:
        """The ``aux`` of the latest call, detached (empty before the first call)."""
        aux = self._last_aux
        if isinstance(aux, tuple):  # numbers of the one-label path: [1] tensors, formed once
            keys, numbers, dtype = aux
            aux = dict(zip(keys, torch.tensor(numbers, dtype=dtype).unsqueeze(1).unbind(0)))
            self._set("_last_aux", aux)
        return aux

    @property
    def last_diagnostics(self) -> dict:
        """Per label, from :attr:`last_aux` (empty before the first call); see the class docstring."""
        aux = self.last_aux
        if not aux:
            return {}
        weighted = aux["lambdas"] * aux["violation"]
        precision, recall, fpr = rates_at_threshold(_counts_in(aux))
        keys = ("objective", "violation", "strict_violation", "lambdas", "label_priors",
                "true_positives_lower_bound", "false_positives_upper_bound")
        return {
            "lagrangian": aux["objective"] + (weighted.sum(-1) if weighted.dim() > aux["objective"].dim() else weighted),
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


class _RateLoss(_ConstrainedLoss):
    """A constrained loss with one multiplier and one target per label."""

    _target_name = ""
    _lagrangian: _losses.RateLagrangian

    def __init__(self, target: TensorLike, num_labels: int = 1, **options) -> None:
        super().__init__(num_labels, (num_labels,) if isinstance(num_labels, int) else (1,), options)
        check_unit_interval(self._target_name, target)
        target = torch.as_tensor(target, dtype=torch.get_default_dtype())
        if target.dim() > 1 or target.numel() not in (1, num_labels):
            raise ValueError(f"{self._target_name} must be a number or have shape [{num_labels}], got {tuple(target.shape)}")
        self.register_buffer("target", target.expand(num_labels).clone())

    @property
    def _constraint(self) -> str:
        return self._lagrangian.constraint

    def _strict_target(self, dtype):
        return self.target.to(dtype)

    def _threshold_biases(self, dtype):
        return None

    def _impl(self, batch, lambdas, priors):
        return _losses.rate_loss_impl(self._lagrangian, batch, lambdas, _as_dtype(self.target, batch.x.dtype), priors)

    def _on_numbers(self, batch) -> bool:
        """One label, a reduced loss and a small CPU batch in plain eager mode, with no gradient
        wanted for labels or weights and no process group: :mod:`goloss._one_label`."""
        return (
            batch.num_labels == 1 and batch.reduction != "none"
            and batch.x.numel() <= _one_label.MAX_ELEMENTS and self.dual_mode == "explicit" and not batch.y.requires_grad
            and not (batch.weighted and batch.w.requires_grad) and self._local_eager_cpu(batch.x)
        )

    def _forward_on_numbers(self, batch, record: bool) -> torch.Tensor:
        """:meth:`forward` for :meth:`_on_numbers`: the same state changes, loss and aux."""
        sums = _one_label.batch_sums(batch)
        fixed = self.label_priors is not None
        state = (self.label_priors,) if fixed else (self.weighted_label_counts, self.weight_sum)
        lam, t, *counts = torch.cat([self.lambdas, self.target, *state]).tolist()
        prior_counts = () if fixed or not record else (sums[4], sums[4] + sums[5])  # positives, total
        if fixed:
            p = counts[0]
        elif record:  # as the streaming update that _record makes
            p = (counts[0] + prior_counts[0]) / (counts[1] + prior_counts[1])
        else:
            p = counts[0] / counts[1]
        loss, aux = _one_label.rate_loss(self._lagrangian, batch, sums, lam, t, p)
        if record:
            if self.dual_signal == "surrogate":
                signal = aux["violation"]
            else:
                signal = scalar_normalised_violation(aux["strict_violation"], t, self._constraint)
            self._record(signal, prior_counts)
        self._set("_last_aux", (tuple(aux), list(aux.values()), batch.x.dtype))  # tensors when read
        return loss

    def extra_repr(self) -> str:
        targets = ", ".join(f"{t:g}" for t in self.target.tolist())
        return f"{self._target_name}=[{targets}], " + super().extra_repr()


def _rate_module_doc(summary: str, target: str, example: str) -> str:
    return f"""{summary}

    Args:
      {target}: number or ``[L]`` tensor in [0, 1].
      num_labels (default 1): ``L``.
{_shared_arguments_doc()}
""" + _STATE_DOC.format(shape="``[L]``", extra_attributes="\n      target: ``[L]``, the target (in ``state_dict``).") + f"""
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
    """


class RecallAtPrecisionLoss(_RateLoss):
    __doc__ = _rate_module_doc("Maximise recall subject to precision >= ``target_precision``.", "target_precision",
                               "RecallAtPrecisionLoss(target_precision=0.9)")
    _lagrangian = _losses.RECALL_AT_PRECISION
    _target_name = "target_precision"

    @_with_shared_arguments
    def __init__(self, target_precision: TensorLike, num_labels: int = 1, **options) -> None:
        super().__init__(target_precision, num_labels, **options)


class PrecisionAtRecallLoss(_RateLoss):
    __doc__ = _rate_module_doc("Maximise precision subject to recall >= ``target_recall``.", "target_recall",
                               "PrecisionAtRecallLoss(target_recall=0.9)")
    _lagrangian = _losses.PRECISION_AT_RECALL
    _target_name = "target_recall"

    @_with_shared_arguments
    def __init__(self, target_recall: TensorLike, num_labels: int = 1, **options) -> None:
        super().__init__(target_recall, num_labels, **options)


class FalsePositiveRateAtTruePositiveRateLoss(_RateLoss):
    __doc__ = _rate_module_doc("Minimise FPR subject to TPR >= ``target_rate`` (the precision-at-recall "
                               "Lagrangian).", "target_rate", "FPRAtTPRLoss(target_rate=0.9)")
    _lagrangian = _losses.PRECISION_AT_RECALL
    _target_name = "target_rate"

    @_with_shared_arguments
    def __init__(self, target_rate: TensorLike, num_labels: int = 1, **options) -> None:
        super().__init__(target_rate, num_labels, **options)


class TruePositiveRateAtFalsePositiveRateLoss(_RateLoss):
    __doc__ = _rate_module_doc("Maximise TPR subject to FPR <= ``target_rate``.", "target_rate",
                               "TPRAtFPRLoss(target_rate=0.1)")
    _lagrangian = _losses.TPR_AT_FPR
    _target_name = "target_rate"

    @_with_shared_arguments
    def __init__(self, target_rate: TensorLike, num_labels: int = 1, **options) -> None:
        super().__init__(target_rate, num_labels, **options)


FPRAtTPRLoss = FalsePositiveRateAtTruePositiveRateLoss
TPRAtFPRLoss = TruePositiveRateAtFalsePositiveRateLoss


class PrecisionRecallAUCLoss(_ConstrainedLoss):
    __doc__ = """Maximise the area under the precision-recall curve over ``precision_range``.

    A Riemann sum of recall-at-precision constraints at ``A = num_anchors`` anchor precisions,
    each with its own bias and multiplier; the strict violation of anchor ``k`` is ``a_k`` minus
    the batch's precision at ``logit + biases[:, k] > 0``.

    Args:
      num_labels (default 1): ``L``.
      precision_range (default (0.0, 1.0)): ``(lo, hi)`` with ``0 <= lo < hi <= 1``.
      num_anchors (default 20): ``A``.
""" + _shared_arguments_doc() + "\n" + _STATE_DOC.format(
        shape="``[L, A]``",
        extra_attributes="\n      biases: ``[L, A]`` per-anchor biases, an ``nn.Parameter``: put "
                         "``criterion.parameters()`` in your optimizer (it warns if they never move).",
    )
    _constraint = "precision"

    @_with_shared_arguments
    def __init__(
        self, num_labels: int = 1, *, precision_range: Sequence[float] = (0.0, 1.0), num_anchors: int = 20,
        **options,
    ) -> None:
        anchors, delta = range_to_anchors_and_delta(precision_range, num_anchors)
        super().__init__(num_labels, (num_labels, num_anchors) if isinstance(num_labels, int) else (1,), options)
        self.precision_range = (float(precision_range[0]), float(precision_range[1]))
        self.num_anchors = num_anchors
        self._normaliser = delta / (self.precision_range[1] - self.precision_range[0] - delta)
        self.biases = nn.Parameter(torch.zeros(num_labels, num_anchors))
        self.biases.register_post_accumulate_grad_hook(self._after_bias_grad)
        self.register_buffer("anchors", torch.tensor(anchors), persistent=False)
        self._bias_snapshot: Optional[torch.Tensor] = None
        self._frozen_bias_steps = 0

    def _after_bias_grad(self, biases: torch.Tensor) -> None:
        """Average the biases' gradient over ranks (as DDP would); warn if they never move."""
        if distributed.is_active(self.process_group):
            biases.grad.copy_(distributed.all_reduce_mean(biases.grad, self.process_group))
        if "biases" in self._warned:
            return
        frozen = self._bias_snapshot is not None and torch.equal(biases.detach(), self._bias_snapshot)
        self._frozen_bias_steps = self._frozen_bias_steps + 1 if frozen and bool(biases.grad.any()) else 0
        self._bias_snapshot = biases.detach().clone()
        if self._frozen_bias_steps == FROZEN_BIASES_WARNING:
            self._warn_once(
                "biases",
                f"PrecisionRecallAUCLoss: the per-anchor biases received gradients in {FROZEN_BIASES_WARNING} "
                "backward passes but never changed: add criterion.parameters() to your optimizer, e.g. "
                "torch.optim.Adam([*model.parameters(), *criterion.parameters()]).",
            )

    def _strict_target(self, dtype):
        return self.anchors.to(dtype)

    def _threshold_biases(self, dtype):
        return self.biases.detach().to(dtype)

    def _impl(self, batch, lambdas, priors):
        return _losses.pr_auc_loss_impl(
            batch, self.biases.to(batch.x.dtype), lambdas, self.anchors.to(batch.x.dtype), self._normaliser, priors
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
        indicator_scale(surrogate_type)
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
