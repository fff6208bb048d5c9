"""Body model: SMPL-format models (the shipped free one or a user's SMPL) and their mesh-derived assets."""

from whmr_core.body.assets import BodyAssets, body_assets
from whmr_core.body.model import load_body_model, shipped_model_path
from whmr_core.body.resolve import DEFAULT_BODY, resolve

__all__ = ["DEFAULT_BODY", "BodyAssets", "body_assets", "load_body_model", "resolve", "shipped_model_path"]
