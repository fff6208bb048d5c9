"""Engine selection from model files."""

from __future__ import annotations

from pathlib import Path

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
    assert engine.kind == "torch" and engine.crop_hw == (192, 192)


def test_torch_engine_with_a_named_config_rebuilds_the_checkpoints_body():
    import numpy as np

    from whmr_core.model_io import shipped_checkpoint
    from whmr_core.runtime.factory import load_topology

    engine = load_engine("torch", shipped_checkpoint(), config="small-cpu")
    out = engine.infer(
        np.zeros((1, 3, *engine.crop_hw), np.float32), np.array([[0, 0, 0.3, 0.8, 0.6]], np.float32)
    )
    topology = load_topology(engine=engine)
    assert engine.body == "lowres" and out.num_vertices == topology.num_vertices == 1229


def test_the_topology_comes_from_the_model_and_a_mismatching_body_is_refused():
    from whmr_fakes import FakeEngine

    from whmr_core.body.resolve import BodyMismatchError
    from whmr_core.runtime.factory import load_topology

    engine = FakeEngine((64, 48), focal=50.0)
    engine.body = "lowres"
    assert load_topology(engine=engine).model_name == "whmr-free-lowres"
    assert load_topology("lowres", engine=engine).num_vertices == 1229
    with pytest.raises(
        BodyMismatchError, match=r"whmr-free-full \(\d+ vertices.*trained with, whmr-free-lowres"
    ):
        load_topology("full", engine=engine)
    engine.body = ""  # a foreign file that does not say: the user must name the body
    with pytest.raises(EngineError, match="does not record its body model"):
        load_topology(engine=engine)
    assert load_topology("lowres", engine=engine).num_vertices == 1229


def test_resolve_names_every_body_in_one_place(tmp_path):
    from whmr_core.body import DEFAULT_BODY, resolve

    assert resolve(None).spec == resolve("").spec == DEFAULT_BODY
    assert resolve("lowres").name == "whmr-free-lowres" and resolve("lowres").path.is_file()
    with pytest.raises(FileNotFoundError, match=r"nope\.pkl"):
        resolve(tmp_path / "nope.pkl")


@pytest.mark.slow  # two ONNX exports of the shipped network
def test_a_corrupt_cached_onnx_export_is_exported_again(tmp_path, monkeypatch, caplog):
    """A torn cache file used to be refused on every start ("not a loadable ONNX model")."""
    from whmr_core.runtime.factory import default_engine

    monkeypatch.setenv("WHMR_CACHE_DIR", str(tmp_path))
    default_engine("onnxruntime")
    (cached,) = tmp_path.iterdir()
    data = cached.read_bytes()
    cached.write_bytes(data[: len(data) // 2])
    engine = default_engine("onnxruntime")
    assert engine.kind == "onnxruntime" and engine.crop_hw == (192, 192)
    assert "cached ONNX export unusable" in caplog.text
    assert sorted(p.name for p in tmp_path.iterdir()) == [cached.name]  # no temporaries left


def test_the_export_cache_key_follows_the_checkpoint_and_the_code(tmp_path, monkeypatch):
    """An upgrade of whmr's model code must not reuse an export of the old graph."""
    import whmr_core
    from whmr_core.export.onnx_export import file_sha256
    from whmr_core.model_io import shipped_checkpoint
    from whmr_core.runtime import factory

    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    for f in shipped_checkpoint().iterdir():
        (ckpt / f.name).write_bytes(f.read_bytes())
    tag = factory._export_tag(ckpt, file_sha256)
    assert tag == factory._export_tag(shipped_checkpoint(), file_sha256)  # content, not path
    (ckpt / "meta.json").write_text((ckpt / "meta.json").read_text() + " ")
    assert factory._export_tag(ckpt, file_sha256) != tag
    code = tmp_path / "whmr_core"
    root = Path(whmr_core.__file__).parent
    for f in factory.export_code_files(root):
        dst = code / f.relative_to(root)
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_bytes(f.read_bytes())
    monkeypatch.setattr(whmr_core, "__file__", str(code / "__init__.py"))
    assert factory._export_tag(shipped_checkpoint(), file_sha256) == tag
    (code / "model" / "network.py").write_text((code / "model" / "network.py").read_text() + "\n# changed\n")
    assert factory._export_tag(shipped_checkpoint(), file_sha256) != tag
