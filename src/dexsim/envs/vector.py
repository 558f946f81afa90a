"""``DexWorldVectorEnv``: N envs whose world-model calls run as one batch."""

from __future__ import annotations

import time
from typing import Any, ClassVar

import numpy as np
import torch
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space, concatenate, create_empty_array

from .core import DexWorldEnv

__all__ = ["DexWorldVectorEnv"]


class DexWorldVectorEnv(VectorEnv):
    """``num_envs`` :class:`DexWorldEnv` sharing one world model and one built scene.

    Each step renders every env's static video and hand prompt, then calls the world model once
    for the whole batch (windows of equal length together). Autoreset: ``NEXT_STEP`` (the step
    after an episode ends returns the new episode's first observation, reward 0).
    ``max_episode_steps`` truncates episodes (registration sets it).
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"], "autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(self, num_envs: int = 1, max_episode_steps: int | None = None, **env_kwargs: Any) -> None:
        if num_envs < 1:
            raise ValueError(f"`num_envs` must be >= 1, got {num_envs}")
        first = DexWorldEnv(**env_kwargs)
        shared = {**env_kwargs, "world_model": first.world_model}
        self.envs = [first] + [DexWorldEnv(**shared) for _ in range(num_envs - 1)]
        self.num_envs = num_envs
        self.max_episode_steps = max_episode_steps
        self.single_observation_space = first.observation_space
        self.single_action_space = first.action_space
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self.render_mode = first.render_mode
        self._steps = np.zeros(num_envs, int)
        self._needs_reset = np.zeros(num_envs, bool)

    def _stack(self, obs: list[dict]) -> dict:
        out = create_empty_array(self.single_observation_space, self.num_envs)
        return concatenate(self.single_observation_space, obs, out)

    def reset(self, *, seed: int | list[int] | None = None, options: dict | None = None) -> tuple[dict, dict]:
        seeds = seed if isinstance(seed, list) else [None if seed is None else seed + i for i in range(self.num_envs)]
        obs, infos = [], {}
        for i, env in enumerate(self.envs):
            o, info = env.reset(seed=seeds[i], options=options)
            obs.append(o)
            infos = self._add_info(infos, info, i)
        self._steps[:] = 0
        self._needs_reset[:] = False
        return self._stack(obs), infos

    def _actions(self, actions: Any) -> list[Any]:
        if isinstance(actions, dict):
            return [{k: v[i] for k, v in actions.items()} for i in range(self.num_envs)]
        return [actions[i] for i in range(self.num_envs)]

    def step(self, actions: Any) -> tuple[dict, np.ndarray, np.ndarray, np.ndarray, dict]:
        acts = self._actions(actions)
        obs: list[Any] = [None] * self.num_envs
        rewards = np.zeros(self.num_envs)
        term = np.zeros(self.num_envs, bool)
        trunc = np.zeros(self.num_envs, bool)
        infos: dict = {}
        reqs: dict[int, dict] = {}
        for i, env in enumerate(self.envs):
            if self._needs_reset[i]:
                obs[i], info = env.reset()
                infos = self._add_info(infos, info, i)
                self._needs_reset[i] = False
                self._steps[i] = 0
            else:
                reqs[i] = env.prepare(acts[i])
        groups: dict[int, list[int]] = {}
        for i, r in reqs.items():
            groups.setdefault(len(r["prompt"]), []).append(i)
        wm = self.envs[0].world_model
        for idx in groups.values():
            t0 = time.perf_counter()
            with_ctx = [reqs[i]["context"] is not None for i in idx]
            if any(with_ctx) and not all(with_ctx):  # mixed first / continuation windows: run separately
                parts = [
                    [i for i in idx if reqs[i]["context"] is None],
                    [i for i in idx if reqs[i]["context"] is not None],
                ]
            else:
                parts = [idx]
            for part in parts:
                if not part:
                    continue
                frames = wm.generate(
                    np.stack([reqs[i]["static"] for i in part]), np.stack([reqs[i]["prompt"] for i in part]),
                    context=None if reqs[part[0]]["context"] is None else np.stack([reqs[i]["context"] for i in part]),
                    text=[self.envs[i].goal.text if self.envs[i].goal else "" for i in part],
                    generator=torch.Generator().manual_seed(int(self.envs[part[0]].np_random.integers(2**31))),
                    num_steps=self.envs[0].num_steps, hands=[reqs[i]["hands"] for i in part],
                )  # fmt: skip
                dt = (time.perf_counter() - t0) / len(part)
                for j, i in enumerate(part):
                    reqs[i]["batch_index"] = j
                    obs[i], rewards[i], term[i], trunc[i], info = self.envs[i].finish(reqs[i], frames[j], dt)
                    infos = self._add_info(infos, info, i)
        for i in reqs:
            self._steps[i] += 1
            if self.max_episode_steps is not None and self._steps[i] >= self.max_episode_steps:
                trunc[i] = True
            self._needs_reset[i] = term[i] or trunc[i]
        return self._stack(obs), rewards, term, trunc, infos

    def render(self) -> tuple[np.ndarray, ...] | None:
        return tuple(env.render() for env in self.envs) if self.render_mode else None

    def close_extras(self, **kwargs: Any) -> None:
        for env in self.envs:
            env.close()
