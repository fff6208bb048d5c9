"""``whmr demo`` runs and its summary reports the camera model's errors."""

from __future__ import annotations

import json

from whmr_core.cli import main


def test_demo_recovers_the_known_scene(tmp_path):
    assert main(["demo", "--out", str(tmp_path)]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert abs(summary["focal_recovered_px"] - summary["focal_true_px"]) < 1e-6
    assert summary["reprojection_error_px"] < 1e-6
    assert summary["world_body_error_m"] < 1e-9


def test_demo_refuses_an_unwritable_output(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["demo", "--out", str(blocker / "sub")]) == 1
    assert "cannot create output directory" in capsys.readouterr().out
