"""The main job as far as dexsim goes today.

What runs: the built-in tabletop (one scene spec built both as a Gaussian splat and as a MuJoCo
model), scripted hand actions with text and an egocentric camera, the visual action prompt
(DWM mesh convention, occluded by the static scene), and the physics oracle's ground-truth
interaction video (objects moved by MuJoCo contacts, skin-toned hands). What does not exist yet
(and is not faked): the learned world model that would predict the interaction video from the
static video and the prompt, and the Gymnasium env around it.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from .physics.actions import make_action
from .physics.oracle import Oracle
from .physics.spec import builtin_scene
from .video import contact_sheet, write_mp4, write_png

__all__ = ["run_demo"]

#: (action, seed, target) of the demo clips
DEMO_CLIPS = (("push", 1, "red_box"), ("push", 0, "red_box"))


def run_demo(out_dir: str | os.PathLike[str], num_frames: int = 16, size: int = 256) -> dict[str, Any]:
    """Write ``clipN_{static,prompt,interaction}.mp4`` and ``sheet.png``; return a summary with a report."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    spec = builtin_scene("tabletop")
    oracle = Oracle(spec, size, size, fov_y=55.0)
    t_build = time.perf_counter() - t0
    rows, report, clips = [], [], []
    t1 = time.perf_counter()
    for i, (kind, seed, target) in enumerate(DEMO_CLIPS):
        action = make_action(spec, kind, np.random.default_rng(seed), num_frames, target=target, camera="static")
        clip = oracle.run(action.trajectory)
        for name in ("static", "prompt", "interaction"):
            write_mp4(out / f"clip{i}_{name}.mp4", getattr(clip, name))
        moved = np.linalg.norm(clip.sim.object_poses[-1, :, :3] - clip.sim.object_poses[0, :, :3], axis=-1)
        k = spec.object_names.index(target)
        clips.append({"text": action.text, "target_moved_m": float(moved[k]),
                      "max_penetration_m": float(clip.sim.max_penetration.max())})  # fmt: skip
        report.append(f"clip {i}: '{action.text}': the {target.replace('_', ' ')} moved {100 * moved[k]:.1f} cm "
                      f"in the physics simulation")  # fmt: skip
        rows += [(f"static scene (clip {i})", clip.static), (f"hand prompt: {action.text}", clip.prompt),
                 ("ground truth from the physics oracle (not a model prediction)", clip.interaction)]  # fmt: skip
    t_clips = time.perf_counter() - t1
    write_png(out / "sheet.png", contact_sheet(rows, max_frames=8))
    head = [
        f"dexsim demo: built the tabletop splat ({oracle.scene.num_gaussians} Gaussians, {len(spec.objects)} objects) "
        f"and its MuJoCo model in {t_build:.1f} s",
        f"simulated and rendered {len(DEMO_CLIPS)} clips of {num_frames} frames at {size}x{size} in {t_clips:.1f} s "
        "(static video, mesh prompt, ground truth)",
    ]
    tail = [
        f"wrote {out}/clip*_static.mp4, clip*_prompt.mp4, clip*_interaction.mp4 and {out / 'sheet.png'}",
        "not yet in dexsim: the learned world model (the interaction videos above come from the physics oracle) "
        "and the Gymnasium env",
    ]
    return {"num_gaussians": oracle.scene.num_gaussians, "frames": num_frames, "size": size, "clips": clips,
            "build_s": t_build, "clips_s": t_clips, "report": head + report + tail}  # fmt: skip
