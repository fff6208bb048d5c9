"""Engine selection from model files."""

from __future__ import annotations

import pytest

from whmr_core.runtime.engines import EngineError
from whmr_core.runtime.factory import load_engine


def test_unknown_kind_suffix_and_missing_files_are_clear_errors(tmp_path):
    with pytest.raises(EngineError, match="engine: expected"):
        load_engine("magic", tmp_path / "m.onnx")
    with pytest.raises(EngineError, match="suffix"):
        load_engine("auto", tmp_path / "m.bin")
    with pytest.raises(EngineError, match="not found"):
        load_engine("auto", tmp_path / "m.onnx")


def test_no_model_file_means_the_shipped_checkpoint(tmp_path, monkeypatch):
    monkeypatch.setenv("WHMR_CACHE_DIR", str(tmp_path))
    engine = load_engine("torch", "")
    assert engine.kind == "torch" and engine.crop_hw == (128, 128)


@pytest.mark.slow  # two ONNX exports of the shipped network
def test_a_corrupt_cached_onnx_export_is_exported_again(tmp_path, monkeypatch, caplog):
    """A torn cache file used to be refused on every start ("not a loadable ONNX model")."""
    from whmr_core.export.onnx_export import file_sha256
    from whmr_core.model_io import shipped_checkpoint
    from whmr_core.runtime.factory import default_engine

    monkeypatch.setenv("WHMR_CACHE_DIR", str(tmp_path))
    cached = tmp_path / f"whmr-{file_sha256(shipped_checkpoint() / 'model.safetensors')[:12]}.onnx"
    default_engine("onnxruntime")
    data = cached.read_bytes()
    cached.write_bytes(data[: len(data) // 2])
    engine = default_engine("onnxruntime")
    assert engine.kind == "onnxruntime" and engine.crop_hw == (128, 128)
    assert "cached ONNX export unusable" in caplog.text
    assert sorted(p.name for p in tmp_path.iterdir()) == [cached.name]  # no temporaries left
