"""Soak: a long rollout in the env with memory sampled every chunk (does anything grow?)."""

from __future__ import annotations

import resource
import time
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

__all__ = ["bench_soak", "rss_mb"]


def rss_mb() -> float:
    """Resident memory of this process now, in MiB (``/proc/self/statm``; peak RSS where it is missing)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * resource.getpagesize() / 2**20
    except (OSError, ValueError, IndexError):  # pragma: no cover - not Linux
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench_soak(world_model: str = "default", chunks: int = 100, seed: int = 0, task: str | None = "push-red-box",
               progress: bool = True) -> dict[str, Any]:  # fmt: skip
    """Step one ``DexWorldEnv`` ``chunks`` times (one episode, no time limit, random ``delta`` actions from
    ``seed``) and sample the resident memory after every chunk. ``flat``: the mean of the last 10
    samples is within 5% of the mean of chunks 10-20 (the first 10 are warm-up: caches, allocator)."""
    import gymnasium as gym

    if chunks < 30:
        raise ValueError(f"`chunks` must be >= 30 (warm-up 10, reference 10-20, last 10), got {chunks}")
    from ..worldmodel.models import frame_size

    width, height = (128, 128) if world_model == "oracle" else frame_size(world_model)
    env = gym.make("DexWorld-v0", task=task, world_model=world_model, width=width, height=height,
                   disable_env_checker=True).unwrapped  # one episode of `chunks` steps: no time limit  # fmt: skip
    env.reset(seed=seed)
    env.action_space.seed(seed)
    rss, step_s = [], []
    for _ in tqdm(range(chunks), disable=not progress, desc="soak", unit="chunk"):
        t0 = time.perf_counter()
        env.step(env.action_space.sample())
        step_s.append(time.perf_counter() - t0)
        rss.append(rss_mb())
    reference = float(np.mean(rss[10:20]))
    last = float(np.mean(rss[-10:]))
    growth = (last - reference) / reference
    return {"world_model": world_model, "task": task, "chunks": chunks, "chunk_frames": env.chunk,
            "width": width, "height": height, "rss_mb": rss, "rss_reference_mb": reference, "rss_last10_mb": last,
            "growth": growth, "flat": bool(abs(growth) <= 0.05), "step_s_median": float(np.median(step_s)),
            "rule": "flat: mean RSS of the last 10 chunks within 5% of the mean of chunks 10-20"}  # fmt: skip
