"""When each output goes out: one schedule shared by the rclpy node and the bag runner.

Both hosts hand every processed frame (and, for diagnostics, the passage of time) to an
``OutputScheduler``, which decides what is published and hands the messages to an ``OutputSink`` (the
node's publishers, the bag runner's writer):

- ``topology``: once, before the first bodies (transient local on the node; once in a bag);
- ``bodies`` and ``tf``: for every processed frame;
- ``markers``: at most ``marker_rate_hz``, and only when someone listens (a mesh marker is ~1 MB);
- ``overlay``: every frame, when enabled and someone listens;
- ``diagnostics``: every ``diagnostics_period_s``.

The scheduler is clock-agnostic: times are nanoseconds of whatever clock the host runs on (image stamps in
a bag, the node's ROS clock, sim time included), and a clock that jumps back restarts the throttles.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Protocol

from whmr_ros.host import FrameOutputs, PreparedFrame, WhmrHost

__all__ = ["OutputRates", "OutputScheduler", "OutputSink", "Throttle"]


class OutputSink(Protocol):
    """Where messages go. ``name`` is one of topology, bodies, tf, markers, overlay, diagnostics."""

    def publish(self, name: str, msg: Any) -> None: ...

    def wanted(self, name: str) -> bool:
        """Whether building ``name`` is worth it (someone subscribes; a bag writes every output it has)."""
        ...


@dataclass(frozen=True)
class OutputRates:
    """What is published how often (the node's parameters of the same names; the bag runner's options)."""

    markers: bool = True
    marker_rate_hz: float = 5.0
    markers_mesh: bool = True
    overlay: bool = False
    diagnostics_period_s: float = 1.0

    def __post_init__(self) -> None:
        for name in ("marker_rate_hz", "diagnostics_period_s"):
            v = getattr(self, name)
            if not v == v or v < 0 or v == float("inf"):  # NaN, negative or infinite
                raise ValueError(f"{name}: expected a finite number >= 0, got {v}")


class Throttle:
    """Due at most once per period on slots a period apart, so a 30 Hz stream gives a 10 Hz rate (not
    every 4th frame); a slot missed by a late frame is not made up. ``period_ns`` 0: never due.

    A tolerance of 5% of the period absorbs the jitter of a timer that ticks at the period itself."""

    def __init__(self, period_s: float) -> None:
        self.period_ns = round(period_s * 1e9)
        self._next: int | None = None
        self._last: int | None = None

    def due(self, now_ns: int) -> bool:
        p = self.period_ns
        if p <= 0:
            return False
        if self._last is not None and now_ns < self._last:
            self.reset()  # the clock jumped back (a bag loops, sim time reset): start afresh
        if self._next is not None and now_ns < self._next - p // 20:
            return False
        nxt = (now_ns if self._next is None else self._next) + p
        self._next = nxt if nxt > now_ns else now_ns + p
        self._last = now_ns
        return True

    def reset(self) -> None:
        self._next = self._last = None


class OutputScheduler:
    def __init__(self, host: WhmrHost, rates: OutputRates, sink: OutputSink) -> None:
        self.host = host
        self.rates = rates
        self.sink = sink
        self._markers = Throttle(1.0 / rates.marker_rate_hz if rates.markers and rates.marker_rate_hz else 0)
        self._diagnostics = Throttle(rates.diagnostics_period_s)
        self._topology_sent = False

    def on_frame(self, out: FrameOutputs, prepared: PreparedFrame) -> None:
        """Publish one processed frame's outputs; throttles run on the image stamp."""
        stamp = out.result.stamp_ns
        sink, host = self.sink, self.host
        t0 = time.perf_counter()
        if not self._topology_sent:
            sink.publish("topology", host.topology(stamp))
            self._topology_sent = True
        sink.publish("bodies", out.bodies)
        sink.publish("tf", out.tf)
        if self.rates.overlay and sink.wanted("overlay"):
            sink.publish("overlay", host.overlay(out, prepared))
        t1 = time.perf_counter()
        host.stats.stages.add("publish", t1 - t0)
        # Check the listener before the throttle, so a subscriber that joins gets markers at once.
        if sink.wanted("markers") and self._markers.due(stamp):
            sink.publish("markers", host.markers(out, mesh=self.rates.markers_mesh))
            host.stats.stages.add("markers", time.perf_counter() - t1)

    def tick(self, now_ns: int, node_name: str = "whmr") -> bool:
        """Publish diagnostics when due at ``now_ns``; True when it did."""
        if not self._diagnostics.due(now_ns):
            return False
        self.sink.publish("diagnostics", self.host.diagnostics(now_ns, node_name))
        return True

    def reset(self) -> None:
        """Forget what was sent (the node's cleanup: a later configure latches the topology again)."""
        self._topology_sent = False
        self._markers.reset()
        self._diagnostics.reset()
