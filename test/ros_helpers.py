"""Helpers for the tests that run under a real ROS 2 (imported by them and by conftest's fixtures)."""

from __future__ import annotations

import ctypes
import glob
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Workspace:
    root: Path
    install: Path  # install/whmr_ros
    env: dict[str, str]  # the environment after `source install/setup.bash`

    @property
    def site_packages(self) -> Path:
        v = sys.version_info
        return self.install / "lib" / f"python{v.major}.{v.minor}" / "site-packages"


def build_workspace(root: Path, repo: Path) -> Workspace:
    """colcon build of the repository (linked as the only source) into ``root``; fails with colcon's log."""
    (root / "src").mkdir(parents=True, exist_ok=True)
    link = root / "src" / "whmr"
    if not link.is_symlink():
        link.symlink_to(repo)
    # As a user builds: in the venv that holds whmr's dependencies (its python first on PATH).
    venv = Path(sys.executable).parent
    env = dict(
        os.environ, COLCON_PYTHON=sys.executable, VIRTUAL_ENV=str(venv.parent), PYTHONDONTWRITEBYTECODE="1"
    )
    env["PATH"] = f"{venv}:{env.get('PATH', '')}"
    proc = subprocess.run(
        ["colcon", "--log-base", str(root / "log"), "build", "--packages-select", "whmr_ros",
         "--build-base", str(root / "build"), "--install-base", str(root / "install"),
         "--base-paths", str(root / "src")],
        cwd=root, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    if proc.returncode != 0:
        raise AssertionError(
            f"colcon build failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
        )
    dump = subprocess.run(
        ["bash", "-c", f"source {root / 'install' / 'setup.bash'} && env -0"],
        env=env, capture_output=True, check=True, timeout=60,
    )  # fmt: skip
    sourced = dict(kv.split("=", 1) for kv in dump.stdout.decode().split("\0") if "=" in kv)
    return Workspace(root, root / "install" / "whmr_ros", sourced)


def use_built_messages(ws: Workspace) -> None:
    """Make ``whmr_ros.msg`` of the build importable in this process, beside the source ``whmr_ros``.

    A sourced workspace would put the libraries on LD_LIBRARY_PATH before the process starts; here they
    are loaded by path instead (the type support finds them through LD_LIBRARY_PATH at run time)."""
    lib = ws.install / "lib"
    os.environ["LD_LIBRARY_PATH"] = f"{lib}:{os.environ.get('LD_LIBRARY_PATH', '')}"
    todo = sorted(glob.glob(str(lib / "lib*.so")))
    while todo:  # in dependency order: retry what needs a library not loaded yet
        left = []
        for f in todo:
            try:
                ctypes.CDLL(f, mode=ctypes.RTLD_GLOBAL)
            except OSError:
                left.append(f)
        if len(left) == len(todo):
            raise OSError(f"cannot load {left}")
        todo = left
    import whmr_ros

    built = str(ws.site_packages / "whmr_ros")
    if built not in whmr_ros.__path__:
        whmr_ros.__path__.append(built)


def spin_until(
    executor, condition: Callable[[], bool], timeout_s: float = 10.0, step_s: float = 0.02
) -> bool:
    """Spin ``executor`` until ``condition()`` holds; False after ``timeout_s`` (no fixed sleeps)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        executor.spin_once(timeout_sec=step_s)
    return condition()
