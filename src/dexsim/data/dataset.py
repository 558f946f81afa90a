"""The paired-clip dataset in the DWM layout, plus dexsim's own parts.

One clip ``ID`` is::

    videos/ID.mp4          ground-truth interaction video          (DWM)
    videos_static/ID.mp4   static-scene render along the same path (DWM)
    videos_hands/ID.mp4    visual action prompt (mesh, DWM colours) (DWM)
    prompts/ID.txt         text (DWM's own data has prompts_rewrite/ID.txt; both are read)
    actions/ID.npz         the hand trajectory (the DESIGN.md .npz contract)
    masks/ID.npz           ``masks`` (T, H, W) int8: object id per pixel (-1 none, -2 left hand, -3 right hand)
    meta/ID.npz            physics record: ``object_poses`` (T, K, 7), ``contacts`` (T, 2, K'), ``drawer`` (T,)
    meta/ID.json           scene, seeds, action kind, text, fps, size, and the byte size and SHA-256 of each
                           file above (``files``); written last: a clip without it is unfinished

Every file is written atomically; a killed write leaves at most a temporary ``.ID.XXXXXXXX.ext`` beside
the target (:func:`clean_temporaries` removes them) and no ``meta/ID.json``, so the clip is redone.
:func:`check_clip` finds damaged clips (a missing, changed, truncated or unreadable file).

A generated dataset also holds ``manifest.json`` (:class:`Manifest`): the recipe that made it (scene,
seed, split, size, frames, fps, density scale), its hash, the clip count and the dexsim version.
DWM's own data has none and is checked on its own terms.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import os
import re
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._io import atomic_write, write_json
from ..video import write_mp4

__all__ = [
    "DWM_PARTS",
    "EXTRA_PARTS",
    "MANIFEST",
    "RECIPE_FIELDS",
    "Clip",
    "ClipCheck",
    "ClipRecord",
    "Manifest",
    "check_clip",
    "check_dataset",
    "clean_temporaries",
    "clip_id",
    "clip_ids",
    "clip_recipe_differences",
    "clip_seed",
    "is_complete",
    "locked",
    "parse_clip_id",
    "read_clip",
    "read_manifest",
    "recipe_differences",
    "recipe_hash",
    "stored_ids",
    "write_clip",
    "write_manifest",
]

DWM_PARTS = {"videos": ".mp4", "videos_static": ".mp4", "videos_hands": ".mp4"}
EXTRA_PARTS = {"actions": ".npz", "masks": ".npz", "meta": ".json"}
TEXT_DIRS = ("prompts", "prompts_rewrite")
#: every folder a clip writes into (or DWM's data has): where its files and a killed write's temporaries lie
CLIP_DIRS = (*DWM_PARTS, *TEXT_DIRS, "actions", "masks", "meta")
MANIFEST = "manifest.json"
MANIFEST_FORMAT = 1
SPLITS = {"train": 0, "heldout": 1}
#: the fields of a generation recipe and their types (the clip count is not one: a dataset may grow)
RECIPE_FIELDS: dict[str, type] = {"scene": str, "seed": int, "split": str, "width": int, "height": int, "frames": int,
                                  "fps": float, "density_scale": float}  # fmt: skip
#: recipe fields present only when set (absent = the default; older recipes keep their hashes)
OPTIONAL_RECIPE_FIELDS = ("kinds",)
_CLIP_ID = re.compile(r"(?P<split>[a-z]+)_(?P<index>\d{6,})")
#: a temporary of :func:`dexsim._io.atomic_path`: ``.`` + target stem + ``.`` + 8 random characters + suffix
_TEMPORARY = re.compile(r"\.(?P<id>[^.]+)\.[a-z0-9_]{8}\.(?:mp4|txt|npz|json)")


def clip_seed(seed: int, split: str, index: int) -> int:
    """The seed of clip ``index`` of ``split`` (independent streams per split and clip)."""
    if split not in SPLITS:
        raise ValueError(f"`split` must be one of {sorted(SPLITS)}, got {split!r}")
    return int(np.random.SeedSequence([seed, SPLITS[split], index]).generate_state(1)[0])


def clip_id(split: str, index: int) -> str:
    """The ID of generated clip ``index`` of ``split``: ``train_000042``."""
    return f"{split}_{index:06d}"


def parse_clip_id(cid: str) -> tuple[str, int] | None:
    """``(split, index)`` of a generated clip's ID, ``None`` for any other name."""
    m = _CLIP_ID.fullmatch(cid)
    return (m["split"], int(m["index"])) if m and m["split"] in SPLITS else None


# -- the manifest ------------------------------------------------------------------------------------


def _normalize_recipe(recipe: Mapping[str, Any]) -> dict[str, Any]:
    """``recipe`` with each field in its type; a ValueError names a missing, unknown or bad field."""
    known = set(RECIPE_FIELDS) | set(OPTIONAL_RECIPE_FIELDS)
    unknown, missing = sorted(set(recipe) - known), sorted(set(RECIPE_FIELDS) - set(recipe))
    if unknown or missing:
        raise ValueError(f"a recipe has the fields {sorted(RECIPE_FIELDS)}; unknown {unknown}, missing {missing}")
    out: dict[str, Any] = {}
    for name, kind in RECIPE_FIELDS.items():
        v = recipe[name]
        if kind is float and isinstance(v, int) and not isinstance(v, bool):
            v = float(v)
        if not isinstance(v, kind) or isinstance(v, bool) or (kind is float and not math.isfinite(v)):
            what = {int: "an int", str: "a str", float: "a finite float"}[kind]
            raise ValueError(f"recipe field `{name}` must be {what}, got {v!r}")
        out[name] = v
    if out["split"] not in SPLITS:
        raise ValueError(f"recipe field `split` must be one of {sorted(SPLITS)}, got {out['split']!r}")
    if "kinds" in recipe:
        kinds = recipe["kinds"]
        if not isinstance(kinds, (list, tuple)) or not kinds or not all(isinstance(k, str) for k in kinds):
            raise ValueError(f"recipe field `kinds` must be a non-empty list of str, got {kinds!r}")
        out["kinds"] = list(kinds)
    return out


def recipe_hash(recipe: Mapping[str, Any]) -> str:
    """A short SHA-256 of the recipe's canonical JSON (equal recipes, equal hashes)."""
    text = json.dumps(_normalize_recipe(recipe), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def recipe_differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """``"seed 5 vs 6"`` for each field where two recipes differ (``old`` first)."""
    return [f"{k} {old.get(k)!r} vs {new.get(k)!r}" for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]


@dataclass(frozen=True)
class Manifest:
    """How a dataset was made: its recipe, how many clips it holds (it may grow), the dexsim version."""

    recipe: dict[str, Any]
    clips: int
    dexsim_version: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "recipe", _normalize_recipe(self.recipe))
        if not isinstance(self.clips, int) or isinstance(self.clips, bool) or self.clips <= 0:
            raise ValueError(f"manifest `clips` must be a positive int, got {self.clips!r}")

    @property
    def recipe_hash(self) -> str:
        return recipe_hash(self.recipe)

    def to_json(self) -> dict[str, Any]:
        return {"format": MANIFEST_FORMAT, "recipe": dict(self.recipe), "recipe_hash": self.recipe_hash,
                "clips": self.clips, "dexsim_version": self.dexsim_version}  # fmt: skip

    @classmethod
    def from_json(cls, data: Any) -> Manifest:
        """The manifest of ``to_json``'s dict; a ValueError names what is wrong."""
        if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT:
            got = data.get("format") if isinstance(data, dict) else type(data).__name__
            raise ValueError(f"not a dexsim dataset manifest of format {MANIFEST_FORMAT} (format {got!r})")
        m = cls(data.get("recipe") or {}, data.get("clips"), str(data.get("dexsim_version", "")))  # type: ignore[arg-type]
        if data.get("recipe_hash") != m.recipe_hash:
            raise ValueError(f"its recipe_hash {data.get('recipe_hash')!r} is not its recipe's ({m.recipe_hash}): "
                             "the file was edited")  # fmt: skip
        return m


def read_manifest(root: str | os.PathLike[str]) -> Manifest | None:
    """The dataset's manifest, ``None`` when it has none; a ValueError when it cannot be read."""
    path = Path(root) / MANIFEST
    if not path.is_file():
        return None
    try:
        return Manifest.from_json(json.loads(path.read_text()))
    except (ValueError, OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path} cannot be read ({exc}); restore it or move the dataset aside") from exc


def write_manifest(root: str | os.PathLike[str], manifest: Manifest) -> Path:
    """Write ``root/manifest.json`` atomically."""
    return write_json(Path(root) / MANIFEST, manifest.to_json())


@contextlib.contextmanager
def locked(root: str | os.PathLike[str]) -> Iterator[None]:
    """Hold an exclusive lock on the dataset folder (``flock``; a no-op where there is none), so that
    ranks starting together read and update the manifest one at a time."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    fd = os.open(root, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


# -- writing clips ---------------------------------------------------------------------------------


@dataclass
class ClipRecord:
    """Everything one clip writes (videos (T, H, W, 3) uint8)."""

    clip_id: str
    interaction: np.ndarray
    static: np.ndarray
    prompt: np.ndarray
    text: str
    actions: bytes  # the trajectory .npz, already serialised
    masks: np.ndarray
    physics: dict[str, np.ndarray]
    meta: dict[str, Any] = field(default_factory=dict)


def _npz_bytes(**arrays: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def _digest(path: Path) -> dict[str, Any]:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return {"bytes": path.stat().st_size, "sha256": h.hexdigest()}


def _clip_files(cid: str) -> list[str]:
    """The files of a generated clip other than ``meta/ID.json``, relative to the dataset root."""
    return [f"{p}/{cid}{e}" for p, e in DWM_PARTS.items()] + [f"prompts/{cid}.txt", f"actions/{cid}.npz",
                                                               f"masks/{cid}.npz", f"meta/{cid}.npz"]  # fmt: skip


def write_clip(root: str | os.PathLike[str], rec: ClipRecord, fps: float = 8.0) -> None:
    """Write one clip; ``meta/ID.json`` (with each file's size and SHA-256) goes last, so a clip without
    it is unfinished."""
    root = Path(root)
    i = rec.clip_id
    write_mp4(root / "videos" / f"{i}.mp4", rec.interaction, fps=fps)
    write_mp4(root / "videos_static" / f"{i}.mp4", rec.static, fps=fps)
    write_mp4(root / "videos_hands" / f"{i}.mp4", rec.prompt, fps=fps)
    atomic_write(root / "prompts" / f"{i}.txt", lambda p: p.write_text(rec.text + "\n"))
    atomic_write(root / "actions" / f"{i}.npz", lambda p: p.write_bytes(rec.actions))
    atomic_write(root / "masks" / f"{i}.npz", lambda p: p.write_bytes(_npz_bytes(masks=rec.masks)))
    atomic_write(root / "meta" / f"{i}.npz", lambda p: p.write_bytes(_npz_bytes(**rec.physics)))
    files = {rel: _digest(root / rel) for rel in _clip_files(i)}
    write_json(root / "meta" / f"{i}.json", {"id": i, "text": rec.text, "fps": fps, **rec.meta, "files": files})


def _read_json(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"a JSON object was expected, got {type(data).__name__}")
    return data


def is_complete(root: str | os.PathLike[str], clip_id: str) -> bool:
    """Cheap: the clip's ``meta/ID.json`` parses and every file it lists exists with its recorded size.
    :func:`check_clip` checks contents."""
    root = Path(root)
    try:
        meta = _read_json(root / "meta" / f"{clip_id}.json")
        return all((root / rel).stat().st_size == rec["bytes"] for rel, rec in meta.get("files", {}).items())
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return False


def clip_ids(root: str | os.PathLike[str]) -> list[str]:
    """IDs of the clips that have a ground-truth video."""
    d = Path(root) / "videos"
    return sorted(p.stem for p in d.glob("*.mp4") if not p.name.startswith(".")) if d.is_dir() else []


def stored_ids(root: str | os.PathLike[str]) -> set[str]:
    """IDs named by any clip file, finished or not (temporaries aside)."""
    root = Path(root)
    return {p.name.split(".")[0] for d in CLIP_DIRS if (root / d).is_dir() for p in (root / d).iterdir()
            if not p.name.startswith(".")}  # fmt: skip


def _temporaries(root: Path, ids: Collection[str] | None = None) -> list[Path]:
    return [p for d in CLIP_DIRS if (root / d).is_dir() for p in (root / d).iterdir()
            if (m := _TEMPORARY.fullmatch(p.name)) and (ids is None or m["id"] in ids)]  # fmt: skip


def clean_temporaries(root: str | os.PathLike[str], ids: Collection[str] | None = None) -> int:
    """Delete the temporaries a killed write left beside the files of clips ``ids`` (all when ``None``;
    never while another process writes those clips). Returns how many."""
    found = _temporaries(Path(root), ids)
    for p in found:
        p.unlink(missing_ok=True)
    return len(found)


# -- checking clips ----------------------------------------------------------------------------------


@dataclass
class ClipCheck:
    """What :func:`check_clip` found: ``problems`` (none when the clip is sound), the parts it lacks,
    and each decoded video's frames, size (W, H) and fps."""

    clip_id: str
    problems: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    videos: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    def add(self, problem: str) -> None:
        self.problems.append(f"{self.clip_id}: {problem}")


def _even(n: int) -> int:
    """A size as the mp4 stores it (H.264 pads odd sizes by one pixel)."""
    return n + n % 2


def _video_info(path: Path) -> dict[str, Any]:
    """Frames, size (W, H) and fps of a video, decoding every frame."""
    import imageio.v2 as imageio

    reader = imageio.get_reader(path, format="FFMPEG")
    try:
        fps = float(reader.get_meta_data()["fps"])
        frames, shape = 0, None
        for f in reader:
            if shape is not None and f.shape != shape:
                raise ValueError(f"frame {frames} is {f.shape}, frame 0 {shape}")
            frames, shape = frames + 1, f.shape
    finally:
        reader.close()
    if shape is None:
        raise ValueError("no frames")
    return {"frames": frames, "size": (int(shape[1]), int(shape[0])), "fps": fps}


def clip_recipe_differences(meta: Mapping[str, Any], recipe: Mapping[str, Any], index: int) -> list[str]:
    """Where a generated clip's ``meta/ID.json`` disagrees with the recipe that should have made clip
    ``index`` (``"clip_seed 12 vs 34"``: the clip's value first)."""
    want = {k: recipe[k] for k in ("split", "width", "height", "frames", "fps", "density_scale")}
    want["clip_seed"] = clip_seed(recipe["seed"], recipe["split"], index)
    if "seed" in meta:
        want["seed"] = recipe["seed"]
    diffs = [f"{k} {meta.get(k)!r} vs {v!r}" for k, v in want.items() if meta.get(k) != v]
    if not re.fullmatch(re.escape(recipe["scene"]) + r"(-\d+)?", str(meta.get("scene"))):
        diffs.append(f"scene {meta.get('scene')!r} vs {recipe['scene']!r}")
    if "recipe_hash" in meta and meta["recipe_hash"] != recipe_hash(recipe):
        diffs.append(f"recipe_hash {meta['recipe_hash']!r} vs {recipe_hash(recipe)!r}")
    return diffs


def _read_meta(root: Path, c: ClipCheck) -> dict[str, Any] | None:
    path = root / "meta" / f"{c.clip_id}.json"
    if not path.exists():
        return None
    try:
        return _read_json(path)
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        c.add(f"meta/{c.clip_id}.json cannot be read ({exc})")
        return None


def _check_presence(root: Path, c: ClipCheck, required: Collection[str]) -> Path | None:
    """Report missing parts; return the text file."""
    i = c.clip_id
    for part, ext in [*DWM_PARTS.items(), *((p, EXTRA_PARTS[p]) for p in required)]:
        if not (root / part / f"{i}{ext}").is_file():
            c.missing.append(part)
            c.add(f"{part}/{i}{ext} is missing")
    text = next((root / d / f"{i}.txt" for d in TEXT_DIRS if (root / d / f"{i}.txt").is_file()), None)
    if text is None:
        c.missing.append("prompts")
        c.add(f"no prompts/{i}.txt or prompts_rewrite/{i}.txt")
    return text


def _check_records(root: Path, c: ClipCheck, files: Mapping[str, Any]) -> None:
    """Each file listed in ``meta/ID.json`` has the size and SHA-256 recorded when it was written."""
    for rel, rec in files.items():
        path = root / rel
        if not path.is_file():
            if not any(rel in p for p in c.problems):
                c.add(f"{rel} is missing")
            continue
        got = _digest(path)
        if not isinstance(rec, dict) or got != {"bytes": rec.get("bytes"), "sha256": rec.get("sha256")}:
            recorded = rec.get("bytes") if isinstance(rec, dict) else rec
            c.add(f"{rel} changed since it was written ({got['bytes']} bytes, {recorded} recorded)")


def _read_part(c: ClipCheck, rel: str, read: Any) -> Any:
    """``read()``, or ``None`` with the error noted (an unreadable file is a problem of its clip)."""
    try:
        return read()
    except Exception as exc:  # imageio, numpy and zipfile raise many kinds
        c.add(f"{rel} cannot be read ({type(exc).__name__}: {exc})")
        return None


def _npz(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def _check_videos(root: Path, c: ClipCheck) -> None:
    """Decode every video of the clip; they must agree in frames and size."""
    for part, ext in DWM_PARTS.items():
        path = root / part / f"{c.clip_id}{ext}"
        if path.is_file() and (info := _read_part(c, f"{part}/{path.name}", lambda p=path: _video_info(p))):
            c.videos[part] = info
    if len({(v["frames"], v["size"]) for v in c.videos.values()}) > 1:
        c.add("the videos disagree: " + ", ".join(f"{k} {v['frames']} frames {v['size']}" for k, v in c.videos.items()))


def _check_text(c: ClipCheck, text: Path, meta: Mapping[str, Any] | None) -> None:
    """The text decodes, is not empty, and (``prompts/``) is ``meta/ID.json``'s."""
    rel = f"{text.parent.name}/{text.name}"
    words = _read_part(c, rel, lambda: text.read_text(encoding="utf-8").strip())
    if words == "":
        c.add(f"{rel} is empty")
    elif words is not None and meta is not None and text.parent.name == "prompts" and meta.get("text") != words:
        c.add(f"{rel} {words!r} disagrees with meta/{c.clip_id}.json's text {meta.get('text')!r}")


def _check_arrays(root: Path, c: ClipCheck) -> None:
    """Actions, masks and physics parse and match the videos' frames (and the masks their size)."""
    from ..hands.trajectory import HandTrajectory

    i = c.clip_id
    frames, size = next(((v["frames"], v["size"]) for v in c.videos.values()), (None, None))
    lengths: dict[str, int] = {}
    if (root / "actions" / f"{i}.npz").is_file():
        traj = _read_part(c, f"actions/{i}.npz", lambda: HandTrajectory.load(root / "actions" / f"{i}.npz"))
        if traj is not None:
            lengths[f"actions/{i}.npz"] = traj.num_frames
    if (root / "masks" / f"{i}.npz").is_file():
        masks = _read_part(c, f"masks/{i}.npz", lambda: _npz(root / "masks" / f"{i}.npz")["masks"])
        if masks is not None and masks.ndim != 3:
            c.add(f"masks/{i}.npz: masks must be (T, H, W), got {masks.shape}")
        elif masks is not None:
            lengths[f"masks/{i}.npz"] = masks.shape[0]
            if size is not None and (_even(masks.shape[2]), _even(masks.shape[1])) != size:
                c.add(f"masks/{i}.npz is {masks.shape[2]}x{masks.shape[1]}, the videos {size[0]}x{size[1]}")
    if (root / "meta" / f"{i}.npz").is_file():
        physics = _read_part(c, f"meta/{i}.npz", lambda: _npz(root / "meta" / f"{i}.npz"))
        if physics is not None and "object_poses" in physics:
            lengths[f"meta/{i}.npz"] = physics["object_poses"].shape[0]
    for rel, n in lengths.items():
        if frames is not None and n != frames:
            c.add(f"{rel} has {n} frames, the videos {frames}")


def _check_recipe(c: ClipCheck, meta: Mapping[str, Any] | None, manifest: Manifest) -> None:
    """The clip is one of the manifest's: its ID, its meta and its videos' frames and size."""
    r, i = manifest.recipe, c.clip_id
    parsed = parse_clip_id(i)
    if parsed is None or parsed[0] != r["split"] or parsed[1] >= manifest.clips:
        c.add(f"not a clip of this dataset (its manifest.json holds {r['split']}_000000..{manifest.clips - 1:06d})")
        return
    if meta is not None and (diffs := clip_recipe_differences(meta, r, parsed[1])):
        c.add(f"meta/{i}.json disagrees with manifest.json (clip vs manifest): {', '.join(diffs)}")
    want = (r["frames"], (_even(r["width"]), _even(r["height"])))
    for part, v in c.videos.items():
        if (v["frames"], v["size"]) != want:
            c.add(f"{part} has {v['frames']} frames {v['size']}, manifest.json {want[0]} frames {want[1]}")


def check_clip(root: str | os.PathLike[str], clip_id: str, manifest: Manifest | None = None, decode: bool = True,
               required: Collection[str] = tuple(EXTRA_PARTS)) -> ClipCheck:  # fmt: skip
    """Check one clip: its files are present; ``meta/ID.json`` parses and the sizes and SHA-256s it recorded
    hold; with ``decode`` (always when nothing was recorded) every video decodes fully and agrees with the
    others, and the text, actions, masks and physics parse and match the videos; with a ``manifest``, the
    clip is one of it (ID, seed, size, frames, fps, density). ``required``: the parts of dexsim's own that
    a clip without ``meta/ID.json`` must have (a clip with one, or of a dataset with a manifest, needs all)."""
    root = Path(root)
    c = ClipCheck(clip_id)
    meta = _read_meta(root, c)
    ours = manifest is not None or (root / "meta" / f"{clip_id}.json").exists()
    text = _check_presence(root, c, tuple(EXTRA_PARTS) if ours else required)
    files = meta.get("files") if meta is not None else None
    if isinstance(files, dict):
        _check_records(root, c, files)
    if decode or not isinstance(files, dict):
        _check_videos(root, c)
        if text is not None:
            _check_text(c, text, meta)
        _check_arrays(root, c)
    if manifest is not None:
        _check_recipe(c, meta, manifest)
    return c


def _dataset_problems(root: Path, ids: list[str], manifest: Manifest | None) -> list[str]:
    """Files of clips without a ground-truth video; clips the manifest promises that are not there."""
    errors = []
    orphans = sorted(stored_ids(root) - set(ids))
    if orphans:
        errors.append(f"{len(orphans)} clip(s) have files but no videos/ID.mp4: {orphans[:5]}")
    if manifest is not None:
        split, n = manifest.recipe["split"], manifest.clips
        lacking = sorted(set(clip_id(split, k) for k in range(n)) - set(ids))
        if lacking:
            errors.append(f"{len(lacking)} of the {n} clips of manifest.json are not there (first {lacking[:5]}); "
                          "rerun its datagen command to finish them")  # fmt: skip
    return errors


def check_dataset(root: str | os.PathLike[str]) -> dict[str, Any]:
    """Validate a dataset folder, reading every file it counts (:func:`check_clip` with ``decode``).

    The DWM parts (the three videos and a text) are required; a missing ``actions/``, ``masks/``
    or ``meta/`` folder is reported (DWM's released data has none), a clip missing one file of a
    folder that exists is an error, and so are videos of one clip that disagree in frames or size.
    With a ``manifest.json``, every clip it promises must be there and agree with its recipe, and no other.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"no such dataset folder: {root}")
    errors: list[str] = []
    try:
        manifest = read_manifest(root)
    except ValueError as exc:
        manifest = None
        errors.append(str(exc))
    ids = clip_ids(root)
    missing: dict[str, int] = {}
    absent_parts = [p for p in EXTRA_PARTS if not (root / p).is_dir()]
    required = [p for p in EXTRA_PARTS if p not in absent_parts]
    frames, sizes, fpss = set(), set(), set()
    complete = 0
    for i in ids:
        c = check_clip(root, i, manifest, decode=True, required=required)
        errors += c.problems
        for part in c.missing:
            missing[part] = missing.get(part, 0) + 1
        for v in c.videos.values():
            frames.add(v["frames"])
            sizes.add(v["size"])
            fpss.add(round(v["fps"], 3))
        complete += c.ok
    errors += _dataset_problems(root, ids, manifest)
    return {
        "root": str(root), "clips": len(ids), "complete": int(complete),
        "frames": sorted(frames), "resolutions": sorted(list(s) for s in sizes), "fps": sorted(fpss),
        "absent_parts": absent_parts, "missing": missing, "errors": errors, "ok": not errors and len(ids) > 0,
        "manifest": manifest.to_json() if manifest else None, "temporaries": len(_temporaries(root)),
    }  # fmt: skip


# -- reading clips -----------------------------------------------------------------------------------


@dataclass
class Clip:
    """One clip as read back: videos (T, H, W, 3) uint8, the text, and dexsim's parts when present
    (``None`` for DWM's own data): the hand trajectory, object masks, physics arrays, metadata."""

    clip_id: str
    interaction: np.ndarray
    static: np.ndarray
    prompt: np.ndarray
    text: str
    trajectory: object | None = None
    masks: np.ndarray | None = None
    physics: dict[str, np.ndarray] | None = None
    meta: dict[str, Any] | None = None


def read_clip(root: str | os.PathLike[str], clip_id: str) -> Clip:
    """Read one clip of a DWM-layout dataset (``prompts/`` or DWM's ``prompts_rewrite/``)."""
    from ..hands.trajectory import HandTrajectory
    from ..video import read_mp4

    root = Path(root)
    videos = {}
    for part, ext in DWM_PARTS.items():
        path = root / part / f"{clip_id}{ext}"
        if not path.is_file():
            raise FileNotFoundError(f"clip {clip_id!r}: {path} is missing")
        videos[part] = read_mp4(path)
    text_path = next((root / d / f"{clip_id}.txt" for d in TEXT_DIRS
                      if (root / d / f"{clip_id}.txt").is_file()), None)  # fmt: skip
    if text_path is None:
        raise FileNotFoundError(f"clip {clip_id!r}: no prompts/{clip_id}.txt or prompts_rewrite/{clip_id}.txt")
    actions = root / "actions" / f"{clip_id}.npz"
    masks = root / "masks" / f"{clip_id}.npz"
    physics = root / "meta" / f"{clip_id}.npz"
    meta = root / "meta" / f"{clip_id}.json"
    return Clip(
        clip_id=clip_id, interaction=videos["videos"], static=videos["videos_static"], prompt=videos["videos_hands"],
        text=text_path.read_text().strip(),
        trajectory=HandTrajectory.load(actions) if actions.is_file() else None,
        masks=_npz(masks)["masks"] if masks.is_file() else None,
        physics=_npz(physics) if physics.is_file() else None,
        meta=json.loads(meta.read_text()) if meta.is_file() else None,
    )  # fmt: skip
