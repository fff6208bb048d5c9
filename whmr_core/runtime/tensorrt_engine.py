"""TensorRT engine runner: name-bound I/O, one CUDA stream, async copies.

Device buffers come from pycuda (the robot's usual stack) or, when pycuda is absent, from torch CUDA
tensors. Before deserialising, the engine's metadata is compared with this system; on a mismatch the engine
is rebuilt from its ONNX when that is at hand, else refused with the exact mismatch.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from whmr_core.export.onnx_export import file_sha256
from whmr_core.export.tensorrt_build import (
    build_tensorrt_engine,
    current_system,
    engine_metadata_path,
    import_tensorrt,
)
from whmr_core.graph_io import INPUT_NAMES, OUTPUT_NAMES, EngineError, EngineOutputs
from whmr_core.runtime.engines import Engine

__all__ = ["TensorRTEngine", "engine_mismatch"]

log = logging.getLogger(__name__)


def engine_mismatch(meta: dict[str, Any], system: dict[str, Any], onnx_path: Path | None) -> list[str]:
    """Human-readable differences between an engine's metadata and this system (empty: compatible)."""
    diffs = [
        f"{key}: engine {meta.get(key)!r}, system {system[key]!r}"
        for key in ("tensorrt_version", "gpu_name", "compute_capability")
        if meta.get(key) != system[key]
    ]
    if onnx_path is not None and onnx_path.is_file() and meta.get("onnx_sha256") != file_sha256(onnx_path):
        diffs.append(f"onnx_sha256: engine built from another {onnx_path.name}")
    return diffs


class _TorchBuffers:
    """Device memory and stream from torch (no pycuda needed)."""

    def __init__(self) -> None:
        import torch

        self.torch = torch
        self.stream = torch.cuda.Stream()

    def alloc(self, shape: tuple[int, ...], dtype: np.dtype) -> Any:
        t = self.torch
        return t.empty(shape, dtype=getattr(t, np.dtype(dtype).name), device="cuda")

    def ptr(self, buf: Any) -> int:
        return int(buf.data_ptr())

    def htod(self, buf: Any, host: np.ndarray) -> None:
        with self.torch.cuda.stream(self.stream):
            buf[: host.shape[0]].copy_(self.torch.from_numpy(host).pin_memory(), non_blocking=True)

    def dtoh(self, buf: Any, n: int) -> Any:
        with self.torch.cuda.stream(self.stream):
            return buf[:n].to("cpu", non_blocking=True)

    @property
    def handle(self) -> int:
        return int(self.stream.cuda_stream)

    def sync(self) -> None:
        self.stream.synchronize()


class _PycudaBuffers:
    """Device memory, page-locked host memory and a stream from pycuda."""

    def __init__(self) -> None:
        import pycuda.autoinit  # noqa: F401 - creates the CUDA context
        import pycuda.driver as cuda

        self.cuda = cuda
        self.stream = cuda.Stream()
        self.host: dict[int, np.ndarray] = {}

    def alloc(self, shape: tuple[int, ...], dtype: np.dtype) -> Any:
        dev = self.cuda.mem_alloc(int(np.prod(shape)) * np.dtype(dtype).itemsize)
        self.host[int(dev)] = self.cuda.pagelocked_empty(shape, dtype)
        return dev

    def ptr(self, buf: Any) -> int:
        return int(buf)

    def htod(self, buf: Any, host: np.ndarray) -> None:
        staging = self.host[int(buf)]
        staging[: host.shape[0]] = host
        self.cuda.memcpy_htod_async(buf, staging, self.stream)

    def dtoh(self, buf: Any, n: int) -> np.ndarray:
        staging = self.host[int(buf)]
        self.cuda.memcpy_dtoh_async(staging, buf, self.stream)
        return staging[:n]

    @property
    def handle(self) -> int:
        return int(self.stream.handle)

    def sync(self) -> None:
        self.stream.synchronize()


class TensorRTEngine(Engine):
    kind = "tensorrt"

    def __init__(
        self,
        engine_path: str | Path,
        onnx_path: str | Path | None = None,
        *,
        precision: str = "fp16",
        max_persons: int = 8,
        buffers: str = "auto",
    ) -> None:
        trt = import_tensorrt()
        self.path = Path(engine_path)
        onnx = Path(onnx_path) if onnx_path is not None else None
        system = current_system()
        meta_file = engine_metadata_path(self.path)
        problem: list[str] = []
        if not self.path.is_file():
            problem = [f"{self.path} does not exist"]
        elif not meta_file.is_file():
            problem = [f"{meta_file} (engine metadata) is missing"]
        else:
            try:
                meta = json.loads(meta_file.read_text())
            except json.JSONDecodeError as exc:
                raise EngineError(f"{meta_file}: unreadable engine metadata ({exc})") from exc
            problem = engine_mismatch(meta, system, onnx)
            precision = meta.get("precision", precision)
            max_persons = int(meta.get("max_persons", max_persons))
        if problem:
            if onnx is None or not onnx.is_file():
                raise EngineError(
                    f"{self.path}: cannot use this engine ({'; '.join(problem)}) and no ONNX file to rebuild "
                    "it from; run `whmr export --format tensorrt` on this machine"
                )
            log.warning("rebuilding %s from %s: %s", self.path, onnx, "; ".join(problem))
            build_tensorrt_engine(onnx, self.path, precision=precision, max_persons=max_persons)

        self.logger = trt.Logger(trt.Logger.WARNING)
        self.runtime = trt.Runtime(self.logger)
        self.engine = self.runtime.deserialize_cuda_engine(self.path.read_bytes())
        if self.engine is None:
            raise EngineError(f"{self.path}: TensorRT could not deserialise it (truncated or foreign file)")
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outputs = [n for n in names if n not in inputs]
        if set(inputs) != set(INPUT_NAMES) or set(outputs) != set(OUTPUT_NAMES):
            raise EngineError(
                f"{self.path}: not a whmr engine: inputs {inputs} (want {list(INPUT_NAMES)}), "
                f"outputs {outputs}"
            )
        _, _, max_shape = self.engine.get_tensor_profile_shape("crops", 0)
        self.max_batch = int(max_shape[0])
        self.crop_hw = (int(max_shape[2]), int(max_shape[3]))
        self.precision = precision
        self.context = self.engine.create_execution_context()

        use_pycuda = buffers == "pycuda"
        if buffers == "auto":
            try:
                import pycuda.driver  # noqa: F401

                use_pycuda = True
            except ImportError:
                use_pycuda = False
        self.buffers: _PycudaBuffers | _TorchBuffers = _PycudaBuffers() if use_pycuda else _TorchBuffers()
        # Allocate once for the largest batch of the profile; smaller batches use a prefix.
        self.device: dict[str, Any] = {}
        for name in names:
            dtype = np.dtype(trt.nptype(self.engine.get_tensor_dtype(name)))
            if name in inputs:
                shape = tuple(int(d) for d in self.engine.get_tensor_profile_shape(name, 0)[2])
            else:  # outputs: dynamic person dim (-1) at its maximum
                shape = (self.max_batch, *(int(d) for d in tuple(self.engine.get_tensor_shape(name))[1:]))
            self.device[name] = self.buffers.alloc(shape, dtype)
            self.context.set_tensor_address(name, self.buffers.ptr(self.device[name]))

    def _run(self, inputs: dict[str, np.ndarray]) -> EngineOutputs:
        n = inputs["crops"].shape[0]
        for name in INPUT_NAMES:
            self.context.set_input_shape(name, tuple(inputs[name].shape))
            self.buffers.htod(self.device[name], inputs[name])
        if not self.context.execute_async_v3(self.buffers.handle):
            raise EngineError(f"{self.path}: TensorRT execution failed")
        host = {name: self.buffers.dtoh(self.device[name], n) for name in OUTPUT_NAMES}
        self.buffers.sync()
        # Copied: the pycuda staging buffers are reused by the next call.
        return EngineOutputs.from_named(
            {k: np.array(v, dtype=np.float32) for k, v in host.items()}, str(self.path)
        )

    def describe(self) -> str:
        return f"tensorrt ({self.precision}, up to {self.max_batch} persons) on {self.path.name}"
