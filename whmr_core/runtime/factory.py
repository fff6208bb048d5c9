"""Engines and body topology from paths, for the hosts (node, bag runner, scripts).

``load_engine("auto", path)`` picks the engine by the file: ``.onnx`` -> ONNX Runtime, ``.engine``/``.plan``
-> TensorRT (rebuilt from a sibling ``.onnx`` when it does not fit this machine), ``.safetensors`` ->
PyTorch (a checkpoint file or directory) through ``whmr_core.model``, the network module, imported
only when asked for. Every engine carries the body its artifact records (``engine.body``), and
``load_topology(engine=...)`` takes the topology from it.
"""

from __future__ import annotations

import logging
from pathlib import Path

from whmr_core.body.topology import BodyTopology
from whmr_core.runtime.engines import Engine, EngineError, OnnxRuntimeEngine

__all__ = ["ENGINE_KINDS", "default_engine", "load_engine", "load_topology", "onnx_metadata"]

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
    """An ``Engine`` for a model file, with ``engine.body`` the body the file records. ``config`` names the
    network config of ``.safetensors`` weights that do not record their own."""
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
        return OnnxRuntimeEngine(p, threads=threads, providers=providers)  # body from its metadata
    if kind == "tensorrt":
        from whmr_core.runtime.tensorrt_engine import TensorRTEngine

        onnx = p.with_suffix(".onnx")
        engine = TensorRTEngine(p, onnx if onnx.is_file() else None)
        engine.body = onnx_metadata(onnx).get("body", "") if onnx.is_file() else ""
        return engine
    return _torch_engine(p, config, device)


def _torch_engine(path: Path, config: str | None, device: str) -> Engine:
    from whmr_core.body import resolve
    from whmr_core.checkpoint import load_checkpoint
    from whmr_core.model import build_model
    from whmr_core.model_io import build_from_checkpoint, checkpoint_info
    from whmr_core.runtime.engines import TorchEngine

    info = checkpoint_info(path)
    if "model" in info:  # the checkpoint records its network config and body: rebuild exactly that
        if config and config != info.get("name", config):
            log.warning("%s records network config %r; %r ignored", path, info.get("name"), config)
        model = build_from_checkpoint(path)
    elif config:
        model = build_model(config, body=resolve(info.get("body")).load())
        load_checkpoint(path, model)
    else:
        raise EngineError(f"{path}: the weights do not record their network config; pass it (network_config)")
    engine = TorchEngine(model, device=device)
    engine.body = resolve(info.get("body")).spec
    return engine


def onnx_metadata(path: str | Path) -> dict[str, str]:
    """The metadata properties of an ONNX file (whmr's export writes config, body, crop size)."""
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    return {p.key: p.value for p in proto.metadata_props}


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
    from whmr_core.model_io import build_from_checkpoint, checkpoint_info, shipped_checkpoint
    from whmr_core.runtime.engines import TorchEngine

    ckpt = Path(checkpoint) if checkpoint else shipped_checkpoint()
    model = build_from_checkpoint(ckpt)
    # Without a checkpoint build_from_checkpoint makes an untrained network on the low-res body.
    info = checkpoint_info(ckpt) if ckpt else {"name": "small-cpu", "body": "lowres"}
    body = str(info.get("body", ""))
    engine: Engine
    if kind == "torch":
        engine = TorchEngine(model, device=device)
        engine.body = body
        return engine
    cache = Path(os.environ.get("WHMR_CACHE_DIR", Path.home() / ".cache" / "whmr"))
    onnx_path = cache / f"whmr-{_export_tag(ckpt, file_sha256)}.onnx"
    problem = _cached_export_problem(onnx_path)
    if problem:
        if onnx_path.exists():  # a torn copy or a damaged disk: never trusted, never fatal
            log.warning("%s: cached ONNX export unusable (%s); exporting it again", onnx_path, problem)
        cache.mkdir(parents=True, exist_ok=True)
        export_onnx(model, onnx_path, metadata={"config": str(info.get("name", "")), "body": body})
    engine = _onnx_or_tensorrt(kind, onnx_path, threads, device)
    engine.body = body  # exports cached by older versions carry no body metadata
    return engine


def _export_tag(ckpt: Path | None, file_sha256) -> str:
    """The cache key of a checkpoint's ONNX export: its files and the code that builds and exports the
    network, so that upgrading whmr never reuses an export of the old graph."""
    import hashlib

    import whmr_core

    h = hashlib.sha256()
    if ckpt:
        for f in sorted(p for p in ckpt.iterdir() if p.is_file()):
            h.update(f.name.encode() + file_sha256(f).encode())
    else:
        h.update(b"untrained")
    root = Path(whmr_core.__file__).parent
    for f in export_code_files(root):
        h.update(f.relative_to(root).as_posix().encode() + f.read_bytes())
    return h.hexdigest()[:16]


def export_code_files(root: Path) -> list[Path]:
    """The whmr_core sources (below ``root``) that decide what an ONNX export of a checkpoint holds."""
    files = [f for sub in ("model", "export", "body") for f in sorted((root / sub).rglob("*.py"))]
    return files + [root / f for f in ("graph_io.py", "rotations.py", "geometry.py")]


def _onnx_or_tensorrt(kind: str, onnx_path: Path, threads: int | None, device: str) -> Engine:
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

    from whmr_core.graph_io import INPUT_NAMES, OUTPUT_NAMES

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


def load_topology(body_model: str | Path | None = None, *, engine: Engine | None = None) -> BodyTopology:
    """Faces, joints and parents of the body the model was trained with.

    With ``engine``: the body its model artifact records (``engine.body``); a ``body_model`` given as well
    must match it (BodyMismatchError otherwise), and is used only when the artifact records none.
    Without: ``body_model`` (a file or a shipped variant), else the shipped checkpoint's body.
    """
    from whmr_core.body import resolve
    from whmr_core.body.resolve import check_same_body
    from whmr_core.model_io import checkpoint_info, shipped_checkpoint

    trained = engine.body if engine is not None else ""
    if not trained and engine is None and not body_model:
        ckpt = shipped_checkpoint()
        trained = str(checkpoint_info(ckpt).get("body", "")) if ckpt else "lowres"
    if not trained:
        if not body_model:
            raise EngineError(
                f"{engine.describe() if engine else 'model'}: the model file does not record its body model;"
                " pass the body model it was trained with (body_model / --body-model)"
            )
        return resolve(body_model).topology()
    topology = resolve(trained).topology()
    if body_model:
        check_same_body(resolve(body_model).topology(), topology, engine.describe() if engine else "model")
    return topology
