"""Display meshes: the full free body posed with a person's predicted pose and shape, where the body is."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from whmr_core.body import load_body_model
from whmr_core.media.display_mesh import DisplayBody
from whmr_core.rotations import axis_angle_to_matrix


@pytest.fixture(scope="module")
def person():
    """A person as the pipeline reports it, from a low-res body forward with a known pose and place."""
    g = torch.Generator().manual_seed(0)
    pose = torch.randn(24, 3, generator=g, dtype=torch.float64) * 0.3
    rot = axis_angle_to_matrix(pose).float()
    betas = torch.randn(1, 10, generator=g) * 0.8
    lowres = load_body_model(variant="lowres")
    with torch.no_grad():
        out = lowres(betas=betas, global_orient=rot[None, :1], body_pose=rot[None, 1:], pose2rot=False)
    t = np.array([0.4, -0.2, 3.5])
    r_grav = axis_angle_to_matrix(torch.tensor([0.1, -0.3, 1.2], dtype=torch.float64)).numpy()
    joints = out.joints[0, :24].double().numpy()
    return SimpleNamespace(
        local_rotations=rot.double().numpy(),
        betas=betas[0].double().numpy(),
        root_orientation_camera=rot[0].double().numpy(),
        root_orientation_gravity=r_grav,
        joints_camera=joints + t,
        joints_gravity=joints - joints[0] + [2.0, 0.5, 1.0],
        vertices_camera=out.vertices[0].double().numpy() + t,
        vertices_gravity=None,
    )


def test_the_low_res_body_reposed_is_the_networks_mesh(person):
    m = DisplayBody("lowres")(person)
    np.testing.assert_allclose(m.vertices_camera, person.vertices_camera, atol=2e-5)
    assert m.faces.shape[1] == 3 and m.vertices_camera.shape == (1229, 3)


def test_the_full_body_stands_where_the_person_is(person):
    full = DisplayBody("full")
    m = full(person)
    assert m.vertices_camera.shape == (13492, 3) and len(m.faces) == 26972
    # The same body in the same place: every low-res vertex lies on the full body's surface.
    from scipy.spatial import cKDTree

    gap, _ = cKDTree(m.vertices_camera).query(person.vertices_camera)
    # (here 4 and 14 mm; the same mesh 3 cm off gives 15 and 28 mm)
    assert np.median(gap) < 0.007 and np.percentile(gap, 95) < 0.02, (np.median(gap), gap.max())
    # Gravity frame: the same body turned by the world root orientation, at the gravity-frame pelvis.
    local = m.vertices_camera - person.joints_camera[0]
    back = (m.vertices_gravity - person.joints_gravity[0]) @ person.root_orientation_gravity
    np.testing.assert_allclose(back, local @ person.root_orientation_camera, atol=1e-6)


def test_a_body_with_another_skeleton_is_refused(person):
    bad = SimpleNamespace(**{**vars(person), "local_rotations": person.local_rotations[:3]})
    with pytest.raises(ValueError, match="24 joints, the person has 3"):
        DisplayBody("full")(bad)
