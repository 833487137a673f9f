"""The skorch and Lightning recipes of the docs, run as a user would (small data, seconds):
fit, the dual step once per training batch, clone / set_params, pickle or checkpoint round trip."""

from __future__ import annotations

import pickle

import pytest
import torch
from torch import nn

import goloss

ROWS, FEATURES, BATCH, EPOCHS = 600, 5, 100, 3


def data(seed=0):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(ROWS, FEATURES, generator=generator)
    y = (x[:, 0] + 0.5 * torch.randn(ROWS, generator=generator) > 0.8).float()
    return x, y


class Linear(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(FEATURES, 1)

    def forward(self, x):
        return self.linear(x).squeeze(-1)


@pytest.fixture
def dual_steps(monkeypatch):
    """Counts the dual steps of every goloss module."""
    calls = []
    original = goloss.nn._ConstrainedLoss.dual_step

    def counted(self, *args, **kwargs):
        calls.append(type(self).__name__)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(goloss.nn._ConstrainedLoss, "dual_step", counted)
    return calls


# -- skorch ---------------------------------------------------------------------------------------


def make_net(**overrides):
    skorch = pytest.importorskip("skorch")
    from goloss.integrations.skorch import Diagnostics, DualStep, sigmoid_then_2d

    kwargs = dict(
        criterion=goloss.RecallAtPrecisionLoss, criterion__target_precision=0.8, predict_nonlinearity=sigmoid_then_2d,
        callbacks=[DualStep(), Diagnostics()], optimizer=torch.optim.Adam, lr=0.05, max_epochs=EPOCHS,
        batch_size=BATCH, train_split=skorch.dataset.ValidSplit(5), verbose=0,
    )
    return skorch.NeuralNetBinaryClassifier(Linear, **{**kwargs, **overrides})


def test_skorch_fits_with_one_dual_step_per_training_batch_and_scores(dual_steps):
    x, y = data()
    net = make_net().fit(x.numpy(), y.numpy())
    train_rows = ROWS - ROWS // 5
    assert len(dual_steps) == EPOCHS * -(-train_rows // BATCH)
    assert not torch.equal(net.criterion_.lambdas, torch.ones(1))  # the steps moved the multiplier
    history = net.history
    assert {"valid_acc", "goloss_precision", "goloss_recall", "goloss_lambda"} <= set(history[-1])
    assert 0.0 <= history[-1, "goloss_precision"] <= 1.0
    assert history[-1, "goloss_lambda"] == pytest.approx(net.criterion_.lambdas.item())
    proba = net.predict_proba(x.numpy())
    assert proba.shape == (ROWS, 2)
    assert set(net.predict(x.numpy()).tolist()) <= {0.0, 1.0}


def test_skorch_clone_set_params_and_pickle_round_trip():
    from sklearn.base import clone

    x, y = data(1)
    net = clone(make_net()).set_params(criterion__target_precision=0.9, max_epochs=2)
    net.fit(x.numpy(), y.numpy())
    assert net.criterion_.target.tolist() == pytest.approx([0.9])
    with torch.no_grad():
        net.criterion_.calibrate(net.forward(x), y)
    restored = pickle.loads(pickle.dumps(net))
    assert torch.equal(restored.criterion_.lambdas, net.criterion_.lambdas)
    assert torch.equal(restored.criterion_.threshold, net.criterion_.threshold)
    assert (restored.predict_proba(x.numpy()) == net.predict_proba(x.numpy())).all()


def test_skorch_without_the_nonlinearity_fails_as_documented():
    """What the docs warn about: skorch infers the sigmoid only for BCEWithLogitsLoss."""
    x, y = data(2)
    with pytest.raises(IndexError):
        make_net(predict_nonlinearity="auto", max_epochs=1).fit(x.numpy(), y.numpy())


# -- Lightning ------------------------------------------------------------------------------------


def test_lightning_fits_steps_once_per_batch_and_checkpoints_the_criterion(tmp_path, dual_steps):
    lightning = pytest.importorskip("lightning")
    from goloss.integrations.lightning import DualStep

    class Model(lightning.LightningModule):
        def __init__(self, target_precision: float = 0.8):
            super().__init__()
            self.save_hyperparameters()
            self.net = Linear()
            self.criterion = goloss.RecallAtPrecisionLoss(target_precision)

        def training_step(self, batch, batch_idx):
            x, y = batch
            loss = self.criterion(self.net(x), y)
            self.log("precision", self.criterion.last_diagnostics["precision"].mean())
            return loss

        def configure_optimizers(self):
            return torch.optim.Adam(self.parameters(), lr=0.05)

    x, y = data(3)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=BATCH)
    trainer = lightning.Trainer(
        max_epochs=EPOCHS, callbacks=[DualStep()], accelerator="cpu", logger=False, enable_progress_bar=False,
        enable_model_summary=False, default_root_dir=tmp_path,
    )
    model = Model()
    trainer.fit(model, loader)
    assert len(dual_steps) == EPOCHS * len(loader)
    assert not torch.equal(model.criterion.lambdas, torch.ones(1))
    with torch.no_grad():
        model.criterion.calibrate(model.net(x), y)
    path = tmp_path / "model.ckpt"
    trainer.save_checkpoint(path)
    restored = Model.load_from_checkpoint(path)
    for name in ("lambdas", "threshold", "weighted_label_counts", "target"):
        assert torch.equal(getattr(restored.criterion, name), getattr(model.criterion, name)), name


def test_import_goloss_needs_neither_framework():
    import subprocess
    import sys

    code = ("import sys, goloss, goloss.integrations; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('skorch', 'lightning')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
