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
