"""``dexsim play``: drive the hands in a browser and watch the world respond; Rerun recordings of episodes."""

from .session import KEYS, PlaySession, StepView

__all__ = ["KEYS", "PlaySession", "StepView"]
