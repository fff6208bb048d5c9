"""Checkpoints: atomic writes, safe loading, refusing corrupt files and other architectures."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from whmr_core.checkpoint import CheckpointError, load_checkpoint, recover_checkpoint, save_checkpoint


def small(width: int = 4) -> torch.nn.Module:
    return torch.nn.Sequential(
        torch.nn.Linear(3, width), torch.nn.BatchNorm1d(width), torch.nn.Linear(width, 2)
    )


def test_round_trip_with_training_state(tmp_path):
    torch.manual_seed(0)
    model = small()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model(torch.randn(5, 3)).sum().backward()
    opt.step()
    ckpt = save_checkpoint(
        tmp_path / "ck",
        model.state_dict(),
        config={"name": "tiny"},
        train_state={"optimizer": opt.state_dict(), "step": 17},
        meta={"stage": 2},
    )
    other = small()
    out = load_checkpoint(ckpt, other)
    for k, v in model.state_dict().items():
        assert torch.equal(v, other.state_dict()[k])
    assert out["train_state"]["step"] == 17
    assert out["config"]["name"] == "tiny" and out["meta"]["stage"] == 2
    opt2 = torch.optim.Adam(other.parameters(), lr=1e-3)
    opt2.load_state_dict(out["train_state"]["optimizer"])
    assert opt2.state_dict()["state"][0]["step"] == opt.state_dict()["state"][0]["step"]


def test_fp16_shipping_loads_into_fp32_model(tmp_path):
    model = small()
    save_checkpoint(tmp_path / "ck", model.state_dict(), half=True)
    other = small()
    load_checkpoint(tmp_path / "ck", other)
    w = model.state_dict()["0.weight"]
    assert other.state_dict()["0.weight"].dtype == torch.float32
    assert torch.allclose(other.state_dict()["0.weight"], w, atol=1e-3)


def test_other_architecture_is_refused_with_the_reason(tmp_path):
    save_checkpoint(tmp_path / "ck", small(4).state_dict(), config={"name": "tiny"})
    with pytest.raises(CheckpointError, match="another architecture"):
        load_checkpoint(tmp_path / "ck", small(8))


def test_corrupt_and_missing_files_are_refused(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint weights"):
        load_checkpoint(tmp_path / "nothing")
    ck = save_checkpoint(tmp_path / "ck", small().state_dict(), train_state={"step": 1})
    data = (ck / "model.safetensors").read_bytes()
    (ck / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="safetensors"):
        load_checkpoint(ck)
    ck2 = save_checkpoint(tmp_path / "ck2", small().state_dict(), train_state={"step": 1})
    (ck2 / "state.pt").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="training state"):
        load_checkpoint(ck2)


def test_overwrite_is_atomic_and_leaves_no_temporaries(tmp_path):
    ck = tmp_path / "last"
    save_checkpoint(ck, small().state_dict(), train_state={"step": 1})
    # A stale temporary from a crashed write is replaced, not trusted.
    (tmp_path / "last.tmp").mkdir()
    save_checkpoint(ck, small().state_dict(), train_state={"step": 2})
    assert load_checkpoint(ck)["train_state"]["step"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last"]


def test_int8_shipping_is_small_and_close(tmp_path):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(256, 128), torch.nn.BatchNorm1d(128))
    save_checkpoint(tmp_path / "f32", model.state_dict())
    save_checkpoint(tmp_path / "i8", model.state_dict(), int8=True)
    size = lambda p: (p / "model.safetensors").stat().st_size  # noqa: E731
    assert size(tmp_path / "i8") < 0.3 * size(tmp_path / "f32")
    other = torch.nn.Sequential(torch.nn.Linear(256, 128), torch.nn.BatchNorm1d(128))
    load_checkpoint(tmp_path / "i8", other)
    w, w8 = model[0].weight, other[0].weight
    # Per-channel int8: error at most half a quantisation step of each row.
    step = w.abs().amax(1, keepdim=True) / 127
    assert bool(((w - w8).abs() <= step / 2 + 1e-6).all())
    assert other[0].bias.dtype == torch.float32


def _crash_between_renames(monkeypatch, ck, step: int) -> None:
    """Save ``step`` over ``ck`` and die after ``ck`` -> ``ck.old``, before ``ck.tmp`` -> ``ck``."""
    real = Path.rename

    def rename(self, target):
        if self.name.endswith(".tmp"):
            raise KeyboardInterrupt("killed between the renames")
        return real(self, target)

    monkeypatch.setattr(Path, "rename", rename)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(ck, small().state_dict(), train_state={"step": step}, meta={"step": step})
    monkeypatch.setattr(Path, "rename", real)
    assert sorted(p.name for p in ck.parent.iterdir()) == ["last.old", "last.tmp"]


def test_a_save_cut_between_its_renames_resumes_from_the_newest(tmp_path, monkeypatch, caplog):
    ck = tmp_path / "last"
    save_checkpoint(ck, small().state_dict(), train_state={"step": 1}, meta={"step": 1})
    _crash_between_renames(monkeypatch, ck, step=2)
    assert recover_checkpoint(ck)
    assert load_checkpoint(ck)["train_state"]["step"] == 2  # the complete new one, not the old
    assert "interrupted" in caplog.text and "last.tmp (step 2)" in caplog.text
    save_checkpoint(ck, small().state_dict(), train_state={"step": 3})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last"]


def test_an_incomplete_new_checkpoint_falls_back_to_the_old_one(tmp_path, monkeypatch):
    ck = tmp_path / "last"
    save_checkpoint(ck, small().state_dict(), train_state={"step": 1}, meta={"step": 1})
    _crash_between_renames(monkeypatch, ck, step=2)
    (tmp_path / "last.tmp" / "meta.json").write_text('{"step": 2, "arch')  # torn write
    assert recover_checkpoint(ck)
    assert load_checkpoint(ck)["train_state"]["step"] == 1
    assert not recover_checkpoint(tmp_path / "never_saved")


def test_the_old_checkpoint_survives_until_the_new_one_is_in_place(tmp_path, monkeypatch):
    """A second crash in the same window (the next save) must not delete the only complete copy."""
    ck = tmp_path / "last"
    save_checkpoint(ck, small().state_dict(), train_state={"step": 1}, meta={"step": 1})
    _crash_between_renames(monkeypatch, ck, step=2)
    _crash_between_renames(monkeypatch, ck, step=3)
    assert load_checkpoint(tmp_path / "last.old")["train_state"]["step"] == 1
    assert recover_checkpoint(ck) and load_checkpoint(ck)["train_state"]["step"] == 3
