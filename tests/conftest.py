"""Shared fixtures: the real reference data folder and the GPU marker."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from hypothesis import settings

# CI runs the property tests with a fixed seed (reproducible verdicts); locally they explore anew each run
settings.register_profile("ci", derandomize=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

# float32 world models in every test, whatever the CPU (bf16 autocast is tested where it is asked for by name)
os.environ.setdefault("DEXSIM_PRECISION", "fp32")

SHARED_DATA = Path(os.environ.get("DEXSIM_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def shared_file(relative: str) -> Path:
    """A file of the read-only reference data, or skip the test with the reason."""
    path = SHARED_DATA / relative
    if not path.exists():
        pytest.skip(f"reference data {path} is absent (set DEXSIM_SHARED_DATA to the shared/data folder)")
    return path


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)
