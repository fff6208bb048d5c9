"""The three training stages (DESIGN.md section 7, paper section 3.4): what trains, what is frozen, and
which tensors each 2D path may move.

| stage | trains                                   | FULL^2 path detaches       | crop 2D path detaches |
|-------|------------------------------------------|----------------------------|-----------------------|
| I     | regressors + depth/focal head (+ L_f)    | 3D joints, s, t_x, t_y     | -                     |
| II    | all but OrientCorrect                    | s, t_x, t_y                | 3D joints             |
| III   | OrientCorrect only (frozen BN in eval)   | -                          | -                     |

So in stage I the full-image joint loss can only move t_z (the depth head, hence the focal length), and in
stage II it moves t_z and the body, while the crop camera is left to the crop loss.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

__all__ = ["StageRules", "configure_stage", "stage_rules", "trainable_modules"]


@dataclass(frozen=True)
class StageRules:
    stage: int
    full2_detach_joints: bool
    full2_detach_cam: bool
    crop_detach_joints: bool
    focal_loss: bool  # L_f, stage I only
    camera_losses: bool  # 3D/2D/vertex/SMPL losses (stages I and II)
    world_losses: bool  # stage III


def stage_rules(stage: int) -> StageRules:
    if stage == 1:
        return StageRules(1, True, True, False, True, True, False)
    if stage == 2:
        return StageRules(2, False, True, True, False, True, False)
    if stage == 3:
        return StageRules(3, False, False, False, False, False, True)
    raise ValueError(f"stage: must be 1, 2 or 3, got {stage}")


def trainable_modules(model: nn.Module, stage: int, train_backbone: bool = False) -> list[str]:
    """Names of the top-level submodules of a WHMR network that train in ``stage``."""
    regressors = ["point_mlps", "param_regressors", "vertex_regressor", "upsampler", "depth_head"]
    present = {name for name, _ in model.named_children()}
    if stage == 1:
        names = regressors + (["backbone", "pyramid", "aux_heads"] if train_backbone else [])
    elif stage == 2:
        names = [n for n in present if n != "orient_correct"]
    elif stage == 3:
        names = ["orient_correct"]
    else:
        raise ValueError(f"stage: must be 1, 2 or 3, got {stage}")
    return sorted(n for n in names if n in present)


def configure_stage(model: nn.Module, stage: int, train_backbone: bool = False) -> list[str]:
    """Freeze everything but the stage's modules; put the model in training mode with every fully
    frozen module (and its BatchNorm statistics) in eval mode. Returns the trainable module names."""
    names = trainable_modules(model, stage, train_backbone)
    for p in model.parameters():
        p.requires_grad_(False)
    for name in names:
        for p in getattr(model, name).parameters():
            p.requires_grad_(True)
    set_train_mode(model)
    return names


def set_train_mode(model: nn.Module) -> None:
    """model.train(), except modules without any trainable parameter, which stay in eval mode so frozen
    BatchNorm layers keep their running statistics and dropout is off where nothing learns."""
    model.train()
    for module in model.modules():
        params = list(module.parameters())
        if params and not any(p.requires_grad for p in params):
            module.eval()
