"""The three training stages (DESIGN.md section 7, paper section 3.4): what trains, what is frozen, and
which tensors each 2D path may move.

| stage | trains                                            | FULL^2 path detaches   | crop 2D detaches |
|-------|---------------------------------------------------|------------------------|------------------|
| I     | all but OrientCorrect (+ L_f); depth input detached | 3D joints, s, t_x, t_y | -              |
| II    | all but OrientCorrect                             | s, t_x, t_y            | 3D joints        |
| III   | OrientCorrect + what feeds only it (BN frozen)    | -                      | -                |

Stage I follows the authors' release: every parameter trains and only the depth head's input (Phi_3) is
detached, so in stage I the full-image joint loss and L_f move the depth head alone (t_z, hence the focal
length), while the crop and 3D losses train the backbone, pyramid, aux heads and regressors. In stage II
the full-image loss moves t_z and the body; the crop camera is left to the crop loss.

"What feeds only OrientCorrect" is found with autograd, not by name: in the hybrid configs the third point
MLP's features reach OrientCorrect and nothing else, so stages I and II cannot train it and stage III does.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

__all__ = [
    "StageRules",
    "configure_stage",
    "orient_only_parameters",
    "stage_rules",
    "trainable_parameters",
]


@dataclass(frozen=True)
class StageRules:
    stage: int
    full2_detach_joints: bool
    full2_detach_cam: bool
    crop_detach_joints: bool
    focal_loss: bool  # L_f, stage I only
    camera_losses: bool  # 3D/2D/vertex/SMPL/aux losses (stages I and II)
    world_losses: bool  # stage III
    detach_depth_input: bool  # the depth head sees Phi_3 detached (stage I)


def stage_rules(stage: int) -> StageRules:
    if stage == 1:
        return StageRules(1, True, True, False, True, True, False, True)
    if stage == 2:
        return StageRules(2, False, True, True, False, True, False, False)
    if stage == 3:
        return StageRules(3, False, False, False, False, False, True, False)
    raise ValueError(f"stage: must be 1, 2 or 3, got {stage}")


def orient_only_parameters(model: nn.Module) -> set[str]:
    """Names of the parameters that reach the world root (OrientCorrect's output) and no camera-frame
    output: OrientCorrect's own and any feature path that feeds only it. One probe forward of two crops in
    eval mode (no BatchNorm statistic moves); the modules' modes are restored."""
    modes = {m: m.training for m in model.modules()}
    req = {n: p.requires_grad for n, p in model.named_parameters()}
    named = list(model.named_parameters())
    try:
        model.eval()
        for _, p in named:
            p.requires_grad_(True)
        p0 = named[0][1]
        h, w = model.crop_hw
        gen = torch.Generator().manual_seed(0)
        crops = torch.randn(2, 3, h, w, generator=gen).to(p0)
        glob = torch.tensor([[0.0, 0.0, 0.3, 0.8, 0.6], [0.05, -0.02, 0.25, 0.6, 0.8]]).to(p0)
        with torch.enable_grad():
            out = model(crops, glob, None, return_aux=True)
            camera = [out.tz, out.vertices, out.joints, out.cam_crop]
            for it in out.iterations:
                camera += [it.vertices, it.joints, it.cam_crop, it.betas, it.sparse_vertices]
            if out.aux is not None:
                camera += [out.aux.part_logits, out.aux.u, out.aux.v, out.aux.inverse_depth]
            cam_sum = sum(t.float().sum() for t in camera)
            params = [p for _, p in named]
            g_cam = torch.autograd.grad(cam_sum, params, allow_unused=True, retain_graph=True)
            g_world = torch.autograd.grad(out.world_root.sum(), params, allow_unused=True)
    finally:
        for m, training in modes.items():
            m.training = training
        for n, p in named:
            p.requires_grad_(req[n])
    return {n for (n, _), gc, gw in zip(named, g_cam, g_world, strict=True) if gc is None and gw is not None}


def trainable_parameters(model: nn.Module, stage: int) -> set[str]:
    """Names of the parameters that train in ``stage`` (see the table above)."""
    if stage not in (1, 2, 3):
        raise ValueError(f"stage: must be 1, 2 or 3, got {stage}")
    orient = orient_only_parameters(model)
    if stage == 3:
        return orient
    return {n for n, _ in model.named_parameters() if n not in orient}


def _summary(model: nn.Module, names: set[str]) -> list[str]:
    """Module paths covering ``names``: a top-level module when all of it trains, else its trained
    children."""
    out: list[str] = []
    for top, module in model.named_children():
        own = {f"{top}.{n}" for n, _ in module.named_parameters()}
        hit = own & names
        if not hit:
            continue
        if hit == own:
            out.append(top)
            continue
        for child, sub in module.named_children():
            sub_names = {f"{top}.{child}.{n}" for n, _ in sub.named_parameters()}
            if sub_names and sub_names <= names:
                out.append(f"{top}.{child}")
    return sorted(out)


def configure_stage(model: nn.Module, stage: int) -> list[str]:
    """Freeze everything but the stage's parameters; put the model in training mode with every fully
    frozen module (and its BatchNorm statistics) in eval mode; detach the depth head's input in stage I.
    Returns the trained module paths."""
    rules = stage_rules(stage)
    names = trainable_parameters(model, stage)
    for n, p in model.named_parameters():
        p.requires_grad_(n in names)
    set_train_mode(model)
    _set_depth_input_detach(model, rules.detach_depth_input)
    return _summary(model, names)


def _detach_first_input(module: nn.Module, args: tuple) -> tuple:
    return (args[0].detach(), *args[1:])


def _set_depth_input_detach(model: nn.Module, on: bool) -> None:
    """A forward pre-hook on ``model.depth_head`` (the model itself stays stage-agnostic); one at most."""
    head = getattr(model, "depth_head", None)
    if head is None:
        return
    handle = head.__dict__.pop("_stage_detach_hook", None)
    if handle is not None:
        handle.remove()
    if on:
        head.__dict__["_stage_detach_hook"] = head.register_forward_pre_hook(_detach_first_input)


def set_train_mode(model: nn.Module) -> None:
    """model.train(), except modules without any trainable parameter, which stay in eval mode so frozen
    BatchNorm layers keep their running statistics and dropout is off where nothing learns."""
    model.train()
    for module in model.modules():
        params = list(module.parameters())
        if params and not any(p.requires_grad for p in params):
            module.eval()
