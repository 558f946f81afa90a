"""Fork safety: know, in a forked child, whether the parent already ran native thread pools.

GNU OpenMP (torch's CPU threads) and numba's thread pools do not survive ``fork()``: a child that
uses them hangs or is killed. Gymnasium's ``AsyncVectorEnv`` forks by default on Linux; dexsim's
envs build everything at their first ``reset()`` (so a fresh process's workers are safe) and a
worker forked from a process whose pools already ran refuses with a message saying what to pass.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import threading

__all__ = ["check_async_parent", "check_fork_safe", "native_threads"]

ADVICE = (
    "Create the vector env with gym.make_vec(..., vectorization_mode='async', vector_kwargs={'context': "
    "'spawn'}), or use the native vector env (vectorization_mode='vector_entry_point', the default)."
)

_state = {"parent_had_pools": False, "child_unsafe": False, "baseline": 0}


def native_threads() -> int:
    """Threads of this process that Python did not start (OpenMP / numba / BLAS pools); 0 where
    ``/proc`` is missing."""
    try:
        return max(0, len(os.listdir("/proc/self/task")) - threading.active_count())
    except OSError:
        return 0


def _before_fork() -> None:
    # threads that existed when dexsim was imported (numpy's OpenBLAS pool, fork-safe) do not count
    _state["parent_had_pools"] = native_threads() > _state["baseline"]


def _after_fork_in_child() -> None:
    _state["child_unsafe"] = _state["parent_had_pools"]


_state["baseline"] = native_threads()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_before_fork, after_in_child=_after_fork_in_child)


def check_fork_safe(what: str) -> None:
    """Raise ``RuntimeError`` when this process was forked after its parent ran native thread pools."""
    if _state["child_unsafe"]:
        raise RuntimeError(
            f"{what} runs in a process forked after its parent ran torch/numba thread pools, which do not "
            f"survive fork() (the worker would hang). {ADVICE}"
        )


def check_async_parent(what: str) -> None:
    """Raise ``RuntimeError`` when called (while an env is made) inside Gymnasium's ``AsyncVectorEnv``
    constructor that is about to fork workers from this process after its thread pools ran: its
    workers would hang before they answer."""
    if native_threads() <= _state["baseline"]:
        return
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code.co_name == "__init__" and type(frame.f_locals.get("self")).__name__ == "AsyncVectorEnv":
            context = frame.f_locals.get("context")
            method = context if isinstance(context, str) else multiprocessing.get_start_method()
            if method == "fork":
                raise RuntimeError(
                    f"{what} in Gymnasium's AsyncVectorEnv would fork workers from a process whose torch/numba "
                    f"thread pools already ran; they do not survive fork() (the workers would hang). {ADVICE}"
                )
            return
        frame = frame.f_back
