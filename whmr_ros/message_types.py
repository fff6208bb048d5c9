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
    """A rosbags typestore of ``distro`` (e.g. ROS2_HUMBLE, ROS2_JAZZY) with whmr's messages added."""
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    try:
        store = get_typestore(getattr(Stores, distro))
    except AttributeError:
        known = ", ".join(s.name for s in Stores)
        raise ValueError(f"distro: unknown rosbags store {distro!r}; known: {known}") from None
    types: dict = {}
    for name, text in message_definitions().items():
        types.update(get_types_from_msg(text, name))
    store.register(types)
    return store
