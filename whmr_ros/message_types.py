"""whmr's own ROS 2 message types for the pure-Python ``rosbags`` library (no ROS needed).

The ``.msg`` files are the single source: rosidl generates the ROS types from them at ``colcon build``,
and this module registers the same definitions into a rosbags typestore, so CDR bytes match ROS 2's.
"""

from __future__ import annotations

import os
import sys
from functools import lru_cache
from pathlib import Path

PACKAGE = "whmr_ros"
MESSAGE_NAMES = ("BodyMesh", "BodyMeshArray", "BodyModelTopology")


# vision_msgs 4.x (ros-perception/vision_msgs, Humble and Jazzy): the types Detection2DArray needs. rosbags'
# stores do not carry them, and whmr reads and writes detector boxes in bags.
VISION_MSGS = {
    "vision_msgs/msg/Point2D": "float64 x\nfloat64 y\n",
    "vision_msgs/msg/Pose2D": "vision_msgs/Point2D position\nfloat64 theta\n",
    "vision_msgs/msg/BoundingBox2D": "vision_msgs/Pose2D center\nfloat64 size_x\nfloat64 size_y\n",
    "vision_msgs/msg/ObjectHypothesis": "string class_id\nfloat64 score\n",
    "vision_msgs/msg/ObjectHypothesisWithPose": (
        "vision_msgs/ObjectHypothesis hypothesis\ngeometry_msgs/PoseWithCovariance pose\n"
    ),
    "vision_msgs/msg/Detection2D": (
        "std_msgs/Header header\nvision_msgs/ObjectHypothesisWithPose[] results\n"
        "vision_msgs/BoundingBox2D bbox\nstring id\n"
    ),
    "vision_msgs/msg/Detection2DArray": "std_msgs/Header header\nvision_msgs/Detection2D[] detections\n",
}


def _candidate_dirs() -> list[Path]:
    here = Path(__file__).resolve().parent
    dirs = [here.parent / "msg"]  # source tree / editable install
    dirs.append(Path(sys.prefix) / "share" / PACKAGE / "msg")  # pip install (setup.py data_files)
    for prefix in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep):
        if prefix:
            dirs.append(Path(prefix) / "share" / PACKAGE / "msg")  # colcon install
    return dirs


def msg_dir() -> Path:
    """The directory holding whmr's ``.msg`` files; FileNotFoundError lists where it looked."""
    tried = _candidate_dirs()
    for d in tried:
        if all((d / f"{name}.msg").is_file() for name in MESSAGE_NAMES):
            return d
    raise FileNotFoundError(
        "whmr message definitions (BodyMesh.msg, ...) not found; looked in: " + ", ".join(map(str, tried))
    )


def message_definitions() -> dict[str, str]:
    """Full type name ("whmr_ros/msg/BodyMesh") -> .msg text."""
    d = msg_dir()
    return {f"{PACKAGE}/msg/{n}": (d / f"{n}.msg").read_text(encoding="utf-8") for n in MESSAGE_NAMES}


@lru_cache(maxsize=4)
def typestore(distro: str = "ROS2_JAZZY"):
    """A rosbags typestore of ``distro`` (e.g. ROS2_HUMBLE, ROS2_JAZZY) with whmr's messages (and
    vision_msgs' detection types, where the store lacks them) added."""
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    try:
        store = get_typestore(getattr(Stores, distro))
    except AttributeError:
        known = ", ".join(s.name for s in Stores)
        raise ValueError(f"distro: unknown rosbags store {distro!r}; known: {known}") from None
    types: dict = {}
    extra = {k: v for k, v in VISION_MSGS.items() if k not in store.types}
    for name, text in {**message_definitions(), **extra}.items():
        types.update(get_types_from_msg(text, name))
    store.register(types)
    return store
