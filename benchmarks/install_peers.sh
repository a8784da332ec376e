#!/usr/bin/env bash
# Install the benchmark peers of benchmarks/simulate.py into their own venv (never into .venv).
#
# Usage: benchmarks/install_peers.sh PUMA_SOURCE [VENV]
#   PUMA_SOURCE  a checkout (or exported tree) of github.com/nasa/puma; its root holds setup.py and
#                python/pumapy (NASA's PuMA; the PyPI package named "pumapy" is an unrelated project)
#   VENV         where to create the environment (default /tmp/peers-venv)
#
# Installs: taufactor and porespy + openpnm (tortuosity peers; openpnm without its MKL-pulling
# dependencies), PuMA's Python package built from source with Cython (finite-element Stokes
# permeability), and lbmpy + pystencils (lattice Boltzmann, code generated and compiled at run
# time). The peers are pinned so a rerun installs the same versions. Compiling PuMA's Cython
# extensions takes over a minute of CPU: on a shared machine run the script under the shared lock,
# e.g. `flock /tmp/heavy.lock benchmarks/install_peers.sh /tmp/peers-src/puma`.
set -euo pipefail

src=${1:?usage: install_peers.sh PUMA_SOURCE [VENV]}
venv=${2:-/tmp/peers-venv}
[ -f "$src/setup.py" ] && [ -d "$src/python/pumapy" ] || {
    echo "install_peers.sh: $src is not a PuMA source tree (expected setup.py and python/pumapy)" >&2
    exit 2
}

python3 -m venv "$venv"
pip=("$venv/bin/python" -m pip install --disable-pip-version-check)
"${pip[@]}" --upgrade pip wheel "setuptools<81"
# torch first, the CPU build where the index offers one (taufactor needs torch; CUDA's is gigabytes)
"${pip[@]}" torch==2.13.0
# PuMA calls scipy's minres(tol=...), a keyword scipy removed in 1.14
"${pip[@]}" numpy "scipy>=1.11,<1.14" scikit-image matplotlib pyvista Cython psutil
"${pip[@]}" taufactor==1.2.1 porespy==3.2.0
"${pip[@]}" --no-deps openpnm==3.6.4
"${pip[@]}" docrep h5py thermo transforms3d
"${pip[@]}" lbmpy==2.0 pystencils==2.0  # 2.1 needs Python >= 3.12
# PuMA from source, Cython extensions compiled against this venv's numpy. numpy 2's Cython
# declarations dropped `np.int_t`, which PuMA's .pyx files use: build a copy with `np.int64_t`
# (what np.int_ is on 64-bit Linux); nothing else is changed.
build=$(mktemp -d /tmp/puma-build.XXXXXX)
cp -r "$src"/setup.py "$src"/README.md "$src"/python "$build"/
sed -i 's/ctypedef np\.int_t /ctypedef np.int64_t /' "$build"/python/pumapy/*/*/*.pyx
"${pip[@]}" --no-build-isolation "$build"
rm -rf "$build"
"$venv/bin/python" - <<'PY'
import importlib.metadata as md
for name in ("taufactor", "porespy", "openpnm", "pumapy", "lbmpy", "pystencils", "numpy", "scipy"):
    try:
        print(f"{name} {md.version(name)}")
    except md.PackageNotFoundError:
        print(f"{name} MISSING")
import pumapy, lbmpy, taufactor, porespy  # noqa: F401,E401  (fails loudly if a peer does not import)
PY
