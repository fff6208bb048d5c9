"""AGORA's own annotation files: the Camera DataFrames with joints (``Cam/train_{0..9}_withjv.pkl``,
``validation_*_withjv.pkl``, SMPL or SMPL-X joints; AGORA's docs/gt_dataframe.md), pickled pandas DataFrames
with one row per image and one list entry per person. Pass a file or a folder of them.

They are read without pandas and without running anything the file names: ``safe_pickle`` with pandas'
DataFrame, BlockManager, block and Index globals replaced by builders of plain lists (``_PANDAS``); any other
global is refused with its name. DataFrames pickled by pandas 1.x and 2.x (object columns) are read; pandas
3's string columns are not (AGORA's files predate them).

| column | per | whmr |
|---|---|---|
| imgPath | image | ``imgname`` (or its ``_1280x720.png`` twin: below) |
| gt_joints_2d | person: (45,2) SMPL, (127,2) SMPL-X | ``part`` in layout smpl45 (confidence 1 in the image) |
| gt_joints_3d | person: (J,3), camera frame, m | ``S`` in layout smpl45 |
| isValid | person | people AGORA marks not valid (over 90 % occluded) are left out |
| (scene, from imgPath) | image | ``cam_int``: AGORA's focal length, 36 x 20.25 mm sensor, centred |
| (scene, from imgPath) | image | ``cam_rotation``, ``gravity_cam``: the camera's pitch (no roll) |
| X, Y, Z, Yaw, camX, camY, camZ, camYaw | | ignored: the joints are already in the camera |
| gender, kid, occlusion, gt_path_smpl(x), gt_verts | | ignored: SMPL fits are separate files |

Cameras (agora_evaluation's ``projection.py``, by what the image name holds): cam00-cam03 18 mm pitched down
30 deg, hdri 50 mm level, ag2 28 mm pitched down 15 deg, any other scene 28 mm level. gt_joints_2d are given
for the 3840x2160 images; when the images folder holds AGORA's 1280x720 ones (``<name>_1280x720.png``), those
are named and every pixel quantity is divided by 3. SMPL-X joints are read into smpl45: their 22 body joints,
face, feet and fingertip points (SMPL's two hand joints unlabelled).

``center``/``scale``: the box of the person's SMPL-24 and face points inside the image, 1.2 times its longer
side; people with fewer than 8 of them inside are left out, as BEDLAM's AGORA preprocessing does. The camera
table is AGORA's (agora_evaluation ``projection.py``, the scene from the image name).
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from whmr_core.body.joint_layouts import SMPLX_EXTRA_JOINTS
from whmr_core.data.annotations import AnnotationError, Annotations, annotations_from_columns
from whmr_core.data.cameras import camera_rotation
from whmr_core.data.formats.base import BOX_MARGIN
from whmr_core.data.safe_pickle import UnsafePickleError, safe_loads

__all__ = ["FILES", "KEYS", "LeftOut", "is_agora", "load_dataframe", "read", "read_counted"]

FILES = "AGORA Camera DataFrames with joints (Cam/*_withjv.pkl, pickled pandas)"
KEYS = {
    "imgPath": "imgname (or its _1280x720.png twin, labels / 3)",
    "gt_joints_2d": "part (smpl45; SMPL-X's 127 read into it)",
    "gt_joints_3d": "S (camera frame, m)",
    "isValid": "people not valid (> 90 % occluded) left out",
    "(scene from imgPath)": "cam_int (AGORA's focal, sensor 36 x 20.25 mm), cam_rotation / gravity (pitch)",
    "X, Y, Z, Yaw, camX, camY, camZ, camYaw": "ignored (joints already in the camera)",
    "gender, kid, occlusion, gt_path_smpl, gt_path_smplx, gt_verts": "ignored (no SMPL labels)",
}

IMAGE_WH = (3840, 2160)  # the resolution gt_joints_2d is given at
SMALL_SUFFIX, SMALL_FACTOR = "_1280x720.png", 1.0 / 3.0  # AGORA's other image set
SENSOR_MM = (36.0, 20.25)
MIN_JOINTS_IN_IMAGE = 8  # BEDLAM's AGORA preprocessing
# AGORA's cameras by scene (image name): focal (mm), pitch (deg, positive looks down); first match wins.
_SCENE_CAMERAS: tuple[tuple[str, float, float], ...] = (
    ("hdri", 50.0, 0.0),
    *((f"cam0{k}", 18.0, 30.0) for k in range(4)),
    ("ag2", 28.0, 15.0),
)
_OTHER_SCENES = (28.0, 0.0)
_BOX_POINTS = 29  # smpl45's SMPL-24 and face points
# SMPL-X joints read into smpl45: the 22 body joints, none for SMPL's hands, then face, feet, fingertips.
_SMPLX_TO_SMPL45: tuple[int | None, ...] = (*range(22), None, None, *SMPLX_EXTRA_JOINTS)


# --- the DataFrame's pickle, rebuilt as plain data -------------------------------------------------------


class _Frame:
    """pandas.DataFrame: its state dict holds the block manager (``_mgr``; ``_data`` before pandas 1.1)."""

    state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.state = state


class _Manager:
    """pandas' BlockManager: ``(blocks, axes)`` (pandas >= 1.3), or the 0.14.1 state of older ones."""

    args: tuple = ()
    state: Any = None

    def __init__(self, *args: Any) -> None:
        self.args = args

    def __setstate__(self, state: Any) -> None:
        self.state = state


@dataclass
class _Block:
    values: Any  # (columns in the block, rows)
    locs: Any  # the block's column positions: a slice or an integer array


class _IndexKind:
    """pandas' Index classes: only their names are needed."""


def _unpickle_block(values: Any, locs: Any, ndim: int = 2) -> _Block:
    return _Block(values, locs)


def _new_index(kind: Any, d: Any) -> list:
    if not isinstance(d, dict):
        raise ValueError("an Index without its data")
    if "data" in d:
        return list(np.asarray(d["data"]).tolist())
    return list(range(int(d["start"]), int(d["stop"]), int(d["step"])))  # RangeIndex


_PANDAS: dict[tuple[str, str], Any] = {
    ("pandas.core.frame", "DataFrame"): _Frame,
    ("pandas.core.internals.managers", "BlockManager"): _Manager,
    ("pandas._libs.internals", "_unpickle_block"): _unpickle_block,
    ("pandas.core.indexes.base", "_new_Index"): _new_index,
    **{
        (module, name): _IndexKind
        for module, name in (
            ("pandas.core.indexes.base", "Index"),
            ("pandas.core.indexes.range", "RangeIndex"),
            ("pandas.core.indexes.numeric", "Int64Index"),
            ("pandas", "Index"),
            ("pandas", "RangeIndex"),
        )
    },
}


def _blocks_and_axes(mgr: _Manager) -> tuple[list[_Block], list]:
    if mgr.args:
        blocks, axes = mgr.args[0], mgr.args[1]
        return list(blocks), list(axes)
    state = mgr.state
    if isinstance(state, tuple) and len(state) >= 4 and isinstance(state[3], dict) and "0.14.1" in state[3]:
        legacy = state[3]["0.14.1"]
        return [_Block(b["values"], b["mgr_locs"]) for b in legacy["blocks"]], list(legacy["axes"])
    raise ValueError("a block manager of an unknown layout")


def load_dataframe(path: str | Path) -> dict[str, list]:
    """The columns of a pickled pandas DataFrame (name -> one value per row), rebuilt without pandas."""
    path = Path(path)
    try:
        frame = safe_loads(path.read_bytes(), substitutes=_PANDAS)
    except UnsafePickleError as e:
        raise AnnotationError(path, None, None, f"not an AGORA DataFrame: {e}") from e
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as e:
        raise AnnotationError(path, None, None, f"not a readable pickle ({type(e).__name__}: {e})") from e
    except OSError as e:
        raise AnnotationError(path, None, None, f"unreadable ({e})") from e
    try:
        if not isinstance(frame, _Frame) or not isinstance(frame.state, dict):
            raise ValueError(f"the pickle holds a {type(frame).__name__}, not a DataFrame")
        mgr = frame.state.get("_mgr", frame.state.get("_data"))
        if not isinstance(mgr, _Manager):
            raise ValueError("a DataFrame without its block manager")
        blocks, axes = _blocks_and_axes(mgr)
        names, rows = [str(c) for c in axes[0]], len(axes[1])
        columns: dict[str, list] = {}
        for block in blocks:
            values = block.values
            if not isinstance(values, np.ndarray) or values.ndim != 2 or values.shape[1] != rows:
                raise ValueError(f"a column block that is not a 2-D array of {rows} rows")
            locs = block.locs
            where = range(len(names))[locs] if isinstance(locs, slice) else np.asarray(locs).tolist()
            for k, col in zip(where, values, strict=True):
                columns[names[k]] = list(col)
    except (ValueError, TypeError, KeyError, IndexError) as e:
        raise AnnotationError(path, None, None, f"not an AGORA DataFrame ({e})") from e
    return columns


# --- AGORA's labels -------------------------------------------------------------------------------------


def scene_camera(image_name: str) -> tuple[float, float]:
    """Focal length (mm) and pitch (deg, positive looks down) of the camera of AGORA image ``image_name``."""
    return next(((f, p) for key, f, p in _SCENE_CAMERAS if key in image_name), _OTHER_SCENES)


def _agora_files(path: Path) -> list[Path]:
    return [path] if path.is_file() else sorted(path.glob("*.pkl"))


def is_agora(path: Path) -> bool:
    return path.suffix == ".pkl" or (path.is_dir() and any(path.glob("*.pkl")))


def _small_images(first_image: str, images: Path | None) -> bool:
    """Whether ``images`` holds AGORA's 1280x720 images (``<name>_1280x720.png``) rather than the 4K ones."""
    if images is None or (images / first_image).exists():
        return False
    return (images / first_image.replace(".png", SMALL_SUFFIX)).exists()


@dataclass(frozen=True)
class LeftOut:
    """People of the files that are not rows of the annotations, and why."""

    not_valid: int = 0
    few_joints_in_image: int = 0


def _smpl45(joints: np.ndarray, path: Path, row: int, column: str) -> tuple[np.ndarray, np.ndarray]:
    """(J,C) SMPL (45) or SMPL-X (127) joints -> (45,C) smpl45 joints and whether each is labelled."""
    joints = np.asarray(joints, dtype=np.float64)
    if joints.ndim != 2 or joints.shape[0] not in (45, 127):
        raise AnnotationError(
            path, row, column, f"expected (45, C) SMPL or (127, C) SMPL-X joints, got {joints.shape}"
        )
    if joints.shape[0] == 45:
        return joints, np.ones(45, bool)
    out = np.zeros((45, joints.shape[1]))
    labelled = np.array([k is not None for k in _SMPLX_TO_SMPL45])
    out[labelled] = joints[[k for k in _SMPLX_TO_SMPL45 if k is not None]]
    return out, labelled


def read_counted(path: str | Path, images: str | Path | None = None) -> tuple[Annotations, LeftOut]:
    """The people of one DataFrame file or of every ``*.pkl`` in a folder, and how many were left out.
    ``images``: the image folder (decides between the 4K and the 1280x720 images)."""
    path = Path(path)
    files = _agora_files(path)
    if not files:
        raise AnnotationError(path, None, None, "no AGORA DataFrame (*.pkl) found")
    rows: dict[str, list] = {
        k: [] for k in ("imgname", "center", "scale", "part", "S", "cam_int", "cam_rotation", "gravity_cam")
    }
    not_valid = few = 0
    factor: float | None = None
    for file in files:
        cols = load_dataframe(file)
        missing = [c for c in ("imgPath", "isValid", "gt_joints_2d", "gt_joints_3d") if c not in cols]
        if missing:
            raise AnnotationError(
                file, None, missing[0],
                "missing: use the Camera DataFrames with joints (*_withjv.pkl), or add the joints with "
                "agora_evaluation's project_joints",
            )  # fmt: skip
        for i, name in enumerate(cols["imgPath"]):
            name = str(name)
            if factor is None:
                factor = (
                    SMALL_FACTOR if _small_images(name, None if images is None else Path(images)) else 1.0
                )
            w, h = IMAGE_WH[0] * factor, IMAGE_WH[1] * factor
            focal_mm, pitch = scene_camera(name)
            k = np.array(
                [[focal_mm / SENSOR_MM[0] * w, 0, w / 2], [0, focal_mm / SENSOR_MM[1] * h, h / 2], [0, 0, 1]]
            )
            r_c = camera_rotation(pitch, 0.0)
            imgname = name.replace(".png", SMALL_SUFFIX) if factor != 1.0 else name
            people = (cols["isValid"][i], cols["gt_joints_2d"][i], cols["gt_joints_3d"][i])
            if (
                not all(isinstance(c, list | tuple | np.ndarray) for c in people)
                or len({len(c) for c in people}) != 1
            ):
                raise AnnotationError(
                    file, i, "isValid", "isValid, gt_joints_2d, gt_joints_3d: one entry per person"
                )
            for valid, j2d, j3d in zip(*people, strict=True):
                if not bool(valid):
                    not_valid += 1
                    continue
                uv, labelled = _smpl45(j2d, file, i, "gt_joints_2d")
                xyz, _ = _smpl45(j3d, file, i, "gt_joints_3d")
                uv = uv[:, :2] * factor
                inside = labelled & (uv[:, 0] >= 0) & (uv[:, 0] < w) & (uv[:, 1] >= 0) & (uv[:, 1] < h)
                box = uv[:_BOX_POINTS][inside[:_BOX_POINTS]]
                if len(box) < MIN_JOINTS_IN_IMAGE:
                    few += 1
                    continue
                lo, hi = box.min(axis=0), box.max(axis=0)
                rows["imgname"].append(imgname)
                rows["center"].append((lo + hi) / 2)
                rows["scale"].append(float((hi - lo).max()) * BOX_MARGIN / 200.0)
                rows["part"].append(np.concatenate([uv, inside[:, None]], axis=1))
                rows["S"].append(np.concatenate([xyz[:, :3], labelled[:, None]], axis=1))
                rows["cam_int"].append(k)
                rows["cam_rotation"].append(r_c)
                rows["gravity_cam"].append(r_c[:, 1])
    if not rows["imgname"]:
        raise AnnotationError(path, None, None, "no person with enough joints in the image (isValid people)")
    columns = {k: np.asarray(v) for k, v in rows.items()}
    ann = annotations_from_columns(columns, path=path, joints_layout="smpl45", format="agora")
    return ann, LeftOut(not_valid, few)


def read(path: str | Path, images: str | Path | None = None) -> Annotations:
    """``read_counted`` without the counts."""
    return read_counted(path, images)[0]
