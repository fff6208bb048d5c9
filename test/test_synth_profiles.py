"""Named synthetic-data profiles: their samples fall in their ranges and differ from the default set."""

from __future__ import annotations

import numpy as np
import pytest

from whmr_core.body import body_assets, load_body_model
from whmr_core.data.appearance import sample_appearance
from whmr_core.data.cameras import CameraConfig
from whmr_core.data.scene import JointRegressors, sample_scene_at
from whmr_core.data.synth import PROFILES, SynthConfig, appearance_rng, synth_profile


@pytest.fixture(scope="module")
def body():
    return load_body_model(variant="lowres")


@pytest.fixture(scope="module")
def regs(body):
    return JointRegressors.from_assets(body_assets(body))


def _scenes(name, n, body, regs, seed=3):
    return [sample_scene_at(seed, i, body, regs, synth_profile(name).scene) for i in range(n)]


def test_default_profile_is_the_default_config():
    assert synth_profile("default") == SynthConfig()
    with pytest.raises(ValueError, match="unknown synth profile 'nope'; known: default, heldout"):
        synth_profile("nope")


def test_heldout_cameras_people_and_looks_lie_outside_the_default(body, regs):
    default = CameraConfig()
    scenes = _scenes("heldout", 12, body, regs)
    for s in scenes:
        cam = s.camera
        # Every camera is higher, steeper and wider than any the default profile draws.
        assert default.height_m[1] < 3.1 <= cam.height <= 4.0
        assert default.pitch_deg[1] < 50.0 <= cam.pitch_deg <= 65.0
        assert default.hfov_deg[1] < 100.5 - 1e-9 <= cam.hfov_deg <= 110.0 + 1e-9
        assert 2 <= len(s.people) <= 3
        assert all(p.tight_bbox[3] - p.tight_bbox[1] >= 24.0 for p in s.people)
    assert {len(s.people) for s in scenes} == {2, 3}
    # Another look stream: the same scene gets other clothes than in the default profile.
    stream = synth_profile("heldout").appearance_stream
    assert stream != SynthConfig().appearance_stream
    a = sample_appearance(appearance_rng(3, 0, SynthConfig().appearance_stream), scenes[0])
    b = sample_appearance(appearance_rng(3, 0, stream), scenes[0])
    assert not np.allclose(a.palettes, b.palettes)


def test_focal_controlled_box_size_carries_no_focal_information(body, regs):
    cfg = synth_profile("focal-controlled").scene
    lo, hi = cfg.height_frac
    logf, logb = [], []
    for s in _scenes("focal-controlled", 80, body, regs):
        cam, (p,) = s.camera, s.people
        assert cam.image_wh == (320, 240) and cam.pitch_deg == 0.0 and cam.roll_deg == 0.0
        assert np.array_equal(cam.principal_point, [160.0, 120.0])
        assert 35.0 - 1e-9 <= cam.hfov_deg <= 100.0 + 1e-9
        side = max(p.tight_bbox[2] - p.tight_bbox[0], p.tight_bbox[3] - p.tight_bbox[1])
        # The depth is solved for the drawn box side (fixed-point steps converge to well under a pixel).
        assert lo * 240 - 1.0 <= side <= hi * 240 + 1.0
        assert p.root_cam[2] < 9.5  # inside the depth head's range
        logf.append(np.log(cam.focal.mean()))
        logb.append(np.log(p.bbox_size))
    r_controlled = np.corrcoef(logf, logb)[0, 1]
    # In the default profile the box grows with the focal length (the cue an untrained network uses).
    logf_d, logb_d = [], []
    for s in _scenes("default", 40, body, regs):
        for p in s.people:
            logf_d.append(np.log(s.camera.focal.mean()))
            logb_d.append(np.log(p.bbox_size))
    r_default = np.corrcoef(logf_d, logb_d)[0, 1]
    assert abs(r_controlled) < 0.25 < 0.4 < r_default


def test_every_profile_is_valid_and_named():
    assert set(PROFILES) == {"default", "heldout", "focal-controlled"}
    for cfg in PROFILES.values():
        assert isinstance(cfg, SynthConfig)


def test_cli_profile(tmp_path, capsys):
    import json

    from whmr_ros.cli import main

    with pytest.raises(SystemExit, match="whmr synth: unknown synth profile 'wide'"):
        main(["synth", "--out", str(tmp_path / "x"), "--num", "1", "--profile", "wide"])
    out = tmp_path / "heldout"
    args = ["synth", "--out", str(out), "--num", "2", "--profile", "heldout", "--workers", "0"]
    assert main([*args, "--body", "lowres"]) == 0
    summary = json.loads((out / "synth.json").read_text())
    assert summary["config"]["scene"]["num_people"] == [2, 3]
    assert summary["config"]["appearance_stream"] == 2
    assert 4 <= summary["splits"]["train"]["people"] <= 6
