"""Many processes: torchrun with 2 gloo ranks on the CPU (the shipped configs' ``maps: false``), rank 0's
resume decision, skipped non-finite steps and the device argument."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import yaml
from test_training import tiny_config, tiny_data  # noqa: F401  (the shared fixture)

from whmr_core.config_io import ConfigError
from whmr_core.training.config import StageConfig
from whmr_core.training.trainer import Trainer, parse_device

REPO = Path(__file__).resolve().parents[1]


def _torchrun(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [*cmd, str(REPO / "training" / "train.py"), *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


@pytest.mark.slow
def test_two_gloo_ranks_train_agree_and_follow_rank0_on_resume(tiny_data, tmp_path):  # noqa: F811
    cfg = tiny_config(tiny_data, stage1=StageConfig(epochs=1, max_steps=2, lr=1e-4))
    cfg = replace(cfg, data=replace(cfg.data, maps=False, val=None))  # the shipped CPU configs' setting
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg.to_dict()))
    out = tmp_path / "run"
    args = ["--config", str(path), "--out", str(out), "--device", "cpu", "--stage", "1"]
    run = _torchrun(args, tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "stage 1: weights identical on all 2 ranks" in run.stderr
    assert (out / "stage1" / "final").is_dir() and (out / "stage1" / "last").is_dir()
    # A crash between the last save and the final one: rank 0 finds ``last`` at the stage's end and both
    # ranks resume from it (each deciding alone, they once disagreed and hung).
    import shutil

    shutil.rmtree(out / "stage1" / "final")
    run = _torchrun([*args, "--resume"], tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stderr.count("resuming stage 1 at step 2") == 2
    assert (out / "stage1" / "final").is_dir()


def test_non_finite_steps_are_skipped_counted_and_limited(tiny_data, tmp_path, monkeypatch):  # noqa: F811
    import whmr_core.training.trainer as trainer_mod

    real = trainer_mod.compute_losses
    calls = {"n": 0}

    def sometimes_nan(*a, **k):
        calls["n"] += 1
        losses = real(*a, **k)
        if calls["n"] == 1:  # an fp16 overflow, say
            losses["total"] = losses["total"] * float("nan")
        return losses

    monkeypatch.setattr(trainer_mod, "compute_losses", sometimes_nan)
    cfg = tiny_config(tiny_data, stage1=StageConfig(epochs=1, max_steps=2, lr=1e-3), max_nonfinite_steps=1)
    cfg = replace(cfg, data=replace(cfg.data, val=None))
    trainer = Trainer(cfg, tmp_path / "run")
    before = {k: v.detach().clone() for k, v in trainer.model.named_parameters()}
    st = trainer._start_stage(1, resume=False)
    raw = next(iter(trainer._epoch_loader(st)))
    from whmr_core.training.batch import Batch

    trainer._train_step(st, Batch.from_collated(raw))
    assert st.skipped == 1 and st.step == 1  # the step is counted, the weights did not move
    assert all(torch.equal(v, before[k]) for k, v in trainer.model.named_parameters())
    trainer._train_step(st, Batch.from_collated(raw))
    assert st.skipped == 1 and st.step == 2
    assert any(not torch.equal(v, before[k]) for k, v in trainer.model.named_parameters())
    calls["n"] = 0
    st.skipped = 1
    with pytest.raises(FloatingPointError, match="2 steps with a non-finite loss"):
        trainer._train_step(st, Batch.from_collated(raw))


def test_device_argument():
    assert parse_device("cpu") == torch.device("cpu")
    for bad in ("gpu", "cuda:x", "cpu:0", "cuda:"):
        with pytest.raises(ConfigError, match="expected cpu, cuda or cuda:N"):
            parse_device(bad)
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA is not available"):
            parse_device("cuda")
    else:
        assert parse_device("cuda", local_rank=0) == torch.device("cuda", 0)
        assert parse_device("cuda:0") == torch.device("cuda", 0)
        with pytest.raises(ConfigError, match="each takes its own GPU"):
            parse_device("cuda:0", 0, world=2)


def test_a_worker_ends_when_its_launcher_is_killed():
    """torchrun killed with SIGKILL cannot stop its workers: each asks Linux to end it with its parent."""
    import signal
    import time

    child = (
        "from whmr_core.training.trainer import _end_with_launcher; import time; "
        "_end_with_launcher(); print('ready', flush=True); time.sleep(120)"
    )
    parent = (
        "import subprocess, sys, time; "
        f"p = subprocess.Popen([sys.executable, '-c', {child!r}]); print(p.pid, flush=True); time.sleep(120)"
    )
    launcher = subprocess.Popen([sys.executable, "-c", parent], stdout=subprocess.PIPE, text=True, cwd=REPO)
    try:
        worker = int(launcher.stdout.readline())
        assert launcher.stdout.readline().strip() == "ready"
        os.kill(launcher.pid, signal.SIGKILL)
        launcher.wait(timeout=10)

        def alive() -> bool:
            try:
                state = Path(f"/proc/{worker}/status").read_text()
            except FileNotFoundError:
                return False
            return "\nState:\tZ" not in state  # a zombie has ended; only its parent has not reaped it

        deadline = time.monotonic() + 10
        while alive() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not alive()
    finally:
        launcher.kill()
