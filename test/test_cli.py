"""The ``whmr`` command line entry point."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from whmr_core import __version__
from whmr_ros.cli import main

ROOT = Path(__file__).resolve().parents[1]


def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"whmr {__version__}"


def test_help_lists_subcommands(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "demo" in capsys.readouterr().out


def test_installed_console_script():
    exe = Path(sys.executable).parent / "whmr"
    out = subprocess.run([str(exe), "--version"], capture_output=True, text=True, check=True)
    assert __version__ in out.stdout
