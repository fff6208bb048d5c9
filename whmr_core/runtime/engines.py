"""One ``Engine`` interface, three implementations: PyTorch (eager), ONNX Runtime (CPU or CUDA) and
TensorRT (robot GPU; in ``tensorrt_engine.py``). All take the same named inputs and return the same named
outputs (``whmr_core.graph_io``), so the Pipeline never knows which one runs.
"""

from __future__ import annotations

import logging
import os
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import numpy as np
import torch

from whmr_core.graph_io import INPUT_NAMES, OUTPUT_NAMES, EngineError, EngineOutputs

__all__ = ["Engine", "EngineError", "OnnxRuntimeEngine", "TorchEngine", "validate_inputs"]

log = logging.getLogger(__name__)


def _as_float32(name: str, value: Any) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    arr = np.asarray(value)
    if not (np.issubdtype(arr.dtype, np.floating)):
        raise EngineError(f"{name}: expected floating-point values, got dtype {arr.dtype}")
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    if not np.isfinite(arr).all():
        raise EngineError(f"{name}: contains non-finite values (NaN or inf)")
    return arr


def validate_inputs(
    crops: Any,
    glob_info: Any,
    cam_rotation: Any | None,
    crop_hw: tuple[int, int],
    max_batch: int | None = None,
) -> dict[str, np.ndarray]:
    """Check shapes/dtypes against the engine and return contiguous float32 arrays by input name."""
    c = _as_float32("crops", crops)
    g = _as_float32("glob_info", glob_info)
    h, w = crop_hw
    if c.ndim != 4 or c.shape[1:] != (3, h, w):
        raise EngineError(f"crops: expected shape (N, 3, {h}, {w}), got {c.shape}")
    n = c.shape[0]
    if n == 0:
        raise EngineError("crops: empty batch (no persons)")
    if max_batch is not None and n > max_batch:
        raise EngineError(f"crops: batch of {n} persons exceeds the engine's maximum of {max_batch}")
    if g.shape != (n, 5):
        raise EngineError(f"glob_info: expected shape ({n}, 5), got {g.shape}")
    if cam_rotation is None:
        r = np.broadcast_to(np.eye(3, dtype=np.float32), (n, 3, 3)).copy()
    else:
        r = _as_float32("cam_rotation", cam_rotation)
        if r.shape != (n, 3, 3):
            raise EngineError(f"cam_rotation: expected shape ({n}, 3, 3), got {r.shape}")
    return {"crops": c, "glob_info": g, "cam_rotation": r}


class Engine(ABC):
    """``infer(crops, glob_info, cam_rotation=None) -> EngineOutputs`` ((N, ...) float32 per output).

    ``body`` names the body model the network was trained with, as its artifact records it (checkpoint or
    ONNX metadata; "" when the artifact does not say): the Pipeline's topology comes from it.
    """

    kind: str = "abstract"
    crop_hw: tuple[int, int]
    max_batch: int | None = None
    body: str = ""

    def infer(self, crops: Any, glob_info: Any, cam_rotation: Any | None = None) -> EngineOutputs:
        inputs = validate_inputs(crops, glob_info, cam_rotation, self.crop_hw, self.max_batch)
        return self._run(inputs)

    def infer_chunked(self, crops: Any, glob_info: Any, cam_rotation: Any | None = None) -> EngineOutputs:
        """``infer`` on any number of persons, in chunks of the engine's maximum batch (a TensorRT
        profile's limit)."""
        step = self.max_batch or len(crops)
        parts = [
            self.infer(crops[i : i + step], glob_info[i : i + step],
                       None if cam_rotation is None else cam_rotation[i : i + step])
            for i in range(0, len(crops), step)
        ]  # fmt: skip
        return EngineOutputs.concatenate(parts)

    @abstractmethod
    def _run(self, inputs: dict[str, np.ndarray]) -> EngineOutputs: ...

    def describe(self) -> str:
        return f"{self.kind} engine, crops {self.crop_hw[0]}x{self.crop_hw[1]}"


class TorchEngine(Engine):
    """Eager PyTorch on CPU or CUDA (the reference the other engines are checked against)."""

    kind = "torch"

    def __init__(
        self, model: torch.nn.Module, device: str | torch.device = "cpu", dtype=torch.float32
    ) -> None:
        from whmr_core.export.graph import InferenceGraph

        self.graph = InferenceGraph(model).to(device=device, dtype=dtype).eval()
        self.device, self.dtype = torch.device(device), dtype
        self.crop_hw = self.graph.crop_hw

    def _run(self, inputs: dict[str, np.ndarray]) -> EngineOutputs:
        args = [torch.from_numpy(inputs[n]).to(self.device, self.dtype) for n in INPUT_NAMES]
        with torch.inference_mode():
            outs = self.graph(*args)
        return EngineOutputs.from_named([o.float().cpu().numpy() for o in outs], "torch engine")


class OnnxRuntimeEngine(Engine):
    """ONNX Runtime with all graph optimisations; CPU by default, CUDA when asked and available."""

    kind = "onnxruntime"

    def __init__(
        self,
        path: str | Path,
        threads: int | None = None,
        providers: list[str] | None = None,
    ) -> None:
        import onnxruntime as ort

        self.path = Path(path)
        if not self.path.is_file():
            raise EngineError(f"{self.path}: ONNX file not found")
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Idle intra-op threads sleep instead of spinning: spinning burnt the CPU the host's own threads
        # (ROS executor, conversions, detector) need on a small robot computer; measured under ROS on 2
        # cores, CPU per answered frame 84 -> 50 ms with 2 threads (scripts/bench_ros.py, docs/ros_node.md).
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if threads:
            opts.intra_op_num_threads = int(threads)
            opts.inter_op_num_threads = 1
        available = ort.get_available_providers()
        providers = [p for p in (providers or ["CPUExecutionProvider"]) if p in available] or [
            "CPUExecutionProvider"
        ]
        try:
            self.session = ort.InferenceSession(str(self.path), sess_options=opts, providers=providers)
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph/... types
            raise EngineError(f"{self.path}: not a loadable ONNX model ({exc})") from exc
        ins = {i.name: i for i in self.session.get_inputs()}
        outs = [o.name for o in self.session.get_outputs()]
        if set(ins) != set(INPUT_NAMES) or set(outs) != set(OUTPUT_NAMES):
            raise EngineError(
                f"{self.path}: not a whmr graph: inputs {sorted(ins)} (want {list(INPUT_NAMES)}), "
                f"outputs {outs} (want {list(OUTPUT_NAMES)})"
            )
        shape = ins["crops"].shape
        if not all(isinstance(d, int) for d in shape[1:]):
            raise EngineError(f"{self.path}: crops input needs a fixed (3, H, W), got {shape}")
        self.crop_hw = (int(shape[2]), int(shape[3]))
        self.max_batch = int(shape[0]) if isinstance(shape[0], int) else None
        self.providers = self.session.get_providers()
        self.body = self.session.get_modelmeta().custom_metadata_map.get("body", "")
        self.threads = threads or os.cpu_count()

    def _run(self, inputs: dict[str, np.ndarray]) -> EngineOutputs:
        return EngineOutputs.from_named(self.session.run(list(OUTPUT_NAMES), inputs), str(self.path))

    def describe(self) -> str:
        return f"onnxruntime ({', '.join(self.providers)}, {self.threads} threads) on {self.path.name}"
