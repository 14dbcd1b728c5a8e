"""Exception and warning hierarchy of convexnn.

One class per kind of misuse, so callers can catch exactly what they mean:

* :class:`InputError` -- the data or arguments are invalid (NaN/inf, wrong shape or dtype,
  ``lam <= 0``, labels outside ``{-1, +1}`` for classification losses, patterns built for
  another data matrix, ...). Also a :class:`ValueError`, so generic code still catches it.
* :class:`TooLargeError` -- the requested object (pattern set, convex program) would be too
  large to build; the message names the estimated size and what to do instead.
* :class:`SolverError` -- a numerical solver failed or returned a status that does not
  certify a solution (infeasible, unbounded, error).
* :class:`NotFittedError` -- an estimator or solution was used before it was computed.

Warnings:

* :class:`InaccurateSolutionWarning` -- the solver returned an ``*_inaccurate`` status.
* :class:`ConvergenceWarning` -- an iterative method stopped before reaching its tolerance;
  the message reports the duality gap / violation reached.
* :class:`NotProvenWarning` -- a result that is normally exact (a count, a complete pattern
  set) could not be proven for this data; the message says why.
* :class:`PrecisionWarning` -- a requested tolerance is below what the floating-point type of
  the computation can certify (e.g. ``dtype="float32"``) and was raised; the message gives
  the requested and the effective tolerance.
"""

from __future__ import annotations

__all__ = [
    "ConvexNNError",
    "InputError",
    "TooLargeError",
    "SolverError",
    "NotFittedError",
    "ConvexNNWarning",
    "InaccurateSolutionWarning",
    "ConvergenceWarning",
    "NotProvenWarning",
    "PrecisionWarning",
]


class ConvexNNError(Exception):
    """Base class of every error raised by convexnn."""


class InputError(ConvexNNError, ValueError):
    """Invalid data or arguments (shape, dtype, NaN/inf, out-of-range parameter)."""


class TooLargeError(ConvexNNError):
    """The object to build is too large; the message names the estimate and an alternative.

    Attributes
    ----------
    estimate : int or float
        The estimated size (number of patterns, variables, bytes, ... as stated in the message).
    limit : int or float
        The limit that was exceeded.
    """

    def __init__(self, message: str, *, estimate: float | None = None, limit: float | None = None):
        super().__init__(message)
        self.estimate = estimate
        self.limit = limit


class SolverError(ConvexNNError):
    """A solver failed or returned a status that does not certify a solution.

    Attributes
    ----------
    status : str or None
        The status string reported by the solver.
    solver : str or None
        The name of the solver.
    """

    def __init__(self, message: str, *, status: str | None = None, solver: str | None = None):
        super().__init__(message)
        self.status = status
        self.solver = solver


class NotFittedError(ConvexNNError, AttributeError):
    """An estimator or solution was used before it was fitted / solved."""


class ConvexNNWarning(UserWarning):
    """Base class of every warning emitted by convexnn."""


class InaccurateSolutionWarning(ConvexNNWarning):
    """The solver reported an inaccurate status (e.g. ``optimal_inaccurate``)."""


class ConvergenceWarning(ConvexNNWarning):
    """An iterative solver stopped before reaching its tolerance (the gap reached is reported)."""


class NotProvenWarning(ConvexNNWarning):
    """A normally exact result could not be proven for this data (the message says what and why)."""


class PrecisionWarning(ConvexNNWarning):
    """A requested tolerance was raised to what the floating-point type can certify (both are reported)."""
