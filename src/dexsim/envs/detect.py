"""The success detector that reads frames: a task's outcome estimated from video alone.

A learned world model returns frames, not physics. :class:`SuccessDetector` estimates from the
frames the same quantity the physics test measures (:meth:`dexsim.envs.Task.measure`): how far
the target object moved on the table, or how far the drawer opened. It compares each frame with
the static scene rendered from that frame's own camera, so head motion is not taken for object
motion, and it ignores the pixels the hands cover (the visual action prompt says where they are).

Definition (frame ``t`` of an episode, camera ``c_t``, hand mask ``H_t``: the prompt's non-black
pixels grown by one pixel; ``V_t`` = not ``H_t``):

**Objects** (push, pick and place; the task's ``target``):

1. Template: the static scene rendered from ``c_t`` with the target's Gaussians white and all
   others black; ``M_t`` = pixels more than half covered by the target, ``c`` their centroid.
2. Pixel classes by the nearest colour prototype (k-means centres of the target's, the other
   objects' and the background's colours in the static render from the start camera and of their
   Gaussians' own colours, which hold the shade of every face, also those the start camera does not
   see, plus the ground-truth hands' two skin tones): target pixels ``D_t`` (nearest to a target prototype and
   within ``colour_tolerance`` of it); pixels nearest to another object or to skin may hide the
   target and count as unseen, like the hands: ``V_t`` excludes them.
3. Shift: ``s* = argmax_s sum_p M_t(p - s) V_t(p) (2 D_t(p) - 1)`` (target pixels the shifted
   template covers minus its non-target pixels, unseen pixels ignored), ``|s|`` up to half the
   image, in whole pixels; then refined by the centroid of the target pixels within 2 px of the
   moved template minus the centroid of the moved template's seen pixels (at most 1 px).
4. The frame is readable when at least ``min_visible`` of the shifted template is seen (not
   hidden by hands or other objects, inside the image) and at least ``min_found`` of those pixels
   are target pixels: the target is found at ``c + s*``; unless a hand holds it up (the target
   lies, in the image, between the thumb tip and the index or middle tip of a hand whose tips are
   at most the target's narrowest width + 2.7 cm apart, at least 2 cm above the target's resting
   centre, as the action posed the hand): then where it stands cannot be read. A target found
   nowhere (gone from view, or erased by a world model) is not read either.
5. The detector reads the last readable frame of the episode (frames where a hand hides the
   target are skipped). Measure: the length of the horizontal translation that moves the image of
   the target's resting centre by ``s*``: metres on the table, like the physics test.

**Drawer** (``target`` None): the scene rendered from ``c_t`` with the drawer opened by each of
``drawer_hypotheses`` openings evenly spaced over [0, 1.15 x travel]; ``R_t`` = pixels whose colour
changes with the opening (by more than 0.08). The frame is readable when at least ``min_visible``
of ``R_t`` lies outside the hands; the opening is the hypothesis with the least mean absolute
colour error over ``R_t`` minus the hands, refined by a parabola; the measure is that opening
minus the drawer's opening at the start.

Success: measure >= the task's ``min_move`` (the physics test's threshold). Besides the measure,
a :class:`Detection` holds where the detector puts the target's centre (the drawer: its handle)
in the frame read, in pixels, for end-position errors against physics.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..world import World

__all__ = ["Detection", "SuccessDetector", "hand_masks"]


@dataclass
class Detection:
    """What the detector read. ``measure`` (m): target displacement on the table, or change of the
    drawer's opening; ``success``: ``measure >= min_move``; ``frame``: the episode frame read;
    ``position_px`` (2,) (x, y) where the target's centre (the drawer's handle) is in that frame;
    ``visible``: the fraction of the target's template (or of the drawer's changing region) seen
    there (not hidden by hands or, for objects, by other objects)."""

    measure: float
    success: bool
    frame: int
    position_px: np.ndarray
    visible: float


def hand_masks(prompts: np.ndarray, grow: int = 1) -> np.ndarray:
    """(T, H, W) bool hand pixels of a (T, H, W, 3) uint8 visual action prompt (non-black), grown by ``grow`` px."""
    from ..scoring import hand_masks_from_prompts

    return hand_masks_from_prompts(np.asarray(prompts)[:, None], dilate=grow)


def _kmeans(x: np.ndarray, k: int, iters: int = 12) -> np.ndarray:
    """(k', 3) centres of the colours ``x`` (N, 3) (deterministic: seeded at luminance quantiles)."""
    x = np.asarray(x, np.float64)
    if len(x) == 0:
        return np.zeros((0, 3))
    order = np.argsort(x.sum(1), kind="stable")
    centres = x[order[np.linspace(0, len(x) - 1, min(k, len(x))).astype(int)]].copy()
    for _ in range(iters):
        label = ((x[:, None] - centres[None]) ** 2).sum(-1).argmin(1)
        for j in range(len(centres)):
            if (label == j).any():
                centres[j] = x[label == j].mean(0)
    return np.unique(np.round(centres, 3), axis=0)


def _correlate(template: np.ndarray, image: np.ndarray) -> np.ndarray:
    """``out[s] = sum_q template[q] image[q + s]`` for every shift, as a (2H, 2W) array indexed
    modulo its size (shift (dy, dx) at ``out[dy % 2H, dx % 2W]``)."""
    h, w = image.shape
    shape = (2 * h, 2 * w)
    f = np.fft.rfft2(image, shape) * np.conj(np.fft.rfft2(template, shape))
    return np.fft.irfft2(f, shape)


def _shifted(mask: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """``mask`` moved by (dx, dy) pixels, zeros shifted in."""
    h, w = mask.shape
    out = np.zeros_like(mask)
    out[max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = mask[max(-dy, 0) : h - max(dy, 0),
                                                                         max(-dx, 0) : w - max(dx, 0)]  # fmt: skip
    return out


def _residual(template: np.ndarray, found: np.ndarray, free: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """(2,) sub-pixel rest of the shift: the centroid of the target pixels near the template moved by
    the whole-pixel shift (dx, dy), minus the centroid of that moved template's seen pixels."""
    moved = _shifted(template, dx, dy)
    near = moved.copy()
    for _ in range(2):
        near = near | np.roll(near, 1, 0) | np.roll(near, -1, 0) | np.roll(near, 1, 1) | np.roll(near, -1, 1)
    a, b = np.nonzero(found & near), np.nonzero(moved & free)
    if len(a[0]) < 3 or len(b[0]) < 3:
        return np.zeros(2)
    r = np.array([a[1].mean() - b[1].mean(), a[0].mean() - b[0].mean()])
    return np.clip(r, -1.0, 1.0)


def _parabola(left: float, mid: float, right: float) -> float:
    """Offset in [-0.5, 0.5] of the extremum of the parabola through three equally spaced values."""
    den = left - 2 * mid + right
    if not np.isfinite(den) or abs(den) < 1e-12:
        return 0.0
    return float(np.clip(0.5 * (left - right) / den, -0.5, 0.5))


class SuccessDetector:
    """Reads a task's outcome from frames (see the module docstring for the exact definition).

    Args:
        task: a :class:`~dexsim.envs.Task` (built-in scene).
        world: the :class:`~dexsim.world.World` of the task's scene at the frames' size.
        min_visible, min_found: readability thresholds (fractions).
        colour_tolerance: the farthest (RGB, 0-255) a target pixel's colour may be from the target's
            nearest prototype.
        drawer_hypotheses: openings tried for the drawer.
    """

    def __init__(self, task: Any, world: World, min_visible: float = 0.15, min_found: float = 0.4,
                 colour_tolerance: float = 70.0, drawer_hypotheses: int = 9) -> None:  # fmt: skip
        if world.spec is None:
            raise ValueError(f"the success detector needs a built-in scene (a physics spec); {world.name!r} has none")
        for name, v in (("min_visible", min_visible), ("min_found", min_found)):
            if not 0.0 < v <= 1.0:
                raise ValueError(f"`{name}` must be in (0, 1], got {v!r}")
        if drawer_hypotheses < 3:
            raise ValueError(f"`drawer_hypotheses` must be >= 3, got {drawer_hypotheses!r}")
        self.task, self.world, self.spec = task, world, world.spec
        self.min_visible, self.min_found, self.colour_tolerance = min_visible, min_found, colour_tolerance
        if task.target is None:
            if self.spec.drawer is None:
                raise ValueError(f"task {task.name!r} has no target object and scene {self.spec.name!r} no drawer")
            travel = self.spec.drawer.travel
            self.openings = np.linspace(0.0, 1.15 * travel, drawer_hypotheses)
        else:
            self.target_id = self.spec.object_index(task.target)
            self._probe = self._probe_scene()
        self._prototypes: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    # ------------------------------------------------------------------------------ geometry
    def _rest_point(self) -> np.ndarray:
        """(3,) the target's centre (the drawer's handle centre) at the start of an episode."""
        from ..physics.build import drawer_boxes

        if self.task.target is None:
            handle = np.array(drawer_boxes(self.spec)[5][1], np.float64)
            return handle - np.array([0.0, self.spec.drawer.initial_open, 0.0])
        o = self.spec.objects[self.target_id - 1]
        return np.array([o.position[0], o.position[1], self.spec.table_height + o.height / 2])

    def physics_point(self, object_poses: np.ndarray, drawer: np.ndarray, t: int) -> np.ndarray:
        """(3,) where physics put the target's centre (the drawer's handle) at frame ``t`` of an
        episode record (``object_poses`` (T, K, 7), ``drawer`` (T,))."""
        if self.task.target is None:
            return self._rest_point() - np.array([0.0, float(drawer[t]) - self.spec.drawer.initial_open, 0.0])
        return np.asarray(object_poses[t, self.target_id - 1, :3], np.float64)

    def project(self, point: np.ndarray, camera: np.ndarray) -> np.ndarray:
        """(2,) pixel coordinates (x, y) of a world ``point`` (3,) seen from ``camera`` (7,) camera-to-world."""
        from ..geometry.camera import project_points

        vm = self.world.viewmats(np.asarray(camera, np.float64)[None])[0]
        uv, _ = project_points(torch.from_numpy(np.asarray(point, np.float64))[None], vm, self.world.K)
        return uv[0].numpy()

    # ------------------------------------------------------------------------------ rendering
    def _probe_scene(self) -> Any:
        """The splat with the target's Gaussians red, the other objects' green, the rest black."""
        from ..scene.gaussians import GaussianScene, rgb_to_sh0

        s = self.world.scene
        ids = s.object_ids
        cols = torch.zeros(len(s), 3)
        cols[ids == self.target_id, 0] = 1.0
        cols[(ids > 0) & (ids != self.target_id), 1] = 1.0
        return GaussianScene(s.means, s.quats, s.log_scales, s.opacity_logits, rgb_to_sh0(cols)[:, None, :], ids,
                             s.object_names)  # fmt: skip

    def _render_probe(self, camera: np.ndarray) -> np.ndarray:
        """(H, W, 3) float probe colours of the scene at rest from ``camera`` (7,)."""
        from ..scene.render import render

        w = self.world
        vm = w.viewmats(np.asarray(camera, np.float64)[None]).float()
        poses = None if w.rest_motions is None else w.rest_motions[None].float()
        out = render(self._probe, vm, w.K.float(), w.width, w.height, object_poses=poses)
        return out.rgb[0].numpy()

    def _colour_model(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Colour prototypes (n, 3) of the target, of what may hide it (the other objects, the
        hands' skin) and of the background, from the start camera's static render."""
        if self._prototypes is None:
            from ..hands.controllers import initial_state
            from ..physics.oracle import SKIN_RGB
            from ..scene.gaussians import sh0_to_rgb

            w = self.world
            camera = initial_state(w.table, w.start_camera, np.random.default_rng(0)).camera
            static = w.render_static(camera[None])[0].reshape(-1, 3).astype(np.float64)
            probe = self._render_probe(camera).reshape(-1, 3)
            target, other_obj = probe[:, 0] > 0.5, probe[:, 1] > 0.5
            background = (probe[:, 0] < 0.05) & (probe[:, 1] < 0.05)
            if not target.any():
                raise ValueError(f"the target {self.task.target!r} is not in view from the start camera")
            sub = lambda m, n: static[m][:: max(1, int(m.sum()) // n)]  # noqa: E731
            # the Gaussians' own colours hold every face's shade, also those hidden from the start camera
            ids = w.scene.object_ids
            splat = (sh0_to_rgb(w.scene.sh[:, 0]).clamp(0, 1) * 255).numpy().astype(np.float64)
            own = lambda m, n: splat[m][:: max(1, int(m.sum()) // n)]  # noqa: E731
            is_target = (ids == self.target_id).numpy()
            is_other = ((ids > 0) & (ids != self.target_id)).numpy()
            target_protos = np.concatenate((_kmeans(sub(target, 2000), 3), _kmeans(own(is_target, 4000), 4)))
            occluders = np.concatenate((_kmeans(sub(other_obj, 2000), 6), _kmeans(own(is_other, 4000), 6),
                                        np.asarray(SKIN_RGB, np.float64)))  # fmt: skip
            rest = np.concatenate((_kmeans(sub(background, 4000), 10), _kmeans(own((ids == 0).numpy(), 8000), 10)))
            self._prototypes = (target_protos, occluders, rest)
        return self._prototypes

    def classify(self, frame: np.ndarray) -> np.ndarray:
        """(H, W) int8 class of each pixel of an (H, W, 3) uint8 frame by its nearest colour prototype
        (step 2): 1 the target (within ``colour_tolerance``), 2 what may hide it (another object, skin),
        0 the rest."""
        x = np.asarray(frame, np.float64)
        dist = [np.sqrt(((x[..., None, :] - p) ** 2).sum(-1)).min(-1) for p in self._colour_model()]
        target = (dist[0] < np.minimum(dist[1], dist[2])) & (dist[0] < self.colour_tolerance)
        occluder = ~target & (dist[1] < dist[2])
        return np.where(target, 1, np.where(occluder, 2, 0)).astype(np.int8)

    # ------------------------------------------------------------------------------ reading
    def detect(self, frames: np.ndarray, cameras: np.ndarray, hands: np.ndarray, first_frame: int = 0,
               joints: np.ndarray | None = None, visible: np.ndarray | None = None) -> Detection | None:  # fmt: skip
        """Read the last readable frame of ``frames`` (T, H, W, 3) uint8 seen from ``cameras`` (T, 7)
        camera-to-world, with ``hands`` (T, H, W) bool hand pixels (:func:`hand_masks` of the prompt);
        ``first_frame``: the episode index of ``frames[0]``; ``joints`` (T, 2, 21, 3) world and
        ``visible`` (T, 2) the hands the action posed (what the prompt shows), to tell a target
        held up by a hand (skipped). None when no frame is readable."""
        frames, cameras, hands = np.asarray(frames), np.asarray(cameras, np.float64), np.asarray(hands, bool)
        h, w = self.world.height, self.world.width
        if frames.ndim != 4 or frames.shape[1:] != (h, w, 3) or frames.dtype != np.uint8:
            raise ValueError(f"`frames` must be (T, {h}, {w}, 3) uint8, got {frames.shape} {frames.dtype}")
        if cameras.shape != (len(frames), 7) or hands.shape != frames.shape[:3]:
            raise ValueError(f"`cameras` must be ({len(frames)}, 7) and `hands` {frames.shape[:3]}, got "
                             f"{cameras.shape} and {hands.shape}")  # fmt: skip
        if (joints is None) != (visible is None):
            raise ValueError("give both `joints` and `visible`, or neither")
        n = len(frames)
        if joints is not None and (np.shape(joints) != (n, 2, 21, 3) or np.shape(visible) != (n, 2)):
            raise ValueError(f"`joints` must be ({len(frames)}, 2, 21, 3) and `visible` ({len(frames)}, 2), got "
                             f"{np.shape(joints)} and {np.shape(visible)}")  # fmt: skip
        for t in range(len(frames) - 1, -1, -1):
            if self.task.target is None:
                det = self._read_drawer(frames[t], cameras[t], ~hands[t])
            else:
                grips = None if joints is None else self._grips(np.asarray(joints[t]), np.asarray(visible[t], bool))
                det = self._read_object(frames[t], cameras[t], ~hands[t], grips)
            if det is not None:
                det.frame = first_frame + t
                return det
        return None

    def _grips(self, joints: np.ndarray, visible: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """(thumb tip, opposing finger tip) of each visible hand that pinches something as wide as
        the target (tips at most its narrowest width + 2.7 cm apart) at least 2 cm above the
        target's resting centre: the hands that may hold it off the table."""
        from ..physics.build import FINGER_RADIUS

        o = self.spec.objects[self.target_id - 1]
        width = min(o.size[0], o.size[1]) if o.shape in ("box", "mesh") else 2 * o.size[0]
        out = []
        for h in np.nonzero(visible)[0]:
            thumb = joints[h, 16]
            other = min((joints[h, 17], joints[h, 18]), key=lambda j: float(np.linalg.norm(j - thumb)))
            close = np.linalg.norm(other - thumb) <= width + 2 * FINGER_RADIUS + 0.01
            if close and (thumb[2] + other[2]) / 2 >= self._rest_point()[2] + 0.02:
                out.append((thumb, other))
        return out

    def _held(self, grips: list[tuple[np.ndarray, np.ndarray]], at: np.ndarray, radius: float,
              camera: np.ndarray) -> bool:  # fmt: skip
        """Whether the target seen at pixel ``at`` lies between the tips of a pinching hand in the image."""
        for thumb, other in grips:
            a, b = self.project(thumb, camera), self.project(other, camera)
            ab = b - a
            t = float(np.dot(at - a, ab) / max(float(np.dot(ab, ab)), 1e-9))
            off = float(np.linalg.norm(a + t * ab - at))
            if 0.15 <= t <= 0.85 and off <= radius:
                return True
        return False

    def _read_object(self, frame: np.ndarray, camera: np.ndarray, free: np.ndarray,
                     grips: list[tuple[np.ndarray, np.ndarray]] | None) -> Detection | None:  # fmt: skip
        template = self._render_probe(camera)[..., 0] > 0.5
        n = int(template.sum())
        if n == 0:  # the target's rest place is out of view (or hidden behind something)
            return None
        labels = self.classify(frame)
        free = free & (labels != 2)  # hands, and other objects that may stand in front of the target
        found = (labels == 1) & free
        h, w = template.shape
        hits = _correlate(template.astype(np.float64), found.astype(np.float64))
        seen = _correlate(template.astype(np.float64), free.astype(np.float64))
        score = 2 * hits - seen
        # only shifts up to half the image each way
        dy = np.fft.fftfreq(2 * h, 1 / (2 * h)).round().astype(int)
        dx = np.fft.fftfreq(2 * w, 1 / (2 * w)).round().astype(int)
        allowed = (np.abs(dy)[:, None] <= h // 2) & (np.abs(dx)[None] <= w // 2)
        score = np.where(allowed, score, -np.inf)
        iy, ix = np.unravel_index(int(np.argmax(score)), score.shape)
        visible = float(seen[iy, ix]) / n
        hit = float(hits[iy, ix]) / max(float(seen[iy, ix]), 1e-9)
        if hit >= self.min_found and visible >= self.min_visible:  # found, and not hidden by a hand
            ys, xs = np.nonzero(template)
            centre = np.array([xs.mean() + 0.5, ys.mean() + 0.5])
            sx, sy = np.array([dx[ix], dy[iy]], np.float64) + _residual(template, found, free, dx[ix], dy[iy])
            radius = max(2.0, 0.5 * float(xs.max() - xs.min() + 1))
            if grips and self._held(grips, centre + np.array([sx, sy]), radius, camera):
                return None  # held up by a hand: where it stands on the table cannot be read
            move = self._displacement(self._rest_point()[None], camera, np.array([sx, sy]))
            measure = float(np.linalg.norm(move[:2]))
            point = self._rest_point() + move
            return Detection(measure, measure >= self.task.min_move, 0, self.project(point, camera), visible)
        return None  # hidden (by a hand, another object, the image's border), or found nowhere

    def _displacement(self, points: np.ndarray, camera: np.ndarray, shift: np.ndarray) -> np.ndarray:
        """(3,) the horizontal translation (dx, dy, 0) that moves the mean image position of
        ``points`` (N, 3) by ``shift`` (2,) pixels (Gauss-Newton, numerical Jacobian)."""
        from ..geometry.camera import project_points

        vm = self.world.viewmats(np.asarray(camera, np.float64)[None])[0]
        pts = torch.from_numpy(np.asarray(points, np.float64))

        def mean_px(d: np.ndarray) -> np.ndarray:
            uv, _ = project_points(pts + torch.tensor([d[0], d[1], 0.0], dtype=torch.float64), vm, self.world.K)
            return uv.mean(0).numpy()

        base, d, eps = mean_px(np.zeros(2)), np.zeros(2), 1e-3
        for _ in range(4):
            now = mean_px(d)
            J = np.stack([(mean_px(d + eps * np.eye(2)[k]) - now) / eps for k in range(2)], 1)
            d = d + np.linalg.lstsq(J, base + shift - now, rcond=None)[0]
        return np.array([d[0], d[1], 0.0])

    def _read_drawer(self, frame: np.ndarray, camera: np.ndarray, free: np.ndarray) -> Detection | None:
        w = self.world
        n = len(self.openings)
        motions = torch.eye(4, dtype=torch.float32).repeat(n, w.num_movable, 1, 1)
        if w.rest_motions is not None:
            motions[:] = w.rest_motions.float()
        motions[:, -1, 1, 3] = -torch.from_numpy(self.openings).float()
        renders = w.render_scene(np.repeat(np.asarray(camera, np.float64)[None], n, 0), motions).rgb.numpy()
        region = (renders.max(0) - renders.min(0)).max(-1) > 0.08
        size = int(region.sum())
        use = region & free
        if size == 0 or use.sum() < self.min_visible * size:
            return None
        x = np.asarray(frame, np.float32)[use] / 255.0
        err = np.array([np.abs(x - r[use]).sum(-1).mean() for r in renders])
        k = int(np.argmin(err))
        step = float(self.openings[1] - self.openings[0])
        offset = _parabola(err[k - 1], err[k], err[k + 1]) if 0 < k < n - 1 else 0.0
        opening = float(self.openings[k] + offset * step)
        measure = opening - float(self.spec.drawer.initial_open)
        point = self._rest_point() - np.array([0.0, measure, 0.0])
        seen = float(use.sum()) / size
        return Detection(measure, measure >= self.task.min_move, 0, self.project(point, camera), seen)
