"""Two gloo processes with per-rank batch b give the state of one process with batch 2b."""

from __future__ import annotations

import os
import pathlib
import socket
import subprocess
import sys

import pytest
import torch

import goloss
from ddp_worker import BATCH, LABELS, calibrate, calibration_set, data, train

HERE = pathlib.Path(__file__).parent


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp")
    command = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc-per-node", "2",
               "--master-addr", "127.0.0.1", "--master-port", str(free_port()), str(HERE / "ddp_worker.py"), str(out)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE.parent), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    return [torch.load(out / f"rank{rank}.pt", weights_only=True) for rank in range(2)]


@pytest.mark.parametrize("name", ["r_at_p", "p_at_r", "r_at_p_surrogate", "pr_auc"])
def test_two_ranks_equal_one_process_with_the_concatenated_batch(ranks, name):
    single = train(name, data(2))
    for rank in ranks:
        for part in ("model", "loss"):
            assert rank[name][part].keys() == single[part].keys()
            for key, value in single[part].items():
                torch.testing.assert_close(rank[name][part][key], value, rtol=1e-6, atol=1e-6, msg=f"{part}.{key}")
    # and the multipliers did move, so the comparison is not vacuous
    assert not torch.allclose(single["loss"]["lambdas"], torch.ones_like(single["loss"]["lambdas"]))


def test_cross_rank_roc_auc_equals_the_single_process_loss(ranks):
    x, y = data(2)[0]
    logits = x[:, :LABELS].clone().requires_grad_()
    loss, _ = goloss.roc_auc_loss(None, None, logits, y)
    loss.sum().backward()
    torch.testing.assert_close(torch.cat([rank["roc"]["loss"] for rank in ranks]), loss.detach())
    torch.testing.assert_close(torch.cat([rank["roc"]["grad"] for rank in ranks]), logits.grad)
    assert ranks[0]["roc"]["loss"].shape == (BATCH, LABELS)


def test_calibrated_threshold_is_the_same_on_every_rank_and_that_of_the_whole_set(ranks):
    whole = calibrate(*calibration_set())
    for rank in ranks:
        torch.testing.assert_close(rank["threshold"], whole, rtol=0, atol=0)
    # each rank's share alone gives another threshold, so the gathering is tested
    alone = calibrate(*(tensor[:13] for tensor in calibration_set()))
    assert not torch.equal(alone, whole)


def test_ddp_example_runs_under_torchrun():
    command = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc-per-node", "2",
               "--master-addr", "127.0.0.1", "--master-port", str(free_port()),
               str(HERE.parent / "examples" / "ddp.py"), "--quick"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE.parent), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = [line for line in result.stdout.splitlines() if line.startswith("rank ")]
    assert len(lines) == 2 and lines[0].split(":")[1] == lines[1].split(":")[1]  # same lambda and prior
    assert "held-out precision" in result.stdout
