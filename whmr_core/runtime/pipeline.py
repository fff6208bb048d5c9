"""The ROS-free inference pipeline: one image (+ K, gravity, person boxes) -> world-frame body meshes.

Hosts: the rclpy node, the bag runner and scripts (DESIGN.md section 1). ``Pipeline.process`` runs the
steps of one frame, each in its own module:
  1. person boxes (``boxes.BoxPolicy``: detections, the built-in detector, tracked boxes or the whole
     image);
  2. square crops (``whmr_core.crops``) and the 5-D global info (eq. 7);
  3. the engine (any ``Engine``) with the camera rotation R_c from gravity (``frames.camera_rotation_of``);
  4. each person decoded (``decode``): focal length and translation (without K one focal length for the
     whole image, ``focal_fusion``, unless ``per_person_focal``), meshes in the camera optical frame and in
     the gravity frame ``<camera>_gravity``;
  5. 2D keypoints per person (MoveNet Thunder on each box, or the detector's own) and the keypoint fit
     (``whmr_core.fitting``): each body's pose, shape and translation made to agree with its keypoints,
     warm-started from the track's previous fit; a fit that falls back keeps the network's body;
  6. track ids (``whmr_core.tracking``: IoU + Hungarian), with optional One Euro smoothing per track.

A person whose outputs are not finite or not physical is dropped with a reason: nothing non-finite ever
leaves the pipeline.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import torch

from whmr_core import geometry
from whmr_core.body.topology import BodyTopology
from whmr_core.crops import extract_crops, square_boxes
from whmr_core.graph_io import PersonOutputs
from whmr_core.runtime.boxes import BoxPolicy
from whmr_core.runtime.config import PipelineConfig
from whmr_core.runtime.decode import (
    CameraSolution,
    PersonBox,
    UnusablePerson,
    check_outputs,
    compose_person,
    solve_camera,
)
from whmr_core.runtime.engines import Engine
from whmr_core.runtime.focal_fusion import fuse_focal, shared_camera
from whmr_core.runtime.frames import (
    Detections,
    DroppedPerson,
    Frame,
    FrameResult,
    InputError,
    PersonResult,
    camera_rotation_of,
    check_image,
    check_K,
)
from whmr_core.runtime.movenet import (
    BlazePoseWorld,
    MultiPoseDetector,
    ThunderKeypoints,
    crop_to_camera,
    exposure_normalised,
)
from whmr_core.tracking import Track, Tracker

__all__ = ["Pipeline", "StampWentBackError"]

# Smoothed per track: the pelvis-centred body, its rotations (filtered as rotations) and the translation.
_SMOOTHED = ("vertices", "joints", "world_vertices", "world_joints", "cam_root", "world_root", "rotmats")
_ROTATIONS = ("cam_root", "world_root", "rotmats")
# The keypoint fit's pull towards the network's depth without K (relative scale); with K, FitConfig's.
RELATIVE_DEPTH_WEIGHT = 1e-3


class StampWentBackError(InputError):
    """The frame is older than the previous one (a bag looped, a simulation reset): ``reset()`` first."""


@dataclasses.dataclass
class _Placed:
    """A person with a usable body between the network and the composed result (the fit may replace its
    outputs and camera)."""

    index: int  # in the frame's boxes
    track: Track
    box: PersonBox
    outputs: PersonOutputs
    camera: CameraSolution


class Pipeline:
    """``process(Frame) -> FrameResult``; keeps tracks and the previous frame's boxes between calls."""

    def __init__(self, engine: Engine, topology: BodyTopology, config: PipelineConfig | None = None) -> None:
        self.engine = engine
        self.topology = topology
        self.config = config or PipelineConfig()
        c = self.config
        self.tracker = Tracker(
            min_iou=c.track_min_iou,
            min_hits=c.track_min_hits,
            max_age=c.track_max_age,
            smoothing=(c.smoothing_min_cutoff, c.smoothing_beta) if c.smoothing else None,
        )
        detector = None
        if c.detector_kind == "yolo":
            from whmr_core.runtime.detector import YoloPersonDetector

            detector = YoloPersonDetector(c.detector_model, score_threshold=c.detector_score)
        elif c.detector_kind == "movenet":
            detector = MultiPoseDetector(
                score_threshold=c.movenet_score,
                sides=c.movenet_sides,
                max_persons=2 * c.max_persons,
                tile_crowds=c.movenet_crowd_tiles,
                crowd_boxes=c.movenet_crowd_tiles and c.movenet_crowd_boxes,
            )
        elif c.detector_kind == "blazepose":
            from whmr_core.runtime.blazepose import BlazePoseDetector

            detector = BlazePoseDetector(score_threshold=c.detector_score, max_persons=2 * c.max_persons)
        self.box_policy = BoxPolicy(c, detector)
        self._thunder = None  # MoveNet Thunder, loaded on first use
        self._world = None  # BlazePose's 3D landmarks (fit_3d), loaded on first use
        self._last_stamp: int | None = None
        self._fitter_parts = None
        self._fit_config = None  # FitConfig of the fitter, set when it is built
        self._fits: dict = {}  # track id -> its last fit (warm start)
        self.fit_fallbacks = 0  # persons whose fit fell back to the network's body (diagnostics)

    @property
    def detector(self):
        return self.box_policy.detector

    def reset(self) -> None:
        """Forget tracks (e.g. after time jumped back when a bag loops)."""
        self.tracker.reset()
        self.box_policy.reset()
        self._last_stamp = None
        self._fits = {}

    def detect(self, image: np.ndarray) -> Detections | None:
        """The built-in detector on ``image`` (None without one): what ``process`` runs first when the frame
        has no detections. Stateless, so a host may run it for the next frame on another thread while
        ``process`` works on this one, and pass the result as ``process(frame, detected)``."""
        return self.box_policy.detect(check_image(image))

    def process(self, frame: Frame, detected: Detections | None = None) -> FrameResult:
        """Run one frame. Raises ``InputError`` for an unusable frame; per-person problems drop the person.
        ``detected``: ``detect``'s result for this frame's image, when it already ran."""
        image = check_image(frame.image)
        h, w = image.shape[:2]
        K = None if frame.K is None else check_K(frame.K, (w, h))
        R_c, g_source, g_reason = camera_rotation_of(frame)
        stamp = int(frame.stamp_ns)
        if self._last_stamp is not None and stamp < self._last_stamp:
            raise StampWentBackError(f"stamp {stamp} is before the previous frame's {self._last_stamp}")
        self._last_stamp = stamp

        clock = [time.perf_counter()]
        stage_s: dict[str, float] = {}

        def lap(name: str) -> None:
            clock.append(time.perf_counter())
            stage_s[name] = stage_s.get(name, 0.0) + clock[-1] - clock[-2]

        boxes = self.box_policy.boxes(frame, image, detected)
        lap("boxes")
        dropped = list(boxes.dropped)
        tracks = self.tracker.update(boxes.boxes, stamp, boxes.scores)
        persons: list[PersonResult] = []
        inference_s = 0.0
        camera_K = K  # the camera the persons are placed with: K, or the image's fused focal length
        keypoints = self._keypoints(image, boxes)
        lap("keypoints")
        if len(boxes.boxes):
            centres, sides = square_boxes(boxes.boxes, self.engine.crop_hw, self.config.box_scale)
            # A dark frame is brightened for the network as for the pose models (trained on well-exposed
            # people, it sees nobody in a frame of values 0-4), its crops averaged as Thunder's are.
            lit = exposure_normalised(image)
            crops = extract_crops(lit, centres, sides, self.engine.crop_hw, average=lit is not image)
            n = len(centres)
            image_wh = torch.tensor([[w, h]], dtype=torch.float64).expand(n, 2)
            info = geometry.glob_info(torch.as_tensor(centres), torch.as_tensor(sides), image_wh)
            t0 = time.perf_counter()
            out = self.engine.infer_chunked(
                crops, info.numpy().astype(np.float32), np.repeat(R_c[None], n, 0)
            )
            inference_s = time.perf_counter() - t0
            lap("network")
            if K is None and not self.config.per_person_focal:
                # One camera per image: the persons' focal predictions fused into one (focal_fusion);
                # a non-finite prediction is left out here (its person is dropped below).
                focal = np.asarray(out.focal, dtype=np.float64).reshape(-1)
                ok = np.isfinite(focal)
                f_px = np.full_like(focal, np.nan)
                if ok.any():
                    wh = torch.tensor([[w, h]], dtype=torch.float64)
                    f_px[ok] = geometry.focal_to_pixels(torch.as_tensor(focal[ok]), wh).numpy()
                f = fuse_focal(f_px, boxes.scores)
                camera_K = None if f is None else shared_camera(f, (w, h))
            placed: list[_Placed] = []  # the persons with a usable body
            for i, track in enumerate(tracks):
                box = PersonBox(
                    boxes.boxes[i].copy(), float(boxes.scores[i]), boxes.source, centres[i], sides[i]
                )
                o = out.person(i)
                try:
                    check_outputs(o, self.topology)
                    camera = solve_camera(o, box, (w, h), camera_K, self.config.max_depth_m, K is not None)
                except UnusablePerson as e:
                    dropped.append(DroppedPerson(str(e), boxes.boxes[i], track.track_id))
                    continue
                placed.append(_Placed(i, track, box, o, camera))
            gravity_known = frame.camera_rotation is not None or frame.gravity is not None
            lap("decode")
            fit_status = self._fit(image, placed, keypoints, R_c, gravity_known, K is not None)
            lap("fit")
            for p, status in zip(placed, fit_status, strict=True):
                i, track, box, o, camera = p.index, p.track, p.box, p.outputs, p.camera
                try:
                    if self.config.smoothing:
                        o, camera = self._smooth(track, o, camera, stamp)
                    person = compose_person(o, box, camera, R_c, track.track_id)
                    person = dataclasses.replace(
                        person, keypoints_2d=None if keypoints is None else keypoints[i], fit=status
                    )
                except UnusablePerson as e:
                    dropped.append(DroppedPerson(str(e), boxes.boxes[i], track.track_id))
                    continue
                if track.confirmed:
                    persons.append(person)
        tracked = self.box_policy.remember(persons)
        lap("decode")
        if boxes.source == "whole_image" and tracked is not None:
            # The whole image is no box to track by: re-box the track on its body, so that the next
            # frame's projected box matches it and the person keeps the id.
            for p, box_xyxy in zip(persons, tracked.boxes, strict=True):
                self.tracker.rebox(p.track_id, box_xyxy)
        return FrameResult(
            stamp,
            (w, h),
            tuple(persons),
            tuple(dropped),
            R_c,
            g_source,
            g_reason,
            boxes.source,
            K,
            inference_s,
            None if camera_K is None else float(camera_K[0, 0] + camera_K[1, 1]) / 2,
            stage_s,
        )

    def _keypoints(self, image: np.ndarray, boxes) -> np.ndarray | None:
        """(N, 17, 3) COCO-17 keypoints of the frame's persons, or None when no keypoint source applies."""
        mode = self.config.keypoints
        if mode in ("auto", "detector") and boxes.keypoints is not None:
            return boxes.keypoints  # MultiPose's own: about as good as Thunder's, and free
        if mode in ("auto", "thunder") and len(boxes.boxes):
            if self._thunder is None:
                self._thunder = ThunderKeypoints()
            return self._thunder(image, boxes.boxes)
        return None

    def _fit(
        self,
        image: np.ndarray,
        placed: list[_Placed],
        keypoints: np.ndarray | None,
        R_c: np.ndarray,
        gravity_known: bool,
        metric: bool,
    ) -> list[str]:
        """Fit the placed persons' bodies to their keypoints (their outputs and cameras replaced in place);
        one status each:
        "fitted", "fallback: <reason>" (the network's body kept) or "off"."""
        fitter = self._fitter() if keypoints is not None and placed else None
        if fitter is None:
            return ["off"] * len(placed)
        body_fitter, fitted_outputs = fitter
        # With K the network's depth is metric and holds against the 2D fit's depth ambiguity (FitConfig's
        # w_depth; the demo's root position error grew 204 -> 288 mm with the depth free); without K it is
        # relative, and a person cut by the image edge needs the fit to scale the body.
        weight = self._fit_config.w_depth if metric else RELATIVE_DEPTH_WEIGHT
        idx = [p.index for p in placed]
        K = np.repeat(np.eye(3)[None], len(placed), axis=0)  # each person's camera, as it was placed
        for k, p in enumerate(placed):
            K[k, 0, 0], K[k, 1, 1] = p.camera.focal_xy
            K[k, :2, 2] = p.camera.principal_point
        warm = [self._fits.get(p.track.track_id) for p in placed]
        kp3 = conf3 = None
        if self.config.fit_3d:
            if self._world is None:
                self._world = BlazePoseWorld()
            boxes = np.stack([p.box.box_xyxy for p in placed])
            kp3, conf3 = self._world(image, boxes)
            # The landmarks are in the axes of each person's crop: turned into the camera's.
            kp3 = crop_to_camera(kp3, boxes, K)
        # In a sequence, persons who all start from their track's last fit need fewer iterations.
        tracked = all(w is not None for w in warm)
        iterations = self.config.fit_iterations_tracked if tracked else self.config.fit_iterations
        body_fitter.config = dataclasses.replace(self._fit_config, w_depth=weight, iterations=iterations)
        try:
            result = body_fitter(
                np.stack([p.outputs.rotmats for p in placed]),
                np.stack([p.outputs.betas.reshape(-1) for p in placed]),
                np.stack([p.camera.translation for p in placed]),
                keypoints[idx, :, :2],
                keypoints[idx, :, 2],
                K,
                keypoints_3d=kp3,
                confidences_3d=conf3,
                warm_start=warm,
                up=-R_c[:, 1] if gravity_known else None,  # R_c's second column: gravity in camera axes
            )
        except (ValueError, RuntimeError) as e:  # never lose the frame to the fit: the network's bodies
            self.fit_fallbacks += len(placed)
            return [f"fallback: fit failed: {e}"] * len(placed)
        status = []
        live = {}
        for k, p in enumerate(placed):
            fit = result.person(k)
            if not fit.fitted:
                self.fit_fallbacks += 1
                status.append(f"fallback: {fit.fallback_reason}")
                continue
            # With measured gravity the fitted root goes to the gravity frame by calibration (R_c^T), exact
            # when gravity and the fitted camera-frame root are; without, the network's OrientCorrect
            # correction (its estimate of the camera's tilt from the image) is kept.
            p.outputs = fitted_outputs(p.outputs, fit, R_c.T if gravity_known else None)
            p.camera = dataclasses.replace(p.camera, translation=np.array(fit.translation, dtype=np.float64))
            live[p.track.track_id] = fit
            status.append("fitted")
        self._fits = live  # warm starts for the tracks seen in this frame only
        return status

    def _fitter(self):
        """(BodyFitter, FittedOutputs) for the engine's body, built on first use; None when fitting is off
        or the engine does not record an SMPL-format body."""
        if not self.config.fit or self._fitter_parts is False:
            return None
        if self._fitter_parts is None:
            body_spec = getattr(self.engine, "body", "")
            if not body_spec:
                self._fitter_parts = False  # no body to fit: every status says "off"
                return None
            from whmr_core.body.resolve import resolve
            from whmr_core.fitting import BodyFitter, FitConfig, FittedOutputs

            body = resolve(body_spec).load()
            self._fit_config = FitConfig(
                iterations=self.config.fit_iterations, w_upright=self.config.fit_upright
            )
            self._fitter_parts = (
                BodyFitter(body, self._fit_config),
                FittedOutputs(body),
            )
        return self._fitter_parts

    @staticmethod
    def _smooth(track, o, camera, stamp: int):
        values = {name: getattr(o, name) for name in _SMOOTHED}
        values["translation"] = camera.translation
        s = track.smooth(values, stamp, _ROTATIONS)
        t = s.pop("translation")
        return dataclasses.replace(o, **s), dataclasses.replace(camera, translation=t)
