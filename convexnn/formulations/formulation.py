r"""The :class:`Formulation` (a convex program you can inspect, then solve) and its
:class:`ConvexSolution`.

Every builder (``c_relu``, ``c_grelu``, ``three_layer``, the deep programs) returns a subclass
of :class:`Formulation`. It holds the ``cvxpy.Problem`` (``.problem``), the regularization
strength as a nonnegative ``cp.Parameter`` (``.lam``: change ``.lam.value`` and re-solve, CVXPY
reuses the compiled problem), the variables and named constraints, the validated data and the
patterns. A subclass supplies four pieces of math: how to read the weights out of the solved
variables, the predictions, the regularizer, and the map back to a network.

Solving with an interior-point method goes through :meth:`Formulation.solve`; first-order
methods (``convexnn.solve(..., method="first_order")``) produce the same :class:`ConvexSolution`,
so mappings, KKT conditions and certificates work unchanged.
"""

from __future__ import annotations

import abc
import logging
import time
import warnings
from dataclasses import dataclass, field
from functools import lru_cache
from collections.abc import Callable
from typing import Any

import cvxpy as cp
import numpy as np

from convexnn._cvxpy_warnings import translated
from convexnn.arrangements.patterns import Patterns
from convexnn.errors import InaccurateSolutionWarning, InputError, NotFittedError, SolverError, TooLargeError
from convexnn.formulations.losses import Loss

__all__ = ["Formulation", "ConvexSolution", "default_solver", "mosek_available"]

log = logging.getLogger("convexnn")

_OK = {cp.OPTIMAL}

#: Default refusal threshold of :meth:`Formulation.solve`: estimated nonzeros of the
#: canonicalized conic problem. CVXPY needs roughly 1 us and 200 bytes per nonzero to compile
#: (measured: C-ReLU with 3.9e7 nonzeros compiles in about 70 s), and interior-point methods
#: factor matrices of this size at every iteration.
MAX_INTERIOR_NNZ = 5 * 10**7
_INACCURATE = {cp.OPTIMAL_INACCURATE}


@lru_cache(maxsize=1)
def mosek_available() -> bool:
    """True when MOSEK is installed *and* licensed (probed once by solving a tiny problem)."""
    if "MOSEK" not in cp.installed_solvers():
        return False
    try:
        x = cp.Variable()
        cp.Problem(cp.Minimize(cp.abs(x - 1))).solve(solver=cp.MOSEK)
        return True
    except Exception as exc:  # licence missing or expired
        log.info("MOSEK is installed but not usable (%s); using Clarabel.", exc)
        return False


def default_solver() -> str:
    """The interior-point solver used when none is named: MOSEK if licensed, else Clarabel."""
    return cp.MOSEK if mosek_available() else cp.CLARABEL


class _Deferred:
    """An attribute of the CVXPY program (``problem``, ``variables``, ``constraints``): reading it
    builds a deferred program first (:meth:`Formulation._materialize`)."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.key = "_" + name

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return self
        obj._materialize()
        return obj.__dict__.get(self.key)

    def __set__(self, obj: Any, value: Any) -> None:
        obj.__dict__[self.key] = value


class Formulation(abc.ABC):
    """A convex reformulation of a neural-network training problem, ready to inspect and solve.

    Attributes
    ----------
    problem : cvxpy.Problem
        The convex program. Inspect it (``print(f.problem)``, ``f.problem.is_dcp()``) before solving.
        A program whose dense constants exceed the builder's limit is *deferred* (``deferred``):
        built on first access of ``problem``, ``variables`` or ``constraints`` (which then raises
        :class:`~convexnn.errors.TooLargeError` with the size), while the first-order solvers,
        which never need it, solve it from the data.
    lam : cvxpy.Parameter
        Nonnegative regularization strength; set ``f.lam.value`` and call :meth:`solve` again to
        re-solve without recompiling.
    kind : str
        ``"c_relu"``, ``"c_grelu"``, ``"three_layer"``, ...
    loss : Loss
    X : ndarray, shape (n, d)
        The validated data (without the bias column).
    Xa : ndarray, shape (n, d')
        The design matrix the weights act on (``[X, 1]`` when ``bias``).
    y : ndarray, shape (n,) or (n, c)
    patterns : Patterns
    bias : bool
    variables : dict[str, cvxpy.Variable]
    constraints : dict[str, cvxpy.Constraint]
        Named constraint groups (e.g. ``"cone_v"``); their ``dual_value`` after a solve holds the
        multipliers used by :func:`convexnn.kkt`.
    meta : dict
        Builder-specific information (e.g. the size estimate).
    """

    kind: str = "formulation"
    #: the program's blocks live in the cones K_i (C-ReLU) rather than being free (C-GReLU)
    cone_constraints: bool = False
    #: names of the weight arrays in ``ConvexSolution.weights`` (two-layer programs)
    weight_keys: tuple[str, ...] = ()
    #: the program is exactly ``loss(sum_i D_i Xa b_i, y) + lam * penalty(blocks)`` over the blocks
    #: named by ``weight_keys`` (``b_i = u_i``, or ``v_i - w_i``), with the cones ``K_i`` (when
    #: ``cone_constraints``) as its only constraints: what the first-order solvers act on, through
    #: ``Xa``, ``patterns.masks``, ``y``, ``loss`` and ``lam_value`` (see ``convexnn.solvers.protocol``)
    block_program: bool = False

    def __init__(
        self,
        problem: cp.Problem,
        lam: cp.Parameter,
        *,
        X: np.ndarray,
        Xa: np.ndarray,
        y: np.ndarray,
        loss: Loss,
        patterns: Patterns,
        bias: bool,
        variables: dict[str, cp.Variable],
        constraints: dict[str, cp.Constraint] | None = None,
        meta: dict[str, Any] | None = None,
        build: Callable[[], tuple[cp.Problem, dict[str, cp.Variable], dict[str, cp.Constraint]]] | None = None,
    ) -> None:
        self._build = build  # a deferred CVXPY program: built on first access of problem / variables / constraints
        self.problem = problem
        self.lam = lam
        self.X = X
        self.Xa = Xa
        self.y = y
        self.loss = loss
        self.patterns = patterns
        self.bias = bias
        self.variables = dict(variables)
        self.constraints = dict(constraints or {})
        self.meta = dict(meta or {})
        self.last_solution: ConvexSolution | None = None

    # ----------------------------------------------------------------- the CVXPY program (possibly deferred)
    def _materialize(self) -> None:
        build = self.__dict__.get("_build")
        if build is not None:
            problem, variables, constraints = build()  # may raise TooLargeError: then it stays deferred
            self._problem, self._variables, self._constraints = problem, dict(variables), dict(constraints)
            self._build = None

    problem = _Deferred()
    variables = _Deferred()
    constraints = _Deferred()

    @property
    def deferred(self) -> bool:
        """True while the CVXPY program has not been built (large programs are built on first access
        of ``problem`` / ``variables`` / ``constraints``; the first-order solvers never need it)."""
        return self.__dict__.get("_build") is not None

    # ----------------------------------------------------------------- pickling
    def __getstate__(self) -> dict[str, Any]:
        """Pickle the data, patterns, settings and the value of ``lam``, without CVXPY objects.

        The CVXPY problem, variables and constraints are dropped (they hold compiled solver
        state that cannot be pickled). An unpickled formulation still evaluates predictions,
        objectives and mappings of its solutions; to solve again, build it anew with its
        builder (e.g. ``convexnn.c_relu(f.X, f.y, f.patterns, lam)``).
        """
        state = {k: _strip_cvxpy(v) for k, v in self.__dict__.items()
                 if k not in ("_problem", "_variables", "_constraints", "_build", "last_solution", "lam",
                              "_chamber_facets")}
        state["_lam_value"] = None if self.lam is None or self.lam.value is None else float(self.lam.value)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        lam = state.pop("_lam_value", None)
        self.__dict__.update(state)
        self._build = None
        self.problem = None  # type: ignore[assignment]
        self.variables, self.constraints, self.last_solution = {}, {}, None
        self.lam = cp.Parameter(nonneg=True, name="lam", value=lam)

    # ----------------------------------------------------------------- the math a subclass gives
    @abc.abstractmethod
    def weights_from_variables(self) -> dict[str, np.ndarray]:
        """Read the convex weights out of the solved CVXPY variables."""

    @abc.abstractmethod
    def predict(self, weights: dict[str, np.ndarray]) -> np.ndarray:
        """Predictions of the convex model with ``weights`` on the training data."""

    @abc.abstractmethod
    def regularizer(self, weights: dict[str, np.ndarray]) -> float:
        """The (unscaled) regularizer, e.g. ``sum_i ||v_i|| + ||w_i||``; the objective adds ``lam`` times it."""

    @abc.abstractmethod
    def to_network(self, solution: "ConvexSolution") -> Any:
        """Map a solution of this program to a network with the same objective value."""

    def constraint_violation(self, weights: dict[str, np.ndarray]) -> float:
        """Largest violation of the program's constraints at ``weights`` (0 for unconstrained programs)."""
        return 0.0

    # ----------------------------------------------------------------- shared behaviour
    @property
    def lam_value(self) -> float:
        """Current value of the regularization parameter as a float (validated: a value set on the
        ``cvxpy.Parameter`` directly, e.g. ``f.lam.value = 0``, is refused like one passed to the
        builder)."""
        if self.lam.value is None:
            raise InputError("lam has no value; set formulation.lam.value first.")
        from convexnn.data import check_lam

        return check_lam(self.lam.value)

    def set_lam(self, lam: float) -> "Formulation":
        """Set the regularization strength (validated) and return ``self``."""
        from convexnn.data import check_lam

        self.lam.value = check_lam(lam)
        return self

    def objective(self, weights: dict[str, np.ndarray]) -> float:
        """Convex objective ``loss(predict(weights), y) + lam * regularizer(weights)`` in numpy."""
        return self.loss.value(self.predict(weights), self.y) + self.lam_value * self.regularizer(weights)

    @property
    def n_patterns(self) -> int:
        return len(self.patterns)

    def nnz_estimate(self) -> int:
        """Estimated nonzeros of the canonicalized (conic) problem CVXPY will build.

        Builders override this with a formula for their program (e.g. ``4 n P d'`` for C-ReLU:
        two masked products and two cone constraints, each ``n x P`` entries depending on ``d'``
        weights). The default counts the program's scalar variables and constraints.
        """
        s = self.size()
        return int(s["variables"] + s["constraints"])

    def size(self) -> dict[str, int]:
        """Number of scalar variables and constraints of the program (as CVXPY counts them)."""
        n_var = int(sum(v.size for v in self.problem.variables()))
        n_con = int(sum(c.size for c in self.problem.constraints))
        return {"variables": n_var, "constraints": n_con, "patterns": self.n_patterns}

    def solve(self, solver: str | None = None, *, verbose: bool = False,
              max_nnz: int | None = MAX_INTERIOR_NNZ, **kwargs: Any) -> "ConvexSolution":
        """Solve with an interior-point (or any CVXPY) solver and return a :class:`ConvexSolution`.

        Parameters
        ----------
        solver : str, optional
            A CVXPY solver name. Default: MOSEK when installed and licensed, else Clarabel.
            ``"SCS"`` is available on request (first-order, less accurate).
        verbose : bool
            Forwarded to CVXPY.
        max_nnz : int or None
            Refuse (:class:`TooLargeError`) when :meth:`nnz_estimate` exceeds this; ``None``
            disables the check.
        **kwargs
            Forwarded to ``cvxpy.Problem.solve`` (solver options).

        Raises
        ------
        TooLargeError
            If the estimated size exceeds ``max_nnz`` (the message names the estimate and the
            first-order alternative).
        SolverError
            If the solver fails or reports infeasible / unbounded / user-limit statuses.

        Warns
        -----
        InaccurateSolutionWarning
            If the status is ``optimal_inaccurate`` (the solution is returned, flagged by ``.status``).
        """
        if self.lam.value is None:
            raise InputError("lam has no value; set formulation.lam.value before solving.")
        if self.__dict__.get("_problem") is None and not self.deferred:
            raise InputError(f"this {self.kind} formulation was unpickled or loaded without its CVXPY problem; "
                             "build it again with its builder (e.g. convexnn.c_relu(f.X, f.y, f.patterns, lam)) "
                             "to solve.")
        if max_nnz is not None:
            est = self.nnz_estimate()
            if est > max_nnz:
                raise TooLargeError(
                    f"{self.kind} with {self.n_patterns} patterns, n={self.Xa.shape[0]}, d'={self.Xa.shape[1]} "
                    f"would compile to about {est:.3g} nonzeros (limit {max_nnz:.3g}; roughly "
                    f"{est * 200 / 2**30:.1f} GiB and {est * 2e-6:.0f} s to compile). Use "
                    "convexnn.solve(formulation, method='first_order'), fewer patterns, or pass "
                    "max_nnz=None to try anyway.", estimate=est, limit=max_nnz)
        name = (solver or default_solver()).upper()
        if name not in cp.installed_solvers():
            raise SolverError(f"solver {name!r} is not installed; installed: {cp.installed_solvers()}.",
                              solver=name)
        if name == cp.MOSEK and solver is not None and not mosek_available():
            raise SolverError("MOSEK is installed but not licensed; use solver='CLARABEL'.", solver=name)
        t0 = time.perf_counter()
        try:
            with translated(f"{self.kind} with {name}"):  # status checked below
                self.problem.solve(solver=name, verbose=verbose, **kwargs)
        except cp.error.SolverError as exc:
            hint = ("Try convexnn.solve(formulation, method='first_order'), another solver "
                    "(solver='SCS' or 'MOSEK'), or fewer patterns.")
            if self.loss.name == "logistic" and name == cp.CLARABEL:
                hint = ("Clarabel is known to stall on logistic programs with many second-order "
                        "cones; " + hint)
            raise SolverError(f"{name} failed on {self.kind} ({self.size()}): {exc} {hint}", solver=name,
                              status="solver_error") from exc
        wall = time.perf_counter() - t0
        status = self.problem.status
        if status not in _OK | _INACCURATE:
            raise SolverError(f"{name} returned status {status!r} for {self.kind}; no solution is "
                              "returned.", status=status, solver=name)
        if status in _INACCURATE:
            warnings.warn(f"{name} returned status {status!r} for {self.kind}: the solution may be "
                          "inaccurate (check .status, or try solver='MOSEK' / tighter tolerances).",
                          InaccurateSolutionWarning, stacklevel=2)
        compile_time = float(self.problem.compilation_time or 0.0)
        stats = self.problem.solver_stats
        solve_time = float(stats.solve_time) if stats and stats.solve_time is not None else wall - compile_time
        weights = self.weights_from_variables()
        sol = ConvexSolution(
            formulation=self,
            weights=weights,
            value=float(self.problem.value),
            status=status,
            solver=name,
            solve_time=solve_time,
            compile_time=compile_time,
            iterations=getattr(stats, "num_iters", None),
            lam=self.lam_value,
            duals=self.dual_snapshot(),
        )
        self.last_solution = sol
        return sol

    def dual_snapshot(self) -> dict[str, np.ndarray]:
        """Copies of the current ``dual_value`` of every named constraint (those that have one).

        CVXPY overwrites the dual values at every solve; a :class:`ConvexSolution` keeps this
        snapshot (``sol.duals``) so its multipliers stay those of *its* solve after ``lam`` is
        changed and the program solved again.
        """
        out: dict[str, np.ndarray] = {}
        for key, con in self.constraints.items():
            dv = getattr(con, "dual_value", None)
            if dv is None:
                continue
            try:
                out[key] = np.array(dv, dtype=np.float64)  # always a copy
            except (TypeError, ValueError):  # ragged (e.g. second-order cone duals): keep copies
                out[key] = [np.array(a, dtype=np.float64) for a in dv]  # type: ignore[assignment]
        return out


def _strip_cvxpy(value: Any) -> Any:
    """``value`` without CVXPY objects (dropped from dicts / replaced by ``None``), for pickling."""
    if isinstance(value, (cp.Problem, cp.Expression, cp.Constraint)):
        return None
    if isinstance(value, dict):
        return {k: _strip_cvxpy(v) for k, v in value.items()
                if not isinstance(v, (cp.Problem, cp.Expression, cp.Constraint))}
    return value


@dataclass
class ConvexSolution:
    """A solution of a :class:`Formulation`, from any solver.

    Attributes
    ----------
    formulation : Formulation
    weights : dict[str, ndarray]
        The convex weights, e.g. ``{"V": (P, d), "W": (P, d)}`` for C-ReLU or ``{"U": (P, d)}``
        for C-GReLU (``(P, d, c)`` for vector outputs). Also reachable as attributes
        (``sol.V``).
    value : float
        The optimal value reported by the solver.
    status : str
        ``"optimal"`` or ``"optimal_inaccurate"`` (other statuses raise), or a first-order
        solver's status (``"optimal"`` / ``"max_iter"``).
    solver : str
    solve_time, compile_time : float
        Seconds spent in the solver and in CVXPY's compilation (0 for first-order methods).
    iterations : int or None
    lam : float
        The regularization strength the solution is for.
    info : dict
        Solver-specific extras (duality gap reached, constraint violation, history, ...).
    duals : dict[str, ndarray]
        The multipliers of the formulation's named constraints *at this solve* (copies of
        CVXPY's ``dual_value``, e.g. ``duals["cone_v"]`` of shape ``(n, P)``), used by
        :func:`convexnn.kkt`. Empty for solutions without solver multipliers (first-order
        methods, networks mapped back, loaded files); ``kkt`` then recomputes them.
    """

    formulation: Formulation
    weights: dict[str, np.ndarray]
    value: float
    status: str
    solver: str
    solve_time: float = 0.0
    compile_time: float = 0.0
    iterations: int | None = None
    lam: float = float("nan")
    info: dict[str, Any] = field(default_factory=dict)
    duals: dict[str, np.ndarray] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Any:
        weights = self.__dict__.get("weights")
        if weights is not None and name in weights:
            return weights[name]
        raise AttributeError(f"ConvexSolution has no attribute {name!r}")

    @property
    def fit(self) -> np.ndarray:
        """Predictions of the convex model on the training data."""
        return self.formulation.predict(self.weights)

    @property
    def residual(self) -> np.ndarray:
        """``fit - y``."""
        return self.fit - self.formulation.y

    def objective(self) -> float:
        """The convex objective recomputed in numpy at these weights (with ``self.lam``)."""
        f = self.formulation
        return f.loss.value(self.fit, f.y) + self.lam * f.regularizer(self.weights)

    @property
    def constraint_violation(self) -> float:
        return self.formulation.constraint_violation(self.weights)

    def to_network(self) -> Any:
        """Map to a network whose (non-convex) objective equals :attr:`value` (see the builder's docs)."""
        if not self.weights:
            raise NotFittedError("this solution holds no weights.")
        return self.formulation.to_network(self)

    def __repr__(self) -> str:
        shapes = {k: tuple(np.shape(v)) for k, v in self.weights.items()}
        return (f"ConvexSolution({self.formulation.kind}, value={self.value:.6g}, status={self.status!r}, "
                f"solver={self.solver}, solve_time={self.solve_time:.3g}s, compile_time="
                f"{self.compile_time:.3g}s, weights={shapes})")
