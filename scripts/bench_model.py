#!/usr/bin/env python3
"""Benchmark the named network configs on CPU: parameters, GFLOPs and latency; prints a Markdown table.

GFLOPs are counted by ``torch.utils.flop_counter.FlopCounterMode`` on one forward of the inference graph
at batch 1 (2 FLOPs per multiply-add; matmuls and convolutions only). Latency is the median of repeated
eager forwards (and, with ``--onnx``, of ONNX Runtime runs of the exported graph) at the given batch,
the lowest of several rounds' medians.

The body model defaults to a synthetic SMPL-sized stand-in (6890 vertices, 431 sparse, 67 markers), so
the numbers do not depend on which body model is installed; ``--body shipped`` (or ``shipped-lowres``)
uses whmr_core.body's models.

    .venv/bin/python scripts/bench_model.py --threads 2 --onnx
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from whmr_core.export.graph import InferenceGraph
from whmr_core.export.onnx_export import export_onnx
from whmr_core.model import NAMED_CONFIGS, build_model


def _body(kind: str):
    if kind in ("shipped", "shipped-lowres"):
        from whmr_core.body import body_assets, load_body_model

        m = load_body_model(variant="full" if kind == "shipped" else "lowres")
        return m, body_assets(m)
    from whmr_core.model.standin_body import make_standin_body

    return make_standin_body(n_vertices=6890, n_markers=67)


def _inputs(n: int, crop_hw: tuple[int, int]) -> tuple[torch.Tensor, ...]:
    gi = torch.tensor([[0.05, 0.02, 0.3, 0.8, 0.6]]).expand(n, 5).contiguous()
    return torch.randn(n, 3, *crop_hw), gi, torch.eye(3).expand(n, 3, 3).contiguous()


def _median_ms(fn, repeats: int, rounds: int = 1, warmup: int = 2) -> float:
    """Lowest of ``rounds`` medians of ``repeats`` timed calls (rounds damp other jobs on the machine)."""
    for _ in range(warmup):
        fn()
    medians = []
    for _ in range(rounds):
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1000)
        medians.append(statistics.median(times))
    return min(medians)


def bench(
    name: str, body, batch: int, repeats: int, rounds: int, threads: int, onnx: bool
) -> dict[str, float | str]:
    torch.manual_seed(0)
    model = build_model(name, body).eval()
    graph = InferenceGraph(model)
    params = sum(p.numel() for p in model.parameters())
    train_only = sum(p.numel() for p in model.aux_heads.parameters()) if model.aux_heads is not None else 0
    backbone = sum(p.numel() for p in model.backbone.parameters())
    args1 = _inputs(1, model.crop_hw)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        graph(*args1)
    args = _inputs(batch, model.crop_hw)
    with torch.no_grad():
        eager = _median_ms(lambda: graph(*args), repeats, rounds)
    row: dict[str, float | str] = {
        "config": name,
        "crop": "x".join(map(str, model.crop_hw)),
        "params_M": (params - train_only) / 1e6,
        "backbone_M": backbone / 1e6,
        "gflops": counter.get_total_flops() / 1e9,
        "eager_ms": eager,
    }
    if onnx:
        import onnxruntime as ort

        with tempfile.TemporaryDirectory() as tmp:
            path = str(Path(tmp) / "m.onnx")
            export_onnx(model, path, example_batch=batch)
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = threads
            sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
            feed = dict(zip(("crops", "glob_info", "cam_rotation"), (a.numpy() for a in args), strict=True))
            row["ort_ms"] = _median_ms(lambda: sess.run(None, feed), repeats, rounds)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--configs", nargs="+", default=["small-cpu", "r50-hybrid", "vitb-hybrid", "vitb-param"])
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3, help="report the lowest median of this many rounds")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--onnx", action="store_true", help="also time ONNX Runtime on the exported graph")
    ap.add_argument("--body", choices=["standin", "shipped", "shipped-lowres"], default="standin")
    a = ap.parse_args()
    unknown = set(a.configs) - set(NAMED_CONFIGS)
    if unknown:
        ap.error(f"unknown configs {sorted(unknown)}; known: {sorted(NAMED_CONFIGS)}")
    torch.set_num_threads(a.threads)
    body = _body(a.body)
    head = "| config | crop (HxW) | params (M, inference) | backbone (M) | GFLOPs | eager CPU ms |"
    sep = "|---|---|---|---|---|---|"
    if a.onnx:
        head, sep = head + " ORT CPU ms |", sep + "---|"
    print(
        f"batch {a.batch}, {a.threads} threads, torch {torch.__version__}, body {a.body}, best of {a.rounds}"
    )
    print(head)
    print(sep)
    for name in a.configs:
        r = bench(name, body, a.batch, a.repeats, a.rounds, a.threads, a.onnx)
        line = (
            f"| {r['config']} | {r['crop']} | {r['params_M']:.1f} | {r['backbone_M']:.1f} | "
            f"{r['gflops']:.2f} | {r['eager_ms']:.0f} |"
        )
        if a.onnx:
            line += f" {r['ort_ms']:.0f} |"
        print(line, flush=True)


if __name__ == "__main__":
    main()
