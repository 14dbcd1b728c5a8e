r"""scikit-learn estimators backed by the exact convex programs of two-layer networks.

:class:`ConvexReLURegressor` / :class:`ConvexReLUClassifier` fit a two-layer ReLU network by
solving the C-ReLU program; :class:`ConvexGatedReLURegressor` /
:class:`ConvexGatedReLUClassifier` fit a gated ReLU network by solving C-GReLU (Pilanci &
Ergen, *Neural Networks are Convex Regularizers*, ICML 2020; Mishkin, Sahiner & Pilanci, *Fast
Convex Optimization for Two-Layer ReLU Networks*, ICML 2022). With ``patterns="exact"`` the
program is equivalent to training the network of any width under weight decay, so the fitted
network is a *global* minimizer of

.. math::

    \ell\big(f(X), y\big) + \frac{\lambda}{2}\sum_j \big(\|W_{1,:j}\|_2^2 + \|w_{2,j}\|_2^2\big),

with the loss summed over samples (``0.5 * sum((f - y)**2)`` for ``loss="squared"``) and the
hidden bias (``bias=True``) regularized with the weights (``docs/DESIGN.md``). With
``patterns="sample"`` (default) ``n_patterns`` random gates are drawn: the program is then a
restriction (C-ReLU) or exactly the gated network (C-GReLU), which is what most users want
for prediction and is fast.

``lam`` is **not** divided by ``n``: it plays the role of ``alpha`` in
:class:`sklearn.linear_model.Ridge` (unnormalized sum of squares). PyTorch users converting
``weight_decay`` use :func:`convexnn.lam_from_torch`.

Classification: labels of any type are encoded with :class:`~sklearn.preprocessing.LabelEncoder`;
two classes give one output with targets :math:`\pm 1`, ``K > 2`` classes give ``K`` outputs
with targets :math:`\pm 1` (one-vs-rest). With the default group regularizer the ``K``-output
program separates into ``K`` independent binary programs (each neuron serves one class), solved
together.
"""

from __future__ import annotations

import numbers
import warnings
from typing import Any

import numpy as np
from scipy.special import expit
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.exceptions import ConvergenceWarning as _SkConvergenceWarning
from sklearn.preprocessing import LabelEncoder
from sklearn.utils import check_random_state
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from convexnn.arrangements.enumerate import enumerate_patterns
from convexnn.arrangements.patterns import Patterns
from convexnn.arrangements.sample import sample_patterns
from convexnn.errors import ConvergenceWarning, InputError
from convexnn.formulations.two_layer import c_grelu, c_relu

__all__ = [
    "ConvexReLURegressor",
    "ConvexReLUClassifier",
    "ConvexGatedReLURegressor",
    "ConvexGatedReLUClassifier",
    "EstimatorConvergenceWarning",
]


class EstimatorConvergenceWarning(ConvergenceWarning, _SkConvergenceWarning):
    """An estimator's solver stopped before its tolerance; the message reports the certified gap.

    Subclass of both :class:`convexnn.ConvergenceWarning` and
    :class:`sklearn.exceptions.ConvergenceWarning`, so filters for either catch it.
    """


_METHODS = ("auto", "interior", "first_order")
_PATTERNS = ("sample", "exact")


class _ConvexTwoLayer(BaseEstimator):
    """Shared fitting logic (parameter validation, patterns, solve, warnings)."""

    _kind = "c_relu"
    _losses: tuple[str, ...] = ("squared",)

    def __init__(
        self,
        lam: float = 1.0,
        *,
        n_patterns: int = 20,
        patterns: str = "sample",
        loss: str = "squared",
        bias: bool = True,
        method: str = "auto",
        tol: float = 1e-4,
        max_iter: int | None = None,
        solver: str | None = None,
        device: str | None = None,
        max_patterns: int = 10**5,
        random_state: Any = None,
        certify: bool = False,
        certify_time: float = 10.0,
        l1_ratio: float = 0.0,
    ) -> None:
        self.l1_ratio = l1_ratio
        self.certify = certify
        self.certify_time = certify_time
        self.lam = lam
        self.n_patterns = n_patterns
        self.patterns = patterns
        self.loss = loss
        self.bias = bias
        self.method = method
        self.tol = tol
        self.max_iter = max_iter
        self.solver = solver
        self.device = device
        self.max_patterns = max_patterns
        self.random_state = random_state

    # ------------------------------------------------------------------ validation
    def _check_params(self) -> None:
        lam = self.lam
        if isinstance(lam, bool) or not isinstance(lam, numbers.Real) or not np.isfinite(lam) or lam <= 0:
            raise InputError(f"lam must be a positive finite number; got {lam!r}.")
        if self.patterns not in _PATTERNS:
            raise InputError(f"patterns must be one of {_PATTERNS}; got {self.patterns!r}.")
        if self.patterns == "sample" and (isinstance(self.n_patterns, bool)
                                          or not isinstance(self.n_patterns, numbers.Integral)
                                          or self.n_patterns < 1):
            raise InputError(f"n_patterns must be a positive integer; got {self.n_patterns!r}.")
        if self.loss not in self._losses:
            raise InputError(f"loss must be one of {self._losses} for {type(self).__name__}; got {self.loss!r}.")
        if not isinstance(self.bias, (bool, np.bool_)):
            raise InputError(f"bias must be True or False; got {self.bias!r}.")
        if self.method not in _METHODS:
            raise InputError(f"method must be one of {_METHODS}; got {self.method!r}.")
        if isinstance(self.tol, bool) or not isinstance(self.tol, numbers.Real) or not self.tol > 0:
            raise InputError(f"tol must be a positive number; got {self.tol!r}.")
        a = self.l1_ratio
        if isinstance(a, bool) or not isinstance(a, numbers.Real) or not 0.0 <= a < 1.0:
            raise InputError(f"l1_ratio must be a number in [0, 1); got {a!r}.")
        if not isinstance(self.certify, (bool, np.bool_)):
            raise InputError(f"certify must be True or False; got {self.certify!r}.")
        if self.certify and self._kind != "c_relu":
            raise InputError("certify=True is for ReLU networks (ConvexReLURegressor / ConvexReLUClassifier); "
                             "a gated network is certified by the KKT conditions of its convex solution "
                             "(convexnn.kkt(estimator.solution_)).")
        if isinstance(self.certify_time, bool) or not isinstance(self.certify_time, numbers.Real) \
                or not self.certify_time > 0:
            raise InputError(f"certify_time must be a positive number of seconds; got {self.certify_time!r}.")
        if self.max_iter is not None and (isinstance(self.max_iter, bool)
                                          or not isinstance(self.max_iter, numbers.Integral)
                                          or self.max_iter < 1):
            raise InputError(f"max_iter must be None or a positive integer; got {self.max_iter!r}.")

    def _make_patterns(self, X: np.ndarray) -> Patterns:
        if self.patterns == "exact":
            return enumerate_patterns(X, bias=bool(self.bias), max_patterns=int(self.max_patterns))
        rs = check_random_state(self.random_state)
        seed = np.random.default_rng(int(rs.randint(0, 2**31 - 1)))
        return sample_patterns(X, int(self.n_patterns), seed=seed, bias=bool(self.bias))

    def _fit_targets(self, X: np.ndarray, T: np.ndarray) -> None:
        """Solve the convex program for targets ``T`` ((n,) or (n, c)) and set the fitted attributes."""
        self._check_params()
        pats = self._make_patterns(X)
        build = c_relu if self._kind == "c_relu" else c_grelu
        f = build(X, T, pats, float(self.lam), loss=self.loss, bias=bool(self.bias),
                  l1_ratio=float(self.l1_ratio) if self.l1_ratio else None)
        from convexnn.solvers.dispatch import solve

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            sol = solve(f, method=self.method, tol=float(self.tol), max_iter=self.max_iter,
                        solver=self.solver, device=self.device)
        for w in caught:  # re-emit outside the recorder so the caller's filters apply
            if issubclass(w.category, ConvergenceWarning):
                warnings.warn(f"{type(self).__name__}: {w.message}", EstimatorConvergenceWarning, stacklevel=3)
            else:
                warnings.warn(w.message, w.category, stacklevel=3)
        self.patterns_ = pats
        self.solution_ = sol
        self.network_ = sol.to_network()
        self.n_iter_ = int(sol.iterations) if sol.iterations is not None else 0
        gap = sol.info.get("gap")
        self.gap_ = float(gap) if gap is not None else float("nan")
        self.objective_ = float(sol.value)
        if self.certify:
            from convexnn.duality.certify import certify as certify_network

            if T.ndim == 2 and T.shape[1] > 1:
                raise InputError("certify=True needs a single output (regression with y of shape (n,) or a "
                                 "binary classifier); the certificate is for scalar-output networks.")
            t = T if T.ndim == 1 else T[:, 0]
            w2 = self.network_.w2 if self.network_.w2.ndim == 1 else self.network_.w2[:, 0]
            self.certificate_ = certify_network((self.network_.W1, w2), X, t, float(self.lam),
                                                loss=self.loss, time_limit=float(self.certify_time),
                                                penalty=f.penalty)

    def _output(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "network_")
        Xc = validate_data(self, X, reset=False, dtype=np.float64)
        return self.network_.predict(Xc)

    @property
    def n_neurons_(self) -> int:
        """Number of hidden neurons of the fitted network (nonzero blocks of the convex solution)."""
        check_is_fitted(self, "network_")
        return int(self.network_.n_neurons)

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.non_deterministic = self.random_state is None and self.patterns == "sample"
        return tags


# ====================================================================== regression
class _RegressorBase(RegressorMixin, _ConvexTwoLayer):
    _losses = ("squared",)

    def fit(self, X: Any, y: Any) -> "_RegressorBase":
        """Fit the network by solving the convex program.

        Parameters
        ----------
        X : array-like, shape (n_samples, n_features)
        y : array-like, shape (n_samples,) or (n_samples, n_outputs)

        Returns
        -------
        self
        """
        X, y = validate_data(self, X, y, y_numeric=True, multi_output=True, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        self._fit_targets(X, y)
        return self

    def predict(self, X: Any) -> np.ndarray:
        """Network output, shape ``(n_samples,)`` or ``(n_samples, n_outputs)``."""
        return self._output(X)

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags


class ConvexReLURegressor(_RegressorBase):
    r"""Two-layer ReLU network regression, fitted by solving the C-ReLU program.

    Minimizes :math:`\tfrac12\|f(X) - y\|^2 + \frac{\lambda}{2}\sum_j(\|W_{1,:j}\|^2 + \|w_{2,j}\|^2)`
    over networks :math:`f(X) = (X_a W_1)_+ w_2` whose neurons use the activation patterns of
    ``patterns`` (all of them with ``patterns="exact"``: then the fit is the global optimum over
    every width; Pilanci & Ergen, ICML 2020).

    Parameters
    ----------
    lam : float, default=1.0
        Weight decay :math:`\lambda > 0` (not divided by ``n``; see :func:`convexnn.lam_from_torch`).
    n_patterns : int, default=20
        Number of random gates with ``patterns="sample"``.
    patterns : {"sample", "exact"}, default="sample"
        ``"exact"`` enumerates every chamber of the arrangement (small ``d`` only; more than
        ``max_patterns`` raises :class:`~convexnn.TooLargeError`).
    loss : {"squared"}, default="squared"
    bias : bool, default=True
        Hidden-layer bias (regularized with the weights). The network has no output bias.
    method : {"auto", "interior", "first_order"}, default="auto"
        Forwarded to :func:`convexnn.solve`.
    tol : float, default=1e-4
        Relative certified duality gap at which the first-order solvers stop.
    max_iter : int, optional
        First-order iteration budget.
    solver : str, optional
        CVXPY solver of the interior-point method.
    device : str, optional
        First-order backend (``"cuda"`` for a GPU).
    max_patterns : int, default=100000
        Refuse ``patterns="exact"`` beyond this many chambers.
    random_state : int, RandomState or None
        Seed of the sampled gates.
    certify : bool, default=False
        Also certify the fitted network (:func:`convexnn.certify`): a proof of how far it is from
        the global optimum over *all* networks of any width, not only over ``patterns``.
    certify_time : float, default=10.0
        Seconds for the branch and bound of the certificate when the patterns are not complete.
    l1_ratio : float in [0, 1), default=0.0
        Sparse-group weight decay on the first layer (:class:`~convexnn.SparseGroup`):
        :math:`R(w) = (1 - a)\|w\|_2 + a\|w\|_1` replaces :math:`\|w\|_2`, so irrelevant input
        features get exactly zero weight (feature selection; the interior point or R-FISTA solve it).

    Attributes
    ----------
    network_ : TwoLayerReLU
        The fitted network (``network_.to_torch()`` exports it).
    certificate_ : Certificate
        With ``certify=True``: lower bound, gap and verdict for the fitted network.
    solution_ : ConvexSolution
    patterns_ : Patterns
    n_iter_ : int
        Solver iterations.
    gap_ : float
        Certified relative duality gap reached by a first-order solve (``nan`` after an
        interior-point solve, whose status certifies optimality to the solver's tolerance).
    objective_ : float
        Optimal value of the convex program (= the network objective).
    n_features_in_ : int
    n_neurons_ : int

    Examples
    --------
    >>> from sklearn.datasets import load_diabetes
    >>> X, y = load_diabetes(return_X_y=True)
    >>> est = ConvexReLURegressor(lam=1.0, random_state=0).fit(X[:100], y[:100] / 100)
    >>> est.predict(X[:2]).shape
    (2,)
    """

    _kind = "c_relu"


class ConvexGatedReLURegressor(_RegressorBase):
    r"""Gated ReLU network regression, fitted by solving the C-GReLU program (a group lasso).

    The network :math:`f(X) = \sum_j \operatorname{diag}(\mathbf 1[X_a g_j \ge 0]) X_a W_{1,:j} w_{2,j}`
    has fixed gates :math:`g_j` (the sampled or enumerated witness gates); the objective is the
    weight-decay objective of :class:`ConvexReLURegressor` (Pilanci & Ergen, ICML 2020, Thm 2.2;
    Mishkin et al., ICML 2022). Same parameters and attributes as :class:`ConvexReLURegressor`;
    ``network_`` is a :class:`~convexnn.GatedReLU`.
    """

    _kind = "c_grelu"


# ====================================================================== classification
class _ClassifierBase(ClassifierMixin, _ConvexTwoLayer):
    _losses = ("logistic", "squared", "hinge")

    def __init__(
        self,
        lam: float = 1.0,
        *,
        n_patterns: int = 20,
        patterns: str = "sample",
        loss: str = "logistic",
        bias: bool = True,
        method: str = "auto",
        tol: float = 1e-4,
        max_iter: int | None = None,
        solver: str | None = None,
        device: str | None = None,
        max_patterns: int = 10**5,
        random_state: Any = None,
        l1_ratio: float = 0.0,
    ) -> None:
        super().__init__(lam, n_patterns=n_patterns, patterns=patterns, loss=loss, bias=bias, method=method,
                         tol=tol, max_iter=max_iter, solver=solver, device=device,
                         max_patterns=max_patterns, random_state=random_state, l1_ratio=l1_ratio)

    def fit(self, X: Any, y: Any) -> "_ClassifierBase":
        """Fit one-vs-rest networks (one output for two classes) by solving the convex program.

        Parameters
        ----------
        X : array-like, shape (n_samples, n_features)
        y : array-like, shape (n_samples,)
            Class labels of any type.

        Returns
        -------
        self
        """
        X, y = validate_data(self, X, y, dtype=np.float64)
        check_classification_targets(y)
        le = LabelEncoder().fit(y)
        self.classes_ = le.classes_
        K = len(self.classes_)
        if K < 2:
            raise InputError(f"{type(self).__name__} needs samples of at least 2 classes; the data contain "
                             f"only one class: {self.classes_[0]!r}.")
        codes = le.transform(y)
        if K == 2:
            T = 2.0 * codes - 1.0
        else:
            T = -np.ones((codes.size, K))
            T[np.arange(codes.size), codes] = 1.0
        self._fit_targets(X, T)
        return self

    def decision_function(self, X: Any) -> np.ndarray:
        """Network outputs: shape ``(n_samples,)`` for two classes (positive means ``classes_[1]``),
        ``(n_samples, n_classes)`` otherwise (one-vs-rest scores)."""
        return self._output(X)

    def predict(self, X: Any) -> np.ndarray:
        """Predicted class labels (sign of the score for two classes, arg-max otherwise)."""
        F = self.decision_function(X)
        if F.ndim == 1:
            return self.classes_[(F > 0).astype(int)]
        return self.classes_[np.argmax(F, axis=1)]

    def _is_logistic(self) -> bool:
        return self.loss == "logistic"

    @available_if(_is_logistic)
    def predict_proba(self, X: Any) -> np.ndarray:
        r"""Class probabilities (``loss="logistic"`` only).

        Two classes: :math:`P(\text{classes\_}[1]) = \sigma(f(x))`, the model the logistic loss
        :math:`\log(1 + e^{-y f})` fits. More classes: the one-vs-rest probabilities
        :math:`\sigma(f_k(x))` normalized to sum to one.
        """
        F = self.decision_function(X)
        if F.ndim == 1:
            p = expit(F)
            return np.column_stack([1.0 - p, p])
        Pm = expit(F)
        s = Pm.sum(axis=1, keepdims=True)
        s[s == 0] = 1.0
        return Pm / s

    @available_if(_is_logistic)
    def predict_log_proba(self, X: Any) -> np.ndarray:
        """Logarithm of :meth:`predict_proba`."""
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))


class ConvexReLUClassifier(_ClassifierBase):
    r"""Two-layer ReLU network classifier, fitted by solving the C-ReLU program.

    Minimizes :math:`\sum_i \ell(f(x_i), t_i) + \frac{\lambda}{2}\sum_j(\|W_{1,:j}\|^2 + \|w_{2,j}\|^2)`
    with targets :math:`t_i = \pm 1` (one-vs-rest for more than two classes) and
    :math:`\ell` the logistic loss :math:`\log(1 + e^{-t f})` (default), the squared loss
    :math:`\tfrac12(f - t)^2` or the hinge loss :math:`\max(0, 1 - t f)` (Pilanci & Ergen, ICML 2020).

    Parameters are those of :class:`ConvexReLURegressor`, with ``loss`` in
    ``{"logistic", "squared", "hinge"}`` (default ``"logistic"``; ``predict_proba`` needs it).

    Attributes
    ----------
    classes_ : ndarray
        The class labels (any type).
    network_ : TwoLayerReLU
        Scalar output for two classes, ``n_classes`` outputs otherwise.
    solution_, patterns_, n_iter_, gap_, objective_, n_features_in_, n_neurons_
        As in :class:`ConvexReLURegressor`.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> X, y = load_iris(return_X_y=True)
    >>> clf = ConvexReLUClassifier(lam=1.0, random_state=0).fit(X, y)
    >>> clf.predict_proba(X[:3]).shape
    (3, 3)
    """

    _kind = "c_relu"


class ConvexGatedReLUClassifier(_ClassifierBase):
    r"""Gated ReLU network classifier, fitted by solving the C-GReLU program.

    As :class:`ConvexReLUClassifier` with the gated network of :class:`ConvexGatedReLURegressor`
    (``network_`` is a :class:`~convexnn.GatedReLU`).
    """

    _kind = "c_grelu"

