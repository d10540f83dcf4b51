#!/usr/bin/env bash
# Make .venv a Python >= 3.12 virtualenv with taogram and its dev extras installed (editable).
#
# Python is $TAOGRAM_PYTHON if set, else the optimised CPython `make python` builds
# (/opt/taogram-python: PGO + LTO; the servers spend 11-13 % less CPU a message on it than on a
# pyenv build, docs/operations.md "The interpreter"), else python3, python3.13, python3.12 (each
# actually run: a pyenv shim can exist and still fail), then pyenv's own versions 3.12+; on
# Debian/Ubuntu without one, apt's python3 is installed and looked for again. An existing .venv
# whose python runs and is new enough is kept, unless it was made from another interpreter than
# the preferred one ($TAOGRAM_PYTHON or /opt/taogram-python): then it is made again from that
# one. The packages are installed with uv, itself pip-installed into the venv (pip when that
# fails). Callers: `make venv` (re-runs this only when pyproject.toml changed).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv

good() { "$1" -c 'import sys; assert sys.version_info >= (3, 12)' >/dev/null 2>&1; }

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

apt_install() {
    command -v apt-get >/dev/null 2>&1 || return 1
    echo "ensure-venv: apt-get install $*" >&2
    as_root apt-get update -qq && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"
}

OPTIMISED=/opt/taogram-python/bin/python3

# The interpreter asked for ($TAOGRAM_PYTHON) or built for the project (`make python`), if any.
preferred_python() {
    local candidate=${TAOGRAM_PYTHON:-$OPTIMISED}
    if [ -x "$candidate" ] && good "$candidate"; then
        "$candidate" -c 'import sys; print(sys.executable)'
        return 0
    fi
    return 1
}

find_python() {
    preferred_python && return 0
    local candidate
    for candidate in python3 python3.13 python3.12; do
        if command -v "$candidate" >/dev/null 2>&1 && good "$candidate"; then
            # the real interpreter behind a pyenv shim or a symlink
            "$candidate" -c 'import sys; print(sys.executable)'
            return 0
        fi
    done
    local root
    root=$(pyenv root 2>/dev/null || echo "${PYENV_ROOT:-$HOME/.pyenv}")
    for candidate in "$root"/versions/3.1[2-9]*/bin/python3; do
        if [ -x "$candidate" ] && good "$candidate"; then
            echo "$candidate"
            return 0
        fi
    done
    return 1
}

exec 9>"${TMPDIR:-/tmp}/taogram-venv-$(pwd | cksum | cut -d' ' -f1).lock"
flock 9 2>/dev/null || true  # one install at a time per checkout (engineers share one tree)

if [ -x "$VENV/bin/python" ] && ! good "$VENV/bin/python"; then
    echo "ensure-venv: $VENV/bin/python is missing, broken or older than 3.12: recreating $VENV" >&2
    rm -rf "$VENV"
fi

# The venv's interpreter as pyvenv.cfg names it (`executable`, Python 3.11+), against the preferred one.
if [ -x "$VENV/bin/python" ] && wanted=$(preferred_python); then
    made_from=$(sed -n 's/^executable = //p' "$VENV/pyvenv.cfg" 2>/dev/null || true)
    if [ "$(realpath -m "$made_from")" != "$(realpath -m "$wanted")" ]; then
        echo "ensure-venv: $VENV was made from ${made_from:-another Python}, not $wanted: recreating $VENV" >&2
        rm -rf "$VENV"
    fi
fi

if [ ! -x "$VENV/bin/python" ]; then
    python=$(find_python) || { apt_install python3 python3-venv >&2 && python=$(find_python); } || {
        echo "ensure-venv: no Python >= 3.12 found (tried python3, python3.13, python3.12, pyenv versions," >&2
        echo "and apt's python3). Install Python 3.12+ (e.g. 'pyenv install 3.12') and run make again." >&2
        exit 1
    }
    echo "ensure-venv: creating $VENV with $python ($("$python" --version 2>&1))"
    if ! "$python" -m venv "$VENV"; then
        # Debian/Ubuntu ship venv's ensurepip separately
        rm -rf "$VENV"
        minor=$("$python" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
        apt_install "python$minor-venv" || apt_install python3-venv
        "$python" -m venv "$VENV"
    fi
fi

# This machine's pip config adds local indexes that lack many projects; pip falls back to PyPI
# for those after one warning each, which is noise here. --no-compile: pip would byte-compile
# every module of every package (botocore's and moto's thousands among them), most of which
# nothing imports; Python compiles what is imported, once, on first import (uv never compiles
# unless asked).
quiet_pip() {
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-compile "$@" \
        2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
}

# uv (from PyPI, into the venv) installs the same packages at the same versions as pip in about
# a third of the time (downloads, builds and unpacks in parallel; 11 s against 38 s into a new
# venv on the 2-core box, 9 s once its cache under ~/.cache/uv is warm). Should uv not install
# or fail, pip does the install as before.
echo "ensure-venv: uv pip install -e '.[dev]' into $VENV"
if quiet_pip uv && "$VENV/bin/uv" pip install -q --python "$VENV/bin/python" -e '.[dev]'; then
    exit 0
fi
echo "ensure-venv: uv failed (above); pip install -e '.[dev]' into $VENV instead" >&2
quiet_pip -e '.[dev]'
