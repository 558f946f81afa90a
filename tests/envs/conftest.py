"""Shared fixtures of the env tests."""

from __future__ import annotations

import torch

from dexsim.worldmodel import DiffusionWorldModel, compact_pipeline


def noisy_tiny_model(size: int = 32, num_steps: int = 1) -> DiffusionWorldModel:
    """A tiny compact model whose output depends on its noise (every weight random, seed 1)."""
    pipe = compact_pipeline("tiny")
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in pipe.transformer.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.05)
    return DiffusionWorldModel(pipe, size, size, window=5, context_frames=1, num_steps=num_steps)
