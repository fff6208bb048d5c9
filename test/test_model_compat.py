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
from whmr_core.model_io import build_from_checkpoint, shipped_checkpoint


def test_new_configs_default_to_the_release_and_record_their_schema():
    cfg = config_from_dict({"base": "small-cpu"})
    assert cfg.schema == CONFIG_SCHEMA == 2
    assert (cfg.regressor.activation, cfg.regressor.detach, cfg.pyramid.point_mlp) == ("none", True, "pifu")
    assert (cfg.vertex.head, cfg.vertex.global_token) == ("direct", "points")
    assert config_to_dict(cfg)["schema"] == 2
    assert config_from_stored(config_to_dict(cfg)) == cfg


def _schema_1_small_cpu() -> dict:
    """small-cpu's config as whmr stored it before config schema 2: none of the keys added since."""
    stored = config_to_dict(get_config("small-cpu"))
    for section, keys in {
        "pyramid": ["point_mlp", "sampling"],
        "regressor": ["activation", "detach", "rotation"],
        "vertex": ["head", "global_token"],
        "depth": ["kind"],
        "orient": ["activation", "dropout", "rotation", "base"],
    }.items():
        for k in keys:
            del stored[section][k]
    del stored["schema"], stored["mean_params"], stored["markers"]
    return stored


def test_stored_config_without_schema_means_the_old_behaviour():
    stored = _schema_1_small_cpu()
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
    """Outputs of the shipped checkpoint recorded when it was shipped (``build_from_checkpoint()`` on these
    inputs): a change of the model code that moves them fails here, not on a robot."""
    ref = np.load(data_dir / "shipped_outputs.npz")
    model = build_from_checkpoint()
    assert model.config.schema == CONFIG_SCHEMA
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


def test_a_checkpoint_of_the_old_depth_layer_loads_with_its_bias_folded():
    """Checkpoints from before the bias-free depth layer hold ``mlp.2.bias`` right before the BatchNorm:
    loading folds it into the running mean, and the eval-mode depth is the old layer's, computed here."""
    from whmr_core.model.depth_head import DepthHead

    torch.manual_seed(3)
    channels, hidden = 6, 8
    old_mlp = torch.nn.Sequential(
        torch.nn.Linear(channels + 5, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 1, bias=True)
    )
    old_bn = torch.nn.BatchNorm1d(1).eval()
    with torch.no_grad():
        old_mlp[2].bias.fill_(0.7)
        old_bn.running_mean.fill_(0.2)
        old_bn.running_var.fill_(2.5)
        old_bn.weight.fill_(1.3)
        old_bn.bias.fill_(-0.4)
    old_state = {f"mlp.{k}": v for k, v in old_mlp.state_dict().items()}
    old_state.update({f"bn.{k}": v for k, v in old_bn.state_dict().items()})
    head = DepthHead(channels, hidden, max_depth=10.0)
    head.load_state_dict(old_state)
    head.eval()
    phi3, glob = torch.randn(4, channels, 3, 3), torch.randn(4, 5)
    with torch.no_grad():
        old = 10.0 * torch.sigmoid(old_bn(old_mlp(torch.cat([phi3.mean(dim=(2, 3)), glob], 1))))[:, 0]
        torch.testing.assert_close(head(phi3, glob), old, atol=1e-6, rtol=0)
    assert "mlp.2.bias" not in head.state_dict()


def test_a_schema_1_checkpoint_builds_the_network_it_was_trained_as(tmp_path):
    """A checkpoint whose stored config has no schema (written before the release options) builds the old
    regressor, loads its weights and gives the outputs of the network that wrote it."""
    from whmr_core.body import resolve
    from whmr_core.checkpoint import save_checkpoint
    from whmr_core.model import build_model

    stored = _schema_1_small_cpu()
    torch.manual_seed(0)
    writer = build_model(config_from_stored(stored), body=resolve("lowres").load()).eval()
    save_checkpoint(
        tmp_path / "old", writer.state_dict(), config={"name": "small-cpu", "model": stored, "body": "lowres"}
    )
    model = build_from_checkpoint(tmp_path / "old")
    assert model.config.schema == 1 and model.config.regressor.activation == "relu"
    crops = torch.randn(1, 3, *model.crop_hw)
    gi = geometry.glob_info(
        torch.tensor([[320.0, 240.0]]), torch.tensor([200.0]), torch.tensor([[640.0, 480.0]])
    )
    with torch.no_grad():
        torch.testing.assert_close(
            model(crops, gi, torch.eye(3)[None]).vertices, writer(crops, gi, torch.eye(3)[None]).vertices
        )
