"""Offscreen renderer: OpenCV pixel alignment, metric depth, face ids, occlusion, background, overlays."""

from __future__ import annotations

import numpy as np
import pytest

from whmr_core.render import (
    GROUND_ID,
    GroundPlane,
    Mesh,
    PinholeCamera,
    Renderer,
    RenderUnavailableError,
    overlay_meshes,
    pose_matrix,
    render_world_view,
)
from whmr_core.render import context as render_context
from whmr_core.render.primitives import box, uv_sphere

# Non-square image, unequal focal lengths, principal point well off the centre (W/2, H/2) = (160, 100).
CAM = PinholeCamera(fx=410.0, fy=395.0, cx=141.3, cy=118.9, width=320, height=200)


@pytest.fixture(scope="module")
def renderer():
    try:
        r = Renderer()
    except RenderUnavailableError as exc:  # the only reason to skip: no EGL on this machine
        pytest.skip(f"EGL/OpenGL unavailable: {exc}")
    yield r
    r.release()


def unproject(cam: PinholeCamera, uv: np.ndarray, z: np.ndarray) -> np.ndarray:
    uv, z = np.asarray(uv, np.float64), np.asarray(z, np.float64)
    return np.stack([(uv[..., 0] - cam.cx) / cam.fx * z, (uv[..., 1] - cam.cy) / cam.fy * z, z], -1)


def quad(corners: np.ndarray, color=(0.8, 0.8, 0.8)) -> Mesh:
    return Mesh(np.asarray(corners), np.array([[0, 1, 2], [0, 2, 3]]), color=color, smooth=False)


def surface_points(out, meshes: list[Mesh]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pixel coords (x, y), mesh index, and the 3D point rebuilt from face id + barycentrics."""
    mesh_idx, face_idx = out.mesh_and_face()
    ys, xs = np.nonzero(mesh_idx >= 0)
    pts = np.empty((len(xs), 3))
    for m, mesh in enumerate(meshes):
        sel = mesh_idx[ys, xs] == m
        tri = mesh.vertices[mesh.faces[face_idx[ys[sel], xs[sel]]]].astype(np.float64)
        pts[sel] = (out.bary[ys[sel], xs[sel]].astype(np.float64)[..., None] * tri).sum(1)
    return np.stack([xs, ys], -1), mesh_idx[ys, xs], pts


def scene() -> list[Mesh]:
    sv, sf = uv_sphere([0.25, -0.1, 3.0], 0.45, 20, 40)
    tilted = quad(
        unproject(CAM, [[10.3, 20.7], [150.2, 5.1], [170.8, 190.4], [3.6, 150.9]], [2.0, 2.6, 3.1, 2.3])
    )
    return [Mesh(sv, sf, color=(0.9, 0.3, 0.3)), tilted]


def test_projection_matches_opencv_subpixel(renderer):
    meshes = scene()
    out = renderer.render(meshes, CAM)
    pix, _, pts = surface_points(out, meshes)
    assert len(pix) > 5000
    err = np.abs(CAM.project(pts) - pix)
    # A half-pixel convention slip would show as 0.5 px here; float32 round-off is ~1e-4 px.
    assert err.max() < 0.01, err.max()
    assert np.median(err) < 1e-3


def test_pixel_coverage_follows_pixel_centres(renderer):
    # A triangle with sub-pixel corners: pixel centres clearly inside are drawn, clearly outside are not.
    corners2d = np.array([[40.37, 30.81], [121.74, 52.18], [63.12, 140.56]])
    mesh = Mesh(unproject(CAM, corners2d, [2.0, 3.5, 5.0]), np.array([[0, 1, 2]]), smooth=False)
    out = renderer.render([mesh], CAM, outputs=("face_id",))
    ys, xs = np.mgrid[0 : CAM.height, 0 : CAM.width]
    p = np.stack([xs, ys], -1).astype(np.float64)
    dist = []
    for i in range(3):
        a, b = corners2d[i], corners2d[(i + 1) % 3]
        edge = b - a
        normal = np.array([edge[1], -edge[0]]) / np.linalg.norm(edge)
        dist.append((p - a) @ normal)
    dist = np.stack(dist, -1)
    dist *= np.sign(dist[int(corners2d[:, 1].mean()), int(corners2d[:, 0].mean())])  # centroid: inside > 0
    inside, outside = (dist > 0.02).all(-1), (dist < -0.02).any(-1)
    covered = out.face_id > 0
    assert inside.sum() > 3000
    assert covered[inside].all() and not covered[outside].any()


def test_depth_equals_analytic_plane(renderer):
    p0, n = np.array([0.1, 0.2, 3.0]), np.array([0.3, -0.4, -1.0])
    n /= np.linalg.norm(n)
    e1 = np.cross(n, [0.0, 1.0, 0.0])
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(n, e1)
    plane = quad(p0 + 0.7 * np.array([-e1 - e2, e1 - e2, e1 + e2, -e1 + e2]))
    ground = GroundPlane.from_gravity([0.0, 1.0, 0.0], height=1.5)
    out = renderer.render([plane], CAM, ground=ground)
    ys, xs = np.mgrid[0 : CAM.height, 0 : CAM.width]
    rays = np.stack([(xs - CAM.cx) / CAM.fx, (ys - CAM.cy) / CAM.fy, np.ones(xs.shape)], -1)

    on_plane = out.face_id > 0
    z_plane = (n @ p0) / (rays @ n)
    assert on_plane.sum() > 5000
    assert np.abs(out.depth[on_plane] - z_plane[on_plane]).max() < 1e-3

    on_ground = out.face_id == GROUND_ID
    z_ground = 1.5 / rays[..., 1]  # plane y = 1.5 m in the camera frame
    near = on_ground & (z_ground < 15.0)
    assert near.sum() > 2000
    assert np.abs(out.depth[near] - z_ground[near]).max() < 1e-3
    # The ground is drawn only below the horizon (row cy for a level camera) and nowhere above it.
    assert not on_ground[: int(np.floor(CAM.cy)) + 1].any()


def test_face_ids_identify_mesh_and_face(renderer):
    bv, bf = box([-0.5, 0.0, 3.0], [0.4, 0.5, 0.3])
    sv, sf = uv_sphere([0.45, 0.05, 2.5], 0.3, 12, 24)
    meshes = [Mesh(bv, bf, smooth=False), Mesh(sv, sf)]
    out = renderer.render(meshes, CAM)
    np.testing.assert_array_equal(out.face_offsets, [0, len(bf), len(bf) + len(sf)])
    mesh_idx, face_idx = out.mesh_and_face()
    assert (mesh_idx == 0).sum() > 500 and (mesh_idx == 1).sum() > 500
    assert set(np.unique(mesh_idx)) == {-1, 0, 1}
    assert face_idx[mesh_idx == 0].max() < len(bf) and face_idx[mesh_idx == 1].max() < len(sf)
    # Each pixel centre lies in the 2D projection of the face it reports (that is what the id means).
    pix, m_of, _ = surface_points(out, meshes)
    ys, xs = pix[:, 1], pix[:, 0]
    for m, mesh in enumerate(meshes):
        sel = m_of == m
        tri2d = CAM.project(mesh.vertices[mesh.faces[face_idx[ys[sel], xs[sel]]]])
        a, b, c = tri2d[:, 0], tri2d[:, 1], tri2d[:, 2]
        p = pix[sel].astype(np.float64)

        def cross2(u, v):
            return u[:, 0] * v[:, 1] - u[:, 1] * v[:, 0]

        area = cross2(b - a, c - a)
        w = np.stack([cross2(b - p, c - p), cross2(c - p, a - p), cross2(a - p, b - p)], -1) / area[:, None]
        assert (w > -1e-3).all(), w.min()
        # Screen-space weights turn into the 3D barycentrics by the perspective correction.
        z = mesh.vertices[mesh.faces[face_idx[ys[sel], xs[sel]]]][..., 2].astype(np.float64)
        bary3d = (w / z) / (w / z).sum(-1, keepdims=True)
        assert np.abs(bary3d - out.bary[ys[sel], xs[sel]]).max() < 1e-3


@pytest.mark.parametrize("near_first", [True, False])
def test_occlusion_keeps_the_nearest_surface(renderer, near_first):
    uv = [[60.0, 40.0], [200.0, 40.0], [200.0, 160.0], [60.0, 160.0]]
    uv2 = [[120.0, 80.0], [300.0, 80.0], [300.0, 190.0], [120.0, 190.0]]
    near, far = quad(unproject(CAM, uv, [2.0] * 4)), quad(unproject(CAM, uv2, [4.0] * 4))
    meshes = [near, far] if near_first else [far, near]
    out = renderer.render(meshes, CAM)
    mesh_idx, _ = out.mesh_and_face()
    near_idx = 0 if near_first else 1
    overlap = (slice(90, 150), slice(130, 190))  # rows, cols inside both quads
    assert (mesh_idx[overlap] == near_idx).all()
    np.testing.assert_allclose(out.depth[overlap], 2.0, atol=1e-4)
    only_far = (slice(165, 185), slice(210, 290))
    assert (mesh_idx[only_far] == 1 - near_idx).all()
    np.testing.assert_allclose(out.depth[only_far], 4.0, atol=1e-4)


def test_background_values(renderer):
    out = renderer.render([], CAM, background=(10, 20, 30))
    assert (out.color == np.array([10, 20, 30], np.uint8)).all()
    assert (out.face_id == 0).all() and (out.bary == 0).all() and (out.depth == 0).all()
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (CAM.height, CAM.width, 3), dtype=np.uint8)
    mesh = scene()[0]
    out = renderer.render([mesh], CAM, background=image, background_depth=np.inf)
    bg = out.face_id == 0
    assert bg.sum() > 1000 and (~bg).sum() > 1000
    np.testing.assert_array_equal(out.color[bg], image[bg])  # the image is not flipped or shifted
    assert np.isposinf(out.depth[bg]).all() and np.isfinite(out.depth[~bg]).all()


def test_world_pose_equals_camera_frame_render(renderer):
    meshes = scene()
    angle = 0.4
    R = np.array([[np.cos(angle), 0, np.sin(angle)], [0, 1, 0], [-np.sin(angle), 0, np.cos(angle)]])
    t = np.array([0.3, -0.2, 1.0])
    # Move the meshes into a world frame with the inverse pose; rendering with the pose must undo it.
    world = [Mesh((m.vertices - t) @ R, m.faces, m.color, m.smooth) for m in meshes]
    a = renderer.render(meshes, CAM)
    b = renderer.render(world, CAM, world_to_camera=pose_matrix(R, t))
    same = a.face_id == b.face_id
    assert same.mean() > 0.995  # only float round-off on triangle edges may differ
    np.testing.assert_allclose(a.depth[same], b.depth[same], atol=1e-4)


def test_rendering_into_a_used_buffer_leaves_nothing_of_the_last_picture(renderer):
    meshes = scene()
    first = renderer.render(meshes, CAM).copy()
    buf = renderer.render(meshes[:1], CAM, background=np.full((CAM.height, CAM.width, 3), 90, np.uint8))
    assert (buf.face_id != first.face_id).any()  # the buffer holds another picture
    again = renderer.render(meshes, CAM, out=buf)
    np.testing.assert_array_equal(again.face_id, first.face_id)
    np.testing.assert_array_equal(again.color, first.color)
    np.testing.assert_array_equal(again.depth, first.depth)
    with pytest.raises(ValueError, match="outputs"):
        renderer.render(meshes, CAM, outputs=("color",), out=buf)


def test_overlay_blends_only_mesh_pixels(renderer):
    image = np.full((CAM.height, CAM.width, 3), 200, np.uint8)
    meshes = [scene()[0]]
    opaque = overlay_meshes(image, meshes, CAM, alpha=1.0, renderer=renderer)
    plain = renderer.render(meshes, CAM, background=image)
    mask = plain.face_id > 0
    np.testing.assert_array_equal(opaque[mask], plain.color[mask])
    np.testing.assert_array_equal(opaque[~mask], image[~mask])
    half = overlay_meshes(image, meshes, CAM, alpha=0.5, renderer=renderer)
    expect = np.rint(0.5 * plain.color[mask].astype(np.float64) + 100.0)
    assert np.abs(half[mask].astype(np.float64) - expect).max() <= 1
    np.testing.assert_array_equal(overlay_meshes(image, meshes, CAM, alpha=0.0, renderer=renderer), image)


def test_world_view_shows_gravity_upright(renderer):
    # A tall box standing along gravity, seen by a camera pitched and rolled: in the level side view its
    # vertical edges must be image-vertical (a wrong R_c would tilt them).
    g = np.array([0.25, 0.9, -0.35])
    g /= np.linalg.norm(g)
    helper = np.cross(g, [0.0, 0.0, 1.0])
    helper /= np.linalg.norm(helper)
    axes = np.stack([helper, g, np.cross(helper, g)], -1)  # box frame: columns x, y=gravity, z
    bv, bf = box([0.0, 0.0, 0.0], [0.4, 1.7, 0.3])
    person = Mesh(bv @ axes.T + [0.0, 0.2, 4.0], bf, color=(0.95, 0.1, 0.1), smooth=False)
    img = render_world_view([person], g, width=320, height=240, elevation_deg=0.0, renderer=renderer)
    assert img.shape == (240, 320, 3) and img.dtype == np.uint8
    red = (img[..., 0].astype(int) - img[..., 1]) > 80
    rows = np.nonzero(red.any(1))[0]
    assert len(rows) > 40
    top, bottom = rows[len(rows) // 5], rows[-len(rows) // 5]
    lt, rt = np.nonzero(red[top])[0][[0, -1]]
    lb, rb = np.nonzero(red[bottom])[0][[0, -1]]
    assert abs(lt - lb) <= 1 and abs(rt - rb) <= 1


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match=r"Mesh.faces: indices"):
        Mesh(np.zeros((3, 3)), np.array([[0, 1, 3]]))
    with pytest.raises(ValueError, match="focal"):
        PinholeCamera(fx=-1.0, fy=1.0, cx=0.0, cy=0.0, width=10, height=10)


def test_missing_egl_names_debian_packages(monkeypatch):
    import moderngl

    def no_egl(*args, **kwargs):
        raise Exception("libEGL.so: cannot open shared object file")

    monkeypatch.setattr(render_context, "_context", None)
    monkeypatch.setattr(moderngl, "create_context", no_egl)
    with pytest.raises(RenderUnavailableError, match="libegl1 libgl1"):
        render_context.get_context()
