"""Headless OpenGL context (EGL on Mesa llvmpipe) and its thread budget.

llvmpipe rasterises on as many threads as there are cores unless ``LP_NUM_THREADS`` is set before the
driver loads; with several worker processes on a small machine each should get ``LP_NUM_THREADS=1``
(or ``threads=1`` here), otherwise they oversubscribe the cores.
"""

from __future__ import annotations

import ctypes.util
import os
import threading
from typing import Any

__all__ = ["DEBIAN_PACKAGES", "RenderUnavailableError", "configure_threads", "get_context"]

# What scripts/setup.sh installs for this renderer; named in every "cannot render" error.
DEBIAN_PACKAGES = ("libegl1", "libgl1")
_INSTALL_HINT = (
    "install the Debian packages " + " ".join(DEBIAN_PACKAGES) + " (sudo apt-get install -y "
    "--no-install-recommends " + " ".join(DEBIAN_PACKAGES) + "), or run scripts/setup.sh"
)

_lock = threading.Lock()
_context: Any = None


class RenderUnavailableError(RuntimeError):
    """No headless OpenGL context can be created (missing EGL/GL libraries, moderngl, or driver)."""


def configure_threads(threads: int | None) -> None:
    """Set llvmpipe's rasteriser thread count for this process; must run before the first context.

    ``None`` leaves the environment alone (llvmpipe then uses every core). ``0`` renders on the calling
    thread only. Raises RuntimeError if a context already exists with a different setting, because
    Mesa reads the variable once when the driver loads.
    """
    if threads is None:
        return
    if threads < 0:
        raise ValueError(f"threads: must be >= 0, got {threads}")
    current = os.environ.get("LP_NUM_THREADS")
    if _context is not None and current != str(threads):
        raise RuntimeError(
            f"LP_NUM_THREADS is {current!r} and the GL context already exists; set threads={threads} "
            "before the first render in this process (Mesa reads it once)"
        )
    os.environ["LP_NUM_THREADS"] = str(threads)


def _missing_libraries() -> list[str]:
    missing = []
    for lib, pkg in (("EGL", "libegl1"), ("GL", "libgl1")):
        if ctypes.util.find_library(lib) is None:
            missing.append(f"lib{lib}.so ({pkg})")
    return missing


def get_context(threads: int | None = None) -> Any:
    """The process-wide standalone moderngl context on EGL, created on first use.

    Raises RenderUnavailableError naming the Debian packages to install when EGL/GL is missing.
    """
    global _context
    with _lock:
        if _context is not None:
            configure_threads(threads)
            return _context
        configure_threads(threads)
        try:
            import moderngl
        except ImportError as exc:  # pragma: no cover - moderngl is an install requirement
            raise RenderUnavailableError(
                f"moderngl is not installed ({exc}); run scripts/setup.sh or pip install moderngl"
            ) from exc
        try:
            # Without backend="egl" moderngl tries X11/GLX, which fails on a headless machine.
            ctx = moderngl.create_context(standalone=True, backend="egl", require=330)
        except Exception as exc:
            missing = _missing_libraries()
            what = f"missing {', '.join(missing)}; " if missing else ""
            raise RenderUnavailableError(
                f"cannot create a headless OpenGL 3.3 context via EGL ({type(exc).__name__}: {exc}); "
                f"{what}{_INSTALL_HINT}"
            ) from exc
        _context = ctx
        return ctx
