"""``dexsim bench evaluate``: how far a world model's policy verdicts agree with physics.

Every built-in task x every ladder policy (:data:`dexsim.envs.policies.LADDER`) x N episodes runs
through :func:`dexsim.envs.evaluate.evaluate` with the world model and is replayed in the physics
oracle. Reported per task and pooled over tasks:

- each policy's success rate in the world model and in physics (``policies``);
- Pearson's r and Spearman's rho of the rates over the policies, and MMRV (mean maximum rank
  violation, as SIMPLER defines it: world-model rates as ``sim``, physics as ``real``);
- the paired per-episode agreement of the two verdicts and Cohen's kappa;
- the success detector's agreement with physics on the oracle's own frames
  (``detector_agreement_on_oracle``: the lowest over tasks) and its end-position error;
- the median end-position error (px at 128 x 128) of the target as the world model shows it
  against where physics put it (``_moved``: over the episodes where physics moved it enough to
  succeed), and the median seconds per episode;
- the episodes where the detector disagrees with physics on the oracle's frames.

A scatter plot (world-model rate against physics rate per policy, one colour per task) is drawn
as PNG with Pillow.
"""

from __future__ import annotations

import os
import statistics
from typing import Any

import numpy as np

__all__ = ["TASK_COLOURS", "agreement_figures", "bench_evaluate", "scatter_plot"]

#: scatter plot colours, one per task (cycled)
TASK_COLOURS = ((214, 39, 40), (230, 171, 2), (44, 160, 44), (31, 119, 180), (148, 103, 189), (140, 86, 75))


def agreement_figures(rows: list[dict[str, Any]], reports: list[dict[str, Any]]) -> dict[str, Any]:
    """The agreement figures of ``rows`` ({world_model_rate, oracle_rate} per policy) and of the
    episodes of ``reports`` (the evaluations behind them)."""
    from ..envs.evaluate import cohen_kappa, mmrv, pearson, spearman

    wm = [r["world_model_rate"] for r in rows]
    truth = [r["oracle_rate"] for r in rows]
    eps = [e for rep in reports for e in rep["episodes"]]
    verdicts = [bool(e["success"]) for e in eps]
    physics = [bool(e["oracle_success"]) for e in eps]
    detector = [bool(e["detector_on_oracle_success"]) for e in eps]

    def median(key: str, moved: bool = False) -> float | None:
        v = [e[key] for e in eps if e[key] is not None and (e["oracle_success"] or not moved)]
        return float(statistics.median(v)) if v else None

    return {
        "pearson": pearson(wm, truth), "spearman": spearman(wm, truth), "mmrv": mmrv(wm, truth),
        "paired_agreement": float(np.mean(np.equal(verdicts, physics))), "kappa": cohen_kappa(verdicts, physics),
        "detector_agreement_on_oracle": float(np.mean(np.equal(detector, physics))),
        "end_position_error_px": median("end_position_error_px"),
        "detector_end_position_error_px": median("detector_end_position_error_px"),
        "end_position_error_px_moved": median("end_position_error_px", moved=True),
        "detector_end_position_error_px_moved": median("detector_end_position_error_px", moved=True),
        "seconds_per_episode": median("seconds"), "episodes": len(eps),
    }  # fmt: skip


def bench_evaluate(tasks: list[str] | None = None, episodes: int = 10, seed: int = 0, world_model: Any = "default",
                   policies: list[str] | None = None, batch_size: int = 8, size: int | None = None,
                   progress: bool = True) -> dict[str, Any]:  # fmt: skip
    """The agreement benchmark (see the module docstring): ``tasks`` (default all built-in tasks) x
    ``policies`` (default the ladder) x ``episodes`` episodes per policy and task."""
    from tqdm.auto import tqdm

    from ..envs.evaluate import evaluate
    from ..envs.policies import LADDER
    from ..envs.tasks import TASKS
    from ..worldmodel import load

    tasks = list(TASKS) if tasks is None else list(tasks)
    policies = list(LADDER) if policies is None else list(policies)
    bad = [t for t in tasks if t not in TASKS]
    if bad or not tasks:
        raise ValueError(f"unknown task(s) {bad or tasks}; choose among {sorted(TASKS)}")
    bad = [p for p in policies if p not in LADDER]
    if bad or not policies:
        raise ValueError(f"unknown ladder policy(ies) {bad or policies}; choose among {list(LADDER)}")
    if not isinstance(episodes, int) or isinstance(episodes, bool) or episodes < 1:
        raise ValueError(f"`episodes` must be a positive int, got {episodes!r}")
    name = str(world_model) if isinstance(world_model, (str, os.PathLike)) else getattr(world_model, "name", "model")
    if isinstance(world_model, (str, os.PathLike)) and str(world_model) != "oracle":
        world_model = load(world_model)  # once for every evaluation
        world_model.name = name
    rows, reports, per_task = [], [], {}
    bar = tqdm(total=len(tasks) * len(policies), desc="bench evaluate", unit="policy", disable=not progress)
    for task in tasks:
        task_rows, task_reports = [], []
        for policy in policies:
            bar.set_postfix_str(f"{task} {policy}")
            rep = evaluate(task, policy, episodes, seed, world_model, oracle=True, batch_size=batch_size, size=size,
                           shard=(0, 1), videos=0, progress=False).report  # fmt: skip
            task_rows.append({"task": task, "policy": policy, "world_model_rate": rep["success_rate"],
                              "oracle_rate": rep["oracle_success_rate"],
                              "world_model_ci95": rep["ci95"], "oracle_ci95": rep["oracle_ci95"],
                              "detector_agreement_on_oracle": rep["detector_agreement_on_oracle"]})  # fmt: skip
            task_reports.append(rep)
            bar.update(1)
        per_task[task] = agreement_figures(task_rows, task_reports)
        rows += task_rows
        reports += task_reports
    bar.close()
    pooled = agreement_figures(rows, reports)
    pooled["detector_agreement_on_oracle_pooled"] = pooled["detector_agreement_on_oracle"]
    pooled["detector_agreement_on_oracle"] = min(f["detector_agreement_on_oracle"] for f in per_task.values())
    first = reports[0]
    pooled["detector_disagreements"] = [
        {"task": rep["task"], "policy": rep["policy"], "episode": e["episode"], "oracle_measure": e["oracle_measure"],
         "detector_on_oracle_measure": e["detector_on_oracle_measure"]}
        for rep in reports for e in rep["episodes"] if e["detector_on_oracle_success"] != e["oracle_success"]
    ]  # fmt: skip
    return {"world_model": name, "tasks": tasks, "ladder": policies, "episodes_per_policy": episodes, "seed": seed,
            "width": first["width"], "height": first["height"], "chunk": first["chunk"], **pooled,
            "policies": rows, "per_task": per_task}  # fmt: skip


def scatter_plot(rows: list[dict[str, Any]], size: int = 480, title: str = "") -> np.ndarray:
    """An (size, size, 3) uint8 scatter plot: world-model rate (y) against physics rate (x) per
    policy, one colour per task, the diagonal of perfect agreement, a legend."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (size, size), (255, 255, 255))
    d = ImageDraw.Draw(img)
    lo, hi = 40, size - 30  # the plot area's corners (pixels)
    to_px = lambda x, y: (lo + x * (hi - lo), hi - y * (hi - lo))  # noqa: E731
    for v in np.linspace(0, 1, 6):
        d.line([to_px(v, 0), to_px(v, 1)], fill=(232, 232, 232))
        d.line([to_px(0, v), to_px(1, v)], fill=(232, 232, 232))
        d.text((to_px(v, 0)[0] - 8, hi + 4), f"{v:.1f}", fill=(0, 0, 0))
        d.text((lo - 28, to_px(0, v)[1] - 6), f"{v:.1f}", fill=(0, 0, 0))
    d.line([to_px(0, 0), to_px(1, 1)], fill=(150, 150, 150))
    d.rectangle([to_px(0, 1), to_px(1, 0)], outline=(0, 0, 0))
    d.text((lo + (hi - lo) // 2 - 40, size - 14), "physics success rate", fill=(0, 0, 0))
    d.text((4, 4), title or "world-model rate (y) vs physics rate (x)", fill=(0, 0, 0))
    tasks = list(dict.fromkeys(r["task"] for r in rows))
    for k, task in enumerate(tasks):
        col = TASK_COLOURS[k % len(TASK_COLOURS)]
        nudge = 4 * (k - (len(tasks) - 1) / 2)  # tasks side by side, so that equal rates stay visible
        for r in rows:
            if r["task"] == task and r["world_model_rate"] is not None and r["oracle_rate"] is not None:
                x, y = to_px(r["oracle_rate"], r["world_model_rate"])
                d.ellipse([x + nudge - 5, y - 5, x + nudge + 5, y + 5], fill=col, outline=(0, 0, 0))
        d.rectangle([lo + 8, lo + 8 + 14 * k, lo + 16, lo + 16 + 14 * k], fill=col)
        d.text((lo + 20, lo + 6 + 14 * k), task, fill=(0, 0, 0))
    return np.asarray(img)
