"""The physics oracle: simulate a hand trajectory in a scene spec and render what happened.

Outputs, all along the trajectory's camera path: the static video (objects at rest), a visual
action prompt (occluded by the depth of the scene's fixed part: room, table, chest; not by the
movable objects, whose rest pose is exactly where a hand pushes them from), and the ground-truth
interaction video: the splat with every object moved to its simulated pose, and skin-toned,
shaded hands composited by depth.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import torch

from ..geometry.camera import PinholeIntrinsics
from ..geometry.rotations import quat_to_matrix
from ..geometry.se3 import pose7_to_viewmat
from ..hands.prompts import PROMPT_KINDS, PromptKind, depth_picture, mask_picture, render_prompt
from ..hands.render import pose_trajectory
from ..hands.trajectory import HandTrajectory
from ..scene.gaussians import GaussianScene, rgb_to_sh0
from ..scene.render import render
from .build import build_gaussians
from .sim import SimResult, Simulator
from .spec import SceneSpec

__all__ = ["SKIN_RGB", "Oracle", "OracleClip"]

#: fully lit skin tones of the ground-truth hands (left, right): light and medium
SKIN_RGB = ((236, 188, 160), (214, 160, 124))
BACKGROUND = (0.05, 0.05, 0.06)


@dataclass
class OracleClip:
    """(T, H, W, 3) uint8 videos ``static``, ``prompt`` (the requested kind), ``interaction``, and
    ``prompts`` with every kind (mesh, skeleton, depth, mask); ``sim`` the physics record;
    ``object_masks`` (T, H, W) int8: the object id seen at each pixel of the interaction video
    (-1 none, -2 left hand, -3 right hand)."""

    static: np.ndarray
    prompt: np.ndarray
    interaction: np.ndarray
    object_masks: np.ndarray
    sim: SimResult
    prompts: dict[str, np.ndarray]
    scene: np.ndarray | None = None  # (T, H, W, 3) the moved scene without hands (goal images)


def _slice_result(res: SimResult, start: int) -> SimResult:
    """Frames ``start:`` of a simulation, keeping frame 0's object poses as the rest reference."""
    n = res.object_poses.shape[0]
    out = SimResult(**{f.name: getattr(res, f.name) for f in fields(res)})
    for f in fields(res):
        v = getattr(res, f.name)
        if isinstance(v, np.ndarray) and v.ndim >= 1 and v.shape[0] == n:
            keep = (v[:1], v[start:]) if f.name in ("object_poses", "drawer") else (v[start:],)
            setattr(out, f.name, np.concatenate(keep))
    return out


def _motions(res: SimResult, n_objects: int, has_drawer: bool) -> torch.Tensor:
    """Per-frame rigid motions (T, K, 4, 4) from the rest placement (frame 0) to frame t."""
    n = res.object_poses.shape[0]
    out = torch.eye(4, dtype=torch.float64).repeat(n, n_objects + int(has_drawer), 1, 1)
    if n_objects:
        p = torch.from_numpy(res.object_poses)
        R = quat_to_matrix(p[..., 3:])
        R0, t0 = R[0], p[0, :, :3]
        Rm = R @ R0.transpose(-1, -2)
        out[:, :n_objects, :3, :3] = Rm
        out[:, :n_objects, :3, 3] = p[..., :3] - (Rm @ t0[..., None])[..., 0]
    if has_drawer:  # the splat holds the drawer closed: its motion is the absolute opening
        out[:, -1, 1, 3] = -torch.from_numpy(res.drawer)
    return out


class Oracle:
    """Ground truth for one scene spec at ``width`` x ``height`` with a pinhole of ``fov_y`` degrees."""

    def __init__(self, spec: SceneSpec, width: int = 128, height: int = 128, fov_y: float = 60.0, fps: float = 8.0,
                 density_scale: float = 1.0, seed: int = 0) -> None:  # fmt: skip
        self.spec = spec
        self.width, self.height = width, height
        self.K = PinholeIntrinsics.from_fov(fov_y, width, height).K(torch.float64)
        self.scene = build_gaussians(spec, seed=seed, density_scale=density_scale)
        # prompts are occluded by the fixed part of the scene only: a movable object's rest pose
        # is where the hand pushes it away from, so it must not hide the hand
        self.background = self.scene.subset(self.scene.object_ids == 0)
        self.sim = Simulator(spec, fps=fps)
        self.last_result: SimResult | None = None

    def run(self, traj: HandTrajectory, prompt_kind: PromptKind = "mesh", start: int = 0,
            masks: bool = True) -> OracleClip:  # fmt: skip
        """Simulate the whole trajectory; render frames ``start:`` (earlier frames are the history
        that brought the objects where they are, as in a long rollout chunk by chunk). ``masks=False``
        skips the per-object id masks (-1 everywhere but the hands)."""
        if not 0 <= start < traj.num_frames:
            raise ValueError(f"`start` must lie in [0, {traj.num_frames}), got {start}")
        if traj.camera is None:
            raise ValueError("the oracle needs a trajectory with a `camera` path")
        if traj.params is None:
            raise ValueError("the oracle needs hand `params` (fit them with dexsim.hands.render.fit_trajectory)")
        res = self.sim.run(traj.joints, traj.visible)
        self.last_result = res  # the whole simulation (``start`` only limits what is rendered)
        if start:
            traj = traj.slice(start, traj.num_frames)
            res = _slice_result(res, start)
        vms = pose7_to_viewmat(torch.from_numpy(traj.camera.astype(np.float64))).float()
        K = self.K.float()
        w, h = self.width, self.height
        motions = _motions(res, len(self.spec.objects), self.spec.drawer is not None).float()
        rest = motions[:1]
        if start:  # frame 0 of the sliced record is the episode's start, kept as the rest reference
            motions = motions[1:]
            res = SimResult(
                **{
                    f.name: (
                        getattr(res, f.name)[1:]
                        if f.name in ("object_poses", "drawer") and len(getattr(res, f.name))
                        else getattr(res, f.name)
                    )
                    for f in fields(res)
                }
            )
        # the static video shows the scene as it is at the start (an open drawer stays open)
        static = render(self.scene, vms, K, w, h, background=BACKGROUND, object_poses=rest.expand_as(motions))
        moved = render(self.scene, vms, K, w, h, background=BACKGROUND, object_poses=motions)
        verts, faces = pose_trajectory(traj)
        joints = torch.from_numpy(traj.joints.astype(np.float64))
        visible = torch.from_numpy(traj.visible)
        fixed = render(self.background, vms, K, w, h)
        if prompt_kind not in PROMPT_KINDS:
            raise ValueError(f"`prompt_kind` must be one of {PROMPT_KINDS}, got {prompt_kind!r}")
        # one mesh rasterisation gives the mesh, depth and mask prompts
        mesh = render_prompt("mesh", vms.double(), self.K, w, h, joints, visible, verts.double(), faces,
                             scene_depth=fixed.depth.numpy())  # fmt: skip
        skeleton = render_prompt("skeleton", vms.double(), self.K, w, h, joints, visible,
                                 scene_depth=fixed.depth.numpy())  # fmt: skip
        prompts = {"mesh": mesh.rgb, "skeleton": skeleton.rgb, "depth": depth_picture(mesh.depth),
                   "mask": mask_picture(mesh.mask)}  # fmt: skip
        skin = render_prompt("mesh", vms.double(), self.K, w, h, joints, visible, verts.double(), faces,
                             scene_depth=moved.depth.numpy(), mesh_colors=SKIN_RGB)  # fmt: skip
        hand = skin.mask.any(1)
        interaction = moved.rgb_uint8().numpy().copy()
        interaction[hand] = skin.rgb[hand]
        ids = self._object_masks(motions, vms, K) if masks else np.full(hand.shape, -1, np.int8)
        ids[skin.mask[:, 0]] = -2
        ids[skin.mask[:, 1]] = -3
        return OracleClip(static.rgb_uint8().numpy(), prompts[prompt_kind], interaction, ids, res, prompts,
                          moved.rgb_uint8().numpy())  # fmt: skip

    def _object_masks(self, motions: torch.Tensor, vms: torch.Tensor, K: torch.Tensor) -> np.ndarray:
        """Which object dominates each pixel: render each object's opacity with its id as colour."""
        ids = self.scene.object_ids
        n_ids = self.scene.num_objects + 1
        # colour each object's Gaussians with a one-hot channel (three ids per render pass); a pixel
        # belongs to the object whose channel exceeds 0.5 (it covers most of the pixel's colour)
        best = np.full((vms.shape[0], self.height, self.width), -1, np.int8)
        best_w = np.zeros((vms.shape[0], self.height, self.width), np.float32)
        for start in range(1, n_ids, 3):
            cols = torch.zeros(len(self.scene), 3)
            for c in range(3):
                if start + c < n_ids:
                    cols[ids == start + c, c] = 1.0
            probe = GaussianScene(self.scene.means, self.scene.quats, self.scene.log_scales,
                                  self.scene.opacity_logits, rgb_to_sh0(cols)[:, None, :], ids,
                                  self.scene.object_names)  # fmt: skip
            out = render(probe, vms, K, self.width, self.height, object_poses=motions).rgb.numpy()
            for c in range(3):
                better = out[..., c] > np.maximum(best_w, 0.5)
                best[better] = start + c
                best_w[better] = out[..., c][better]
        return best
