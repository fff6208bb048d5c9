"""A small ROS-free TF buffer for the bag runner: static and dynamic transforms, lookups through the tree.

The node uses tf2_ros instead; both are wrapped as the same ``lookup(target, source, stamp_ns)`` callable,
returning (R, t) with X_target = R X_source + t, or None when the frames are not connected (with the
reason in ``last_error``). Dynamic transforms are taken at the nearest sample within ``max_age_ns``
(no interpolation: gravity-aligned fixed frames change slowly against a 30 Hz camera).
"""

from __future__ import annotations

import bisect
from collections import deque

import numpy as np

from whmr_core.gravity import as_rotation_matrix
from whmr_ros.conversions import MessageError, header_stamp_ns

__all__ = ["TransformBuffer"]

_Rigid = tuple[np.ndarray, np.ndarray]


def _compose(a: _Rigid, b: _Rigid) -> _Rigid:
    """a o b: first b, then a."""
    return a[0] @ b[0], a[0] @ b[1] + a[1]


def _invert(a: _Rigid) -> _Rigid:
    return a[0].T, -a[0].T @ a[1]


class TransformBuffer:
    def __init__(self, max_age_ns: int = 200_000_000, buffer_len: int = 2000) -> None:
        self.max_age_ns = max_age_ns
        self.buffer_len = buffer_len
        self._static: dict[tuple[str, str], _Rigid] = {}  # (parent, child) -> parent <- child
        self._dynamic: dict[tuple[str, str], tuple[list[int], deque]] = {}
        self.last_error = ""

    def add_message(self, msg: object, static: bool) -> list[str]:
        """Add a tf2_msgs/TFMessage; returns reasons for transforms that were skipped."""
        problems = []
        for tr in getattr(msg, "transforms", []):
            try:
                self.add(tr, static)
            except (MessageError, ValueError, AttributeError) as e:
                problems.append(str(e))
        return problems

    def add(self, tr: object, static: bool) -> None:
        """Add one geometry_msgs/TransformStamped (parent = header.frame_id)."""
        parent, child = tr.header.frame_id.lstrip("/"), tr.child_frame_id.lstrip("/")  # type: ignore[attr-defined]
        q, v = tr.transform.rotation, tr.transform.translation  # type: ignore[attr-defined]
        r = as_rotation_matrix(np.array([q.x, q.y, q.z, q.w]), f"transform {parent} -> {child}")
        t = np.array([v.x, v.y, v.z], dtype=np.float64)
        if not np.isfinite(t).all():
            raise ValueError(f"transform {parent} -> {child}: non-finite translation")
        if static:
            self._static[(parent, child)] = (r, t)
            return
        stamp = header_stamp_ns(tr)
        stamps, values = self._dynamic.setdefault((parent, child), ([], deque()))
        if stamps and stamp <= stamps[-1]:
            return  # out of order or repeated: keep the series sorted
        stamps.append(stamp)
        values.append((r, t))
        if len(stamps) > self.buffer_len:
            del stamps[0]
            values.popleft()

    def _edge(self, parent: str, child: str, stamp_ns: int | None) -> _Rigid | None:
        if (parent, child) in self._static:
            return self._static[(parent, child)]
        series = self._dynamic.get((parent, child))
        if not series or not series[0]:
            return None
        stamps, values = series
        if stamp_ns is None:
            return values[-1]
        i = bisect.bisect_left(stamps, stamp_ns)
        best = min((k for k in (i - 1, i) if 0 <= k < len(stamps)), key=lambda k: abs(stamps[k] - stamp_ns))
        if abs(stamps[best] - stamp_ns) > self.max_age_ns:
            return None
        return values[best]

    def lookup(self, target: str, source: str, stamp_ns: int | None = None) -> _Rigid | None:
        """(R, t) with X_target = R X_source + t, or None (reason in ``last_error``)."""
        target, source = target.lstrip("/"), source.lstrip("/")
        if target == source:
            return np.eye(3), np.zeros(3)
        edges = set(self._static) | {k for k, (s, _) in self._dynamic.items() if s}
        neighbours: dict[str, list[tuple[str, str, str]]] = {}
        for p, c in edges:
            neighbours.setdefault(c, []).append((p, p, c))  # child -> parent
            neighbours.setdefault(p, []).append((c, p, c))  # parent -> child
        # Breadth-first from source, carrying target-independent "frame <- source" transforms.
        seen = {source: (np.eye(3), np.zeros(3))}
        queue = deque([source])
        while queue:
            frame = queue.popleft()
            for nxt, p, c in neighbours.get(frame, []):
                if nxt in seen:
                    continue
                edge = self._edge(p, c, stamp_ns)
                if edge is None:
                    continue
                step = edge if nxt == p else _invert(edge)  # nxt <- frame
                seen[nxt] = _compose(step, seen[frame])
                if nxt == target:
                    return seen[nxt]
                queue.append(nxt)
        self.last_error = f"no transform from {source!r} to {target!r}" + (
            "" if target in neighbours else f" ({target!r} unknown)"
        )
        return None
