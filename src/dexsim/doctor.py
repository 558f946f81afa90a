"""``dexsim doctor``: what a user needs to know before running anything.

Every check reads the machine (nothing is a constant) and says how to fix what fails. A
missing optional part is reported, not raised: the doctor exits 0 whenever it could run.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import platform
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from typing import Any

from ._deps import OPTIONAL_DEPENDENCIES
from ._paths import weight_search_paths

_MUJOCO_PROBE = """
import mujoco, numpy as np
m = mujoco.MjModel.from_xml_string('<mujoco><worldbody><light pos="0 0 3"/>'
    '<geom type="box" size=".2 .2 .2" rgba="1 0 0 1"/></worldbody></mujoco>')
d = mujoco.MjData(m); mujoco.mj_forward(m, d)
r = mujoco.Renderer(m, 32, 32); r.update_scene(d); img = r.render()
print(int(img.max()), img.shape)
"""

_OPEN3D_PROBE = "import open3d; print(open3d.__version__)"


@dataclass
class Check:
    """One line of the report."""

    name: str
    ok: bool
    detail: str
    fix: str = ""
    optional: bool = False
    data: dict[str, Any] = field(default_factory=dict)


def _dist_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _run_probe(code: str, env: dict[str, str] | None = None, timeout: float = 60.0) -> tuple[bool, str]:
    """Run ``code`` in a fresh interpreter (a GL or driver crash must not take the doctor down)."""
    try:
        proc = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout,
            env={**os.environ, **(env or {})},
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return False, f"timed out after {timeout:.0f} s"
    out = (proc.stdout.strip() or proc.stderr.strip()).splitlines()
    last = out[-1] if out else ""
    return proc.returncode == 0, last


def check_python() -> Check:
    ok = sys.version_info >= (3, 10)
    return Check("python", ok, f"{platform.python_version()} at {sys.executable}",
                 "" if ok else "dexsim needs Python >= 3.10", data={"version": platform.python_version()})  # fmt: skip


def check_torch() -> tuple[Check, Check]:
    try:
        import torch
    except ImportError as exc:
        fix = 'pip install "torch>=2.4"'
        return Check("torch", False, f"not importable: {exc}", fix), Check("cuda", False, "torch missing", fix)
    cuda = torch.cuda.is_available()
    threads = torch.get_num_threads()
    t = Check("torch", True, f"{torch.__version__} (built for CUDA {torch.version.cuda}), {threads} CPU threads",
              data={"version": torch.__version__, "built_cuda": torch.version.cuda, "threads": threads})  # fmt: skip
    if cuda:
        names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        c = Check("cuda", True, ", ".join(names), data={"devices": names})
    else:
        c = Check("cuda", False, "no CUDA device: dexsim runs on the CPU (renderer 'cpu', compact world model)",
                  "a CUDA GPU and driver are needed for gsplat and large backbones", optional=True)  # fmt: skip
    return t, c


def check_gsplat(cuda_available: bool) -> Check:
    version = _dist_version("gsplat")
    if version is None:
        return Check("gsplat", False, "not installed: the CPU renderer is used",
                     'pip install "dexsim[gpu]" (needs CUDA and nvcc)', optional=True)  # fmt: skip
    if not cuda_available:
        return Check("gsplat", False, f"{version} installed, but no CUDA device: the CPU renderer is used",
                     "gsplat needs a CUDA GPU", optional=True, data={"version": version})  # fmt: skip
    ok, msg = _run_probe("import gsplat; print(gsplat.__version__)")
    return Check("gsplat", ok, f"{version}, importable" if ok else f"{version}, import failed: {msg}",
                 "" if ok else "reinstall gsplat against your torch/CUDA", optional=True,
                 data={"version": version})  # fmt: skip


def check_mujoco() -> Check:
    version = _dist_version("mujoco")
    backend = os.environ.get("MUJOCO_GL")
    if version is None:
        return Check("mujoco", False, "not installed", "pip install mujoco", data={"backend": backend})
    env = {} if backend else {"MUJOCO_GL": "osmesa"}
    used = backend or "osmesa"
    ok, msg = _run_probe(_MUJOCO_PROBE, env=env)
    detail = f"{version}, MUJOCO_GL={used}: offscreen render " + ("works" if ok else f"failed: {msg}")
    fix = "" if ok else (
        "on a machine without a display: apt-get install libosmesa6 and set MUJOCO_GL=osmesa; "
        "with an NVIDIA GPU: MUJOCO_GL=egl"
    )  # fmt: skip
    return Check("mujoco", ok, detail, fix, data={"version": version, "backend": used, "offscreen_ok": ok})


def check_open3d() -> Check:
    version = _dist_version("open3d")
    if version is None:
        return Check("open3d", False, "not installed", "pip install open3d")
    ok, msg = _run_probe(_OPEN3D_PROBE)
    fix = "" if ok else "apt-get install libgl1 libusb-1.0-0 libgomp1 (open3d's system libraries)"
    return Check("open3d", ok, version if ok else f"{version}, import failed: {msg}", fix, data={"version": version})


def check_ffmpeg() -> Check:
    try:
        import imageio_ffmpeg

        exe = imageio_ffmpeg.get_ffmpeg_exe()
        return Check("ffmpeg", True, exe, data={"path": exe})
    except Exception as exc:  # imageio-ffmpeg raises RuntimeError when its binary is absent
        return Check("ffmpeg", False, f"no ffmpeg for mp4 output: {exc}", "pip install imageio-ffmpeg")


def check_extras() -> Check:
    extras: dict[str, bool] = {}
    for module, (extra, _dist) in OPTIONAL_DEPENDENCIES.items():
        present = importlib.util.find_spec(module) is not None
        extras[extra] = extras.get(extra, True) and present
    missing = [e for e, ok in extras.items() if not ok]
    detail = ", ".join(f"{e}={'yes' if ok else 'no'}" for e, ok in extras.items())
    fix = f'pip install "dexsim[{",".join(missing)}]" for the missing ones' if missing else ""
    return Check("extras", not missing, detail, fix, optional=True, data=extras)


def check_weights() -> Check:
    paths = weight_search_paths()
    present = {k: os.path.isdir(v) for k, v in paths.items()}
    detail = "; ".join(f"{k}: {v}{'' if present[k] else ' (absent)'}" for k, v in paths.items())
    return Check("weights", True, detail, "weights are never downloaded: put them in one of these folders",
                 optional=True, data={"paths": paths, "exists": present})  # fmt: skip


def check_dwm_checkpoints() -> Check:
    try:
        from .worldmodel.dwm import checkpoints_root, find_checkpoints

        found = find_checkpoints()
    except Exception as exc:  # a broken torch/diffusers is reported by the other checks; doctor still answers
        return Check("dwm_checkpoints", False, f"could not look: {exc}", "fix the torch check first", optional=True,
                     data={"found": [], "ready": []})  # fmt: skip
    ready = [f["name"] for f in found if f["base_found"] and f["lora_found"]]
    detail = f"{checkpoints_root()}: " + (", ".join(ready) if ready else "none found") + " (names: " + ", ".join(
        f["name"] for f in found) + ")"  # fmt: skip
    fix = "put <name>/base and <name>/lora under $DEXSIM_CHECKPOINTS (see `dexsim.worldmodel.dwm`), or pass folders"
    return Check("dwm_checkpoints", True, detail, fix, optional=True, data={"found": found, "ready": ready})


def run_checks() -> list[Check]:
    """Run every check in order."""
    t, c = check_torch()
    return [check_python(), t, c, check_gsplat(c.ok), check_mujoco(), check_open3d(), check_ffmpeg(),
            check_extras(), check_weights(), check_dwm_checkpoints()]  # fmt: skip


def report(checks: list[Check]) -> dict[str, Any]:
    """The JSON report; the first keys are the contract of ``dexsim doctor --json``."""
    by = {c.name: c for c in checks}
    return {
        "python": by["python"].data["version"],
        "torch": by["torch"].data.get("version"),
        "cuda_available": by["cuda"].ok,
        "gsplat_usable": by["gsplat"].ok,
        "mujoco_gl": by["mujoco"].data.get("backend"),
        "mujoco_offscreen_ok": by["mujoco"].data.get("offscreen_ok", False),
        "open3d": by["open3d"].data.get("version") if by["open3d"].ok else None,
        "extras": by["extras"].data,
        "weights": by["weights"].data,
        "dwm_checkpoints": by["dwm_checkpoints"].data["ready"],
        "checks": [asdict(c) for c in checks],
        "all_required_ok": all(c.ok for c in checks if not c.optional),
    }
