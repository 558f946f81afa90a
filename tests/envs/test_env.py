"""DexWorld-v0: registration, spaces, check_env for every action mode, determinism, vector env."""

from __future__ import annotations

import pickle

import gymnasium as gym
import numpy as np
import pytest
import torch

import dexsim  # noqa: F401  (registers DexWorld-v0)
from dexsim.envs.core import DexWorldEnv
from dexsim.envs.policies import ScriptedPolicy
from dexsim.worldmodel import DiffusionWorldModel, compact_pipeline

SIZE = 32


@pytest.fixture(scope="module")
def tiny_model() -> DiffusionWorldModel:
    pipe = compact_pipeline("tiny")
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in pipe.transformer.parameters():
            if p.abs().sum() == 0:
                p.copy_(torch.randn(p.shape, generator=g) * 0.02)
    return DiffusionWorldModel(pipe, SIZE, SIZE, window=5, context_frames=1, num_steps=1)


def _env(model, **kw) -> DexWorldEnv:
    return DexWorldEnv(world_model=model, width=SIZE, height=SIZE, chunk=4, **kw)


def test_registered_and_made_by_id(tiny_model, tmp_path) -> None:
    assert "DexWorld-v0" in gym.registry
    tiny_model.save_pretrained(tmp_path / "m")
    env = gym.make("dexsim:DexWorld-v0", world_model=str(tmp_path / "m"), width=SIZE, height=SIZE, chunk=4)
    assert env.spec.max_episode_steps == 8
    pickle.loads(pickle.dumps(env.spec))
    obs, _ = env.reset(seed=0)
    assert obs["frames"].shape == (4, SIZE, SIZE, 3)
    with pytest.raises(ValueError, match="works at 32x32"):
        gym.make("DexWorld-v0", world_model=str(tmp_path / "m"), width=64, height=64)


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["delta", "mano", "keypoints"])
def test_check_env_every_action_mode(tiny_model, mode: str) -> None:
    from gymnasium.utils.env_checker import check_env

    env = _env(tiny_model, action_mode=mode, render_mode="rgb_array", clamp="silent")
    check_env(env, skip_render_check=False)
    env.reset(seed=3)
    for _ in range(2):
        a = env.action_space.sample()
        assert env.action_space.contains(a)
        obs = env.step(a)[0]
        assert env.observation_space.contains(obs)


def test_seeded_determinism_and_hands_in_prompt(tiny_model) -> None:
    runs = []
    for _ in range(2):
        env = _env(tiny_model)
        env.reset(seed=7)
        env.action_space.seed(7)
        a = np.zeros(21, np.float32)
        a[5 + 8 + 7] = 1.0  # right hand present
        a[5 + 8 + 1] = 0.5
        runs.append(env.step(a)[0])
    for k in ("frames", "static", "hand_prompt"):
        assert np.array_equal(runs[0][k], runs[1][k])
    assert runs[0]["hand_prompt"].max() > 0  # the right hand is drawn
    assert runs[0]["hands_visible"].tolist() == [0, 1]


def test_out_of_bounds_actions_are_clamped_with_a_warning(tiny_model) -> None:
    env = _env(tiny_model)
    env.reset(seed=0)
    with pytest.warns(UserWarning, match="outside its bounds"):
        env.step(np.full(21, 3.0, np.float32))
    strict = _env(tiny_model, clamp="error")
    strict.reset(seed=0)
    with pytest.raises(ValueError, match="delta"):
        strict.step(np.full(21, 3.0, np.float32))
    with pytest.raises(ValueError, match="shape"):
        env.step(np.zeros(5))
    with pytest.raises(ValueError, match="unknown task"):
        DexWorldEnv(task="fly", world_model=tiny_model)


@pytest.mark.slow
def test_oracle_env_scripted_policy_beats_doing_nothing() -> None:
    """With the physics oracle (deterministic): the task's reference policy raises the reward (goal-region
    PSNR) well above where it starts and above doing nothing (the same camera, hands out of view),
    and ends the episode as a success; doing nothing leaves the reward where it is and never succeeds."""
    env = gym.make("DexWorld-v0", task="push-red-box", world_model="oracle", action_mode="mano", width=SIZE,
                   height=SIZE)  # fmt: skip

    def episode(hands: bool) -> list[tuple[float, bool, dict]]:
        policy = ScriptedPolicy("push-red-box", chunk=8, seed=1)
        obs, _ = env.reset(seed=0)
        steps = []
        for _ in range(policy.num_steps):
            action = policy(obs)
            if not hands:
                action["visible"][:] = 0
            obs, reward, terminated, truncated, info = env.step(action)
            assert not truncated and reward == info["score"]
            steps.append((reward, terminated, info))
        return steps

    scripted, idle = episode(hands=True), episode(hands=False)
    margin = 3.0  # dB: the task's image test for success
    assert len(scripted) == len(idle) == 2
    assert idle[0][0] == pytest.approx(idle[1][0], abs=1e-9)  # nothing moves, nothing changes
    assert not any(term or info["success"] for _, term, info in idle)
    assert scripted[-1][0] > scripted[0][0] + margin  # improves over the episode ...
    assert scripted[-1][0] > idle[-1][0] + margin  # ... and over doing nothing
    assert scripted[-1][1] and scripted[-1][2]["success"] and not scripted[0][1]
    env.close()


def test_vector_env_batches_and_autoresets(tiny_model, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    gen = tiny_model.generate

    def counting(static, prompt, **kw):
        calls.append(prompt.shape[0])
        return gen(static, prompt, **kw)

    monkeypatch.setattr(tiny_model, "generate", counting)
    venv = gym.make_vec("DexWorld-v0", num_envs=3, world_model=tiny_model, width=SIZE, height=SIZE, chunk=4,
                        max_episode_steps=2)  # fmt: skip
    assert venv.metadata["autoreset_mode"] == gym.vector.AutoresetMode.NEXT_STEP
    obs, _ = venv.reset(seed=0)
    assert obs["frames"].shape == (3, 4, SIZE, SIZE, 3)
    for _ in range(2):
        obs, r, _, trunc, _ = venv.step(venv.action_space.sample())
    assert trunc.all() and calls == [3, 3]  # one world-model call per step for all envs
    _, r, _, trunc, _ = venv.step(venv.action_space.sample())  # the autoreset step
    assert (r == 0).all() and not trunc.any() and calls == [3, 3]


def test_record_video_holds_the_rendered_frames(tiny_model, tmp_path) -> None:
    """RecordVideo writes one frame per reset and step, and they are what ``env.render()`` returned."""
    import imageio.v2 as imageio
    from gymnasium.wrappers import RecordVideo

    env = gym.make("DexWorld-v0", world_model=tiny_model, width=SIZE, height=SIZE, chunk=4, render_mode="rgb_array")
    env = RecordVideo(env, str(tmp_path / "videos"), episode_trigger=lambda e: True, disable_logger=True)
    env.action_space.seed(0)
    env.reset(seed=0)
    shown = [env.render()]
    for _ in range(3):
        env.step(env.action_space.sample())
        shown.append(env.render())
    env.close()
    (path,) = (tmp_path / "videos").glob("*.mp4")
    reader = imageio.get_reader(path, format="FFMPEG")
    try:
        video = np.stack([np.asarray(f) for f in reader])
    finally:
        reader.close()
    shown_arr = np.stack(shown).astype(int)
    assert video.shape == shown_arr.shape == (4, SIZE, 3 * SIZE, 3)
    # the frames differ from each other (the camera and hands move), so matching each one is a real check
    apart = [np.abs(shown_arr[i] - shown_arr[j]).mean() for i in range(4) for j in range(i)]
    assert min(apart) > 1.0, apart
    for t in range(4):
        err = np.abs(video[t].astype(int) - shown_arr).mean(axis=(1, 2, 3))  # H.264 is lossy (noisy frames: ~6)
        others = np.delete(err, t)
        assert err[t] < 10.0 and err[t] < 0.75 * others.min(), (t, err)  # nearest its own frame, by far


def test_step_timings_by_stage(tiny_model) -> None:
    import time

    env = _env(tiny_model, task="push-red-box")
    env.reset(seed=0)
    t0 = time.perf_counter()
    env.step(env.action_space.sample())
    wall = time.perf_counter() - t0
    t = env.last_timings
    assert set(t) == {"controller", "static", "prompt", "world_model", "scorer"}
    assert all(v >= 0 for v in t.values()) and t["world_model"] > 0 and t["static"] > 0 and t["prompt"] > 0
    assert sum(t.values()) <= wall  # stages of this one step, timed inside it
