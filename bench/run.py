"""Run every benchmark side by side and assemble bench/RESULTS.md.

Usage::

    make bench                      # all benchmarks
    python bench/run.py arrangements solvers   # a subset

Each ``bench/bench_<area>.py`` runs its comparison in one process (convexnn and the
alternatives on the same data) and writes ``bench/RESULTS_<area>.md``; this script runs them
in turn and concatenates those files into ``bench/RESULTS.md`` under a header naming the
machine and the command.
"""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
#: the matrix imports its peers (adelie, skglm; numpy<2) in process: it runs in their venv when present
AREAS = ["arrangements", "formulations", "certify", "solvers", "matrix", "heldout", "degenerate", "facets", "huber", "deep", "bab", "distributed", "scale"]


def main(argv: list[str]) -> int:
    if argv == ["--assemble"]:
        assemble()
        return 0
    areas = argv or AREAS
    unknown = sorted(set(areas) - set(AREAS))
    if unknown:
        print(f"unknown benchmark(s) {unknown}; choose from {AREAS}", file=sys.stderr)
        return 2
    failed = []
    for area in areas:
        script = HERE / f"bench_{area}.py"
        print(f"=== {script.name} ===", flush=True)
        env = dict(os.environ)
        if area in ("solvers", "matrix", "heldout"):  # as recorded in RESULTS_<area>.md: single-threaded BLAS
            env.setdefault("OPENBLAS_NUM_THREADS", "1")
        python = sys.executable  # the matrix starts the peers' own environment itself (.venv-peers)
        rc = subprocess.call([python, str(script)], cwd=HERE.parent, env=env)
        if rc != 0:
            failed.append(area)
    assemble()
    if failed:
        print(f"benchmarks failed: {failed}", file=sys.stderr)
        return 1
    return 0


def assemble() -> None:
    """Concatenate the per-area result files into bench/RESULTS.md."""
    parts = [
        "# convexnn benchmark results\n",
        "`make bench` (= `.venv/bin/python bench/run.py`) reruns every section and reassembles "
        "this file; each section names the command that produced it and reproduces it alone. "
        "`python bench/run.py --assemble` only reassembles the sections.\n",
        f"- assembled: {datetime.date.today().isoformat()}",
        f"- machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}\n",
    ]
    for area in AREAS:
        f = HERE / f"RESULTS_{area}.md"
        if f.exists():
            parts.append(f.read_text().rstrip() + "\n")
    (HERE / "RESULTS.md").write_text("\n".join(parts))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
