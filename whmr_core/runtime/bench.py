"""``whmr bench``: latency and throughput of every available engine, against eager PyTorch fp32 in the same
run, plus the accuracy cost (millimetres of vertex error) of the reduced-precision ones."""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from whmr_core.runtime.engines import Engine, OnnxRuntimeEngine, TorchEngine

__all__ = ["add_bench_arguments", "machine_info", "run_bench"]


def machine_info(threads: int) -> dict[str, Any]:
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else None
    return {"cpu": cpu, "threads": threads, "gpu": gpu, "torch": torch.__version__}


def _inputs(crop_hw: tuple[int, int], n: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    h, w = crop_hw
    glob = np.tile(np.array([[0.05, 0.02, 0.3, 0.8, 0.6]], np.float32), (n, 1))
    return {
        "crops": rng.normal(size=(n, 3, h, w)).astype(np.float32),
        "glob_info": glob,
        "cam_rotation": np.tile(np.eye(3, dtype=np.float32), (n, 1, 1)),
    }


def _time(engine: Engine, inputs: dict[str, np.ndarray], repeats: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        engine.infer(**inputs)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        engine.infer(**inputs)
        times.append((time.perf_counter() - t0) * 1000)
    return times


class _TorchBF16(TorchEngine):
    kind = "torch-bf16"

    def _run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        with torch.autocast(self.device.type, dtype=torch.bfloat16):
            return super()._run(inputs)


def _engines(model: torch.nn.Module, which: list[str], threads: int, tmp: Path) -> dict[str, Engine]:
    from whmr_core.export.onnx_export import export_onnx

    engines: dict[str, Engine] = {"torch": TorchEngine(model)}
    onnx_path = None
    if any(w.startswith("onnxruntime") or w.startswith("tensorrt") for w in which):
        onnx_path = export_onnx(model, tmp / "model.onnx")
    if "onnxruntime" in which:
        engines["onnxruntime"] = OnnxRuntimeEngine(onnx_path, threads=threads)
    if "onnxruntime-int8" in which:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        q = tmp / "model.int8.onnx"
        quantize_dynamic(str(onnx_path), str(q), weight_type=QuantType.QInt8)
        eng = OnnxRuntimeEngine(q, threads=threads)
        eng.kind = "onnxruntime-int8"
        engines["onnxruntime-int8"] = eng
    if "torch-bf16" in which:
        engines["torch-bf16"] = _TorchBF16(model)
    for precision in ("fp32", "fp16"):
        if f"tensorrt-{precision}" in which and torch.cuda.is_available():
            from whmr_core.runtime.tensorrt_engine import TensorRTEngine

            engines[f"tensorrt-{precision}"] = TensorRTEngine(
                tmp / f"model.{precision}.engine", onnx_path, precision=precision, max_persons=8
            )
    return engines


def run_bench(
    model: torch.nn.Module,
    *,
    engines: list[str],
    batches: list[int],
    threads: int,
    repeats: int = 20,
    warmup: int = 3,
) -> dict[str, Any]:
    torch.set_num_threads(threads)
    model = model.eval()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        built = _engines(model, engines, threads, Path(tmp))
        reference = built["torch"]
        for n in batches:
            inputs = _inputs(reference.crop_hw, n)
            ref_out = reference.infer(**inputs)
            ref_ms = None
            for name, eng in built.items():
                times = _time(eng, inputs, repeats, warmup)
                med = statistics.median(times)
                p90 = float(np.percentile(times, 90))
                ref_ms = med if name == "torch" else ref_ms
                out = eng.infer(**inputs)
                err_mm = float(np.linalg.norm(out.vertices - ref_out.vertices, axis=-1).mean() * 1000)
                rows.append({
                    "engine": name, "batch": n, "median_ms": round(med, 3), "p90_ms": round(p90, 3),
                    "persons_per_s": round(n * 1000 / med, 2),
                    "speedup_vs_torch_fp32": round(ref_ms / med, 3) if ref_ms else None,
                    "vertex_error_mm_vs_torch_fp32": round(err_mm, 4),
                })  # fmt: skip
    return {"machine": machine_info(threads), "config": getattr(model.config, "name", "?"), "results": rows}


def format_rows(report: dict[str, Any]) -> str:
    lines = [
        "| engine | persons | median ms | p90 ms | persons/s | x eager fp32 | vertex err mm |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in report["results"]:
        lines.append(
            f"| {r['engine']} | {r['batch']} | {r['median_ms']:.1f} | {r['p90_ms']:.1f} "
            f"| {r['persons_per_s']:.1f} | {r['speedup_vs_torch_fp32']:.2f} "
            f"| {r['vertex_error_mm_vs_torch_fp32']:.3f} |"
        )
    return "\n".join(lines)


def add_bench_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", default=None, help="checkpoint (default: the shipped one)")
    p.add_argument("--config", default=None, help="benchmark a freshly initialised named config instead")
    p.add_argument("--body", default=None, help="body model for --config: lowres, full or a path")
    p.add_argument(
        "--engines",
        default="torch,onnxruntime,onnxruntime-int8,torch-bf16,tensorrt-fp32,tensorrt-fp16",
        help="comma-separated engines; unavailable ones are skipped",
    )
    p.add_argument("--batches", default="1,2,4,8", help="person batch sizes")
    p.add_argument("--threads", type=int, default=2, help="CPU threads (torch and ONNX Runtime)")
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--json", default=None, help="write the report here")


def bench_main(args: argparse.Namespace) -> int:
    from whmr_core.model_io import build_from_checkpoint

    if args.config:
        from whmr_core.body import resolve
        from whmr_core.model import build_model

        body = args.body or "lowres"
        model = build_model(
            args.config,
            body=resolve(body).load(),
        )
    else:
        model = build_from_checkpoint(args.checkpoint)
    report = run_bench(
        model,
        engines=[e.strip() for e in args.engines.split(",") if e.strip()],
        batches=[int(b) for b in args.batches.split(",")],
        threads=args.threads,
        repeats=args.repeats,
    )
    print(json.dumps(report["machine"]))
    print(format_rows(report))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0
