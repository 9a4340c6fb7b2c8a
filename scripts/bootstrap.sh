#!/usr/bin/env bash
# Sets up a fresh machine for building and testing flashlib: Debian packages
# that are missing (installed only when absent, only when we are root or have
# sudo), then a project-local Python virtual environment in .venv with numpy,
# scikit-learn and pytest. Idempotent: a second run does nothing but check.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

need_pkgs=()
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
if command -v dpkg-query >/dev/null 2>&1; then
    for p in build-essential cmake libopenblas-openmp-dev liblapacke-dev python3-venv; do
        have_pkg "$p" || need_pkgs+=("$p")
    done
fi
# python3-venv is only needed when the python on PATH is Debian's own.
if [ ${#need_pkgs[@]} -gt 0 ] && python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
    tmp=(); for p in "${need_pkgs[@]}"; do [ "$p" = python3-venv ] || tmp+=("$p"); done
    need_pkgs=("${tmp[@]+"${tmp[@]}"}")
fi
if [ ${#need_pkgs[@]} -gt 0 ]; then
    echo "bootstrap: installing Debian packages: ${need_pkgs[*]}"
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
fi

py=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    echo "bootstrap: creating .venv"
    "$py" -m venv .venv
fi
if ! .venv/bin/python -c 'import numpy, sklearn, pytest' >/dev/null 2>&1; then
    echo "bootstrap: installing numpy, scikit-learn, pytest into .venv"
    .venv/bin/python -m pip install -q --disable-pip-version-check numpy scikit-learn pytest
fi
