"""Datasets that know their own recipe: the manifest, refused mixed recipes, repair of damaged clips,
`data check` reading every file, and pool workers that die with their parent."""

from __future__ import annotations

import importlib
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from dexsim.cli import main
from dexsim.data import DatagenConfig, Manifest, check_clip, check_dataset, claim_dataset, generate, read_manifest
from dexsim.data.dataset import RECIPE_FIELDS, recipe_differences, recipe_hash
from dexsim.data.generate import generate_clip

generate_module = importlib.import_module("dexsim.data.generate")  # `dexsim.data.generate` is the function
SMALL = dict(width=32, height=32, frames=4, density_scale=0.15)

recipes = st.fixed_dictionaries({
    "scene": st.sampled_from(["tabletop", "kitchen", "x"]), "seed": st.integers(-(2**40), 2**40),
    "split": st.sampled_from(["train", "heldout"]), "width": st.integers(1, 4096), "height": st.integers(1, 4096),
    "frames": st.integers(1, 1000), "fps": st.floats(0.1, 240.0), "density_scale": st.floats(1e-4, 10.0),
})  # fmt: skip


@given(recipes, st.integers(1, 10**7))
def test_manifest_round_trips_and_detects_edits(recipe: dict, clips: int) -> None:
    m = Manifest(recipe, clips, "0.1.0")
    back = Manifest.from_json(json.loads(json.dumps(m.to_json())))
    assert back == m and back.recipe_hash == m.recipe_hash == recipe_hash(recipe)
    edited = m.to_json()
    edited["recipe"]["frames"] += 1  # hand-edited without its hash
    with pytest.raises(ValueError, match="edited"):
        Manifest.from_json(edited)


@given(recipes, st.sampled_from(sorted(RECIPE_FIELDS)), st.data())
def test_recipe_hash_changes_with_every_field(recipe: dict, name: str, data: st.DataObject) -> None:
    other = data.draw(recipes.map(lambda r: r[name]).filter(lambda v: v != recipe[name]))
    changed = recipe | {name: other}
    assert recipe_hash(changed) != recipe_hash(recipe)
    assert recipe_differences(recipe, changed) == [f"{name} {recipe[name]!r} vs {other!r}"]


@pytest.mark.parametrize(("field", "value", "message"), [("fps", float("nan"), "`fps` must be a finite float"),
                                                         ("split", "test", "`split` must be one of"),
                                                         ("seed", "3", "`seed` must be an int")])  # fmt: skip
def test_bad_recipes_are_refused_naming_the_field(field: str, value: object, message: str) -> None:
    recipe = {"scene": "tabletop", "seed": 0, "split": "train", "width": 8, "height": 8, "frames": 2, "fps": 8.0,
              "density_scale": 0.3}  # fmt: skip
    with pytest.raises(ValueError, match=message):
        Manifest(recipe | {field: value}, 1)
    with pytest.raises(ValueError, match="`density_scale` must be a positive finite number, got -1"):
        DatagenConfig(out="x", density_scale=-1.0)


def test_same_recipe_grows_the_count_and_another_is_refused_before_any_work(tmp_path, monkeypatch) -> None:
    out = tmp_path / "d"
    assert claim_dataset(DatagenConfig(out=str(out), clips=2, seed=5, **SMALL)).clips == 2
    assert claim_dataset(DatagenConfig(out=str(out), clips=5, seed=5, workers=3, **SMALL)).clips == 5
    assert claim_dataset(DatagenConfig(out=str(out), clips=3, seed=5, **SMALL)).clips == 5  # never shrinks
    before = (out / "manifest.json").read_text()

    def no_work(*a: object) -> None:
        raise AssertionError("a refused run made a clip")

    monkeypatch.setattr(generate_module, "make_clip", no_work)
    with pytest.raises(ValueError, match=r"another recipe .*seed 5 vs 6, width 32 vs 64"):
        generate(DatagenConfig(out=str(out), clips=2, seed=6, **(SMALL | {"width": 64})), progress=False)
    r = CliRunner().invoke(main, ["datagen", "--out", str(out), "--clips", "2", "--seed", "6", "--width", "32",
                                  "--height", "32", "--frames", "4"])  # fmt: skip
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert r.exit_code == 2 and len(lines) == 1 and "seed 5 vs 6" in lines[0] and "density_scale" in lines[0]
    assert (out / "manifest.json").read_text() == before and sorted(p.name for p in out.iterdir()) == ["manifest.json"]


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> Path:
    """Two generated clips with their manifest (copied by the tests that damage them)."""
    root = tmp_path_factory.mktemp("made") / "d"
    generate(DatagenConfig(out=str(root), clips=2, seed=7, **SMALL), progress=False)
    return root


def _copy(made: Path, dest: Path) -> Path:
    shutil.copytree(made, dest)
    return dest


def test_folder_without_manifest_is_adopted_only_when_its_clips_prove_the_recipe(made: Path, tmp_path: Path) -> None:
    old = _copy(made, tmp_path / "old")
    (old / "manifest.json").unlink()
    for p in (old / "meta").glob("*.json"):  # as an older dexsim wrote them: no seed, hash or file records
        meta = json.loads(p.read_text())
        p.write_text(json.dumps({k: v for k, v in meta.items() if k not in ("seed", "recipe_hash", "files")}))
    assert all(check_clip(old, f"train_00000{i}", decode=False).ok for i in range(2))  # decoded instead
    with pytest.raises(ValueError, match=r"no manifest.json and its clip train_000000 .*clip_seed"):
        claim_dataset(DatagenConfig(out=str(old), clips=2, seed=8, **SMALL))
    with pytest.raises(ValueError, match="frames 4 vs 5"):
        claim_dataset(DatagenConfig(out=str(old), clips=2, seed=7, **(SMALL | {"frames": 5})))
    assert not (old / "manifest.json").exists()
    assert claim_dataset(DatagenConfig(out=str(old), clips=1, seed=7, **SMALL)).clips == 2  # the clips it holds
    assert read_manifest(old).recipe["seed"] == 7 and check_dataset(old)["ok"]
    dwm = tmp_path / "dwm"
    (dwm / "videos").mkdir(parents=True)
    (dwm / "videos" / "00013.mp4").write_bytes(b"")
    with pytest.raises(ValueError, match=r"not train clips .*00013"):
        claim_dataset(DatagenConfig(out=str(dwm), clips=1, **SMALL))


def test_check_reads_every_file_and_holds_clips_to_the_manifest(made: Path, tmp_path: Path) -> None:
    assert check_dataset(made)["ok"] and check_dataset(made)["manifest"]["recipe"]["seed"] == 7
    d = _copy(made, tmp_path / "d")
    for p in (d / "meta").glob("*.json"):  # no records: the contents themselves must be parsed
        meta = json.loads(p.read_text())
        del meta["files"]
        p.write_text(json.dumps(meta))
    (d / "masks/train_000000.npz").write_bytes(b"PK\x03\x04 not a zip")
    (d / "prompts/train_000001.txt").write_text("  \n")
    meta = json.loads((d / "meta/train_000001.json").read_text())
    (d / "meta/train_000001.json").write_text(json.dumps(meta | {"clip_seed": 1}))
    json_manifest = json.loads((d / "manifest.json").read_text())
    (d / "manifest.json").write_text(json.dumps(json_manifest | {"clips": 3}))
    errors = " | ".join(check_dataset(d)["errors"])
    assert "masks/train_000000.npz cannot be read" in errors
    assert "prompts/train_000001.txt is empty" in errors
    assert f"disagrees with manifest.json (clip vs manifest): clip_seed 1 vs {meta['clip_seed']}" in errors
    assert "1 of the 3 clips of manifest.json are not there" in errors
    (d / "meta/train_000000.json").write_text("{ broken")
    assert "meta/train_000000.json cannot be read" in " ".join(check_dataset(d)["errors"])


def test_damaged_clips_are_regenerated_and_temporaries_removed(made: Path, tmp_path: Path) -> None:
    d = _copy(made, tmp_path / "d")
    cfg = DatagenConfig(out=str(d), clips=2, seed=7, **SMALL)
    good = np.load(d / "actions/train_000001.npz")["joints"]
    video = (d / "videos_static/train_000000.mp4").read_bytes()
    (d / "videos_static/train_000000.mp4").write_bytes(video[: len(video) // 2])  # truncated
    (d / "meta/train_000001.json").write_text('{"id": "train_000001", ')  # broken JSON
    (d / "actions/train_000001.npz").unlink()
    stale = d / "videos" / ".train_000000.ab12_x9z.mp4"  # what a kill inside atomic_path leaves
    stale.write_bytes(b"half a video")
    report = check_dataset(d)
    assert not report["ok"] and report["complete"] == 0 and report["temporaries"] == 1
    assert "videos_static/train_000000.mp4 changed since it was written" in " ".join(report["errors"])
    r = generate(cfg, progress=False)
    assert r["generated"] == 2 and r["clips"] == 2 and r["temporaries_removed"] == 1 and not stale.exists()
    assert np.array_equal(np.load(d / "actions/train_000001.npz")["joints"], good)
    assert check_dataset(d)["ok"] and generate(cfg, progress=False)["generated"] == 0
    assert not generate_clip(cfg, 0)  # sound clips are skipped


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds the workers in /proc")
def test_pool_workers_die_with_their_parent(tmp_path: Path) -> None:
    args = [sys.executable, "-m", "dexsim", "datagen", "--out", str(tmp_path), "--clips", "40", "--workers", "2",
            "--width", "32", "--height", "32", "--frames", "4"]  # fmt: skip
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 300
        while len(list((tmp_path / "meta").glob("*.json"))) < 2 and time.time() < deadline and proc.poll() is None:
            time.sleep(0.2)
        workers = _children(proc.pid)
        assert proc.poll() is None and len(workers) == 2, "datagen ended or never started its workers"
    finally:
        proc.kill()
        proc.wait()
    deadline = time.time() + 5
    while any(_alive(p) for p in workers) and time.time() < deadline:
        time.sleep(0.1)
    assert not any(_alive(p) for p in workers)
    clips = sorted(p.name for p in (tmp_path / "meta").glob("*.json"))
    time.sleep(3)
    assert sorted(p.name for p in (tmp_path / "meta").glob("*.json")) == clips and len(clips) < 40


def _children(pid: int) -> list[int]:
    """The spawn-pool workers of ``pid`` (from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            cmd = (stat.parent / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue
        if ppid == pid and b"spawn_main" in cmd:
            found.append(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def test_chosen_action_kinds_are_drawn_and_recorded(tmp_path: Path) -> None:
    cfg = DatagenConfig(out=str(tmp_path / "d"), scene="drawer", clips=3, kinds=("drawer",), **SMALL)
    default = DatagenConfig(out="x", scene="drawer", **SMALL)
    assert "kinds" not in default.recipe() and cfg.recipe()["kinds"] == ["drawer"]
    assert recipe_hash(cfg.recipe()) != recipe_hash(default.recipe())
    generate(cfg, progress=False)
    actions = {json.loads(p.read_text())["action"] for p in (tmp_path / "d" / "meta").glob("*.json")}
    assert actions <= {"open_drawer", "close_drawer"} and actions
    assert read_manifest(tmp_path / "d").recipe["kinds"] == ["drawer"]
    with pytest.raises(ValueError, match="no drawer"):
        DatagenConfig(out="x", scene="tabletop", kinds=("open_drawer",))
    with pytest.raises(ValueError, match="`kinds` must be"):
        DatagenConfig(out="x", kinds=("juggle",))
