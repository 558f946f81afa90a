"""Evaluate your own policy without a physics simulator, and see how far the verdict can be trusted.

    python examples/evaluate_policy.py --episodes 8

The policy below is a class: the evaluator makes one per episode with one ``DexWorldEnv`` (its
action space, task and chunk), resets it with the episode seed, and calls it with one env's
observation; it returns one ``delta`` action (camera and two wrists, see the env's docstring). The
episodes run batched in the learned world model, and the physics oracle replays the same episodes
(same seeds, same actions), so every verdict is checked against physics. The same from the shell:

    PYTHONPATH=examples dexsim evaluate --task push-red-box --policy evaluate_policy:ReachAndSweep \\
        --episodes 8 --json eval.json
"""

from __future__ import annotations

import argparse

import numpy as np

from dexsim.envs.evaluate import evaluate


class ReachAndSweep:
    """Brings the left hand into view beside the red box, lowers it to the table, then sweeps it left."""

    def __init__(self, env) -> None:
        self.space = env.action_space  # Box(-1, 1, (21,))

    def reset(self, seed: int) -> None:
        self.rng, self.t = np.random.default_rng(seed), 0

    def __call__(self, obs: dict) -> np.ndarray:
        a = np.zeros(self.space.shape, np.float32)
        a[12] = 1.0  # the left hand is in view (the right hand: a[20])
        a[5:8] = (0.6, 0.6, -0.9) if self.t == 0 else (-1.0, 0.0, -0.1)  # wrist move (x 8 cm per step)
        a[5:7] += self.rng.normal(0.0, 0.15, 2)
        self.t += 1
        return a


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--task", default="push-red-box")
    p.add_argument("--episodes", type=int, default=8)
    p.add_argument("--world-model", default="default")
    a = p.parse_args()
    r = evaluate(a.task, ReachAndSweep, a.episodes, seed=0, world_model=a.world_model).report
    lo, hi = r["ci95"]
    print(f"success rate in the world model: {r['success_rate']:.2f} (95% interval {lo:.2f}-{hi:.2f})")
    print(f"success rate in physics:         {r['oracle_success_rate']:.2f}")
    print(f"episodes where both agree:       {r['paired_agreement']:.2f} (Cohen's kappa {r['kappa']})")


if __name__ == "__main__":
    main()
