"""Training windows streamed from paired-clip datasets, with a resumable, seeded position."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..data.dataset import clip_ids, is_complete, read_clip, read_manifest

__all__ = ["ClipWindows", "DataPosition", "Window", "dataset_identity"]


def dataset_identity(root: str | os.PathLike[str]) -> str:
    """What a training run's identity holds of a data folder: its manifest's recipe hash (the same dataset
    wherever it lies, however many clips it has grown to), else its absolute path (DWM's data has none)."""
    manifest = read_manifest(root)
    return f"recipe:{manifest.recipe_hash}" if manifest else f"path:{Path(root).resolve()}"


@dataclass
class DataPosition:
    """Where the stream is: ``epoch`` and ``index`` into that epoch's permutation (per process)."""

    epoch: int = 0
    index: int = 0
    items: list[list[str]] | None = None  # the epoch's clip list when the dataset grows during training


@dataclass
class Window:
    """A batch of training windows: videos (B, T, H, W, 3) uint8, ``context`` (B,) known first frames."""

    static: torch.Tensor
    prompt: torch.Tensor
    video: torch.Tensor
    context: torch.Tensor
    hand_mask: torch.Tensor | None = None
    text: list[str] | None = None
    flow: torch.Tensor | None = None  # (B, T, H, W, 2) float32 backward flow to the static video, in pixels
    flow_valid: torch.Tensor | None = None  # (B, T, H, W) bool: where ``flow`` is known


def _resize_flow(flow: np.ndarray, valid: np.ndarray, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Nearest-neighbour resize of a (T, H, W, 2) flow in pixels (rescaled to the new size) and its mask."""
    h, w = valid.shape[1:]
    if (h, w) == (height, width):
        return flow, valid
    rows = np.minimum((np.arange(height) + 0.5) * h / height, h - 1).astype(int)
    cols = np.minimum((np.arange(width) + 0.5) * w / width, w - 1).astype(int)
    scale = np.array([width / w, height / h], np.float32)
    return flow[:, rows][:, :, cols] * scale, valid[:, rows][:, :, cols]


def _resize(video: np.ndarray, width: int, height: int) -> np.ndarray:
    if video.shape[1:3] == (height, width):
        return video
    x = torch.from_numpy(video).permute(0, 3, 1, 2).float()
    x = F.interpolate(x, size=(height, width), mode="area" if x.shape[-1] > width else "bilinear", align_corners=None)
    return x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


def _nbytes(item: object) -> int:
    """Bytes of the arrays in a decoded clip (nested tuples of arrays and strings)."""
    if isinstance(item, np.ndarray):
        return int(item.nbytes)
    if isinstance(item, tuple):
        return sum(_nbytes(x) for x in item)
    return 0


def _default_cache_bytes() -> int:
    """A third of the machine's physical memory (4 GiB where it cannot be read)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 3
    except (ValueError, OSError, AttributeError):
        return 4 << 30


class ClipWindows:
    """Random windows of ``window`` frames from the complete clips of one or more dataset folders.

    ``grow``: the folders are still being written (``dexsim datagen`` running beside training): each
    epoch re-lists the complete clips, and the list is part of the saved position.

    Deterministic from ``seed``: epoch ``e`` visits this process's share (``rank::world``) of a
    seeded permutation; item ``i``'s window start and context length come from ``(seed, e, i)``.
    ``position`` says where the stream is and can be restored for an exact resume. Decoded clips
    are kept in memory, so epochs after the first read no video, up to ``cache_bytes`` (default: a third of the
    machine's memory; ``cache=False``: none; later clips are decoded each time they are visited, so a large mix
    does not swap). ``flow``: windows also carry the ground-truth backward flow of dexsim-generated clips
    (:func:`dexsim.physics.flow.clip_backward_flow`; unknown everywhere on other clips).
    """

    def __init__(self, roots: list[str | os.PathLike[str]], window: int = 9, width: int = 128, height: int = 128,
                 context_max: int = 1, context_prob: float = 0.5, seed: int = 0, rank: int = 0, world: int = 1,
                 cache: bool = True, grow: bool = False, flow: bool = False,
                 cache_bytes: int | None = None) -> None:  # fmt: skip
        if cache_bytes is not None and (isinstance(cache_bytes, bool) or not isinstance(cache_bytes, int)
                                        or cache_bytes < 0):  # fmt: skip
            raise ValueError(f"`cache_bytes` must be a whole number of bytes >= 0, got {cache_bytes!r}")
        self.with_flow = flow
        self.roots = [Path(r) for r in roots]
        self.grow = grow
        self.items = self._scan()
        self.window, self.width, self.height = window, width, height
        self.context_max, self.context_prob = context_max, context_prob
        self.seed, self.rank, self.world = seed, rank, world
        self.position = DataPosition(items=self._item_list() if grow else None)
        self._cache: dict[tuple[Path, str], tuple] = {}
        self.cache_bytes = 0 if not cache else _default_cache_bytes() if cache_bytes is None else cache_bytes
        self._cached_bytes = 0

    def _scan(self) -> list[tuple[Path, str]]:
        items = []
        for r in self.roots:
            ids = [i for i in clip_ids(r) if is_complete(r, i)]
            if not ids:
                raise FileNotFoundError(f"no complete clips in {r} (make some with `dexsim datagen --out {r}`)")
            items += [(r, i) for i in ids]
        return items

    def _item_list(self) -> list[list[str]]:
        return [[str(r), i] for r, i in self.items]

    def restore(self, position: DataPosition) -> None:
        """Continue exactly where a saved ``position`` was (its clip list too, for a growing dataset)."""
        if position.items is not None:
            self.items = [(Path(r), i) for r, i in position.items]
        self.position = position

    def __len__(self) -> int:
        return len(self.items)

    def _clip(self, k: int) -> tuple:
        root, cid = self.items[k]
        if (root, cid) in self._cache:
            return self._cache[(root, cid)]
        c = read_clip(root, cid)
        if len({c.static.shape[0], c.prompt.shape[0], c.interaction.shape[0]}) != 1:
            raise ValueError(f"{root}/{cid}: the three videos disagree in length")
        hands = (c.masks <= -2) if c.masks is not None else np.zeros(c.static.shape[:3], bool)
        if hands.shape[1:] != (self.height, self.width):
            hands = (
                _resize(hands[..., None].repeat(3, -1).astype(np.uint8) * 255, self.width, self.height)[..., 0] > 127
            )
        out = (*(_resize(v, self.width, self.height) for v in (c.static, c.prompt, c.interaction)), hands, c.text,
               self._flow(c))  # fmt: skip
        size = _nbytes(out)
        if self._cached_bytes + size <= self.cache_bytes:
            self._cache[(root, cid)] = out
            self._cached_bytes += size
        return out

    def _flow(self, c: object) -> tuple[np.ndarray, np.ndarray] | None:
        if not self.with_flow:
            return None
        from ..physics.flow import clip_backward_flow

        cams = None if c.trajectory is None else c.trajectory.camera
        got = clip_backward_flow(c.meta, c.physics, c.masks, cams)
        n = c.static.shape[0]
        if got is None:
            return np.zeros((n, self.height, self.width, 2), np.float32), np.zeros((n, self.height, self.width), bool)
        return _resize_flow(*got, self.width, self.height)

    def _order(self, epoch: int) -> np.ndarray:
        perm = np.random.default_rng([self.seed, epoch]).permutation(len(self.items))
        return perm[self.rank :: self.world]

    def next_batch(self, batch_size: int) -> Window:
        """The next ``batch_size`` windows; advances :attr:`position`."""
        st, pr, vi, hm, ctx, tx, fl, fv = [], [], [], [], [], [], [], []
        for _ in range(batch_size):
            order = self._order(self.position.epoch)
            if self.position.index >= len(order):
                if self.grow:  # clips finished since the last epoch join the next one
                    self.items = self._scan()
                self.position = DataPosition(self.position.epoch + 1, 0, self._item_list() if self.grow else None)
                order = self._order(self.position.epoch)
            k = int(order[self.position.index])
            rng = np.random.default_rng([self.seed, self.position.epoch, self.position.index, 7])
            self.position.index += 1
            s, p, v, h, text, flow = self._clip(k)
            tx.append(text)
            n = s.shape[0]
            if n < self.window:
                raise ValueError(f"{self.items[k][1]}: {n} frames, fewer than the training window {self.window}")
            start = int(rng.integers(0, n - self.window + 1))
            sl = slice(start, start + self.window)
            st.append(s[sl]), pr.append(p[sl]), vi.append(v[sl]), hm.append(h[sl])
            if flow is not None:
                fl.append(flow[0][sl]), fv.append(flow[1][sl])
            ctx.append(int(rng.integers(1, self.context_max + 1)) if rng.random() < self.context_prob else 0)
        to = lambda xs: torch.from_numpy(np.stack(xs))  # noqa: E731
        return Window(to(st), to(pr), to(vi), torch.tensor(ctx), to(hm), tx, to(fl) if fl else None,
                      to(fv) if fv else None)  # fmt: skip
