"""One person's network outputs -> a placed body (``PersonResult``), as pure functions on ``geometry``.

``decode_person(outputs, box, K, R_c, image_wh)`` is ``solve_camera`` (focal length and translation:
metric from K when given, eq. 3 solved for t_z and eq. 4 with K's principal point; else the network's,
relative scale) followed by ``compose_person`` (meshes in the camera frame and in ``<camera>_gravity``,
projected joints by eq. 2). The Pipeline calls the two halves itself when it smooths a track between them.
A person whose outputs do not fit the body or are not finite or not physical raises ``UnusablePerson``.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import torch

from whmr_core import geometry
from whmr_core.body.topology import BodyTopology
from whmr_core.geometry import GRAVITY_FROM_G
from whmr_core.graph_io import OUTPUT_SHAPES, PersonOutputs
from whmr_core.rotations import orthonormalise
from whmr_core.runtime.frames import PersonResult

__all__ = [
    "CameraSolution",
    "PersonBox",
    "UnusablePerson",
    "check_outputs",
    "compose_person",
    "decode_person",
    "solve_camera",
]


class UnusablePerson(ValueError):
    """This person's outputs cannot give a body (the reason is the message); the person is dropped."""


@dataclass(frozen=True)
class PersonBox:
    """A person's box and the square crop box made from it."""

    box_xyxy: np.ndarray  # (4,) the person box, pixels
    score: float
    source: str  # detection, detector, tracked or whole_image
    centre: np.ndarray  # (2,) square crop box centre, pixels
    side: float  # its side, pixels


@dataclass(frozen=True)
class CameraSolution:
    translation: np.ndarray  # (3,) t_b, camera optical frame
    focal_xy: np.ndarray  # (2,) pixels
    principal_point: np.ndarray  # (2,) pixels
    metric: bool  # K fixed the focal length, so the translation is metric


def check_outputs(o: PersonOutputs, topology: BodyTopology) -> None:
    """UnusablePerson when an output's shape does not fit ``topology`` or holds non-finite values."""
    sizes = {"V": topology.num_vertices, "J": topology.num_joints}
    for f in fields(o):
        a = getattr(o, f.name)
        want = tuple(sizes.get(d, d) if isinstance(d, str) else d for d in OUTPUT_SHAPES[f.name])
        if any(isinstance(d, str) for d in want):  # free sizes (betas)
            want = a.shape if a.ndim == len(want) else want
        if a.shape != want:
            raise UnusablePerson(
                f"engine output {f.name}: shape {a.shape}, expected {want} (body model mismatch?)"
            )
        if not np.isfinite(a).all():
            raise UnusablePerson(f"engine output {f.name}: non-finite values")


def solve_camera(
    o: PersonOutputs,
    box: PersonBox,
    image_wh: tuple[int, int],
    K: np.ndarray | None,
    max_depth_m: float = 100.0,
) -> CameraSolution:
    """Focal length and translation t_b of one person (eq. 3, 4)."""
    s = float(o.cam_crop[0])
    if abs(s) < 1e-9:
        raise UnusablePerson("weak-perspective scale s is zero")
    w, h = image_wh
    if K is not None:
        f_xy = torch.tensor([[K[0, 0], K[1, 1]]], dtype=torch.float64)
        pp = np.array([K[0, 2], K[1, 2]])
        side = torch.tensor([box.side], dtype=torch.float64)
        tz = geometry.depth_from_focal(torch.tensor([s], dtype=torch.float64), side, f_xy)
        t_b = geometry.full_image_translation(
            torch.as_tensor(o.cam_crop[None]),
            torch.as_tensor(np.asarray(box.centre, dtype=np.float64)[None]),
            side,
            torch.tensor([[w, h]], dtype=torch.float64),
            tz,
            principal_point=torch.as_tensor(pp[None]),
        )[0].numpy()
        camera = CameraSolution(t_b, np.array([K[0, 0], K[1, 1]]), pp, True)
    else:
        wh = torch.tensor([[w, h]], dtype=torch.float64)
        focal = float(geometry.focal_to_pixels(torch.as_tensor(o.focal).reshape(1), wh)[0])
        camera = CameraSolution(
            o.translation.copy(), np.array([focal, focal]), np.array([w / 2, h / 2]), False
        )
    t = camera.translation
    focal = float(np.mean(camera.focal_xy))
    if not (np.isfinite(t).all() and 0 < t[2] <= max_depth_m and focal > 0):
        raise UnusablePerson(f"not physical: depth {t[2]:.3g} m, focal {focal:.3g} px")
    return camera


def _rotation(r: np.ndarray) -> np.ndarray:
    # The network's rotations are only approximately orthonormal; Gram-Schmidt, as the network itself uses.
    return orthonormalise(torch.as_tensor(r, dtype=torch.float64)).numpy()


def compose_person(
    o: PersonOutputs, box: PersonBox, camera: CameraSolution, R_c: np.ndarray, track_id: int = 0
) -> PersonResult:
    """The placed body: camera-frame meshes at t_b, gravity-frame meshes, projected joints (eq. 2)."""
    t_b = camera.translation
    verts_c = o.vertices + t_b
    joints_c = o.joints + t_b
    if (joints_c[:, 2] <= 1e-6).any():
        raise UnusablePerson("a joint lies behind the camera")
    # Gravity frame: OrientCorrect's world-oriented body (pelvis-centred in G), placed at the pelvis's
    # position seen from the camera (R_c^T maps C to G), then G -> ROS axes.
    pelvis_g = R_c.T @ joints_c[0]
    verts_g = (o.world_vertices - o.world_joints[0] + pelvis_g) @ GRAVITY_FROM_G.T
    joints_g = (o.world_joints - o.world_joints[0] + pelvis_g) @ GRAVITY_FROM_G.T
    joints_2d = geometry.perspective_project(
        torch.as_tensor(o.joints[None]),
        torch.as_tensor(t_b[None]),
        torch.as_tensor(camera.focal_xy[None]),
        torch.as_tensor(camera.principal_point[None]),
    )[0].numpy()
    person = PersonResult(
        track_id=track_id,
        score=float(box.score),
        box_source=box.source,
        box_xyxy=np.array(box.box_xyxy, dtype=np.float64),
        bbox_center=np.array(box.centre, dtype=np.float64),
        bbox_size=float(box.side),
        vertices_camera=verts_c,
        joints_camera=joints_c,
        vertices_gravity=verts_g,
        joints_gravity=joints_g,
        root_orientation_camera=_rotation(o.cam_root),
        root_orientation_gravity=GRAVITY_FROM_G @ _rotation(o.world_root),
        translation_camera=np.array(t_b, dtype=np.float64),
        translation_is_metric=camera.metric,
        focal_xy=np.array(camera.focal_xy, dtype=np.float64),
        principal_point=np.array(camera.principal_point, dtype=np.float64),
        joints_2d=joints_2d,
        local_rotations=_rotation(o.rotmats),
        betas=o.betas.reshape(-1),
    )
    bad = [
        f.name
        for f in fields(person)
        if isinstance(v := getattr(person, f.name), np.ndarray) and not np.isfinite(v).all()
    ]
    if bad:
        raise UnusablePerson(f"non-finite result in {', '.join(bad)}")
    return person


def decode_person(
    o: PersonOutputs,
    box: PersonBox,
    K: np.ndarray | None,
    R_c: np.ndarray,
    image_wh: tuple[int, int],
    *,
    max_depth_m: float = 100.0,
    track_id: int = 0,
) -> PersonResult:
    """One person's outputs -> its placed body (``solve_camera`` then ``compose_person``)."""
    return compose_person(o, box, solve_camera(o, box, image_wh, K, max_depth_m), R_c, track_id)
