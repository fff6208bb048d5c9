"""The shipped pose models: where each ONNX file lies, its expected sha256, a checked ONNX Runtime session.

Files: ``whmr_core/assets/pose_models/`` (NOTICE and LICENSE there), rebuilt from the pinned npm release by
``scripts/build_pose_models.py``. Every load checks the file's sha256 first, so a missing, truncated or
altered file is refused with a message naming it, never half-run. The same ONNX graphs build TensorRT engines
on a GPU like the body network's.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from whmr_core.runtime.engines import EngineError

__all__ = ["ASSET_DIR", "POSE_MODELS", "PoseModelFile", "load_pose_session", "verified_path"]

ASSET_DIR = Path(__file__).resolve().parents[1] / "assets" / "pose_models"


@dataclass(frozen=True)
class PoseModelFile:
    name: str
    sha256: str
    upstream: str  # where the weights come from (the TF.js model's ``generatedBy``)
    licence: str

    @property
    def path(self) -> Path:
        return ASSET_DIR / f"{self.name}.onnx"


POSE_MODELS: dict[str, PoseModelFile] = {
    m.name: m
    for m in (
        PoseModelFile(
            "movenet-multipose",
            "8d0e9ea63f42248335fd83df94e6ad29a41678f2f17227ee123b8b4b4b4831a7",
            "Google MoveNet MultiPose Lightning v1 "
            "(tfhub.dev/google/tfjs-model/movenet/multipose/lightning/1)",
            "Apache-2.0",
        ),
        PoseModelFile(
            "movenet-thunder",
            "ce966d3093f9c249c21ff6761f979108c4c5bc1736f4a98130e46e565beac882",
            "Google MoveNet SinglePose Thunder v4 (tfhub.dev/google/movenet/singlepose/thunder/4)",
            "Apache-2.0",
        ),
        PoseModelFile(
            "blazepose-full",
            "8b4065a82f71c79c905c97b2aaeae780926015f0fafd146041c7fb912c544dd7",
            "MediaPipe BlazePose GHUM full landmark model (github.com/google/mediapipe, pose_detection)",
            "Apache-2.0",
        ),
        PoseModelFile(
            "nanodet",
            "a81858b35bea3c2331ae6055ed6e1aa822fb2ace1e6430ff0dea20654d7c6125",
            "NanoDet, 416 input, COCO's 80 classes (github.com/RangiLyu/nanodet)",
            "Apache-2.0",
        ),
    )
}

_VERIFIED: dict[Path, str] = {}  # path -> the hash it had when checked (checked once per process)


def verified_path(name: str) -> Path:
    """The model's file after checking its sha256; ``EngineError`` names the file and what is wrong."""
    if name not in POSE_MODELS:
        raise EngineError(f"pose model {name!r}: unknown (shipped: {', '.join(sorted(POSE_MODELS))})")
    model = POSE_MODELS[name]
    path = model.path
    if _VERIFIED.get(path) == model.sha256:
        return path
    if not path.is_file():
        raise EngineError(
            f"pose model {name}: {path} is missing "
            "(a broken install? rebuild it with scripts/build_pose_models.py)"
        )
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    if h.hexdigest() != model.sha256:
        raise EngineError(
            f"pose model {name}: {path} has sha256 {h.hexdigest()[:16]}..., expected {model.sha256[:16]}... "
            "(altered or truncated file; restore it from git or rebuild with scripts/build_pose_models.py)"
        )
    _VERIFIED[path] = model.sha256
    return path


def load_pose_session(name: str, threads: int | None = None):
    """An ONNX Runtime CPU session of the checked file. ``threads``: intra-op threads (None: ONNX Runtime's
    default, one per core: MultiPose on a 320x240 frame 19 ms with 2 against 30-37 ms with 1); idle threads
    sleep instead of spinning, as the body network's (``OnnxRuntimeEngine``), so they leave the host's
    threads their core."""
    import onnxruntime as ort

    path = verified_path(name)
    options = ort.SessionOptions()
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if threads:
        options.intra_op_num_threads = int(threads)
    options.inter_op_num_threads = 1
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own exception types
        raise EngineError(f"pose model {name}: {path} could not be loaded: {e}") from e
