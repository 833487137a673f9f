"""Literal translation of the original formulas: the baseline the benchmark compares against.

Each loss evaluates the weighted surrogate three times (the loss and the two bounds) and builds
every temporary the original builds, exactly as the TensorFlow code is written.
"""

import math

import torch
import torch.nn.functional as F


def _surrogate(labels, logits, surrogate_type, positive_weights=1.0, negative_weights=1.0):
    if surrogate_type == "xent":
        softplus_term = torch.clamp(-logits, min=0) + torch.log1p(torch.exp(-logits.abs()))
        factor = negative_weights + (positive_weights - negative_weights) * labels
        return negative_weights * (logits - labels * logits) + factor * softplus_term
    return positive_weights * labels * torch.relu(1 - logits) + negative_weights * (1 - labels) * torch.relu(1 + logits)


def _bounds(labels, logits, weights, surrogate_type):
    scale = math.log(2.0) if surrogate_type == "xent" else 1.0
    if logits.dim() == 3 and labels.dim() == 2:
        labels = labels.unsqueeze(2)
    tp = (weights * (labels - _surrogate(labels, logits, surrogate_type, negative_weights=0.0) / scale)).sum(0)
    fp = (weights * _surrogate(labels, logits, surrogate_type, positive_weights=0.0) / scale).sum(0)
    return tp, fp


def _priors(labels, weights):
    return (1.0 + (weights * labels).sum(0)) / (2.0 + weights.sum(0))


def rate_loss(name, lambdas, logits, labels, target, surrogate_type="xent"):
    """The four rate losses as the original writes them (FPR@TPR is P@R)."""
    weights = torch.ones_like(logits)
    priors = _priors(labels, weights)
    scale = math.log(2.0) if surrogate_type == "xent" else 1.0
    if name == "recall_at_precision_loss":
        loss = weights * _surrogate(labels, logits, surrogate_type, 1.0 + lambdas * (1.0 - target), lambdas * target)
        loss = loss - lambdas * (1.0 - target) * priors * scale
    elif name == "true_positive_rate_at_false_positive_rate_loss":
        loss = weights * _surrogate(labels, logits, surrogate_type, 1.0, lambdas)
        loss = loss - lambdas * target * (1.0 - priors) * scale
    else:
        loss = weights * _surrogate(labels, logits, surrogate_type, lambdas, 1.0)
        loss = loss + lambdas * priors * (target - 1.0) * scale
    return loss, _bounds(labels, logits, weights, surrogate_type)


def precision_recall_auc_loss(biases, lambdas, logits, labels, num_anchors=20, surrogate_type="xent"):
    weights = torch.ones_like(logits)
    priors = _priors(labels, weights).reshape(1, -1, 1)
    values = torch.linspace(0.0, 1.0, num_anchors + 2, dtype=logits.dtype)[1:-1]
    delta = float(values[0])
    x, y, w = logits.unsqueeze(2), labels.unsqueeze(2), weights.unsqueeze(2)
    lam, b = lambdas.unsqueeze(0), biases.unsqueeze(0)
    loss = w * _surrogate(y, x + b, surrogate_type, 1.0 + lam * (1.0 - values), lam * values)
    scale = math.log(2.0) if surrogate_type == "xent" else 1.0
    per_anchor = loss - lam * (1.0 - values) * priors * scale
    scaled = delta * per_anchor.sum(2) / (1.0 - delta)
    return scaled, _bounds(y, x, w, surrogate_type)


def roc_auc_loss(logits, labels, surrogate_type="xent"):
    weights = torch.ones_like(logits)
    dx = logits.unsqueeze(0) - logits.unsqueeze(1)
    dy = labels.unsqueeze(0) - labels.unsqueeze(1)
    raw = _surrogate(torch.ones_like(dx), dy * dx, surrogate_type)
    return (dy.abs() * weights.unsqueeze(0) * weights.unsqueeze(1) * raw).mean(0) * 0.5


def bce(logits, labels):
    return F.binary_cross_entropy_with_logits(logits, labels, reduction="none")
