"""The ROS-free host around the Pipeline, shared by the rclpy node and the bag runner.

Input messages (Image, CameraInfo, Imu, Detection2DArray, TF) go in; a ``Frame`` per image comes out,
with the image's K, gravity at its stamp and its detections; after ``Pipeline.process`` the host builds
the output messages. Every unusable message is dropped, counted per topic and warned about (throttled):
the host never raises on bad input, so neither host dies on it.
"""

from __future__ import annotations

import collections
import logging
import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from whmr_core.config_io import ConfigError, check_settings, dataclass_from_dict, setting
from whmr_core.gravity import SOURCES, GravityEstimator, GravityUnavailableError, gravity_from_fixed_frame
from whmr_core.runtime.engines import EngineError
from whmr_core.runtime.frames import Detections, Frame, FrameResult, InputError
from whmr_core.runtime.pipeline import Pipeline, StampWentBackError
from whmr_ros import outputs
from whmr_ros.conversions import (
    CameraIntrinsics,
    MessageError,
    camera_info_to_intrinsics,
    header_stamp_ns,
    image_to_rgb,
    imu_to_reading,
)
from whmr_ros.message_kit import MessageKit
from whmr_ros.outputs import DiagnosticStatusReport, Placement

__all__ = ["FrameOutputs", "HostConfig", "PreparedFrame", "StageTimes", "WhmrHost", "detections_from_msg"]

log = logging.getLogger(__name__)

DISTORTION_WARN_PX = 1.0  # lens distortion below this at the image corners is not worth a warning

# lookup(target, source, stamp_ns or None for latest) -> (R, t) with X_target = R X_source + t, or None.
Lookup = Callable[[str, str, int | None], tuple[np.ndarray, np.ndarray] | None]


@dataclass
class HostConfig:
    """Frames, gravity and input handling; ``from_mapping`` is strict (keys, types, ranges)."""

    camera_frame: str = setting("", "'' = the image's header.frame_id (the optical frame)")
    gravity_frame_suffix: str = setting("_gravity", "the gravity frame is <camera_frame><suffix>")
    output_frame: str = setting(
        "", "'' = <camera>_gravity; else a gravity-aligned fixed frame in TF (odom, map)"
    )
    body_frame_prefix: str = setting("whmr_body_", "TF frame per body: <prefix><track_id>")
    gravity_sources: tuple[str, ...] = setting(
        SOURCES, f"gravity sources in order of preference, of {SOURCES}"
    )
    gravity_fixed_frame: str = setting("", "z-up frame in TF for the 'tf' gravity source (e.g. odom)")
    parameter_gravity: tuple[float, ...] = setting(
        (0.0, 1.0, 0.0), "last-resort gravity, camera optical frame"
    )
    camera_from_imu: tuple[float, ...] = setting((), "(x, y, z, w) or 9 row-major values; () = from TF")
    imu_max_age_s: float = setting(
        0.1, "IMU readings further than this from the image stamp are stale, s", low=0, low_open=True
    )
    accel_time_constant_s: float = setting(
        0.5, "accelerometer low-pass time constant, s", low=0, low_open=True
    )
    imu_max_tilt_variance: float = setting(
        0.03, "rad^2 (10 deg std): an IMU orientation with a larger roll/pitch variance is not used",
        low=0, low_open=True,
    )  # fmt: skip
    imu_max_disagreement_deg: float = setting(
        30.0, "an IMU orientation further than this from the low-passed accelerometer is not used, deg",
        low=0, high=180, low_open=True,
    )  # fmt: skip
    use_camera_info: bool = setting(True, "CameraInfo K for metric depth (false: relative depth)")
    detection_class_ids: tuple[str, ...] = setting((), "() = every detection is a person")
    detection_max_age_s: float = setting(
        0.02, "detections belong to the image with a stamp this close, s", low=0
    )
    warn_interval_s: float = setting(5.0, "throttle of warnings per kind of problem, s", low=0)

    def __post_init__(self) -> None:
        check_settings(self)
        unknown = [s for s in self.gravity_sources if s not in SOURCES]
        if unknown:
            raise ConfigError(f"gravity_sources: unknown {unknown}; choose from {list(SOURCES)}")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> HostConfig:
        return dataclass_from_dict(cls, dict(values), "host")

    def camera_from_imu_rotation(self) -> np.ndarray | None:
        v = np.asarray(self.camera_from_imu, dtype=np.float64)
        if v.size == 0:
            return None
        if v.size == 9:
            return v.reshape(3, 3)
        if v.size == 4:
            return v
        raise ValueError(f"camera_from_imu: expected 4 (x, y, z, w) or 9 values, got {v.size}")


def detections_from_msg(msg: object, class_ids: tuple[str, ...] = ()) -> Detections:
    """vision_msgs/Detection2DArray -> person boxes (Humble/Jazzy layout, and the older center.x one).

    A detection counts as a person when ``class_ids`` is empty or one of its hypotheses' class ids is in
    it; its score is that hypothesis's score (1 when it has none).
    """
    boxes, scores = [], []
    try:
        for det in msg.detections:  # type: ignore[attr-defined]
            c = det.bbox.center
            pos = getattr(c, "position", c)  # vision_msgs >= 4: Pose2D{position{x, y}}; older: Pose2D{x, y}
            cx, cy = float(pos.x), float(pos.y)
            sx, sy = float(det.bbox.size_x), float(det.bbox.size_y)
            score = None
            for r in getattr(det, "results", []):
                hyp = getattr(r, "hypothesis", r)
                cid = str(getattr(hyp, "class_id", getattr(hyp, "id", "")))
                if not class_ids or cid in class_ids:
                    value = float(hyp.score)
                    # NaN stays NaN (max() made it 0, a person below threshold with no reason given):
                    # the pipeline then drops the box and says why.
                    score = value if score is None or math.isnan(value) or value > score else score
                    if math.isnan(score):
                        break
            if score is None:
                if class_ids and len(getattr(det, "results", [])):
                    continue  # another class
                score = 1.0
            boxes.append([cx - sx / 2, cy - sy / 2, cx + sx / 2, cy + sy / 2])
            scores.append(score)
    except (AttributeError, TypeError, ValueError) as e:
        raise MessageError("detections", f"not a Detection2DArray ({e})") from None
    return Detections.of(np.array(boxes).reshape(-1, 4), np.array(scores))


@dataclass
class PreparedFrame:
    frame: Frame
    camera_frame_id: str
    received_s: float  # monotonic time the image arrived (latency)
    detected: Detections | None = None  # the built-in detector's result, when it ran ahead (``detect``)


@dataclass(frozen=True)
class DetectedAhead:
    """An image converted and its persons detected before its turn (``WhmrHost.detect_ahead``)."""

    stamp_ns: int
    rgb: np.ndarray
    detected: Detections | None


@dataclass
class FrameOutputs:
    result: FrameResult
    camera_frame_id: str
    gravity_frame_id: str
    placement: Placement
    bodies: Any  # whmr_ros/BodyMeshArray
    tf: Any  # tf2_msgs/TFMessage


class StageTimes:
    """Seconds each stage of the data path took per frame: summed since start (``total_s``, ``count``, for
    benchmarks that difference two readings) and the mean of the last ``window`` frames (diagnostics).

    Stages: ``wait`` (image stamp -> the node's worker took it: driver, DDS and the previous frame; system
    clock), ``inputs`` (the node's batch of IMU readings, CameraInfo and detections), ``convert`` (message
    -> Frame: pixels, K, gravity), ``detect`` (with ``detect_ahead``: conversion and the detector on the
    second thread), ``pipeline``, ``build`` (bodies and TF messages), ``publish`` (bodies, TF, overlay),
    ``markers`` (built and published, when due)."""

    def __init__(self, window: int = 60) -> None:
        self._lock = threading.Lock()  # the worker adds, the diagnostics timer reads
        self._window = window
        self.total_s: dict[str, float] = {}
        self.count: dict[str, int] = {}
        self._recent: dict[str, collections.deque] = {}

    def add(self, stage: str, seconds: float) -> None:
        with self._lock:
            self.total_s[stage] = self.total_s.get(stage, 0.0) + seconds
            self.count[stage] = self.count.get(stage, 0) + 1
            recent = self._recent.get(stage)
            if recent is None:
                recent = self._recent[stage] = collections.deque(maxlen=self._window)
            recent.append(seconds)

    def values(self) -> dict[str, str]:
        """Diagnostic key-values: ``stage_<name>_ms`` (recent mean) and ``stage_<name>_total_s``."""
        with self._lock:
            out = {}
            for stage, recent in self._recent.items():
                out[f"stage_{stage}_ms"] = f"{1e3 * sum(recent) / len(recent):.2f}"
                out[f"stage_{stage}_total_s"] = f"{self.total_s[stage]:.4f}"
            return out


@dataclass
class _Stats:
    frames_in: int = 0
    frames_processed: int = 0
    frames_dropped: int = 0  # replaced in the latest-frame queue before the worker took them
    latency_s: float = 0.0  # exponential moving average, arrival -> outputs built
    processed_at: collections.deque = field(default_factory=lambda: collections.deque(maxlen=60))
    gravity_source: str = ""
    gravity_reason: str = ""
    persons: int = 0
    stages: StageTimes = field(default_factory=StageTimes)


class WhmrHost:
    def __init__(
        self,
        pipeline: Pipeline,
        config: HostConfig,
        kit: MessageKit,
        lookup: Lookup | None = None,
        warn: Callable[[str], None] | None = None,
        image_to_rgb: Callable[[object], np.ndarray] = image_to_rgb,
    ) -> None:
        self.pipeline = pipeline
        self._image_to_rgb = image_to_rgb  # whmr's own, or cv_bridge's in the node when it is installed
        self.config = config
        self.kit = kit
        self.lookup = lookup
        self._warn = warn or log.warning
        self.gravity = GravityEstimator(
            config.camera_from_imu_rotation(),
            sources=config.gravity_sources,
            parameter_gravity=config.parameter_gravity,
            max_age_ns=int(config.imu_max_age_s * 1e9),
            accel_time_constant_s=config.accel_time_constant_s,
            max_tilt_variance=config.imu_max_tilt_variance,
            max_disagreement_deg=config.imu_max_disagreement_deg,
        )
        self._camera_from_imu_from_tf = config.camera_from_imu_rotation() is None
        self.intrinsics: CameraIntrinsics | None = None
        self.imu_frame = ""
        self.camera_frame = config.camera_frame
        self._detections: collections.deque[tuple[int, Detections]] = collections.deque(maxlen=30)
        self.dropped: collections.Counter[str] = collections.Counter()  # per input, malformed/unusable
        self.last_problem: dict[str, str] = {}
        self._last_warn: dict[str, float] = {}
        self._problem_lock = threading.Lock()  # the node's callbacks and worker both report problems
        # The node's callbacks fill the IMU buffer, K and detections while its worker reads them (and
        # resets gravity on a time jump): every access to that input state holds this lock.
        self._inputs_lock = threading.RLock()
        self._last_stamp: int | None = None  # of the last frame handed to the pipeline
        self.stats = _Stats()

    # --- problems ---------------------------------------------------------------------------------

    def problem(self, what: str, reason: str) -> None:
        """Count a dropped message or a fallback and warn, at most once per ``warn_interval_s`` per kind."""
        with self._problem_lock:
            self.dropped[what] += 1
            self.last_problem[what] = reason
            now = time.monotonic()
            due = now - self._last_warn.get(what, -math.inf) >= self.config.warn_interval_s
            if due:
                self._last_warn[what] = now
            count = self.dropped[what]
        if due:
            self._warn(f"{what}: {reason} ({count} so far)")

    # --- inputs -----------------------------------------------------------------------------------

    def on_camera_info(self, msg: object) -> None:
        if not self.config.use_camera_info:
            return
        try:
            intrinsics = camera_info_to_intrinsics(msg)
        except MessageError as e:
            self.problem("camera_info", f"dropped: {e}")
            return
        old = self.intrinsics
        if (
            old is None
            or old.distortion_model != intrinsics.distortion_model
            or not np.array_equal(old.D, intrinsics.D)
        ):
            # Once per lens: whmr treats images as pinhole (the network and eq. 3-4 do); a lens that moves
            # the corners by pixels biases boxes, depth and translation there.
            shift = intrinsics.distortion_px()
            if shift >= DISTORTION_WARN_PX:
                self.problem(
                    "camera_info",
                    f"distortion ignored ({intrinsics.distortion_model}, up to {shift:.3g} px at the image "
                    "corners): whmr treats the image as pinhole; publish a rectified image (image_proc)",
                )
        with self._inputs_lock:
            self.intrinsics = intrinsics

    def on_imu(self, msg: object) -> None:
        try:
            r = imu_to_reading(msg)
        except MessageError as e:
            self.problem("imu", f"dropped: {e}")
            return
        with self._inputs_lock:
            self.imu_frame = r.frame_id
            rejected = self.gravity.add_imu(
                r.stamp_ns,
                r.orientation_xyzw if r.orientation_valid else None,
                r.accel,
                orientation_covariance=r.orientation_covariance,
            )
        for why in rejected:
            if why.code != "orientation_flagged_invalid":  # an IMU without orientation says so every time
                self.problem("imu", f"reading rejected: {why}")

    def on_detections(self, msg: object) -> None:
        try:
            stamp = header_stamp_ns(msg)
            detections = detections_from_msg(msg, self.config.detection_class_ids)
        except MessageError as e:
            self.problem("detections", f"dropped: {e}")
            return
        with self._inputs_lock:
            self._detections.append((stamp, detections))

    def _detections_at(self, stamp: int) -> Detections | None:
        tol = int(self.config.detection_max_age_s * 1e9)
        best = min(self._detections, key=lambda d: abs(d[0] - stamp), default=None)
        if best is not None and abs(best[0] - stamp) <= tol:
            return best[1]
        if best is not None:  # a detector runs, but not for this image: its boxes are a fallback's
            self.problem(
                "detections",
                f"none within detection_max_age_s={self.config.detection_max_age_s:g} s of the image stamp "
                f"(nearest {abs(best[0] - stamp) / 1e6:.0f} ms away): tracked or whole-image boxes used",
            )
        return None

    def _resolve_camera_from_imu(self, camera_frame: str) -> None:
        if not self._camera_from_imu_from_tf or self.gravity.camera_from_imu is not None:
            return
        if self.lookup is None or not self.imu_frame:
            return
        tf = self.lookup(camera_frame, self.imu_frame, None)  # static (from the URDF)
        if tf is None:
            self.problem("tf", f"camera <- imu ({camera_frame} <- {self.imu_frame}) not in TF yet")
            return
        self.gravity.set_camera_from_imu(tf[0])

    def on_image(
        self, msg: object, received_s: float | None = None, ahead: DetectedAhead | None = None
    ) -> PreparedFrame | None:
        """Image message -> a Frame with K, gravity and detections at its stamp; None when dropped.
        ``ahead``: the message already converted and detected (``detect_ahead``)."""
        t0 = time.perf_counter()
        converted = self._converted(msg) if ahead is None else (ahead.stamp_ns, ahead.rgb)
        if converted is None:
            return None
        stamp, rgb = converted
        with self._inputs_lock:
            prepared = self._prepare(msg, rgb, stamp, received_s)
        if prepared is not None and ahead is not None:
            prepared.detected = ahead.detected
        self.stats.stages.add("convert", time.perf_counter() - t0)
        return prepared

    def detect_ahead(self, msg: object) -> DetectedAhead | None:
        """The first half of a frame, for a second thread while the previous frame's network and fit run:
        the image converted and the Pipeline's own detector run on it (``Pipeline.detect``, stateless).
        None when the message or the image is unusable (counted as a problem, like ``on_image``)."""
        t0 = time.perf_counter()
        converted = self._converted(msg)
        if converted is None:
            return None
        stamp, rgb = converted
        try:
            detected = self.pipeline.detect(rgb)
        except (InputError, EngineError) as e:
            self.problem("frame", f"dropped: {e}")
            return None
        self.stats.stages.add("detect", time.perf_counter() - t0)
        return DetectedAhead(stamp, rgb, detected)

    def _converted(self, msg: object) -> tuple[int, np.ndarray] | None:
        """An image message counted in, its stamp and pixels; None (a problem reported) when unusable."""
        self.stats.frames_in += 1
        try:
            return header_stamp_ns(msg), self._image_to_rgb(msg)
        except MessageError as e:
            self.problem("image", f"dropped: {e}")
            return None

    def _prepare(
        self, msg: object, rgb: np.ndarray, stamp: int, received_s: float | None
    ) -> PreparedFrame | None:
        camera_frame = self.config.camera_frame or str(msg.header.frame_id)  # type: ignore[attr-defined]
        if not camera_frame:
            self.problem("image", "header.frame_id is empty; set the camera_frame parameter")
            camera_frame = "camera_optical_frame"
        self.camera_frame = camera_frame
        h, w = rgb.shape[:2]
        K = None
        if self.intrinsics is not None:
            if (self.intrinsics.width, self.intrinsics.height) == (w, h):
                K = self.intrinsics.K
            else:
                size = f"{self.intrinsics.width}x{self.intrinsics.height}"
                self.problem("camera_info", f"K for {size} ignored for a {w}x{h} image (relative depth)")
        self._resolve_camera_from_imu(camera_frame)
        tf_gravity = None
        if self.config.gravity_fixed_frame and self.lookup is not None:
            tf = self.lookup(camera_frame, self.config.gravity_fixed_frame, stamp)
            if tf is not None:
                tf_gravity = gravity_from_fixed_frame(tf[0])
        try:
            g = self.gravity.gravity_at(stamp, tf_gravity)
        except GravityUnavailableError as e:
            self.problem("gravity", f"image dropped: {e}")
            return None
        if g.reason:
            self.problem("gravity", f"using {g.source}: {g.reason}")
        frame = Frame(rgb, stamp, K=K, gravity=g, detections=self._detections_at(stamp))
        return PreparedFrame(frame, camera_frame, time.monotonic() if received_s is None else received_s)

    # --- the pipeline and outputs -----------------------------------------------------------------

    def _placement(self, result: FrameResult, camera_frame: str, gravity_frame: str) -> Placement:
        out_frame = self.config.output_frame
        if not out_frame or self.lookup is None:
            return Placement(gravity_frame)
        tf = self.lookup(out_frame, camera_frame, result.stamp_ns)
        if tf is None:
            self.problem("tf", f"{out_frame} <- {camera_frame} unavailable; publishing in {gravity_frame}")
            return Placement(gravity_frame)
        r_oc, t_oc = tf
        return Placement(out_frame, r_oc @ result.camera_from_gravity, t_oc)

    def process(self, prepared: PreparedFrame) -> FrameOutputs | None:
        """Run the pipeline and build BodyMeshArray + TF; None when the frame was unusable."""
        stamp, last = prepared.frame.stamp_ns, self._last_stamp
        if last is not None and stamp < last:
            # A bag loops, a simulation resets: tracks start afresh; the IMU buffer is kept (the gravity
            # estimator restarts on its own when the IMU clock jumps back).
            self.pipeline.reset()
            self.problem(
                "time",
                f"jumped back {(last - stamp) / 1e9:.3g} s (a bag loop, a sim reset): tracks restarted",
            )
        self._last_stamp = stamp
        t0 = time.perf_counter()
        try:
            result = self.pipeline.process(prepared.frame, prepared.detected)
        except EngineError as e:  # e.g. a foreign engine's input limits: this frame is lost, not the host
            self.problem("engine", f"frame dropped: {e}")
            return None
        except StampWentBackError as e:  # bag loop, sim reset: start tracks afresh
            self.pipeline.reset()
            with self._inputs_lock:  # the IMU callbacks fill this buffer concurrently in the node
                self.gravity.reset()
            self.problem("frame", f"dropped: {e}; tracks restarted")
            return None
        except InputError as e:
            self.problem("frame", f"dropped: {e}")
            return None
        for d in result.dropped:
            self.problem("person", f"dropped: {d.reason}")
        for p in result.persons:  # the network's body published instead: counted, never silent
            if p.fit.startswith("fallback"):
                self.problem("fit", f"track {p.track_id}: {p.fit}")
        if result.box_source == "whole_image":  # never silent: a whole-image "person" is a guess
            self.problem("boxes", "no detections, detector or track: the whole image taken as one person")
        t1 = time.perf_counter()
        self.stats.stages.add("pipeline", t1 - t0)
        cam = prepared.camera_frame_id
        gravity_frame = cam + self.config.gravity_frame_suffix
        place = self._placement(result, cam, gravity_frame)
        bodies = outputs.body_mesh_array(self.kit, result, cam, place)
        tfs = outputs.transforms(self.kit, result, cam, gravity_frame, place, self.config.body_frame_prefix)
        s = self.stats
        s.frames_processed += 1
        now = time.monotonic()
        s.processed_at.append(now)
        lat = now - prepared.received_s
        s.latency_s = lat if s.frames_processed == 1 else 0.9 * s.latency_s + 0.1 * lat
        s.gravity_source, s.gravity_reason = result.gravity_source, result.gravity_reason
        s.persons = len(result.persons)
        out = FrameOutputs(result, cam, gravity_frame, place, bodies, outputs.tf_message(self.kit, tfs))
        s.stages.add("build", time.perf_counter() - t1)
        return out

    def markers(self, out: FrameOutputs, mesh: bool = True) -> Any:
        """The MarkerArray as CDR bytes (``outputs.marker_array_cdr``): publishers and bag writers take it."""
        return outputs.marker_array_cdr(
            self.kit, out.result, self.pipeline.topology, out.placement, mesh=mesh
        )

    def overlay(self, out: FrameOutputs, prepared: PreparedFrame) -> Any:
        return outputs.overlay_image(
            self.kit, prepared.frame.image, out.result, self.pipeline.topology, out.camera_frame_id
        )

    def topology(self, stamp_ns: int) -> Any:
        return outputs.body_model_topology(self.kit, self.pipeline.topology, stamp_ns, "")

    # --- diagnostics ------------------------------------------------------------------------------

    def fps(self) -> float:
        t = self.stats.processed_at
        return (len(t) - 1) / (t[-1] - t[0]) if len(t) > 1 and t[-1] > t[0] else 0.0

    def diagnostics(self, stamp_ns: int, node_name: str = "whmr") -> Any:
        s = self.stats
        ok, warn = outputs.OK, outputs.WARN
        engine = self.pipeline.engine.describe()
        pipeline = DiagnosticStatusReport(
            f"{node_name}: pipeline",
            warn if s.frames_dropped and s.frames_processed and s.frames_dropped > s.frames_processed else ok,
            f"{self.fps():.1f} FPS, {s.latency_s * 1e3:.0f} ms latency",
            {
                "fps": f"{self.fps():.2f}",
                "latency_ms": f"{s.latency_s * 1e3:.1f}",
                "frames_in": str(s.frames_in),
                "frames_processed": str(s.frames_processed),
                "frames_dropped_queue": str(s.frames_dropped),
                "persons": str(s.persons),
                "engine": engine,
                **s.stages.values(),
            },
            engine,
        )
        gravity = DiagnosticStatusReport(
            f"{node_name}: gravity",
            warn if s.gravity_reason else ok,
            s.gravity_source + (f" (fallback: {s.gravity_reason})" if s.gravity_reason else ""),
            {"source": s.gravity_source, "fallback_reason": s.gravity_reason,
             "imu_rejected": str(self.gravity.rejected)},
        )  # fmt: skip
        inputs = DiagnosticStatusReport(
            f"{node_name}: inputs",
            warn if self.dropped else ok,
            "; ".join(f"{k}: {self.last_problem[k]}" for k in sorted(self.dropped)) or "all inputs usable",
            {f"dropped_{k}": str(v) for k, v in sorted(self.dropped.items())},
        )
        return outputs.diagnostic_array(self.kit, stamp_ns, [pipeline, gravity, inputs])
