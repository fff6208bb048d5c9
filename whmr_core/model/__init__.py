"""The W-HMR network: configs, backbones, heads, typed outputs and ``build_model``.

The exported inference graph (named flat outputs) is ``whmr_core.export.graph.InferenceGraph``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from whmr_core.model.config import NAMED_CONFIGS, ConfigError, ModelConfig, get_config, load_config
from whmr_core.model.network import WHMR
from whmr_core.model.outputs import AuxOutput, IterationOutput, ModelOutput

__all__ = [
    "NAMED_CONFIGS",
    "WHMR",
    "AuxOutput",
    "ConfigError",
    "IterationOutput",
    "ModelConfig",
    "ModelOutput",
    "build_model",
    "get_config",
    "load_config",
]


def _resolve_body(body: Any) -> tuple[Any, Any]:
    """``body`` = (smplx model, assets), an smplx model (assets derived), or None (the shipped model)."""
    if isinstance(body, tuple):
        model, assets = body
        return model, assets
    try:
        from whmr_core.body import body_assets, load_body_model
    except ImportError as err:
        raise ImportError(
            "build_model: no body model given and whmr_core.body is not available; pass body=(model, assets)"
        ) from err
    model = load_body_model(variant="full") if body is None else body
    return model, body_assets(model)


def build_model(name_or_config: str | Path | ModelConfig, body: Any = None, **theta0: Any) -> WHMR:
    """Build the network from a named config, a YAML file path, or a ``ModelConfig``.

    ``body``: ``(smplx_model, assets)`` with assets as ``whmr_core.body.BodyAssets``; an smplx model (its
    assets are derived with ``whmr_core.body.body_assets``); or None for the shipped free body model.
    ``theta0``: ``marker_ids`` / ``mean_params`` overriding the config's files (see ``WHMR``).
    """
    if isinstance(name_or_config, ModelConfig):
        config = name_or_config
    elif isinstance(name_or_config, str) and name_or_config in NAMED_CONFIGS:
        config = get_config(name_or_config)
    elif isinstance(name_or_config, str | Path) and Path(name_or_config).suffix in (".yaml", ".yml"):
        config = load_config(name_or_config)
    else:
        config = get_config(str(name_or_config))  # raises ConfigError listing the known names
    model, assets = _resolve_body(body)
    return WHMR(config, model, assets, **theta0)
