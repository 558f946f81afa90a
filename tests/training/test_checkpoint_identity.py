"""Checkpoints that know their run: the identity hash, foreign checkpoints refused, --no-resume moving the
previous run aside, pruning only this run's checkpoints, interrupted saves ignored and cleaned."""

from __future__ import annotations

import json
import shutil
from dataclasses import fields, replace
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dexsim.data import DatagenConfig, Manifest, generate
from dexsim.data.dataset import write_manifest
from dexsim.training import TrainConfig, preset, train
from dexsim.training.presets import RUN_INDEPENDENT
from dexsim.training.trainer import checkpoints, latest_checkpoint, run_identity

BASE = preset("compact-from-scratch", data=["/nonexistent/data"], out="/nonexistent/out")
text = st.text("abcxyz/_-.", min_size=1, max_size=12)
#: a strategy for every field that decides the weights (the test fails when a field is added without one)
CHANGES = {
    "preset": st.sampled_from(["lora-cogvideox-fun", "something-else"]), "data": st.lists(text, min_size=1),
    "batch_size": st.integers(1, 64), "grad_accum": st.integers(1, 8), "lr": st.floats(1e-7, 1.0),
    "weight_decay": st.floats(0.0, 1.0), "betas": st.tuples(st.floats(0.0, 0.999), st.floats(0.0, 0.9999)),
    "lr_scheduler": st.sampled_from(["constant", "linear", "cosine_with_restarts"]),
    "warmup_steps": st.integers(0, 999), "max_grad_norm": st.floats(0.0, 10.0), "window": st.integers(2, 33),
    "context_max": st.integers(0, 8), "context_prob": st.floats(0.0, 1.0), "width": st.integers(16, 512),
    "height": st.integers(16, 512), "ema_decay": st.floats(0.0, 1.0), "gradient_checkpointing": st.booleans(),
    "mixed_precision": st.sampled_from(["no", "bf16", "fp16"]), "seed": st.integers(-(2**31), 2**31),
    "model": text, "lora_rank": st.integers(1, 256), "lora_alpha": st.integers(1, 256),
    "trainable_patterns": st.lists(text, max_size=3), "grow_data": st.booleans(), "init_from": text,
    "loss_pyramid": st.integers(2, 6), "flow_loss": st.floats(0.001, 10.0),
    "change_weight": st.floats(0.001, 100.0), "forecast_windows": st.just("observed"),
    "motion_as": st.just("known"), "occlusion_loss": st.floats(0.001, 10.0), "occlusion_prior": st.floats(-20, -0.001),
    "occlusion_gate": st.just(True), "occlusion_balanced": st.just(True), "context_flow": st.just(True),
}  # fmt: skip
#: fields that only some presets take: their changes are drawn on a base of that preset
BASES = {"occlusion_loss": preset("motion-flow", data=["/nonexistent/data"], out="/nonexistent/out"),
         "occlusion_balanced": preset("motion-flow", data=["/nonexistent/data"], out="/nonexistent/out",
                                      occlusion_loss=1.0),
         "context_flow": preset("motion-flow", data=["/nonexistent/data"], out="/nonexistent/out")}  # fmt: skip


def test_every_field_is_either_identity_or_independent() -> None:
    assert set(CHANGES) == {f.name for f in fields(TrainConfig)} - RUN_INDEPENDENT
    # fields added later are absent at their old value: a run started before them keeps its identity
    from dexsim.training.presets import DEFAULT_OMITTED

    assert not set(DEFAULT_OMITTED) & set(BASE.recipe())
    assert {"init_from", "loss_pyramid", "flow_loss", "change_weight", "forecast_windows", "motion_as"} <= set(
        preset("compact-from-scratch", data=["d"], out="o", init_from="m", loss_pyramid=2, flow_loss=0.01,
               change_weight=4.0, forecast_windows="observed", motion_as="known").recipe())  # fmt: skip
    assert {"steps", "checkpoint_every", "validate_every", "out"} <= RUN_INDEPENDENT


@given(st.sampled_from(sorted(CHANGES)), st.data())
def test_identity_changes_with_every_recipe_field(name: str, data: st.DataObject) -> None:
    base = BASES.get(name, BASE)
    value = data.draw(CHANGES[name].filter(lambda v: v != getattr(base, name)), label=name)
    run, recipe = run_identity(replace(base, **{name: value}))
    base_run, base_recipe = run_identity(base)
    assert run != base_run and recipe[name] != base_recipe.get(name)


@given(st.integers(1, 10**6), st.integers(1, 10**6), st.integers(1, 10**6), st.integers(0, 64), st.integers(1, 50),
       st.none() | text, text)  # fmt: skip
def test_identity_ignores_length_cadence_and_where(steps, every, validate, threads, eval_steps, val, out) -> None:
    other = replace(BASE, steps=steps, checkpoint_every=every, validate_every=validate, threads=threads,
                    num_steps_eval=eval_steps, validation_data=val, out=out)  # fmt: skip
    assert run_identity(other) == run_identity(BASE)


def test_data_identity_is_the_dataset_recipe_not_its_place_or_size(tmp_path: Path) -> None:
    recipe = {"scene": "tabletop", "seed": 0, "split": "train", "width": 32, "height": 32, "frames": 8, "fps": 8.0,
              "density_scale": 0.2}  # fmt: skip
    for name, clips, seed in (("a", 3, 0), ("moved", 30, 0), ("other", 3, 1)):
        write_manifest(tmp_path / name, Manifest(recipe | {"seed": seed}, clips))
    ident = {n: run_identity(replace(BASE, data=[str(tmp_path / n)]))[0] for n in ("a", "moved", "other", "none")}
    assert ident["a"] == ident["moved"] and len({ident["a"], ident["other"], ident["none"]}) == 3


def test_foreign_and_unidentified_checkpoints_are_refused_before_any_work(tmp_path: Path) -> None:
    cfg = replace(BASE, out=str(tmp_path / "out"), lr=1e-3)
    folder = tmp_path / "out" / "checkpoints" / "step-0000004"
    folder.mkdir(parents=True)
    _, recipe = run_identity(cfg)
    other = recipe | {"lr": 4e-4}
    (folder / "state.json").write_text(json.dumps({"step": 4, "run": "0123456789abcdef", "recipe": other}))
    with pytest.raises(ValueError, match=r"belongs to another run \(run 0123456789abcdef, differing in lr 0.0004 vs "
                                         r"0.001 .*--no-resume"):  # fmt: skip
        train(cfg, progress=False)
    (folder / "state.json").write_text(json.dumps({"step": 4}))  # an older dexsim's checkpoint
    with pytest.raises(ValueError, match="no readable run identity"):
        train(cfg, progress=False)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["checkpoints"]  # nothing written


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data") / "clips"
    generate(DatagenConfig(out=str(root), clips=2, width=32, height=32, frames=6, density_scale=0.2), progress=False)
    return root


def _cfg(dataset: Path, out: Path, **kw) -> TrainConfig:
    args = {"steps": 4, "batch_size": 2, "model": "tiny", "width": 32, "height": 32, "window": 5,
            "checkpoint_every": 1, "validate_every": 100, "warmup_steps": 1} | kw  # fmt: skip
    return preset("compact-from-scratch", data=[str(dataset)], out=str(out), **args)


@pytest.mark.slow
def test_pruning_spares_other_folders_and_a_stale_tmp_is_ignored(dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    train(_cfg(dataset, out), progress=False, stop_after=2)
    ck = out / "checkpoints"
    shutil.copytree(ck / "step-0000002", ck / "step-0000020-best")  # a user's copy, of this very run
    (ck / "notes").mkdir()
    stale = ck / "step-0000003.tmp"  # a save killed after its state.json
    shutil.copytree(ck / "step-0000002", stale)
    (stale / "trainable.safetensors").write_bytes(b"half")
    assert latest_checkpoint(out) == ck / "step-0000002"
    r = train(_cfg(dataset, out), progress=False)
    assert r["finished"] and r["step"] == 4 and r["interrupted_saves_removed"] == 1 and not stale.exists()
    assert sorted(p.name for p in ck.iterdir()) == ["notes", "step-0000003", "step-0000004", "step-0000020-best"]
    # more steps continue the same run
    assert train(_cfg(dataset, out, steps=5, checkpoint_every=5), progress=False)["step"] == 5
    assert [s for s, _ in checkpoints(out)] == [4, 5]


@pytest.mark.slow
def test_no_resume_moves_the_previous_run_aside(dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    first = train(_cfg(dataset, out, steps=2), progress=False)
    second = _cfg(dataset, out, steps=3, lr=1e-3)
    with pytest.raises(ValueError, match="another run"):
        train(second, progress=False)
    r = train(second, resume=False, progress=False, stop_after=1)  # then "killed"
    moved = Path(r["superseded"])
    assert moved.parent == out / "superseded" and (moved / "model").is_dir() and (moved / "log.jsonl").is_file()
    assert [s for s, _ in checkpoints(moved)] == [1, 2] and not (out / "model").exists()
    assert [s for s, _ in checkpoints(out, r["run"])] == [1] and r["run"] != first["run"]
    resumed = train(second, progress=False)  # resumes its own step 1, not the other run's step 2
    assert resumed["finished"] and resumed["run"] == r["run"] and (out / "model").is_dir()
    log = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]
    assert [x["step"] for x in log if "loss" in x] == [3]
