"""Engines and body topology from paths, for the hosts (node, bag runner, scripts).

``load_engine("auto", path)`` picks the engine by the file: ``.onnx`` -> ONNX Runtime, ``.engine``/``.plan``
-> TensorRT (rebuilt from a sibling ``.onnx`` when it does not fit this machine), ``.safetensors`` ->
PyTorch (a checkpoint file or directory) through ``whmr_core.model``, the network module, imported
only when asked for.
"""

from __future__ import annotations

import logging
from pathlib import Path

from whmr_core.runtime.engines import Engine, EngineError, OnnxRuntimeEngine
from whmr_core.runtime.pipeline import BodyTopology

__all__ = ["ENGINE_KINDS", "default_engine", "load_engine", "load_topology"]

log = logging.getLogger(__name__)

ENGINE_KINDS = ("auto", "onnxruntime", "tensorrt", "torch")
_TENSORRT_SUFFIXES = (".engine", ".plan", ".trt")


def load_engine(
    kind: str,
    path: str | Path | None,
    *,
    threads: int | None = None,
    config: str | None = None,
    device: str = "cpu",
) -> Engine:
    """An ``Engine`` for a model file. ``config`` names the network config for ``.safetensors`` weights."""
    if kind not in ENGINE_KINDS:
        raise EngineError(f"engine: expected one of {ENGINE_KINDS}, got {kind!r}")
    if path is None or not str(path):
        return default_engine(kind, threads=threads, device=device)
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

    if config:
        model = build_model(config)
        load_checkpoint(p, model)
    else:  # checkpoints record their network config and body model
        from whmr_core.model_io import build_from_checkpoint

        model = build_from_checkpoint(p)
    return TorchEngine(model, device=device)


def default_engine(
    kind: str = "auto",
    *,
    threads: int | None = None,
    device: str = "cpu",
    checkpoint: str | Path | None = None,
) -> Engine:
    """A checkpoint (default: the shipped one) on the best engine here: TensorRT when it imports and a
    GPU exists, else ONNX Runtime (its ONNX export is cached under ``$WHMR_CACHE_DIR`` or
    ``~/.cache/whmr``), or PyTorch when asked for."""
    import os

    from whmr_core.export.onnx_export import export_onnx, file_sha256
    from whmr_core.model_io import build_from_checkpoint, shipped_checkpoint
    from whmr_core.runtime.engines import TorchEngine

    ckpt = Path(checkpoint) if checkpoint else shipped_checkpoint()
    model = build_from_checkpoint(ckpt)
    if kind == "torch":
        return TorchEngine(model, device=device)
    cache = Path(os.environ.get("WHMR_CACHE_DIR", Path.home() / ".cache" / "whmr"))
    tag = file_sha256(ckpt / "model.safetensors")[:12] if ckpt else "untrained"
    onnx_path = cache / f"whmr-{tag}.onnx"
    problem = _cached_export_problem(onnx_path)
    if problem:
        if onnx_path.exists():  # a torn copy or a damaged disk: never trusted, never fatal
            log.warning("%s: cached ONNX export unusable (%s); exporting it again", onnx_path, problem)
        cache.mkdir(parents=True, exist_ok=True)
        export_onnx(model, onnx_path)  # written to a temporary name and renamed: atomic
    if kind in ("auto", "tensorrt"):
        try:
            import tensorrt  # noqa: F401
            import torch

            if torch.cuda.is_available():
                from whmr_core.runtime.tensorrt_engine import TensorRTEngine

                log.info("engine: TensorRT (GPU found)")
                return TensorRTEngine(onnx_path.with_suffix(".fp16.engine"), onnx_path, precision="fp16")
            reason = "no CUDA GPU"
        except ImportError:
            reason = "tensorrt not installed"
        if kind == "tensorrt":
            raise EngineError(f"engine: tensorrt asked for but {reason}")
        log.info("engine: ONNX Runtime (%s)", reason)
    providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if device.startswith("cuda") else None
    return OnnxRuntimeEngine(onnx_path, threads=threads, providers=providers)


def _cached_export_problem(path: Path) -> str:
    """Why the cached export at ``path`` cannot be used ("" when it can): missing, unparsable, invalid, or
    a graph with other inputs/outputs than this version's."""
    if not path.is_file():
        return "missing"
    import onnx

    from whmr_core.runtime.io_spec import INPUT_NAMES, OUTPUT_NAMES

    try:
        proto = onnx.load(str(path))
        onnx.checker.check_model(proto)
    except Exception as exc:  # protobuf DecodeError, onnx ValidationError, OSError: all mean re-export
        return f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
    ins = tuple(i.name for i in proto.graph.input)
    outs = tuple(o.name for o in proto.graph.output)
    if set(ins) != set(INPUT_NAMES) or set(outs) != set(OUTPUT_NAMES):
        return f"graph inputs {ins} / outputs {outs} are not this version's"
    return ""


def load_topology(body_model: str | Path | None = None) -> BodyTopology:
    """Faces, joints and parents of the body model: a file, a shipped variant ("full", "lowres"), or by
    default the body the shipped checkpoint was trained with."""
    from whmr_core.body import load_body_model
    from whmr_core.model_io import checkpoint_info, shipped_checkpoint

    if not body_model:
        ckpt = shipped_checkpoint()
        body_model = checkpoint_info(ckpt).get("body", "lowres") if ckpt else "lowres"
    if str(body_model) in ("full", "lowres"):
        return BodyTopology.from_body_model(
            load_body_model(variant=str(body_model)), f"whmr-free-{body_model}"
        )
    return BodyTopology.from_body_model(load_body_model(str(body_model)), Path(body_model).stem)
