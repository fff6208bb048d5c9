"""The rclpy node's wiring (needs ROS 2: skipped where rclpy is not installed)."""

from __future__ import annotations

import threading

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")


def test_image_in_bodies_out_with_the_image_stamp():
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from sensor_msgs.msg import Image
    from whmr_fakes import TOPOLOGY, FakeEngine, SeenBody

    from whmr_ros.conversions import numpy_to_image
    from whmr_ros.message_kit import RclpyKit
    from whmr_ros.node import WhmrNode

    rclpy.init()
    try:
        engine = FakeEngine((64, 48), focal=60.0)
        engine.bodies = [SeenBody(np.array([0.0, 0.0, 3.0]))]
        from rclpy.parameter import Parameter

        # Blank images: no detector (the whole image is the person, as without a detections topic).
        no_detector = Parameter("pipeline.detector", Parameter.Type.STRING, "none")
        node = WhmrNode(engine=engine, topology=TOPOLOGY, parameter_overrides=[no_detector])
        probe = Node("probe")
        got, done = [], threading.Event()
        from whmr_ros.msg import BodyMeshArray

        probe.create_subscription(BodyMeshArray, "/whmr/bodies", lambda m: (got.append(m), done.set()), 10)
        pub = probe.create_publisher(Image, "/image", rclpy.qos.qos_profile_sensor_data)
        kit = RclpyKit()
        img = numpy_to_image(np.zeros((48, 64, 3), np.uint8), "rgb8", 1_234_000_005, "cam_optical", kit.types,
                             data_factory=kit.uint8s)  # fmt: skip
        ex = SingleThreadedExecutor()
        ex.add_node(node)
        ex.add_node(probe)
        for _ in range(200):
            pub.publish(img)
            ex.spin_once(timeout_sec=0.05)
            if done.is_set():
                break
        assert done.is_set(), "no BodyMeshArray received"
        msg = got[0]
        assert (msg.header.stamp.sec, msg.header.stamp.nanosec) == (1, 234_000_005)
        assert msg.header.frame_id == "cam_optical_gravity" and len(msg.bodies) == 1
        node._teardown_active()
    finally:
        rclpy.try_shutdown()
