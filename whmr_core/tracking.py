"""Multi-person tracking (stable ids across frames) and One Euro smoothing of per-track outputs.

Boxes are (x1, y1, x2, y2) pixels. Association: IoU between detections and each track's box predicted
to the frame's stamp (constant velocity), solved as an assignment (Hungarian,
``scipy.optimize.linear_sum_assignment``) and gated by a minimum IoU. Tracks are born on unmatched
detections, confirmed after ``min_hits`` matches and dropped after ``max_age`` frames without one
(SORT's bookkeeping, Bewley et al. 2016). Time stamps are int nanoseconds.

``OneEuroFilter`` (Casiez et al., CHI 2012) smooths vectors (e.g. translation) with a cut-off that
rises with speed: little jitter at rest, little lag in motion. ``RotationOneEuroFilter`` applies it
to rotation matrices in the continuous 6D representation and re-orthonormalises. A Tracker built with
``smoothing=(min_cutoff, beta)`` gives each track its own filters (``Track.smooth``), which die with it.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from whmr_core.rotations import matrix_to_rot6d, rot6d_to_matrix

__all__ = [
    "OneEuroFilter",
    "RotationOneEuroFilter",
    "Track",
    "TrackSmoother",
    "Tracker",
    "associate",
    "iou_matrix",
]


def _boxes(boxes: np.ndarray, name: str) -> np.ndarray:
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4) if np.size(boxes) else np.zeros((0, 4))
    if not np.isfinite(b).all():
        raise ValueError(f"{name}: contains non-finite values")
    if (b[:, 2] < b[:, 0]).any() or (b[:, 3] < b[:, 1]).any():
        raise ValueError(f"{name}: expected (x1, y1, x2, y2) with x2 >= x1 and y2 >= y1")
    return b


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union of every box in ``a`` (N,4) with every box in ``b`` (M,4), (N,M)."""
    a, b = _boxes(a, "a"), _boxes(b, "b")
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(-1)
    area_a = (a[:, 2:] - a[:, :2]).prod(-1)
    area_b = (b[:, 2:] - b[:, :2]).prod(-1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def associate(iou: np.ndarray, min_iou: float) -> list[tuple[int, int]]:
    """(row, col) pairs maximising total IoU (Hungarian), keeping only pairs with IoU >= ``min_iou``."""
    if iou.size == 0:
        return []
    rows, cols = linear_sum_assignment(iou, maximize=True)
    return [(int(r), int(c)) for r, c in zip(rows, cols, strict=True) if iou[r, c] >= min_iou]


@dataclass
class Track:
    """One tracked person; ``smoother`` is set when the Tracker smooths (``Track.smooth``)."""

    track_id: int
    box: np.ndarray
    stamp_ns: int
    score: float = 1.0
    hits: int = 1
    misses: int = 0
    confirmed: bool = False
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(4))  # box corners, px/s
    smoother: TrackSmoother | None = None

    def smooth(
        self, values: Mapping[str, np.ndarray], stamp_ns: int, rotations: Collection[str] = ()
    ) -> dict[str, np.ndarray]:
        """This track's One Euro filters on named values (``rotations``: names of rotation matrices);
        the values unchanged when the Tracker does not smooth."""
        return dict(values) if self.smoother is None else self.smoother(values, stamp_ns, rotations)

    def predict(self, stamp_ns: int) -> np.ndarray:
        """Box extrapolated to ``stamp_ns`` at constant velocity (kept a valid box)."""
        dt = max(stamp_ns - self.stamp_ns, 0) * 1e-9
        b = self.box + self.velocity * dt
        cx, cy = (b[0] + b[2]) / 2, (b[1] + b[3]) / 2
        hw, hh = max((b[2] - b[0]) / 2, 0.5), max((b[3] - b[1]) / 2, 0.5)
        return np.array([cx - hw, cy - hh, cx + hw, cy + hh])


class Tracker:
    """Gives each detection a track id that stays the same for the same person across frames."""

    def __init__(
        self,
        *,
        min_iou: float = 0.2,
        min_hits: int = 3,
        max_age: int = 10,
        velocity_smoothing: float = 0.5,
        smoothing: tuple[float, float] | None = None,
    ) -> None:
        """``smoothing``: (min_cutoff Hz, beta) of each track's One Euro filters, None: no smoothing."""
        if not 0 <= min_iou <= 1:
            raise ValueError(f"min_iou: expected [0, 1], got {min_iou}")
        if min_hits < 1 or max_age < 0:
            raise ValueError("min_hits: must be >= 1; max_age: must be >= 0")
        if not 0 <= velocity_smoothing < 1:
            raise ValueError(f"velocity_smoothing: expected [0, 1), got {velocity_smoothing}")
        self.min_iou = min_iou
        self.min_hits = min_hits
        self.max_age = max_age
        self.velocity_smoothing = velocity_smoothing
        if smoothing is not None:
            OneEuroFilter(*smoothing)  # checks the parameters now, not at the first track
        self.smoothing = smoothing
        self.tracks: list[Track] = []
        self._ids = itertools.count(1)
        self._last_stamp: int | None = None

    def reset(self) -> None:
        self.tracks.clear()
        self._last_stamp = None

    def update(self, boxes: np.ndarray, stamp_ns: int, scores: np.ndarray | None = None) -> list[Track]:
        """Match this frame's detections (N,4) to tracks; returns the track of each detection, in order.

        Unmatched detections start tentative tracks (``confirmed`` False until ``min_hits`` matches).
        Unmatched tracks age and are removed after ``max_age`` frames without a match.
        """
        stamp_ns = int(stamp_ns)
        if self._last_stamp is not None and stamp_ns < self._last_stamp:
            raise ValueError(f"stamp_ns: {stamp_ns} is before the previous frame's {self._last_stamp}")
        self._last_stamp = stamp_ns
        boxes = _boxes(boxes, "boxes")
        n = len(boxes)
        scores = np.ones(n) if scores is None else np.asarray(scores, dtype=np.float64).reshape(-1)
        if len(scores) != n:
            raise ValueError(f"scores: expected {n} values, got {len(scores)}")

        predicted = np.array([t.predict(stamp_ns) for t in self.tracks]).reshape(-1, 4)
        pairs = associate(iou_matrix(predicted, boxes), self.min_iou)
        out: list[Track | None] = [None] * n
        matched_tracks = set()
        for ti, di in pairs:
            track = self.tracks[ti]
            self._correct(track, boxes[di], stamp_ns, float(scores[di]))
            matched_tracks.add(ti)
            out[di] = track
        survivors = []
        for ti, track in enumerate(self.tracks):
            if ti not in matched_tracks:
                track.misses += 1
                if track.misses > self.max_age or not track.confirmed:
                    continue  # a tentative track that misses once was probably a false detection
            survivors.append(track)
        self.tracks = survivors
        for di in range(n):
            if out[di] is None:
                track = Track(next(self._ids), boxes[di].copy(), stamp_ns, float(scores[di]))
                if self.smoothing is not None:
                    track.smoother = TrackSmoother(*self.smoothing)
                track.confirmed = track.hits >= self.min_hits
                self.tracks.append(track)
                out[di] = track
        return [t for t in out if t is not None]

    def _correct(self, track: Track, box: np.ndarray, stamp_ns: int, score: float) -> None:
        dt = (stamp_ns - track.stamp_ns) * 1e-9
        if dt > 0:
            v = (box - track.box) / dt
            k = self.velocity_smoothing
            track.velocity = v if track.hits == 1 else k * track.velocity + (1 - k) * v
        track.box = box.copy()
        track.stamp_ns = stamp_ns
        track.score = score
        track.hits += 1
        track.misses = 0
        track.confirmed = track.confirmed or track.hits >= self.min_hits

    def rebox(self, track_id: int, box: np.ndarray) -> None:
        """Replace a track's box (e.g. by its body's projected box when the detection was the whole
        image, which is no box to track by)."""
        for t in self.tracks:
            if t.track_id == track_id:
                t.box = _boxes(box, "box")[0].copy()

    def confirmed_tracks(self) -> list[Track]:
        """Live confirmed tracks, including those not seen this frame (their last boxes)."""
        return [t for t in self.tracks if t.confirmed]


def _alpha(cutoff_hz: float | np.ndarray, dt: float) -> float | np.ndarray:
    # Exponential smoothing factor for a first-order low-pass with this cut-off (Casiez et al., eq. 4).
    tau = 1.0 / (2 * math.pi * cutoff_hz)
    return 1.0 / (1.0 + tau / dt)


class OneEuroFilter:
    """One Euro filter on arrays of any fixed shape, elementwise, driven by time stamps.

    ``min_cutoff`` (Hz) sets smoothing at rest (lower: less jitter), ``beta`` (s/unit) how fast the
    cut-off rises with speed (higher: less lag), ``d_cutoff`` (Hz) smooths the speed estimate.
    A stamp not after the previous one returns the previous output unchanged.
    """

    def __init__(self, min_cutoff: float = 1.0, beta: float = 0.0, d_cutoff: float = 1.0) -> None:
        if min_cutoff <= 0 or d_cutoff <= 0 or beta < 0:
            raise ValueError("min_cutoff, d_cutoff: must be > 0; beta: must be >= 0")
        self.min_cutoff = min_cutoff
        self.beta = beta
        self.d_cutoff = d_cutoff
        self.reset()

    def reset(self) -> None:
        self._x: np.ndarray | None = None
        self._dx: np.ndarray | None = None
        self._stamp: int | None = None

    def __call__(self, value: np.ndarray, stamp_ns: int) -> np.ndarray:
        x = np.asarray(value, dtype=np.float64)
        if not np.isfinite(x).all():
            raise ValueError("value: contains non-finite values")
        stamp_ns = int(stamp_ns)
        if self._x is None or self._stamp is None:
            self._x, self._dx, self._stamp = x.copy(), np.zeros_like(x), stamp_ns
            return x.copy()
        if x.shape != self._x.shape:
            raise ValueError(f"value: shape {x.shape} differs from the filtered shape {self._x.shape}")
        if stamp_ns <= self._stamp:
            return self._x.copy()
        dt = (stamp_ns - self._stamp) * 1e-9
        a_d = _alpha(self.d_cutoff, dt)
        self._dx = a_d * (x - self._x) / dt + (1 - a_d) * self._dx
        cutoff = self.min_cutoff + self.beta * np.abs(self._dx)
        a = _alpha(cutoff, dt)
        self._x = a * x + (1 - a) * self._x
        self._stamp = stamp_ns
        return self._x.copy()


class RotationOneEuroFilter:
    """One Euro filter for rotation matrices (..., 3, 3): filtered in 6D, then Gram-Schmidt.

    The 6D representation (first two columns) is continuous, so unlike quaternions there is no
    q / -q sign flip to undo; for small steps its change in norm is close to the angle change (rad).
    """

    def __init__(self, min_cutoff: float = 1.0, beta: float = 0.0, d_cutoff: float = 1.0) -> None:
        self._filter = OneEuroFilter(min_cutoff, beta, d_cutoff)

    def reset(self) -> None:
        self._filter.reset()

    def __call__(self, rotation: np.ndarray, stamp_ns: int) -> np.ndarray:
        r = torch.as_tensor(np.asarray(rotation, dtype=np.float64))
        smoothed = self._filter(matrix_to_rot6d(r).numpy(), stamp_ns)
        return rot6d_to_matrix(torch.as_tensor(smoothed)).numpy()


class TrackSmoother:
    """One Euro filters of one track, one per named value, made on first use."""

    def __init__(self, min_cutoff: float, beta: float) -> None:
        self.min_cutoff, self.beta = min_cutoff, beta
        self._filters: dict[str, OneEuroFilter | RotationOneEuroFilter] = {}

    def __call__(
        self, values: Mapping[str, np.ndarray], stamp_ns: int, rotations: Collection[str] = ()
    ) -> dict[str, np.ndarray]:
        out = {}
        for name, value in values.items():
            f = self._filters.get(name)
            if f is None:
                cls = RotationOneEuroFilter if name in rotations else OneEuroFilter
                f = self._filters[name] = cls(self.min_cutoff, self.beta)
            out[name] = f(value, stamp_ns)
        return out
