"""The named inputs and outputs of the exported inference graph: the one contract between the export,
every engine (TensorRT, ONNX Runtime, PyTorch) and the Pipeline. Engines bind tensors by these names,
never by position.
"""

from __future__ import annotations

INPUT_NAMES: tuple[str, ...] = ("crops", "glob_info", "cam_rotation")

# Name -> shape after the person dimension N ("V" = vertices of the loaded body model, "J" = joints).
OUTPUT_SHAPES: dict[str, tuple[str | int, ...]] = {
    "vertices": ("V", 3),  # camera axes, body at the model origin (add translation to place it)
    "joints": ("J", 3),
    "rotmats": ("J", 3, 3),  # local joint rotations, root = camera-frame root orientation R_b^c
    "betas": ("B",),
    "cam_crop": (3,),  # (s, t_x, t_y)
    "tz": (),  # metres (relative unless K is known)
    "focal": (),  # eq. 3, in units of the image diagonal
    "translation": (3,),  # t_b, eq. 4, camera optical frame
    "cam_root": (3, 3),  # R_b^c
    "world_root": (3, 3),  # R_b from OrientCorrect (eq. 6), gravity frame G
    "world_vertices": ("V", 3),  # gravity frame G, pelvis-centred
    "world_joints": ("J", 3),
}
OUTPUT_NAMES: tuple[str, ...] = tuple(OUTPUT_SHAPES)
