"""Hands (layer 1): the hand model, trajectories, inverse kinematics, importers, action prompts."""

from .model import PARAMS_DIM, HandModel, HandOutput, check_pose_limits, split_params
from .skeleton import FINGER_CHAINS, JOINT_NAMES, NUM_JOINTS, PARENTS, joint_limits, rest_joints

__all__ = [
    "FINGER_CHAINS",
    "JOINT_NAMES",
    "NUM_JOINTS",
    "PARAMS_DIM",
    "PARENTS",
    "HandModel",
    "HandOutput",
    "check_pose_limits",
    "joint_limits",
    "rest_joints",
    "split_params",
]
