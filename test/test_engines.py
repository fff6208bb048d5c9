"""Engines behind one interface: parity, bad input naming the file or tensor, TensorRT metadata rules.

TensorRT tests run only where `tensorrt` imports and a CUDA GPU exists; the TensorRT-RTX build test only
where `tensorrt_rtx` is installed (it parses our ONNX with a TensorRT ONNX parser, no GPU needed)."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch

from whmr_core.body import load_body_model
from whmr_core.export.onnx_export import export_onnx, file_sha256
from whmr_core.graph_io import OUTPUT_NAMES
from whmr_core.model import build_model
from whmr_core.runtime.engines import EngineError, OnnxRuntimeEngine, TorchEngine
from whmr_core.runtime.tensorrt_engine import engine_mismatch


@pytest.fixture(scope="module")
def small_model():
    torch.manual_seed(0)
    return build_model("small-cpu", body=load_body_model(variant="lowres")).eval()


@pytest.fixture(scope="module")
def onnx_file(small_model, tmp_path_factory):
    return export_onnx(
        small_model, tmp_path_factory.mktemp("onnx") / "small.onnx", metadata={"body": "lowres"}
    )


def inputs(n: int, seed: int = 0, crop_hw: tuple[int, int] = (128, 128)) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "crops": rng.normal(size=(n, 3, *crop_hw)).astype(np.float32),
        "glob_info": np.tile(np.array([[0.05, -0.02, 0.3, 0.8, 0.6]], np.float32), (n, 1)),
        "cam_rotation": np.tile(np.eye(3, dtype=np.float32), (n, 1, 1)),
    }


@pytest.mark.slow
def test_onnxruntime_matches_torch_on_every_output(small_model, onnx_file):
    ort, ref = OnnxRuntimeEngine(onnx_file, threads=1), TorchEngine(small_model)
    for n in (1, 3):
        a, b = ort.infer(**inputs(n)).as_dict(), ref.infer(**inputs(n)).as_dict()
        assert set(a) == set(OUTPUT_NAMES)
        for name in OUTPUT_NAMES:
            assert a[name].shape[0] == n
            np.testing.assert_allclose(a[name], b[name], atol=1e-4, rtol=1e-4, err_msg=name)
    meta = {p.key: p.value for p in onnx.load(str(onnx_file)).metadata_props}
    assert meta["crop_hw"] == "128x128" and meta["body"] == "lowres" and ort.body == "lowres"


def test_onnx_graph_is_opset_17_with_dynamic_persons(onnx_file):
    model = onnx.load(str(onnx_file))
    assert [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")] == [17]
    dim = model.graph.input[0].type.tensor_type.shape.dim[0]
    assert dim.dim_param == "persons"


@pytest.mark.parametrize(
    ("change", "name"),
    [
        (lambda d: d.update(crops=d["crops"][:, :, :64]), "crops"),
        (lambda d: d.update(crops=d["crops"][:, :1]), "crops"),
        (lambda d: d.update(glob_info=d["glob_info"][:1]), "glob_info"),
        (lambda d: d.update(cam_rotation=np.zeros((2, 3, 4), np.float32)), "cam_rotation"),
        (lambda d: d["crops"].__setitem__((0, 0, 0, 0), np.nan), "crops"),
        (lambda d: d.update(glob_info=d["glob_info"].astype(np.int32)), "glob_info"),
    ],
)
def test_bad_inputs_name_the_tensor(onnx_file, change, name):
    eng = OnnxRuntimeEngine(onnx_file, threads=1)
    d = inputs(2)
    change(d)
    with pytest.raises(EngineError, match=name):
        eng.infer(**d)


def test_idle_onnxruntime_threads_sleep_instead_of_spinning(onnx_file):
    # Spinning threads took the CPU the ROS node's own threads need on 2 cores (docs/ros_node.md).
    options = OnnxRuntimeEngine(onnx_file, threads=2).session.get_session_options()
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"


def test_bad_files_name_the_file(onnx_file, tmp_path):
    with pytest.raises(EngineError, match="not found"):
        OnnxRuntimeEngine(tmp_path / "missing.onnx")
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(onnx_file.read_bytes()[:5000])
    with pytest.raises(EngineError, match=r"truncated\.onnx"):
        OnnxRuntimeEngine(truncated)
    foreign = tmp_path / "foreign.onnx"
    torch.onnx.export(
        torch.nn.Linear(3, 2),
        (torch.zeros(1, 3),),
        str(foreign),
        input_names=["x"],
        output_names=["y"],
        dynamo=False,
    )
    with pytest.raises(EngineError, match="not a whmr graph"):
        OnnxRuntimeEngine(foreign)


def test_tensorrt_metadata_mismatch_is_spelled_out(onnx_file):
    system = {"tensorrt_version": "10.3.0", "gpu_name": "Orin", "compute_capability": "8.7"}
    meta = {**system, "onnx_sha256": file_sha256(onnx_file)}
    assert engine_mismatch(meta, system, onnx_file) == []
    diffs = engine_mismatch({**meta, "tensorrt_version": "8.6.1"}, system, onnx_file)
    assert diffs == ["tensorrt_version: engine '8.6.1', system '10.3.0'"]
    assert "onnx_sha256" in engine_mismatch({**meta, "onnx_sha256": "0" * 64}, system, onnx_file)[0]


def test_tensorrt_rtx_parses_and_builds_our_onnx(onnx_file):
    try:  # the standalone wheels (tensorrt-rtx-cu12-bindings) name the module inside their package
        from tensorrt_rtx_bindings import tensorrt_rtx as trt
    except ImportError:
        trt = pytest.importorskip("tensorrt_rtx", reason="tensorrt-rtx-cu12 not installed (optional check)")
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    assert parser.parse(onnx_file.read_bytes()), [str(parser.get_error(i)) for i in range(parser.num_errors)]
    config = builder.create_builder_config()
    profile = builder.create_optimization_profile()
    for i in range(network.num_inputs):
        t = network.get_input(i)
        rest = list(t.shape)[1:]
        profile.set_shape(t.name, [1, *rest], [1, *rest], [4, *rest])
    config.add_optimization_profile(profile)
    assert builder.build_serialized_network(network, config) is not None


def _gpu_tensorrt():
    trt = pytest.importorskip("tensorrt", reason="TensorRT not installed")
    if not torch.cuda.is_available():
        pytest.skip("TensorRT needs a CUDA GPU")
    return trt


@pytest.mark.gpu
@pytest.mark.parametrize(("precision", "budget_mm"), [("fp32", 1.0), ("fp16", 5.0)])
def test_tensorrt_matches_torch(small_model, onnx_file, tmp_path, precision, budget_mm):
    _gpu_tensorrt()
    from whmr_core.export.tensorrt_build import build_tensorrt_engine
    from whmr_core.runtime.tensorrt_engine import TensorRTEngine

    engine_path = build_tensorrt_engine(
        onnx_file, tmp_path / f"m.{precision}.engine", precision=precision, max_persons=4
    )
    meta = json.loads((tmp_path / f"m.{precision}.engine.json").read_text())
    assert meta["precision"] == precision and meta["onnx_sha256"] == file_sha256(onnx_file)
    trt_eng, ref = TensorRTEngine(engine_path, onnx_file), TorchEngine(small_model)
    a, b = trt_eng.infer(**inputs(3)).as_dict(), ref.infer(**inputs(3)).as_dict()
    err_mm = np.linalg.norm(a["vertices"] - b["vertices"], axis=-1).mean() * 1000
    assert err_mm < budget_mm
    if precision == "fp32":
        for name in OUTPUT_NAMES:
            np.testing.assert_allclose(a[name], b[name], atol=1e-3, rtol=1e-3, err_msg=name)
    with pytest.raises(EngineError, match="exceeds"):
        trt_eng.infer(**inputs(5))


@pytest.mark.gpu
def test_tensorrt_rebuilds_a_stale_engine(onnx_file, tmp_path):
    _gpu_tensorrt()
    from whmr_core.export.tensorrt_build import build_tensorrt_engine
    from whmr_core.runtime.tensorrt_engine import TensorRTEngine

    path = build_tensorrt_engine(onnx_file, tmp_path / "m.engine", precision="fp32", max_persons=2)
    meta_file = tmp_path / "m.engine.json"
    meta = json.loads(meta_file.read_text())
    meta_file.write_text(json.dumps({**meta, "tensorrt_version": "0.0.0"}))
    TensorRTEngine(path, onnx_file)  # rebuilds instead of failing on the version tag
    assert json.loads(meta_file.read_text())["tensorrt_version"] == meta["tensorrt_version"]
    meta_file.write_text(json.dumps({**meta, "tensorrt_version": "0.0.0"}))
    with pytest.raises(EngineError, match="tensorrt_version"):
        TensorRTEngine(path, None)


@pytest.mark.slow
def test_export_and_bench_commands_on_the_shipped_checkpoint(tmp_path, capsys):
    from whmr_ros.cli import main

    out = tmp_path / "shipped.onnx"
    assert main(["export", "--format", "onnx", "--out", str(out)]) == 0
    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert meta["config"] == "movenet-keypoints-cpu" and meta["body"] == "lowres"
    eng = OnnxRuntimeEngine(out, threads=1)
    assert eng.crop_hw == (192, 192)
    assert eng.infer(**inputs(2, crop_hw=eng.crop_hw)).vertices.shape == (2, 1229, 3)
    report = tmp_path / "bench.json"
    args = [
        "bench",
        "--engines",
        "torch,onnxruntime",
        "--batches",
        "1",
        "--repeats",
        "2",
        "--json",
        str(report),
    ]
    assert main(args) == 0
    rows = json.loads(report.read_text())["results"]
    assert {r["engine"] for r in rows} == {"torch", "onnxruntime"}
    assert all(r["median_ms"] > 0 and r["vertex_error_mm_vs_torch_fp32"] < 0.01 for r in rows)
    assert main(["export", "--format", "torch2trt", "--out", str(tmp_path / "x.pth")]) == 2  # not installed
    assert "torch2trt is not installed" in capsys.readouterr().out
