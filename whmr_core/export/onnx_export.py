"""ONNX export of the inference graph: named inputs/outputs, dynamic person batch, opset 17 (TensorRT's
GridSample is wrong at opset 20 in some versions), simplified with onnxslim and checked with onnx's checker.
"""

from __future__ import annotations

import hashlib
import logging
import os
import warnings
from pathlib import Path

import onnx
import torch
from torch import nn

from whmr_core._version import __version__
from whmr_core.export.graph import InferenceGraph
from whmr_core.graph_io import INPUT_NAMES, OUTPUT_NAMES

__all__ = ["export_onnx", "file_sha256"]

log = logging.getLogger(__name__)


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def export_onnx(
    model: nn.Module,
    path: str | Path,
    *,
    opset: int = 17,
    simplify: bool = True,
    example_batch: int = 2,
    metadata: dict[str, str] | None = None,
) -> Path:
    """Export ``model`` (a WHMR network) to ``path``; returns the path."""
    if opset not in (17, 18):
        raise ValueError(
            f"opset: use 17 or 18 (TensorRT GridSample is wrong at 20 in some versions), got {opset}"
        )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Written under a temporary name and renamed at the end: an interrupted export leaves no half file at
    # ``path`` (the engine factory caches exports by file name). The name is the process's own, so two
    # processes exporting the same checkpoint at once (two nodes, parallel tests) never share a file.
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    graph = InferenceGraph(model).eval()
    h, w = graph.crop_hw
    param = next(model.parameters())
    n = example_batch
    args = (
        torch.randn(n, 3, h, w, dtype=param.dtype, device=param.device),
        torch.tensor([[0.05, 0.02, 0.3, 0.8, 0.6]], dtype=param.dtype, device=param.device).expand(n, 5),
        torch.eye(3, dtype=param.dtype, device=param.device).expand(n, 3, 3).contiguous(),
    )
    dynamic = {name: {0: "persons"} for name in (*INPUT_NAMES, *OUTPUT_NAMES)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about shape checks frozen into the graph
        torch.onnx.export(
            graph,
            args,
            str(tmp),
            input_names=list(INPUT_NAMES),
            output_names=list(OUTPUT_NAMES),
            dynamic_axes=dynamic,
            opset_version=opset,
            dynamo=False,
            do_constant_folding=True,
        )
    proto = onnx.load(str(tmp))
    if simplify:
        import onnxslim

        proto = onnxslim.slim(proto)
    meta = {"whmr_version": __version__, "crop_hw": f"{h}x{w}", **(metadata or {})}
    config = getattr(model, "config", None)
    if config is not None and getattr(config, "name", None):
        meta.setdefault("config", str(config.name))
    onnx.helper.set_model_props(proto, meta)
    onnx.checker.check_model(proto, full_check=True)
    onnx.save(proto, str(tmp))
    tmp.replace(path)
    log.info("exported %s (%s, opset %d)", path, meta, opset)
    return path
