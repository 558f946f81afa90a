"""The physics oracle: simulate a hand trajectory in a scene spec and render what happened.

Outputs, all along the trajectory's camera path: the static video (objects at rest), a visual
action prompt (occluded by the depth of the scene's fixed part: room, table, chest; not by the
movable objects, whose rest pose is exactly where a hand pushes them from), and the ground-truth
interaction video: the splat with every object moved to its simulated pose, and skin-toned,
shaded hands composited by depth.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import torch

from ..hands.prompts import PROMPT_KINDS, PromptKind
from ..hands.trajectory import HandTrajectory
from ..scene.gaussians import GaussianScene, rgb_to_sh0
from ..scene.render import render
from ..world import HandStates, World
from .build import world_for_spec
from .flow import object_motions
from .sim import SimResult, Simulator
from .spec import SceneSpec

__all__ = ["SKIN_RGB", "Oracle", "OracleClip"]

#: fully lit skin tones of the ground-truth hands (left, right): light and medium
SKIN_RGB = ((236, 188, 160), (214, 160, 124))


@dataclass
class OracleClip:
    """(T, H, W, 3) uint8 videos ``static``, ``prompt`` (the requested kind), ``interaction``, and
    ``prompts`` with every kind (mesh, skeleton, depth, mask); ``sim`` the physics record of the
    rendered frames, ``episode`` that of the whole simulated trajectory; ``object_masks`` (T, H, W)
    int8: the object id seen at each pixel of the interaction video (-1 none, -2 left hand, -3 right
    hand); ``scene`` the moved scene without hands (goal images)."""

    static: np.ndarray
    prompt: np.ndarray
    interaction: np.ndarray
    object_masks: np.ndarray
    sim: SimResult
    prompts: dict[str, np.ndarray]
    scene: np.ndarray | None = None
    episode: Any = None


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
    return object_motions(res.object_poses, res.drawer, n_objects, has_drawer)


class Oracle:
    """Ground truth for one scene spec at ``width`` x ``height`` with a pinhole of ``fov_y`` degrees.

    The static video and the prompts come from :meth:`World.render_conditions` (what the env feeds
    a world model); ``world`` shares a built world of this spec (else it is built here with
    ``seed`` and ``density_scale``, default :data:`dexsim.world.DENSITY_SCALE`)."""

    def __init__(self, spec: SceneSpec, width: int = 128, height: int = 128, fov_y: float = 60.0, fps: float = 8.0,
                 density_scale: float | None = None, seed: int = 0, world: World | None = None) -> None:  # fmt: skip
        self.spec = spec
        if world is None:
            world = world_for_spec(spec, seed=seed, density_scale=density_scale, width=width, height=height,
                                   fov_y=fov_y)  # fmt: skip
        elif world.spec is not spec:
            raise ValueError(f"`world` was built for another spec ({world.name!r})")
        self.world = world.at(width, height, fov_y)
        self.width, self.height = width, height
        self.K = self.world.K
        self.scene = self.world.scene
        self.sim = Simulator(spec, fps=fps)

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
        if prompt_kind not in PROMPT_KINDS:
            raise ValueError(f"`prompt_kind` must be one of {PROMPT_KINDS}, got {prompt_kind!r}")
        episode = self.sim.run(traj.joints, traj.visible)
        res = episode
        if start:
            traj = traj.slice(start, traj.num_frames)
            res = _slice_result(res, start)
        motions = _motions(res, len(self.spec.objects), self.spec.drawer is not None).float()
        if start:  # frame 0 of the sliced record is the episode's start, kept as the rest reference
            motions = motions[1:]
            res = SimResult(**{f.name: (getattr(res, f.name)[1:] if f.name in ("object_poses", "drawer")
                                        and len(getattr(res, f.name)) else getattr(res, f.name))
                               for f in fields(res)})  # fmt: skip
        cameras = traj.camera.astype(np.float64)
        hands = HandStates(traj.params, traj.visible, traj.betas)
        # the static video (the scene at rest) and every prompt kind: exactly what the env feeds a model
        cond = self.world.render_conditions(cameras, hands, kinds=PROMPT_KINDS)
        moved = self.world.render_scene(cameras, motions)
        skin, skin_masks, _ = self.world.render_hands(cameras, hands, ("mesh",), moved.depth.numpy(),
                                                       mesh_colors=SKIN_RGB)  # fmt: skip
        hand = skin_masks.any(1)
        interaction = moved.rgb_uint8().numpy().copy()
        interaction[hand] = skin["mesh"][hand]
        vms = self.world.viewmats(cameras).float()
        ids = self._object_masks(motions, vms, self.K.float()) if masks else np.full(hand.shape, -1, np.int8)
        ids[skin_masks[:, 0]] = -2
        ids[skin_masks[:, 1]] = -3
        return OracleClip(cond.static, cond.prompts[prompt_kind], interaction, ids, res, cond.prompts,
                          moved.rgb_uint8().numpy(), episode)  # fmt: skip

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
