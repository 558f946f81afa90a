"""Starting a model from saved tensors (``--init-from``), shared by the world-model and forecaster presets."""

from __future__ import annotations

import torch

__all__ = ["copy_matching_tensors"]


def copy_matching_tensors(model: torch.nn.Module, saved: dict[str, torch.Tensor],
                          source: object) -> dict[str, list[str]]:  # fmt: skip
    """Copy into ``model`` the ``saved`` tensors whose name and shape match its own; returns ``{"copied",
    "skipped"}`` (skipped: absent there or another shape). Refuses ``saved`` tensors (from ``source``) that share
    none with the model."""
    own = model.state_dict()
    copied = [k for k, v in own.items() if k in saved and saved[k].shape == v.shape]
    if not copied:
        raise ValueError(f"`init_from`: {source} shares no tensor (name and shape) with this model")
    model.load_state_dict({k: saved[k].to(own[k].dtype) for k in copied}, strict=False)
    return {"copied": copied, "skipped": [k for k in own if k not in set(copied)]}
