"""The ``convexnn`` command line (``convexnn ...`` or ``python -m convexnn ...``).

Commands: ``certify`` (a saved torch model or ``.npz`` weights on a CSV / NPY / NPZ data set),
``solve``, ``path`` (JSON output), ``enumerate`` and ``count`` (activation patterns). Built with
typer, an optional extra: ``pip install 'convexnn[cli]'``.

Exit codes (for scripts):

====  ==============================================================================
0     success; for ``certify``: the network is certified globally optimal; for
      ``solve``: the solver reached its tolerance
1     ran fine, but NOT optimal: ``certify`` found a gap above ``--rtol`` (or an
      improving neuron); ``solve`` / ``path`` stopped before the tolerance
2     input error: bad arguments, unreadable or invalid files / data, missing optional
      dependency (typer's own usage errors also exit with 2)
3     solver failure (the solver crashed or returned no solution)
4     too large: the pattern set or program exceeds the size limits
====  ==============================================================================
"""

from __future__ import annotations

import sys
from typing import Sequence

__all__ = ["main", "EXIT_OK", "EXIT_NOT_OPTIMAL", "EXIT_INPUT", "EXIT_SOLVER", "EXIT_TOO_LARGE"]

EXIT_OK = 0
EXIT_NOT_OPTIMAL = 1
EXIT_INPUT = 2
EXIT_SOLVER = 3
EXIT_TOO_LARGE = 4

INSTALL_HINT = ("The convexnn command line needs typer, an optional extra:\n"
                "    pip install 'convexnn[cli]'\n"
                "(the library itself works without it: import convexnn).")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns (and, as a console script, exits with) the exit code."""
    try:
        import typer  # noqa: F401
    except ImportError:
        print(INSTALL_HINT, file=sys.stderr)
        return EXIT_INPUT
    from convexnn._cli_app import app

    try:
        app(args=list(argv) if argv is not None else None, prog_name="convexnn", standalone_mode=True)
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else EXIT_INPUT)
    return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
