r"""Array-level helpers shared by the duality module.

Everything here works on plain arrays: a two-layer ReLU network is a pair ``(W1, w2)`` with
``W1`` of shape ``(d', m)`` (column ``j`` is the first-layer weight of neuron ``j``, acting on
``Xa = [X, 1]`` when ``bias``) and ``w2`` of shape ``(m,)``. The network objective is (DESIGN.md)

.. math::

    F(W_1, w_2) = \ell\Big(\sum_j (X_a W_{1j})_+ w_{2j},\ y\Big)
    + \frac{\lambda}{2}\sum_j \big(\|W_{1j}\|_2^2 + w_{2j}^2\big).

The central numerical kernel is :func:`cone_support`: for a dual candidate :math:`v` it computes

.. math::

    s(v) = \max_{i,\ \sigma = \pm 1}\ \max_{u \in \mathcal K_i,\ \|u\|_2 \le 1}
           \sigma \langle X_a^\top D_i v, u\rangle
         = \max_{i, \sigma} \big\|\Pi_{\mathcal K_i}(\sigma X_a^\top D_i v)\big\|_2 ,

the left-hand side of the dual constraints of C-ReLU (002, 004 eq. (6)). By Moreau's
decomposition, with :math:`A_i = (2D_i - I) X_a` (so :math:`\mathcal K_i = \{u : A_i u \ge 0\}`
and its polar is :math:`\{-A_i^\top \rho : \rho \ge 0\}`),

.. math::

    \|\Pi_{\mathcal K_i}(g)\|_2 = \min_{\rho \ge 0} \|g + A_i^\top \rho\|_2 ,

a non-negative least-squares problem (NNLS). *Any* :math:`\rho \ge 0` gives an upper bound, so
an inexact NNLS can only make the reported :math:`s(v)` larger, never smaller: the certificates
built on it stay valid lower bounds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import nnls

from convexnn.data import check_lam, check_X, check_y
from convexnn.errors import InputError
from convexnn.formulations.losses import Loss, get_loss

__all__ = [
    "NetworkArrays",
    "as_network_arrays",
    "network_predict",
    "network_objective",
    "rebalance",
    "rebuild_network",
    "cone_support",
    "ConeSupport",
    "project_cone",
    "global_support_bound",
    "best_scale",
    "certified_dual_value",
    "objective_error_bound",
]

_CHUNK = 4096  # patterns processed at once by cone_support (memory: n * _CHUNK floats)


# ---------------------------------------------------------------------------------- networks
@dataclass
class NetworkArrays:
    """A two-layer ReLU network as plain arrays plus where it came from.

    Attributes
    ----------
    W1 : ndarray, shape (d', m)
    w2 : ndarray, shape (m,)
    bias : bool
        Whether ``W1`` acts on ``[X, 1]`` (last row of ``W1`` is the hidden bias).
    source : str
        ``"convexnn"``, ``"arrays"`` or ``"torch"``.
    original : Any
        The object passed in (used to rebuild a network of the same kind).
    """

    W1: np.ndarray
    w2: np.ndarray
    bias: bool
    source: str
    original: Any = None


def _torch_arrays(module: Any) -> tuple[np.ndarray, np.ndarray, bool]:
    """Read ``(W1, w2, bias)`` from a torch ``Linear -> ReLU -> Linear`` module (no output bias)."""
    import torch  # noqa: F401  (only called when the module is a torch module)

    layers = [m for m in module.modules() if len(list(m.children())) == 0]
    kinds = [type(m).__name__ for m in layers]
    lin = [m for m in layers if type(m).__name__ == "Linear"]
    if len(lin) != 2 or "ReLU" not in kinds or kinds.index("ReLU") < kinds.index("Linear"):
        raise InputError(f"expected a torch module Linear -> ReLU -> Linear; found layers {kinds}.")
    first, second = lin
    W = first.weight.detach().cpu().double().numpy()  # (m, d)
    bias = first.bias is not None
    W1 = W.T.copy()
    if bias:
        W1 = np.vstack([W1, first.bias.detach().cpu().double().numpy()[None, :]])
    w2 = second.weight.detach().cpu().double().numpy()
    if w2.shape[0] != 1:
        raise InputError(f"only scalar-output networks are supported; the output layer has {w2.shape[0]} outputs.")
    if second.bias is not None and float(second.bias.detach().abs().max()) != 0.0:
        raise InputError("the output layer has a non-zero bias, which the convex reformulation does not "
                         "model; train with Linear(m, 1, bias=False) (a hidden-layer bias is fine).")
    return W1, w2[0].copy(), bias


def _verify_torch_forward(module: Any, X: np.ndarray, W1: np.ndarray, w2: np.ndarray, bias: bool) -> None:
    r"""Refuse a torch module whose forward on ``X`` is not the extracted two-layer ReLU network.

    The module is run on ``X`` (in its own dtype and device) and compared with
    :math:`\sum_j (X_a W_{1j})_+ w_{2j}` computed in float64; the tolerance is
    ``64 * eps(dtype) * (|X_a| |W_1|) |w_2|`` per sample, far below any real difference.
    """
    import torch

    p = next(iter(module.parameters()), None)
    dtype = p.dtype if p is not None else torch.float64
    device = p.device if p is not None else "cpu"
    with torch.no_grad():
        out = module(torch.as_tensor(X, dtype=dtype, device=device))
    out = np.asarray(out.detach().cpu().double().numpy())
    if out.ndim == 2 and out.shape[1] == 1:
        out = out[:, 0]
    if out.shape != (X.shape[0],):
        raise InputError(f"the torch module maps X to shape {tuple(out.shape)}; a scalar-output two-layer "
                         "ReLU network gives one number per sample.")
    Xa = np.hstack([X, np.ones((X.shape[0], 1))]) if bias else X
    ref = network_predict(Xa, W1, w2)
    scale = (np.abs(Xa) @ np.abs(W1)) @ np.abs(w2) + np.abs(ref)
    tol = 64 * float(torch.finfo(dtype).eps) * scale + 1e-300
    bad = np.abs(out - ref) > tol
    if np.any(bad):
        j = int(np.argmax(np.abs(out - ref) - tol))
        raise InputError(
            "the torch module's forward is not the two-layer ReLU network Linear -> ReLU -> Linear read "
            f"from its layers: on sample {j} it returns {out[j]:.6g}, the extracted network {ref[j]:.6g} "
            f"({int(bad.sum())} of {len(bad)} samples differ). A module with another activation, an "
            "output nonlinearity, a scaled output or a skip connection cannot be certified as a ReLU network.")


def as_network_arrays(network: Any, d: int, X: np.ndarray | None = None) -> NetworkArrays:
    """Normalize a network to :class:`NetworkArrays`.

    Parameters
    ----------
    network : TwoLayerReLU, tuple (W1, w2), or torch module
        A convexnn network (anything with ``W1`` / ``w2`` attributes), a pair of arrays, or a
        torch ``Linear -> ReLU -> Linear`` module.
    d : int
        Number of features of ``X`` (used to infer ``bias`` for raw arrays: ``W1`` with
        ``d + 1`` rows acts on ``[X, 1]``).
    X : ndarray, optional
        The data. A torch module is only accepted when its forward on ``X`` equals the
        extracted network (see :func:`_verify_torch_forward`).
    """
    if isinstance(network, (tuple, list)) and len(network) == 2:
        W1 = np.asarray(network[0], dtype=np.float64)
        w2 = np.asarray(network[1], dtype=np.float64)
        if W1.ndim == 1:
            W1 = W1[:, None]
        if W1.ndim != 2:
            raise InputError(f"W1 must have shape (d', m); got {W1.shape}.")
        if W1.shape[0] == d:
            bias = False
        elif W1.shape[0] == d + 1:
            bias = True
        else:
            raise InputError(f"W1 has {W1.shape[0]} rows but X has d={d} features (expected d or d+1 with bias).")
        source = "arrays"
    elif hasattr(network, "W1") and hasattr(network, "w2"):
        if hasattr(network, "gates"):
            raise InputError("certificates are for ReLU networks; a GatedReLU network is the C-GReLU program "
                             "(certify it through kkt() of its convex solution).")
        W1 = np.asarray(network.W1, dtype=np.float64)
        w2 = np.asarray(network.w2, dtype=np.float64)
        bias = bool(getattr(network, "bias", W1.shape[0] == d + 1))
        if W1.shape[0] != d + bias:
            raise InputError(f"network W1 has {W1.shape[0]} rows; X has d={d} features and bias={bias}.")
        source = "convexnn"
    elif hasattr(network, "modules") and hasattr(network, "parameters"):
        if type(network).__name__ == "Sequential":
            from convexnn.networks.two_layer import TwoLayerReLU

            tn = TwoLayerReLU.from_torch(network)
            W1, w2, bias = tn.W1, tn.w2, tn.bias
        else:
            W1, w2, bias = _torch_arrays(network)
        if W1.shape[0] != d + bias:
            raise InputError(f"torch module expects {W1.shape[0] - bias} input features; X has {d}.")
        if X is not None:
            _verify_torch_forward(network, X, W1, np.asarray(w2).reshape(W1.shape[1], -1)[:, 0]
                                  if np.asarray(w2).size == W1.shape[1] else np.asarray(w2), bias)
        source = "torch"
    else:
        raise InputError("network must be a convexnn TwoLayerReLU, a pair (W1, w2) of arrays, or a torch "
                         f"Linear -> ReLU -> Linear module; got {type(network).__name__}.")
    if w2.ndim == 2 and w2.shape[1] == 1:
        w2 = w2[:, 0]
    if w2.ndim != 1:
        raise InputError(f"only scalar-output networks are supported (w2 of shape (m,)); got {w2.shape}.")
    if w2.shape[0] != W1.shape[1]:
        raise InputError(f"W1 has {W1.shape[1]} neurons but w2 has {w2.shape[0]} entries.")
    if not (np.all(np.isfinite(W1)) and np.all(np.isfinite(w2))):
        raise InputError("network weights contain NaN or infinite values.")
    return NetworkArrays(W1, w2, bias, source, network)


def rebuild_network(like: NetworkArrays, W1: np.ndarray, w2: np.ndarray) -> Any:
    """A network of the same kind as ``like.original`` with new weights.

    convexnn networks are rebuilt with their class (``type(net)(W1, w2, bias=...)``), torch
    modules give a :class:`~convexnn.TwoLayerReLU` (modules are never modified in place; use its
    ``to_torch()``), arrays give a tuple ``(W1, w2)``.
    """
    if like.source == "convexnn":
        return type(like.original)(W1, w2, bias=like.bias)
    if like.source == "torch":
        from convexnn.networks.two_layer import TwoLayerReLU

        return TwoLayerReLU(W1, w2, bias=like.bias)
    return (W1, w2)


def network_predict(Xa: np.ndarray, W1: np.ndarray, w2: np.ndarray) -> np.ndarray:
    r"""Predictions :math:`\sum_j (X_a W_{1j})_+ w_{2j}`."""
    return np.maximum(Xa @ W1, 0.0) @ w2


def network_objective(Xa: np.ndarray, y: np.ndarray, W1: np.ndarray, w2: np.ndarray, lam: float,
                      loss: Loss) -> float:
    r"""Network objective :math:`\ell(f(X), y) + \frac{\lambda}{2}\sum_j(\|W_{1j}\|^2 + w_{2j}^2)`."""
    reg = 0.5 * (float(np.sum(W1 * W1)) + float(np.sum(w2 * w2)))
    return loss.value(network_predict(Xa, W1, w2), y) + lam * reg


def rebalance(W1: np.ndarray, w2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    r"""Rescale every neuron so that :math:`\|W_{1j}\|_2 = |w_{2j}|` (same predictions).

    The ReLU is positively homogeneous, so :math:`(cW_{1j}, w_{2j}/c)` computes the same
    function for :math:`c > 0`; the choice :math:`c^2 = |w_{2j}|/\|W_{1j}\|` minimizes the weight
    decay to :math:`\lambda\|W_{1j}\|\,|w_{2j}|` (AM-GM). Dead neurons (a zero factor) are zeroed.
    """
    n1 = np.linalg.norm(W1, axis=0)
    a2 = np.abs(w2)
    live = (n1 > 0) & (a2 > 0)
    c = np.zeros_like(n1)
    c[live] = np.sqrt(a2[live] / n1[live])
    W1b = W1 * c[None, :]
    w2b = np.zeros_like(w2)
    w2b[live] = w2[live] / c[live]
    return W1b, w2b


# ---------------------------------------------------------------------------------- cone support
def project_cone(Xa: np.ndarray, signs: np.ndarray, g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    r"""Projection of ``g`` onto :math:`\mathcal K = \{u : \operatorname{diag}(s) X_a u \ge 0\}` by NNLS.

    Returns ``(q, rho)`` with :math:`\rho \ge 0` and :math:`q = g + X_a^\top(s \odot \rho)`, the
    minimizer of :math:`\|g + A^\top\rho\|` (Moreau: ``q`` is the projection of ``g`` onto the cone
    and :math:`-A^\top\rho` the projection onto its polar).
    """
    A = (Xa * signs[:, None]).T  # (d', n) = A^T
    rho, _ = nnls(A, -g, maxiter=50 * A.shape[1])
    rho = np.maximum(rho, 0.0)
    return g + A @ rho, rho


@dataclass
class ConeSupport:
    r"""Result of :func:`cone_support`.

    Attributes
    ----------
    value : float
        :math:`s(v)` over the given patterns as computed in floating point (the largest cone
        projection norm found).
    index : int
        Pattern attaining the maximum (``-1`` when there are no patterns).
    sign : int
        ``+1`` (a neuron with positive output weight, C-ReLU block ``v_i``) or ``-1`` (``w_i``).
    direction : ndarray, shape (d',)
        The projection :math:`q = \Pi_{\mathcal K_i}(\sigma X_a^\top D_i v)`; ``q/||q||`` is the
        maximizing unit first-layer weight.
    n_nnls : int
        Number of NNLS problems actually solved (the rest were discarded by cheap bounds).
    bounds : ndarray, shape (P,)
        Cheap per-pattern upper bounds (max over both signs, floating point).
    valid : float
        A rigorous upper bound of :math:`\max_{i,\sigma}\|\Pi_{\mathcal K_i}(\sigma X_a^\top D_i v)\|`
        over the given patterns for the float64 ``Xa`` and ``v``: every rounding error of the
        products, projections and norms is bounded (Higham's :math:`\gamma_k`) and added.
    """

    value: float
    index: int
    sign: int
    direction: np.ndarray
    n_nnls: int
    bounds: np.ndarray
    valid: float = float("nan")


def _gamma(k: int) -> float:
    ku = k * 2.0 ** -53
    return ku / (1.0 - ku)


def cone_support(Xa: np.ndarray, masks: np.ndarray, v: np.ndarray, *, exact: bool = True) -> ConeSupport:
    r"""Compute :math:`s(v) = \max_{i,\sigma}\|\Pi_{\mathcal K_i}(\sigma X_a^\top D_i v)\|_2` over the patterns.

    Batched branch and bound: for every pattern and sign a cheap *upper* bound
    (projection onto the single half-space :math:`H = \{u: a_j^\top u \ge 0\} \supseteq \mathcal K_i`
    that cuts the most, :math:`\|\Pi_{H}(g)\|^2 = \|g\|^2 - \max_j (a_j^\top g)_-^2/\|a_j\|^2`)
    is computed for all patterns at once with matrix products (in chunks); an NNLS is then solved
    only for the pattern/sign pairs, in decreasing order of the upper bound, until the next upper
    bound is no larger than the best value found. Every skipped pair provably cannot exceed it.

    Rounding is accounted for in :attr:`ConeSupport.valid`: with
    :math:`e_g = \gamma_{n+2}\,\| |X_a|^\top |v| \|_2` bounding the error of every computed
    :math:`X_a^\top D_i v`, an NNLS value :math:`\|q\|` becomes
    :math:`(\|q\| + \gamma_{n+2}\||A_i|^\top\rho\|)(1+\gamma_{d'+2}) + e_g` and a cheap bound
    :math:`b` becomes :math:`\sqrt{b^2 + 8\gamma_{d'+4}(\|g\|^2 + c^2)} + e_g`; pairs whose
    rigorous cheap bound exceeds the rigorous best value are evaluated exactly as well.

    Parameters
    ----------
    Xa : ndarray, shape (n, d')
    masks : ndarray of bool, shape (n, P)
    v : ndarray, shape (n,)
    exact : bool
        When False, skip the NNLS and return the cheap upper bound (a valid but looser value).

    Returns
    -------
    ConeSupport
    """
    n, dp = Xa.shape
    P = masks.shape[1]
    if P == 0:
        return ConeSupport(0.0, -1, 1, np.zeros(dp), 0, np.zeros(0), 0.0)
    rn = np.linalg.norm(Xa, axis=1)
    Xn = Xa / np.where(rn > 0, rn, 1.0)[:, None]  # rows a_j / ||a_j|| (up to the sign s_j)
    Xv = (Xa * v[:, None]).T  # (d', n): G = Xv @ M
    e_g = _gamma(n + 2) * float(np.linalg.norm(np.abs(Xa).T @ np.abs(v)))
    gk = _gamma(dp + 4)
    ubs = np.empty((2, P))
    slack = np.empty((2, P))
    for start in range(0, P, _CHUNK):
        sl = slice(start, min(P, start + _CHUNK))
        Mb = np.asarray(masks[:, sl], dtype=bool)
        G = Xv @ Mb.astype(np.float64)  # (d', c): X_a^T D_i v
        g2 = np.einsum("ij,ij->j", G, G)
        Z = Xn @ G
        np.negative(Z, out=Z, where=~Mb)  # s_j a_j^T g / ||a_j||
        cut_plus = np.minimum(Z.min(axis=0), 0.0) ** 2  # sigma = +1: most violated half-space
        cut_minus = np.maximum(Z.max(axis=0), 0.0) ** 2  # sigma = -1
        ubs[0, sl] = np.sqrt(np.maximum(g2 - cut_plus, 0.0))
        ubs[1, sl] = np.sqrt(np.maximum(g2 - cut_minus, 0.0))
        slack[0, sl] = np.sqrt(ubs[0, sl] ** 2 + 8 * gk * (g2 + cut_plus)) - ubs[0, sl]
        slack[1, sl] = np.sqrt(ubs[1, sl] ** 2 + 8 * gk * (g2 + cut_minus)) - ubs[1, sl]
    rig = ubs + slack + e_g
    rig *= 1 + gk
    if not exact:
        k = int(np.argmax(ubs))
        sgn, idx = divmod(k, P)
        m = np.asarray(masks[:, idx], dtype=np.float64)
        g = (1 - 2 * sgn) * (Xa.T @ (m * v))
        return ConeSupport(float(ubs.flat[k]), idx, 1 - 2 * sgn, g, 0, ubs.max(axis=0), float(rig.max()))
    best_val, best_idx, best_sign, best_dir = -1.0, -1, 1, np.zeros(dp)
    best_rig = 0.0
    n_nnls = 0
    done = np.zeros(2 * P, bool)
    flat = ubs.ravel()
    rflat = rig.ravel()

    def exact_pair(k: int) -> None:
        nonlocal best_val, best_idx, best_sign, best_dir, n_nnls, best_rig
        sgn, idx = divmod(int(k), P)
        sigma = 1 - 2 * sgn
        m = np.asarray(masks[:, idx], dtype=bool)
        g = sigma * (Xa.T @ np.where(m, v, 0.0))
        signs = np.where(m, 1.0, -1.0)
        q, rho = project_cone(Xa, signs, g)
        n_nnls += 1
        done[k] = True
        nq = float(np.linalg.norm(q))
        val = min(nq, float(flat[k]))  # both are upper bounds (in exact arithmetic)
        e_q = _gamma(n + 2) * float(np.linalg.norm(np.abs(Xa).T @ rho)) if rho.size else 0.0
        r_val = min((nq + e_q) * (1 + gk) + e_g, float(rflat[k]))
        best_rig = max(best_rig, r_val)
        if val > best_val:
            best_val, best_idx, best_sign, best_dir = val, idx, sigma, q

    for k in np.argsort(-flat):  # decreasing upper bound; stop when no pair can beat the best
        if flat[k] <= max(best_val, 0.0):
            break
        exact_pair(int(k))
    # rounding: pairs skipped in floating point whose rigorous bound exceeds the rigorous best
    while True:
        open_ = np.flatnonzero(~done & (rflat > best_rig))
        if open_.size == 0:
            break
        if open_.size > 64 + P // 100:  # too many to evaluate: keep their rigorous bounds
            best_rig = max(best_rig, float(rflat[open_].max()))
            break
        for k in open_[np.argsort(-rflat[open_])]:
            if rflat[k] > best_rig:
                exact_pair(int(k))
    return ConeSupport(max(best_val, 0.0), best_idx, best_sign, best_dir, n_nnls, ubs.max(axis=0),
                       max(best_rig, 0.0))


def global_support_bound(Xa: np.ndarray, v: np.ndarray) -> float:
    r"""A rigorous upper bound of :math:`s(v)` valid over **all** activation patterns (no enumeration).

    For any unit :math:`u` and sign :math:`\sigma`,
    :math:`\sigma\langle v, (X_a u)_+\rangle \le \langle (\sigma v)_+, (X_a u)_+\rangle
    \le \min\big(\|(\sigma v)_+\|_2\,\|X_a\|_F,\ \sum_j (\sigma v_j)_+ \|x_j\|_2\big)`
    (the Frobenius norm bounds the spectral norm and is computed with a small rounding error;
    both terms are inflated by :math:`\gamma_{n d' + 4}`).
    """
    n, dp = Xa.shape
    fro = float(np.linalg.norm(Xa))
    rn = np.linalg.norm(Xa, axis=1)
    out = 0.0
    for s in (1.0, -1.0):
        vp = np.maximum(s * v, 0.0)
        out = max(out, min(float(np.linalg.norm(vp)) * fro, float(vp @ rn)))
    return out * (1 + _gamma(n * dp + 4)) ** 2


def certified_dual_value(loss: Loss, v: np.ndarray, y: np.ndarray) -> float:
    r"""A rigorous lower bound of the dual objective :math:`-\ell^*(-v)` for float64 ``v, y``.

    The conjugate is evaluated in floating point and its rounding error bounded by
    :math:`\gamma_{n+16}\sum_j (|t_j| + \kappa)` over its terms :math:`t_j` (:math:`\kappa = 0`
    for the squared loss, whose terms are products; :math:`\kappa = 1` for losses whose terms
    involve logarithms). Outside the conjugate's domain (e.g. :math:`y_j v_j \notin [0, 1]` for
    logistic and hinge, checked exactly) the value is :math:`-\infty`: no bound.
    """
    v = np.asarray(v, dtype=np.float64)
    n = v.size
    if loss.name == "squared":
        terms = 0.5 * v * v - v * y
        err = _gamma(n + 16) * float(np.sum(np.abs(0.5 * v * v) + np.abs(v * y)))
        return -float(np.sum(terms)) - err
    if loss.name in ("logistic", "hinge"):
        a = y * v
        if np.any(a < 0) or np.any(a > 1):
            return -np.inf
    val = float(loss.dual_value(v, y))
    if not np.isfinite(val):
        return -np.inf
    return val - _gamma(n + 16) * (abs(val) + float(np.sum(np.abs(v))) + n)


def objective_error_bound(Xa: np.ndarray, y: np.ndarray, W1: np.ndarray, w2: np.ndarray, lam: float,
                          loss: Loss) -> float:
    r"""Bound on the rounding error of :func:`network_objective` for float64 data and weights.

    Predictions: :math:`|\mathrm{fl}(\hat y_j) - \hat y_j| \le e_j = \gamma_{d'+m+2}\,(|X_a||W_1|\,|w_2|)_j`;
    the loss moves by at most :math:`\sum_j L_j e_j` (:math:`L_j = |r_j| + e_j` for the squared
    loss, 1 for logistic and hinge) plus the rounding of its own sum and of the weight decay.
    """
    n, dp = Xa.shape
    m = W1.shape[1]
    P = np.abs(Xa) @ np.abs(W1) @ np.abs(w2)
    e = _gamma(dp + m + 2) * P
    pred = network_predict(Xa, W1, w2)
    if loss.name == "squared":
        r = np.abs(pred - y)
        err_loss = float(np.sum((r + e) * e)) + _gamma(n + 4) * float(np.sum(r * r))
    else:
        err_loss = float(np.sum(e)) + _gamma(n + 16) * (abs(loss.value(pred, y)) + n)
    reg = 0.5 * (float(np.sum(W1 * W1)) + float(np.sum(w2 * w2)))
    return err_loss + lam * reg * _gamma(W1.size + w2.size + 4) + 1e-300


def best_scale(loss: Loss, v: np.ndarray, y: np.ndarray, c_max: float) -> tuple[float, float]:
    r"""Maximize the concave dual objective :math:`c \mapsto -\ell^*(-c v)` over :math:`c \in [0, c_{\max}]`.

    Closed form for the squared loss (:math:`c^\star = \langle v, y\rangle / \|v\|^2` clipped);
    otherwise a bounded golden-section search restricted to the conjugate's domain (found by
    bisection; ``c = 0`` is always in it because every loss is bounded below).

    Returns
    -------
    (c, value)
    """
    c_max = float(c_max)
    if not np.isfinite(c_max):
        c_max = 1e6
    vv = float(v @ v) if v.ndim == 1 else float(np.sum(v * v))
    if vv == 0.0:
        return 0.0, loss.dual_value(0.0 * v, y)
    if loss.name == "squared":
        c = float(np.clip(float(np.sum(v * y)) / vv, 0.0, c_max))
        return c, loss.dual_value(c * v, y)

    def f(c: float) -> float:
        return loss.dual_value(c * v, y)

    hi = c_max
    if not np.isfinite(f(hi)):
        lo = 0.0
        for _ in range(60):
            mid = 0.5 * (lo + hi)
            if np.isfinite(f(mid)):
                lo = mid
            else:
                hi = mid
        hi = lo
    from scipy.optimize import minimize_scalar

    if hi <= 0:
        return 0.0, f(0.0)
    res = minimize_scalar(lambda c: -f(c), bounds=(0.0, hi), method="bounded", options={"xatol": 1e-10 * max(hi, 1)})
    cands = [(0.0, f(0.0)), (hi, f(hi)), (float(res.x), f(float(res.x)))]
    return max(cands, key=lambda t: t[1])


def validate(X: Any, y: Any, lam: Any, loss: str | Loss) -> tuple[np.ndarray, np.ndarray, float, Loss]:
    """Validate ``X, y, lam, loss`` for the scalar-output duality routines."""
    L = get_loss(loss)
    Xc = check_X(X)
    yc = check_y(y, Xc.shape[0], loss=L.name)
    if yc.ndim != 1:
        raise InputError("the duality module supports scalar outputs only (y of shape (n,)).")
    return Xc, yc, check_lam(lam), L
