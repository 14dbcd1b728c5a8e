r"""The solver protocol behind :func:`convexnn.solve`, and the registry of solvers.

A solver is a :class:`Solver`: it has a ``name`` (``convexnn.solve(f, method=name)`` asks for it),
a ``family`` (``"interior"`` or ``"first_order"``: ``method="interior"`` / ``"first_order"`` ask
for the first registered solver of that family that supports the program) and three methods:

``supports(formulation) -> str | None``
    ``None`` when the solver can solve the program, otherwise the reason in words (e.g. "the
    'hinge' loss is non-smooth (no Lipschitz gradient) ..."). It reads the program's
    capabilities -- :attr:`Formulation.block_program`, :attr:`Formulation.cone_constraints`,
    ``loss.lipschitz``, ``vector_reg``, ``penalty`` -- never its ``kind`` string.
``estimate_seconds(formulation) -> float | None``
    The solver's cost model (``None``: it has none).
``solve(formulation, **options) -> ConvexSolution``
    ``options`` are the keywords of :func:`convexnn.solve` (``device``, ``dtype``, ``tol``,
    ``max_iter``, ``warm_start``, ``verbose``, ``progress``, ``viol_tol``, ``solver``, ``polish``)
    plus ``auto`` (True when ``method="auto"`` chose it) and ``rescue`` (True when ``auto`` will hand
    an uncertified answer to the interior point: a solver may then stop on a path that rarely
    certifies instead of spending its budget); a solver ignores those it does not use.
    Called with ``auto=True``, it may raise :class:`Decline` (with the reason) after looking at
    the problem, and :func:`convexnn.solve` moves on to the next supporting solver.

The registry is one ordered list (:func:`registered_solvers`): the order is the preference of
``method="auto"`` (see :func:`choose`). Adding a solver is one file with a :class:`Solver`
subclass and one :func:`register_solver` call (see ``docs/DESIGN.md``, "Solvers"), in the
spirit of CVXPY's solver interface (each solver says whether it ``accepts`` a problem) and of
skglm (solvers checking the capabilities of a datafit and a penalty).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from convexnn.errors import InputError
from convexnn.formulations.formulation import ConvexSolution, Formulation

__all__ = ["Solver", "Decline", "Choice", "register_solver", "unregister_solver", "registered_solvers",
           "get_solver", "choose", "warm_weights", "FAMILIES"]

#: The ``method=`` values that select a family of solvers (besides ``"auto"`` and solver names).
FAMILIES = ("interior", "first_order")


class Decline(Exception):
    """Raised by :meth:`Solver.solve` under ``method="auto"`` when another solver is better suited
    after all (the message is the reason, recorded in ``info["auto_reason"]``)."""


class Solver(abc.ABC):
    """A solver of convex programs (:class:`~convexnn.formulations.formulation.Formulation`).

    Attributes
    ----------
    name : str
        Unique name; ``convexnn.solve(f, method=name)`` selects it.
    family : str
        ``"interior"`` or ``"first_order"`` (selected together by ``method=family``), or any
        other label for a solver that is selected by name or by ``"auto"`` only. Stored in
        ``solution.info["method"]`` unless the solver sets it.
    label : str
        Words for messages (e.g. ``"interior-point"``).
    """

    name: str = ""
    family: str = ""
    label: str = ""

    @abc.abstractmethod
    def supports(self, formulation: Formulation) -> str | None:
        """None when this solver can solve ``formulation``, else the reason in words."""

    def estimate_seconds(self, formulation: Formulation) -> float | None:
        """Predicted wall-clock seconds on ``formulation`` (None: no cost model)."""
        return None

    @abc.abstractmethod
    def solve(self, formulation: Formulation, **options: Any) -> ConvexSolution:
        """Solve ``formulation`` (which it supports); see the module docstring for ``options``."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, family={self.family!r})"


_REGISTRY: list[Solver] = []


def register_solver(solver: Solver, *, position: int | None = None, replace: bool = False) -> Solver:
    """Add ``solver`` to the registry and return it.

    Parameters
    ----------
    solver : Solver
    position : int, optional
        Index in the preference order of ``method="auto"`` (default: last, i.e. least preferred;
        ``0``: most preferred).
    replace : bool
        Replace a registered solver of the same name (in its place) instead of refusing.

    Raises
    ------
    InputError
        Not a :class:`Solver`, an empty name, a name that is a ``method`` keyword, or a name
        already registered (without ``replace``).
    """
    if not isinstance(solver, Solver):
        raise InputError(f"register_solver needs a convexnn Solver instance; got {type(solver).__name__}.")
    if not isinstance(solver.name, str) or not solver.name:
        raise InputError("a solver needs a non-empty string name.")
    if solver.name in ("auto",) + FAMILIES:
        raise InputError(f"solver name {solver.name!r} is a method keyword; choose another name.")
    for i, s in enumerate(_REGISTRY):
        if s.name == solver.name:
            if not replace:
                raise InputError(f"a solver named {solver.name!r} is already registered ({s!r}); pass "
                                 "replace=True to replace it.")
            _REGISTRY[i] = solver
            return solver
    _REGISTRY.insert(len(_REGISTRY) if position is None else int(position), solver)
    return solver


def unregister_solver(name: str) -> Solver:
    """Remove the solver ``name`` from the registry and return it (InputError if unknown)."""
    s = get_solver(name)
    _REGISTRY.remove(s)
    return s


def registered_solvers() -> tuple[Solver, ...]:
    """The registered solvers in the preference order of ``method="auto"``."""
    return tuple(_REGISTRY)


def get_solver(name: str) -> Solver:
    """The registered solver called ``name`` (InputError naming the registered ones otherwise)."""
    for s in _REGISTRY:
        if s.name == name:
            return s
    raise InputError(f"no solver named {name!r}; registered: {[s.name for s in _REGISTRY]}.")


@dataclass
class Choice:
    """What :func:`choose` picked: ``solver``, the ``reason`` (``method="auto"``; empty otherwise)
    and the other supporting solvers in preference order (``fallbacks``, tried when the chosen
    one raises :class:`Decline`)."""

    solver: Solver
    reason: str = ""
    fallbacks: list[Solver] = field(default_factory=list)


def _refusals(formulation: Formulation, solvers: list[Solver]) -> list[tuple[Solver, str]]:
    return [(s, r) for s in solvers if (r := s.supports(formulation)) is not None]


def _why_not(refused: list[tuple[Solver, str]]) -> str:
    return "; ".join(f"{s.name}: {r}" for s, r in refused)


def choose(formulation: Formulation, method: str, *, fast_seconds: float = 0.0) -> Choice:
    r"""Pick the solver for ``formulation``.

    ``method``:

    * a solver name: that solver; :class:`InputError` with its reason when it does not support
      the program;
    * ``"interior"`` / ``"first_order"``: the first registered solver of that family that supports
      the program; :class:`InputError` with every refusal (``"<name>: <reason>"``) otherwise;
    * ``"auto"``: among the solvers that support the program, the first (in registry order) whose
      ``estimate_seconds`` is below ``fast_seconds``, else the first in registry order (the most
      preferred); ``Choice.reason`` says why in words, naming the refusals of the others or their
      estimated times.

    Raises
    ------
    InputError
        Unknown method, or no (requested) solver supports the program.
    """
    solvers = list(_REGISTRY)
    kind = getattr(formulation, "kind", type(formulation).__name__)
    if method not in ("auto",) + FAMILIES:
        if method not in [s.name for s in solvers]:
            raise InputError(f"method must be 'auto', 'interior', 'first_order' or a registered solver name "
                             f"{[s.name for s in solvers]}; got {method!r}.")
        s = get_solver(method)
        why = s.supports(formulation)
        if why is not None:
            raise InputError(f"solver {s.name!r} cannot solve this {kind} program: {why}.")
        return Choice(s)
    if method in FAMILIES:
        family = [s for s in solvers if s.family == method]
        refused = _refusals(formulation, family)
        ok = [s for s in family if s not in [r[0] for r in refused]]
        if not ok:
            hint = "" if method == "interior" else "; use method='interior'"
            raise InputError(f"no {method} solver supports this {kind} program ({_why_not(refused)}){hint}.")
        return Choice(ok[0])
    refused = _refusals(formulation, solvers)
    ok = [s for s in solvers if s not in [r[0] for r in refused]]
    if not ok:
        raise InputError(f"no registered solver supports this {kind} program ({_why_not(refused)}).")
    est = {s.name: s.estimate_seconds(formulation) for s in ok} if len(ok) > 1 else {}
    fast = [s for s in ok if est.get(s.name) is not None and est[s.name] < fast_seconds]
    if fast:
        pick = fast[0]
        reason = f"estimated {pick.label or pick.name} time {est[pick.name]:.2g} s is small"
    else:
        pick = ok[0]
        if len(ok) == 1:
            reason = f"the only solver that supports it ({_why_not(refused)})"
        else:
            known = [f"estimated {s.label or s.name} time {est[s.name]:.2g} s" for s in ok[1:]
                     if est.get(s.name) is not None]
            reason = (f"{pick.name} is preferred" + (f"; {', '.join(known)}" if known else ""))
    return Choice(pick, reason, [s for s in ok if s is not pick])


def warm_weights(warm_start: Any, keys: tuple[str, ...], shape: tuple[int, ...]) -> dict[str, np.ndarray] | None:
    """The weights of a ``warm_start`` (a :class:`ConvexSolution` or a dict with ``keys``) as float64
    numpy arrays (torch tensors are copied to the host), each of ``shape``; None for no warm start.

    Raises
    ------
    InputError
        Another type, a missing key, a wrong shape, or a NaN / inf entry (a solver would otherwise
        iterate on it to its budget, or fail deep inside a factorization).
    """
    if warm_start is None:
        return None
    w = warm_start.weights if isinstance(warm_start, ConvexSolution) else warm_start
    if not isinstance(w, dict) or any(k not in w for k in keys):
        raise InputError(f"warm_start must be a ConvexSolution or a dict with keys {keys}; got {type(w).__name__}"
                         + (f" with keys {sorted(w)}" if isinstance(w, dict) else "") + ".")
    out = {}
    for k in keys:
        a = w[k]
        a = a.detach().cpu().numpy() if hasattr(a, "detach") else a
        try:
            a = np.asarray(a, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise InputError(f"warm_start[{k!r}] is not a numeric array: {exc}") from None
        if a.shape != tuple(shape):
            raise InputError(f"warm_start weights must have shape {tuple(shape)}; got {a.shape} for {k!r}.")
        if not np.all(np.isfinite(a)):
            raise InputError(f"warm_start[{k!r}] contains {int(np.sum(~np.isfinite(a)))} NaN or inf entries.")
        out[k] = a
    return out
