"""Gymnasium's AsyncVectorEnv with its defaults (fork on Linux): works, or refuses at once."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import pytest

SCRIPT = textwrap.dedent(
    """
    import sys
    import gymnasium as gym
    import dexsim  # noqa: F401
    if sys.argv[1] == "pools":  # the parent runs torch's thread pool before forking its workers
        import torch
        (torch.randn(512, 512) @ torch.randn(512, 512)).exp().sum()
    try:
        venv = gym.make_vec("DexWorld-v0", num_envs=2, vectorization_mode="async", task="push-red-box",
                            world_model="oracle", width=16, height=16, chunk=2)
    except RuntimeError as e:
        print("REFUSED", e)
        sys.exit(0)
    obs, _ = venv.reset(seed=0)
    obs, r, term, trunc, info = venv.step(venv.action_space.sample())
    print("OK", obs["frames"].shape)
    venv.close()
    """
)


def _run(mode: str) -> str:
    out = subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, timeout=240)
    return out.stdout


@pytest.mark.slow
def test_async_vector_env_works_with_gymnasiums_defaults() -> None:
    out = _run("fresh")
    assert "OK (2, 2, 16, 16, 3)" in out, out


@pytest.mark.slow
def test_async_vector_env_after_thread_pools_refuses_with_what_to_pass() -> None:
    t0 = time.perf_counter()
    out = _run("pools")
    assert time.perf_counter() - t0 < 60  # at once, not after a hang
    assert "REFUSED" in out and "vector_kwargs={'context': 'spawn'}" in out, out
