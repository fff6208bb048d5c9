"""The output schedule shared by the node and the bag runner (no ROS needed)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from whmr_ros.host import StageTimes
from whmr_ros.scheduler import OutputRates, OutputScheduler, Throttle

MS = 1_000_000


class _Host:
    """Just the builders the scheduler calls; each returns a tag naming what was built."""

    def __init__(self) -> None:
        self.stats = SimpleNamespace(stages=StageTimes())

    def topology(self, stamp):
        return ("topology", stamp)

    def markers(self, out, mesh=True):
        return ("markers", out.result.stamp_ns, mesh)

    def overlay(self, out, prepared):
        return ("overlay", out.result.stamp_ns)

    def diagnostics(self, now_ns, node_name="whmr"):
        return ("diagnostics", now_ns, node_name)


class _Sink:
    def __init__(self, listening=("markers", "overlay")):
        self.listening = set(listening)
        self.sent: list[tuple[str, object]] = []

    def publish(self, name, msg):
        self.sent.append((name, msg))

    def wanted(self, name):
        return name in self.listening

    def names(self):
        return [n for n, _ in self.sent]


def _frame(stamp):
    out = SimpleNamespace(result=SimpleNamespace(stamp_ns=stamp), bodies=("bodies", stamp), tf=("tf", stamp))
    return out, None


def test_throttle_keeps_the_rate_on_slots_and_restarts_after_a_jump_back():
    t = Throttle(0.1)  # 10 Hz over a 30 Hz stream: slots at 0, 100, 200 ms ...
    stamps = [round(k * 1000 / 30) * MS for k in range(30)]
    due = [s for s in stamps if t.due(s)]
    assert [d // MS for d in due] == [0, 100, 200, 300, 400, 500, 600, 700, 800, 900]
    assert not t.due(950 * MS)
    assert t.due(10 * MS)  # the clock jumped back more than a period: due at once, not in 900 ms
    assert not Throttle(0).due(0)


def test_throttle_absorbs_timer_jitter_at_its_own_period():
    t = Throttle(1.0)
    ticks = [0, 1_002, 1_999, 3_001, 3_998]  # a 1 Hz timer firing a few ms early or late
    assert all(t.due(ms * MS) for ms in ticks)


def test_topology_once_then_bodies_and_tf_every_frame_markers_throttled():
    sink = _Sink()
    s = OutputScheduler(_Host(), OutputRates(marker_rate_hz=10.0, overlay=True), sink)
    for k in range(6):
        s.on_frame(*_frame(k * 33 * MS))
    names = sink.names()
    assert names[0] == "topology" and names.count("topology") == 1
    assert names.count("bodies") == names.count("tf") == names.count("overlay") == 6
    assert [m[1] // MS for n, m in sink.sent if n == "markers"] == [0, 99]  # 10 Hz of image time
    # Timed per frame: publishing every frame, markers only when built.
    assert s.host.stats.stages.count == {"publish": 6, "markers": 2}
    s.reset()
    s.on_frame(*_frame(500 * MS))
    assert sink.names().count("topology") == 2  # a new configure latches it again


def test_markers_and_overlay_only_for_listeners():
    sink = _Sink(listening=())
    s = OutputScheduler(_Host(), OutputRates(marker_rate_hz=100.0, overlay=True), sink)
    s.on_frame(*_frame(0))
    assert "markers" not in sink.names() and "overlay" not in sink.names()
    sink.listening.add("markers")
    s.on_frame(*_frame(5 * MS))  # a subscriber that joins gets markers at once
    assert sink.names()[-1] == "markers"
    s2 = OutputScheduler(_Host(), OutputRates(markers=False, overlay=False), _Sink())
    s2.on_frame(*_frame(0))
    assert set(s2.sink.names()) == {"topology", "bodies", "tf"}


def test_diagnostics_cadence_on_the_hosts_clock():
    sink = _Sink()
    s = OutputScheduler(_Host(), OutputRates(diagnostics_period_s=1.0), sink)
    published = [t for t in range(0, 3_500, 100) if s.tick(t * MS, "n")]
    assert published == [0, 1_000, 2_000, 3_000]
    assert sink.sent[0] == ("diagnostics", ("diagnostics", 0, "n"))


@pytest.mark.parametrize("bad", [float("nan"), -1.0, float("inf")])
def test_rates_must_be_finite_and_not_negative(bad):
    with pytest.raises(ValueError, match="marker_rate_hz"):
        OutputRates(marker_rate_hz=bad)
