#!/usr/bin/env bash
# Build an optimised CPython (PGO + LTO, libpython linked into the executable) into
# /opt/taogram-python (or $1), for the server processes and the benchmarks. `make python`.
#
# Why: the interpreter is most of a request's CPU (docs/operations.md, "The interpreter"). A
# CPython built as pyenv does by default (no profile-guided optimisation, no link-time
# optimisation, libpython as a shared library) is the slow kind, unlike the builds Debian, the
# python:3.x Docker images and python-build-standalone ship. Measured here against this machine's
# pyenv 3.12: bench/interpreter_bench.py 35-40 % less CPU, the servers 11-13 % less a message
# (docs/BENCHMARKS.md, "Nineteenth session"). `make venv`
# (scripts/ensure-venv.sh) uses it when it is there and falls back to any Python >= 3.12.
#
# The source is CPython's release tarball, pinned by its SHA-256, fetched from python.org or, where
# only the package registries are reachable, from Debian's archive (its "orig" tarball of the
# python3.13 package is the same file). Takes about 20-30 minutes on 2 cores (most of it the
# profiling run of CPython's own test suite).
set -euo pipefail

# The versions this script knows, each pinned by its tarball's SHA-256 (python.org's, which Debian's
# .dsc of the package repeats for its "orig" tarball). $TAOGRAM_PYTHON_VERSION picks another:
# 3.14.7, built the same way, spent 1.8 and 2.6 % more server CPU a send than 3.13.5 side by side
# (bench/send_ab.py --python-b; docs/BENCHMARKS.md, "Twenty-first session"), so 3.13 stays.
declare -A SHA256S=(
    [3.13.5]=93e583f243454e6e9e4588ca2c2662206ad961659863277afcdb96801647d640
    [3.14.7]=3b48dac8fb59f62eaa67ac83c1eb12bda1b7a08406dd286e252c11a66be27f81
)
VERSION=${TAOGRAM_PYTHON_VERSION:-3.13.5}
SHA256=${SHA256S[$VERSION]:?"build-python: no pinned SHA-256 for CPython $VERSION (known: ${!SHA256S[*]})"}
PREFIX=${1:-/opt/taogram-python}
URLS=(
    "https://www.python.org/ftp/python/$VERSION/Python-$VERSION.tar.xz"
    "http://deb.debian.org/debian/pool/main/p/python${VERSION%.*}/python${VERSION%.*}_$VERSION.orig.tar.xz"
)

if [ -x "$PREFIX/bin/python3" ] && [ "$("$PREFIX/bin/python3" -c 'import platform; print(platform.python_version())')" = "$VERSION" ]; then
    echo "build-python: $PREFIX already holds CPython $VERSION"
    exit 0
fi

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

# The headers of the optional modules a server imports (ssl, ctypes for uvloop's deps, sqlite3
# for the embedded store, lzma/bz2/zlib, readline for the REPL, uuid).
BUILD_DEPS=(build-essential pkg-config libssl-dev libffi-dev zlib1g-dev libbz2-dev libsqlite3-dev
            liblzma-dev libreadline-dev uuid-dev libncurses-dev)
if command -v dpkg-query >/dev/null 2>&1; then
    missing=()
    for pkg in "${BUILD_DEPS[@]}"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        echo "build-python: apt-get install ${missing[*]}"
        as_root apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
    fi
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/taogram-python-build.XXXXXX")
trap 'rm -rf "$work"' EXIT
tarball="$work/Python-$VERSION.tar.xz"
for url in "${URLS[@]}"; do
    echo "build-python: fetching $url"
    if curl -fsSL --max-time 300 -o "$tarball" "$url" && echo "$SHA256  $tarball" | sha256sum -c --quiet; then
        break
    fi
    rm -f "$tarball"
done
[ -f "$tarball" ] || { echo "build-python: could not fetch CPython $VERSION (tried ${URLS[*]})" >&2; exit 1; }

tar -xJf "$tarball" -C "$work"
src=$(find "$work" -maxdepth 1 -type d -name 'Python-*' | head -1)
cd "$src"
# --enable-optimizations: PGO (an instrumented build runs CPython's test suite, then the
# interpreter is rebuilt with the profile); --with-lto: link-time optimisation. No
# --enable-shared: the interpreter calls into itself without the PLT and TLS indirection a
# shared libpython costs.
./configure --prefix="$PREFIX" --enable-optimizations --with-lto --with-ensurepip=install >"$work/configure.log"
# The profiling run is CPython's own tests (`-m test --pgo`); one of them failing on this machine
# (seen here once: a test that does not expect to run as root) says nothing about the
# interpreter, and the profile it gathered is as good: the run's failure does not stop the build.
make -j"$(nproc)" PROFILE_TASK='-m test --pgo --timeout=1200 || true' >"$work/make.log" 2>&1 \
    || { tail -50 "$work/make.log" >&2; exit 1; }
as_root make altinstall >"$work/install.log" 2>&1 || { tail -50 "$work/install.log" >&2; exit 1; }
as_root ln -sf "python${VERSION%.*}" "$PREFIX/bin/python3"
echo "build-python: installed $("$PREFIX/bin/python3" --version) at $PREFIX"
