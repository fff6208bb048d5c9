"""Build a TensorRT engine from the exported ONNX, and the metadata that ties it to its system.

An engine only runs on the TensorRT version and GPU it was built for. Each ``.engine`` gets a
``.engine.json`` beside it (source ONNX hash, TensorRT version, GPU name and compute capability,
precision, optimisation profile) so that loading can rebuild on a mismatch instead of failing with
"Version tag does not match". Needs the ``tensorrt`` Python package (JetPack, or NVIDIA's index) and a GPU.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from whmr_core._version import __version__
from whmr_core.export.onnx_export import file_sha256
from whmr_core.graph_io import EngineError

__all__ = ["build_tensorrt_engine", "current_system", "engine_metadata_path", "import_tensorrt"]

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "fp16", "int8")


def import_tensorrt():
    """The tensorrt module, or an EngineError saying how to get it."""
    try:
        import tensorrt as trt
    except ImportError as exc:
        raise EngineError(
            "TensorRT is not installed: on a Jetson it comes with JetPack (python3-libnvinfer); on a "
            "workstation install it from NVIDIA's package index (pip install -e .[gpu])"
        ) from exc
    return trt


def engine_metadata_path(engine_path: str | Path) -> Path:
    p = Path(engine_path)
    return p.with_name(p.name + ".json")


def current_system() -> dict[str, Any]:
    """TensorRT version and GPU of this machine (what an engine must match)."""
    trt = import_tensorrt()
    import torch

    if not torch.cuda.is_available():
        raise EngineError("TensorRT needs a CUDA GPU, and torch.cuda sees none")
    major, minor = torch.cuda.get_device_capability()
    return {
        "tensorrt_version": trt.__version__,
        "gpu_name": torch.cuda.get_device_name(),
        "compute_capability": f"{major}.{minor}",
    }


def _calibrator(trt, batches: list[np.ndarray], input_names: list[str], cache: Path):
    """INT8 entropy calibrator over pre-made input batches (dicts flattened in ``input_names`` order)."""
    import torch

    class Calibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self) -> None:
            super().__init__()
            self.batches = iter(batches)
            self.device: list[torch.Tensor] = []

        def get_batch_size(self) -> int:
            return int(batches[0][0].shape[0])

        def get_batch(self, names):
            try:
                arrays = next(self.batches)
            except StopIteration:
                return None
            by_name = dict(zip(input_names, arrays, strict=True))
            self.device = [torch.from_numpy(by_name[n]).cuda() for n in names]
            return [int(t.data_ptr()) for t in self.device]

        def read_calibration_cache(self):
            return cache.read_bytes() if cache.is_file() else None

        def write_calibration_cache(self, data) -> None:
            cache.write_bytes(bytes(data))

    return Calibrator()


def build_tensorrt_engine(
    onnx_path: str | Path,
    engine_path: str | Path,
    *,
    precision: str = "fp16",
    max_persons: int = 8,
    opt_persons: int = 1,
    workspace_gib: float = 2.0,
    calibration: Iterable[dict[str, np.ndarray]] | None = None,
) -> Path:
    """Parse ``onnx_path`` with TensorRT's ONNX parser and write ``engine_path`` + its metadata."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision: one of {PRECISIONS}, got {precision!r}")
    if not 1 <= opt_persons <= max_persons:
        raise ValueError(f"max_persons/opt_persons: need 1 <= opt <= max, got {opt_persons}, {max_persons}")
    trt = import_tensorrt()
    system = current_system()
    onnx_path, engine_path = Path(onnx_path), Path(engine_path)
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0
    if hasattr(trt.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH"):  # TensorRT 8.x; implied in 10.x
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_path.read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise EngineError(f"{onnx_path}: TensorRT's ONNX parser refused it: {errors}")

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gib * (1 << 30)))
    if precision in ("fp16", "int8"):
        config.set_flag(trt.BuilderFlag.FP16)
    profile = builder.create_optimization_profile()
    shapes: dict[str, list[list[int]]] = {}
    for i in range(network.num_inputs):
        tensor = network.get_input(i)
        rest = [int(d) for d in tuple(tensor.shape)[1:]]
        mins, opts, maxs = [1, *rest], [opt_persons, *rest], [max_persons, *rest]
        profile.set_shape(tensor.name, mins, opts, maxs)
        shapes[tensor.name] = [mins, opts, maxs]
    config.add_optimization_profile(profile)
    if precision == "int8":
        if calibration is None:
            raise ValueError(
                "calibration: int8 needs calibration batches (whmr export makes them from synth data)"
            )
        names = [network.get_input(i).name for i in range(network.num_inputs)]
        batches = [[b[n] for n in names] for b in calibration]
        config.set_flag(trt.BuilderFlag.INT8)
        config.int8_calibrator = _calibrator(trt, batches, names, engine_path.with_suffix(".calib"))
        config.set_calibration_profile(profile)

    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise EngineError(f"{onnx_path}: TensorRT failed to build an engine (see the log above)")
    engine_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = engine_path.with_name(engine_path.name + ".tmp")
    tmp.write_bytes(bytes(serialized))
    tmp.replace(engine_path)
    meta = {
        **system,
        "onnx_sha256": file_sha256(onnx_path),
        "onnx_file": onnx_path.name,
        "precision": precision,
        "profile": shapes,
        "max_persons": max_persons,
        "whmr_version": __version__,
    }
    engine_metadata_path(engine_path).write_text(json.dumps(meta, indent=2))
    log.info(
        "built %s (%s, TensorRT %s on %s)",
        engine_path,
        precision,
        system["tensorrt_version"],
        system["gpu_name"],
    )
    return engine_path
