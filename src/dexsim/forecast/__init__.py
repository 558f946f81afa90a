"""Hand-action forecasting (HandWorld) and goal-directed trajectories (PAM): a flow-matching model of
what both hands and the head camera do next, its evaluation, and its use as planning proposals."""

from .data import ForecastBatch, ForecastClips
from .evaluate import NeighbourBank, constant_velocity, displacements, held_still
from .model import Forecast, HandForecaster
from .predict import FORECAST_CONFIGS, default_forecaster_dir, forecast, load_forecaster, retrieval_forecaster
from .state import STATE_DIM, decode_states, encode_states, forecast_keypoints

__all__ = [
    "FORECAST_CONFIGS", "STATE_DIM", "Forecast", "ForecastBatch", "ForecastClips", "HandForecaster", "NeighbourBank",
    "constant_velocity", "decode_states", "default_forecaster_dir", "displacements", "encode_states", "forecast",
    "forecast_keypoints", "held_still", "load_forecaster", "retrieval_forecaster",
]  # fmt: skip
