"""Lightning adapter: the dual step after every training batch.

Example::

    import lightning
    from goloss.integrations.lightning import DualStep

    class Model(lightning.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = torch.nn.Linear(10, 1)
            self.criterion = goloss.RecallAtPrecisionLoss(0.9)  # a submodule: its state is checkpointed

        def training_step(self, batch, batch_idx):
            x, y = batch
            return self.criterion(self.net(x).squeeze(-1), y)

    lightning.Trainer(callbacks=[DualStep()]).fit(Model(), loader)

The criterion's multipliers are buffers, so ``configure_optimizers`` may pass
``self.parameters()`` as usual (PR-AUC's biases are parameters and are trained with them).
"""

from __future__ import annotations

from typing import Any

from lightning.pytorch.callbacks import Callback

from . import constrained_losses


class DualStep(Callback):
    """Calls ``dual_step()`` on every goloss constrained loss inside the LightningModule after
    every training batch (after the optimizer's step), and logs each multiplier's mean as
    ``goloss/<name>/lambda`` (with ``log_lambdas=True``, the default)."""

    def __init__(self, log_lambdas: bool = True) -> None:
        self.log_lambdas = log_lambdas

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        for name, loss in constrained_losses(pl_module):
            loss.dual_step()
            if self.log_lambdas:
                pl_module.log(f"goloss/{name}/lambda", loss.lambdas.mean(), on_step=True, on_epoch=False)
