"""Tracker id stability (IoU + Hungarian, birth/death) and One Euro filtering of vectors and rotations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from whmr_core.rotations import axis_angle_to_matrix, matrix_to_axis_angle
from whmr_core.tracking import (
    OneEuroFilter,
    RotationOneEuroFilter,
    Tracker,
    associate,
    iou_matrix,
)

FRAME_NS = 33_333_333  # 30 fps


def box(cx: float, cy: float, w: float, h: float) -> list[float]:
    return [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]


# --- IoU and assignment ------------------------------------------------------------------------------


def test_iou_matrix_values() -> None:
    a = np.array([[0, 0, 10, 10], [0, 0, 2, 2]], dtype=float)
    b = np.array([[5, 0, 15, 10], [0, 0, 10, 10], [20, 20, 30, 30]], dtype=float)
    np.testing.assert_allclose(iou_matrix(a, b), [[50 / 150, 1.0, 0.0], [0.0, 4 / 100, 0.0]], atol=1e-12)
    assert iou_matrix(np.zeros((0, 4)), b).shape == (0, 3)
    with pytest.raises(ValueError, match="x2 >= x1"):
        iou_matrix([[10, 0, 0, 10]], b)


def test_associate_is_optimal_not_greedy() -> None:
    # Greedy takes (0, 0) = 0.9 and leaves (1, 1) = 0.1 below the gate; the optimum pairs crosswise.
    iou = np.array([[0.9, 0.8], [0.85, 0.1]])
    assert sorted(associate(iou, min_iou=0.3)) == [(0, 1), (1, 0)]
    assert associate(np.array([[0.1]]), min_iou=0.3) == []
    assert associate(np.zeros((0, 2)), min_iou=0.3) == []


# --- tracker on a synthetic sequence -----------------------------------------------------------------


def crossing_sequence(n: int = 50, occlude: range = range(22, 29)) -> list[list[tuple[str, list[float]]]]:
    """Person A walks right, B walks left; they cross mid-sequence, where B is hidden behind A."""
    frames = []
    for i in range(n):
        a = ("A", box(50 + 10 * i, 200, 100, 200))
        b = ("B", box(550 - 10 * i, 215, 90, 180))
        frames.append([a] if i in occlude else [a, b])
    return frames


def run(tracker: Tracker, frames: list, seed: int = 0) -> dict[str, list[int]]:
    rng = np.random.default_rng(seed)
    ids: dict[str, list[int]] = {}
    for i, dets in enumerate(frames):
        dets = [dets[k] for k in rng.permutation(len(dets))]  # detector order carries no identity
        boxes = np.array([d[1] for d in dets]).reshape(-1, 4)
        boxes = boxes + rng.normal(0, 2.0, boxes.shape)  # detector jitter
        tracks = tracker.update(boxes, i * FRAME_NS, scores=np.full(len(dets), 0.9))
        assert len(tracks) == len(dets)
        for (name, _), t in zip(dets, tracks, strict=True):
            if t.confirmed:
                ids.setdefault(name, []).append(t.track_id)
    return ids


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ids_stable_through_crossing_and_occlusion(seed: int) -> None:
    ids = run(Tracker(min_hits=3, max_age=10), crossing_sequence(), seed)
    assert len(set(ids["A"])) == 1, ids["A"]
    assert len(set(ids["B"])) == 1, ids["B"]
    assert ids["A"][0] != ids["B"][0]
    assert len(ids["A"]) == 50 - 2 and len(ids["B"]) == 50 - 7 - 2  # confirmed from the third hit


def test_occlusion_longer_than_max_age_gives_new_id() -> None:
    ids = run(Tracker(min_hits=3, max_age=3), crossing_sequence(occlude=range(20, 30)))
    assert len(set(ids["A"])) == 1
    assert len(set(ids["B"])) == 2  # B's first track died while hidden


def test_tentative_false_positive_never_confirmed() -> None:
    tracker = Tracker(min_hits=3, max_age=5)
    person = box(300, 200, 100, 200)
    t0 = tracker.update(np.array([person, box(50, 50, 20, 20)]), 0)
    assert [t.confirmed for t in t0] == [False, False]
    for i in range(1, 4):
        (t,) = tracker.update(np.array([person]), i * FRAME_NS)
    assert t.confirmed and t.hits == 4 and t.track_id == t0[0].track_id
    assert [tr.track_id for tr in tracker.confirmed_tracks()] == [t.track_id]
    assert len(tracker.tracks) == 1  # the one-frame blip was dropped


def test_missed_track_kept_for_max_age_frames() -> None:
    tracker = Tracker(min_hits=1, max_age=2)
    (t,) = tracker.update(np.array([box(300, 200, 100, 200)]), 0)
    assert t.confirmed
    for i in (1, 2):
        assert tracker.update(np.zeros((0, 4)), i * FRAME_NS) == []
        assert tracker.confirmed_tracks()[0].misses == i
    tracker.update(np.zeros((0, 4)), 3 * FRAME_NS)
    assert tracker.tracks == []


def test_tracker_rejects_bad_input() -> None:
    tracker = Tracker()
    tracker.update(np.array([box(1, 1, 1, 1)]), 10)
    with pytest.raises(ValueError, match="before the previous"):
        tracker.update(np.zeros((0, 4)), 5)
    with pytest.raises(ValueError, match="non-finite"):
        tracker.update(np.array([[0, 0, np.nan, 1]]), 20)
    with pytest.raises(ValueError, match="scores"):
        tracker.update(np.array([box(1, 1, 1, 1)]), 20, scores=np.ones(2))


# --- One Euro filter ---------------------------------------------------------------------------------


def simulate(f: OneEuroFilter, rate_hz: float, seconds: float, signal, noise: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    t = np.arange(0, seconds, 1 / rate_hz)
    raw = np.array([signal(x) for x in t]) + rng.normal(0, noise, (len(t), 3))
    out = np.array([f(r, round(x * 1e9)) for r, x in zip(raw, t, strict=True)])
    return t, raw, out


def step(x: float) -> np.ndarray:
    return np.full(3, 0.0 if x < 1.0 else 1.0)


def test_one_euro_reduces_jitter_at_rest() -> None:
    t, raw, out = simulate(OneEuroFilter(min_cutoff=1.0, beta=0.0), 100, 2.0, lambda x: np.ones(3), 0.05)
    settled = t > 0.5
    assert out[settled].std() < 0.3 * raw[settled].std()
    assert abs(out[settled].mean() - 1.0) < 0.02


def test_one_euro_tracks_a_step_with_beta_and_lags_without() -> None:
    fast = OneEuroFilter(min_cutoff=1.0, beta=2.0, d_cutoff=1.0)
    slow = OneEuroFilter(min_cutoff=1.0, beta=0.0)
    t, raw, out_fast = simulate(fast, 100, 2.0, step, 0.01)
    _, _, out_slow = simulate(slow, 100, 2.0, step, 0.01)
    after = int(np.searchsorted(t, 1.1))  # 100 ms after the step
    assert np.all(np.abs(out_fast[after] - 1.0) < 0.1), out_fast[after]
    assert np.all(out_slow[after] < 0.6), out_slow[after]
    assert np.all(np.abs(out_fast[-1] - 1.0) < 0.02)  # and settles on the new value
    # Still smooths at rest before the step.
    assert out_fast[50:100].std() < 0.6 * raw[50:100].std()


def test_one_euro_uses_time_stamps_not_sample_count() -> None:
    # Same signal at 50 Hz and 200 Hz: the step response 200 ms later must agree.
    outs = []
    for rate in (50, 200):
        t, _, out = simulate(OneEuroFilter(min_cutoff=1.0, beta=0.0), rate, 1.2, step, 0.0)
        outs.append(out[np.searchsorted(t, 1.2 - 1e-9) - 1][0])
    assert abs(outs[0] - outs[1]) < 0.05 * max(outs), outs


def test_one_euro_duplicate_stamp_and_errors() -> None:
    f = OneEuroFilter(min_cutoff=1.0)
    np.testing.assert_array_equal(f(np.array([1.0, 2.0]), 0), [1.0, 2.0])
    y = f(np.array([3.0, 3.0]), 10_000_000)
    np.testing.assert_array_equal(f(np.array([100.0, 100.0]), 10_000_000), y)  # same stamp: unchanged
    with pytest.raises(ValueError, match="shape"):
        f(np.zeros(3), 20_000_000)
    with pytest.raises(ValueError, match="non-finite"):
        f(np.array([np.nan, 0.0]), 20_000_000)
    f.reset()
    np.testing.assert_array_equal(f(np.zeros(3), 0), np.zeros(3))
    with pytest.raises(ValueError):
        OneEuroFilter(min_cutoff=0.0)


def rot(axis_angle: np.ndarray) -> np.ndarray:
    return axis_angle_to_matrix(torch.as_tensor(axis_angle, dtype=torch.float64)).numpy()


def angle_between(a: np.ndarray, b: np.ndarray) -> float:
    rel = torch.as_tensor(a.T @ b)
    return float(torch.linalg.vector_norm(matrix_to_axis_angle(rel)))


def test_rotation_filter_smooths_and_stays_a_rotation() -> None:
    rng = np.random.default_rng(3)
    base = np.array([0.3, -1.2, 0.5])
    f = RotationOneEuroFilter(min_cutoff=1.0, beta=0.0)
    raw_err, out_err = [], []
    for i in range(200):
        noisy = rot(base + rng.normal(0, 0.05, 3))
        out = f(noisy, i * 10_000_000)
        np.testing.assert_allclose(out.T @ out, np.eye(3), atol=1e-9)
        assert np.linalg.det(out) > 0
        if i > 50:
            raw_err.append(angle_between(noisy, rot(base)))
            out_err.append(angle_between(out, rot(base)))
    assert np.mean(out_err) < 0.3 * np.mean(raw_err)


def test_rotation_filter_batched_and_tracks_a_turn() -> None:
    f = RotationOneEuroFilter(min_cutoff=1.0, beta=1.0)
    start = np.stack([rot(np.array([0.0, 0.0, 0.0])), rot(np.array([0.0, 0.5, 0.0]))])
    end = np.stack([rot(np.array([0.0, 0.0, math.pi / 2])), rot(np.array([0.0, 0.5 + math.pi / 2, 0.0]))])
    f(start, 0)
    for i in range(1, 31):  # a 90 degree turn held for 300 ms at 100 Hz
        out = f(end, i * 10_000_000)
    assert out.shape == (2, 3, 3)
    assert max(angle_between(out[k], end[k]) for k in range(2)) < math.radians(3)
