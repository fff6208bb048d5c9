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


# Paper Table 9 (network dimensions), as literal numbers: the first grid (rows x columns), C^fc (features per
# sampled point after the point MLP) and C^s (the regressors' point-feature inputs, iterations 0-2) of the
# ViT "P" model with its 67 markers; the hybrid ViT model's first grid.
TABLE_9 = {
    "vitb-param": {"grid_hw": (9, 7), "c_fc": 32, "c_s": (2016, 2144, 2144)},
    "vitb-param-release": {"grid_hw": (9, 7), "c_fc": 32, "c_s": (2016, 2144, 2144)},
    "vitb-hybrid": {"grid_hw": (24, 18)},
}


@pytest.mark.parametrize("name", sorted(TABLE_9))
def test_configs_follow_table_9(name):
    import torch

    from whmr_core.model import build_model
    from whmr_core.model.standin_body import make_standin_body

    want = TABLE_9[name]
    cfg = get_config(name)
    assert cfg.pyramid.grid_hw == want["grid_hw"]
    if "c_fc" not in want:
        return
    assert cfg.pyramid.mlp_dims[-1] == want["c_fc"]
    torch.manual_seed(0)
    model = build_model(cfg, make_standin_body(n_vertices=384, n_markers=67))
    theta = 5 + 24 * model.param_regressors[0].pose_dim + 10 + 3  # glob info + Theta_t
    c_s = tuple(r.trunk[0].in_features - theta for r in model.param_regressors)
    assert c_s == want["c_s"]
    assert (
        model.orient_correct.fc[0].in_features - (5 + 6 + (9 if cfg.orient.rotation == "matrix" else 6))
        == 2144
    )
