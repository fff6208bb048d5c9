"""What whmr's bags look like: default topic names, the offered QoS and the rosbag2 metadata version.

One home for the sample bags (``synth_bag``) and the bag runner's input defaults and output, so a bag
written by one is read by the other without options.
"""

from __future__ import annotations

from typing import Any

__all__ = ["BAG_VERSION", "INPUT_TOPICS", "OUTPUT_TOPICS", "qos_profiles"]

# rosbag2 metadata version 9 (Jazzy); `ros2 bag play` on Humble needs `ros2 bag reindex` first.
BAG_VERSION = 9

INPUT_TOPICS = {
    "image": "/camera/image_raw",
    "camera_info": "/camera/camera_info",
    "imu": "/imu/data",
    "tf": "/tf",
    "tf_static": "/tf_static",
    "detections": "/detections",
}
# The node's topics under its default name and namespace (``~/bodies`` of node ``whmr``).
OUTPUT_TOPICS = {
    "bodies": "/whmr/bodies",
    "topology": "/whmr/body_topology",
    "markers": "/whmr/markers",
    "overlay": "/whmr/overlay",
    "tf": "/tf",
    "diagnostics": "/diagnostics",
}


def qos_profiles(latched: bool = False) -> list[Any]:
    """The offered QoS written with a connection: reliable, keep last; latched ones transient local
    (depth 1), as the node offers ``~/body_topology`` and a robot offers ``/tf_static``."""
    from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime

    zero = QosTime(0, 0)
    durability = QosDurability.TRANSIENT_LOCAL if latched else QosDurability.VOLATILE
    depth = 1 if latched else 10
    return [
        Qos(QosHistory.KEEP_LAST, depth, QosReliability.RELIABLE, durability, zero, zero,
            QosLiveliness.AUTOMATIC, zero, False)
    ]  # fmt: skip
