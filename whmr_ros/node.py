"""The whmr ROS 2 node (rclpy, Humble and Jazzy): wiring only, like image_pipeline's nodes.

Everything it calls is ROS-free and tested without ROS: ``WhmrHost`` (messages -> Frame -> messages),
``Pipeline`` (inference), ``outputs`` (message builders), ``params`` (the parameter table). This module
only declares parameters, subscribes, runs the worker thread and publishes.

Lifecycle (rclpy.lifecycle): configure reads parameters, loads the engine and body model and creates
publishers; activate subscribes and starts the worker; deactivate unsubscribes; cleanup releases the
engine. With ``autostart`` (default) the node configures and activates itself at start-up.

Threads: the input subscriptions (image, CameraInfo, IMU, detections) are in a callback group the executor
skips (``_TakenByWorker``): one worker thread waits for images on its own wait set, takes the newest (older
ones waiting are counted as dropped), then every IMU reading, CameraInfo and detection that came since in one
batch, converts, runs the pipeline and publishes. The executor (parameters, lifecycle, TF, the diagnostics
timer) is never woken by sensor data, and a slow engine adds latency to nothing but itself.

With ``detect_ahead`` (and the Pipeline's own detector) the first half of a frame moves to a second thread:
it takes the newest image, converts it and runs the detector, and hands the result to the worker through a
one-place slot (a newer result replaces a waiting one: counted as dropped); the worker runs the network,
the fit and the outputs. On two cores it did not answer more images and added 7-15 ms of latency (README,
ROS benchmark), so it is off by default; it is there for computers with more cores.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import rclpy
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy.callback_groups import CallbackGroup
from rclpy.exceptions import InvalidHandle
from rclpy.impl.implementation_singleton import rclpy_implementation as _rclpy
from rclpy.lifecycle import LifecycleNode, State, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    QoSProfile,
    ReliabilityPolicy,
    qos_profile_sensor_data,
)

from whmr_core.body.topology import BodyTopology
from whmr_core.config_io import ConfigError
from whmr_core.gravity import as_rotation_matrix
from whmr_core.runtime.engines import Engine
from whmr_core.runtime.pipeline import Pipeline
from whmr_ros.conversions import cv_bridge_image_to_rgb, image_to_rgb
from whmr_ros.host import DetectedAhead, WhmrHost
from whmr_ros.message_kit import RclpyKit
from whmr_ros.outputs import ERROR, DiagnosticStatusReport, diagnostic_array
from whmr_ros.params import ParameterSpec, WhmrParams, parameter_specs, params_from_flat
from whmr_ros.scheduler import OutputRates, OutputScheduler

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
_TF_QOS = QoSProfile(depth=100)  # what tf2_ros.TransformBroadcaster offers
# Sensor-data QoS holding 1 s of a 200 Hz IMU: the worker takes the readings once per image, not each one.
_BATCHED_QOS = QoSProfile(
    depth=200,
    history=HistoryPolicy.KEEP_LAST,
    reliability=ReliabilityPolicy.BEST_EFFORT,
    durability=DurabilityPolicy.VOLATILE,
)


_WAKE_NS = 100_000_000  # the worker's longest wait for an image: how soon it sees a deactivate


class _Latest:
    """A one-place slot between two threads: ``put`` replaces what waits (returns True when it did),
    ``take`` waits up to ``timeout_s`` for an item (None when none came)."""

    def __init__(self) -> None:
        self._ready = threading.Condition()
        self._item: Any = None

    def put(self, item: Any) -> bool:
        with self._ready:
            replaced = self._item is not None
            self._item = item
            self._ready.notify()
        return replaced

    def take(self, timeout_s: float) -> Any:
        with self._ready:
            if self._item is None:
                self._ready.wait(timeout_s)
            item, self._item = self._item, None
        return item


def _never_called(msg: Any) -> None:
    raise AssertionError("the worker takes this subscription's messages; no executor runs it")


class _TakenByWorker(CallbackGroup):
    """Subscriptions the executor never waits on nor runs: the worker takes their messages. rclpy's
    executors rebuild their wait set in Python on every wake-up; a 200 Hz IMU woke it 200 times a second,
    which on 2 cores halved the images answered, and each image callback competed with the worker for the
    GIL."""

    def can_execute(self, entity: Any) -> bool:
        return False

    def beginning_execution(self, entity: Any) -> bool:
        return False

    def ending_execution(self, entity: Any) -> None:
        pass


def _descriptor(spec: ParameterSpec) -> ParameterDescriptor:
    d = ParameterDescriptor(description=spec.description, type=_PARAM_TYPES[spec.kind].value)
    if spec.range is not None:
        lo, hi = spec.range
        if spec.kind == "integer":
            lo = int(max(lo, -(2**63)))  # int64 limits for an unbounded side
            hi = int(min(hi, 2**63 - 1))
            d.integer_range = [IntegerRange(from_value=lo, to_value=hi, step=0)]
        else:
            d.floating_point_range = [FloatingPointRange(from_value=float(lo), to_value=float(hi), step=0.0)]
    return d


def _in_range(spec: ParameterSpec, value: Any) -> bool:
    if spec.range is None or isinstance(value, bool) or not isinstance(value, int | float):
        return True
    lo, hi = spec.range
    return lo <= value <= hi


class _Publishers:
    """The scheduler's sink for the node: a publisher per output, wanted while someone subscribes."""

    def __init__(self, publishers: dict[str, Any]) -> None:
        self.publishers = publishers

    def publish(self, name: str, msg: Any) -> None:
        self.publishers[name].publish(msg)

    def wanted(self, name: str) -> bool:
        pub = self.publishers.get(name)
        return pub is not None and pub.get_subscription_count() > 0


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
        self._bad_params: list[str] = []
        self._declare_parameters()
        self._injected = (engine, topology)
        self._kit = RclpyKit()
        self._host: WhmrHost | None = None
        self._params: WhmrParams | None = None
        self._scheduler: OutputScheduler | None = None
        self._dropped_in_queue = 0  # images that waited while the worker was busy and a newer one came
        self._stop = False
        self._worker: threading.Thread | None = None
        self._detector: threading.Thread | None = None  # detect_ahead's first half of each frame
        self._ahead = _Latest()  # its results, waiting for the worker
        self._subs: list[Any] = []
        self._image_sub: Any = None  # the worker waits on it and takes the newest image
        self._batched: list[tuple[Any, Any]] = []  # (subscription, callback) the worker takes from
        self._take_lock = threading.Lock()  # the worker and the diagnostics timer both take
        self._pubs: dict[str, Any] = {}
        self._timer = None
        self._tf_buffer: Any = None
        self._tf_listener: Any = None
        self._refusal: list[Any] | None = None  # [publisher, timer, reason] while configure is refused
        self.add_on_set_parameters_callback(self._on_set_parameters)
        if self.get_parameter("autostart").value:
            # Activate only what configured: a failed configure leaves the node unconfigured, saying why.
            if self.trigger_configure() == TransitionCallbackReturn.SUCCESS:
                self.trigger_activate()

    def _declare_parameters(self) -> None:
        overrides = self._parameter_overrides  # what params files and -p gave, before declaring
        for spec in parameter_specs():
            given = overrides.get(spec.name)
            if given is not None and spec.kind in ("double", "double_array"):
                # `marker_rate_hz: 5` or `[0, 1, 0]` in YAML is an integer to ROS, and rclpy refuses it for
                # a double with an exception at construction: take whole numbers as the doubles meant.
                v = given.value
                if given.type_ == Parameter.Type.INTEGER:
                    overrides[spec.name] = Parameter(spec.name, value=float(v))
                elif given.type_ == Parameter.Type.INTEGER_ARRAY:
                    overrides[spec.name] = Parameter(spec.name, value=[float(x) for x in v])
            descriptor = _descriptor(spec)
            if given is not None and not _in_range(spec, overrides[spec.name].value):
                # rclpy would raise at construction; instead keep the default and let configure fail
                # with the reason, so the node stays up, unconfigured, saying what to fix.
                lo, hi = spec.range  # type: ignore[misc]
                self._bad_params.append(f"{spec.name}: must be in [{lo}, {hi}], got {given.value!r}")
                del overrides[spec.name]
            if isinstance(spec.default, list) and not spec.default:
                # ROS cannot infer a type from [] (rclpy would make it a byte array): declare the type,
                # then give the empty default unless the params file set a value.
                p = self.declare_parameter(spec.name, _PARAM_TYPES[spec.kind], descriptor)
                if p.type_ == Parameter.Type.NOT_SET:
                    self.set_parameters([Parameter(spec.name, _PARAM_TYPES[spec.kind], [])])
            else:
                self.declare_parameter(spec.name, spec.default, descriptor)

    # --- lifecycle --------------------------------------------------------------------------------

    def _read_params(self) -> WhmrParams:
        return params_from_flat({s.name: self.get_parameter(s.name).value for s in parameter_specs()})

    def on_configure(self, state: State) -> TransitionCallbackReturn:
        try:
            self._configure()
        except Exception as e:  # a bad parameter or model file: stay unconfigured, say why, keep nothing
            self._teardown_configured()  # the TF listener and publishers made before the refusal
            self._refuse(f"configure failed: {e}")
            return TransitionCallbackReturn.FAILURE
        self._end_refusal()
        return TransitionCallbackReturn.SUCCESS

    def _configure(self) -> None:
        if self._bad_params:
            raise ConfigError("; ".join(self._bad_params))
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
        import tf2_ros

        self._host = WhmrHost(
            Pipeline(engine, topology, params.pipeline.for_detections_topic(params.node.use_detections)),
            params.host,
            self._kit,
            lookup=self._lookup,
            warn=self.get_logger().warning,
            image_to_rgb=cv_bridge_image_to_rgb() or image_to_rgb,
        )
        self._params = params
        # After the host, which refuses settings it cannot use: such a refusal subscribes to nothing.
        self._tf_buffer = tf2_ros.Buffer()
        self._tf_listener = tf2_ros.TransformListener(self._tf_buffer, self)
        k, n = self._kit, params.node
        self._pubs = {
            "bodies": self.create_publisher(k.cls("whmr_ros/msg/BodyMeshArray"), "~/bodies", _OUTPUT_QOS),
            "topology": self.create_publisher(
                k.cls("whmr_ros/msg/BodyModelTopology"), "~/body_topology", _LATCHED_QOS
            ),
            "tf": self.create_publisher(k.cls("tf2_msgs/msg/TFMessage"), "/tf", _TF_QOS),
            "diagnostics": self.create_publisher(
                k.cls("diagnostic_msgs/msg/DiagnosticArray"), "/diagnostics", _OUTPUT_QOS
            ),
        }
        if n.publish_markers:
            self._pubs["markers"] = self.create_publisher(
                k.cls("visualization_msgs/msg/MarkerArray"), "~/markers", _OUTPUT_QOS
            )
        if n.publish_overlay:
            self._pubs["overlay"] = self.create_publisher(
                k.cls("sensor_msgs/msg/Image"), "~/overlay", _OUTPUT_QOS
            )
        rates = OutputRates(
            markers=n.publish_markers,
            marker_rate_hz=n.marker_rate_hz,
            markers_mesh=n.markers_mesh,
            overlay=n.publish_overlay,
            diagnostics_period_s=n.diagnostics_period_s,
        )
        self._scheduler = OutputScheduler(self._host, rates, _Publishers(self._pubs))
        self.get_logger().info(f"configured: {engine.describe()}, body model {topology.model_name}")

    def _refuse(self, reason: str) -> None:
        """Say why the node is not configured: in the log, and on /diagnostics (ERROR) every second until
        a configure succeeds, so a monitor that subscribes later still sees it."""
        self.get_logger().error(reason)
        if self._refusal is None:
            pub = self.create_publisher(
                self._kit.cls("diagnostic_msgs/msg/DiagnosticArray"), "/diagnostics", _OUTPUT_QOS
            )
            self._refusal = [pub, self.create_timer(1.0, self._publish_refusal), reason]
        self._refusal[2] = reason
        self._publish_refusal()

    def _publish_refusal(self) -> None:
        if self._refusal is None:
            return
        pub, _, reason = self._refusal
        status = DiagnosticStatusReport(
            f"{self.get_name()}: configure", ERROR, reason, {"state": "unconfigured"}
        )
        pub.publish(diagnostic_array(self._kit, self.get_clock().now().nanoseconds, [status]))

    def _end_refusal(self) -> None:
        if self._refusal is not None:
            pub, timer, _ = self._refusal
            self.destroy_timer(timer)
            self.destroy_publisher(pub)
            self._refusal = None

    def _on_set_parameters(self, changed: list[Parameter]) -> SetParametersResult:
        """whmr's parameters are read at configure: on a configured node a change would do nothing until
        the next one, so it is refused saying so (rclpy drops the reason of a successful answer)."""
        ours = {s.name for s in parameter_specs()}
        given = [p.name for p in changed if p.name in ours]  # use_sim_time and the like: rclpy's own
        # A value refused at start-up and now set anew (ROS has checked its type and range) is fine.
        self._bad_params = [b for b in self._bad_params if b.split(":", 1)[0] not in given]
        if self._params is None or not given:
            return SetParametersResult(successful=True)
        why = (
            f"{', '.join(given)}: read at configure; the node is configured: deactivate and clean it up, "
            "set the parameter, then configure and activate"
        )
        self.get_logger().warning(f"parameter change refused: {why}")
        return SetParametersResult(successful=False, reason=why)

    def on_activate(self, state: State) -> TransitionCallbackReturn:
        k, params, host = self._kit, self._params, self._host
        assert params is not None and host is not None
        group = _TakenByWorker()
        batched = [
            ("sensor_msgs/msg/CameraInfo", "camera_info", host.on_camera_info),
            ("sensor_msgs/msg/Imu", "imu", host.on_imu),
        ]
        if params.node.use_detections:
            batched.append(("vision_msgs/msg/Detection2DArray", "detections", host.on_detections))
        self._batched = [
            (self.create_subscription(k.cls(t), topic, cb, _BATCHED_QOS, callback_group=group), cb)
            for t, topic, cb in batched
        ]
        self._image_sub = self.create_subscription(
            k.cls("sensor_msgs/msg/Image"),
            "image",
            _never_called,
            qos_profile_sensor_data,
            callback_group=group,
        )
        self._subs = [self._image_sub] + [sub for sub, _ in self._batched]
        self._stop = False
        ahead = (
            params.node.detect_ahead and not params.node.use_detections and host.pipeline.detector is not None
        )
        self._ahead = _Latest()
        self._worker = threading.Thread(
            target=self._work_ahead if ahead else self._work, name="whmr-inference", daemon=True
        )
        self._worker.start()
        if ahead:
            self._detector = threading.Thread(target=self._detect_ahead, name="whmr-detector", daemon=True)
            self._detector.start()
        self._timer = self.create_timer(params.node.diagnostics_period_s, self._publish_diagnostics)
        return super().on_activate(state)

    def _teardown_active(self) -> None:
        self._stop = True  # the worker (and the detector thread) see it within _WAKE_NS
        for thread in (self._detector, self._worker):  # before the subscriptions they take from go
            if thread is not None:
                thread.join(timeout=10.0)
        self._worker = self._detector = None
        self._batched = []
        self._image_sub = None
        for s in self._subs:
            self.destroy_subscription(s)
        self._subs = []
        if self._timer is not None:
            self.destroy_timer(self._timer)
            self._timer = None

    def _teardown_configured(self) -> None:
        for p in self._pubs.values():
            self.destroy_publisher(p)
        self._pubs = {}
        if self._tf_listener is not None:
            self._tf_listener.unregister()  # its /tf and /tf_static subscriptions
            self._tf_listener = self._tf_buffer = None
        self._host = self._scheduler = self._params = None

    def on_deactivate(self, state: State) -> TransitionCallbackReturn:
        self._teardown_active()
        return super().on_deactivate(state)

    def on_cleanup(self, state: State) -> TransitionCallbackReturn:
        self._teardown_configured()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: State) -> TransitionCallbackReturn:
        self._teardown_active()
        self._teardown_configured()
        return TransitionCallbackReturn.SUCCESS

    # --- callbacks (executor thread) --------------------------------------------------------------

    def _lookup(self, target: str, source: str, stamp_ns: int | None):
        import tf2_ros
        from rclpy.time import Time

        buffer = self._tf_buffer
        if buffer is None:
            return None
        try:
            when = Time() if stamp_ns is None else Time(nanoseconds=stamp_ns)
            tr = buffer.lookup_transform(target, source, when)
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
        host, scheduler = self._host, self._scheduler
        if host is not None and scheduler is not None:
            self._take_batched()  # without images too: bad IMU or CameraInfo are counted, K kept fresh
            host.stats.frames_dropped = self._dropped_in_queue
            scheduler.tick(self.get_clock().now().nanoseconds, self.get_name())

    # --- worker thread ----------------------------------------------------------------------------

    def _taken_images(self) -> Iterator[tuple[Any, int]]:
        """Images taken from the subscription (``_next_image``) until the node stops."""
        wait_set = _rclpy.WaitSet(1, 0, 0, 0, 0, 0, self.context.handle)
        while not self._stop:
            try:
                taken = self._next_image(wait_set)
            except Exception as e:  # the context shut down, or rcl failed: stop quietly when asked to
                if self._stop or not self.context.ok():
                    return
                self.get_logger().error(f"waiting for images failed: {e!r}", throttle_duration_sec=5.0)
                time.sleep(_WAKE_NS * 1e-9)  # a back-off after an rcl failure, not a wait for data
                continue
            if taken is not None:
                yield taken

    def _handle_logged(self, *frame: Any) -> None:
        try:
            self._handle(*frame)
        except Exception as e:  # the node never dies on one frame
            self.get_logger().error(f"frame failed: {e!r}", throttle_duration_sec=5.0)

    def _work(self) -> None:
        for taken in self._taken_images():
            self._handle_logged(*taken)

    def _detect_ahead(self) -> None:
        """detect_ahead's first thread: the newest image, converted and detected, into the slot."""
        for msg, taken_ns in self._taken_images():
            host = self._host
            if host is None:
                continue
            received_s = time.monotonic()
            try:
                done = host.detect_ahead(msg)
            except Exception as e:  # the node never dies on one frame
                self.get_logger().error(f"frame failed: {e!r}", throttle_duration_sec=5.0)
                continue
            if done is not None and self._ahead.put((msg, taken_ns, received_s, done)):
                self._dropped_in_queue += 1

    def _work_ahead(self) -> None:
        """detect_ahead's second thread: the rest of each frame the first one detected."""
        while not self._stop:
            item = self._ahead.take(_WAKE_NS * 1e-9)
            if item is not None:
                self._handle_logged(*item)

    def _next_image(self, wait_set: Any) -> tuple[Any, int] | None:
        """The newest image waiting (older ones are counted as dropped) and when it was taken (system clock,
        ns), after waiting up to ``_WAKE_NS`` for one; None when none came."""
        sub = self._image_sub
        if sub is None:
            return None
        with sub.handle:
            wait_set.clear_entities()
            wait_set.add_subscription(sub.handle)
            wait_set.wait(_WAKE_NS)
            newest, n = None, 0
            while (taken := sub.handle.take_message(sub.msg_type, sub.raw)) is not None:
                newest, n = taken, n + 1
        if newest is None:
            return None
        self._dropped_in_queue += n - 1
        return newest[0], time.time_ns()

    def _take_batched(self) -> None:
        """Hand the IMU readings and CameraInfo that came since the last image to the host, oldest first."""
        with self._take_lock:
            for sub, callback in self._batched:
                try:
                    with sub.handle:
                        while (taken := sub.handle.take_message(sub.msg_type, sub.raw)) is not None:
                            callback(taken[0])
                except InvalidHandle:  # destroyed by a deactivate while this frame ran
                    return

    def _handle(
        self, msg: Any, taken_ns: int, received_s: float | None = None, ahead: DetectedAhead | None = None
    ) -> None:
        host, scheduler = self._host, self._scheduler
        if host is None or scheduler is None:
            return
        stages = host.stats.stages
        t0 = time.monotonic()
        self._take_batched()
        stages.add("inputs", time.monotonic() - t0)
        prepared = host.on_image(msg, t0 if received_s is None else received_s, ahead)
        if prepared is None:
            return
        # Stamp -> taken: the driver, DDS and the wait for the previous frame (CycloneDDS's receipt time is
        # the take's, so the two cannot be told apart here). System clock, as camera drivers stamp.
        stages.add("wait", (taken_ns - prepared.frame.stamp_ns) * 1e-9)
        out = host.process(prepared)
        if out is not None:
            scheduler.on_frame(out, prepared)


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
