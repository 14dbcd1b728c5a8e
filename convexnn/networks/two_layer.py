r"""Two-layer (non-convex) networks: :class:`TwoLayerReLU` and :class:`GatedReLU`.

These are the models the convex programs of :mod:`convexnn.formulations.two_layer` are
equivalent to (Mishkin, Sahiner & Pilanci (ICML 2022) Thm 2.2, Mishkin & Pilanci (ICML 2023) "solution mapping", Pilanci (2021 talk) "ReLU networks are convex group lasso
models"). Conventions (``docs/DESIGN.md``):

* with ``bias=True`` the first layer acts on :math:`X_a = [X, \mathbf 1]`, i.e. the bias is the
  **last row** of ``W1`` and is regularized together with the weights;
* ``W1`` has shape ``(d', m)``, ``w2`` has shape ``(m,)`` (scalar output) or ``(m, c)``;
* the training objective is

  .. math::

      \ell\big(\phi(X_a W_1) w_2,\ y\big) + \frac{\lambda}{2}\sum_{j=1}^m
      \big(\|W_{1,:j}\|_2^2 + \|w_{2,j}\|_2^2\big),

  with :math:`\phi = (\cdot)_+` for ReLU and
  :math:`\phi_{g_j}(X_a, w_j) = \operatorname{diag}(\mathbf 1[X_a g_j \ge 0]) X_a w_j`
  for the gated ReLU of Mishkin, Sahiner & Pilanci (ICML 2022) (Thm 2.2). There is **no output bias** (the convex programs have
  none).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from convexnn.arrangements.limits import one_blas_thread
from convexnn.data import add_bias, check_bool, check_lam, check_X, check_y
from convexnn.errors import InputError
from convexnn.formulations.losses import Loss, get_loss
from convexnn.formulations.penalties import Penalty, get_penalty

__all__ = ["TwoLayerReLU", "GatedReLU", "network_predict", "network_objective", "network_value_grad", "descend",
           "rebalance"]


# ---------------------------------------------------------------------------------- array math
def network_predict(Xa: np.ndarray, W1: np.ndarray, w2: np.ndarray) -> np.ndarray:
    r"""Predictions :math:`\sum_j (X_a W_{1j})_+ w_{2j}` of a two-layer ReLU network, shape ``(n,)`` or ``(n, c)``."""
    return np.maximum(Xa @ W1, 0.0) @ w2


def weight_decay(W1: np.ndarray, w2: np.ndarray) -> float:
    r"""The weight decay :math:`\tfrac12\sum_j (\|W_{1j}\|_2^2 + \|w_{2j}\|_2^2)` (times ``lam`` in the objective)."""
    return 0.5 * (float(np.sum(W1 * W1)) + float(np.sum(w2 * w2)))


def network_objective(Xa: np.ndarray, y: np.ndarray, W1: np.ndarray, w2: np.ndarray, lam: float,
                      loss: Loss, penalty: Penalty | None = None) -> float:
    r"""Network objective :math:`\ell(f(X), y) + \frac{\lambda}{2}\sum_j(\|W_{1j}\|^2 + \|w_{2j}\|^2)` on arrays.

    With a first-layer ``penalty`` :math:`R` other than the group lasso the weight decay is
    :math:`\tfrac12\sum_j(R(W_{1j})^2 + \|w_{2j}\|^2)` (:meth:`Penalty.network_value`). The certificates
    call it on validated arrays; :meth:`TwoLayerReLU.objective` is the same sum after validation.
    """
    pen = None if penalty is None else get_penalty(penalty)
    reg = weight_decay(W1, w2) if pen is None or pen.group_l2 else pen.network_value(W1, w2)
    return loss.value(network_predict(Xa, W1, w2), y) + lam * reg


def network_value_grad(Xa: np.ndarray, y: np.ndarray, W1: np.ndarray, w2: np.ndarray, lam: float,
                       loss: Loss) -> tuple[float, np.ndarray, np.ndarray]:
    r"""Objective of a scalar-output ReLU network and its gradient in ``(W1, w2)``.

    With :math:`H = X_a W_1`, :math:`A = (H)_+` and :math:`g = \nabla\ell(A w_2)`, the gradients are
    :math:`X_a^\top\big(\mathbf 1[H > 0] \odot g w_2^\top\big) + \lambda W_1` and
    :math:`A^\top g + \lambda w_2` (the ReLU's derivative taken as 0 at 0).
    """
    H = Xa @ W1
    A = np.maximum(H, 0.0)
    pred = A @ w2
    g = np.asarray(loss.grad(pred, y), dtype=np.float64)
    f = loss.value(pred, y) + lam * weight_decay(W1, w2)
    return f, Xa.T @ ((H > 0) * np.outer(g, w2)) + lam * W1, A.T @ g + lam * w2


class _Deadline(Exception):
    """Raised inside the objective of :func:`descend` when its deadline has passed."""


@one_blas_thread
def descend(Xa: np.ndarray, y: np.ndarray, W1: np.ndarray, w2: np.ndarray, lam: float, loss: Loss, *,
            max_iter: int = 500, deadline: float | None = None) -> tuple[np.ndarray, np.ndarray, float]:
    r"""Local descent (L-BFGS) on the non-convex objective of a scalar-output ReLU network.

    A heuristic, not a certificate: it returns a point of lower or equal objective (the start when
    the descent does not improve it), a local minimum at best. Every neuron moves continuously
    across the chambers of the arrangement, which a convex program restricted to fixed chambers
    cannot do; :func:`convexnn.solve_global` uses it for its primal side.

    Parameters
    ----------
    Xa : array, shape (n, d')
        Data with the bias column when the network has one.
    y : array, shape (n,)
    W1 : array, shape (d', m)
    w2 : array, shape (m,)
    lam : float
    loss : Loss
        A smooth loss (squared or logistic).
    max_iter : int
        L-BFGS iterations at most.
    deadline : float, optional
        ``time.perf_counter()`` value after which the descent stops at its current point.

    Returns
    -------
    W1, w2, objective
    """
    import time

    from scipy.optimize import minimize

    dp, m = W1.shape
    f0 = network_objective(Xa, y, W1, w2, lam, loss)
    if m == 0 or max_iter <= 0:
        return W1, w2, f0

    best = [f0, np.concatenate([W1.ravel(), w2])]

    def fg(x: np.ndarray) -> tuple[float, np.ndarray]:
        f, g1, g2 = network_value_grad(Xa, y, x[: dp * m].reshape(dp, m), x[dp * m:], lam, loss)
        if f < best[0]:
            best[0], best[1] = f, x.copy()
        if deadline is not None and time.perf_counter() > deadline:
            raise _Deadline
        return f, np.concatenate([g1.ravel(), g2])

    try:
        minimize(fg, best[1].copy(), jac=True, method="L-BFGS-B", options={"maxiter": int(max_iter), "maxcor": 30})
    except _Deadline:
        pass
    x = best[1]
    return x[: dp * m].reshape(dp, m).copy(), x[dp * m:].copy(), float(best[0])


def _output_norms(w2: np.ndarray) -> np.ndarray:
    return np.abs(w2) if w2.ndim == 1 else np.linalg.norm(w2, axis=1)


def rebalance(W1: np.ndarray, w2: np.ndarray, penalty: Penalty | None = None) -> tuple[np.ndarray, np.ndarray]:
    r"""Rescale every neuron so that :math:`\|W_{1j}\|_2 = \|w_{2j}\|_2` (same predictions).

    The activation is positively homogeneous, so :math:`(cW_{1j}, w_{2j}/c)` computes the same
    function for :math:`c > 0`; the choice :math:`c^2 = \|w_{2j}\|/\|W_{1j}\|` minimizes the
    weight decay to :math:`\lambda\|W_{1j}\|\,\|w_{2j}\|` (AM-GM; Mishkin, Sahiner & Pilanci,
    Fast Convex Optimization for Two-Layer ReLU Networks, ICML 2022, proof of Thm 2.2). A neuron
    with one zero factor contributes nothing; it is zeroed (its weight decay drops to 0). With a
    first-layer ``penalty`` :math:`R` the balance is :math:`R(W_{1j}) = \|w_{2j}\|_2`.
    """
    pen = get_penalty(penalty)
    n1 = np.linalg.norm(W1, axis=0) if pen.group_l2 else pen.norms(W1.T)
    a2 = _output_norms(w2)
    live = (n1 > 0) & (a2 > 0)
    c = np.zeros_like(n1)
    c[live] = np.sqrt(a2[live] / n1[live])
    W1b = W1 * c[None, :]
    w2b = np.zeros_like(w2)
    w2b[live] = w2[live] / (c[live] if w2.ndim == 1 else c[live, None])
    return W1b, w2b


def _as_weights(W1: Any, w2: Any) -> tuple[np.ndarray, np.ndarray]:
    W1 = np.array(W1, dtype=np.float64, copy=True)
    w2 = np.array(w2, dtype=np.float64, copy=True)
    if W1.ndim != 2:
        raise InputError(f"W1 must have shape (d, m); got {W1.shape}.")
    if w2.ndim not in (1, 2):
        raise InputError(f"w2 must have shape (m,) or (m, c); got {w2.shape}.")
    if w2.shape[0] != W1.shape[1]:
        raise InputError(f"W1 has {W1.shape[1]} neurons (columns) but w2 has {w2.shape[0]} rows.")
    if not (np.all(np.isfinite(W1)) and np.all(np.isfinite(w2))):
        raise InputError("network weights contain NaN or infinite values.")
    return W1, w2


class _TwoLayer:
    """Shared behaviour of the two-layer networks (weights, design matrix, objective)."""

    def __init__(self, W1: Any, w2: Any, *, bias: bool = False, penalty: str | Penalty | None = None) -> None:
        self.W1, self.w2 = _as_weights(W1, w2)
        self.bias = check_bool(bias, "bias")
        #: first-layer norm R of the weight decay (convexnn.formulations.penalties; default group_l2)
        self.penalty = get_penalty(penalty)
        if self.penalty.name == "nuclear":
            raise InputError("a network's first-layer penalty is a vector norm (group_l2, sparse_group); "
                             "the nuclear norm belongs to vector-output convex programs.")
        if self.bias and self.W1.shape[0] < 2:
            raise InputError("with bias=True, W1 needs d + 1 >= 2 rows (the last row is the bias).")

    # ----------------------------------------------------------------- sizes
    @property
    def n_neurons(self) -> int:
        """Number of hidden neurons ``m``."""
        return int(self.W1.shape[1])

    @property
    def n_features(self) -> int:
        """Input dimension ``d`` (without the bias feature)."""
        return int(self.W1.shape[0] - self.bias)

    @property
    def n_outputs(self) -> int:
        """Number of outputs ``c`` (1 for a scalar-output network)."""
        return 1 if self.w2.ndim == 1 else int(self.w2.shape[1])

    @property
    def vector_output(self) -> bool:
        return self.w2.ndim == 2

    # ----------------------------------------------------------------- evaluation
    def design(self, X: Any) -> np.ndarray:
        """Validated ``Xa`` (``[X, 1]`` when ``bias``) with the right number of columns."""
        Xc = check_X(X)
        if Xc.shape[1] != self.n_features:
            raise InputError(f"X has {Xc.shape[1]} features but the network expects {self.n_features}.")
        return add_bias(Xc) if self.bias else Xc

    def hidden(self, X: Any) -> np.ndarray:  # pragma: no cover - overridden
        raise TypeError("subclasses define hidden()")

    def predict(self, X: Any) -> np.ndarray:
        """Network output, shape ``(n,)`` or ``(n, c)``."""
        return self.hidden(X) @ self.w2

    def regularizer(self) -> float:
        r"""Weight decay :math:`\tfrac12\sum_j (\|W_{1,:j}\|^2 + \|w_{2,j}\|^2)` (multiplied by ``lam`` in :meth:`objective`);
        with a first-layer ``penalty`` :math:`R`, :math:`\tfrac12\sum_j (R(W_{1,:j})^2 + \|w_{2,j}\|^2)`."""
        if not self.penalty.group_l2:
            return self.penalty.network_value(self.W1, self.w2)
        return weight_decay(self.W1, self.w2)

    def objective(self, X: Any, y: Any, lam: float, loss: str | Loss = "squared") -> float:
        r"""Training objective :math:`\ell(f(X), y) + \frac{\lambda}{2}\sum_j(\|W_{1,:j}\|^2 + \|w_{2,j}\|^2)`.

        Parameters
        ----------
        X : array, shape (n, d)
        y : array, shape (n,) or (n, c)
        lam : float
            Nonnegative regularization strength (``0`` gives the plain loss).
        loss : {"squared", "logistic", "hinge"} or Loss
        """
        lo = get_loss(loss)
        pred = self.predict(X)
        yy = check_y(y, pred.shape[0], loss=lo.name)
        if yy.shape != pred.shape:
            raise InputError(f"y has shape {yy.shape} but the network outputs shape {pred.shape}.")
        lam = check_lam(lam, allow_zero=True)
        return lo.value(pred, yy) + lam * self.regularizer()

    # ----------------------------------------------------------------- rescaling
    def balanced(self) -> "_TwoLayer":
        r"""Rescale each neuron so :math:`\|W_{1,:j}\| = \|w_{2,j}\|` (same predictions, smallest weight decay).

        Positive homogeneity of the ReLU (and of the gated unit in its linear argument) gives
        :math:`\phi(X_a W_{1,:j}\beta) w_{2,j}/\beta = \phi(X_a W_{1,:j}) w_{2,j}`; by Young's inequality the
        weight decay is minimal at :math:`\beta = \sqrt{\|w_{2,j}\|/\|W_{1,:j}\|}` (:func:`rebalance`;
        a neuron with one zero factor is zeroed).
        """
        return self._replace(*rebalance(self.W1, self.w2, self.penalty))

    def without_zero_neurons(self, tol: float = 0.0) -> "_TwoLayer":
        """Drop neurons whose first- or second-layer weights have norm ``<= tol`` (they never contribute)."""
        keep = (np.linalg.norm(self.W1, axis=0) > tol) & (_output_norms(self.w2) > tol)
        return self._select(keep)

    def _replace(self, W1: np.ndarray, w2: np.ndarray) -> "_TwoLayer":  # pragma: no cover
        raise TypeError("subclasses define _replace()")

    def _select(self, keep: np.ndarray) -> "_TwoLayer":  # pragma: no cover
        raise TypeError("subclasses define _select()")


class TwoLayerReLU(_TwoLayer):
    r"""Two-layer ReLU network :math:`f(X) = (X_a W_1)_+ w_2`.

    Parameters
    ----------
    W1 : array, shape (d', m)
        First-layer weights, one column per neuron; ``d' = d + 1`` when ``bias`` (last row = bias).
    w2 : array, shape (m,) or (m, c)
        Second-layer weights.
    bias : bool
        Whether the first layer has a bias (regularized with ``W1``, see ``docs/DESIGN.md``).

    Examples
    --------
    >>> import numpy as np
    >>> net = TwoLayerReLU(np.array([[1.0, -1.0]]), np.array([1.0, 1.0]))
    >>> net.predict(np.array([[2.0], [-3.0]]))
    array([2., 3.])
    """

    def hidden(self, X: Any) -> np.ndarray:
        """Hidden activations :math:`(X_a W_1)_+`, shape ``(n, m)``."""
        return np.maximum(self.design(X) @ self.W1, 0.0)

    def patterns(self, X: Any) -> np.ndarray:
        """Activation pattern of each neuron on ``X``: boolean ``(n, m)`` array ``1[X_a W_1 >= 0]``."""
        return self.design(X) @ self.W1 >= 0

    def _replace(self, W1: np.ndarray, w2: np.ndarray) -> "TwoLayerReLU":
        return TwoLayerReLU(W1, w2, bias=self.bias, penalty=self.penalty)

    def _select(self, keep: np.ndarray) -> "TwoLayerReLU":
        return TwoLayerReLU(self.W1[:, keep], self.w2[keep], bias=self.bias, penalty=self.penalty)

    def __repr__(self) -> str:
        return (f"TwoLayerReLU(d={self.n_features}, m={self.n_neurons}, c={self.n_outputs}, "
                f"bias={self.bias})")

    # ----------------------------------------------------------------- torch
    @classmethod
    def from_torch(cls, module: Any, X: Any = None) -> "TwoLayerReLU":
        """Import a torch ``Linear -> ReLU -> Linear`` network.

        ``nn.Sequential(nn.Linear(d, m), nn.ReLU(), nn.Linear(m, c))`` is read by its structure.
        Any other module whose leaf layers are ``Linear, ReLU, Linear`` in that order is read only
        when ``X`` is given, and only after its forward on ``X`` is verified to be the extracted
        network (a skip connection, a scaled output or another activation is refused). With ``X``
        the forward of a ``Sequential`` is verified as well.

        A hidden-layer bias becomes the last row of ``W1`` (``bias=True``). The output layer must
        have no bias, or an all-zero one: the convex programs have no output bias, so a nonzero
        one is refused with an :class:`InputError` rather than silently dropped. ``c = 1`` gives a
        scalar-output network (``w2`` of shape ``(m,)``).

        Raises
        ------
        ImportError
            If torch is not installed.
        InputError
            If the module is not of that form, its output bias is nonzero, or its forward on ``X``
            is not the extracted network.
        """
        torch, nn = _import_torch()
        if isinstance(module, nn.Sequential) and len(module) == 3:
            layers = list(module)
        elif X is not None and isinstance(module, nn.Module):
            layers = [m for m in module.modules() if len(list(m.children())) == 0]
        else:
            layers = None
        kinds = [type(m).__name__ for m in layers] if layers is not None else None
        if kinds != ["Linear", "ReLU", "Linear"]:
            found = f"found layers {kinds}" if kinds is not None else f"got {module!r}"
            raise InputError("expected a torch module Linear -> ReLU -> Linear, i.e. nn.Sequential(nn.Linear(d, m), "
                             "nn.ReLU(), nn.Linear(m, c)) (another module with these layers is read when X is "
                             f"given, to verify its forward); {found}.")
        first, last = layers[0], layers[2]
        if last.in_features != first.out_features:
            raise InputError("the two Linear layers of the module do not chain (hidden sizes differ).")
        if last.bias is not None and bool(torch.any(last.bias.detach() != 0)):
            raise InputError("the output layer has a nonzero bias, which the convex programs do not model; "
                             "train with nn.Linear(m, c, bias=False) (or fold the bias into the targets).")
        W = first.weight.detach().cpu().double().numpy().T  # (d, m)
        bias = first.bias is not None
        if bias:
            W = np.vstack([W, first.bias.detach().cpu().double().numpy()[None, :]])
        w2 = last.weight.detach().cpu().double().numpy().T  # (m, c)
        if w2.shape[1] == 1:
            w2 = w2[:, 0]
        net = cls(W, w2, bias=bias)
        if X is not None:
            net._verify_torch_forward(module, X)
        return net

    def _verify_torch_forward(self, module: Any, X: Any) -> None:
        r"""Refuse a torch module whose forward on ``X`` is not this network.

        The module is run on ``X`` (in its own dtype and device) and compared with
        :math:`\sum_j (X_a W_{1j})_+ w_{2j}` computed in float64; the tolerance is
        ``64 * eps(dtype) * (|X_a| |W_1|) |w_2|`` per sample, far below any real difference.
        """
        torch, _ = _import_torch()
        Xa = self.design(X)
        p = next(iter(module.parameters()), None)
        dtype = p.dtype if p is not None else torch.float64
        device = p.device if p is not None else "cpu"
        with torch.no_grad():
            out = module(torch.as_tensor(Xa[:, :self.n_features], dtype=dtype, device=device))
        out = np.asarray(out.detach().cpu().double().numpy())
        ref = network_predict(Xa, self.W1, self.w2)
        if out.ndim == 2 and out.shape[1] == 1 and ref.ndim == 1:
            out = out[:, 0]
        if out.shape != ref.shape:
            raise InputError(f"the torch module maps X to shape {tuple(out.shape)}; the extracted two-layer "
                             f"ReLU network gives shape {ref.shape}.")
        scale = (np.abs(Xa) @ np.abs(self.W1)) @ np.abs(self.w2) + np.abs(ref)
        tol = 64 * float(torch.finfo(dtype).eps) * scale + 1e-300
        excess = (np.abs(out - ref) - tol).reshape(len(Xa), -1).max(axis=1)
        if np.any(excess > 0):
            j = int(np.argmax(excess))
            raise InputError(
                "the torch module's forward is not the two-layer ReLU network Linear -> ReLU -> Linear read "
                f"from its layers: on sample {j} it returns {np.ravel(out[j])[0]:.6g}, the extracted network "
                f"{np.ravel(ref[j])[0]:.6g} ({int(np.sum(excess > 0))} of {len(excess)} samples differ). A module "
                "with another activation, an output nonlinearity, a scaled output or a skip connection cannot "
                "be certified as a ReLU network.")

    def to_torch(self, dtype: Any = None) -> Any:
        """Export as ``nn.Sequential(nn.Linear(d, m, bias=self.bias), nn.ReLU(), nn.Linear(m, c, bias=False))``.

        The module computes the same function (float64 by default); for a scalar-output network
        its output has shape ``(n, 1)``.
        """
        torch, nn = _import_torch()
        dtype = dtype or torch.float64
        d, m, c = self.n_features, self.n_neurons, self.n_outputs
        first = nn.Linear(d, m, bias=self.bias, dtype=dtype)
        last = nn.Linear(m, c, bias=False, dtype=dtype)
        with torch.no_grad():
            first.weight.copy_(torch.as_tensor(self.W1[:d].T, dtype=dtype))
            if self.bias:
                first.bias.copy_(torch.as_tensor(self.W1[d], dtype=dtype))
            w2 = self.w2[:, None] if self.w2.ndim == 1 else self.w2
            last.weight.copy_(torch.as_tensor(w2.T, dtype=dtype))
        return nn.Sequential(first, nn.ReLU(), last)


class GatedReLU(_TwoLayer):
    r"""Gated ReLU network (Mishkin, Sahiner & Pilanci (ICML 2022) Thm 2.2): :math:`f(X) = \sum_j \operatorname{diag}(\mathbf 1[X_a g_j \ge 0]) X_a W_{1,:j}\, w_{2,j}`.

    The gates :math:`g_j` are fixed (not trained, not regularized); the objective is the
    weight-decay objective of :class:`TwoLayerReLU` with the gated activation.

    Parameters
    ----------
    gates : array, shape (d', m)
        One gate per neuron.
    W1 : array, shape (d', m)
    w2 : array, shape (m,) or (m, c)
    bias : bool
    """

    def __init__(self, gates: Any, W1: Any, w2: Any, *, bias: bool = False,
                 penalty: str | Penalty | None = None) -> None:
        super().__init__(W1, w2, bias=bias, penalty=penalty)
        G = np.array(gates, dtype=np.float64, copy=True)
        if G.shape != self.W1.shape:
            raise InputError(f"gates must have the shape of W1 {self.W1.shape}; got {G.shape}.")
        if not np.all(np.isfinite(G)):
            raise InputError("gates contain NaN or infinite values.")
        self.gates = G

    def hidden(self, X: Any) -> np.ndarray:
        r"""Gated activations :math:`\mathbf 1[X_a G \ge 0] \odot (X_a W_1)`, shape ``(n, m)``."""
        Xa = self.design(X)
        return (Xa @ self.gates >= 0) * (Xa @ self.W1)

    def patterns(self, X: Any) -> np.ndarray:
        """Gate pattern of each neuron on ``X``: boolean ``(n, m)`` array ``1[X_a G >= 0]``."""
        return self.design(X) @ self.gates >= 0

    def _replace(self, W1: np.ndarray, w2: np.ndarray) -> "GatedReLU":
        return GatedReLU(self.gates, W1, w2, bias=self.bias, penalty=self.penalty)

    def _select(self, keep: np.ndarray) -> "GatedReLU":
        return GatedReLU(self.gates[:, keep], self.W1[:, keep], self.w2[keep], bias=self.bias,
                         penalty=self.penalty)

    def __repr__(self) -> str:
        return (f"GatedReLU(d={self.n_features}, m={self.n_neurons}, c={self.n_outputs}, "
                f"bias={self.bias})")


def _import_torch() -> tuple[Any, Any]:
    try:
        import torch
        from torch import nn
    except ImportError as exc:
        raise ImportError("torch is not installed; it is an optional extra: pip install 'convexnn[torch]'.") from exc
    return torch, nn
