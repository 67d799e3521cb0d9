#!/usr/bin/env bash
# The one set-up path used by README's commands (via make) and by CI:
#   1. Debian packages headless MuJoCo rendering needs (Mesa EGL, OSMesa), when missing;
#   2. a virtual environment in .venv;
#   3. the project with its pinned dependencies (re-installed only when pyproject.toml changes).
set -euo pipefail
cd "$(dirname "$0")/.."

apt_packages=(libegl1 libegl-mesa0 libgl1-mesa-dri libgles2 libosmesa6)
missing=()
for pkg in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  if command -v apt-get >/dev/null; then
    sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
    echo "setup: installing ${missing[*]} (headless rendering)"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "setup: warning: no apt-get; install EGL/OSMesa for MuJoCo yourself: ${missing[*]}" >&2
  fi
fi

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $($python --version)"
  "$python" -m venv .venv
fi

stamp=".venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  echo "setup: installing worldmodel and its pinned dependencies into .venv (first time: several minutes)"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e '.[dev]'
  rm -f .venv/.installed-*
  touch "$stamp"
fi
echo "setup: ready (.venv)"
