"""Episodes as Rerun recordings (``.rrd``): the scene's points, the head camera over time, both hands'
skeletons per frame, the static / prompt / generated / physics videos and the rewards (the way LeRobot
looks at episodes). Open one with ``rerun FILE.rrd``.

Entity layout: ``world/scene`` (points, static), ``world/camera`` (pose per frame, pinhole, its images),
``world/hands/{left,right}`` (bones per frame), ``video/{static,prompt,generated,physics}``, ``reward``
and ``success`` (scalars per step). The timeline is ``frame`` (8 fps).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from .._deps import require

__all__ = ["RerunLog", "log_evaluation", "log_plan", "splat_points"]

_FPS = 8.0


def splat_points(scene: Any, max_points: int = 60_000, near: tuple[Any, float] | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """A splat's centres and base colours (float32 (N, 3), uint8 (N, 3)): its ``max_points`` most opaque,
    those within ``near`` = (centre (3,), radius m) first."""
    means = scene.means.detach().cpu().numpy().astype(np.float32)
    rgb = (0.5 + 0.28209479177387814 * scene.sh[:, 0]).clamp(0, 1).detach().cpu().numpy()
    rank = scene.opacities.detach().cpu().numpy().astype(np.float64)
    if near is not None:
        rank = rank + 2.0 * (np.linalg.norm(means - np.asarray(near[0], np.float32), axis=1) < near[1])
    keep = np.argsort(-rank, kind="stable")[:max_points]
    return means[keep], (rgb[keep] * 255).round().astype(np.uint8)


class RerunLog:
    """Writes one recording to ``path`` (the folder is made; the file is complete after :meth:`close`)."""

    def __init__(self, path: str | os.PathLike[str], name: str = "dexsim") -> None:
        rr = require("rerun", "Rerun recordings")
        self.rr = rr
        self.path = Path(path)
        if self.path.suffix != ".rrd":
            raise ValueError(f"a Rerun recording is a .rrd file, got {str(path)!r}")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = self.path.with_name(self.path.name + ".part")
        self.rec = rr.RecordingStream(name)
        self.rec.save(str(self.tmp))
        self.rec.log("world", rr.ViewCoordinates.RIGHT_HAND_Z_UP, static=True)

    def _at(self, frame: int) -> None:
        self.rec.set_time("frame", sequence=int(frame))
        self.rec.set_time("time", duration=frame / _FPS)

    def scene(self, points: np.ndarray, colors: np.ndarray | None = None) -> None:
        """The static scene: ``points`` (N, 3) world metres, ``colors`` (N, 3) uint8."""
        self.rec.log("world/scene", self.rr.Points3D(np.asarray(points, np.float32), colors=colors, radii=0.002),
                     static=True)  # fmt: skip

    def frames(self, start: int, cameras: np.ndarray, K: np.ndarray, joints: np.ndarray | None = None,
               visible: np.ndarray | None = None, **videos: np.ndarray | None) -> None:  # fmt: skip
        """Frames ``start..start+T-1``: ``cameras`` (T, 7) camera-to-world ``[t, q]`` (q w-first), ``K``
        (3, 3), ``joints`` (T, 2, 21, 3) world with ``visible`` (T, 2), and named videos (T, H, W, 3) uint8
        (``static``, ``prompt``, ``generated``, ``physics``; None ones are skipped)."""
        from ..hands.skeleton import BONES

        rr = self.rr
        cameras = np.asarray(cameras, np.float64)
        shown = {k: v for k, v in videos.items() if v is not None}
        h, w = next(iter(shown.values())).shape[1:3] if shown else (int(2 * K[1, 2]), int(2 * K[0, 2]))
        for t in range(len(cameras)):
            self._at(start + t)
            q = cameras[t, 3:]
            self.rec.log(
                "world/camera",
                rr.Transform3D(translation=cameras[t, :3], quaternion=rr.Quaternion(xyzw=[q[1], q[2], q[3], q[0]])),
            )
            self.rec.log("world/camera", rr.Pinhole(image_from_camera=np.asarray(K, np.float32), width=w, height=h))
            if "generated" in shown:
                self.rec.log("world/camera/image", rr.Image(shown["generated"][t]))
            for name, video in shown.items():
                self.rec.log(f"video/{name}", rr.Image(video[t]))
            if joints is None:
                continue
            for hand, side in enumerate(("left", "right")):
                if visible is not None and not visible[t, hand]:
                    self.rec.log(f"world/hands/{side}", rr.Clear(recursive=False))
                    continue
                j = np.asarray(joints[t, hand], np.float32)
                self.rec.log(f"world/hands/{side}", rr.LineStrips3D([[j[a], j[b]] for a, b in BONES],
                                                                    radii=0.003))  # fmt: skip

    def video(self, name: str, start: int, frames: np.ndarray) -> None:
        """Frames ``start..`` of one video (``video/NAME``), e.g. physics that came after the step was logged."""
        for t, frame in enumerate(frames):
            self._at(start + t)
            self.rec.log(f"video/{name}", self.rr.Image(frame))

    def scalar(self, name: str, frame: int, value: float) -> None:
        """A scalar (``reward``, ``success``) at ``frame``."""
        self._at(frame)
        self.rec.log(name, self.rr.Scalars(float(value)))

    def text(self, name: str, text: str) -> None:
        self.rec.log(name, self.rr.TextDocument(text), static=True)

    def close(self) -> Path:
        """Finish the file (flush, then move it into place) and return its path."""
        self.rec.flush()
        self.rec.disconnect()
        os.replace(self.tmp, self.path)
        return self.path


def log_evaluation(path: str | os.PathLike[str], evaluation: Any) -> Path:
    """A ``dexsim evaluate`` run's kept episodes (:attr:`Evaluation.media`), one after another on the
    timeline, with the scene, each episode's success (world model, then physics) as scalars."""
    log = RerunLog(path, "dexsim-evaluate")
    if evaluation.world is not None:
        log.scene(*splat_points(evaluation.world.scene))
    K = None if evaluation.world is None else evaluation.world.K.numpy()
    start = 0
    for m in evaluation.media:
        hands = m["hands"]
        n = len(m["generated"])
        log.frames(start, hands.camera[:n], K if K is not None else hands.K, hands.joints[:n], hands.visible[:n],
                   prompt=m["prompt"], generated=m["generated"], physics=m["physics"])  # fmt: skip
        log.scalar("success", start + n - 1, float(m["success"]))
        log.scalar("episode", start, float(m["episode"]))
        start += n
    return log.close()


def log_plan(path: str | os.PathLike[str], result: dict[str, Any]) -> Path:
    """A ``dexsim plan`` instance: the scene, the chosen candidate as the episode (camera, hands, static,
    prompt, generated, physics), every candidate's generated and physics videos under ``candidates/rankN``
    with its score, and the goal image."""
    log = RerunLog(path, "dexsim-plan")
    if result.get("world") is not None:
        log.scene(*splat_points(result["world"].scene))
    rollout, chosen = result["rollout"], int(result["chosen"])
    hands = rollout.hands[chosen]
    physics = result.get("physics")
    log.frames(0, hands.camera, result["K"], hands.joints, hands.visible, static=rollout.static,
               prompt=rollout.prompts[chosen], generated=result["videos"][chosen],
               physics=None if physics is None else physics[chosen])  # fmt: skip
    order = np.argsort(-np.asarray(result["model_scores"]))
    for rank, i in enumerate(order):
        entity = f"candidates/rank{rank + 1}"
        log.text(f"{entity}/text", f"{result['candidate_texts'][i]}: score {result['model_scores'][i]:.3f}, "
                 f"physics {100 * result['oracle_distance_m'][i]:.1f} cm from the goal")  # fmt: skip
        for t in range(len(result["videos"][i])):
            log._at(t)
            log.rec.log(f"{entity}/generated", log.rr.Image(result["videos"][i][t]))
            if physics is not None:
                log.rec.log(f"{entity}/physics", log.rr.Image(physics[i][t]))
    log.rec.log("goal", log.rr.Image(result["goal"].image), static=True)
    log.scalar("success", len(hands.camera) - 1, float(result["success"]))
    return log.close()
