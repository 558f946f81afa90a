"""``dexsim evaluate`` and ``dexsim bench evaluate``: the flags and JSON keys scripts rely on, the
contact sheet and the scatter plot, sharding and --merge, one-line errors naming the bad value."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from dexsim.cli import main


def run(args: list[str], env: dict | None = None) -> str:
    result = CliRunner().invoke(main, args, catch_exceptions=False, env=env)
    assert result.exit_code == 0, result.output
    return result.output


def test_help_names_the_flags() -> None:
    text = run(["evaluate", "--help"])
    for flag in ("--task", "--policy", "--episodes", "--seed", "--world-model", "--action-mode", "--no-oracle",
                 "--json", "--merge"):  # fmt: skip
        assert flag in text
    text = run(["bench", "evaluate", "--help"])
    for flag in ("--task", "--episodes", "--seed", "--json"):
        assert flag in text


@pytest.mark.parametrize(("args", "needle"), [
    (["--episodes", "0"], "`episodes` must be a positive int, got 0"),
    (["--policy", "nope"], "unknown policy 'nope'"),
    (["--policy", "reference", "--action-mode", "delta"], "plays 'mano' actions, not 'delta'"),
])  # fmt: skip
def test_bad_values_print_one_line_and_exit_2(args: list[str], needle: str) -> None:
    r = CliRunner().invoke(main, ["evaluate", "--task", "push-red-box", "--world-model", "oracle", "--size", "32",
                                  *args])  # fmt: skip
    lines = [ln for ln in r.output.splitlines() if ln.strip() and "Warn" not in ln]
    assert r.exit_code == 2 and len(lines) == 1 and needle in lines[0], r.output


def test_evaluate_writes_the_report_and_the_contact_sheet(tmp_path) -> None:
    out = tmp_path / "ev.json"
    text = run(["evaluate", "--task", "push-red-box", "--policy", "wave", "--episodes", "2", "--seed", "3",
                "--world-model", "oracle", "--size", "32", "--json", str(out)])  # fmt: skip
    r = json.loads(out.read_text())
    assert "success 0.00" in text and "paired agreement 1.00" in text
    assert r["success_rate"] == 0.0 and r["ci95"][0] == 0.0 and 0.0 < r["ci95"][1] < 1.0
    assert r["oracle_success_rate"] == 0.0 and r["paired_agreement"] == 1.0
    assert [e["seed"] for e in r["episodes"]] == [300009, 300010]
    assert all({"success", "oracle_success"} <= set(e) for e in r["episodes"])
    sheet = np.asarray(Image.open(tmp_path / "ev.png"))
    assert sheet.shape[1] == 8 * 32 and sheet.shape[0] == 2 * (32 + 14)  # two episodes, eight frames each


def test_shards_merge_into_one_report(tmp_path) -> None:
    args = ["evaluate", "--task", "push-red-box", "--policy", "wave", "--episodes", "3", "--world-model", "oracle",
            "--size", "32", "--no-oracle", "--json", str(tmp_path / "ev.json")]  # fmt: skip
    for rank in (0, 1):
        run(args, env={"RANK": str(rank), "WORLD_SIZE": "2"})
    shards = sorted(tmp_path.glob("ev.shard*-of-2.json"))
    assert [p.name for p in shards] == ["ev.shard0-of-2.json", "ev.shard1-of-2.json"]
    first = json.loads(shards[0].read_text())
    assert len(first["episodes"]) == 2 and not first["oracle"] and "paired_agreement" not in first
    run(["evaluate", "--merge", *map(str, shards), "--json", str(tmp_path / "all.json")])
    merged = json.loads((tmp_path / "all.json").read_text())
    assert [e["episode"] for e in merged["episodes"]] == [0, 1, 2] and merged["num_episodes"] == 3
    r = CliRunner().invoke(main, ["evaluate", "--merge", str(shards[0])])
    assert r.exit_code == 2 and "missing" in r.output


def test_bench_evaluate_reports_agreement_and_draws_the_scatter(tmp_path) -> None:
    out = tmp_path / "bench.json"
    run(["bench", "evaluate", "--task", "push-red-box", "--policies", "reference,wave", "--episodes", "1",
         "--world-model", "oracle", "--size", "32", "--json", str(out)])  # fmt: skip
    r = json.loads(out.read_text())
    for key in ("pearson", "spearman", "mmrv", "paired_agreement", "kappa", "detector_agreement_on_oracle",
                "end_position_error_px", "seconds_per_episode", "policies", "per_task"):  # fmt: skip
        assert key in r
    assert [(p["task"], p["policy"]) for p in r["policies"]] == [("push-red-box", "reference"),
                                                                 ("push-red-box", "wave")]  # fmt: skip
    assert r["paired_agreement"] == 1.0 and r["mmrv"] == 0.0  # the oracle's verdicts are physics
    assert set(r["per_task"]) == {"push-red-box"}
    plot = np.asarray(Image.open(tmp_path / "bench.png"))
    assert plot.shape == (480, 480, 3) and (plot != 255).any()
    r = CliRunner().invoke(main, ["bench", "evaluate", "--task", "fly", "--world-model", "oracle"])
    assert r.exit_code == 2 and "'fly'" in r.output
