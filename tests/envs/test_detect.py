"""The frame-reading success detector: known object motions read back, head motion not taken for
object motion, hidden and held targets skipped, the drawer's opening, agreement with physics."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dexsim.envs.detect import SuccessDetector, hand_masks
from dexsim.envs.tasks import TASKS
from dexsim.hands.controllers import initial_state
from dexsim.physics.actions import camera_path, make_action
from dexsim.physics.build import scene_world
from dexsim.physics.oracle import Oracle

SIZE = 64


@pytest.fixture(scope="module")
def tabletop():
    return scene_world("tabletop", SIZE, SIZE)


def _camera(world, seed: int = 0) -> np.ndarray:
    return initial_state(world.table, world.start_camera, np.random.default_rng(seed)).camera


def _moved(world, cameras: np.ndarray, obj: int, shift: tuple[float, float, float]) -> np.ndarray:
    """The scene along ``cameras`` with object id ``obj`` translated by ``shift`` (m), no hands."""
    motions = torch.eye(4).repeat(len(cameras), world.num_movable, 1, 1)
    motions[:, obj - 1, :3, 3] = torch.tensor(shift)
    return world.render_scene(cameras, motions).rgb_uint8().numpy()


@pytest.mark.parametrize(("task", "shift"), [("push-red-box", (0.08, 0.0, 0.0)), ("push-red-box", (0.0, 0.04, 0.0)),
                                             ("push-yellow-block", (-0.06, 0.03, 0.0))])  # fmt: skip
def test_a_known_object_motion_is_read_back(tabletop, task: str, shift) -> None:
    det = SuccessDetector(TASKS[task], tabletop)
    cams = _camera(tabletop)[None]
    frames = _moved(tabletop, cams, det.target_id, shift)
    d = det.detect(frames, cams, np.zeros(frames.shape[:3], bool))
    assert d is not None and d.frame == 0
    true = math.hypot(shift[0], shift[1])
    assert d.measure == pytest.approx(true, abs=0.012)
    assert d.success == (true >= TASKS[task].min_move)
    # the end position: where the moved centre projects
    o = tabletop.spec.objects[det.target_id - 1]
    truth = det.project(np.array([o.position[0] + shift[0], o.position[1] + shift[1],
                                  tabletop.spec.table_height + o.height / 2]), cams[0])  # fmt: skip
    assert np.linalg.norm(d.position_px - truth) < 1.5


def test_head_motion_is_not_taken_for_object_motion(tabletop) -> None:
    """The static scene along a panning, stepping head: nothing moved, whatever the camera did."""
    det = SuccessDetector(TASKS["push-red-box"], tabletop)
    for motion in ("pan", "step_closer", "jitter"):
        cams = camera_path(tabletop.spec, motion, 8, np.random.default_rng(3))
        frames = tabletop.render_static(cams)
        d = det.detect(frames, cams, np.zeros(frames.shape[:3], bool), first_frame=8)
        assert d is not None and d.frame == 15
        assert d.measure < 0.01 and not d.success, motion


def test_frames_where_a_hand_hides_the_target_are_skipped(tabletop) -> None:
    det = SuccessDetector(TASKS["push-red-box"], tabletop)
    cams = np.repeat(_camera(tabletop)[None], 3, 0)
    frames = _moved(tabletop, cams, det.target_id, (0.09, 0.0, 0.0))
    hands = np.zeros(frames.shape[:3], bool)
    hands[1:] = True  # a hand over the whole view in the last two frames
    d = det.detect(frames, cams, hands, first_frame=5)
    assert d is not None and d.frame == 5 and d.success and d.measure == pytest.approx(0.09, abs=0.012)
    hands[0] = True
    assert det.detect(frames, cams, hands) is None  # nothing readable


def test_a_target_found_nowhere_is_not_read(tabletop) -> None:
    """Gone from view (or erased by a world model): the frame is skipped like a hidden one."""
    det = SuccessDetector(TASKS["push-red-box"], tabletop)
    cams = np.repeat(_camera(tabletop)[None], 2, 0)
    moved = _moved(tabletop, cams[:1], det.target_id, (0.07, 0.0, 0.0))
    gone = _moved(tabletop, cams[:1], det.target_id, (0.0, 0.0, -3.0))  # under the floor
    frames = np.concatenate((moved, gone))
    d = det.detect(frames, cams, np.zeros(frames.shape[:3], bool))
    assert d is not None and d.frame == 0 and d.measure == pytest.approx(0.07, abs=0.012)
    assert det.detect(frames[1:], cams[1:], np.zeros((1, SIZE, SIZE), bool)) is None


def test_a_target_held_up_by_a_hand_is_not_read(tabletop) -> None:
    """A can lifted 10 cm looks, from one view, like a can moved away: while a pinching hand holds it
    the frame is skipped and the last frame with the can on the table is read instead."""
    det = SuccessDetector(TASKS["pick-place-green-can"], tabletop)
    cams = np.repeat(_camera(tabletop)[None], 2, 0)
    lifted = _moved(tabletop, cams[:1], det.target_id, (0.0, 0.0, 0.1))
    frames = np.concatenate((tabletop.render_static(cams[:1]), lifted))
    o = tabletop.spec.objects[det.target_id - 1]
    centre = np.array([o.position[0], o.position[1], tabletop.spec.table_height + o.height / 2 + 0.1])
    joints = np.zeros((2, 2, 21, 3))
    joints[:, 1] = centre + [0.0, 0.0, 0.08]  # the right hand above the can, thumb and index on its sides
    joints[:, 1, 16] = centre - [o.size[0] + 0.009, 0.0, 0.0]
    joints[:, 1, 17] = centre + [o.size[0] + 0.009, 0.0, 0.0]
    visible = np.array([[False, True], [False, True]])
    no_hands = np.zeros(frames.shape[:3], bool)
    blind = det.detect(frames, cams, no_hands)
    assert blind is not None and blind.frame == 1 and blind.measure > 0.05  # the ambiguity the hand resolves
    d = det.detect(frames, cams, no_hands, joints=joints, visible=visible)
    assert d is not None and d.frame == 0 and d.measure < 0.01
    visible[:, 1] = False  # no hand holds it: read as it looks
    assert det.detect(frames, cams, no_hands, joints=joints, visible=visible).frame == 1


@pytest.mark.parametrize("opening", [0.0, 0.03, 0.1])
def test_the_drawer_opening_is_read(opening: float) -> None:
    world = scene_world("drawer", SIZE, SIZE)
    det = SuccessDetector(TASKS["open-drawer"], world)
    cams = _camera(world, 1)[None]
    motions = torch.eye(4).repeat(1, world.num_movable, 1, 1)
    motions[0, -1, 1, 3] = -opening
    frames = world.render_scene(cams, motions).rgb_uint8().numpy()
    d = det.detect(frames, cams, np.zeros(frames.shape[:3], bool))
    assert d is not None and d.measure == pytest.approx(opening, abs=0.01)
    assert d.success == (opening >= TASKS["open-drawer"].min_move)


@pytest.mark.parametrize(("task", "kind", "moved"), [("push-red-box", "push", True), ("push-red-box", "wave", False),
                                                     ("open-drawer", "open_drawer", True)])  # fmt: skip
def test_the_detector_agrees_with_physics_on_the_oracles_frames(task: str, kind: str, moved: bool) -> None:
    t = TASKS[task]
    world = scene_world(t.scene, SIZE, SIZE)
    action = make_action(world.spec, kind, np.random.default_rng(2), 16, target=t.target if kind == "push" else None,
                         camera="static")  # fmt: skip
    traj = action.trajectory
    traj.camera = np.repeat(_camera(world, 2)[None], 16, 0).astype(np.float32)  # the env's start view, held
    clip = Oracle(world.spec, SIZE, SIZE, world=world).run(traj, masks=False)
    truth = t.measure(clip.episode.object_poses, clip.episode.drawer, world.spec)
    assert (truth >= t.min_move) == moved  # the scripted action does what it says
    det = SuccessDetector(t, world)
    d = det.detect(clip.interaction, traj.camera, hand_masks(clip.prompt), joints=traj.joints, visible=traj.visible)
    assert d is not None and d.success == moved
    assert d.measure == pytest.approx(truth, abs=0.02)
    end = det.project(det.physics_point(clip.episode.object_poses, clip.episode.drawer, d.frame), traj.camera[d.frame])
    assert np.linalg.norm(d.position_px - end) < 2.0


def test_bad_inputs_are_refused(tabletop) -> None:
    det = SuccessDetector(TASKS["push-red-box"], tabletop)
    cams = _camera(tabletop)[None]
    frames = tabletop.render_static(cams)
    with pytest.raises(ValueError, match="frames"):
        det.detect(frames[:, :32], cams, np.zeros((1, 32, SIZE), bool))
    with pytest.raises(ValueError, match="cameras"):
        det.detect(frames, cams[:, :6], np.zeros(frames.shape[:3], bool))
    with pytest.raises(ValueError, match="joints"):
        det.detect(frames, cams, np.zeros(frames.shape[:3], bool), joints=np.zeros((1, 2, 21, 3)))
    with pytest.raises(ValueError, match="min_visible"):
        SuccessDetector(TASKS["push-red-box"], tabletop, min_visible=0.0)
