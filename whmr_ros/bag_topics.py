"""Which topics of a bag ``whmr bag`` reads, when the user named none: found by message type.

A topic the user names is used as given. Otherwise the default name is used when the bag has it with the
right type; else the one topic of that type, or, among several images/CameraInfos, the one pair that shares
a namespace (``/cam/color/image_raw`` with ``/cam/color/camera_info``). Detections are used when the bag has
exactly one ``vision_msgs/Detection2DArray`` topic. Every choice is reported, as is every ambiguity left
alone (the user then passes the flag).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath

__all__ = ["ROLE_TYPES", "TopicChoice", "select_topics"]

ROLE_TYPES = {
    "image": "sensor_msgs/msg/Image",
    "camera_info": "sensor_msgs/msg/CameraInfo",
    "imu": "sensor_msgs/msg/Imu",
    "detections": "vision_msgs/msg/Detection2DArray",
}


@dataclass
class TopicChoice:
    topics: dict[str, str]  # role -> topic ("" = none)
    notes: list[str] = field(default_factory=list)  # what was picked and why, for the user
    errors: list[str] = field(default_factory=list)  # the run cannot start (no usable image topic)


def _namespace(topic: str) -> str:
    return str(PurePosixPath(topic).parent)


def select_topics(
    available: Mapping[str, str], given: Mapping[str, str | None], defaults: Mapping[str, str]
) -> TopicChoice:
    """``available``: topic -> message type; ``given``: role -> the user's topic, or None for "find it";
    ``defaults``: role -> default topic name ("" for detections: none)."""
    choice = TopicChoice({})
    for role, msgtype in ROLE_TYPES.items():
        named = given.get(role)
        if named is not None:
            choice.topics[role] = named
            continue
        default = defaults.get(role, "")
        if default and available.get(default) == msgtype:
            choice.topics[role] = default
            continue
        found = sorted(t for t, ty in available.items() if ty == msgtype)
        if not found and default in available:
            # The default name holds another type: keep it, the bag runner refuses it with that reason.
            choice.topics[role] = default
            continue
        pick, why = (found[0], f"the bag's only {msgtype} topic") if len(found) == 1 else ("", "")
        if not pick and role == "camera_info" and len(found) > 1 and choice.topics.get("image"):
            same = [t for t in found if _namespace(t) == _namespace(choice.topics["image"])]
            pick, why = (same[0], "beside the image topic") if len(same) == 1 else ("", "")
        flag = "--" + role.replace("_", "-")
        if pick:
            choice.notes.append(f"{role}: {pick} ({why}{f'; {default} absent' if default else ''})")
        elif found:
            text = f"{len(found)} {msgtype} topics {found}: pass {flag}"
            (choice.errors if role == "image" else choice.notes).append(f"{role}: none picked, {text}")
        elif role == "image":
            choice.errors.append(f"no {msgtype} topic in the bag (topics: {sorted(available)})")
        elif role != "detections":
            choice.notes.append(f"{role}: none (the bag has no {msgtype} topic)")
        choice.topics[role] = pick
    return choice
