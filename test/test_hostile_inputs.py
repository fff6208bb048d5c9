"""What a hostile or unlucky user hands whmr (issue 26): odd file names, extreme images, loops of links,
unreadable files, colliding names, truncated videos, absurd options, YAML bombs, a full disk.

Each case: a clear one-line error or a counted drop, and the rest of the batch still processed. The
network is ``FakeEngine`` (whmr_fakes) so every test runs in well under a second or two."""

from __future__ import annotations

import itertools
import json
import os
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from whmr_fakes import TOPOLOGY, FakeEngine, SeenBody

from whmr_core.media.paths import opencv_path
from whmr_ros.cli import main

W, H = 160, 120
NOT_UTF8 = os.fsdecode(b"caf\xe9")  # bytes that are no UTF-8 text: Python carries them as a surrogate


@pytest.fixture
def fake_factory(monkeypatch):
    import whmr_core.runtime.factory as factory

    engine = FakeEngine((W, H), focal=120.0)
    engine.bodies = [SeenBody(np.array([0.0, 0.5, 4.0]))]
    monkeypatch.setattr(factory, "load_engine", lambda *a, **k: engine)
    monkeypatch.setattr(factory, "load_topology", lambda *a, **k: TOPOLOGY)
    return engine


def photo(path: Path, value: int = 120) -> Path:
    _, buf = cv2.imencode(".png", np.full((H, W, 3), value, np.uint8))
    path.write_bytes(buf.tobytes())
    return path


def png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` RGB pixels, with one empty data chunk."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")
    )


def image_cmd(capsys, *args: str) -> tuple[int, str, str]:
    rc = main(["image", *args, "--detector", "none", "--mesh", "network", "--quiet"])
    out = capsys.readouterr()
    return rc, out.out, out.err


# --- whmr image: one place reads untrusted image files ------------------------------------------------


def test_a_header_claiming_65535_squared_pixels_is_skipped_and_the_next_photo_processed(
    tmp_path, capsys, fake_factory
):
    d = tmp_path / "in"
    d.mkdir()
    (d / "a_huge.png").write_bytes(png_claiming(65535, 65535))
    photo(d / "b_good.png")
    rc, out, err = image_cmd(capsys, str(d), "--out", str(tmp_path / "out"), "--no-overlay")
    assert rc == 1, out + err
    assert "a_huge.png: 4,294,836,225 pixels, more than the 100 megapixels whmr decodes" in out
    assert "b_good.png: 1 person" in out and "1 of 2 images" in out
    assert (tmp_path / "out" / "b_good.json").is_file()


def test_a_decompression_bomb_is_refused_before_it_is_decoded(tmp_path, monkeypatch):
    """A real, valid PNG over the pixel limit (the limit lowered, so the bomb can be small): refused from
    its header, OpenCV never asked to decode it."""
    from whmr_core.media import image_files

    monkeypatch.setattr(image_files, "MAX_IMAGE_PIXELS", 100 * 100)
    bomb = photo(tmp_path / "bomb.png")  # 160 x 120 = 19,200 pixels
    decoded = []
    real = cv2.imdecode
    monkeypatch.setattr(image_files.cv2, "imdecode", lambda *a: decoded.append(1) or real(*a))
    with pytest.raises(
        image_files.ImageFileError, match=r"bomb.png: 160x120 pixels, more than the 0.01 megapix"
    ):
        image_files.read_image(bomb)
    # A format only OpenCV reads (Radiance HDR here) has no header to check: not decoded either.
    _, hdr = cv2.imencode(".hdr", np.ones((8, 8, 3), np.float32))
    with pytest.raises(image_files.ImageFileError, match=r"^x.png: not an image whmr reads"):
        image_files.decode_image(hdr.tobytes(), "x.png")
    assert not decoded
    monkeypatch.setattr(image_files, "MAX_IMAGE_BYTES", 100)
    with pytest.raises(image_files.ImageFileError, match=r"bomb.png: 0 MB, more than 0 MB"):
        image_files.read_image(bomb)  # the file's size is checked before it is read


def test_an_unreadable_file_is_skipped_and_the_batch_goes_on(tmp_path, capsys, fake_factory):
    """/proc/self/mem is a regular file whose first page cannot be read (EIO, even for root)."""
    d = tmp_path / "in"
    d.mkdir()
    (d / "a_unreadable.jpg").symlink_to("/proc/self/mem")
    photo(d / "b_good.png")
    fifo = d / "c_fifo.png"
    os.mkfifo(fifo)  # would block a reader until someone writes
    rc, out, err = image_cmd(capsys, str(d), "--out", str(tmp_path / "out"), "--no-overlay")
    assert rc == 1, out + err
    assert "a_unreadable.jpg: cannot read (Input/output error)" in out
    assert "b_good.png: 1 person" in out and "1 of 2 images" in out


def test_file_names_that_are_not_utf8_are_read_written_and_printed(tmp_path, capsys, fake_factory):
    d = tmp_path / f"in_{NOT_UTF8}"
    d.mkdir()
    photo(d / f"{NOT_UTF8}.png")
    out_dir = tmp_path / f"out_{NOT_UTF8}"
    rc, out, err = image_cmd(capsys, str(d), "--out", str(out_dir))  # with the overlay picture
    assert rc == 0, out + err
    assert "caf\\xe9.png: 1 person" in out
    assert sorted(os.listdir(os.fsencode(out_dir))) == [
        b"caf\xe9.json",
        b"caf\xe9_0.obj",
        b"caf\xe9_overlay.png",
    ]
    record = json.loads((out_dir / f"{NOT_UTF8}.json").read_text())
    assert record["source"].endswith("caf\\xe9.png")
    assert (
        cv2.imdecode(np.fromfile(out_dir / f"{NOT_UTF8}_overlay.png", np.uint8), cv2.IMREAD_COLOR).shape[0]
        == H
    )


def test_inputs_with_one_stem_get_output_names_no_other_input_has(tmp_path, capsys, fake_factory):
    from whmr_core.media.paths import output_stems

    d = tmp_path / "in"
    d.mkdir()
    for name, value in (("a.jpg", 60), ("a.png", 120), ("a_2.jpg", 200)):
        _, buf = cv2.imencode(Path(name).suffix, np.full((H, W, 3), value, np.uint8))
        (d / name).write_bytes(buf.tobytes())
    assert output_stems([d / "a.jpg", d / "a.png", d / "a_2.jpg"]) == ["a", "a_3", "a_2"]
    assert output_stems([Path("x/A.jpg"), Path("y/a.jpg")]) == ["A", "a_2"]  # case-folding file systems
    rc, out, _ = image_cmd(capsys, str(d), "--out", str(tmp_path / "out"), "--no-overlay")
    assert rc == 0 and "3 of 3 images" in out
    sources = {p.name: json.loads(p.read_text())["source"] for p in (tmp_path / "out").glob("*.json")}
    assert sources == {
        "a.json": str(d / "a.jpg"),
        "a_2.json": str(d / "a_2.jpg"),
        "a_3.json": str(d / "a.png"),
    }


def test_a_globstar_never_follows_links_into_loops(tmp_path):
    from whmr_core.media.image import collect_images
    from whmr_core.media.paths import expand_glob

    d = tmp_path / "d"
    (d / "sub").mkdir(parents=True)
    photo(d / "x.png")
    photo(d / "sub" / "y.png")
    (d / "loop1").symlink_to(".")  # glob.glob follows these: 2^40 paths
    (d / "loop2").symlink_to(".")
    (d / "sub" / "up").symlink_to("..")
    (d / "link.png").symlink_to(d / "x.png")  # a link to a file is a file
    assert expand_glob(f"{d}/**/*.png") == [d / "link.png", d / "sub" / "y.png", d / "x.png"]
    assert expand_glob(f"{d}/**") == [d / "link.png", d / "sub" / "y.png", d / "x.png"]
    files, _ = collect_images([f"{d}/**/*.png"])
    assert sorted(f.name for f in files) == ["link.png", "y.png"]  # link.png and x.png are one file


# --- options ------------------------------------------------------------------------------------------


def test_a_gravity_of_1e308_is_a_direction_not_an_overflow():
    from whmr_core.runtime.frames import Frame, camera_rotation_of

    R, _, _ = camera_rotation_of(Frame(np.zeros((4, 4, 3), np.uint8), 0, gravity=(1e308, 1e308, 0.0)))
    R_small, _, _ = camera_rotation_of(Frame(np.zeros((4, 4, 3), np.uint8), 0, gravity=(1.0, 1.0, 0.0)))
    np.testing.assert_allclose(R, R_small, atol=1e-12)
    np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-12)
    np.testing.assert_allclose(R[:, 1], [2**-0.5, 2**-0.5, 0.0], atol=1e-12)  # g, normalised


@pytest.mark.parametrize("k", ["0,0,0,0", "-500,500,80,60", "500,500,-1,60"])
def test_intrinsics_that_are_no_camera_are_refused_before_any_frame(k, capsys):
    with pytest.raises(SystemExit):
        main(["video", "clip.mp4", f"--K={k}"])
    err = capsys.readouterr().err
    assert "--K: focal lengths must be > 0 and the principal point >= 0" in err


# --- whmr video ---------------------------------------------------------------------------------------


def _clip(path: Path, frames: int = 10) -> Path:
    """An MJPG AVI of noise frames (its header declares the frame count; the index is at the end)."""
    with opencv_path(path) as name:
        w = cv2.VideoWriter(name, cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (W, H))
    rng = np.random.default_rng(0)
    for _ in range(frames):
        w.write(rng.integers(0, 255, (H, W, 3), dtype=np.uint8))
    w.release()
    return path


def video_cmd(capsys, *args: str) -> tuple[int, str, str]:
    rc = main(["video", *args, "--detector", "none", "--mesh", "network", "--quiet"])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_a_video_cut_short_is_processed_up_to_the_cut_and_said_so(tmp_path, capsys, fake_factory):
    clip = _clip(tmp_path / "clip.avi")
    data = clip.read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: int(len(data) * 0.6)])
    rc, out, err = video_cmd(capsys, str(cut), "--out", str(tmp_path / "out"), "--no-overlay")
    assert rc == 0
    read = int(out.split(" frames,")[0].rsplit(" ", 1)[1])
    assert 1 <= read < 10
    assert f"warning: {cut}: only {read} of the 10 frames it declares could be read" in err
    summary = json.loads((tmp_path / "out" / "cut_summary.json").read_text())
    assert summary["ended_early"].startswith(f"{cut}: only {read} of the 10")
    rc, out, err = video_cmd(capsys, str(clip), "--out", str(tmp_path / "out2"), "--no-overlay")
    assert rc == 0 and "10 frames, 10 processed" in out and "warning" not in err  # the whole file


def test_a_video_whose_name_is_not_utf8_is_read_and_its_overlay_written(tmp_path, capsys, fake_factory):
    clip = _clip(tmp_path / f"vid_{NOT_UTF8}.avi", frames=3)
    out_dir = tmp_path / f"out_{NOT_UTF8}"
    rc, out, err = video_cmd(capsys, str(clip), "--out", str(out_dir))
    assert rc == 0, out + err
    assert "3 frames, 3 processed" in out and "out_caf\\xe9" in out
    names = sorted(os.listdir(os.fsencode(out_dir)))
    assert names == [b"vid_caf\xe9.jsonl", b"vid_caf\xe9_overlay.mp4", b"vid_caf\xe9_summary.json"]
    assert (out_dir / f"vid_{NOT_UTF8}_overlay.mp4").stat().st_size > 0


def test_a_camera_that_is_not_there_is_one_line_on_stderr(capsys):
    assert main(["video", "7"]) == 2
    out = capsys.readouterr()
    assert out.err.strip().splitlines()[-1] == (
        "whmr video: error: camera 7: cannot be opened (no such camera, or another program uses it)"
    )
    assert "camera 7" not in out.out


def test_frames_refused_for_one_reason_are_counted_and_warned_about_once(
    tmp_path, capsys, fake_factory, caplog
):
    clip = _clip(tmp_path / "clip.avi", frames=5)
    # A principal point outside these 160x120 frames: every frame refused, for the same reason.
    rc, _, err = video_cmd(
        capsys, str(clip), "--out", str(tmp_path / "out"), "--no-overlay", "--K=100,100,900,60"
    )
    assert rc == 1 and "whmr video: error: no frame processed (all 5 frames dropped)" in err
    assert sum("dropped" in r.getMessage() for r in caplog.records) == 1
    assert "whmr video: warning: 5 frames dropped: " in err
    summary = json.loads((tmp_path / "out" / "clip_summary.json").read_text())
    assert list(summary["dropped"].values()) == [5] and summary["processed"] == 0


# --- the BlazePose tiler --------------------------------------------------------------------------------


def test_the_tiler_runs_a_bounded_number_of_passes_on_any_image():
    """A valid 20000x1 image took 39,999 detector passes (minutes; the node answered nothing meanwhile)."""
    from whmr_core.runtime.blazepose import MAX_TILES, BlazePoseDetector, tiles

    for w, h in ((20000, 1), (1, 20000), (65535, 3), (6000, 1000)):
        t = tiles(w, h)
        assert 2 <= len(t) <= MAX_TILES
        side = t[0][2]
        starts = [x if w > h else y for x, y, _ in t]
        assert starts[0] == 0 and starts[-1] + side == max(w, h)  # the whole long side covered
        assert all(b - a <= side / 2 + 1 for a, b in itertools.pairwise(starts))  # half overlap
    assert tiles(1280, 720) == [(0, 0, 720), (280, 0, 720), (560, 0, 720)]  # ordinary images unchanged
    detector = BlazePoseDetector()
    passes = []
    real = detector._in_pixels
    detector._in_pixels = lambda img: passes.append(img.shape) or real(img)
    boxes, scores = detector(np.full((1, 20000, 3), 128, np.uint8))
    assert len(passes) == MAX_TILES and boxes.shape == (0, 4) and scores.shape == (0,)


# --- params and config YAML ---------------------------------------------------------------------------


def _params_file(path: Path, body: str) -> Path:
    path.write_text("whmr:\n  ros__parameters:\n" + body, encoding="utf-8")
    return path


def _billion_laughs() -> str:
    text, prev = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n', "a"
    for name in "bcdefghi":
        text += f"{name}: &{name} [{', '.join([f'*{prev}'] * 9)}]\n"
        prev = name
    return text  # 342 bytes, 9^9 strings once its aliases are expanded


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("a: " + "[" * 5000 + "]" * 5000 + "\n", "nested deeper than 32 levels"),
        ("a: " + "{a: " * 50 + "1" + "}" * 50 + "\n", "nested deeper than 32 levels"),
        (_billion_laughs(), r"more than 10,000 values \(aliases expanded\)"),
        ("a: &a [1, *a]\n", "an alias inside its own anchor"),
        ("a: '" + "x" * (1 << 20) + "'\n", "larger than 1024 KB, not a config file"),
        ("a: [1, 2\n", "not valid YAML"),
    ],
    ids=["deep-lists", "deep-maps", "alias-bomb", "recursive-alias", "huge-string", "broken"],
)
def test_hostile_yaml_is_refused_at_once_naming_the_file(tmp_path, text, match):
    from whmr_core.config_io import ConfigError, read_yaml
    from whmr_ros.params import load_params

    path = tmp_path / "evil.yaml"
    path.write_text(text, encoding="utf-8")
    for load in (read_yaml, load_params):
        with pytest.raises(ConfigError, match=match) as err:
            load(path)
        assert str(err.value).startswith(f"{path}: ") and "\n" not in str(err.value)


def test_many_unknown_keys_give_one_short_line(tmp_path):
    from whmr_core.config_io import ConfigError
    from whmr_ros.params import load_params

    path = _params_file(tmp_path / "p.yaml", "".join(f"    k{i:05d}{'x' * 200}: 0\n" for i in range(300)))
    with pytest.raises(ConfigError) as err:
        load_params(path)
    text = str(err.value)
    assert text.startswith(f"{path}: unknown parameters ['k00000xxx") and "and 290 more" in text
    assert len(text) < 4000  # the known names are listed once; the 300 unknown ones are not


def test_params_numbers_are_read_as_ros_reads_them(tmp_path):
    """YAML 1.1 reads ``3e-2`` as a string (whmr bag refused it while ros2 launch took it); rcl reads it,
    ``010`` and ``0x10`` as strtol/strtod do, and ``y``/``off`` as bools (checked against rcl in
    test_node.py)."""
    from whmr_core.config_io import ros_scalar
    from whmr_ros.params import load_params

    body = "    marker_rate_hz: 3e-2\n    threads: 010\n    publish_overlay: y\n"
    body += "    host:\n      warn_interval_s: 1e1\n"
    p = load_params(_params_file(tmp_path / "p.yaml", body))
    assert p.node.marker_rate_hz == 0.03 and p.node.threads == 8 and p.node.publish_overlay is True
    assert p.host.warn_interval_s == 10.0
    assert [
        ros_scalar(t) for t in ("0x1F", "1_000", "1:20", "99999999999999999999", "'x'", "Off", "-.5")
    ] == [31, "1_000", "1:20", 1e20, "'x'", False, -0.5]


# --- whmr bag onto a full disk ------------------------------------------------------------------------


def _disk_fills(monkeypatch, *, after_writes: int, close_fails: bool) -> None:
    import errno

    from rosbags.rosbag2 import Writer

    real_write, real_close = Writer.write, Writer.close
    count = [0]

    def write(self, *a, **k):
        count[0] += 1
        if count[0] > after_writes:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(self, *a, **k)

    def close(self):
        if close_fails:  # the mcap summary and metadata.yaml do not fit either
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_close(self)

    monkeypatch.setattr(Writer, "write", write)
    monkeypatch.setattr(Writer, "close", close)


def test_a_full_disk_removes_an_output_that_cannot_be_completed_and_says_why(
    tmp_path, capsys, monkeypatch, fake_factory
):
    from test_bag_reliability import write_bag

    bag = write_bag(tmp_path / "in", 6)
    _disk_fills(monkeypatch, after_writes=5, close_fails=True)
    out = tmp_path / "out"
    rc = main(["bag", "--input", str(bag), "--output", str(out), "--detector", "none", "--quiet"])
    err = capsys.readouterr().err
    assert rc == 1
    assert "whmr bag: error: writing " in err
    assert f": [Errno 28] No space left on device; {out}.partial removed" in err
    assert "could not be completed into a valid bag" in err and "Traceback" not in err
    assert not out.exists() and not Path(f"{out}.partial").exists()


def test_a_write_error_with_a_clean_close_keeps_a_valid_partial_bag(
    tmp_path, capsys, monkeypatch, fake_factory
):
    from test_bag_reliability import read_bag, write_bag

    bag = write_bag(tmp_path / "in", 6)
    _disk_fills(monkeypatch, after_writes=5, close_fails=False)
    out = tmp_path / "out"
    rc = main(["bag", "--input", str(bag), "--output", str(out), "--detector", "none", "--quiet"])
    err = capsys.readouterr().err
    assert rc == 1 and f"are in {out}.partial, a valid bag" in err
    partial = Path(f"{out}.partial")
    assert (partial / "metadata.yaml").is_file()
    assert sum(len(v) for v in read_bag(partial).values()) == 5  # what was written before the error


# --- checkpoints ----------------------------------------------------------------------------------------


def test_a_zip_bomb_training_state_is_refused_before_torch_inflates_it(tmp_path, monkeypatch):
    import zipfile

    import torch

    from whmr_core.checkpoint import CheckpointError, load_checkpoint, load_torch_file, save_checkpoint

    ckpt = save_checkpoint(tmp_path / "ckpt", {"w": torch.zeros(3)}, train_state={"step": 7})
    assert load_checkpoint(ckpt)["train_state"] == {"step": 7}  # a real archive passes the check
    bomb = ckpt / "state.pt"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("archive/data.pkl", b"\0" * (64 << 20))  # 64 MB in about 64 KB
    assert bomb.stat().st_size < 1 << 20
    loads = []
    monkeypatch.setattr(torch, "load", lambda *a, **k: loads.append(a))
    with pytest.raises(
        CheckpointError, match=r"state.pt: unreadable training state \(.*expand to 64 MB from a 0.1 MB"
    ):
        load_checkpoint(ckpt)
    with pytest.raises(ValueError, match="a zip bomb"):
        load_torch_file(bomb)
    assert not loads


def test_a_named_path_that_names_nothing_makes_the_run_exit_1(tmp_path, capsys, fake_factory):
    good = photo(tmp_path / "good.png")
    args = (str(good), str(tmp_path / "typo.png"), str(tmp_path / "*.jpeg"), "--out", str(tmp_path / "o"))
    rc, out, _ = image_cmd(capsys, *args, "--no-overlay")
    assert rc == 1 and "1 of 1 images" in out
    assert "typo.png: no such file or folder" in out and "*.jpeg: no file matches" in out
    rc, out, _ = image_cmd(capsys, str(good), "--out", str(tmp_path / "o2"), "--no-overlay")
    assert rc == 0


# --- given detections --------------------------------------------------------------------------------------


def test_a_box_of_size_1e308_is_dropped_not_taken_as_the_whole_image():
    from whmr_core.runtime.boxes import filter_boxes
    from whmr_core.runtime.config import PipelineConfig
    from whmr_core.runtime.frames import Detections

    det = Detections(
        np.array([[-1e308, -1e308, 1e308, 1e308], [-20.0, 10.0, 60.0, 110.0]]), np.array([0.9, 0.8])
    )
    got = filter_boxes(det, "detection", W, H, PipelineConfig())
    np.testing.assert_allclose(got.boxes, [[-0.5, 10.0, 60.0, 110.0]])  # a person at the edge is kept
    assert [d.reason for d in got.dropped] == [
        f"box mostly outside the image (0% of it inside): [-1e+308, -1e+308, 1e+308, 1e+308] in {W}x{H}"
    ]


def test_500_copies_of_one_box_are_one_person():
    from whmr_core.runtime.boxes import filter_boxes
    from whmr_core.runtime.config import PipelineConfig
    from whmr_core.runtime.frames import Detections

    one = [10.0, 10.0, 60.0, 110.0]
    other = [80.0, 10.0, 130.0, 110.0]  # beside it: IoU 0
    boxes = np.array([one] * 499 + [[11.0, 10.0, 61.0, 110.0], other])
    scores = np.r_[np.full(499, 0.7), 0.9, 0.6]
    got = filter_boxes(Detections(boxes, scores), "detection", W, H, PipelineConfig())
    np.testing.assert_allclose(got.boxes, [[11.0, 10.0, 61.0, 110.0], other])  # the best copy, then the other
    assert len(got.dropped) == 499 and got.dropped[0].reason == "duplicate box (IoU 0.96 with a better one)"


def test_a_file_name_that_is_not_utf8_in_any_message_prints_as_an_escape(tmp_path, capsys):
    """The capture stream is strict UTF-8, as a terminal's is: the error line itself used to raise."""
    taken = tmp_path / f"out_{NOT_UTF8}"
    taken.mkdir()
    assert main(["bag", "--input", str(tmp_path), "--output", str(taken)]) == 2
    err = capsys.readouterr().err
    assert (
        err.strip()
        == f"whmr bag: error: {tmp_path}/out_caf\\udce9: output exists; remove it or choose another path"
    )


def test_a_megabyte_of_tiny_values_is_refused_within_a_second_or_two(tmp_path):
    """Pure-Python YAML parses ~10^4 values a second on a loaded CPU: the value limit bounds the time."""
    from whmr_core.config_io import MAX_YAML_BYTES, MAX_YAML_NODES, ConfigError, read_yaml

    path = tmp_path / "flat.yaml"
    path.write_text("a: [" + ",".join(["1"] * (MAX_YAML_BYTES // 2 - 8)) + "]\n")
    with pytest.raises(ConfigError, match=f"more than {MAX_YAML_NODES:,} values"):
        read_yaml(path)


# --- body model files ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spoil", "match"),
    [
        (lambda d: d.update(f=d["f"][:0]), "faces f: none"),  # was numpy's "zero-size array ..."
        (lambda d: d.update(weights=d["weights"].astype(str)), "weights must hold numbers, got dtype <U"),
    ],
    ids=["no-faces", "text-weights"],
)
def test_body_model_errors_name_the_file(tmp_path, spoil, match):
    from whmr_core.body.io import read_model_file
    from whmr_core.body.model import load_body_model, shipped_model_path

    arrays = dict(read_model_file(shipped_model_path("lowres")))
    spoil(arrays)
    path = tmp_path / "spoilt.npz"
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match=f"^{path}: {match}"):
        load_body_model(path)


# --- ROS images ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("encoding", "dtype"), [("16UC1", np.uint16), ("32FC1", np.float32)])
def test_a_depth_image_is_refused_as_one_not_read_as_a_grey_photo(encoding, dtype):
    from test_conversions import make_image

    from whmr_ros.conversions import MessageError, image_to_rgb

    msg = make_image(np.full((H, W), 1500, dtype), encoding)
    with pytest.raises(MessageError, match=f"{encoding} is a depth image \\(REP 118"):
        image_to_rgb(msg)
