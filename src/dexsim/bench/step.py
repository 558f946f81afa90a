"""``dexsim bench step``: env.step latency and vector-env throughput."""

from __future__ import annotations

import statistics
import time
from typing import Any

__all__ = ["BREAKDOWN", "bench_step"]

#: the stages of one ``env.step`` that ``breakdown_s`` reports (median seconds per step)
BREAKDOWN = ("controller", "static", "prompt", "world_model", "scorer")


def bench_step(world_model: str = "default", steps: int = 5, sizes: list[int] | None = None,
               seed: int = 0) -> dict[str, Any]:  # fmt: skip
    """Median ``env.step`` latency (default configuration); for each N in ``sizes``, frames per second of
    ``DexWorldVectorEnv`` with N envs against N sequential single envs taking the same actions."""
    import gymnasium as gym

    from ..worldmodel import load

    wm = load(world_model)
    env = gym.make("DexWorld-v0", world_model=wm, width=wm.width, height=wm.height).unwrapped
    env.reset(seed=seed)
    env.action_space.seed(seed)
    env.step(env.action_space.sample())  # warm-up
    lat, stages = [], []
    for _ in range(steps):
        a = env.action_space.sample()
        t0 = time.perf_counter()
        env.step(a)
        lat.append(time.perf_counter() - t0)
        stages.append(env.last_timings)
    chunk = env.chunk
    vector = {}
    for n in sizes or [1, 4, 8]:
        venv = gym.make_vec("DexWorld-v0", num_envs=n, world_model=wm, width=wm.width, height=wm.height)
        venv.reset(seed=seed)
        venv.action_space.seed(seed)
        acts = [venv.action_space.sample() for _ in range(steps + 1)]
        venv.step(acts[0])
        t0 = time.perf_counter()
        for a in acts[1:]:
            venv.step(a)
        t_vec = time.perf_counter() - t0
        seq_envs = [gym.make("DexWorld-v0", world_model=wm, width=wm.width, height=wm.height).unwrapped
                    for _ in range(n)]  # fmt: skip
        for i, e in enumerate(seq_envs):
            e.reset(seed=seed + i)
            e.step(acts[0][i])
        t0 = time.perf_counter()
        for a in acts[1:]:
            for i, e in enumerate(seq_envs):
                e.step(a[i])
        t_seq = time.perf_counter() - t0
        frames = n * steps * chunk
        vector[str(n)] = {"vector_fps": frames / t_vec, "sequential_fps": frames / t_seq, "speedup": t_seq / t_vec}
    return {"world_model": world_model, "width": wm.width, "height": wm.height, "chunk": chunk, "steps": steps,
            "step_s_median": statistics.median(lat), "step_s_all": lat, "vector": vector,
            "breakdown_s": {k: statistics.median(s[k] for s in stages) for k in BREAKDOWN},
            "note": "vector env: one world-model call per step for all envs; sequential: one call per env"}  # fmt: skip
