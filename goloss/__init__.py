"""goloss: global-objective losses for PyTorch (recall at precision, PR-AUC, ROC-AUC, ...).

A PyTorch successor of TensorFlow's Global Objectives library (Eban et al.,
AISTATS 2017). ``goloss.functional`` holds the pure functions; the common
names are re-exported here.
"""

from . import distributed, functional, nn
from .functional import *  # noqa: F401,F403
from .functional import __all__ as _functional_all
from .nn import (
    FalsePositiveRateAtTruePositiveRateLoss,
    FPRAtTPRLoss,
    PrecisionAtRecallLoss,
    PrecisionRecallAUCLoss,
    RecallAtPrecisionLoss,
    ROCAUCLoss,
    TPRAtFPRLoss,
    TruePositiveRateAtFalsePositiveRateLoss,
)

__version__ = "0.1.0"
__all__ = [
    "distributed",
    "functional",
    "nn",
    *_functional_all,
    "FalsePositiveRateAtTruePositiveRateLoss",
    "FPRAtTPRLoss",
    "PrecisionAtRecallLoss",
    "PrecisionRecallAUCLoss",
    "RecallAtPrecisionLoss",
    "ROCAUCLoss",
    "TPRAtFPRLoss",
    "TruePositiveRateAtFalsePositiveRateLoss",
]
