"""The parameter table, the shipped params YAML, the RViz layout and the node's install lines."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from whmr_ros.bag_runner import BagTopics
from whmr_ros.params import WhmrParams, load_params, parameter_specs, params_from_flat

ROOT = Path(__file__).resolve().parents[1]


def test_shipped_yaml_holds_every_parameter_at_its_default():
    params = load_params(ROOT / "config" / "whmr.params.yaml")
    assert params == WhmrParams()
    text = (ROOT / "config" / "whmr.params.yaml").read_text()
    for spec in parameter_specs():  # listed (empty lists as comments: ROS files cannot hold [])
        assert re.search(rf"^\s*#?\s*{spec.name.split('.')[-1]}:", text, re.M), spec.name


def test_every_parameter_is_documented():
    doc = (ROOT / "docs" / "ros_node.md").read_text()
    for spec in parameter_specs():
        assert f"`{spec.name}`" in doc, spec.name


def test_unknown_and_mistyped_parameters_are_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown parameters"):
        params_from_flat({"pipeline.box_scal": 1.0})
    with pytest.raises(ValueError, match="expected bool"):
        params_from_flat({"pipeline.smoothing": "yes"})
    p = params_from_flat({"pipeline.max_persons": 3, "host.gravity_sources": ["imu_accel", "parameter"]})
    assert p.pipeline.max_persons == 3 and p.host.gravity_sources == ("imu_accel", "parameter")
    f = tmp_path / "p.yaml"
    f.write_text(
        yaml.safe_dump({"/**": {"ros__parameters": {"use_sim_time": True, "host": {"output_frame": "odom"}}}})
    )
    assert load_params(f).host.output_frame == "odom"
    f.write_text(yaml.safe_dump({"other_node": {"ros__parameters": {"model": "x"}}}))
    with pytest.raises(ValueError, match="section"):
        load_params(f)


def test_rviz_layout_shows_markers_and_image_in_the_gravity_frame():
    rviz = yaml.safe_load((ROOT / "rviz" / "whmr.rviz").read_text())
    manager = rviz["Visualization Manager"]
    assert manager["Global Options"]["Fixed Frame"].endswith("_gravity")
    classes = {d["Class"]: d for d in manager["Displays"]}
    assert classes["rviz_default_plugins/MarkerArray"]["Topic"]["Value"] == BagTopics().markers
    assert "rviz_default_plugins/Image" in classes and "rviz_default_plugins/TF" in classes


def test_rviz_topics_qos_and_fixed_frame_are_the_nodes():
    from whmr_ros.bag_format import INPUT_TOPICS, OUTPUT_TOPICS
    from whmr_ros.host import HostConfig
    from whmr_ros.synth_bag import CAMERA_FRAME

    manager = yaml.safe_load((ROOT / "rviz" / "whmr.rviz").read_text())["Visualization Manager"]
    # The sample bag's camera, in the gravity frame the node names after it.
    assert manager["Global Options"]["Fixed Frame"] == CAMERA_FRAME + HostConfig().gravity_frame_suffix
    published = {OUTPUT_TOPICS["markers"]: "Reliable", OUTPUT_TOPICS["overlay"]: "Reliable"}  # the node's QoS
    subscribed = {INPUT_TOPICS["image"]: "Best Effort"}  # a camera's sensor-data QoS
    topics = {d["Topic"]["Value"]: d["Topic"] for d in manager["Displays"] if "Topic" in d}
    assert set(topics) == set(published) | set(subscribed)
    for name, reliability in {**published, **subscribed}.items():
        assert topics[name]["Reliability Policy"] == reliability, name


def test_cmake_installs_the_node_config_and_rviz():
    cmake = (ROOT / "CMakeLists.txt").read_text()
    assert "file(READ scripts/whmr_node" in cmake
    assert re.search(r'install\(PROGRAMS "\$\{CMAKE_CURRENT_BINARY_DIR\}/whmr_node" DESTINATION lib/', cmake)
    assert re.search(r"install\(DIRECTORY launch config rviz DESTINATION", cmake)
    script = ROOT / "scripts" / "whmr_node"
    assert script.stat().st_mode & 0o111 and "whmr_ros.node import main" in script.read_text()
