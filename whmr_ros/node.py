"""The whmr ROS 2 node (rclpy, Humble and Jazzy): wiring only, like image_pipeline's nodes.

Everything it calls is ROS-free and tested without ROS: ``WhmrHost`` (messages -> Frame -> messages),
``Pipeline`` (inference), ``outputs`` (message builders), ``params`` (the parameter table). This module
only declares parameters, subscribes, runs the worker thread and publishes.

Lifecycle (rclpy.lifecycle): configure reads parameters, loads the engine and body model and creates
publishers; activate subscribes and starts the worker; deactivate unsubscribes; cleanup releases the
engine. With ``autostart`` (default) the node configures and activates itself at start-up.

Threads: subscription callbacks only convert and buffer (IMU, CameraInfo, detections) or put the image
into a one-slot latest-frame queue (a replaced frame is counted as dropped); one worker thread runs the
pipeline and publishes, so a slow engine adds latency to nothing but itself and never blocks the executor.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
import rclpy
from rclpy.lifecycle import LifecycleNode, State, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data

from whmr_core.body.topology import BodyTopology
from whmr_core.gravity import as_rotation_matrix
from whmr_core.runtime.engines import Engine
from whmr_core.runtime.pipeline import Pipeline
from whmr_ros.host import WhmrHost
from whmr_ros.message_kit import RclpyKit
from whmr_ros.params import WhmrParams, parameter_specs, params_from_flat

__all__ = ["WhmrNode", "main"]

_PARAM_TYPES = {
    "bool": Parameter.Type.BOOL,
    "integer": Parameter.Type.INTEGER,
    "double": Parameter.Type.DOUBLE,
    "string": Parameter.Type.STRING,
    "string_array": Parameter.Type.STRING_ARRAY,
    "double_array": Parameter.Type.DOUBLE_ARRAY,
}
_OUTPUT_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
_LATCHED_QOS = QoSProfile(
    depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
)


class WhmrNode(LifecycleNode):
    """``engine``/``topology`` may be injected (tests); otherwise configure loads them from parameters."""

    def __init__(
        self,
        node_name: str = "whmr",
        *,
        engine: Engine | None = None,
        topology: BodyTopology | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(node_name, **kwargs)
        for spec in parameter_specs():
            if isinstance(spec.default, list) and not spec.default:
                self.declare_parameter(spec.name, _PARAM_TYPES[spec.kind])  # ROS cannot type an empty list
            else:
                self.declare_parameter(spec.name, spec.default)
        self._injected = (engine, topology)
        self._kit = RclpyKit()
        self._host: WhmrHost | None = None
        self._params: WhmrParams | None = None
        self._host_lock = threading.Lock()  # gravity buffer, intrinsics, detections: callbacks vs worker
        self._cv = threading.Condition()
        self._slot: tuple[Any, float] | None = None
        self._stop = False
        self._worker: threading.Thread | None = None
        self._subs: list[Any] = []
        self._pubs: dict[str, Any] = {}
        self._timer = None
        self._topology_sent = False
        self._marker_due = 0.0
        if self.get_parameter("autostart").value:
            self.trigger_configure()
            self.trigger_activate()

    # --- lifecycle --------------------------------------------------------------------------------

    def _read_params(self) -> WhmrParams:
        values = {}
        for spec in parameter_specs():
            p = self.get_parameter(spec.name)
            if p.type_ != Parameter.Type.NOT_SET:
                values[spec.name] = p.value
        return params_from_flat(values)

    def on_configure(self, state: State) -> TransitionCallbackReturn:
        try:
            params = self._read_params()
            engine, topology = self._injected
            if engine is None:
                from whmr_core.runtime.factory import load_engine

                n = params.node
                engine = load_engine(
                    n.engine,
                    n.model,
                    threads=n.threads or None,
                    config=n.network_config or None,
                    device=n.device,
                )
            if topology is None:
                from whmr_core.runtime.factory import load_topology

                topology = load_topology(params.node.body_model or None, engine=engine)
        except Exception as e:  # a bad parameter or model file: stay unconfigured, say why
            self.get_logger().error(f"configure failed: {e}")
            return TransitionCallbackReturn.FAILURE
        import tf2_ros

        self._tf_buffer = tf2_ros.Buffer()
        self._tf_listener = tf2_ros.TransformListener(self._tf_buffer, self)
        self._tf_broadcaster = tf2_ros.TransformBroadcaster(self)
        self._params = params
        self._host = WhmrHost(
            Pipeline(engine, topology, params.pipeline),
            params.host,
            self._kit,
            lookup=self._lookup,
            warn=self.get_logger().warning,
        )
        k = self._kit
        self._pubs = {
            "bodies": self.create_publisher(k.cls("whmr_ros/msg/BodyMeshArray"), "~/bodies", _OUTPUT_QOS),
            "topology": self.create_publisher(
                k.cls("whmr_ros/msg/BodyModelTopology"), "~/body_topology", _LATCHED_QOS
            ),
            "markers": self.create_publisher(
                k.cls("visualization_msgs/msg/MarkerArray"), "~/markers", _OUTPUT_QOS
            ),
            "diagnostics": self.create_publisher(
                k.cls("diagnostic_msgs/msg/DiagnosticArray"), "/diagnostics", _OUTPUT_QOS
            ),
        }
        if params.node.publish_overlay:
            self._pubs["overlay"] = self.create_publisher(
                k.cls("sensor_msgs/msg/Image"), "~/overlay", _OUTPUT_QOS
            )
        self.get_logger().info(f"configured: {engine.describe()}, body model {topology.model_name}")
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: State) -> TransitionCallbackReturn:
        k, params = self._kit, self._params
        assert params is not None
        sensor = qos_profile_sensor_data
        inputs = [
            ("sensor_msgs/msg/Image", "image", self._on_image),
            ("sensor_msgs/msg/CameraInfo", "camera_info", self._locked("on_camera_info")),
            ("sensor_msgs/msg/Imu", "imu", self._locked("on_imu")),
        ]
        if params.node.use_detections:
            inputs.append(("vision_msgs/msg/Detection2DArray", "detections", self._locked("on_detections")))
        self._subs = [self.create_subscription(k.cls(t), topic, cb, sensor) for t, topic, cb in inputs]
        self._stop = False
        self._worker = threading.Thread(target=self._work, name="whmr-inference", daemon=True)
        self._worker.start()
        self._timer = self.create_timer(params.node.diagnostics_period_s, self._publish_diagnostics)
        return super().on_activate(state)

    def _teardown_active(self) -> None:
        for s in self._subs:
            self.destroy_subscription(s)
        self._subs = []
        if self._timer is not None:
            self.destroy_timer(self._timer)
            self._timer = None
        with self._cv:
            self._stop = True
            self._cv.notify_all()
        if self._worker is not None:
            self._worker.join(timeout=10.0)
            self._worker = None

    def on_deactivate(self, state: State) -> TransitionCallbackReturn:
        self._teardown_active()
        return super().on_deactivate(state)

    def on_cleanup(self, state: State) -> TransitionCallbackReturn:
        for p in self._pubs.values():
            self.destroy_publisher(p)
        self._pubs = {}
        self._host = None
        self._topology_sent = False
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: State) -> TransitionCallbackReturn:
        self._teardown_active()
        return TransitionCallbackReturn.SUCCESS

    # --- callbacks (executor thread) --------------------------------------------------------------

    def _locked(self, method: str):
        def callback(msg: Any) -> None:
            host = self._host
            if host is not None:
                with self._host_lock:
                    getattr(host, method)(msg)

        return callback

    def _on_image(self, msg: Any) -> None:
        with self._cv:
            if self._slot is not None and self._host is not None:
                self._host.stats.frames_dropped += 1  # the worker is busy: newest frame wins
            self._slot = (msg, time.monotonic())
            self._cv.notify()

    def _lookup(self, target: str, source: str, stamp_ns: int | None):
        import tf2_ros
        from rclpy.duration import Duration
        from rclpy.time import Time

        try:
            when = Time() if stamp_ns is None else Time(nanoseconds=stamp_ns)
            tr = self._tf_buffer.lookup_transform(target, source, when, timeout=Duration(seconds=0.0))
        except (tf2_ros.LookupException, tf2_ros.ConnectivityException, tf2_ros.ExtrapolationException):
            return None
        q, v = tr.transform.rotation, tr.transform.translation
        try:
            return as_rotation_matrix([q.x, q.y, q.z, q.w], f"{target} <- {source}"), np.array(
                [v.x, v.y, v.z]
            )
        except ValueError:
            return None

    def _publish_diagnostics(self) -> None:
        host = self._host
        if host is not None and "diagnostics" in self._pubs:
            now = self.get_clock().now().nanoseconds
            self._pubs["diagnostics"].publish(host.diagnostics(now, self.get_name()))

    # --- worker thread ----------------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            with self._cv:
                while self._slot is None and not self._stop:
                    self._cv.wait()
                if self._stop:
                    return
                msg, received = self._slot  # type: ignore[misc]
                self._slot = None
            try:
                self._handle(msg, received)
            except Exception as e:  # the node never dies on one frame
                self.get_logger().error(f"frame failed: {e!r}", throttle_duration_sec=5.0)

    def _handle(self, msg: Any, received: float) -> None:
        host, params = self._host, self._params
        if host is None or params is None:
            return
        with self._host_lock:
            prepared = host.on_image(msg, received)
        if prepared is None:
            return
        out = host.process(prepared)
        if out is None:
            return
        pubs = self._pubs
        if not self._topology_sent:
            pubs["topology"].publish(host.topology(out.result.stamp_ns))
            self._topology_sent = True
        pubs["bodies"].publish(out.bodies)
        self._tf_broadcaster.sendTransform(list(out.tf.transforms))
        n = params.node
        now = time.monotonic()
        # Markers are heavy (a mesh is ~1 MB): build them only at the set rate and when someone listens.
        if n.publish_markers and now >= self._marker_due and pubs["markers"].get_subscription_count() > 0:
            self._marker_due = now + 1.0 / max(n.marker_rate_hz, 1e-3)
            pubs["markers"].publish(host.markers(out, mesh=n.markers_mesh))
        if "overlay" in pubs and pubs["overlay"].get_subscription_count() > 0:
            pubs["overlay"].publish(host.overlay(out, prepared))


def main(args: list[str] | None = None) -> int:
    from rclpy.executors import ExternalShutdownException

    rclpy.init(args=args)
    node = WhmrNode()
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node._teardown_active()
        node.destroy_node()
        rclpy.try_shutdown()
    return 0
