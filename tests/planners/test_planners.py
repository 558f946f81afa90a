"""Planners and scorers: ranking, CEM, candidates, the plan benchmark's measures."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from dexsim.planners import CEMConfig, CEMPlanner, RankPlanner, Rollout, perturb_action, primitive_candidates
from dexsim.planners.bench import kendall_tau, plan_instance
from dexsim.scoring import Goal, PSNRScorer, RegionScorer, SSIMScorer, hand_masks_from_prompts, make_scorer


class _Echo:
    """A world model whose prediction is the prompt video itself (so rankings are predictable)."""

    width = height = 16
    window, context_frames, fps = 4, 1, 8.0

    def __init__(self) -> None:
        self.batches: list[int] = []

    def generate(self, static, prompt, context=None, **kw):
        self.batches.append(prompt.shape[0])
        out = np.array(prompt, copy=True)
        if context is not None:
            out[:, : context.shape[1]] = context
        return out


def test_scorers_rank_the_goal_first() -> None:
    rng = np.random.default_rng(0)
    start = rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)
    goal_img = start.copy()
    goal_img[4:8, 4:8] = 255
    goal = Goal(image=goal_img, start=start)
    near = goal_img.copy()
    near[4:6, 4:8] = start[4:6, 4:8]
    frames = np.stack([np.stack([start, x]) for x in (start, near, goal_img)])
    for scorer in (PSNRScorer(), SSIMScorer(), RegionScorer(), make_scorer("region_psnr")):
        s = scorer.score(frames, goal)
        assert s.shape == (3,) and s[2] > s[1] > s[0], scorer.name
    region = RegionScorer(dilate=0).region(goal)
    assert region.sum() == 16
    with pytest.raises(ValueError, match="differ in size"):
        PSNRScorer().score(frames[:, :, :8], goal)
    with pytest.raises(ValueError, match="unknown scorer"):
        make_scorer("clip")
    prompts = np.zeros((1, 2, 16, 16, 3), np.uint8)
    prompts[0, -1, 2, 2] = (253, 128, 130)
    assert hand_masks_from_prompts(prompts, dilate=0).sum() == 1


def _scene_with_box(x: int, y: int = 28, size: int = 8) -> np.ndarray:
    img = np.full((64, 128, 3), 80, np.uint8)
    img[y : y + size, x : x + size] = (220, 30, 30)
    return img


def test_multiscale_scorer_follows_distance_and_hands_hide_nothing() -> None:
    from dexsim.scoring import MultiScaleScorer, gaussian_blur

    start, goal_img = _scene_with_box(20), _scene_with_box(70)
    goal = Goal(image=goal_img, start=start)
    ends = [_scene_with_box(x) for x in (20, 50, 66, 70, 110)]  # not moved, half way, near, at the goal, past it
    frames = np.stack([np.stack([start, e]) for e in ends])
    for scorer in (MultiScaleScorer(), make_scorer("region_multiscale_psnr")):
        s = scorer.score(frames, goal)
        assert s[3] > s[2] > s[1] and s[1] > s[4], (scorer.name, s)  # closer is better, exact best
        # plain PSNR cannot tell "half way" from "not moved": neither overlaps the goal
    p = PSNRScorer().score(frames, goal)
    assert abs(p[1] - p[0]) < 1.0 < s[1] - s[0]
    # a hand over the box's start: filled with the start view the box has not moved; filled with the
    # goal (the default) it looks moved
    masks = np.zeros((5, 64, 128), bool)
    masks[0, 24:40, 16:32] = True
    pessimist = MultiScaleScorer(hand_fill="start")
    hid = pessimist.score(frames[:1], goal, masks[:1])[0]
    assert hid == pytest.approx(pessimist.score(frames[:1], goal)[0], abs=1e-6)
    assert MultiScaleScorer().score(frames[:1], goal, masks[:1])[0] > hid + 1.0
    with pytest.raises(ValueError, match="hand_fill"):
        MultiScaleScorer(hand_fill="zeros")
    with pytest.raises(ValueError, match="sigmas"):
        MultiScaleScorer(sigmas=())
    # the blur keeps a constant image and the mean of any image
    img = torch.rand(2, 3, 32, 40)
    assert torch.allclose(gaussian_blur(torch.full((1, 3, 32, 40), 0.5), 3.0), torch.tensor(0.5))
    assert gaussian_blur(img, 2.0).mean().item() == pytest.approx(img.mean().item(), abs=0.02)


def test_rank_planner_batches_and_orders() -> None:
    rng = np.random.default_rng(1)
    static = rng.integers(0, 255, (7, 16, 16, 3), dtype=np.uint8)
    goal_img = rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)
    prompts = np.repeat(static[None], 5, 0).copy()
    for i in range(5):  # candidate i ends i/4 of the way to the goal image
        prompts[i, -1] = (static[-1] * (1 - i / 4) + goal_img * (i / 4)).astype(np.uint8)
    wm = _Echo()
    res = RankPlanner(wm, PSNRScorer(), batch_size=5, mask_hands=False).plan(
        Rollout(static, prompts), Goal(image=goal_img, start=static[0])
    )
    assert res.order.tolist() == [4, 3, 2, 1, 0] and res.best == 4
    assert wm.batches == [5, 5]  # 2 windows of 4 frames (1 context) cover 7 frames, all 5 candidates at once
    assert res.videos.shape == prompts.shape
    with pytest.raises(ValueError, match="batch_size"):
        RankPlanner(wm, PSNRScorer(), batch_size=0)
    with pytest.raises(ValueError, match="hand_mask_dilate"):
        RankPlanner(wm, PSNRScorer(), hand_mask_dilate=-1)


def test_kendall_tau() -> None:
    a = np.array([1.0, 2.0, 3.0, 4.0])
    assert kendall_tau(a, a) == pytest.approx(1.0)
    assert kendall_tau(a, -a) == pytest.approx(-1.0)
    assert abs(kendall_tau(a, np.array([2.0, 1.0, 4.0, 3.0]))) < 0.5
    # differences within the measure's tolerance are ties: only the clearly ordered pairs count
    b = np.array([1.0, 1.004, 3.0, 4.0])
    assert kendall_tau(np.array([2.0, 1.0, 3.0, 4.0]), b) < kendall_tau(np.array([2.0, 1.0, 3.0, 4.0]), b, 0.01)


def test_candidates_share_the_camera_and_perturbations_move_the_hand() -> None:
    from dexsim.physics.spec import builtin_scene

    spec = builtin_scene("tabletop")
    cands = primitive_candidates(spec, "red_box", 6, np.random.default_rng(0), frames=8)
    assert len(cands) == 6 and {c.text.split()[-1] for c in cands[:3]} == {"left", "right", "forward"}
    assert all(np.array_equal(c.trajectory.camera, cands[0].trajectory.camera) for c in cands)
    var = perturb_action(cands[0], np.random.default_rng(1), 2)
    h = int(np.flatnonzero(cands[0].trajectory.visible[0])[0])
    shift = np.abs(var[0].trajectory.joints[:, h] - cands[0].trajectory.joints[:, h]).max()
    assert 1e-3 < shift < 0.5


def test_candidates_withdraw_the_hand_at_the_end() -> None:
    from dexsim.physics.spec import builtin_scene
    from dexsim.planners import withdraw

    spec = builtin_scene("tabletop")
    cands = primitive_candidates(spec, "red_box", 3, np.random.default_rng(0), frames=12, withdraw_frames=4)
    plain = primitive_candidates(spec, "red_box", 3, np.random.default_rng(0), frames=8, withdraw_frames=0)
    for c, p in zip(cands, plain, strict=True):
        tr, h = c.trajectory, int(np.flatnonzero(p.trajectory.visible[0])[0])
        assert tr.joints.shape[0] == 12 and np.allclose(np.diff(tr.t), 1 / 8)
        assert np.array_equal(tr.params[:8], p.trajectory.params)  # the action itself is unchanged
        wrist = tr.joints[:, h, 0]
        assert wrist[-1, 2] > wrist[7, 2] + 0.07  # lifted ~8 cm
        assert np.linalg.norm(wrist[-1, :2] - wrist[0, :2]) < np.linalg.norm(wrist[7, :2] - wrist[0, :2])  # back
        assert np.array_equal(tr.camera[8:], np.repeat(tr.camera[7:8], 4, 0))
    assert withdraw(plain[0], 0) is plain[0]
    with pytest.raises(ValueError, match="withdraw_frames"):
        primitive_candidates(spec, "red_box", 3, np.random.default_rng(0), frames=8, withdraw_frames=7)


def test_cem_improves_on_a_known_optimum() -> None:
    """CEM over 2 parameters whose 'video' brightens towards a target point: it must approach it."""
    target = np.array([0.5, -0.3])

    def make_rollout(x: np.ndarray) -> Rollout:
        n = x.shape[0]
        d = np.linalg.norm(x[:, 0, :] - target, axis=-1)
        prompts = np.zeros((n, 2, 16, 16, 3), np.uint8)
        prompts[:, -1] = (255 * np.exp(-3 * d))[:, None, None, None].astype(np.uint8)
        return Rollout(np.zeros((2, 16, 16, 3), np.uint8), prompts)

    goal = Goal(image=np.full((16, 16, 3), 255, np.uint8))
    cfg = CEMConfig(samples=24, elites=6, iterations=4, std=0.6)
    planner = CEMPlanner(_Echo(), PSNRScorer(), cfg, seed=0, mask_hands=False)
    out = planner.plan(make_rollout, goal, dim=2)
    assert np.linalg.norm(out["params"][0] - target) < 0.2
    assert out["elite_scores"][-1] >= out["elite_scores"][0]


def test_env_preview_feeds_the_cem_planner() -> None:
    from dexsim.envs.core import DexWorldEnv
    from dexsim.worldmodel import DiffusionWorldModel, compact_pipeline

    wm = DiffusionWorldModel(compact_pipeline("tiny"), 32, 32, window=5, context_frames=1, num_steps=1)
    env = DexWorldEnv(world_model=wm, width=32, height=32, chunk=4)
    env.reset(seed=0)
    before = env.hand_params.copy()
    acts = np.zeros((3, 1, 21))
    acts[:, 0, 5 + 8 + 7] = 1.0
    acts[:, 0, 5 + 8 + 1] = [-0.5, 0.0, 0.5]
    r = env.preview(acts)
    assert r.prompts.shape == (3, 4, 32, 32, 3) and len(r.hands) == 3
    assert np.array_equal(env.hand_params, before)  # the env state is untouched
    assert not np.array_equal(r.prompts[0], r.prompts[2])
    with pytest.raises(ValueError, match="camera"):
        bad = acts.copy()
        bad[1, 0, 0] = 1.0
        env.preview(bad)
    torch.manual_seed(0)
    mask = np.zeros(21, bool)
    mask[5 + 8 : 5 + 8 + 3] = True
    mean = np.zeros(21)
    mean[5 + 8 + 7] = 1.0
    planner = CEMPlanner(wm, PSNRScorer(), CEMConfig(samples=4, elites=2, iterations=2))
    goal = Goal(image=r.static[-1])
    out = planner.plan(env.preview, goal, dim=21, mean=mean, mask=mask)
    assert out["params"].shape == (1, 21) and np.all(out["params"][0, ~mask] == mean[~mask])


def test_plan_instance_with_the_oracle_picks_the_physics_best() -> None:
    from dexsim.worldmodel import OracleWorldModel

    r = plan_instance(OracleWorldModel("tabletop", 32, 32, window=9, density_scale=0.2), "push-red-box", 4, seed=3,
                      frames=8)  # fmt: skip
    assert len(r["model_scores"]) == 4 and 0.0 <= r["random_top1"] <= 1.0
    assert r["top1"]  # ranking by the exact simulator agrees with the physics measure


def test_lpips_scorer_with_a_random_backbone_and_a_clear_error_without_weights(tmp_path) -> None:
    lpips = pytest.importorskip("lpips")
    from dexsim.scoring.perceptual import LPIPSScorer, load_lpips

    with pytest.raises(FileNotFoundError, match="alexnet-owt"):
        load_lpips("alex", weights_dir=tmp_path)
    torch.manual_seed(0)
    model = lpips.LPIPS(net="alex", pnet_rand=True, verbose=False)  # random backbone: built offline
    rng = np.random.default_rng(0)
    goal_img = rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)
    noisy = np.clip(goal_img.astype(int) + rng.integers(-60, 60, goal_img.shape), 0, 255).astype(np.uint8)
    frames = np.stack([np.stack([goal_img, x]) for x in (noisy, goal_img)])
    s = LPIPSScorer(model=model).score(frames, Goal(image=goal_img))
    assert s.shape == (2,) and s[1] > s[0] and s[1] == pytest.approx(0.0, abs=1e-6)
    region = LPIPSScorer(model=model, region=True)
    r = region.score(frames, Goal(image=goal_img, start=np.zeros_like(goal_img)))
    assert region.name == "lpips_region" and r[1] > r[0] and r[1] == pytest.approx(0.0, abs=1e-6)


def test_xclip_text_video_scorer_on_a_tiny_random_instance(tmp_path) -> None:
    from transformers import XCLIPConfig, XCLIPModel

    from dexsim.scoring.perceptual import XCLIPScorer, load_xclip
    from dexsim.worldmodel.cogvideox_fun import tiny_text_encoder

    with pytest.raises(FileNotFoundError, match="xclip-base-patch32"):
        load_xclip(tmp_path)
    torch.manual_seed(0)
    vision = {"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
              "image_size": 32, "patch_size": 16, "num_frames": 4, "mit_hidden_size": 16,
              "mit_intermediate_size": 32, "mit_num_hidden_layers": 1, "mit_num_attention_heads": 2}  # fmt: skip
    text = {"vocab_size": 40, "hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1,
            "num_attention_heads": 2, "max_position_embeddings": 16}  # fmt: skip
    cfg = XCLIPConfig(text_config=text, vision_config=vision, projection_dim=16, prompt_layers=1,
                      prompt_attention_heads=2, prompt_num_attention_heads=2)  # fmt: skip
    scorer = XCLIPScorer(model=XCLIPModel(cfg), tokenizer=tiny_text_encoder()[1])
    rng = np.random.default_rng(0)
    videos = rng.integers(0, 255, (3, 7, 24, 24, 3), dtype=np.uint8)
    s = scorer.score(videos, Goal(text="push the red box"))
    assert s.shape == (3,) and np.all(np.abs(s) <= 1.0 + 1e-6) and len(set(np.round(s, 6))) == 3
    assert np.array_equal(s, scorer.score(videos, Goal(text="push the red box")))
    with pytest.raises(ValueError, match="goal text"):
        scorer.score(videos, Goal())


def _tiny_dreamsim(monkeypatch: pytest.MonkeyPatch) -> Any:
    """dreamsim's own PerceptualModel + peft LoRA (as ``dreamsim.dreamsim`` builds it), over a tiny
    random DINO ViT (16 dims, 2 heads) instead of the ViT-B checkpoints: built offline."""
    pytest.importorskip("dreamsim")
    from dreamsim.feature_extraction import extractor, vision_transformer
    from dreamsim.model import PerceptualModel
    from peft import LoraConfig, get_peft_model

    def tiny_vit(model_type: str, load_dir: str = "") -> torch.nn.Module:
        return vision_transformer.VisionTransformer(patch_size=16, embed_dim=16, depth=12, num_heads=2)

    monkeypatch.setattr(extractor.ViTExtractor, "create_model", staticmethod(tiny_vit))
    torch.manual_seed(0)
    model = PerceptualModel(model_type="dino_vitb16", feat_type="cls", stride="16", lora=True, device="cpu",
                            normalize_embeds=True)  # fmt: skip
    return get_peft_model(model, LoraConfig(r=2, lora_alpha=2, target_modules=["qkv"]))


def test_dreamsim_scorer_on_a_tiny_random_instance_and_a_clear_error_without_weights(tmp_path, monkeypatch) -> None:
    from dexsim.scoring.perceptual import DreamSimScorer, load_dreamsim, region_box

    model = _tiny_dreamsim(monkeypatch)
    with pytest.raises(FileNotFoundError, match=r"ensemble_lora.*dreamsim_ensemble_checkpoint\.zip"):
        load_dreamsim(tmp_path)
    with pytest.raises(ValueError, match="'vit-huge'"):
        load_dreamsim(tmp_path, dreamsim_type="vit-huge")
    rng = np.random.default_rng(0)
    start = np.full((48, 64, 3), 90, np.uint8)
    goal_img = start.copy()
    goal_img[20:30, 40:52] = (220, 30, 30)  # the object ends here
    noisy = np.clip(goal_img.astype(int) + rng.integers(-70, 70, goal_img.shape), 0, 255).astype(np.uint8)
    frames = np.stack([np.stack([start, x]) for x in (noisy, goal_img, start)])
    goal = Goal(image=goal_img, start=start)
    s = DreamSimScorer(model=model).score(frames, goal)
    assert s.shape == (3,) and s[1] == pytest.approx(0.0, abs=1e-5) and s[1] > s[0] and s[1] > s[2]
    # a hand covering the only wrong pixels is ignored
    masks = np.zeros((3, 48, 64), bool)
    masks[2, 18:32, 38:54] = True
    assert DreamSimScorer(model=model).score(frames, goal, masks)[2] == pytest.approx(0.0, abs=1e-5)
    # the region variant looks at a square around where the goal differs from the start
    y0, y1, x0, x1 = region_box(goal)
    assert y1 - y0 == x1 - x0 >= 32 and y0 <= 20 and y1 >= 30 and x0 <= 40 and x1 >= 52
    r = DreamSimScorer(model=model, region=True)
    assert r.name == "dreamsim_region" and r.score(frames, goal)[1] > r.score(frames, goal)[0]
