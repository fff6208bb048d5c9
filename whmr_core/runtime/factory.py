"""Engines and body topology from paths, for the hosts (node, bag runner, scripts).

``load_engine("auto", path)`` picks the engine by the file: ``.onnx`` -> ONNX Runtime, ``.engine``/``.plan``
-> TensorRT (rebuilt from a sibling ``.onnx`` when it does not fit this machine), ``.safetensors`` ->
PyTorch (a checkpoint file or directory) through ``whmr_core.model``, the network module, imported
only when asked for.
"""

from __future__ import annotations

from pathlib import Path

from whmr_core.runtime.engines import Engine, EngineError, OnnxRuntimeEngine
from whmr_core.runtime.pipeline import BodyTopology

__all__ = ["ENGINE_KINDS", "load_engine", "load_topology"]

ENGINE_KINDS = ("auto", "onnxruntime", "tensorrt", "torch")
_TENSORRT_SUFFIXES = (".engine", ".plan", ".trt")


def load_engine(
    kind: str, path: str | Path, *, threads: int | None = None, config: str | None = None, device: str = "cpu"
) -> Engine:
    """An ``Engine`` for a model file. ``config`` names the network config for ``.safetensors`` weights."""
    if kind not in ENGINE_KINDS:
        raise EngineError(f"engine: expected one of {ENGINE_KINDS}, got {kind!r}")
    if not str(path):
        raise EngineError("model: no model file given (an .onnx, a TensorRT engine or .safetensors weights)")
    p = Path(path)
    if kind == "auto":
        suffix = p.suffix.lower()
        if suffix == ".onnx":
            kind = "onnxruntime"
        elif suffix in _TENSORRT_SUFFIXES:
            kind = "tensorrt"
        elif suffix == ".safetensors" or p.is_dir():
            kind = "torch"
        else:
            raise EngineError(f"{p}: cannot tell the engine from the suffix {suffix!r}; pass the engine kind")
    if kind == "onnxruntime":
        providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if device.startswith("cuda") else None
        return OnnxRuntimeEngine(p, threads=threads, providers=providers)
    if kind == "tensorrt":
        from whmr_core.runtime.tensorrt_engine import TensorRTEngine

        onnx = p.with_suffix(".onnx")
        return TensorRTEngine(p, onnx if onnx.is_file() else None)
    from whmr_core.checkpoint import load_checkpoint  # torch: weights into the named network config
    from whmr_core.model import build_model  # type: ignore[import-not-found]  # the network issue's module
    from whmr_core.runtime.engines import TorchEngine

    name = config or load_checkpoint(p)["config"].get("name")  # checkpoints record their config
    if not name:
        raise EngineError(f"{p}: PyTorch weights need the network config name (e.g. r50-hybrid)")
    model = build_model(name)
    load_checkpoint(p, model)
    return TorchEngine(model, device=device)


def load_topology(body_model: str | Path | None = None) -> BodyTopology:
    """Faces, joints and parents of the body model (the shipped free model when no path is given)."""
    from whmr_core.body import load_body_model  # type: ignore[import-not-found]  # the body-model module

    model = load_body_model(str(body_model) if body_model else None)
    name = Path(body_model).stem if body_model else "whmr-free"
    return BodyTopology.from_body_model(model, name)
