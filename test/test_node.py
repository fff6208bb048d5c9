"""The rclpy node over DDS in this process: parameters, lifecycle services, topics, TF, diagnostics, bad input

Needs a sourced ROS 2 (skipped with the reason otherwise) and the colcon-built messages (``whmr_msgs``).
The engine is the fake one (exact, instant), so what is checked is the node's wiring, not the network.
"""

from __future__ import annotations

import contextlib
import math
import threading

import numpy as np
import pytest

pytestmark = pytest.mark.usefixtures("whmr_msgs")

W, H = 64, 48
K = np.array([[60.0, 0.0, 32.0], [0.0, 60.0, 24.0], [0.0, 0.0, 1.0]])
T0 = 1_700_000_000_000_000_000
FRAME_NS = 33_333_333
CAMERA = "cam_optical"
CAMERA_FROM_IMU_XYZW = (-0.5, 0.5, -0.5, 0.5)  # the optical frame's pose in a level IMU (x fwd, z up)


def _rclpy():
    return pytest.importorskip("rclpy")


@contextlib.contextmanager
def _rig(autostart: bool = True, **overrides):
    """The node (fake engine), a probe node with the robot's publishers, one executor; torn down after."""
    rclpy = _rclpy()
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter import Parameter
    from whmr_fakes import TOPOLOGY, FakeEngine, SeenBody

    from whmr_ros.node import WhmrNode

    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    try:
        engine = FakeEngine((W, H), focal=60.0)
        engine.bodies = [SeenBody(np.array([0.0, 0.5, 3.0]))]
        # Blank images: no detector (the whole image is the person, as without a detections topic).
        params = [Parameter("autostart", value=autostart), Parameter("pipeline.detector", value="none")]
        params += [Parameter(k.replace("__", "."), value=v) for k, v in overrides.items()]
        node = WhmrNode(engine=engine, topology=TOPOLOGY, context=ctx, parameter_overrides=params)
        probe = _Probe(ctx)
        ex = SingleThreadedExecutor(context=ctx)
        ex.add_node(node)
        ex.add_node(probe.node)
        probe.ex = ex
        probe.whmr = node
        yield probe
        ex.shutdown()
        node.destroy_node()
        probe.node.destroy_node()
    finally:
        rclpy.try_shutdown(context=ctx)


class _Probe:
    """The robot side: publishes camera, CameraInfo, IMU and the static camera <- IMU transform."""

    def __init__(self, ctx) -> None:
        from rclpy.node import Node
        from rclpy.qos import DurabilityPolicy, QoSProfile, qos_profile_sensor_data
        from sensor_msgs.msg import CameraInfo, Image, Imu
        from tf2_msgs.msg import TFMessage

        from whmr_ros.message_kit import RclpyKit

        self.kit = RclpyKit()
        self.node = Node("probe", context=ctx)
        sensor = qos_profile_sensor_data
        self.image = self.node.create_publisher(Image, "/image", sensor)
        self.info = self.node.create_publisher(CameraInfo, "/camera_info", sensor)
        self.imu = self.node.create_publisher(Imu, "/imu", sensor)
        latched = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.tf_static = self.node.create_publisher(TFMessage, "/tf_static", latched)
        self.got: dict[str, list] = {}
        self.imu_t = T0 - 100_000_000

    def listen(self, topic: str, msg_type, qos=10) -> list:
        out = self.got.setdefault(topic, [])
        self.node.create_subscription(msg_type, topic, out.append, qos)
        return out

    def until(self, condition, timeout_s: float = 10.0) -> bool:
        from ros_helpers import spin_until

        return spin_until(self.ex, condition, timeout_s)

    def robot(self) -> None:
        from whmr_fakes import static_tf_msg

        self.tf_static.publish(static_tf_msg(self.kit, T0, "imu", CAMERA, CAMERA_FROM_IMU_XYZW))

    def image_msg(self, stamp: int, encoding: str = "rgb8"):
        from whmr_ros.conversions import numpy_to_image

        channels = {"mono8": 1, "rgb8": 3, "bgr8": 3}[encoding]
        pixels = np.full((H, W, channels), 90, np.uint8).squeeze()
        return numpy_to_image(pixels, encoding, stamp, CAMERA, self.kit.types, data_factory=self.kit.uint8s)

    def frame(self, k: int, encoding: str = "rgb8", image=None) -> int:
        """IMU at 200 Hz up to the image stamp, CameraInfo, then the image; returns its stamp."""
        from whmr_fakes import camera_info_msg, imu_msg

        stamp = T0 + k * FRAME_NS
        while self.imu_t <= stamp:
            self.imu.publish(imu_msg(self.kit, self.imu_t, quat_xyzw=(0.0, 0.0, 0.0, 1.0)))
            self.imu_t += 5_000_000
        self.info.publish(camera_info_msg(self.kit, K, (W, H), stamp, CAMERA))
        self.image.publish(image if image is not None else self.image_msg(stamp, encoding))
        return stamp

    def answered(self, bodies: list, stamp: int, timeout_s: float = 10.0) -> bool:
        return self.until(lambda: any(_stamp(m) == stamp for m in bodies), timeout_s)


def _subs(node) -> int:
    return len(list(node.subscriptions))


def _stamp(msg) -> int:
    return msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec


def _lifecycle(probe, transition: str) -> bool:
    from lifecycle_msgs.msg import Transition
    from lifecycle_msgs.srv import ChangeState

    client = probe.node.create_client(ChangeState, "/whmr/change_state")
    assert probe.until(client.service_is_ready), "no /whmr/change_state service"
    req = ChangeState.Request()
    req.transition.id = getattr(Transition, f"TRANSITION_{transition.upper()}")
    future = client.call_async(req)
    assert probe.until(future.done), f"{transition}: no answer"
    probe.node.destroy_client(client)
    return future.result().success


def _state(probe) -> str:
    from lifecycle_msgs.srv import GetState

    client = probe.node.create_client(GetState, "/whmr/get_state")
    assert probe.until(client.service_is_ready)
    future = client.call_async(GetState.Request())
    assert probe.until(future.done)
    probe.node.destroy_client(client)
    return future.result().current_state.label


def test_every_parameter_declared_with_its_type_description_and_default():
    from rcl_interfaces.msg import ParameterType
    from rclpy.parameter import Parameter

    from whmr_ros.params import parameter_specs

    kinds = {
        "bool": ParameterType.PARAMETER_BOOL,
        "integer": ParameterType.PARAMETER_INTEGER,
        "double": ParameterType.PARAMETER_DOUBLE,
        "string": ParameterType.PARAMETER_STRING,
        "string_array": ParameterType.PARAMETER_STRING_ARRAY,
        "double_array": ParameterType.PARAMETER_DOUBLE_ARRAY,
    }
    with _rig(autostart=False) as probe:
        node = probe.whmr
        specs = parameter_specs()
        descriptors = node.describe_parameters([s.name for s in specs])
        for spec, d in zip(specs, descriptors, strict=True):
            assert d.type == kinds[spec.kind], spec.name
            assert d.description == spec.description and d.description, spec.name
            value = node.get_parameter(spec.name).value
            overridden = ("autostart", "pipeline.detector")  # set by _rig
            assert (
                spec.name in overridden or (list(value) if "array" in spec.kind else value) == spec.default
            ), spec.name
        # The empty lists (the start-up crash: "parameter 'host.camera_from_imu' is not initialized")
        # are typed and readable, and a wrong type is refused by ROS rather than crashing configure.
        p = node.get_parameter("host.camera_from_imu")
        assert p.type_ == Parameter.Type.DOUBLE_ARRAY and list(p.value) == []
        result = node.set_parameters([Parameter("host.detection_class_ids", value=[1.0])])[0]
        assert not result.successful
        ranged = node.describe_parameters(["threads"])[0]
        assert ranged.integer_range and ranged.integer_range[0].from_value == 0


def test_lifecycle_through_the_standard_services_without_leaks():
    with _rig(autostart=False) as probe:
        node = probe.whmr
        assert _state(probe) == "unconfigured" and _subs(node) == 0
        assert _lifecycle(probe, "configure") and _state(probe) == "inactive"
        configured = _subs(node)  # the TF listener's /tf and /tf_static
        assert configured == 2
        assert _lifecycle(probe, "activate") and _state(probe) == "active"
        topics = sorted(s.topic_name for s in node.subscriptions)
        assert topics == ["/camera_info", "/image", "/imu", "/tf", "/tf_static"]
        assert _lifecycle(probe, "deactivate") and _subs(node) == configured
        assert _lifecycle(probe, "cleanup") and _subs(node) == 0
        assert _state(probe) == "unconfigured"
        assert _lifecycle(probe, "configure") and _subs(node) == configured  # one listener
        assert _lifecycle(probe, "activate") and _subs(node) == 5
        assert _lifecycle(probe, "active_shutdown") and _state(probe) == "finalized"
        assert _subs(node) == 0


def test_whole_numbers_given_for_doubles_are_taken_as_doubles():
    # A params file with `marker_rate_hz: 5` or `parameter_gravity: [0, 1, 0]` made rclpy raise at start-up.
    with _rig(autostart=False, marker_rate_hz=5, host__parameter_gravity=[0, 1, 0]) as probe:
        node = probe.whmr
        assert node.get_parameter("marker_rate_hz").value == 5.0
        assert list(node.get_parameter("host.parameter_gravity").value) == [0.0, 1.0, 0.0]


def test_autostart_with_a_bad_parameter_stays_unconfigured_and_says_why():
    with _rig(autostart=True, pipeline__box_scale=-1.0) as probe:  # configure fails; no RCLError
        assert _state(probe) == "unconfigured"


def test_bodies_tf_topology_diagnostics_and_markers():
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.qos import DurabilityPolicy, QoSProfile
    from visualization_msgs.msg import MarkerArray
    from whmr_ros.msg import BodyMeshArray, BodyModelTopology

    with _rig() as probe:
        node = probe.whmr
        assert _state(probe) == "active"
        probe.robot()
        bodies = probe.listen("/whmr/bodies", BodyMeshArray)
        diagnostics = probe.listen("/diagnostics", DiagnosticArray)
        import tf2_ros

        tf = tf2_ros.Buffer()
        listener = tf2_ros.TransformListener(tf, probe.node)
        builds = []
        markers_of = node._host.markers
        node._host.markers = lambda *a, **kw: builds.append(1) or markers_of(*a, **kw)
        stamps = []
        for k, enc in enumerate(["rgb8", "bgr8", "mono8", "rgb8"]):
            stamps.append(probe.frame(k, enc))
            assert probe.answered(bodies, stamps[-1]), f"no bodies for image {k} ({enc})"
        got = [_stamp(m) for m in bodies]
        assert got == stamps  # one per processed image, stamped with it
        msg = bodies[-1]
        assert msg.header.frame_id == f"{CAMERA}_gravity" and len(msg.bodies) == 1
        assert msg.gravity_source == "imu_orientation"  # the static TF and the IMU made it in
        track = msg.bodies[0].track_id
        from rclpy.time import Time

        assert probe.until(lambda: tf.can_transform(CAMERA, f"whmr_body_{track}", Time()))
        assert tf.can_transform(CAMERA, f"{CAMERA}_gravity", Time())
        assert builds == []  # nobody listens to markers: none built

        markers = probe.listen("/whmr/markers", MarkerArray)
        assert probe.until(lambda: node._pubs["markers"].get_subscription_count() > 0)
        stamps.append(probe.frame(10))
        assert probe.until(lambda: len(markers) > 0) and len(builds) >= 1

        late = []  # a subscriber that joins after the topology went out still gets it (transient local)
        qos = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        probe.node.create_subscription(BodyModelTopology, "/whmr/body_topology", late.append, qos)
        assert probe.until(lambda: len(late) == 1)
        assert list(late[0].joint_names) == list(node._host.pipeline.topology.joint_names)

        assert probe.until(lambda: len(diagnostics) >= 3, timeout_s=5.0)
        period = (_stamp(diagnostics[2]) - _stamp(diagnostics[1])) * 1e-9
        assert abs(period - 1.0) < 0.25, period  # 1 Hz (diagnostics_period_s)
        status = {s.name: {kv.key: kv.value for kv in s.values} for s in diagnostics[-1].status}
        pipeline = status["whmr: pipeline"]
        assert {"fps", "latency_ms", "frames_in", "frames_processed", "frames_dropped_queue", "persons",
                "engine"} <= set(pipeline)  # fmt: skip
        assert int(pipeline["frames_processed"]) == len(bodies)
        # Each stage of the data path, timed per frame (markers only once someone subscribed to them).
        for stage in ("wait", "inputs", "convert", "pipeline", "build", "publish"):
            assert (
                float(pipeline[f"stage_{stage}_ms"]) >= 0.0 and float(pipeline[f"stage_{stage}_total_s"]) > 0
            )
        assert status["whmr: gravity"]["source"] == "imu_orientation"
        listener.unregister()


@pytest.mark.parametrize("ahead", [True, False], ids=["detect_ahead", "one thread"])
def test_detect_ahead_runs_the_detector_on_its_own_thread_and_answers_every_image(ahead):
    """With detect_ahead the built-in detector runs on the second thread ("whmr-detector") and its boxes
    reach the worker's Pipeline (the person is where the detector said); without it, on the worker."""
    from diagnostic_msgs.msg import DiagnosticArray
    from whmr_ros.msg import BodyMeshArray

    threads: list[str] = []
    box = np.array([[4.0, 6.0, 20.0, 30.0]])  # off the image centre (32, 24), where a whole-image box is

    def detector(image):
        threads.append(threading.current_thread().name)
        return box, np.array([0.9])

    with _rig(autostart=False, detect_ahead=ahead) as probe:
        node = probe.whmr
        assert _lifecycle(probe, "configure")
        node._host.pipeline.box_policy.detector = detector  # pipeline.detector none: a stand-in
        assert _lifecycle(probe, "activate")
        probe.robot()
        bodies = probe.listen("/whmr/bodies", BodyMeshArray)
        diagnostics = probe.listen("/diagnostics", DiagnosticArray)
        for k in range(3):
            stamp = probe.frame(k)
            assert probe.answered(bodies, stamp), f"no bodies for image {k}"
        assert [len(m.bodies) for m in bodies] == [1, 1, 1]
        for m in bodies:  # the detector's box, square about its centre
            assert (m.bodies[0].bbox_center_x, m.bodies[0].bbox_center_y) == pytest.approx(
                (12.0, 18.0), abs=0.5
            )
        assert set(threads) == {"whmr-detector" if ahead else "whmr-inference"} and len(threads) == 3
        assert probe.until(lambda: len(diagnostics) >= 1, timeout_s=5.0)
        status = {s.name: {kv.key: kv.value for kv in s.values} for s in diagnostics[-1].status}
        assert ("stage_detect_ms" in status["whmr: pipeline"]) == ahead
        assert _lifecycle(probe, "deactivate")  # both threads end
        assert node._worker is None and node._detector is None
        assert not any(t.name in ("whmr-detector", "whmr-inference") for t in threading.enumerate())


def test_bad_messages_dropped_with_a_throttled_warning_and_a_diagnostic():
    from diagnostic_msgs.msg import DiagnosticArray
    from sensor_msgs.msg import Imu
    from whmr_fakes import camera_info_msg, imu_msg
    from whmr_ros.msg import BodyMeshArray

    with _rig() as probe:
        node = probe.whmr
        probe.robot()
        warnings: list[str] = []
        node._host._warn = warnings.append
        bodies = probe.listen("/whmr/bodies", BodyMeshArray)
        diagnostics = probe.listen("/diagnostics", DiagnosticArray)
        assert probe.answered(bodies, probe.frame(0))

        unsupported = probe.image_msg(T0 + FRAME_NS)
        unsupported.encoding = "yuv422"
        truncated = probe.image_msg(T0 + 2 * FRAME_NS)
        truncated.data = truncated.data[: len(truncated.data) // 2]
        for n, bad in enumerate((unsupported, truncated), start=1):  # one at a time: the queue keeps one
            probe.image.publish(bad)
            assert probe.until(lambda n=n: node._host.dropped["image"] == n)
        nan_imu: Imu = imu_msg(probe.kit, probe.imu_t, quat_xyzw=(math.nan, 0.0, 0.0, 1.0),
                               accel=(math.nan, 0.0, 9.8))  # fmt: skip
        probe.imu.publish(nan_imu)
        probe.info.publish(camera_info_msg(probe.kit, np.zeros((3, 3)), (W, H), T0, CAMERA))
        assert probe.until(
            lambda: node._host.dropped["image"] == 2 and node._host.dropped["camera_info"] >= 1
        )
        assert probe.until(lambda: node._host.dropped["imu"] + node._host.gravity.rejected >= 1)

        stamp = probe.frame(5)  # good messages after the bad ones are still answered
        assert probe.answered(bodies, stamp)
        image_warnings = [w for w in warnings if w.startswith("image:")]
        assert len(image_warnings) == 1 and "yuv422" in image_warnings[0]  # throttled: 2 drops, 1 warning
        assert any(w.startswith("camera_info:") for w in warnings)

        n = len(diagnostics)
        assert probe.until(lambda: len(diagnostics) > n, timeout_s=3.0)
        inputs = next(s for s in diagnostics[-1].status if s.name == "whmr: inputs")
        values = {kv.key: kv.value for kv in inputs.values}
        assert int(values["dropped_image"]) == 2 and int(values["dropped_camera_info"]) >= 1
        assert inputs.level == b"\x01"  # WARN


def _publishers(node, topic: str) -> int:
    return sum(p.topic_name == topic for p in node.publishers)


@pytest.mark.parametrize(
    "bad", [{"host__parameter_gravity": [0.0, 0.0, 0.0]}, {"host__camera_from_imu": [0.0, 0.0, 0.0, 0.0]}]
)
def test_a_refused_configure_says_why_in_the_log_and_on_diagnostics_and_keeps_nothing(bad, capfd):
    """Issue 26: these values made the host raise outside configure's try: no word anywhere, and each try
    left a TF listener (/tf, /tf_static subscriptions) behind."""
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.parameter import Parameter

    name = next(iter(bad)).replace("__", ".")
    with _rig(autostart=False, **bad) as probe:
        node = probe.whmr
        diagnostics = probe.listen("/diagnostics", DiagnosticArray)
        for _ in range(3):
            assert not _lifecycle(probe, "configure") and _state(probe) == "unconfigured"
        assert _subs(node) == 0  # no TF listener left behind
        assert _publishers(node, "/tf") == 0 and _publishers(node, "/diagnostics") == 1  # the refusal's
        assert probe.until(lambda: any(s.name == "whmr: configure" for m in diagnostics for s in m.status))
        status = next(s for m in diagnostics for s in m.status if s.name == "whmr: configure")
        assert status.level == b"\x02" and status.message.startswith("configure failed: ")
        assert name.split(".")[1] in status.message
        assert (
            f"configure failed: {status.message.removeprefix('configure failed: ')}" in capfd.readouterr().err
        )
        # Set right, it configures; the refusal's publisher and timer are gone, the node's own remain.
        right = [0.0, 1.0, 0.0] if "gravity" in name else []
        assert node.set_parameters([Parameter(name, Parameter.Type.DOUBLE_ARRAY, right)])[0].successful
        assert _lifecycle(probe, "configure") and _state(probe) == "inactive"
        assert _subs(node) == 2 and _publishers(node, "/diagnostics") == 1


def test_a_value_refused_at_start_up_can_be_set_right_and_a_change_while_configured_is_refused():
    from rclpy.parameter import Parameter

    with _rig(autostart=True, pipeline__box_scale=-1.0) as probe:
        node = probe.whmr
        assert _state(probe) == "unconfigured"
        assert node.set_parameters([Parameter("pipeline.box_scale", value=1.2)])[0].successful
        assert _lifecycle(probe, "configure") and _state(probe) == "inactive"
        # Read at configure: a change now would do nothing; refused, saying what to do instead.
        result = node.set_parameters([Parameter("marker_rate_hz", value=2.0)])[0]
        assert not result.successful and "read at configure; the node is configured" in result.reason
        assert node.get_parameter("marker_rate_hz").value == 5.0
        assert _lifecycle(probe, "cleanup")
        assert node.set_parameters([Parameter("marker_rate_hz", value=2.0)])[0].successful


def test_the_params_loader_reads_scalars_as_rcl_does(tmp_path):
    """whmr bag's loader (config_io.ros_scalar) against rcl_yaml_param_parser on the same file."""
    rclpy = _rclpy()
    from rclpy.node import Node

    from whmr_core.config_io import ros_scalar

    values = ["3e-2", "010", "0x1F", "y", "Off", "1_000", ".inf", "99999999999999999999", "1.", "-.5",
              "1:20", "+5", "1e5", "0b11", "'7'", " 5"]  # fmt: skip
    path = tmp_path / "p.yaml"
    path.write_text("t:\n  ros__parameters:\n" + "".join(f"    p{i}: {v}\n" for i, v in enumerate(values)))
    ctx = rclpy.Context()
    rclpy.init(context=ctx, args=["--ros-args", "--params-file", str(path)])
    try:
        node = Node("t", context=ctx, automatically_declare_parameters_from_overrides=True)
        for i, v in enumerate(values):
            ros = node.get_parameter(f"p{i}").value
            ours = v.strip("'") if v.startswith("'") else ros_scalar(v)
            assert type(ours) is type(ros) and ours == ros, v
        node.destroy_node()
    finally:
        rclpy.try_shutdown(context=ctx)
