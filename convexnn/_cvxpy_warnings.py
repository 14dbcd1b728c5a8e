"""Translate the warnings CVXPY emits while convexnn solves its programs.

CVXPY attributes its warnings to the first stack frame outside the cvxpy package, that is to
convexnn's own ``problem.solve(...)`` line, so a user would see a bare ``UserWarning`` that seems
to come from convexnn and does not say which program or what to do. :func:`translated` records
the warnings raised inside its block and, on exit,

* drops the ones convexnn already reports in its own terms: "Solution may be inaccurate"
  (the caller checks the status and warns :class:`~convexnn.errors.InaccurateSolutionWarning`
  or raises :class:`~convexnn.errors.SolverError`) and "infeasible or unbounded" (a
  :class:`~convexnn.errors.SolverError` follows);
* logs the purely informational ones at INFO level on the ``"convexnn"`` logger: the
  canonicalization backend CVXPY picked, "too many subexpressions" (compile-time hints on
  programs convexnn builds) and the DPP notice (the program is recompiled at each solve);
* re-issues any other CVXPY warning as a :class:`~convexnn.errors.ConvexNNWarning` naming the
  program, and every non-CVXPY warning unchanged.
"""

from __future__ import annotations

import logging
import re
import warnings
from contextlib import contextmanager
from typing import Iterator

from convexnn.errors import ConvexNNWarning, InaccurateSolutionWarning

__all__ = ["translated"]

log = logging.getLogger("convexnn")

_HANDLED = re.compile(r"^(Solution may be inaccurate|The problem is either infeasible or unbounded)", re.I)
_INFO = re.compile(r"(backend for canonicalization|too many subexpressions|DPP)", re.I)


def _from_cvxpy(w: warnings.WarningMessage) -> bool:
    """True for warnings issued by cvxpy or a solver it calls.

    CVXPY attributes its warnings to the calling frame, so they are recognized by category: the
    blocks wrapped by :func:`translated` only call CVXPY, and CVXPY warns with plain
    ``UserWarning``; convexnn's own warnings are subclasses and pass through unchanged.
    """
    return "cvxpy" in (w.filename or "").replace("\\", "/") or w.category is UserWarning


@contextmanager
def translated(context: str, *, inaccurate_status_checked: bool = True) -> Iterator[None]:
    """Record CVXPY's warnings inside the block and re-issue them in convexnn's terms (see module doc).

    Parameters
    ----------
    context : str
        What is being solved (e.g. ``"c_relu with CLARABEL"``), used in the messages.
    inaccurate_status_checked : bool
        True when the caller checks the solver status itself (then CVXPY's "Solution may be
        inaccurate" is dropped); False turns it into an :class:`InaccurateSolutionWarning`.
    """
    pending: list[warnings.WarningMessage] = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                yield
            finally:
                pending = list(caught)
    finally:  # also when the block raises: the warnings recorded so far are not lost
        _reissue(pending, context, inaccurate_status_checked)


def _reissue(pending: list[warnings.WarningMessage], context: str, inaccurate_status_checked: bool) -> None:
    # stacklevel 5: _reissue, translated, contextlib.__exit__, the ``with`` in convexnn, its caller
    for w in pending:
        if not _from_cvxpy(w):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, source=w.source)
            continue
        msg = str(w.message)
        if _HANDLED.search(msg):
            if msg.lower().startswith("solution may be inaccurate") and not inaccurate_status_checked:
                warnings.warn(f"{context}: the solver returned an inaccurate solution; check the status or "
                              "use tighter solver tolerances / another solver.",
                              InaccurateSolutionWarning, stacklevel=5)
            continue
        if _INFO.search(msg):
            log.info("%s: cvxpy: %s", context, msg)
            continue
        warnings.warn(f"{context}: cvxpy warned: {msg}", ConvexNNWarning, stacklevel=5)
