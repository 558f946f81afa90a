"""``DexWorldVectorEnv``: the N-env case of the batched core, a native ``gymnasium.vector.VectorEnv``."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space, concatenate, create_empty_array

from .core import DexWorldCore

__all__ = ["DexWorldVectorEnv"]


class DexWorldVectorEnv(VectorEnv):
    """``num_envs`` envs over one world and one world model; each step makes one world-model call
    per window shape for all of them. Every env has its own random stream: envs reset with seeds
    s0..s(N-1) and given actions a0..a(N-1) reproduce N single ``DexWorldEnv`` reset and stepped the
    same way. ``reset(seed=s)`` seeds env i with s + i (Gymnasium's convention); a list gives one
    seed per env. Autoreset: ``NEXT_STEP`` (the step after an episode ends returns the new episode's
    first observation, reward 0). ``max_episode_steps`` truncates episodes (registration sets it).
    Takes :class:`~dexsim.envs.DexWorldEnv`'s keyword arguments.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"], "autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(self, num_envs: int = 1, max_episode_steps: int | None = None, render_mode: str | None = None,
                 **env_kwargs: Any) -> None:  # fmt: skip
        if not isinstance(num_envs, (int, np.integer)) or isinstance(num_envs, bool) or num_envs < 1:
            raise ValueError(f"`num_envs` must be a positive int, got {num_envs!r}")
        if max_episode_steps is not None and (not isinstance(max_episode_steps, int) or max_episode_steps < 1):
            raise ValueError(f"`max_episode_steps` must be a positive int or None, got {max_episode_steps!r}")
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"`render_mode` must be None or 'rgb_array', got {render_mode!r}")
        self.core = DexWorldCore(int(num_envs), **env_kwargs)
        self.num_envs = int(num_envs)
        self.max_episode_steps = max_episode_steps
        self.render_mode = render_mode
        self.single_observation_space = self.core.observation_space()
        self.single_action_space = self.core.controller.action_space
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self._steps = np.zeros(self.num_envs, int)
        self._needs_reset = np.zeros(self.num_envs, bool)
        self._rngs: list[np.random.Generator | None] = [None] * self.num_envs

    @property
    def world_model(self) -> Any:
        return self.core.world_model

    def _stack(self, obs: list[dict]) -> dict:
        out = create_empty_array(self.single_observation_space, self.num_envs)
        return concatenate(self.single_observation_space, obs, out)

    def _seeds(self, seed: int | list[int | None] | None) -> list[int | None]:
        if seed is None:
            return [None] * self.num_envs
        if isinstance(seed, (list, tuple, np.ndarray)):
            if len(seed) != self.num_envs:
                raise ValueError(f"`seed` has {len(seed)} seeds for {self.num_envs} envs")
            return [None if s is None else int(s) for s in seed]
        if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
            return [int(seed) + i for i in range(self.num_envs)]
        raise ValueError(f"`seed` must be None, an int or a list of {self.num_envs} ints, got {seed!r}")

    def _reset_one(self, i: int, seed: int | None, options: dict | None) -> tuple[dict, dict]:
        if seed is not None or self._rngs[i] is None:
            self._rngs[i], _ = seeding.np_random(seed)
        self._steps[i] = 0
        self._needs_reset[i] = False
        return self.core.reset(i, self._rngs[i])  # type: ignore[arg-type]

    def reset(self, *, seed: int | list[int | None] | None = None,
              options: dict | None = None) -> tuple[dict, dict]:  # fmt: skip
        seeds = self._seeds(seed)
        obs, infos = [], {}
        for i in range(self.num_envs):
            o, info = self._reset_one(i, seeds[i], options)
            obs.append(o)
            infos = self._add_info(infos, info, i)
        return self._stack(obs), infos

    def _actions(self, actions: Any) -> list[Any]:
        """One env's action per env, the batch size checked."""
        if isinstance(actions, dict):
            sizes = {k: len(np.asarray(v)) for k, v in actions.items()}
            if any(n != self.num_envs for n in sizes.values()):
                raise ValueError(f"`actions` must hold {self.num_envs} actions per key, got {sizes}")
            return [{k: np.asarray(v)[i] for k, v in actions.items()} for i in range(self.num_envs)]
        if len(actions) != self.num_envs:
            raise ValueError(f"`actions` must hold {self.num_envs} actions, got {len(actions)}")
        return [actions[i] for i in range(self.num_envs)]

    def step(self, actions: Any) -> tuple[dict, np.ndarray, np.ndarray, np.ndarray, dict]:
        self.core.check_started(list(range(self.num_envs)))
        acts = self._actions(actions)
        obs: list[Any] = [None] * self.num_envs
        rewards = np.zeros(self.num_envs)
        term = np.zeros(self.num_envs, bool)
        trunc = np.zeros(self.num_envs, bool)
        infos: dict = {}
        stepping = {i: acts[i] for i in range(self.num_envs) if not self._needs_reset[i]}
        results = self.core.step(stepping)
        for i in range(self.num_envs):
            if i in results:
                obs[i], rewards[i], term[i], trunc[i], info = results[i]
                self._steps[i] += 1
                if self.max_episode_steps is not None and self._steps[i] >= self.max_episode_steps:
                    trunc[i] = True
                self._needs_reset[i] = term[i] or trunc[i]
            else:
                obs[i], info = self._reset_one(i, None, None)
            infos = self._add_info(infos, info, i)
        return self._stack(obs), rewards, term, trunc, infos

    def render(self) -> tuple[np.ndarray, ...] | None:
        if self.render_mode is None:
            return None
        frames = []
        for slot in self.core.slots:
            last = slot.last
            frames.append(None if last is None else np.concatenate(
                (last["static"][-1], last["hand_prompt"][-1], last["frames"][-1]), 1))  # fmt: skip
        return tuple(frames)  # type: ignore[arg-type]
