"""Checkpoint helpers both DWM backbones share: reading safetensors folders, widening an input
projection with zero channels (DWM's hand concat), copying an exact set of tensors with named errors."""

from __future__ import annotations

import inspect
import os
from pathlib import Path
from typing import Any

import torch

__all__ = ["init_kwargs", "keep_fp32_modules", "load_exact_tensors", "read_safetensors_folder", "widen_input_weight"]


def read_safetensors_folder(folder: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Every tensor of the ``*.safetensors`` files in ``folder`` (sharded checkpoints included); pickled
    weights (``.bin``, ``.pt``, ``.pth``) are never read."""
    from safetensors.torch import load_file

    files = sorted(Path(folder).glob("*.safetensors"))
    if not files:
        pickled = sorted(p.name for p in Path(folder).iterdir() if p.suffix in (".bin", ".pt", ".pth"))
        hint = f" (only pickled weights {pickled[:2]}: dexsim loads safetensors only)" if pickled else ""
        raise FileNotFoundError(f"no .safetensors weights in {folder}{hint}")
    out: dict[str, torch.Tensor] = {}
    for f in files:
        out.update(load_file(str(f)))
    return out


def keep_fp32_modules(model: torch.nn.Module) -> torch.nn.Module:
    """Put back in float32 the parameters of the modules the model class keeps there
    (``_keep_in_fp32_modules``: Wan's time embedder, norms and modulation tables), as diffusers'
    ``from_pretrained`` does; a state dict loaded by hand in bf16 would otherwise lose them."""
    keep = set(getattr(model, "_keep_in_fp32_modules", None) or ())
    with torch.no_grad():
        for name, p in model.named_parameters():
            if keep & set(name.split(".")):
                p.data = p.data.float()
    return model


def init_kwargs(cls: type, config: dict[str, Any]) -> dict[str, Any]:
    """The entries of a saved ``config.json`` that ``cls``'s constructor takes."""
    names = set(inspect.signature(cls.__init__).parameters) - {"self"}
    return {k: v for k, v in config.items() if k in names}


def widen_input_weight(weight: torch.Tensor, extra: int) -> torch.Tensor:
    """A convolution weight (out, in, *kernel) with ``extra`` zero input channels appended: the widened layer
    computes exactly what the old one did while the new inputs are zero (DWM's widening of the InP model)."""
    return torch.cat((weight, weight.new_zeros(weight.shape[0], extra, *weight.shape[2:])), dim=1)


def load_exact_tensors(path: Path, module: torch.nn.Module, keys: tuple[str, ...], missing_hint: str,
                       shape_hint: str) -> list[str]:  # fmt: skip
    """Copy exactly ``keys`` from the safetensors file ``path`` into ``module``; a missing file, another key
    set or a shape that does not fit raises an error naming it (with the hints)."""
    from safetensors.torch import load_file

    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: {missing_hint}")
    tensors = load_file(str(path))
    if set(tensors) != set(keys):
        raise ValueError(f"{path}: expected exactly {list(keys)}, got {sorted(tensors)}")
    own = module.state_dict()
    for k, v in tensors.items():
        if own[k].shape != v.shape:
            raise ValueError(f"{path}: {k} has shape {tuple(v.shape)}, this model {tuple(own[k].shape)} ({shape_hint})")
    with torch.no_grad():
        for k, v in tensors.items():
            own[k].copy_(v.to(own[k].dtype))
    return sorted(tensors)
