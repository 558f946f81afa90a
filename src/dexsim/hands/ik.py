"""Inverse kinematics: MANO-style parameters from 3D keypoints (batched, smooth, gap tolerant).

The fit minimises, over all frames at once,

    mean over valid joints |J(params) - target|^2
    + smooth * sum_t |pose_t - pose_(t-1)|^2          (consecutive frames of the batch)
    + limits * (distance outside the human joint limits)^2
    + prior * |hand_pose|^2,

starting from a Kabsch alignment of the palm (wrist + four knuckles) for the global
orientation and translation, with Adam then L-BFGS. Missing joints (``valid`` false) are simply
left out of the data term, so a thumb CMC that a tracker does not provide is filled by the model.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .._validate import tensor_arg
from ..geometry.rotations import matrix_to_axis_angle
from .model import _MIRROR_AA, HandModel, Side, check_pose_limits
from .skeleton import ANATOMICAL_FRAMES, joint_limits

__all__ = ["IKResult", "fit_hand", "kabsch"]

_PALM = [0, 1, 4, 7, 10]


@dataclass
class IKResult:
    """``params`` (N, 51), ``betas`` (10,), fitted ``joints`` (N, 21, 3), per-frame mean error
    over valid joints ``error`` (N,) in metres (NaN for frames with no valid joint)."""

    params: torch.Tensor
    betas: torch.Tensor
    joints: torch.Tensor
    error: torch.Tensor


def kabsch(src: torch.Tensor, dst: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Rotations (N, 3, 3) minimising sum_i w_i |R (src_i - mean_src) - (dst_i - mean_dst)|^2.

    ``src``, ``dst``: (N, P, 3); ``weights``: (N, P). Frames with fewer than 3 weighted points get I.
    """
    w = weights / weights.sum(-1, keepdim=True).clamp_min(1e-12)
    cs = (w[..., None] * src).sum(-2, keepdim=True)
    cd = (w[..., None] * dst).sum(-2, keepdim=True)
    H = ((src - cs) * w[..., None]).transpose(-1, -2) @ (dst - cd)
    U, _, Vt = torch.linalg.svd(H)
    d = torch.sign(torch.det(Vt.transpose(-1, -2) @ U.transpose(-1, -2)))
    D = torch.diag_embed(torch.stack((torch.ones_like(d), torch.ones_like(d), d), -1))
    R = Vt.transpose(-1, -2) @ D @ U.transpose(-1, -2)
    enough = (weights > 0).sum(-1) >= 3
    eye = torch.eye(3, dtype=R.dtype).expand_as(R)
    return torch.where(enough[:, None, None], R, eye)


def _limit_violation(hand_pose: torch.Tensor, side: Side) -> torch.Tensor:
    aa = hand_pose.reshape(*hand_pose.shape[:-1], 15, 3)
    if side == "left":
        aa = aa * _MIRROR_AA.to(aa)
    comp = torch.einsum("jab,...ja->...jb", ANATOMICAL_FRAMES[1:].to(aa), aa)
    lim = joint_limits(aa.dtype)[1:]
    return torch.relu(comp - lim[..., 1]) + torch.relu(lim[..., 0] - comp)


def fit_hand(
    target: torch.Tensor,
    side: Side,
    valid: torch.Tensor | None = None,
    model: HandModel | None = None,
    betas: torch.Tensor | None = None,
    fit_shape: bool = False,
    smooth: float = 1e-3,
    limits: float = 1.0,
    prior: float = 1e-5,
    adam_steps: int = 300,
    lbfgs_steps: int = 60,
) -> IKResult:
    """Fit one hand's parameters to keypoints.

    Args:
        target: (N, 21, 3) keypoints in the DESIGN.md joint order (metres, world frame).
        side: "left" or "right".
        valid: (N, 21) bool (which joints count) or float weights; default all valid. Non-finite
            targets must be marked invalid.
        model: the hand model (default: dexsim's hand, limits off during the fit).
        betas: (10,) fixed shape; with ``fit_shape=True`` the first three are fitted (shared by all frames).
        smooth: weight of the temporal smoothness of consecutive frames (0 for unrelated poses).
    """
    target = tensor_arg("target", torch.nan_to_num(torch.as_tensor(target, dtype=torch.float64), nan=0.0),
                        (21, 3), dtype=torch.float64)  # fmt: skip
    if target.ndim != 3:
        raise ValueError(f"`target` must have shape (N, 21, 3), got {tuple(target.shape)}")
    n = target.shape[0]
    valid = torch.ones(n, 21, dtype=torch.bool) if valid is None else torch.as_tensor(valid)
    if valid.shape != (n, 21):
        raise ValueError(f"`valid` must have shape ({n}, 21), got {tuple(valid.shape)}")
    model = model or HandModel(side, limits="off")
    if model.side != side:
        raise ValueError(f"`model` is a {model.side} hand, but side={side!r}")
    model.limits = "off"
    # bool: which joints count; float: how much each joint counts (0 = not at all)
    w = valid.to(torch.float64)
    valid = w > 0
    beta0 = torch.zeros(10, dtype=torch.float64) if betas is None else torch.as_tensor(betas, dtype=torch.float64)
    # 1. initial global orientation and translation: align the rest palm to the target palm
    rest = model.rest_joints(beta0).to(torch.float64) if not model.is_mano else _mano_rest(model, beta0)
    R0 = kabsch(rest[_PALM].expand(n, 5, 3), target[:, _PALM], w[:, _PALM])
    go = matrix_to_axis_angle(R0)
    wsum = w[:, _PALM].sum(-1, keepdim=True).clamp_min(1e-12)
    c_t = (w[:, _PALM, None] * target[:, _PALM]).sum(1) / wsum
    c_r = (w[:, _PALM, None] * rest[_PALM]).sum(1) / wsum
    transl = c_t - (R0 @ c_r[..., None])[..., 0]
    go = go.clone().requires_grad_(True)
    hp = torch.zeros(n, 45, dtype=torch.float64, requires_grad=True)
    transl = transl.clone().requires_grad_(True)
    shape = beta0[:3].clone().requires_grad_(fit_shape)
    variables = [go, hp, transl] + ([shape] if fit_shape else [])
    pair = (valid.any(-1)[1:] & valid.any(-1)[:-1]).to(torch.float64)

    def loss_fn() -> torch.Tensor:
        b = torch.cat((shape, beta0[3:])) if fit_shape else beta0
        j = model(go, hp, transl, b, with_mesh=False).joints
        data = ((j - target) ** 2).sum(-1)
        loss = (data * w).sum() / w.sum().clamp_min(1.0)
        if n > 1 and smooth > 0:
            dpose = ((hp[1:] - hp[:-1]) ** 2).sum(-1) + ((go[1:] - go[:-1]) ** 2).sum(-1)
            loss = loss + smooth * (dpose * pair).sum() / max(n - 1, 1) * 1e-3
        loss = loss + limits * (_limit_violation(hp, side) ** 2).sum() / n * 1e-3
        loss = loss + prior * (hp**2).sum() / n
        if fit_shape:
            loss = loss + 1e-6 * (shape**2).sum()
        return loss

    # 2. Adam for the rough fit, 3. L-BFGS to finish
    opt = torch.optim.Adam(variables, lr=0.03)
    for _ in range(adam_steps):
        opt.zero_grad()
        loss = loss_fn()
        loss.backward()
        opt.step()
    if lbfgs_steps > 0:
        lb = torch.optim.LBFGS(variables, lr=1.0, max_iter=lbfgs_steps, line_search_fn="strong_wolfe")

        def closure() -> torch.Tensor:
            lb.zero_grad()
            value = loss_fn()
            value.backward()
            return value

        lb.step(closure)
    with torch.no_grad():
        b = torch.cat((shape, beta0[3:])) if fit_shape else beta0
        # the limits were a soft penalty: finish inside them, so the result passes the model's check
        hp = check_pose_limits(hp, side, warn=False)
        joints = model(go, hp, transl, b, with_mesh=False).joints
        err = ((joints - target).norm(dim=-1) * w).sum(-1) / w.sum(-1)
        params = torch.cat((go, hp, transl), -1).detach()
    return IKResult(params.float(), b.detach().float(), joints.float(), err.float())


def _mano_rest(model: HandModel, betas: torch.Tensor) -> torch.Tensor:
    z = torch.zeros(3, dtype=torch.float64)
    return model(z, torch.zeros(45, dtype=torch.float64), z, betas, with_mesh=False).joints.to(torch.float64)
