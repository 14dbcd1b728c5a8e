r"""Reading a user's two-layer ReLU network: a convexnn network, a pair of arrays, or a torch module.

:func:`as_network_arrays` turns any of them into a :class:`NetworkArrays` (a scalar-output
:class:`~convexnn.TwoLayerReLU` that remembers its origin; torch modules are read by
:meth:`~convexnn.TwoLayerReLU.from_torch`, with their forward verified on the data), and
:func:`rebuild_network` returns new weights in the form the user passed.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from convexnn.errors import InputError
from convexnn.networks.two_layer import TwoLayerReLU

__all__ = ["NetworkArrays", "as_network_arrays", "rebuild_network"]


class NetworkArrays(TwoLayerReLU):
    """A scalar-output :class:`~convexnn.TwoLayerReLU` read from what the user passed, and where it came from.

    All the network's mathematics is :class:`~convexnn.TwoLayerReLU`'s; this class only remembers
    the origin, so that an improved or pruned network is returned in the same form
    (:func:`rebuild_network`).

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

    def __init__(self, W1: Any, w2: Any, bias: bool, source: str, original: Any = None) -> None:
        super().__init__(W1, w2, bias=bias)
        self.source = source
        self.original = original

    def _replace(self, W1: np.ndarray, w2: np.ndarray) -> "NetworkArrays":
        return NetworkArrays(W1, w2, self.bias, self.source, self.original)

    def _select(self, keep: np.ndarray) -> "NetworkArrays":
        return NetworkArrays(self.W1[:, keep], self.w2[keep], self.bias, self.source, self.original)


def as_network_arrays(network: Any, d: int, X: np.ndarray | None = None) -> NetworkArrays:
    """Normalize a network to :class:`NetworkArrays`.

    Parameters
    ----------
    network : TwoLayerReLU, tuple (W1, w2), or torch module
        A convexnn network (anything with ``W1`` / ``w2`` attributes), a pair of arrays, or a
        torch ``Linear -> ReLU -> Linear`` module (read by :meth:`TwoLayerReLU.from_torch`).
    d : int
        Number of features of ``X`` (used to infer ``bias`` for raw arrays: ``W1`` with
        ``d + 1`` rows acts on ``[X, 1]``).
    X : ndarray, optional
        The data. With ``X``, a torch module is only accepted when its forward on ``X`` equals the
        extracted network; without it, only ``nn.Sequential(Linear, ReLU, Linear)`` is read.
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
        # the input width is checked before the forward on X is run (which would fail less clearly)
        first = next((m for m in network.modules() if type(m).__name__ == "Linear"), None)
        if first is not None and first.in_features != d:
            raise InputError(f"torch module expects {first.in_features} input features; X has {d}.")
        tn = TwoLayerReLU.from_torch(network, X=X)
        W1, w2, bias = tn.W1, tn.w2, tn.bias
        if W1.shape[0] != d + bias:
            raise InputError(f"torch module expects {W1.shape[0] - bias} input features; X has {d}.")
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
        return TwoLayerReLU(W1, w2, bias=like.bias)
    return (W1, w2)
