"""``whmr image`` and ``whmr video`` as a user runs them: real photos, the shipped detector and network."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from whmr_core.media.image import collect_images
from whmr_core.media.results import write_mesh
from whmr_core.tracking import iou_matrix
from whmr_ros.cli import main

PHOTOS = Path(__file__).parent / "data" / "photos"
HAND = {k: np.asarray(v) for k, v in json.loads((PHOTOS / "person_boxes.json").read_text()).items()}


def _two_people(path: Path) -> np.ndarray:
    a = cv2.imread(str(PHOTOS / "astronaut.jpg"))
    c = cv2.imread(str(PHOTOS / "camera.jpg"))
    cv2.imwrite(str(path), np.concatenate([c, a], axis=1), [cv2.IMWRITE_JPEG_QUALITY, 92])
    return np.concatenate([HAND["camera.jpg"], HAND["astronaut.jpg"] + [512, 0, 512, 0]])


def test_collect_images_files_folders_globs_and_what_is_skipped(tmp_path):
    (tmp_path / "a.jpg").write_bytes(b"x")
    (tmp_path / "b.PNG").write_bytes(b"x")
    (tmp_path / "notes.txt").write_text("x")
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "c.jpeg").write_bytes(b"x")
    files, warnings = collect_images([str(tmp_path), str(sub / "*.jpeg"), str(tmp_path / "gone.jpg")])
    assert [f.name for f in files] == ["a.jpg", "b.PNG", "c.jpeg"]
    assert any("skipped 1 files that are not images" in w for w in warnings)
    assert any("gone.jpg: no such file" in w for w in warnings)


def test_meshes_are_written_as_obj_and_ply(tmp_path):
    v = np.array([[0.0, 0, 1], [1, 0, 1], [0, 1, 1]])
    f = np.array([[0, 1, 2]])
    text = write_mesh(tmp_path / "m.obj", v, f).read_text().splitlines()
    assert "v 1.00000 0.00000 1.00000" in text and text[-1] == "f 1 2 3"
    data = write_mesh(tmp_path / "m.ply", v, f).read_bytes()
    header, body = data.split(b"end_header\n")
    assert b"element vertex 3" in header and b"element face 1" in header
    assert len(body) == 3 * 12 + 1 + 12
    np.testing.assert_array_equal(np.frombuffer(body[:36], "<f4").reshape(3, 3), v)
    with pytest.raises(ValueError, match=r"\.obj or \.ply"):
        write_mesh(tmp_path / "m.stl", v, f)


@pytest.fixture(scope="module")
def photo_run(tmp_path_factory):
    """One ``whmr image`` run over a folder: two photos, a two-person photo and a file that is no image."""
    d = tmp_path_factory.mktemp("photos")
    for name in ("astronaut.jpg", "camera.jpg"):
        (d / name).write_bytes((PHOTOS / name).read_bytes())
    want_two = _two_people(d / "two.jpg")
    (d / "broken.jpg").write_text("not a picture")
    cv2.imwrite(str(d / "zz_sky.png"), np.full((300, 400, 3), (230, 170, 120), np.uint8))  # nobody, last
    out = d / "out"
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = main(["image", str(d), "--out", str(out), "--quiet"])
    return rc, buf.getvalue(), out, want_two


@pytest.mark.slow
def test_whmr_image_on_a_folder_of_photos(photo_run):
    rc, printed, out, _ = photo_run
    assert rc == 1  # one file skipped
    assert "warning: skipped" in printed and "broken.jpg" in printed and "Traceback" not in printed
    for stem in ("astronaut", "camera"):
        assert f"{stem}.jpg: 1 person at depth" in printed  # the one-line summary
        rec = json.loads((out / f"{stem}.json").read_text())
        assert (rec["width"], rec["height"]) == (512, 512) and rec["focal_from_K"] is False
        (p,) = rec["persons"]
        assert p["index"] == 0 and "track_id" not in p  # images stand alone
        box = np.clip(p["box_xyxy"], -0.5, 511.5)
        assert iou_matrix(box[None], HAND[f"{stem}.jpg"])[0, 0] >= 0.6
        assert np.shape(p["joints_camera"]) == (24, 3) and np.shape(p["joints_gravity"]) == (24, 3)
        assert np.shape(p["pose"]) == (24, 3) and len(p["betas"]) == 10
        for q in (p["root_orientation_camera"], p["root_orientation_gravity"]):
            assert np.linalg.norm(q) == pytest.approx(1.0, abs=1e-4)
        assert p["translation_camera"][2] > 0 and rec["focal_px"] == p["focal_px"] > 0
        # The full free body (13,492 vertices) posed with the prediction, in the camera frame.
        obj = (out / f"{stem}_0.obj").read_text().splitlines()
        assert sum(line.startswith("v ") for line in obj) == 13492
        pic = cv2.imread(str(out / f"{stem}_overlay.png"))
        assert pic.shape[0] == 512 and pic.shape[1] > 2 * 512  # photo | meshes over it | side view


@pytest.mark.slow
def test_no_body_carries_from_one_photo_into_the_next(photo_run):
    _, printed, out, _ = photo_run
    # The sky comes after three photos with people: without the reset the pipeline would follow their
    # tracked boxes into it.
    assert json.loads((out / "zz_sky.json").read_text())["persons"] == []
    assert "zz_sky.png: 0 persons (the detector found nobody)" in printed


@pytest.mark.slow
def test_two_people_in_one_photo_share_one_camera(photo_run):
    _, printed, out, want = photo_run
    rec = json.loads((out / "two.json").read_text())
    assert "two.jpg: 2 persons" in printed and "(fused)" in printed
    boxes = np.clip([p["box_xyxy"] for p in rec["persons"]], -0.5, [1023.5, 511.5, 1023.5, 511.5])
    iou = iou_matrix(want, boxes)
    assert (iou.max(1) >= 0.6).all() and set(iou.argmax(1)) == {0, 1}
    focals = {p["focal_px"] for p in rec["persons"]}
    assert focals == {rec["focal_px"]}  # one focal length for the image


@pytest.mark.slow
def test_per_person_focal_and_K_options(tmp_path, photo_run, capsys):
    d = photo_run[2].parent
    assert main(["image", str(d / "two.jpg"), "--out", str(tmp_path / "pp"), "--quiet", "--per-person-focal",
                 "--mesh-format", "ply", "--no-overlay"]) == 0  # fmt: skip
    rec = json.loads((tmp_path / "pp" / "two.json").read_text())
    assert rec["focal_px"] is None and len({p["focal_px"] for p in rec["persons"]}) == 2
    assert (tmp_path / "pp" / "two_1.ply").read_bytes().startswith(b"ply\n")
    assert not list((tmp_path / "pp").glob("*.png"))
    args = ["--K", "600,600,256,256", "--level", "--mesh-format", "none", "--no-overlay", "--quiet"]
    assert main(["image", str(d / "astronaut.jpg"), "--out", str(tmp_path / "k"), *args]) == 0
    rec = json.loads((tmp_path / "k" / "astronaut.json").read_text())
    assert rec["focal_from_K"] and rec["focal_px"] == 600.0 and rec["gravity_source"] == "given"
    assert rec["persons"][0]["translation_is_metric"]
    assert "focal 600 px (from K)" in capsys.readouterr().out


def test_photos_allow_a_crowd_and_its_tiles_and_video_keeps_its_frame_budget():
    import argparse

    from whmr_core.media.image import PHOTO_MAX_PERSONS, add_image_arguments, pipeline_from_args
    from whmr_core.media.video import add_video_arguments
    from whmr_core.runtime.config import PipelineConfig

    image, video = argparse.ArgumentParser(), argparse.ArgumentParser()
    add_image_arguments(image)
    add_video_arguments(video)
    photo, frame = image.parse_args(["x.jpg"]), video.parse_args(["0"])
    assert photo.max_persons == PHOTO_MAX_PERSONS == 16 and photo.crowd_tiles
    assert frame.max_persons == PipelineConfig().max_persons and not frame.crowd_tiles
    args = image.parse_args(["x.jpg", "--max-persons", "3", "--no-crowd-tiles", "--engine", "onnxruntime"])
    config = pipeline_from_args(args).config
    assert config.max_persons == 3 and not config.movenet_crowd_tiles
    assert pipeline_from_args(photo).detector.tile_crowds


def test_the_output_folder_is_not_read_as_input(tmp_path, capsys):
    (tmp_path / "x_overlay.png").write_bytes(b"x")
    assert main(["image", str(tmp_path), "--out", str(tmp_path)]) == 2
    out = capsys.readouterr().out
    assert "skipped 1 images in the output folder" in out and "no images to process" in out


def test_bad_options_are_one_line_errors(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["image", "x.jpg", "--K", "1,2,3"])
    assert "--K: expected 4 comma-separated numbers" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["image", "x.jpg", "--max-persons", "0"])
    assert "--max-persons: expected a whole number >= 1, got '0'" in capsys.readouterr().err
    assert main(["image", str(tmp_path / "nothing-here")]) == 2
    assert "no such file or folder" in capsys.readouterr().out


@pytest.mark.slow
def test_whmr_video_tracks_people_across_frames(tmp_path, capsys):
    a = cv2.imread(str(PHOTOS / "astronaut.jpg"))
    c = cv2.imread(str(PHOTOS / "camera.jpg"))
    scene = np.concatenate([np.full((512, 24, 3), 128, np.uint8), c, a], axis=1)
    clip = tmp_path / "clip.mp4"
    w = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (1024, 512))
    for k in range(6):  # the camera pans: the people move 4 px per frame
        w.write(np.ascontiguousarray(scene[:, 4 * k : 4 * k + 1024]))
    w.release()
    out = tmp_path / "out"
    assert main(["video", str(clip), "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "6 frames, 6 processed" in printed and "in 2 tracks" in printed and "p90" in printed
    frames = [json.loads(line) for line in (out / "clip.jsonl").read_text().splitlines()]
    assert [f["frame"] for f in frames] == list(range(6))
    # The photographer scores near the detector's threshold and may be missed in a compressed frame; when
    # seen again he keeps his id: two ids in all, the same two wherever both are seen.
    ids = [sorted(p["track_id"] for p in f["persons"]) for f in frames]
    both = [i for i in ids if len(i) == 2]
    assert len(both) >= 4 and all(i == both[0] for i in both)
    assert {t for i in ids for t in i} == set(both[0])
    assert frames[1]["stamp_ns"] - frames[0]["stamp_ns"] == pytest.approx(1e8, rel=1e-3)  # 10 FPS clock
    video = cv2.VideoCapture(str(out / "clip_overlay.mp4"))
    assert video.isOpened() and int(video.get(cv2.CAP_PROP_FRAME_COUNT)) == 6
    summary = json.loads((out / "clip_summary.json").read_text())
    assert summary["processed"] == 6 and summary["latency_ms"]["p50"] > 0


def test_whmr_video_refuses_a_missing_source(tmp_path, capsys):
    assert main(["video", str(tmp_path / "none.mp4")]) == 2
    assert "whmr video: error: " in (err := capsys.readouterr().err) and "none.mp4: no such file" in err


def test_the_picture_camera_scales_with_integer_pixel_centres():
    from whmr_core.media.pictures import display_camera, display_scale

    assert display_scale((1920, 1080), 960) == 0.5 and display_scale((640, 480), 960) == 1.0
    K = display_camera(np.array([500.0, 500.0]), np.array([320.0, 240.0]), 0.5)
    # pixel u's centre maps to (u + 0.5) s - 0.5: the principal point 320 -> 159.75
    np.testing.assert_allclose(K, [[250, 0, 159.75], [0, 250, 119.75], [0, 0, 1]])
