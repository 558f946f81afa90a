"""World models checked at the door: configs, saved folders (values, checksums), call arguments."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from dexsim.worldmodel import DiffusionWorldModel, compact_pipeline, load
from dexsim.worldmodel.compact import CompactVideoDenoiser
from dexsim.worldmodel.models import default_model_dir, verify_checksums


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    path = tmp_path_factory.mktemp("m") / "model"
    DiffusionWorldModel(compact_pipeline("tiny"), 16, 16, window=5, context_frames=1, num_steps=2).save_pretrained(path)
    return path


def test_the_shipped_default_carries_checksums_that_hold() -> None:
    assert verify_checksums(default_model_dir())


def test_a_changed_weight_file_is_refused_naming_it(saved, tmp_path) -> None:
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(saved, bad)
    weights = bad / "transformer" / "diffusion_pytorch_model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"transformer/diffusion_pytorch_model\.safetensors does not match"):
        load(bad)
    (bad / "transformer" / "config.json").unlink()
    with pytest.raises(ValueError, match=r"config\.json is missing"):
        load(bad)


@pytest.mark.parametrize(("key", "value", "message"), [("width", 100, "multiples of 8"),
                                                      ("num_steps", 0, "`num_steps` must be an int >= 1"),
                                                      ("context_frames", 5, "must be below `window`"),
                                                      ("fps", -8, "`fps` must be")])  # fmt: skip
def test_bad_frame_settings_are_refused_at_load(saved, tmp_path, key: str, value: object, message: str) -> None:
    import shutil

    bad = tmp_path / key
    shutil.copytree(saved, bad)
    (bad / "SHA256SUMS").unlink()  # a hand-edited folder without checksums is checked all the same
    meta = json.loads((bad / "dexsim_world_model.json").read_text())
    meta[key] = value
    (bad / "dexsim_world_model.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=message):
        load(bad)


def test_num_steps_zero_names_num_steps(saved) -> None:
    wm = load(saved)
    video = np.zeros((1, 5, 16, 16, 3), np.uint8)
    for bad in (0, -1, 1.5):
        with pytest.raises(ValueError, match="`num_steps` must be a positive int"):
            wm.generate(video, video, num_steps=bad)


def test_absurd_configs_are_refused_before_allocating() -> None:
    t0 = time.perf_counter()
    with pytest.raises(ValueError, match="parameters"):
        CompactVideoDenoiser(block_channels=(4096, 8192, 16384))
    assert time.perf_counter() - t0 < 1.0
    with pytest.raises(ValueError, match="multiples of 8"):
        CompactVideoDenoiser(block_channels=(12, 16, 16))
    with pytest.raises(ValueError, match="`fold`"):
        CompactVideoDenoiser(fold=0)
