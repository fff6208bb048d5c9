"""Surface landmarks (nose, eyes, ears, head top, toes, heels, fingertips) found on any SMPL-format mesh.

Works from the rest (T-pose) template alone, in SMPL's frame (y up, z forward, subject's left at +x), using
each vertex's dominant skinning joint as a body-part label. Gives smplx its ``vertex_ids`` (extra joints)
and the keypoint regressors their face points, for the shipped model and a user's SMPL alike.
"""

from __future__ import annotations

import numpy as np

# SMPL joint indices used here.
HEAD, L_ANKLE, R_ANKLE, L_FOOT, R_FOOT, L_WRIST, R_WRIST, L_HAND, R_HAND = 15, 7, 8, 10, 11, 20, 21, 22, 23


def _pick(candidates: np.ndarray, score: np.ndarray) -> int:
    """Index (into the mesh) of the candidate with the largest score."""
    if len(candidates) == 0:
        raise ValueError("body part has no vertices: is this an SMPL-format model?")
    return int(candidates[np.argmax(score)])


def surface_landmarks(template: np.ndarray, weights: np.ndarray, joints: np.ndarray) -> dict[str, int]:
    """Vertex index per landmark name (smplx's names: nose, leye, ..., LBigToe, ..., lthumb, ...).

    template (V,3) rest vertices, weights (V,24) skinning weights, joints (24,3) rest joints.
    """
    v = np.asarray(template, np.float64)
    part = np.asarray(weights).argmax(1)
    ids: dict[str, int] = {}

    head = np.flatnonzero(part == HEAD)
    if len(head) == 0:
        raise ValueError("no vertices are skinned mainly to the head joint (15)")
    hv = v[head]
    nose = _pick(head, hv[:, 2])  # the most forward head point
    top = _pick(head, hv[:, 1])
    nose_y, top_y, nose_z = v[nose, 1], v[top, 1], v[nose, 2]
    eye_y = nose_y + 0.27 * (top_y - nose_y)  # eyes ~3.5 cm above the nose tip on an adult
    band = np.abs(hv[:, 1] - 0.5 * (nose_y + eye_y)) < 0.25 * (top_y - nose_y)
    half_width = np.abs(hv[band, 0]).max()
    ids.update(nose=nose, head_top=top)
    for s, sign in (("l", 1.0), ("r", -1.0)):
        # Eye: the front-most head point near (+/-0.42 half head width, eye height).
        front = head[hv[:, 2] > nose_z - 0.06 * (top_y - nose_y) / 0.14]
        d = np.hypot(v[front, 0] - sign * 0.42 * half_width, v[front, 1] - eye_y)
        near = front[d < d.min() + 0.01]
        ids[f"{s}eye"] = _pick(near, v[near, 2])
        # Ear: the most lateral head point between nose and eye height.
        ids[f"{s}ear"] = _pick(head[band], sign * hv[band, 0])

    for s, side_sign, ankle, foot in (("L", 1.0, L_ANKLE, L_FOOT), ("R", -1.0, R_ANKLE, R_FOOT)):
        fv_ids = np.flatnonzero((part == ankle) | (part == foot))
        fv = v[fv_ids]
        toe_base = joints[foot]
        ahead = fv[:, 2] > toe_base[2]
        medial = side_sign * fv[:, 0] < side_sign * toe_base[0]
        big = fv_ids[ahead & medial] if np.any(ahead & medial) else fv_ids[ahead]
        ids[f"{s}BigToe"] = _pick(big, v[big, 2])
        lateral = ahead & (side_sign * fv[:, 0] > side_sign * toe_base[0] + 0.02)
        small = fv_ids[lateral] if np.any(lateral) else fv_ids[ahead]
        # The small toe's tip: far forward and lateral (toes step back towards the outside).
        ids[f"{s}SmallToe"] = _pick(small, v[small, 2] + 0.5 * side_sign * v[small, 0])
        sole = fv[:, 1] < fv[:, 1].min() + 0.04
        ids[f"{s}Heel"] = _pick(fv_ids[sole], -fv[sole, 2])

    for s, sign, wrist, hand in (("l", 1.0, L_WRIST, L_HAND), ("r", -1.0, R_WRIST, R_HAND)):
        hv_ids = np.flatnonzero((part == hand) | (part == wrist))
        out = sign * v[hv_ids, 0]  # distance along the arm, outwards
        base = sign * joints[hand, 0]
        # Thumb: in SMPL's T-pose (palms down) it is the most forward hand point beside the palm.
        finger_region = out > sign * joints[wrist, 0] + 0.3 * (out.max() - sign * joints[wrist, 0])
        thumb = _pick(hv_ids[finger_region], v[hv_ids[finger_region], 2])
        ids[f"{s}thumb"] = thumb
        # The four fingers: distal points split into four front-to-back groups (index in front).
        distal = (out > base + 0.5 * (out.max() - base)) & (
            np.linalg.norm(v[hv_ids] - v[thumb], axis=1) > 0.03 * (out.max() - base) / 0.1
        )
        tip_ids, z = hv_ids[distal], v[hv_ids[distal], 2]
        centres = np.quantile(z, [0.875, 0.625, 0.375, 0.125])
        for _ in range(20):  # 1-D k-means, deterministic start
            group = np.argmin(np.abs(z[:, None] - centres[None]), axis=1)
            centres = np.array([z[group == k].mean() if np.any(group == k) else centres[k] for k in range(4)])
        for k, name in enumerate(("index", "middle", "ring", "pinky")):
            members = tip_ids[group == k] if np.any(group == k) else tip_ids
            ids[f"{s}{name}"] = _pick(members, sign * v[members, 0])
    return ids


def smplx_vertex_ids(template: np.ndarray, weights: np.ndarray, j_regressor: np.ndarray) -> dict[str, int]:
    """``vertex_ids`` for ``smplx.SMPL`` computed from the model's arrays (never SMPL-H's indices)."""
    joints = np.asarray(j_regressor, np.float64) @ np.asarray(template, np.float64)
    return surface_landmarks(template, weights, joints)
