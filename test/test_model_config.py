"""Model configs: named configs, strict YAML loading, validation."""

from __future__ import annotations

import pytest
import yaml

from whmr_core.model.config import (
    NAMED_CONFIGS,
    ConfigError,
    config_from_dict,
    config_to_dict,
    get_config,
    load_config,
)


def test_named_configs_present():
    assert {"r50-hybrid", "vitb-hybrid", "vitb-param", "small-cpu"} <= set(NAMED_CONFIGS)
    assert get_config("vitb-param").variant == "param"
    assert get_config("vitb-hybrid").backbone.crop_hw == (256, 192)
    assert get_config("r50-hybrid").backbone.crop_hw == (224, 224)
    assert get_config("small-cpu").backbone.kind == "resnet18"


def test_unknown_name_lists_known():
    with pytest.raises(ConfigError, match="small-cpu"):
        get_config("r50-hybird")


@pytest.mark.parametrize("name", sorted(NAMED_CONFIGS))
def test_yaml_round_trip(tmp_path, name):
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(config_to_dict(get_config(name))))
    assert load_config(path) == get_config(name)


def test_base_and_override(tmp_path):
    path = tmp_path / "cfg.yaml"
    path.write_text("base: small-cpu\nname: mine\npyramid:\n  channels: 32\n")
    cfg = load_config(path)
    assert cfg.name == "mine" and cfg.pyramid.channels == 32
    assert cfg.pyramid.grid_hw == get_config("small-cpu").pyramid.grid_hw
    assert cfg.backbone == get_config("small-cpu").backbone


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        ({"base": "small-cpu", "pyramd": {}}, "pyramd"),
        ({"base": "small-cpu", "pyramid": {"chanels": 3}}, "chanels"),
        ({"backbone": {"kind": "resnet34"}}, "backbone.kind"),
        ({"backbone": {"crop_hw": [224]}}, "backbone.crop_hw"),
        ({"backbone": {"crop_hw": [100, 100]}}, "multiples of 32"),
        ({"regressor": {"hidden": "big"}}, "regressor.hidden"),
        ({"aux": {"enabled": 1}}, "aux.enabled"),
        ({"variant": "vertex"}, "variant"),
    ],
)
def test_bad_keys_and_values_are_errors(data, needle):
    with pytest.raises(ConfigError, match=needle):
        config_from_dict(data)


def test_load_config_names_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("regresor: {}\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml.*regresor"):
        load_config(path)
