"""``dexsim bench keyboard``: a keyboard session replayed without a browser, generated vs physics target readings."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from dexsim.cli import main
from dexsim.play.replay import parse_keys, replay_keys, replay_sheet


def test_keys_are_parsed_and_bad_ones_named() -> None:
    assert parse_keys("T J J,O O,") == [["T", "J", "J"], ["O", "O"], []]
    with pytest.raises(ValueError, match=r"\['Q'\]"):
        parse_keys("T Q,O")
    with pytest.raises(ValueError, match="physics itself"):
        replay_keys(world_model="oracle")
    r = CliRunner().invoke(main, ["bench", "keyboard", "--keys", "T Q", "--seeds", "0"])
    assert r.exit_code == 2 and "'Q'" in r.output and "Traceback" not in r.output


@pytest.mark.slow
def test_a_keyboard_push_moves_the_box_in_physics_and_is_read_in_both(tmp_path) -> None:
    """The default keys push the red box in physics (the detector sees it move 10 px or more); every chunk is read
    in both videos on the same frame, and the errors are the distances between the readings."""
    r = replay_keys("push-red-box", "default", "T J J,O O,L L,L L", seed=0, progress=False)
    assert len(r["chunks"]) == 4 and r["physics_moved_px"] >= 10.0
    for c in r["chunks"]:
        assert c["generated"] is not None and c["physics"] is not None
        d = np.linalg.norm(np.subtract(c["generated"]["position_px"], c["physics"]["position_px"]))
        assert c["error_px"] == pytest.approx(d)
    assert r["median_error_px"] == pytest.approx(float(np.median([c["error_px"] for c in r["chunks"]])))
    sheet = replay_sheet([r], tmp_path / "k.png")
    from PIL import Image

    assert Image.open(sheet).size == (4 * 128, 4 * 128)
