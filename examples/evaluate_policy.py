"""Evaluate a policy without a physics simulator: run it in DexWorld-v0 with the learned world model,
and again with the physics oracle, and print both success rates.

    python examples/evaluate_policy.py --task push-red-box --episodes 5

The policy here is the task's scripted reference (randomized by the episode seed) mixed with a
"lazy" variant that waves instead of pushing, so that success rates are not trivially 1.
"""

from __future__ import annotations

import argparse

import gymnasium as gym

import dexsim  # noqa: F401  (registers DexWorld-v0)
from dexsim.envs.policies import ScriptedPolicy


def run(world_model: str, task: str, episodes: int) -> float:
    wins = 0
    for ep in range(episodes):
        env = gym.make("DexWorld-v0", task=task, world_model=world_model, action_mode="mano", clamp="silent")
        lazy = ep % 3 == 2  # every third episode waves instead of doing the task
        policy = ScriptedPolicy(task, chunk=env.unwrapped.chunk, seed=ep, kind="wave" if lazy else None)
        obs, _ = env.reset(seed=ep)
        info = {}
        for _ in range(policy.num_steps):
            obs, _, terminated, truncated, info = env.step(policy(obs))
            if terminated or truncated:
                break
        wins += bool(info.get("success"))
        print(
            f"  [{world_model}] episode {ep}: {'wave' if lazy else 'task'} policy, goal-region PSNR "
            f"{info.get('score', float('nan')):.2f} dB, success {info.get('success')}"
        )
    return wins / episodes


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--task", default="push-red-box")
    p.add_argument("--episodes", type=int, default=6)
    a = p.parse_args()
    rates = {wm: run(wm, a.task, a.episodes) for wm in ("default", "oracle")}
    for wm, r in rates.items():
        print(f"success rate with the {wm} world model: {r:.2f} ({a.episodes} episodes)")
    print(f"agreement between the two: |difference| = {abs(rates['default'] - rates['oracle']):.2f}")


if __name__ == "__main__":
    main()
