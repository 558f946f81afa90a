"""Scorers (dexsim.scoring): the goal ranks first, regions, multi-scale blur, hand masks, and the
perceptual scorers (LPIPS, X-CLIP, DreamSim) on tiny random instances built offline."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from dexsim.scoring import Goal, PSNRScorer, RegionScorer, SSIMScorer, hand_masks_from_prompts, make_scorer


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


def _textured_scene_with_box(y: int, x: int) -> np.ndarray:
    img = np.random.default_rng(3).integers(90, 130, (96, 128, 3)).astype(np.uint8)
    img[y : y + 12, x : x + 16] = (210, 30, 30)
    return img


def test_shift_scorer_ranks_by_the_distance_of_the_end_position_from_the_goal() -> None:
    from dexsim.scoring import MultiScaleScorer, ShiftScorer, region_shift

    start, goal_img = _textured_scene_with_box(40, 40), _textured_scene_with_box(40, 60)  # the goal: 20 px right
    goal = Goal(image=goal_img, start=start)
    ends = [(40, 60), (40, 52), (40, 40), (25, 40), (40, 15)]  # at the goal, 8 px short, not moved, up, left
    frames = np.stack([np.stack([start, _textured_scene_with_box(*e)]) for e in ends])
    s = ShiftScorer(pixel_weight=0.0).score(frames, goal)
    want = -np.array([0.0, 8.0, 20.0, np.hypot(15, 20), 45.0])  # minus the distance to the goal's end, pixels
    np.testing.assert_allclose(s, want, atol=0.6)
    default = make_scorer("shift")  # plus half the region multi-scale PSNR (dB)
    assert default.name == "shift" and list(np.argsort(-default.score(frames, goal))) == [0, 1, 2, 3, 4]
    np.testing.assert_allclose(
        default.score(frames, goal), s + 0.5 * MultiScaleScorer(region=True).score(frames, goal), atol=1e-6
    )
    # another object moved outside the goal region changes nothing
    other = _textured_scene_with_box(40, 52)
    other[80:90, 100:110] = (30, 200, 30)
    assert abs(ShiftScorer(pixel_weight=0.0).score(np.stack([start, other])[None], goal)[0] - s[1]) < 0.6
    # the planner's hand masks are grown by 4 px; the scorer shrinks them back: a mask grown from one pixel hides
    # nothing
    grown = np.zeros((5, 96, 128), bool)
    grown[:, 36:45, 56:65] = True  # one pixel at (40, 60) grown by 4
    np.testing.assert_allclose(ShiftScorer(pixel_weight=0.0).score(frames, goal, grown), s, atol=0.6)
    # a hand hiding part of the moved box is not compared: the box is still found at its place
    region = RegionScorer(dilate=0).region(goal)
    seen = np.ones(region.shape, bool)
    seen[40:52, 60:66] = False
    np.testing.assert_allclose(region_shift(goal_img, start, region, seen), [0.0, 20.0], atol=0.3)
    # no goal region: falls back to multi-scale PSNR (the goal itself ranks first)
    still = Goal(image=start, start=start)
    assert np.argmax(ShiftScorer().score(frames, still)) == 2
    for bad, match in (({"max_shift": 0.9}, "max_shift"), ({"hand_erode": -1}, "hand_erode"),
                       ({"pixel_weight": -1.0}, "pixel_weight")):  # fmt: skip
        with pytest.raises(ValueError, match=match):
            ShiftScorer(**bad)
    with pytest.raises(ValueError, match="non-empty"):
        region_shift(start, start, np.zeros(region.shape, bool))
    with pytest.raises(ValueError, match="must match region"):
        region_shift(start[:32], start, region)
    # an odd search radius still tries no motion: a small unmoved box reads (0, 0)
    np.testing.assert_allclose(region_shift(start, start, region, None, max_shift=5), [0.0, 0.0], atol=0.01)


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


@pytest.mark.slow
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
