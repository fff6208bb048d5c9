"""Stored configs and checkpoints keep building the network they were trained as (config schema 1)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from whmr_core import geometry
from whmr_core.model.config import (
    CONFIG_SCHEMA,
    ConfigError,
    config_from_dict,
    config_from_stored,
    config_to_dict,
    get_config,
)
from whmr_core.model_io import build_from_checkpoint, checkpoint_info, shipped_checkpoint


def test_new_configs_default_to_the_release_and_record_their_schema():
    cfg = config_from_dict({"base": "small-cpu"})
    assert cfg.schema == CONFIG_SCHEMA == 2
    assert (cfg.regressor.activation, cfg.regressor.detach, cfg.pyramid.point_mlp) == ("none", True, "pifu")
    assert (cfg.vertex.head, cfg.vertex.global_token) == ("direct", "points")
    assert config_to_dict(cfg)["schema"] == 2
    assert config_from_stored(config_to_dict(cfg)) == cfg


def test_stored_config_without_schema_means_the_old_behaviour():
    stored = config_to_dict(get_config("small-cpu"))
    for section, keys in {
        "pyramid": ["point_mlp", "sampling"],
        "regressor": ["activation", "detach", "rotation"],
        "vertex": ["head", "global_token"],
        "depth": ["kind"],
        "orient": ["activation", "dropout", "rotation"],
    }.items():
        for k in keys:
            del stored[section][k]
    del stored["schema"], stored["mean_params"], stored["markers"]
    old = config_from_stored(stored)
    assert old.schema == 1
    assert (old.regressor.activation, old.regressor.detach, old.pyramid.point_mlp) == ("relu", False, "plain")
    assert (old.vertex.head, old.vertex.global_token) == ("residual", "glob")
    assert (old.pyramid.sampling, old.depth.kind, old.orient.activation) == ("crop", "pooled", "relu")
    assert old.regressor.feature_norm and old.regressor.hidden == 256  # spelled keys are kept
    # The same dict read as a new config takes today's defaults.
    assert config_from_dict(stored).regressor.activation == "none"


def test_newer_schema_is_refused():
    with pytest.raises(ConfigError, match=r"schema: 3 .*newer whmr"):
        config_from_stored({**config_to_dict(get_config("small-cpu")), "schema": 3})


@pytest.mark.skipif(shipped_checkpoint() is None, reason="no shipped checkpoint in this checkout")
def test_shipped_checkpoint_outputs_do_not_change(data_dir):
    """Outputs recorded with the code the checkpoint was trained with (before the schema-2 options and the
    bias-free depth layer): its stored config has no schema, and its depth bias is folded at load time."""
    info = checkpoint_info(shipped_checkpoint())
    assert "schema" not in info["model"]
    ref = np.load(data_dir / "shipped_small_cpu_outputs.npz")
    model = build_from_checkpoint()
    assert model.config.schema == 1 and "depth_head.mlp.2.bias" not in model.state_dict()
    g = torch.Generator().manual_seed(int(ref["seed"]))
    crops = torch.randn(2, 3, *model.crop_hw, generator=g)
    gi = geometry.glob_info(*(torch.from_numpy(ref[k]) for k in ("centre", "size", "wh")))
    rc = geometry.camera_rotation_from_gravity(torch.from_numpy(ref["gravity"]))
    with torch.no_grad():
        out = model(crops, gi, rc)
    for name, got in [
        ("vertices", out.vertices[:, ::25]),
        ("world_vertices", out.world_vertices[:, ::25]),
        ("translation", out.translation),
        ("focal", out.focal),
        ("tz", out.tz),
        ("world_root", out.world_root),
    ]:
        torch.testing.assert_close(got, torch.from_numpy(ref[name]), atol=2e-5, rtol=1e-5, msg=name)
