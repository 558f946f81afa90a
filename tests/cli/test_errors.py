"""Expected errors: one line, exit code 2, checked before the work; ``--debug`` shows the traceback."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from dexsim._io import check_output_path
from dexsim.cli import main


def _boom_command(calls: list[int]) -> click.Command:
    @click.command("boom")
    @click.option("--kind", default="value")
    def boom(kind: str) -> None:
        calls.append(1)
        if kind == "value":
            raise ValueError("`width` must be a positive int, got -3")
        if kind == "file":
            raise FileNotFoundError("no such scene: room.ply")
        raise KeyError("a bug, not a user error")

    return boom


@pytest.mark.parametrize(("kind", "message"), [("value", "`width` must be a positive int, got -3"),
                                               ("file", "no such scene: room.ply")])  # fmt: skip
def test_expected_errors_print_one_line_and_exit_2(monkeypatch, kind: str, message: str) -> None:
    calls: list[int] = []
    monkeypatch.setitem(main.commands, "boom", _boom_command(calls))
    r = CliRunner().invoke(main, ["boom", "--kind", kind])
    assert r.exit_code == 2 and calls == [1]
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert lines == [f"dexsim: error: {message}"]
    assert "Traceback" not in r.output


def test_debug_shows_the_traceback_and_bugs_are_not_hidden(monkeypatch) -> None:
    monkeypatch.setitem(main.commands, "boom", _boom_command([]))
    r = CliRunner().invoke(main, ["--debug", "boom"])
    assert isinstance(r.exception, ValueError) and r.exit_code == 1
    r = CliRunner().invoke(main, ["boom", "--kind", "bug"])  # a bug keeps its traceback without --debug
    assert isinstance(r.exception, KeyError)


def test_output_paths_are_checked_before_any_work(tmp_path) -> None:
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    runner = CliRunner()
    r = runner.invoke(main, ["bench", "prompts", "--width", "16", "--height", "16", "--frames", "2",
                             "--json", str(a_file / "out.json")])  # fmt: skip
    assert r.exit_code == 2 and "is a file, not a folder" in r.output and "wrote" not in r.output
    assert len([ln for ln in r.output.splitlines() if ln.strip()]) == 1
    r = runner.invoke(main, ["render", "--scene", str(a_file), "--out", str(tmp_path / "x.png")])
    assert r.exit_code == 2 and "must end in .mp4" in r.output
    r = runner.invoke(main, ["datagen", "--out", str(a_file), "--clips", "1"])
    assert r.exit_code == 2 and "must be a folder, but it is a file" in r.output
    assert not (tmp_path / "x.png").exists()


def test_check_output_path_rules(tmp_path) -> None:
    assert (
        check_output_path(tmp_path / "new" / "deeper" / "r.json", (".json",)) == tmp_path / "new" / "deeper" / "r.json"
    )
    with pytest.raises(ValueError, match="is a folder"):
        check_output_path(tmp_path, (".json",))
    with pytest.raises(ValueError, match=r"must end in \.json"):
        check_output_path(tmp_path / "r.txt", (".json",))
    (tmp_path / "f").write_text("")
    with pytest.raises(ValueError, match="must be a folder"):
        check_output_path(tmp_path / "f", directory=True)
    assert check_output_path(tmp_path / "d", directory=True) == tmp_path / "d"
