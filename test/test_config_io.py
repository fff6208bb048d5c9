"""One strict loader for every config: unknown keys, wrong types, values out of range and bad files are
errors naming the setting (or the file), whether the values come from YAML, ROS parameters or code."""

from __future__ import annotations

import math

import pytest

from whmr_core.config_io import ConfigError, Range, read_yaml
from whmr_core.runtime.config import PipelineConfig
from whmr_core.training.config import TrainConfig, load_train_config
from whmr_ros.host import HostConfig
from whmr_ros.params import load_params, parameter_specs, params_from_flat


@pytest.mark.parametrize(
    ("values", "match"),
    [
        ({"smoothing": "false"}, r"smoothing: expected bool, got 'false'"),
        ({"max_persons": 2.5}, r"max_persons: expected int"),
        ({"box_scal": 1.0}, r"unknown key\(s\) \['box_scal'\]"),
        ({"box_scale": math.nan}, r"box_scale: must be a finite number"),
        ({"box_scale": math.inf}, r"box_scale: must be a finite number"),
        ({"box_scale": 0.0}, r"box_scale: must be > 0, got 0.0"),
        ({"smoothing_min_cutoff": -1.0}, r"smoothing_min_cutoff: must be > 0"),
        ({"track_max_age": -1}, r"track_max_age: must be >= 0"),
        ({"min_detection_score": 1.5}, r"min_detection_score: must be in \[0, 1\]"),
        ({"max_persons": 0}, r"max_persons: must be >= 1"),
    ],
)
def test_pipeline_config_is_strict(values, match):
    with pytest.raises(ConfigError, match=match):
        PipelineConfig.from_mapping(values)


def test_pipeline_config_checks_ranges_when_built_in_code_too():
    with pytest.raises(ConfigError, match="box_scale"):
        PipelineConfig(box_scale=math.nan)
    assert PipelineConfig.from_mapping({"max_persons": 3, "box_scale": 1}).box_scale == 1.0


@pytest.mark.parametrize(
    ("values", "match"),
    [
        ({"gravity_sources": "imu_accel"}, r"gravity_sources: expected a list, got str"),
        ({"gravity_sources": ["imu_acel"]}, r"gravity_sources: unknown \['imu_acel'\]"),
        ({"imu_max_age_s": math.nan}, r"imu_max_age_s: must be a finite number"),
        ({"imu_max_age_s": 0.0}, r"imu_max_age_s: must be > 0"),
        ({"warn_interval_s": -5.0}, r"warn_interval_s: must be >= 0"),
        ({"parameter_gravity": [0.0, math.inf, 0.0]}, r"parameter_gravity: must be a finite number"),
        ({"use_camera_info": 1}, r"use_camera_info: expected bool"),
    ],
)
def test_host_config_is_strict(values, match):
    with pytest.raises(ConfigError, match=match):
        HostConfig.from_mapping(values)
    assert HostConfig.from_mapping({"gravity_sources": ["imu_accel"]}).gravity_sources == ("imu_accel",)


@pytest.mark.parametrize(
    ("name", "value", "match"),
    [
        ("threads", -1, r"node: threads: must be in \[0, 256\]"),
        ("marker_rate_hz", math.nan, r"node: marker_rate_hz: must be a finite number"),
        ("diagnostics_period_s", 0.0, r"node: diagnostics_period_s: must be in \[0.01, 3600\]"),
        ("pipeline.smoothing", "false", r"pipeline.smoothing: expected bool"),
        ("pipeline.box_scale", math.inf, r"pipeline: box_scale: must be a finite number"),
        ("host.imu_max_age_s", -0.1, r"host: imu_max_age_s: must be > 0"),
        ("host.gravity_sources", "imu_accel", r"host.gravity_sources: expected a list"),
    ],
)
def test_ros_parameters_use_the_same_loader(name, value, match):
    with pytest.raises(ConfigError, match=match):
        params_from_flat({name: value})


def test_ros_parameter_table_carries_ranges_and_descriptions():
    specs = {s.name: s for s in parameter_specs()}
    assert specs["pipeline.box_scale"].range == (0, math.inf)
    assert specs["pipeline.min_detection_score"].range == (0, 1)
    assert specs["host.camera_frame"].range is None and specs["pipeline.smoothing"].range is None
    assert "person box" in specs["pipeline.box_scale"].description
    assert "stale" in specs["host.imu_max_age_s"].description


@pytest.mark.parametrize(
    ("values", "match"),
    [
        ({"batch_size": 0}, r"batch_size: must be >= 1, got 0"),
        ({"checkpoint_every": 0}, r"checkpoint_every: must be >= 1, got 0"),
        ({"threads": -2}, r"threads: must be >= 1"),
        ({"stage1": {"lr": math.nan}}, r"lr: must be a finite number"),
        ({"data": {"num_workers": -1}}, r"num_workers: must be >= 0"),
        ({"weights": {"focal": math.inf}}, r"focal: must be a finite number"),
    ],
)
def test_training_config_ranges_name_the_setting_and_the_file(tmp_path, values, match):
    import yaml

    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(values))
    with pytest.raises(ConfigError, match=match) as e:
        load_train_config(path)
    assert str(path) in str(e.value)


def test_training_config_built_in_code_is_checked():
    with pytest.raises(ConfigError, match="batch_size: must be >= 1"):
        TrainConfig(batch_size=0)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("- a\n- b\n", r"expected a mapping at the top level, got list"),
        ("key: [unclosed\n", r"not valid YAML"),
    ],
)
def test_a_yaml_that_is_not_a_mapping_names_the_file(tmp_path, text, match):
    path = tmp_path / "params.yaml"
    path.write_text(text)
    for read in (read_yaml, load_params, load_train_config):
        with pytest.raises(ConfigError, match=match) as e:
            read(path)
        assert str(path) in str(e.value)


def test_range_describes_itself_and_unpacks_for_ros():
    assert Range(0, 1).describe() == "in [0, 1]"
    assert Range(0, None, low_open=True).describe() == "> 0"
    low, high = Range(0.01, 3600)
    assert (low, high) == (0.01, 3600)
    assert not Range(0, None, low_open=True).contains(0.0) and Range(0, 1).contains(1.0)
