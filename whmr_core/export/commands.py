"""``whmr export``: a checkpoint (default: the shipped one) to ONNX, TensorRT or torch2trt."""

from __future__ import annotations

import argparse
import logging
import tempfile
from pathlib import Path

import numpy as np

__all__ = ["add_export_arguments", "run_export"]

log = logging.getLogger(__name__)


def add_export_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", default=None, help="checkpoint directory (default: the shipped one)")
    p.add_argument("--format", required=True, choices=("onnx", "tensorrt", "torch2trt"))
    p.add_argument("--out", required=True, help="output file (.onnx, .engine, .pth)")
    p.add_argument("--precision", default="fp16", choices=("fp32", "fp16", "int8"), help="TensorRT precision")
    p.add_argument("--max-persons", type=int, default=8, help="largest person batch of the engine profile")
    p.add_argument("--opset", type=int, default=17, choices=(17, 18))
    p.add_argument("--calibration", default=None, help="whmr synth data set for INT8 calibration")


def _calibration_batches(
    model, data_dir: str | None, batch: int, count: int = 8
) -> list[dict[str, np.ndarray]]:
    """INT8 calibration inputs from a synthetic data set (made on the fly when none is given)."""
    from whmr_core.data.dataset import HumanDataset

    if data_dir is None:
        from whmr_core.data.synth import generate_dataset

        data_dir = tempfile.mkdtemp(prefix="whmr-calib-")
        generate_dataset(data_dir, batch * count, seed=12345, workers=0, body="lowres")
    ds = HumanDataset(Path(data_dir) / "train.npz", data_dir, crop_res=max(model.crop_hw))
    from whmr_core.data.batch import collate, network_crops

    out = []
    for b in range(min(count, len(ds) // batch)):
        items = collate([ds[i] for i in range(b * batch, (b + 1) * batch)])
        out.append({
            "crops": network_crops(model.crop_hw, items["img"]).numpy(),
            "glob_info": items["glob_info"].numpy(),
            "cam_rotation": items["cam_rotation"].numpy().astype(np.float32),
        })  # fmt: skip
    return out


def run_export(args: argparse.Namespace) -> int:
    from whmr_core.export.onnx_export import export_onnx
    from whmr_core.model_io import build_from_checkpoint, checkpoint_info, shipped_checkpoint

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    ckpt = args.checkpoint or shipped_checkpoint()
    model = build_from_checkpoint(ckpt)
    info = checkpoint_info(ckpt) if ckpt else {"name": "small-cpu", "body": "lowres"}
    meta = {"config": str(info.get("name", "")), "body": str(info.get("body", ""))}
    out = Path(args.out)
    if args.format == "onnx":
        export_onnx(model, out, opset=args.opset, metadata=meta)
        print(f"wrote {out}")
        return 0
    if args.format == "tensorrt":
        from whmr_core.export.tensorrt_build import build_tensorrt_engine

        onnx_path = out.with_suffix(".onnx")
        export_onnx(model, onnx_path, opset=args.opset, metadata=meta)
        calib = None
        if args.precision == "int8":
            calib = _calibration_batches(model, args.calibration, batch=min(args.max_persons, 8))
        build_tensorrt_engine(
            onnx_path, out, precision=args.precision, max_persons=args.max_persons, calibration=calib
        )
        print(f"wrote {out} (+ {out.name}.json metadata, source {onnx_path.name})")
        return 0
    # torch2trt: optional, installed by the user from its source (not on PyPI).
    try:
        from torch2trt import torch2trt
    except ImportError:
        print("whmr export: torch2trt is not installed (it is not on PyPI; install it from its source)")
        return 2
    import torch

    from whmr_core.export.graph import InferenceGraph

    graph = InferenceGraph(model).cuda().eval()
    h, w = graph.crop_hw
    n = args.max_persons
    example = [
        torch.zeros(n, 3, h, w).cuda(),
        torch.zeros(n, 5).cuda(),
        torch.eye(3).expand(n, 3, 3).contiguous().cuda(),
    ]
    trt_module = torch2trt(graph, example, fp16_mode=args.precision == "fp16", max_batch_size=n)
    torch.save(trt_module.state_dict(), out)
    print(f"wrote {out} (load with torch2trt.TRTModule().load_state_dict)")
    return 0
