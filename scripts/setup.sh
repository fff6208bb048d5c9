#!/usr/bin/env bash
# One-command set-up on a fresh Debian 12 / Python 3.11 machine (no GPU needed):
# Debian packages for headless rendering, then .venv/ at the repository root with whmr and its test
# tools at the pinned versions of requirements/constraints.txt. Running it again only fills gaps.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
# EGL/GL libraries for the offscreen renderer (Mesa llvmpipe on CPU).
APT_PACKAGES=(libegl1 libgl1)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "[setup] installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  echo "[setup] creating .venv with $($PYTHON --version)"
  "$PYTHON" -m venv .venv
fi
quiet() { { grep -v "is ignored" || true; }; }  # this machine's pip config names absent mirrors
.venv/bin/python -m pip install -q --upgrade pip 2>&1 | quiet
echo "[setup] installing whmr and test tools (pinned; torch is the local CPU build)"
.venv/bin/python -m pip install -q -c requirements/constraints.txt -e ".[test]" 2>&1 | quiet
.venv/bin/whmr --version >/dev/null
echo "[setup] done: $(.venv/bin/whmr --version)"
