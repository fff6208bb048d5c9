"""One-pass offscreen renderer: colour, face ids, barycentrics and metric depth (moderngl on EGL).

Pixel (u, v) of every output is the OpenCV pixel centre (u, v) of :class:`PinholeCamera`: a point
on a drawn triangle at barycentrics b projects with K exactly to the pixel that reports b (to about
1e-3 px, float32 round-off). Framebuffers and vertex buffers are kept and reused across calls; pass a
previous result as ``out=`` to reuse the host arrays too (the fastest loop).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from whmr_core.render import shaders
from whmr_core.render.camera import PinholeCamera
from whmr_core.render.context import get_context
from whmr_core.render.scene import GroundPlane, Mesh

__all__ = ["ALL_OUTPUTS", "GROUND_ID", "RenderOutput", "Renderer"]

ALL_OUTPUTS = frozenset({"color", "face_id", "bary", "depth"})
GROUND_ID = -1  # face_id of ground-plane pixels; 0 is background, k >= 1 is global mesh face k - 1

_DEFAULT_LIGHTS = ((-0.35, -0.65, -0.67), (0.6, -0.1, -0.8))  # towards the lights, camera frame


@dataclass
class RenderOutput:
    """Per-pixel results, row 0 at the top. Arrays not requested are None.

    color (H,W,3) uint8; face_id (H,W) int32 (0 background, -1 ground, k >= 1 global face k - 1 over the
    meshes in the order given); bary (H,W,3) float32 barycentrics of the visible point in that face
    (zeros on background); depth (H,W) float32 camera-frame z in metres (``background_depth`` where
    nothing is drawn); face_offsets (M+1,) int64: mesh m owns global faces [off[m], off[m+1]).
    """

    color: np.ndarray | None
    face_id: np.ndarray | None
    bary: np.ndarray | None
    depth: np.ndarray | None
    face_offsets: np.ndarray
    _geom: np.ndarray | None = None  # (H,W,4) buffer that bary and depth view into

    @property
    def mask(self) -> np.ndarray:
        """(H,W) bool: pixels covered by a mesh (not ground, not background)."""
        return self._need("face_id") > 0

    def mesh_and_face(self) -> tuple[np.ndarray, np.ndarray]:
        """(mesh index, face index within that mesh) per pixel, both (H,W) int64, -1 where no mesh."""
        fid = self._need("face_id")
        glob = fid.astype(np.int64) - 1
        valid = fid > 0
        mesh = np.searchsorted(self.face_offsets, glob, side="right") - 1
        mesh = np.where(valid, mesh, -1)
        face = np.where(valid, glob - self.face_offsets[np.clip(mesh, 0, None)], -1)
        return mesh, face

    def copy(self) -> RenderOutput:
        geom = None if self._geom is None else self._geom.copy()
        return RenderOutput(
            color=None if self.color is None else self.color.copy(),
            face_id=None if self.face_id is None else self.face_id.copy(),
            bary=None if geom is None or self.bary is None else geom[..., :3],
            depth=None if geom is None or self.depth is None else geom[..., 3],
            face_offsets=self.face_offsets.copy(),
            _geom=geom,
        )

    def _need(self, name: str) -> np.ndarray:
        value = getattr(self, name)
        if value is None:
            raise ValueError(f"RenderOutput.{name} was not requested; pass outputs including {name!r}")
        return value


class _MeshSlot:
    """Reusable GPU buffers (positions, normals, indices) and their vertex array for one mesh."""

    def __init__(self, ctx: Any, program: Any) -> None:
        self.ctx, self.program = ctx, program
        self.vcap = self.fcap = 0
        self.pos = self.nrm = self.idx = self.vao = None

    def _grow(self, n_vertices: int, n_faces: int) -> None:
        if n_vertices <= self.vcap and n_faces <= self.fcap:
            return
        self.release()
        # Headroom so meshes of slightly varying size do not reallocate every call.
        self.vcap = max(n_vertices, int(self.vcap * 1.25), 4)
        self.fcap = max(n_faces, int(self.fcap * 1.25), 2)
        self.pos = self.ctx.buffer(reserve=self.vcap * 12)
        self.nrm = self.ctx.buffer(reserve=self.vcap * 12)
        self.idx = self.ctx.buffer(reserve=self.fcap * 12)
        self.vao = self.ctx.vertex_array(
            self.program,
            [(self.pos, "3f", "in_pos"), (self.nrm, "3f", "in_normal")],
            index_buffer=self.idx,
            index_element_size=4,
        )

    def draw(self, vertices: np.ndarray, faces: np.ndarray, normals: np.ndarray | None) -> None:
        import moderngl

        self._grow(len(vertices), len(faces))
        self.pos.write(vertices)
        if normals is not None:  # flat shading derives normals on the GPU; stale data is never read
            self.nrm.write(normals)
        self.idx.write(faces)
        self.vao.render(moderngl.TRIANGLES, vertices=3 * len(faces))

    def release(self) -> None:
        for obj in (self.vao, self.pos, self.nrm, self.idx):
            if obj is not None:
                obj.release()
        self.pos = self.nrm = self.idx = self.vao = None


class _Targets:
    """Framebuffer of one image size: colour RGBA8, face id R32I, geometry RGBA32F, depth, bg texture."""

    def __init__(self, ctx: Any, size: tuple[int, int]) -> None:
        self.size = size
        self.color = ctx.renderbuffer(size, components=4, dtype="f1")
        self.face_id = ctx.renderbuffer(size, components=1, dtype="i4")
        self.geom = ctx.renderbuffer(size, components=4, dtype="f4")
        self.depth = ctx.depth_renderbuffer(size)
        self.fbo = ctx.framebuffer(
            color_attachments=[self.color, self.face_id, self.geom], depth_attachment=self.depth
        )
        self.background = ctx.texture(size, 3, dtype="f1")
        self.background.filter = (ctx.NEAREST, ctx.NEAREST)

    def release(self) -> None:
        for obj in (self.fbo, self.color, self.face_id, self.geom, self.depth, self.background):
            obj.release()


def _set(program: Any, name: str, value: Any) -> None:
    # The GLSL compiler drops unused uniforms; setting one it dropped would raise KeyError.
    if name in program:
        program[name].value = value


def _write(program: Any, name: str, array: np.ndarray) -> None:
    if name in program:
        program[name].write(np.ascontiguousarray(array, dtype=np.float32).tobytes())


class Renderer:
    """Offscreen renderer on the process-wide EGL context (see :func:`get_context`).

    ``threads`` sets llvmpipe's LP_NUM_THREADS before the context exists (use 1 per worker process when
    running several). Lights are directions towards the light in the camera frame with gains; shading is
    Lambert + Blinn-Phong + ambient. One Renderer is for one thread.
    """

    def __init__(
        self,
        *,
        threads: int | None = None,
        lights: Sequence[Sequence[float]] = _DEFAULT_LIGHTS,
        light_gains: tuple[float, float] = (0.65, 0.3),
        ambient: float = 0.28,
        specular: float = 0.12,
        max_cached_sizes: int = 4,
    ) -> None:
        import moderngl

        self._moderngl = moderngl
        self.ctx = get_context(threads)
        dirs = np.asarray(lights, dtype=np.float64)
        if dirs.shape != (2, 3):
            raise ValueError(f"lights: expected two 3-vectors, got shape {dirs.shape}")
        self.light_dirs = dirs / np.linalg.norm(dirs, axis=1, keepdims=True)
        self.light_gains, self.ambient, self.specular = light_gains, ambient, specular
        self.max_cached_sizes = max(1, int(max_cached_sizes))
        self._scene = self.ctx.program(
            vertex_shader=shaders.SCENE_VERTEX,
            geometry_shader=shaders.SCENE_GEOMETRY,
            fragment_shader=shaders.SCENE_FRAGMENT,
        )
        self._bg = self.ctx.program(
            vertex_shader=shaders.BACKGROUND_VERTEX, fragment_shader=shaders.BACKGROUND_FRAGMENT
        )
        self._bg_vao = self.ctx.vertex_array(self._bg, [])
        self._targets: OrderedDict[tuple[int, int], _Targets] = OrderedDict()
        self._slots: list[_MeshSlot] = []
        self._ground_slot = _MeshSlot(self.ctx, self._scene)

    # -- resources -------------------------------------------------------------------------------
    def _targets_for(self, size: tuple[int, int]) -> _Targets:
        t = self._targets.get(size)
        if t is None:
            t = _Targets(self.ctx, size)
            self._targets[size] = t
            while len(self._targets) > self.max_cached_sizes:
                self._targets.popitem(last=False)[1].release()
        else:
            self._targets.move_to_end(size)
        return t

    def _slot(self, i: int) -> _MeshSlot:
        while len(self._slots) <= i:
            self._slots.append(_MeshSlot(self.ctx, self._scene))
        return self._slots[i]

    def release(self) -> None:
        """Free GPU resources now (the shared context stays)."""
        for t in self._targets.values():
            t.release()
        self._targets.clear()
        for s in [*self._slots, self._ground_slot]:
            s.release()
        self._slots.clear()
        for obj in (self._bg_vao, self._bg, self._scene):
            obj.release()

    def __enter__(self) -> Renderer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    # -- rendering -------------------------------------------------------------------------------
    def render(
        self,
        meshes: Sequence[Mesh],
        camera: PinholeCamera,
        *,
        world_to_camera: np.ndarray | None = None,
        ground: GroundPlane | None = None,
        background: np.ndarray | Sequence[float] | None = None,
        background_depth: float = 0.0,
        outputs: Iterable[str] = ALL_OUTPUTS,
        out: RenderOutput | None = None,
    ) -> RenderOutput:
        """Draw ``meshes`` (and ``ground``) seen by ``camera``; returns the requested per-pixel outputs.

        Meshes and ground are in the camera optical frame, or in a world frame when ``world_to_camera``
        (4x4, X_cam = T X_world) is given. ``background`` is an (H,W,3) uint8 image, an RGB colour, or
        None (black). ``background_depth`` fills depth where nothing is drawn (0.0 or np.inf).
        ``outputs`` picks among "color", "face_id", "bary", "depth" (reading back is most of the cost).
        ``out``: a previous result of the same size and outputs whose arrays are overwritten in place.
        """
        mgl = self._moderngl
        wanted = frozenset(outputs)
        if not wanted or not wanted <= ALL_OUTPUTS:
            raise ValueError(
                f"outputs: expected a non-empty subset of {sorted(ALL_OUTPUTS)}, got {sorted(wanted)}"
            )
        meshes = list(meshes)
        for i, m in enumerate(meshes):
            if not isinstance(m, Mesh):
                raise TypeError(f"meshes[{i}]: expected whmr_core.render.Mesh, got {type(m).__name__}")
        W, H = camera.size
        R, t = self._pose(world_to_camera)
        targets = self._targets_for((W, H))
        ctx = self.ctx

        targets.fbo.use()
        ctx.disable(mgl.CULL_FACE | mgl.BLEND | mgl.DEPTH_TEST)
        targets.fbo.clear(depth=1.0)
        self._draw_background(targets, background, float(background_depth))

        ctx.enable(mgl.DEPTH_TEST)
        ctx.depth_func = "<"
        prog = self._scene
        _write(prog, "u_R", R.T)  # GLSL matrices are column-major
        _write(prog, "u_t", t)
        _write(prog, "u_proj", camera.gl_projection().T)
        _write(prog, "u_light_dir", self.light_dirs)
        _write(prog, "u_light_gain", np.asarray(self.light_gains))
        _set(prog, "u_ambient", float(self.ambient))
        _set(prog, "u_specular", float(self.specular))

        offsets = np.zeros(len(meshes) + 1, dtype=np.int64)
        _set(prog, "u_ground", False)
        for i, m in enumerate(meshes):
            offsets[i + 1] = offsets[i] + len(m.faces)
            if len(m.faces) == 0:
                continue
            normals = m.shading_normals()
            _set(prog, "u_flat", normals is None)
            _set(prog, "u_color", m.color)
            _set(prog, "u_id_base", int(offsets[i]) + 1)
            self._slot(i).draw(m.vertices, m.faces, normals)
        if ground is not None:  # last, so early depth test skips its hidden fragments
            self._draw_ground(ground)

        return self._read(targets, wanted, offsets, out)

    @staticmethod
    def _pose(world_to_camera: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        if world_to_camera is None:
            return np.eye(3), np.zeros(3)
        T = np.asarray(world_to_camera, dtype=np.float64)
        if T.shape != (4, 4) or not np.all(np.isfinite(T)):
            raise ValueError(f"world_to_camera: expected a finite 4x4 matrix, got shape {T.shape}")
        R = T[:3, :3]
        if not np.allclose(R @ R.T, np.eye(3), atol=1e-5) or np.linalg.det(R) < 0:
            raise ValueError("world_to_camera: the 3x3 block must be a rotation")
        return R, T[:3, 3]

    def _draw_background(self, targets: _Targets, background: Any, depth: float) -> None:
        W, H = targets.size
        use_image = False
        color = (0.0, 0.0, 0.0)
        if background is not None:
            bg = np.asarray(background)
            if bg.ndim == 3:
                if bg.shape != (H, W, 3) or bg.dtype != np.uint8:
                    raise ValueError(
                        f"background: expected a ({H}, {W}, 3) uint8 image, got {bg.shape} {bg.dtype}"
                    )
                targets.background.write(np.ascontiguousarray(bg))
                targets.background.use(0)
                use_image = True
            else:
                c = np.asarray(bg, dtype=np.float64).reshape(-1)
                if c.shape != (3,):
                    raise ValueError(f"background: expected an image or an RGB colour, got shape {bg.shape}")
                color = tuple(float(x) for x in (c / 255.0 if c.max() > 1.0 else c))
        _set(self._bg, "u_use_image", use_image)
        _set(self._bg, "u_image", 0)
        _set(self._bg, "u_color", color)
        _set(self._bg, "u_depth", depth)
        self._bg_vao.render(self._moderngl.TRIANGLES, vertices=3)

    def _draw_ground(self, ground: GroundPlane) -> None:
        prog = self._scene
        e1, e2 = ground.basis()
        _set(prog, "u_ground", True)
        _set(prog, "u_flat", False)
        _set(prog, "u_color", ground.colors[0])
        _write(prog, "u_ground_color2", np.asarray(ground.colors[1]))
        _write(prog, "u_ground_origin", ground.point)
        _write(prog, "u_ground_e1", e1)
        _write(prog, "u_ground_e2", e2)
        _set(prog, "u_ground_tile", float(ground.tile))
        quad = ground.quad()
        normals = np.repeat(ground.normal[None].astype(np.float32), 4, axis=0)
        faces = np.array([[0, 1, 2], [0, 2, 3]], dtype=np.uint32)
        self._ground_slot.draw(quad, faces, normals)

    def _read(
        self, targets: _Targets, wanted: frozenset[str], offsets: np.ndarray, out: RenderOutput | None
    ) -> RenderOutput:
        W, H = targets.size
        fbo = targets.fbo
        if out is None:
            geom = np.empty((H, W, 4), np.float32) if wanted & {"bary", "depth"} else None
            out = RenderOutput(
                color=np.empty((H, W, 3), np.uint8) if "color" in wanted else None,
                face_id=np.empty((H, W), np.int32) if "face_id" in wanted else None,
                bary=geom[..., :3] if "bary" in wanted else None,
                depth=geom[..., 3] if "depth" in wanted else None,
                face_offsets=offsets,
                _geom=geom,
            )
        else:
            for name in ALL_OUTPUTS:
                if (getattr(out, name) is not None) != (name in wanted):
                    raise ValueError(f"out: has different outputs than requested ({name!r})")
            shape = next(getattr(out, n) for n in sorted(wanted)).shape[:2]
            if shape != (H, W):
                raise ValueError(f"out: holds {shape[1]}x{shape[0]} images, camera is {W}x{H}")
            out.face_offsets = offsets
        # GL returns rows bottom-up in window coordinates, which is image row order here (no y flip).
        if out.color is not None:
            fbo.read_into(out.color, components=3, attachment=0, alignment=1, dtype="f1")
        if out.face_id is not None:
            fbo.read_into(out.face_id, components=1, attachment=1, alignment=1, dtype="i4")
        if out._geom is not None:
            fbo.read_into(out._geom, components=4, attachment=2, alignment=1, dtype="f4")
        return out
