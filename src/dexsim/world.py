"""The one renderer of what a world model is conditioned on (layer 2).

A :class:`World` is a scene ready to be filmed: the Gaussian splat, the part of it that hides the
hands (a built-in scene's room, table and chest; a captured scene whole), the pose of its movable
parts at rest, where the hands may work, and a pinhole camera (``width`` x ``height``, ``fov_y``).
:meth:`World.render_conditions` turns a camera path and hand states into everything a world
model sees: the static video (RGB, depth, alpha) and the visual action prompts, occluded by the
scene. The env, the physics oracle (and so dataset generation and goal images), the planners and
the demo all call it, so the model is served exactly what it was trained on. The constants of the
conditions (background colour, Gaussian density of the built-in scenes) live here only.

Built-in scenes are made into worlds by :func:`dexsim.physics.world_for_spec` (the same spec builds
the MuJoCo model); a captured ``.ply`` by :meth:`World.from_ply`.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .geometry.camera import PinholeIntrinsics
from .geometry.se3 import pose7_to_viewmat
from .hands.poses import default_hands
from .hands.prompts import PROMPT_KINDS, depth_picture, mask_picture, render_prompt
from .scene.gaussians import GaussianScene
from .scene.render import RenderOutput, render

__all__ = ["BACKGROUND", "DENSITY_SCALE", "Conditions", "HandStates", "World"]

#: colour where no Gaussian covers a pixel (RGB in [0, 1])
BACKGROUND = (0.05, 0.05, 0.06)
#: Gaussian density of the built-in scenes relative to their builders' (fewer Gaussians: faster, same look)
DENSITY_SCALE = 0.35


@dataclass(frozen=True)
class HandStates:
    """Both hands over T frames: ``params`` (T, 2, 51) MANO-style (``global_orient``, ``hand_pose``,
    ``transl``), ``visible`` (T, 2) bool, optional ``betas`` (2, 10), optional ``joints`` (T, 2, 21, 3)
    world (drawn by the skeleton prompt; posed from ``params`` when absent)."""

    params: np.ndarray
    visible: np.ndarray
    betas: np.ndarray | None = None
    joints: np.ndarray | None = None

    def __post_init__(self) -> None:
        p, v = np.asarray(self.params), np.asarray(self.visible)
        if p.ndim != 3 or p.shape[1:] != (2, 51):
            raise ValueError(f"`params` must be (T, 2, 51), got {p.shape}")
        if v.shape != p.shape[:2]:
            raise ValueError(f"`visible` must be (T, 2) = {p.shape[:2]}, got {v.shape}")
        if self.joints is not None and np.asarray(self.joints).shape != (p.shape[0], 2, 21, 3):
            raise ValueError(f"`joints` must be (T, 2, 21, 3) = {(p.shape[0], 2, 21, 3)}, got "
                             f"{np.asarray(self.joints).shape}")  # fmt: skip

    @property
    def num_frames(self) -> int:
        return int(np.asarray(self.params).shape[0])


@dataclass
class Conditions:
    """What a world model is conditioned on, along T frames.

    ``static`` (T, H, W, 3) uint8: the scene at rest; ``depth``, ``alpha`` (T, H, W) float32 its expected
    z-depth (0 = nothing) and opacity; ``occluder_depth`` (T, H, W): the depth that hides the hands;
    ``prompts``: kind -> (T, H, W, 3) uint8 visual action prompt; ``hand_masks`` (T, 2, H, W) bool the
    visible hand pixels; ``joints`` (T, 2, 21, 3) float64 world joints the prompts were drawn from.
    """

    static: np.ndarray
    depth: np.ndarray
    alpha: np.ndarray
    occluder_depth: np.ndarray
    prompts: dict[str, np.ndarray]
    hand_masks: np.ndarray
    joints: np.ndarray

    def prompt(self, kind: str) -> np.ndarray:
        if kind not in self.prompts:
            raise ValueError(f"prompt kind {kind!r} was not rendered; have {sorted(self.prompts)}")
        return self.prompts[kind]


def _to_world(scene: GaussianScene, world_from_file: np.ndarray) -> GaussianScene:
    """Apply a similarity ``x -> s R x + t`` to a splat (SH beyond degree 0 dropped when R rotates)."""
    from .geometry.rotations import matrix_to_quat, quat_multiply

    A = torch.from_numpy(world_from_file[:3, :3]).float()
    s = float(torch.linalg.det(A).abs() ** (1.0 / 3.0))
    R, t = A / s, torch.from_numpy(world_from_file[:3, 3]).float()
    if torch.allclose(A, torch.eye(3)) and torch.allclose(t, torch.zeros(3)):
        return scene
    if not torch.allclose(R, torch.eye(3), atol=1e-6) and scene.sh_degree > 0:
        warnings.warn("the scene is rotated into the world frame: view-dependent colour (SH > 0) dropped", stacklevel=3)
        scene = scene.with_sh_degree(0)
    q = quat_multiply(matrix_to_quat(R.double())[None].expand(len(scene), 4), scene.quats.double()).float()
    return GaussianScene(scene.means @ (s * R).T + t, q, scene.log_scales + math.log(s), scene.opacity_logits,
                         scene.sh, scene.object_ids, scene.object_names)  # fmt: skip


def _unique_frames(viewmats: torch.Tensor) -> tuple[torch.Tensor, np.ndarray]:
    """Indices of the distinct (float32-equal) cameras of (T, 4, 4) ``viewmats`` and, per frame, which
    of them it is: rendering only those gives the same pixels (each camera renders independently)."""
    flat = viewmats.reshape(len(viewmats), -1).numpy()
    _, keep, back = np.unique(flat, axis=0, return_index=True, return_inverse=True)
    return torch.from_numpy(keep), back.reshape(-1)


def _expand(out: RenderOutput, back: np.ndarray) -> RenderOutput:
    """A render of distinct cameras laid out again frame by frame."""
    if len(back) == len(out.rgb) and np.array_equal(back, np.arange(len(back))):
        return out
    idx = torch.from_numpy(back)
    masked = None if out.masked_depth is None else out.masked_depth[idx]
    return RenderOutput(out.rgb[idx], out.depth[idx], out.alpha[idx], out.backend, masked)


@dataclass
class World:
    """A scene and a camera model: see the module docstring.

    ``scene``: the splat (movable parts at the pose they were built in); ``occluder_mask``: (N,) bool, the
    Gaussians of the part that hides the hands (None: the whole scene; its depth is composited in the same
    pass as the static video); ``rest_motions`` (K, 4, 4): per-object rigid motion
    from the built pose to the rest pose (None: everything rests as built); ``workspace``: (lo, hi)
    corners of the box the wrists may move in; ``table``: (x, y, z) centre of the working surface;
    ``start_camera``: (7,) camera-to-world ``[t, q]`` to start from (None: look at the table from
    the front); ``spec``: the physics spec of a built-in scene (None for captured scenes).
    """

    scene: GaussianScene
    name: str = "scene"
    occluder_mask: torch.Tensor | None = None
    rest_motions: torch.Tensor | None = None
    workspace: tuple[np.ndarray, np.ndarray] = field(default_factory=lambda: (np.full(3, -1.0), np.full(3, 1.0)))
    table: tuple[float, float, float] = (0.0, 0.35, 0.75)
    start_camera: np.ndarray | None = None
    spec: Any = None
    width: int = 128
    height: int = 128
    fov_y: float = 60.0

    def __post_init__(self) -> None:
        m = self.occluder_mask
        if m is not None and not (isinstance(m, torch.Tensor) and m.dtype == torch.bool
                                  and tuple(m.shape) == (self.scene.num_gaussians,)):  # fmt: skip
            got = f"{type(m).__name__} {tuple(m.shape)} {m.dtype}" if isinstance(m, torch.Tensor) else type(m).__name__
            raise ValueError(f"`occluder_mask` must be a ({self.scene.num_gaussians},) bool tensor over the scene's "
                             f"Gaussians (it replaced the `occluder` splat), got {got}")  # fmt: skip
        for name in ("width", "height"):
            v = getattr(self, name)
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1:
                raise ValueError(f"`{name}` must be a positive int, got {v!r}")
        if not (isinstance(self.fov_y, (int, float)) and 0.0 < float(self.fov_y) < 180.0):
            raise ValueError(f"`fov_y` must be in (0, 180) degrees, got {self.fov_y!r}")

    # ----------------------------------------------------------------------------- building
    @classmethod
    def from_ply(cls, path: str | Path, width: int = 128, height: int = 128, fov_y: float = 60.0,
                 metadata: Any = None) -> World:  # fmt: skip
        """A captured scene: the splat moved into the world frame of ``metadata`` (a
        :class:`~dexsim.scene.metadata.SceneMetadata`; default its sidecar's, estimated when there is none);
        the whole scene hides the hands."""
        from .scene.metadata import estimate_metadata, read_metadata, sidecar_path
        from .scene.ply import read_scene

        splat = read_scene(path)
        side = sidecar_path(path)
        meta = metadata if metadata is not None else read_metadata(side) if side.is_file() else estimate_metadata(splat)
        splat = _to_world(splat, np.asarray(meta.world_from_file, np.float64))
        lo, hi = np.asarray(meta.workspace_min, float), np.asarray(meta.workspace_max, float)
        centre = (lo + hi) / 2
        return cls(splat, str(path), None, None, (lo, hi), (float(centre[0]), float(centre[1]), float(lo[2])),
                   np.asarray(meta.start_camera, np.float64), None, width, height, fov_y)  # fmt: skip

    def at(self, width: int, height: int, fov_y: float | None = None) -> World:
        """The same scene filmed by another camera model (the splat is shared, not copied)."""
        return replace(self, width=width, height=height, fov_y=self.fov_y if fov_y is None else fov_y)

    @property
    def K(self) -> torch.Tensor:
        """(3, 3) float64 intrinsics of the camera model."""
        return PinholeIntrinsics.from_fov(self.fov_y, self.width, self.height).K(torch.float64)

    @property
    def num_movable(self) -> int:
        return 0 if self.rest_motions is None else int(self.rest_motions.shape[0])

    # ---------------------------------------------------------------------------- rendering
    def viewmats(self, cameras: np.ndarray) -> torch.Tensor:
        """(T, 4, 4) float64 world-to-camera matrices of (T, 7) camera-to-world poses `[t, q]`."""
        cams = np.asarray(cameras, np.float64)
        if cams.ndim != 2 or cams.shape[1] != 7:
            raise ValueError(f"`cameras` must be (T, 7) camera-to-world [t, q], got {cams.shape}")
        if not np.isfinite(cams).all():
            raise ValueError("`cameras` has non-finite values")
        return pose7_to_viewmat(torch.from_numpy(cams))

    def render_scene(self, cameras: np.ndarray, motions: torch.Tensor | None = None,
                     with_occluder: bool = False) -> RenderOutput:  # fmt: skip
        """The splat along ``cameras`` (T, 7) with per-frame object ``motions`` (T, K, 4, 4) from the
        built pose (None: at rest); ``with_occluder`` (at rest): also the occluder's depth (``masked_depth``)."""
        vms = self.viewmats(cameras).float()
        if motions is None:
            # the scene at rest: a camera held still is rendered once (bit-identical frames)
            keep, back = _unique_frames(vms)
            poses = None if self.rest_motions is None else self.rest_motions.expand(len(keep), -1, -1, -1)
            mask = self.occluder_mask if with_occluder else None
            out = render(self.scene, vms[keep], self.K.float(), self.width, self.height, background=BACKGROUND,
                         object_poses=poses, depth_mask=mask)  # fmt: skip
            return _expand(out, back)
        return render(self.scene, vms, self.K.float(), self.width, self.height, background=BACKGROUND,
                      object_poses=motions.float())  # fmt: skip

    def occluder_depth(self, cameras: np.ndarray, static: RenderOutput | None = None) -> np.ndarray:
        """(T, H, W) float32 depth of the part that hides the hands; ``static``, a ``render_scene(cameras,
        with_occluder=True)`` of the same cameras, is reused (it holds that depth)."""
        if static is None or (self.occluder_mask is not None and static.masked_depth is None):
            static = self.render_scene(cameras, with_occluder=True)
        return (static.depth if self.occluder_mask is None else static.masked_depth).numpy()

    def pose_hands(self, hands: HandStates) -> tuple[torch.Tensor, torch.Tensor]:
        """Posed meshes (T, 2, V, 3) (zeros where a hand is hidden) and joints (T, 2, 21, 3), float64."""
        models = default_hands()
        visible = torch.from_numpy(np.asarray(hands.visible, bool))
        verts, joints = [], []
        for h in range(2):
            p = torch.from_numpy(np.asarray(hands.params)[:, h].astype(np.float32))
            b = None if hands.betas is None else torch.from_numpy(np.asarray(hands.betas)[h].astype(np.float32))
            out = models[h](p[:, :3], p[:, 3:48], p[:, 48:], b)
            verts.append(torch.where(visible[:, h, None, None], out.vertices, 0.0))
            joints.append(out.joints)
        j = torch.stack(joints, 1).double() if hands.joints is None else torch.from_numpy(
            np.asarray(hands.joints, np.float64))  # fmt: skip
        return torch.stack(verts, 1).double(), j

    def render_hands(self, cameras: np.ndarray, hands: HandStates, kinds: tuple[str, ...], scene_depth: np.ndarray,
                     mesh_colors: tuple[tuple[int, int, int], tuple[int, int, int]] | None = None
                     ) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:  # fmt: skip
        """Prompts of ``kinds`` (one mesh rasterisation serves mesh, depth and mask), hidden behind
        ``scene_depth`` (T, H, W); returns (kind -> (T, H, W, 3) uint8, hand masks (T, 2, H, W), joints).
        ``mesh_colors`` recolours the ``mesh`` kind (the oracle's skin tones)."""
        bad = [k for k in kinds if k not in PROMPT_KINDS]
        if bad:
            raise ValueError(f"prompt kinds must be among {PROMPT_KINDS}, got {bad}")
        if hands.num_frames != len(cameras):
            raise ValueError(f"{hands.num_frames} hand frames for {len(cameras)} cameras")
        vms = self.viewmats(cameras)
        verts, joints = self.pose_hands(hands)
        visible = torch.from_numpy(np.asarray(hands.visible, bool))
        faces = (default_hands()[0].faces, default_hands()[1].faces)
        out: dict[str, np.ndarray] = {}
        masks: np.ndarray | None = None
        if any(k != "skeleton" for k in kinds):
            extra = {} if mesh_colors is None else {"mesh_colors": mesh_colors}
            mesh = render_prompt("mesh", vms, self.K, self.width, self.height, joints, visible, verts, faces,
                                 scene_depth=scene_depth, **extra)  # fmt: skip
            masks = mesh.mask
            pictures = {"mesh": mesh.rgb, "depth": depth_picture(mesh.depth), "mask": mask_picture(mesh.mask)}
            out.update({k: pictures[k] for k in kinds if k in pictures})
        if "skeleton" in kinds:
            sk = render_prompt("skeleton", vms, self.K, self.width, self.height, joints, visible,
                               scene_depth=scene_depth)  # fmt: skip
            out["skeleton"] = sk.rgb
            masks = sk.mask if masks is None else masks
        assert masks is not None
        return out, masks, joints.numpy()

    def render_conditions(self, cameras: np.ndarray, hands: HandStates, kinds: tuple[str, ...] = ("mesh",),
                          timings: dict[str, float] | None = None) -> Conditions:  # fmt: skip
        """Everything a world model is conditioned on along ``cameras`` (T, 7) camera-to-world ``[t, q]``
        with ``hands`` (T frames): the static video of the scene at rest and the prompts of ``kinds``.
        ``timings``, when given, gets the seconds of ``static`` (splat and occluder depth) and ``prompt``."""
        t0 = time.perf_counter()
        static = self.render_scene(cameras, with_occluder=True)
        occluder = self.occluder_depth(cameras, static)
        t1 = time.perf_counter()
        prompts, masks, joints = self.render_hands(cameras, hands, tuple(kinds), occluder)
        if timings is not None:
            timings["static"] = t1 - t0
            timings["prompt"] = time.perf_counter() - t1
        return Conditions(static.rgb_uint8().numpy(), static.depth.numpy(), static.alpha.numpy(), occluder, prompts,
                          masks, joints)  # fmt: skip

    def render_static(self, cameras: np.ndarray) -> np.ndarray:
        """(T, H, W, 3) uint8 static video alone (the scene at rest, no hands)."""
        return self.render_scene(cameras).rgb_uint8().numpy()
