"""``dexsim eval``: how good is a world model, against honest baselines, on held-out clips."""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from ..data.dataset import clip_ids, is_complete, read_clip
from ..metrics import changed_mask, masked_mse, psnr_from_mse, ssim
from .data import _resize

__all__ = ["METHODS", "evaluate", "format_table", "hand_composite"]

METHODS = ("identity", "hand_composite", "model", "oracle")


def hand_composite(static: np.ndarray, prompt: np.ndarray, threshold: int = 24) -> np.ndarray:
    """The static video with the hand prompt pasted over it (prompt pixels brighter than black)."""
    hand = prompt.max(-1) > threshold
    out = static.copy()
    out[hand] = prompt[hand]
    return out


def _oracle_video(clip: Any, width: int, height: int) -> np.ndarray | None:
    """Re-simulate a dexsim-generated clip with the physics oracle (None for other data)."""
    m = clip.meta or {}
    if clip.trajectory is None or "scene_seed" not in m or "scene" not in m:
        return None
    from ..physics.oracle import Oracle
    from ..physics.spec import randomized_scene

    base, _, suffix = str(m["scene"]).rpartition("-")
    spec = randomized_scene(base if suffix.isdigit() else m["scene"], int(m["scene_seed"]))
    size = (int(m.get("width", width)), int(m.get("height", height)))
    oracle = Oracle(spec, *size, fov_y=float(m.get("fov_y", 60.0)), fps=float(m.get("fps", 8.0)),
                    density_scale=float(m.get("density_scale", 0.35)), seed=int(m["scene_seed"]))  # fmt: skip
    return _resize(oracle.run(clip.trajectory, masks=False).interaction, width, height)


def evaluate(data: str | os.PathLike[str], model: Any, clips: int | None = None, frames: int | None = None,
             seed: int = 0, with_oracle: bool = True, progress: bool = True,
             sheet: str | os.PathLike[str] | None = None) -> dict[str, Any]:  # fmt: skip
    """Score ``model`` (a :class:`~dexsim.worldmodel.WorldModel`) and the baselines on a dataset folder.

    Videos at another size are resized to the model's (``eval_width`` x ``eval_height``), clips are cut
    to ``frames`` when given and generated window by window (:func:`~dexsim.worldmodel.rollout`).
    ``sheet``: write a PNG contact sheet of the first clip of each action kind (static | prompt |
    generated | ground truth).
    """
    from ..worldmodel.rollout import rollout

    root = Path(data)
    ids = [i for i in clip_ids(root) if is_complete(root, i) or not (root / "meta").is_dir()]
    if not ids:
        raise FileNotFoundError(f"no clips in {root}")
    ids = ids[:clips] if clips else ids
    w, h = model.width, model.height
    per: dict[str, list[tuple[float, float, float]]] = {m: [] for m in METHODS}
    kinds: dict[str, list[str]] = {m: [] for m in METHODS}  # the action kind of each entry of ``per``
    timing: list[float] = []
    n_changed = 0
    eval_frames = 0
    examples: dict[str, list[tuple[str, np.ndarray]]] = {}
    for cid in tqdm(ids, disable=not progress, desc="eval", unit="clip"):
        c = read_clip(root, cid)
        n = min(len(c.interaction), frames or len(c.interaction))
        static, prompt, gt = (_resize(v[:n], w, h) for v in (c.static, c.prompt, c.interaction))
        eval_frames = max(eval_frames, n)
        hands = None
        if c.masks is not None:
            hm = (c.masks[:n] <= -2)[..., None].repeat(3, -1).astype(np.uint8) * 255
            hands = _resize(hm, w, h)[..., 0] > 127
        changed = changed_mask(gt, static, 10, exclude=hands)
        has_changed = bool(changed.any())
        n_changed += has_changed
        t0 = time.perf_counter()
        pred = rollout(model, static[None], prompt[None], text=c.text, generator=torch.Generator().manual_seed(seed),
                       hands=[c.trajectory.slice(0, n)] if c.trajectory is not None else None)[0]  # fmt: skip
        timing.append((time.perf_counter() - t0) / max(1, n))
        preds = {"identity": static, "hand_composite": hand_composite(static, prompt), "model": pred}
        if with_oracle:
            o = _oracle_video(c, w, h)
            if o is not None:
                preds["oracle"] = o[:n]
        for name, p in preds.items():
            pc = psnr_from_mse(masked_mse(p, gt, changed)) if has_changed else float("nan")
            per[name].append((psnr_from_mse(masked_mse(p, gt)), ssim(p, gt), pc))
            kinds[name].append(str((c.meta or {}).get("action", "unknown")))
        kind = kinds["identity"][-1]
        if sheet is not None and kind not in examples:
            examples[kind] = [(f"{kind} ({cid}): static", static), ("prompt", prompt), ("generated", pred),
                              ("ground truth", gt)]  # fmt: skip
    if sheet is not None:
        from ..video import contact_sheet, write_png

        write_png(Path(sheet), contact_sheet([r for k in sorted(examples) for r in examples[k]], max_frames=8))
    rows = {name: _row(vals) for name, vals in per.items() if vals}
    per_kind = {
        kind: {name: _row([v for v, k in zip(vals, kinds[name], strict=True) if k == kind])
               for name, vals in per.items() if kind in kinds[name]}
        for kind in sorted(set(kinds["identity"]))
    }  # fmt: skip
    return {"data": str(root), "model": getattr(model, "name", type(model).__name__), "n_clips": len(ids),
            "n_clips_changed": n_changed, "eval_width": w, "eval_height": h, "eval_frames": eval_frames,
            "resize_rule": "area-resize each frame to eval_width x eval_height (aspect not kept); first eval_frames "
                           "frames; windows of "
                           f"{model.window} frames with {model.context_frames} context frame(s)",
            "changed_rule": "pixels where |gt - static| > 10/255 in some channel, minus hand pixels where masks exist",
            "model_seconds_per_frame": float(np.median(timing)), "rows": rows, "per_kind": per_kind}  # fmt: skip


def _row(vals: list[tuple[float, float, float]]) -> dict[str, Any]:
    """(PSNR, SSIM, PSNR changed) per clip -> their means (changed: over clips that have changed pixels)."""
    a = np.array(vals)
    pc = a[:, 2][~np.isnan(a[:, 2])]
    return {"psnr": float(np.mean(a[:, 0])), "ssim": float(np.mean(a[:, 1])), "n_clips": len(vals),
            "psnr_changed": float(np.mean(pc)) if len(pc) else float("nan")}  # fmt: skip


def format_table(result: dict[str, Any]) -> str:
    lines = [f"{'method':<16}{'PSNR':>8}{'SSIM':>8}{'PSNR changed':>14}",
             "-" * 46]  # fmt: skip
    for name, r in result["rows"].items():
        pc = "n/a" if math.isnan(r["psnr_changed"]) else f"{r['psnr_changed']:.2f}"
        lines.append(f"{name:<16}{r['psnr']:>8.2f}{r['ssim']:>8.3f}{pc:>14}")
    for kind, rows in result.get("per_kind", {}).items():
        cells = "  ".join(f"{name} {r['psnr_changed']:.2f}" for name, r in rows.items())
        lines.append(f"  {kind:<14}({rows['identity']['n_clips']:>3} clips) PSNR changed: {cells}")
    lines.append(f"{result['n_clips']} clips ({result['n_clips_changed']} with changed pixels) at "
                 f"{result['eval_width']}x{result['eval_height']}, {result['eval_frames']} frames")  # fmt: skip
    return "\n".join(lines)
