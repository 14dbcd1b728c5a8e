r"""Array-level helpers shared by the duality module.

Everything here works on plain arrays: a two-layer ReLU network is a pair ``(W1, w2)`` with
``W1`` of shape ``(d', m)`` (column ``j`` is the first-layer weight of neuron ``j``, acting on
``Xa = [X, 1]`` when ``bias``) and ``w2`` of shape ``(m,)``. The network objective is (DESIGN.md)

.. math::

    F(W_1, w_2) = \ell\Big(\sum_j (X_a W_{1j})_+ w_{2j},\ y\Big)
    + \frac{\lambda}{2}\sum_j \big(\|W_{1j}\|_2^2 + w_{2j}^2\big).

The cone mathematics (:math:`s(v)`, projections, rigorous bounds) lives in
:mod:`convexnn.duality.cones` and the dual-candidate bounds in :mod:`convexnn.duality.bounds`;
both are re-exported here for the duality modules.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from convexnn.data import check_lam, check_X, check_y
from convexnn.errors import InputError
from convexnn.formulations.losses import Loss, get_loss
from convexnn.duality.bounds import best_scale, certified_dual_value
from convexnn.duality.cones import ConeSupport, cone_support, global_support_bound, project_cone
from convexnn.rounding import gamma

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


def objective_error_bound(Xa: np.ndarray, y: np.ndarray, W1: np.ndarray, w2: np.ndarray, lam: float,
                          loss: Loss) -> float:
    r"""Bound on the rounding error of :func:`network_objective` for float64 data and weights.

    Predictions: :math:`|\mathrm{fl}(\hat y_j) - \hat y_j| \le e_j = \gamma_{d'+m+2}\,(|X_a||W_1|\,|w_2|)_j`;
    the loss moves by at most :math:`\sum_j L_j e_j` with :math:`L_j` the loss's slope bound on
    :math:`[\hat y_j - e_j, \hat y_j + e_j]` (:meth:`~convexnn.formulations.losses.Loss.slope_bound`:
    :math:`|r_j| + e_j` for the squared loss, 1 for logistic and hinge, :math:`\min(|r_j| + e_j,
    \delta)` for Huber) plus the rounding of its own sum
    (:meth:`~convexnn.formulations.losses.Loss.value_error`) and of the weight decay.
    """
    n, dp = Xa.shape
    m = W1.shape[1]
    P = np.abs(Xa) @ np.abs(W1) @ np.abs(w2)
    e = gamma(dp + m + 2) * P
    pred = network_predict(Xa, W1, w2)
    err_loss = float(np.sum(loss.slope_bound(pred, y, e) * e)) + loss.value_error(pred, y)
    reg = 0.5 * (float(np.sum(W1 * W1)) + float(np.sum(w2 * w2)))
    return err_loss + lam * reg * gamma(W1.size + w2.size + 4) + 1e-300


def validate(X: Any, y: Any, lam: Any, loss: str | Loss) -> tuple[np.ndarray, np.ndarray, float, Loss]:
    """Validate ``X, y, lam, loss`` for the scalar-output duality routines."""
    L = get_loss(loss)
    Xc = check_X(X)
    yc = check_y(y, Xc.shape[0], loss=L.name)
    if yc.ndim != 1:
        raise InputError("the duality module supports scalar outputs only (y of shape (n,)).")
    return Xc, yc, check_lam(lam), L
