#!/usr/bin/env bash
# Create bench/../.venv-peers with the two peer solvers of the first-order benchmark:
#   pyscnn==0.0.10 (pilancilab/scnn: R-FISTA for gated ReLU, augmented Lagrangian for ReLU)
#   adelie           (group lasso, adelie.matrix.convex_relu)
#   skglm            (group lasso; with adelie, the peers of bench/bench_matrix.py, which runs in
#                     this venv: its numpy<2, cvxpy and clarabel also run convexnn from the repo)
# They live in their own venv because pyscnn pulls torch/torchvision and adelie pins numpy<2.
# torch is pinned to 2.13.0 (CPU wheel, installs from local disk); pyscnn's unpinned `torch`
# and `torchvision` requirements would otherwise download several GB of CUDA wheels, so pyscnn
# is installed without its dependency resolver and its real run-time imports are installed
# explicitly (it never imports torchvision in the code paths the benchmark uses).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
VENV="${PEERS_VENV:-$ROOT/.venv-peers}"
PY="${PEERS_PYTHON:-$(command -v python3.11 || command -v python3)}"
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip install -q)
"${PIP[@]}" "torch==2.13.0" "numpy>=1.24.2,<2"
"${PIP[@]}" "numpy>=1.24.2,<2" "scipy<2" "scikit-learn<2" cvxpy clarabel tqdm opt_einsum typing_extensions
"${PIP[@]}" --no-deps "pyscnn==0.0.10" linalg_backends || echo "PEERS: pyscnn install failed" >&2
"${PIP[@]}" "numpy>=1.24.2,<2" adelie || echo "PEERS: adelie install failed" >&2
"${PIP[@]}" "numpy>=1.24.2,<2" skglm || echo "PEERS: skglm install failed" >&2
"$VENV/bin/python" - <<'PYEOF'
for name in ("scnn", "adelie", "skglm"):
    try:
        mod = __import__(name)
        print(f"PEERS: {name} ok ({getattr(mod, '__file__', '')})")
    except Exception as exc:  # report, do not fail: the benchmark table says which peer is missing
        print(f"PEERS: {name} unavailable: {exc!r}")
PYEOF
