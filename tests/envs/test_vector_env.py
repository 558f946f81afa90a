"""The vector env is the env: N envs in one core reproduce N single envs, episode by episode."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import dexsim  # noqa: F401  (registers DexWorld-v0)
from dexsim.envs import DexWorldEnv
from dexsim.envs.vector import DexWorldVectorEnv
from dexsim.worldmodel import DiffusionWorldModel

from .conftest import noisy_tiny_model

SIZE = 32


@pytest.fixture(scope="module")
def noisy_model() -> DiffusionWorldModel:
    return noisy_tiny_model(SIZE, num_steps=2)


def _kwargs(model) -> dict:
    return {"task": "push-red-box", "world_model": model, "width": SIZE, "height": SIZE, "chunk": 4}


def test_vector_env_reproduces_single_envs(noisy_model) -> None:
    seeds = [11, 5, 23]
    space = DexWorldEnv(**_kwargs(noisy_model)).action_space
    space.seed(0)
    actions = [[space.sample() for _ in seeds] for _ in range(3)]
    venv = DexWorldVectorEnv(num_envs=len(seeds), **_kwargs(noisy_model))
    vobs, _ = venv.reset(seed=seeds)
    singles = [DexWorldEnv(**_kwargs(noisy_model)) for _ in seeds]
    sobs = [env.reset(seed=s)[0] for env, s in zip(singles, seeds, strict=True)]
    for i in range(len(seeds)):
        assert np.array_equal(vobs["static"][i], sobs[i]["static"])
    differ = []
    for step_actions in actions:
        vobs, vr, vterm, _, _ = venv.step(np.stack(step_actions))
        for i, env in enumerate(singles):
            obs, r, term, _, _ = env.step(step_actions[i])
            assert abs(vr[i] - r) < 1e-5 and vterm[i] == term
            assert np.array_equal(vobs["static"][i], obs["static"])
            assert np.array_equal(vobs["hand_prompt"][i], obs["hand_prompt"])
            d = np.abs(vobs["frames"][i].astype(int) - obs["frames"].astype(int))
            assert d.max() <= 1 and (d > 0).mean() < 1e-3
            differ.append(vobs["frames"][i])
    # each env has its own noise: the same action from different seeds gives different frames
    assert not np.array_equal(differ[0], differ[1])


def test_vector_env_seeds_each_env_with_its_own_stream(noisy_model) -> None:
    """``reset(seed=s)`` seeds env i with s + i: env 1 of a vector env reset with 7 equals a single env with 8."""
    venv = DexWorldVectorEnv(num_envs=2, **_kwargs(noisy_model))
    single = DexWorldEnv(**_kwargs(noisy_model))
    vobs, _ = venv.reset(seed=7)
    obs, _ = single.reset(seed=8)
    assert np.array_equal(vobs["camera"][1], obs["camera"])
    assert not np.array_equal(vobs["camera"][0], obs["camera"])


def test_vector_env_refuses_bad_calls(noisy_model) -> None:
    venv = DexWorldVectorEnv(num_envs=2, **_kwargs(noisy_model))
    with pytest.raises(RuntimeError, match="reset"):
        venv.step(np.zeros((2, 21), np.float32))
    with pytest.raises(ValueError, match="3 seeds for 2 envs"):
        venv.reset(seed=[1, 2, 3])
    venv.reset(seed=0)
    with pytest.raises(ValueError, match="must hold 2 actions"):
        venv.step(np.zeros((3, 21), np.float32))
    with pytest.raises(ValueError, match="num_envs"):
        DexWorldVectorEnv(num_envs=0, **_kwargs(noisy_model))


def test_single_env_step_before_reset_is_a_clear_error(noisy_model) -> None:
    env = DexWorldEnv(**_kwargs(noisy_model))
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.zeros(21, np.float32))


def test_make_vec_uses_the_native_vector_env(noisy_model) -> None:
    venv = gym.make_vec("DexWorld-v0", num_envs=2, vectorization_mode="vector_entry_point", **_kwargs(noisy_model))
    assert isinstance(venv.unwrapped, DexWorldVectorEnv)
    obs, _ = venv.reset(seed=[3, 4])
    assert obs["frames"].shape == (2, 4, SIZE, SIZE, 3)
