"""``whmr bag`` on bad input and bad luck: one-line errors, no run lost (a bad frame, Ctrl-C, SIGTERM), a
truncated recording read up to the cut, a final /diagnostics message."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from whmr_fakes import TOPOLOGY, FakeEngine, SeenBody, image_msg, imu_msg, ros_kit

from whmr_core.runtime.config import PipelineConfig
from whmr_ros.bag_runner import BagRunConfig, run_bag
from whmr_ros.cli import main
from whmr_ros.host import HostConfig

W, H = 160, 120
T0 = 1_700_000_000_000_000_000
PERIOD = 33_333_333  # 30 Hz
TEST_DIR = Path(__file__).resolve().parent


def write_bag(path: Path, n_images: int, *, storage: str = "mcap", image=None, image_type=None) -> Path:
    """A bag of ``n_images`` images at 30 Hz with IMU at 200 Hz; ``image(k, msg)`` may spoil image k."""
    from rosbags.rosbag2 import StoragePlugin, Writer

    kit = ros_kit()
    store = kit.store
    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    rng = np.random.default_rng(0)
    with Writer(path, version=9, storage_plugin=plugin) as w:
        c_img = w.add_connection("/camera/image_raw", image_type or "sensor_msgs/msg/Image", typestore=store)
        c_imu = w.add_connection("/imu/data", "sensor_msgs/msg/Imu", typestore=store)
        for k in range(n_images):
            t = T0 + k * PERIOD
            for j in range(7):
                m = imu_msg(kit, t + j * 5_000_000, quat_xyzw=(0.0, 0.0, 0.0, 1.0))
                w.write(c_imu, t + j * 5_000_000, store.serialize_cdr(m, m.__msgtype__))
            if image_type is not None:  # a wrong type under the image topic
                m = kit.new(image_type, header=image_msg(kit, np.zeros((2, 2, 3), np.uint8), t).header,
                            format="jpeg", data=np.zeros(4, np.uint8))  # fmt: skip
            else:  # noise: incompressible, so a truncation cuts through images
                m = image_msg(kit, rng.integers(0, 255, (H, W, 3), dtype=np.uint8), t)
                if image is not None:
                    image(k, m)
            w.write(c_img, t + 1, store.serialize_cdr(m, m.__msgtype__))
    return path


NO_DETECTOR = PipelineConfig(detector="none")  # noise images: the whole image, then tracked boxes


def fake_engine() -> FakeEngine:
    engine = FakeEngine((W, H), focal=120.0)
    engine.bodies = [SeenBody(np.array([0.0, 0.5, 4.0]))]
    return engine


def read_bag(path: Path) -> dict[str, list]:
    from rosbags.highlevel import AnyReader

    from whmr_ros.message_types import typestore

    got: dict[str, list] = {}
    with AnyReader([path], default_typestore=typestore("ROS2_JAZZY")) as reader:
        for conn, _, raw in reader.messages():
            got.setdefault(conn.topic, []).append(reader.deserialize(raw, conn.msgtype))
    return got


def inputs_status(diagnostic_array):
    return next(s for s in diagnostic_array.status if s.name.endswith("inputs"))


@pytest.fixture
def fake_factory(monkeypatch):
    import whmr_core.runtime.factory as factory

    engine = fake_engine()
    monkeypatch.setattr(factory, "load_engine", lambda *a, **k: engine)
    monkeypatch.setattr(factory, "load_topology", lambda *a, **k: TOPOLOGY)
    return engine


def whmr(capsys, *args: str) -> tuple[int, str, str]:
    rc = main([*args])
    out = capsys.readouterr()
    return rc, out.out, out.err


# --- the command line's one error handler ------------------------------------------------------------


def test_ordinary_errors_are_one_line_with_exit_2(tmp_path, capsys):
    """A missing input, an existing output: `whmr bag: error: <what, which file>`, no traceback, and
    before any model is loaded."""
    rc, _, err = whmr(capsys, "bag", "--input", str(tmp_path / "nope"), "--output", str(tmp_path / "o"))
    assert rc == 2 and err.strip() == f"whmr bag: error: {tmp_path / 'nope'}: input bag not found"
    (tmp_path / "o").mkdir()
    src = write_bag(tmp_path / "in", 1)
    rc, _, err = whmr(capsys, "bag", "--input", str(src), "--output", str(tmp_path / "o"))
    assert rc == 2 and "output exists" in err and "Traceback" not in err and len(err.splitlines()) == 1
    with pytest.raises(FileExistsError):  # --debug: the traceback, for bug reports
        main(["bag", "--input", str(src), "--output", str(tmp_path / "o"), "--debug"])


def test_image_topic_of_the_wrong_type_is_refused_up_front(tmp_path, capsys, fake_factory):
    src = write_bag(tmp_path / "in", 3, image_type="sensor_msgs/msg/CompressedImage")
    rc, _, err = whmr(capsys, "bag", "--input", str(src), "--output", str(tmp_path / "o"), "--quiet")
    assert rc == 2
    assert "image topic '/camera/image_raw' holds sensor_msgs/msg/CompressedImage" in err
    assert "image_transport republish" in err and not (tmp_path / "o").exists()


def test_a_bag_without_a_single_processed_frame_exits_non_zero_and_says_why(tmp_path, capsys, fake_factory):
    src = write_bag(tmp_path / "in", 4, image=lambda k, m: setattr(m, "encoding", "yuv422"))
    rc, _, err = whmr(capsys, "bag", "--input", str(src), "--output", str(tmp_path / "o"), "--quiet")
    assert rc == 1
    assert (
        "whmr bag: error: no frame processed (image: dropped: encoding: unsupported encoding 'yuv422'" in err
    )


def test_eval_on_a_synth_folder_without_val_evaluates_its_train_split(tmp_path, capsys):
    import cv2

    from whmr_core.body import body_assets, load_body_model
    from whmr_core.data.annotations import annotations_from_scenes, write_annotations
    from whmr_core.data.scene import JointRegressors, SceneConfig, sample_scene_at

    body = load_body_model(variant="lowres")
    regs = JointRegressors.from_assets(body_assets(body))
    scenes = [sample_scene_at(5, i, body, regs, SceneConfig(min_inside=0.95)) for i in range(2)]
    for i, s in enumerate(scenes):
        cv2.imwrite(str(tmp_path / f"{i:03d}.png"), np.full((s.image_wh[1], s.image_wh[0], 3), 128, np.uint8))
    write_annotations(tmp_path / "train.npz", annotations_from_scenes(scenes, ["000.png", "001.png"]))
    rc, out, _ = whmr(capsys, "eval", "--data", str(tmp_path), "--batch-size", "2")
    assert rc == 0 and "has no val.npz; evaluating its train split (train.npz)" in out
    assert "mpjpe" in out.lower()
    rc, _, err = whmr(capsys, "eval", "--data", str(tmp_path / "empty_dir_missing"))
    assert rc == 2 and err.startswith("whmr eval: error: ") and "no annotation file" in err


# --- nothing lost ----------------------------------------------------------------------------------


class _FailsOnce(FakeEngine):
    def _run(self, inputs):
        if len(self.calls) == 3:
            self.calls.append(inputs)
            raise RuntimeError("CUDA error: an illegal memory access")  # what a torch engine may raise
        return super()._run(inputs)


def test_one_failing_frame_is_dropped_with_a_diagnostic_and_the_rest_is_written(tmp_path):
    engine = _FailsOnce((W, H), focal=120.0)
    engine.bodies = [SeenBody(np.array([0.0, 0.5, 4.0]))]
    src = write_bag(tmp_path / "in", 8)
    summary = run_bag(
        src, tmp_path / "out", engine, TOPOLOGY, BagRunConfig(pipeline=NO_DETECTOR, progress=False)
    )
    assert summary.frames_with_output == 7 and summary.dropped["frame"] == 1
    assert "RuntimeError: CUDA error" in summary.last_problem["frame"]
    got = read_bag(tmp_path / "out")
    assert len(got["/whmr/bodies"]) == 7 and not (tmp_path / "out.partial").exists()
    last = inputs_status(got["/diagnostics"][-1])
    assert last.level == 1 and "frame: dropped: RuntimeError" in last.message


def test_the_final_diagnostics_message_reports_problems_at_the_end_of_a_short_bag(tmp_path):
    """Diagnostics are throttled to 1 Hz of bag time: a 0.3 s bag used to end on "all inputs usable"."""
    spoil = lambda k, m: setattr(m, "encoding", "yuv422") if k >= 6 else None  # noqa: E731
    src = write_bag(tmp_path / "in", 9, image=spoil)
    config = BagRunConfig(
        pipeline=NO_DETECTOR, progress=False, host=HostConfig(camera_from_imu=(0.0, 0.0, 0.0, 1.0))
    )
    run_bag(src, tmp_path / "out", fake_engine(), TOPOLOGY, config)
    diags = read_bag(tmp_path / "out")["/diagnostics"]
    # The throttled one, at the first frame, from before the spoilt images (it warns only that the first
    # frame had no box but the whole image).
    assert "image: dropped" not in inputs_status(diags[0]).message
    last = inputs_status(diags[-1])
    assert last.level == 1 and "image: dropped: encoding" in last.message
    assert any(kv.key == "dropped_image" and kv.value == "3" for kv in last.values)


_CHILD = """
import sys, time
sys.path.insert(0, {test_dir!r})
import numpy as np
import whmr_core.runtime.factory as factory
from whmr_fakes import TOPOLOGY, FakeEngine, SeenBody

class Slow(FakeEngine):  # a slow engine: 30 ms a frame keeps the run going long after the signal
    def _run(self, inputs):
        print("frame", flush=True)
        time.sleep(0.03)
        return super()._run(inputs)

engine = Slow(({w}, {h}), focal=120.0)
engine.bodies = [SeenBody(np.array([0.0, 0.5, 4.0]))]
factory.load_engine = lambda *a, **k: engine
factory.load_topology = lambda *a, **k: TOPOLOGY
from whmr_ros.cli import main
sys.exit(main(["bag", "--input", {src!r}, "--output", {out!r}, "--quiet", "--detector", "none"]))
"""


@pytest.mark.slow  # a real `whmr bag` process, stopped by a real signal
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_closes_the_output_cleanly_and_a_rerun_replaces_it(tmp_path, sig):
    n = 150
    src = write_bag(tmp_path / "in", n)
    out = tmp_path / "out"
    code = _CHILD.format(test_dir=str(TEST_DIR), w=W, h=H, src=str(src), out=str(out))
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)  # fmt: skip
    for _ in range(10):  # ten frames processed: the run is well under way
        assert proc.stdout.readline() == "frame\n", proc.stderr.read() if proc.poll() is not None else ""
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + sig.value, err
    assert f"stopped by {sig.name}" in err and "out.partial (a valid bag" in err
    assert not out.exists()
    partial = tmp_path / "out.partial"
    assert (partial / "metadata.yaml").is_file()
    got = read_bag(partial)  # footer and metadata: a valid bag of what was processed
    assert 10 <= len(got["/whmr/bodies"]) < n
    assert f"stopped by {sig.name}" in inputs_status(got["/diagnostics"][-1]).message
    # The rerun is not refused: it replaces the partial output and completes.
    summary = run_bag(src, out, fake_engine(), TOPOLOGY, BagRunConfig(pipeline=NO_DETECTOR, progress=False))
    assert summary.frames_with_output == n and summary.output == out
    assert not partial.exists() and [p.name for p in out.glob("*.mcap")] == ["out.mcap"]
    assert len(read_bag(out)["/whmr/bodies"]) == n


# --- a truncated recording ---------------------------------------------------------------------------


def _cut_recording(bag: Path, keep: float) -> Path:
    """What a killed `ros2 bag record` leaves: the mcap cut short, no footer, no metadata.yaml."""
    mcap = next(bag.glob("*.mcap"))
    data = mcap.read_bytes()
    mcap.write_bytes(data[: int(len(data) * keep)])
    (bag / "metadata.yaml").unlink()
    return bag


def test_a_truncated_recording_is_processed_up_to_the_cut_and_reported(tmp_path, capsys, fake_factory):
    n = 60
    src = _cut_recording(write_bag(tmp_path / "in", n), keep=0.7)
    rc, out, err = whmr(capsys, "bag", "--input", str(src), "--output", str(tmp_path / "o"), "--quiet")
    assert rc == 0, err
    assert "whmr bag: warning: input truncated: in.mcap ends after" in err
    processed = int(out.split(" images, ")[1].split(" processed")[0])
    assert 0 < processed < n
    got = read_bag(tmp_path / "o")
    assert len(got["/whmr/bodies"]) == processed
    assert "bag: input truncated" in inputs_status(got["/diagnostics"][-1]).message


def test_a_truncated_mcap_file_given_directly_is_read_too(tmp_path):
    src = write_bag(tmp_path / "in", 30)
    mcap = next(src.glob("*.mcap"))
    data = mcap.read_bytes()
    mcap.write_bytes(data[: len(data) * 3 // 4])
    summary = run_bag(
        mcap, tmp_path / "o", fake_engine(), TOPOLOGY, BagRunConfig(pipeline=NO_DETECTOR, progress=False)
    )
    assert 0 < summary.frames_with_output < 30 and "ends after" in summary.truncated


def test_a_file_that_is_no_bag_is_refused_with_the_reason(tmp_path, capsys, fake_factory):
    junk = tmp_path / "junk.mcap"
    junk.write_bytes(b"\x00" * 100)
    rc, _, err = whmr(capsys, "bag", "--input", str(junk), "--output", str(tmp_path / "o"), "--quiet")
    assert rc == 2 and err.startswith(f"whmr bag: error: {junk}: not a readable ROS 2 bag")


def test_a_sqlite3_recording_without_metadata_points_to_reindex(tmp_path, capsys, fake_factory):
    src = write_bag(tmp_path / "in", 2, storage="sqlite3")
    (src / "metadata.yaml").unlink()
    rc, _, err = whmr(capsys, "bag", "--input", str(src), "--output", str(tmp_path / "o"), "--quiet")
    assert rc == 2 and "not a readable ROS 2 bag" in err and "ros2 bag reindex" in err
