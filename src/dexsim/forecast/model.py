"""``HandForecaster``: a flow-matching model of what both hands and the head camera do next.

Conditions (each optional but the observed frame and its camera): the last observed egocentric frame,
the trajectory so far (up to ``history`` frames), a goal image of the scene as it should end, a text,
and (PAM-style) a target hand pose at the horizon. It samples K futures of ``horizon`` frames in the
state of :mod:`dexsim.forecast.state` (normalised by statistics of the training data, kept as buffers).

Images are read with their geometry: beside the RGB of the observed frame, the goal and their
difference, every pixel carries where its ray meets the working surface (:func:`plane_map`); a spatial
soft-argmax turns the convolutional features into keypoints with world coordinates on that surface,
which is what lets a small model put a hand on an object it sees. A transformer reads the keypoint,
text, target and history tokens with the noisy future and predicts the flow-matching velocity
(HandWorld's best forecasting objective). Config = constructor (diffusers ``ConfigMixin``).

With ``bridge=True`` the same flow also runs from *retrieved* futures instead of noise: trained on starts
taken from other training clips' futures (the nearest-neighbour bank's picks, plus a little noise), it learns
to carry a retrieved trajectory to the true one (``sample(source="retrieval", init=...)``); a learned
embedding of the source tells the network which of the two it is integrating from.

With ``bridge_residual=True`` as well, a window with a retrieved future forecasts the *correction* to it: the
retrieved future is a condition (one token per frame, added to the future's), and the flow runs from noise to
``(truth - retrieved) / residual_std``, where ``residual_std`` (a buffer, set from training windows by
:meth:`HandForecaster.set_residual_statistics`) is the spread of those corrections. The network's errors are then
measured in units of the corrections (about a centimetre), not of the whole motion (tens of centimetres).
"""

from __future__ import annotations

import hashlib
import itertools
import math
import re
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from .data import ForecastBatch
from .state import HAND_DIM, STATE_DIM, DecodedStates, decode_states, encode_states, plane_map

__all__ = ["Forecast", "HandForecaster", "text_buckets"]


def text_buckets(text: str, buckets: int) -> list[int]:
    """Words and word pairs of ``text`` hashed into ``[0, buckets)`` (a vocabulary-free bag of n-grams)."""
    words = re.findall(r"[a-z0-9]+", text.lower())
    grams = words + [f"{a} {b}" for a, b in itertools.pairwise(words)]
    return [int.from_bytes(hashlib.blake2s(g.encode(), digest_size=4).digest(), "little") % buckets for g in grams]


@dataclass
class Forecast:
    """K sampled futures of ``horizon`` frames: ``params`` (K, F, 2, 51) within the joint limits,
    ``visible`` (K, F, 2), ``camera`` (K, F, 7), ``joints`` (K, F, 2, 21, 3), and ``limit_violation``
    (K,) whether the raw sample left the joint limits (before clamping)."""

    params: np.ndarray
    visible: np.ndarray
    camera: np.ndarray
    joints: np.ndarray
    limit_violation: np.ndarray

    @classmethod
    def from_decoded(cls, d: DecodedStates) -> Forecast:
        return cls(d.params.numpy(), d.visible.numpy(), d.camera.numpy(), d.joints.numpy(),
                   d.limit_violation.any(-1).any(-1).numpy())  # fmt: skip

    def __len__(self) -> int:
        return self.params.shape[0]

    def mano_action(self, j: int = 0) -> dict[str, np.ndarray]:
        """Sample ``j`` as an env action in the ``mano`` mode (camera, params, visible per frame)."""
        return {"camera": self.camera[j].astype(np.float32), "params": self.params[j].astype(np.float32),
                "visible": self.visible[j].astype(np.int8)}  # fmt: skip

    def trajectories(self, t0: float = 0.0, fps: float = 8.0, K: np.ndarray | None = None,
                     width: int | None = None, height: int | None = None) -> list:  # fmt: skip
        """The K futures as :class:`~dexsim.hands.trajectory.HandTrajectory` objects from time ``t0``."""
        from ..hands.trajectory import HandTrajectory

        n = self.params.shape[1]
        t = t0 + np.arange(n) / fps
        return [HandTrajectory(t=t, joints=self.joints[k].astype(np.float32), visible=self.visible[k],
                               params=self.params[k].astype(np.float32), camera=self.camera[k].astype(np.float32),
                               K=K, width=width, height=height) for k in range(len(self))]  # fmt: skip


def _timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    half = dim // 2
    freqs = torch.exp(-math.log(1000.0) * torch.arange(half, dtype=torch.float32) / half)
    a = t.float()[:, None] * 1000.0 * freqs[None]
    return torch.cat((a.sin(), a.cos()), -1)


class _ImageEncoder(nn.Module):
    """(B, C, S, S) -> ``keypoints`` tokens + 1 global token (B, keypoints + 1, dim) via spatial soft-argmax."""

    def __init__(self, in_ch: int, dim: int, keypoints: int, width: int = 64) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(in_ch, width // 2, 5, 2, 2), nn.GroupNorm(8, width // 2), nn.SiLU(),
            nn.Conv2d(width // 2, width, 3, 2, 1), nn.GroupNorm(8, width), nn.SiLU(),
            nn.Conv2d(width, width, 3, 1, 1), nn.GroupNorm(8, width), nn.SiLU(),
            nn.Conv2d(width, width, 3, 1, 1), nn.SiLU(),
        )  # fmt: skip
        self.logits = nn.Conv2d(width, keypoints, 1)
        self.token = nn.Linear(width + 5, dim)
        self.glob = nn.Linear(width, dim)
        self.key_embed = nn.Parameter(torch.randn(keypoints, dim) * 0.02)

    def forward(self, x: torch.Tensor, plane: torch.Tensor) -> torch.Tensor:
        feats = self.net(x)  # (B, W, s, s)
        B, _, s, _ = feats.shape
        plane_s = F.adaptive_avg_pool2d(plane, s)  # (B, 3, s, s): x, y, hit
        ys, xs = torch.meshgrid(torch.linspace(-1, 1, s), torch.linspace(-1, 1, s), indexing="ij")
        geo = torch.cat((plane_s, xs.expand(B, 1, s, s), ys.expand(B, 1, s, s)), 1).flatten(2)  # (B, 5, s*s)
        w = self.logits(feats).flatten(2).softmax(-1)  # (B, Kp, s*s)
        at = torch.einsum("bkn,bcn->bkc", w, torch.cat((feats.flatten(2), geo), 1))  # (B, Kp, W + 5)
        tokens = self.token(at) + self.key_embed
        return torch.cat((tokens, self.glob(feats.mean((2, 3)))[:, None]), 1)


class HandForecaster(ModelMixin, ConfigMixin):
    """Flow-matching forecaster of both hands and the camera (see the module docstring).

    Args:
        horizon: future frames it predicts (at most; shorter horizons are a prefix).
        history: observed trajectory frames it reads (the newest ones).
        dim, heads, layers: the transformer.
        image_size: side the images are resized to; keypoints: soft-argmax keypoints.
        conv_width: channels of the image encoder.
        text_buckets: size of the hashed n-gram vocabulary.
        plane_z, plane_center, plane_scale: the working surface's height (m) and the normalisation of
            its world x, y in the image geometry channels.
        fps: frame rate of the trajectories it was trained on.
        bridge: also learn the flow from retrieved futures (see the module docstring).
        bridge_noise: std (normalised units) of the noise added to a retrieved start.
        bridge_residual: a bridge forecaster that, from a retrieved future, samples the correction to it (see the
            module docstring) instead of carrying it with noise.
    """

    config_name = "config.json"

    @register_to_config
    def __init__(self, horizon: int = 16, history: int = 8, dim: int = 128, heads: int = 4, layers: int = 3,
                 image_size: int = 64, keypoints: int = 16, conv_width: int = 64, text_buckets: int = 1024,
                 plane_z: float = 0.75, plane_center: tuple[float, float] = (0.0, 0.35), plane_scale: float = 0.4,
                 fps: float = 8.0, bridge: bool = False, bridge_noise: float = 0.1,
                 bridge_residual: bool = False) -> None:  # fmt: skip
        super().__init__()
        if not (isinstance(bridge_noise, (int, float)) and 0.0 <= bridge_noise <= 1.0):
            raise ValueError(f"`bridge_noise` must be a number in [0, 1], got {bridge_noise!r}")
        if bridge_residual and not bridge:
            raise ValueError("`bridge_residual=True` forecasts corrections to retrieved futures: it needs bridge=True")
        self.image = _ImageEncoder(13, dim, keypoints, conv_width)
        self.text = nn.EmbeddingBag(text_buckets, dim, mode="mean")
        self.null_text = nn.Parameter(torch.zeros(dim))
        self.target = nn.Linear(2 * HAND_DIM, dim)
        self.null_target = nn.Parameter(torch.zeros(dim))
        self.hist_in = nn.Linear(STATE_DIM, dim)
        self.hist_pos = nn.Parameter(torch.randn(history, dim) * 0.02)
        self.traj_in = nn.Linear(STATE_DIM, dim)
        self.traj_pos = nn.Parameter(torch.randn(horizon, dim) * 0.02)
        self.time = nn.Sequential(nn.Linear(dim, dim), nn.SiLU(), nn.Linear(dim, dim))
        self.type_embed = nn.Parameter(torch.randn(5, dim) * 0.02)  # image, text, target, history, future
        if bridge:  # 0: the flow starts from noise, 1: from a retrieved future
            self.source_embed = nn.Parameter(torch.zeros(2, dim))
        if bridge_residual:  # the retrieved future as a condition, one token per future frame (zero at start)
            self.anchor_in = nn.Linear(STATE_DIM, dim)
            nn.init.zeros_(self.anchor_in.weight)
            nn.init.zeros_(self.anchor_in.bias)
        layer = nn.TransformerEncoderLayer(dim, heads, 2 * dim, dropout=0.0, activation="gelu", batch_first=True,
                                           norm_first=True)  # fmt: skip
        self.transformer = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm_out = nn.LayerNorm(dim)
        self.out = nn.Linear(dim, STATE_DIM)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        self.register_buffer("state_mean", torch.zeros(STATE_DIM))
        self.register_buffer("state_std", torch.ones(STATE_DIM))
        if bridge_residual:
            self.register_buffer("residual_std", torch.ones(STATE_DIM))

    # -- normalisation ------------------------------------------------------------------------------------

    def set_statistics(self, states: torch.Tensor, min_std: float = 0.05) -> None:
        """Normalise by the mean and std (at least ``min_std``) of (N, STATE_DIM) training states."""
        self.state_mean.copy_(states.float().mean(0))
        self.state_std.copy_(states.float().std(0).clamp_min(min_std))

    def set_residual_statistics(self, residuals: torch.Tensor, min_fraction: float = 0.05) -> None:
        """Scale a residual forecaster's corrections by the std of (N, STATE_DIM) training residuals (future minus
        retrieved future), clamped to [``min_fraction``, 1] times the states' own std (a correction is never
        scaled as larger than the motion itself: a poor neighbour's hand may flicker in and out of view)."""
        if not self.config.bridge_residual:
            raise ValueError("only a forecaster with bridge_residual=True has residual statistics")
        if residuals.ndim != 2 or residuals.shape[0] < 2:
            raise ValueError(f"`residuals` must be (N >= 2, {STATE_DIM}), got {tuple(residuals.shape)}")
        std = residuals.float().std(0)
        self.residual_std.copy_(torch.minimum(torch.maximum(std, min_fraction * self.state_std), self.state_std))

    def _residual_frame(self, start: torch.Tensor, has_start: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Origin and scale (B, 1 or F, STATE_DIM) of each window's flow: its retrieved future and the residual
        std where it has one, the state mean and std where not."""
        m = has_start[:, None, None]
        return torch.where(m, start, self.state_mean), torch.where(m, self.residual_std, self.state_std)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.state_mean) / self.state_std

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.state_std + self.state_mean

    # -- conditions ---------------------------------------------------------------------------------------

    def _plane(self, camera: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
        c = self.config
        s = c.image_size
        p = plane_map(camera, K, s, s, c.plane_z)
        centre = torch.tensor(c.plane_center, dtype=p.dtype)[:, None, None]
        return torch.cat(((p[:, :2] - centre) / c.plane_scale * p[:, 2:], p[:, 2:]), 1)

    def encode_conditions(self, batch: ForecastBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """Condition tokens (B, N, dim) and their padding mask (B, N), true where a token is absent."""
        B = batch.image.shape[0]
        plane = self._plane(batch.camera, batch.K)
        goal = batch.goal * batch.has_goal[:, None, None, None]
        diff = (goal - batch.image) * batch.has_goal[:, None, None, None]
        flag = batch.has_goal.float()[:, None, None, None].expand(B, 1, *batch.image.shape[-2:])
        img = self.image(torch.cat((batch.image, goal, diff, plane, flag), 1), plane)
        img = img + self.type_embed[0]
        buckets = self.config.text_buckets
        has_text = torch.tensor([t is not None and bool(t.strip()) for t in batch.texts])
        ids = [text_buckets(t, buckets) if t else [0] for t in batch.texts]
        flat = torch.tensor([i for seq in ids for i in seq], dtype=torch.long)
        offsets = torch.tensor(np.cumsum([0] + [len(s) for s in ids[:-1]]), dtype=torch.long)
        txt = torch.where(has_text[:, None], self.text(flat, offsets), self.null_text)
        txt = (txt + self.type_embed[1])[:, None]
        tgt_state = encode_states(batch.target, batch.target_visible, torch.zeros(B, 7) + torch.tensor(
            [0, 0, 0, 1.0, 0, 0, 0]))[:, : 2 * HAND_DIM]  # fmt: skip
        tgt_state = (tgt_state - self.state_mean[: 2 * HAND_DIM]) / self.state_std[: 2 * HAND_DIM]
        tgt = torch.where(batch.has_target[:, None], self.target(tgt_state), self.null_target)
        tgt = (tgt + self.type_embed[2])[:, None]
        hist = self.normalize(encode_states(batch.history, batch.history_visible, batch.history_camera))
        hist = self.hist_in(hist) + self.hist_pos + self.type_embed[3]
        tokens = torch.cat((img, txt, tgt, hist), 1)
        absent = torch.cat((torch.zeros(B, img.shape[1] + 2, dtype=torch.bool), ~batch.history_mask), 1)
        return tokens, absent

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor, absent: torch.Tensor,
                source: torch.Tensor | None = None, anchor: torch.Tensor | None = None) -> torch.Tensor:  # fmt: skip
        """Velocity (B, F, STATE_DIM) of normalised futures ``x`` (B, F, STATE_DIM) at flow time ``t`` (B,);
        ``source`` (B,) long, a bridge model's start per item (0 noise, 1 retrieved; default 0); ``anchor`` (B, F,
        STATE_DIM), a residual forecaster's normalised retrieved futures (zero where a window has none)."""
        n = x.shape[1]
        temb = self.time(_timestep_embedding(t, self.config.dim))
        if self.config.bridge:
            src = torch.zeros(x.shape[0], dtype=torch.long) if source is None else source.long()
            temb = temb + self.source_embed[src]
        fut = self.traj_in(x) + self.traj_pos[:n] + self.type_embed[4] + temb[:, None]
        if anchor is not None:
            fut = fut + self.anchor_in(anchor)
        seq = torch.cat((cond, temb[:, None], fut), 1)
        pad = torch.cat((absent, torch.zeros(x.shape[0], 1 + n, dtype=torch.bool)), 1)
        h = self.transformer(seq, src_key_padding_mask=pad)
        return self.out(self.norm_out(h[:, -n:]))

    # -- training and sampling ----------------------------------------------------------------------------

    def loss(self, batch: ForecastBatch, generator: torch.Generator | None = None) -> torch.Tensor:
        """Flow-matching loss (rectified flow, logit-normal times) over the valid future frames."""
        raw = encode_states(batch.future, batch.future_visible, batch.future_camera)
        x1 = self.normalize(raw)
        B = x1.shape[0]
        x0 = torch.randn(x1.shape, generator=generator)
        source = anchor = None
        if self.config.bridge_residual and batch.start is not None:  # corrections to the retrieved futures
            source = batch.has_start.long()
            origin, scale = self._residual_frame(batch.start.float(), batch.has_start)
            x1 = (raw - origin) / scale
            anchor = self.normalize(batch.start.float()) * batch.has_start[:, None, None]
        elif self.config.bridge and batch.start is not None:  # retrieved starts where the batch has them
            source = batch.has_start.long()
            bridged = self.normalize(batch.start.float()) + self.config.bridge_noise * x0
            x0 = torch.where(batch.has_start[:, None, None], bridged, x0)
        t = torch.sigmoid(torch.randn(B, generator=generator))
        xt = (1 - t[:, None, None]) * x0 + t[:, None, None] * x1
        cond, absent = self.encode_conditions(batch)
        v = self(xt, t, cond, absent, source, anchor)
        err = ((v - (x1 - x0)) ** 2).mean(-1)  # (B, F)
        m = batch.future_mask.float()
        return (err * m).sum() / m.sum().clamp_min(1.0)

    @torch.no_grad()
    def sample(self, batch: ForecastBatch, k: int = 8, steps: int = 10, generator: torch.Generator | None = None,
               noise: torch.Tensor | None = None, init: torch.Tensor | None = None,
               strength: float = 1.0, source: str = "noise") -> torch.Tensor:  # fmt: skip
        """Euler integration of the flow from noise: (B, k, horizon, STATE_DIM) raw states. ``noise``
        (B, k, horizon, STATE_DIM) fixes the starting points (a planner's search space). ``init`` (B, k,
        horizon, STATE_DIM) raw states to refine (SDEdit): the flow starts at time ``1 - strength`` (rounded
        up to whole steps) from ``init`` mixed with the noise (``strength`` 1: from noise alone, 0: ``init``
        returned unchanged). ``source="retrieval"`` (a ``bridge`` model): the whole flow runs from ``init``
        (retrieved futures) plus ``bridge_noise`` times the noise instead (``strength`` unused); a ``bridge_residual``
        model samples corrections to ``init`` from the noise and returns ``init`` plus them."""
        if not 0.0 <= strength <= 1.0:
            raise ValueError(f"`strength` must lie in [0, 1], got {strength}")
        if source not in ("noise", "retrieval"):
            raise ValueError(f"`source` must be 'noise' or 'retrieval', got {source!r}")
        if source == "retrieval" and (not self.config.bridge or init is None):
            raise ValueError("`source='retrieval'` needs a bridge forecaster (trained with bridge=True) and `init`, "
                             f"the retrieved futures; this one has bridge={self.config.bridge}")  # fmt: skip
        cond, absent = self.encode_conditions(batch)
        B, H = cond.shape[0], self.config.horizon
        cond = cond.repeat_interleave(k, 0)
        absent = absent.repeat_interleave(k, 0)
        x = (noise.reshape(B * k, H, STATE_DIM).float() if noise is not None
             else torch.randn(B * k, H, STATE_DIM, generator=generator))  # fmt: skip
        first = 0
        src = torch.full((B * k,), int(source == "retrieval"), dtype=torch.long)
        if source == "retrieval" and self.config.bridge_residual:
            start = init.reshape(B * k, H, STATE_DIM).float()
            anchor = self.normalize(start)
            for i in range(steps):
                x = x + self(x, torch.full((B * k,), i / steps), cond, absent, src, anchor) / steps
            return (start + x * self.residual_std).reshape(B, k, H, STATE_DIM)
        if source == "retrieval":
            x = self.normalize(init.reshape(B * k, H, STATE_DIM).float()) + self.config.bridge_noise * x
        elif init is not None:  # the strength rounded to whole steps, so the flow restarts where it was mixed
            first = steps - math.ceil(strength * steps - 1e-9)
            t0 = first / steps
            x = (1 - t0) * x + t0 * self.normalize(init.reshape(B * k, H, STATE_DIM).float())
        for i in range(first, steps):
            t = torch.full((B * k,), i / steps)
            x = x + self(x, t, cond, absent, src) / steps
        return self.denormalize(x).reshape(B, k, H, STATE_DIM)

    @torch.no_grad()
    def forecast_batch(self, batch: ForecastBatch, k: int = 8, horizon: int | None = None, steps: int = 10,
                       generator: torch.Generator | None = None,
                       noise: torch.Tensor | None = None, init: torch.Tensor | None = None,
                       strength: float = 1.0, source: str = "noise") -> list[Forecast]:  # fmt: skip
        """Decoded forecasts, one :class:`Forecast` of ``k`` samples per window of ``batch`` (``init``,
        ``strength``, ``source``: see :meth:`sample`)."""
        horizon = horizon or self.config.horizon
        raw = self.sample(batch, k, steps, generator, noise, init, strength, source)[:, :, :horizon]
        return [Forecast.from_decoded(decode_states(r)) for r in raw]
