r"""PyTorch conventions: ``weight_decay`` <-> ``lam``, adapters for custom modules, export in the user's dtype.

**The conversion.** A PyTorch run minimizes, per sample element, a criterion :math:`h` averaged
(``reduction="mean"``) or summed (``reduction="sum"``), with ``weight_decay=wd`` in
``torch.optim.SGD`` / ``Adam`` (coupled weight decay: ``wd * theta`` is added to the gradient).
Its fixed points are the stationary points of

.. math::

    T(\theta) = \frac1N \sum_{i,k} h\big(f_k(x_i), y_{ik}\big) + \frac{wd}{2}\|\theta\|_2^2,
    \qquad N = n c \ (\text{mean}),\ N = 1 \ (\text{sum}),

over **all** parameters :math:`\theta` (the hidden bias included, as in convexnn). convexnn
minimizes :math:`F = \ell(f(X), y) + \frac{\lambda}{2}\|\theta\|^2` with
:math:`\ell = \kappa \sum_{i,k} h`, where :math:`\kappa = \tfrac12` for the squared loss
(``nn.MSELoss``: :math:`h = (f - y)^2`, :math:`\ell = \tfrac12\sum (f-y)^2`) and :math:`\kappa = 1`
for the logistic loss (``nn.BCEWithLogitsLoss`` with targets ``(y + 1) / 2``, or
``nn.SoftMarginLoss`` with targets :math:`\pm1`: :math:`h = \log(1 + e^{-y f})`), the hinge loss
(:math:`h = \max(0, 1 - y f)`) and the Huber loss (``nn.HuberLoss(delta=delta)``, the same
function). :math:`\kappa` is the loss's ``torch_scale`` (:class:`~convexnn.formulations.losses.Loss`). Then

.. math::

    T = \frac{1}{\kappa N}\Big[\ell + \frac{\kappa N\, wd}{2}\|\theta\|^2\Big]
      = \frac{1}{\kappa N}\, F\Big|_{\lambda = \kappa N wd},

so :math:`\lambda = \kappa N\, wd` (``MSELoss(reduction="mean")``: :math:`\lambda = n\,wd/2`) and
the two objectives differ by the positive factor :math:`1/(\kappa N)`: same minimizers, same
relative gaps, certificates valid for the run the user trained. ``AdamW`` (decoupled weight
decay) has no such objective and is not covered; an explicit penalty
``loss + alpha * sum(p.pow(2).sum() for p in params)`` is ``weight_decay = 2 * alpha``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from convexnn.data import check_lam, check_X
from convexnn.errors import InputError
from convexnn.formulations.losses import get_loss
from convexnn.networks.two_layer import GatedReLU, TwoLayerReLU

__all__ = [
    "lam_from_torch",
    "to_torch_weight_decay",
    "torch_objective_scale",
    "resolve_lam",
    "from_module",
    "to_torch",
    "improved_module",
    "optimal_module",
]

def _kappa_N(n: Any, reduction: str, loss: Any, n_outputs: int) -> tuple[float, float]:
    L = get_loss(loss)
    if L.torch_scale is None:
        raise InputError(f"the {L.name!r} loss has no torch.nn counterpart (Loss.torch_scale is None).")
    if reduction not in ("mean", "sum"):
        raise InputError(f"reduction must be 'mean' or 'sum' (as in torch.nn losses); got {reduction!r}.")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise InputError(f"n (number of training samples) must be a positive integer; got {n!r}.")
    if isinstance(n_outputs, bool) or not isinstance(n_outputs, (int, np.integer)) or n_outputs < 1:
        raise InputError(f"n_outputs must be a positive integer; got {n_outputs!r}.")
    N = float(n) * float(n_outputs) if reduction == "mean" else 1.0
    return L.torch_scale, N


def lam_from_torch(weight_decay: float, n: int, reduction: str = "mean", *, loss: str = "squared",
                   n_outputs: int = 1) -> float:
    r"""convexnn's ``lam`` for a PyTorch run with ``weight_decay`` (coupled, SGD/Adam).

    :math:`\lambda = \kappa N\, wd` with :math:`\kappa = \tfrac12` (squared) or :math:`1`
    (logistic, hinge) and :math:`N = n c` for ``reduction="mean"``, :math:`1` for ``"sum"``
    (module docstring). ``MSELoss(reduction="mean")``: :math:`\lambda = n\, wd / 2`.

    Parameters
    ----------
    weight_decay : float
        The optimizer's ``weight_decay`` (> 0).
    n : int
        Number of training samples the loss averages over (the full data set for full-batch
        training; for mini-batches, the objective averaged over the data set is the same, use
        the data-set size).
    reduction : {"mean", "sum"}
    loss : {"squared", "logistic", "hinge"}
    n_outputs : int
        Outputs per sample ``c`` (``MSELoss`` averages over all ``n * c`` elements).

    Examples
    --------
    >>> lam_from_torch(1e-3, n=200)
    0.1
    """
    kappa, N = _kappa_N(n, reduction, loss, n_outputs)
    return kappa * N * check_lam(weight_decay, name="weight_decay")


def to_torch_weight_decay(lam: float, n: int, reduction: str = "mean", *, loss: str = "squared",
                          n_outputs: int = 1) -> float:
    r"""The inverse of :func:`lam_from_torch`: :math:`wd = \lambda / (\kappa N)`."""
    kappa, N = _kappa_N(n, reduction, loss, n_outputs)
    return check_lam(lam) / (kappa * N)


def torch_objective_scale(n: int, reduction: str = "mean", *, loss: str = "squared", n_outputs: int = 1) -> float:
    r"""The factor :math:`1/(\kappa N)` with ``torch objective = factor * convexnn objective``
    (at ``lam = lam_from_torch(wd, n, reduction)``); multiply a certificate's ``primal`` or
    ``lower_bound`` by it to read them in the units of the training loss."""
    kappa, N = _kappa_N(n, reduction, loss, n_outputs)
    return 1.0 / (kappa * N)


def resolve_lam(lam: Any, weight_decay: Any, reduction: str, X: Any, loss: Any = "squared",
                n_outputs: int = 1) -> float:
    """``lam`` itself, or :func:`lam_from_torch` of ``weight_decay`` with ``n = len(X)``; exactly one must be given."""
    if (lam is None) == (weight_decay is None):
        raise InputError("give exactly one of lam (convexnn convention) and weight_decay (with reduction, "
                         "PyTorch convention).")
    if lam is not None:
        return check_lam(lam)
    n = check_X(X).shape[0]
    return lam_from_torch(weight_decay, n, reduction, loss=loss, n_outputs=n_outputs)


# ============================================================================ modules
def _torch() -> tuple[Any, Any]:
    try:
        import torch
        from torch import nn
    except ImportError as exc:
        raise ImportError("torch is not installed; it is an optional extra: pip install 'convexnn[torch]'.") from exc
    return torch, nn


def _dtype_device(like: Any, dtype: Any, device: Any) -> tuple[Any, Any]:
    torch, _ = _torch()
    if like is not None:
        p = next(iter(like.parameters()), None)
        if p is not None:
            dtype = dtype or p.dtype
            device = device or p.device
    if isinstance(dtype, str):
        dtype = getattr(torch, dtype.replace("torch.", ""), None)
        if dtype is None or not isinstance(dtype, torch.dtype):
            raise InputError(f"unknown torch dtype {dtype!r}.")
    return dtype or torch.float64, device or "cpu"


def from_module(module: Any, X: Any, *, rtol: float | None = None) -> TwoLayerReLU:
    r"""Read a two-layer ReLU network out of any torch module the user vouches for, and verify it.

    The first and second ``nn.Linear`` layers found in ``module.modules()`` (registration order)
    give :math:`W_1` (hidden bias as its last row) and :math:`w_2`; the module may compute its
    activation any way it likes (``F.relu``, ``torch.clamp``, ...). The result is accepted only
    if ``module(X)`` equals :math:`(X_a W_1)_+ w_2` on ``X`` (max difference at most
    ``rtol * (1 + max|output|)``), so a module that is *not* that network (another activation,
    extra layers, dropout in training mode, an output bias) is refused instead of being
    certified as something it is not.

    Parameters
    ----------
    module : torch.nn.Module
        With exactly two ``nn.Linear`` layers, the output one without bias (or a zero bias).
    X : array, shape (n, d)
        Data to compare the forwards on (the data you will certify on).
    rtol : float, optional
        Default: ``1e-10`` for float64 modules, ``1e-4`` for float32, ``1e-2`` for half precision.

    Returns
    -------
    TwoLayerReLU
        In float64.

    Raises
    ------
    InputError
        No / more than two Linear layers, a nonzero output bias, or forwards that differ (the
        message gives the difference and what to check).
    """
    torch, nn = _torch()
    if not isinstance(module, nn.Module):
        raise InputError(f"from_module expects a torch.nn.Module; got {type(module).__name__}.")
    lin = [m for m in module.modules() if isinstance(m, nn.Linear)]
    if len(lin) != 2:
        raise InputError(f"from_module needs a module with exactly two nn.Linear layers (hidden, output); found "
                         f"{len(lin)} in {type(module).__name__}.")
    first, last = lin
    if last.in_features != first.out_features:
        raise InputError(f"the Linear layers do not chain: hidden layer has {first.out_features} outputs, the "
                         f"output layer {last.in_features} inputs.")
    if last.bias is not None and bool(torch.any(last.bias.detach() != 0)):
        raise InputError("the output Linear layer has a nonzero bias, which the convex programs do not model; "
                         "train with nn.Linear(m, c, bias=False) (a hidden-layer bias is fine).")
    W1 = first.weight.detach().cpu().double().numpy().T
    bias = first.bias is not None
    if bias:
        W1 = np.vstack([W1, first.bias.detach().cpu().double().numpy()[None, :]])
    w2 = last.weight.detach().cpu().double().numpy().T
    if w2.shape[1] == 1:
        w2 = w2[:, 0]
    net = TwoLayerReLU(W1, w2, bias=bias)
    Xc = check_X(X)
    if Xc.shape[1] != first.in_features:
        raise InputError(f"X has {Xc.shape[1]} features but the module's first Linear layer expects "
                         f"{first.in_features}.")
    dtype, device = first.weight.dtype, first.weight.device
    with torch.no_grad():
        out = module(torch.as_tensor(Xc, dtype=dtype, device=device))
    if not isinstance(out, torch.Tensor):
        raise InputError(f"module(X) returned {type(out).__name__}, not a tensor.")
    got = out.detach().cpu().double().numpy()
    ref = net.predict(Xc)
    if got.ndim == 2 and got.shape[1] == 1 and ref.ndim == 1:
        got = got[:, 0]
    if got.shape != ref.shape:
        raise InputError(f"module(X) has shape {tuple(out.shape)}, but Linear -> ReLU -> Linear with these "
                         f"layers gives {ref.shape}: the module is not that network.")
    if rtol is None:
        rtol = {torch.float64: 1e-10, torch.float32: 1e-4}.get(dtype, 1e-2)
    diff = float(np.max(np.abs(got - ref))) if ref.size else 0.0
    scale = 1.0 + (float(np.max(np.abs(ref))) if ref.size else 0.0)
    if not diff <= rtol * scale:
        raise InputError(
            f"module(X) differs from Linear -> ReLU -> Linear built from its two Linear layers by up to "
            f"{diff:.3g} (tolerance {rtol * scale:.3g}): the module computes something else (another "
            "activation, extra layers or scaling, dropout in training mode: call module.eval()), so "
            "convexnn cannot certify it as a two-layer ReLU network.")
    return net


_GATED_CLASS: Any = None


def _gated_module_class() -> Any:
    global _GATED_CLASS
    if _GATED_CLASS is None:
        torch, nn = _torch()

        class GatedReLUModule(nn.Module):
            r"""Gated ReLU network as a torch module: ``(1[Xa G >= 0] * (Xa W1)) @ w2``.

            The gates ``G`` are a buffer (fixed, not trained); ``hidden`` and ``output`` are
            ``nn.Linear`` layers (the hidden bias is the last row of ``W1`` and of ``G``).
            """

            def __init__(self, d: int, m: int, c: int, bias: bool, dtype: Any = None) -> None:
                super().__init__()
                self.bias = bias
                self.hidden = nn.Linear(d, m, bias=bias, dtype=dtype)
                self.output = nn.Linear(m, c, bias=False, dtype=dtype)
                self.register_buffer("gates", torch.zeros(d + int(bias), m, dtype=dtype))

            def forward(self, x: Any) -> Any:
                xa = torch.cat([x, torch.ones_like(x[:, :1])], dim=1) if self.bias else x
                return self.output((xa @ self.gates >= 0).to(x.dtype) * self.hidden(x))

        GatedReLUModule.__module__ = __name__
        GatedReLUModule.__qualname__ = "GatedReLUModule"
        _GATED_CLASS = GatedReLUModule
    return _GATED_CLASS


def __getattr__(name: str) -> Any:  # lazily defined torch class (needs torch), reachable for pickle
    if name == "GatedReLUModule":
        return _gated_module_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def to_torch(network: Any, *, dtype: Any = None, device: Any = None, like: Any = None) -> Any:
    """Export a convexnn network as a torch module in the requested dtype and device.

    Parameters
    ----------
    network : TwoLayerReLU or GatedReLU (or a ``(W1, w2)`` pair with ``W1`` acting on ``X``)
    dtype, device : optional
        torch dtype (or its name, ``"float32"``) and device; default: those of ``like``, else
        float64 on the CPU.
    like : torch.nn.Module, optional
        A module whose parameters' dtype and device to use (e.g. the model you trained).

    Returns
    -------
    torch.nn.Module
        ``nn.Sequential(Linear, ReLU, Linear(bias=False))`` for ReLU networks (output ``(n, c)``,
        ``c = 1`` for scalar output), ``GatedReLUModule`` for gated networks.
    """
    torch, nn = _torch()
    dtype, device = _dtype_device(like, dtype, device)
    if isinstance(network, tuple) and len(network) == 2:
        network = TwoLayerReLU(network[0], network[1])
    if isinstance(network, GatedReLU):
        d, m, c = network.n_features, network.n_neurons, network.n_outputs
        mod = _gated_module_class()(d, m, c, network.bias, dtype=dtype)
        with torch.no_grad():
            mod.hidden.weight.copy_(torch.as_tensor(network.W1[:d].T, dtype=dtype))
            if network.bias:
                mod.hidden.bias.copy_(torch.as_tensor(network.W1[d], dtype=dtype))
            w2 = network.w2[:, None] if network.w2.ndim == 1 else network.w2
            mod.output.weight.copy_(torch.as_tensor(w2.T, dtype=dtype))
            mod.gates.copy_(torch.as_tensor(network.gates, dtype=dtype))
        return mod.to(device)
    if isinstance(network, TwoLayerReLU):
        return network.to_torch(dtype).to(device)
    raise InputError(f"to_torch expects a TwoLayerReLU, a GatedReLU or a (W1, w2) pair; got {type(network).__name__}.")


def improved_module(certificate: Any, *, like: Any = None, dtype: Any = None, device: Any = None) -> Any:
    """The certificate's improved network (:meth:`Certificate.improve`) as a torch module.

    dtype / device: those of ``like`` (typically the module that was certified), else float64/CPU.
    """
    net = certificate.improve()
    if isinstance(net, tuple):
        net = TwoLayerReLU(net[0], net[1], bias=certificate.network.bias)
    return to_torch(net, dtype=dtype, device=device, like=like)


def optimal_module(
    X: Any,
    y: Any,
    *,
    lam: float | None = None,
    weight_decay: float | None = None,
    reduction: str = "mean",
    loss: str = "squared",
    bias: bool = True,
    patterns: Any = None,
    method: str = "auto",
    like: Any = None,
    dtype: Any = None,
    device: Any = None,
) -> tuple[Any, Any]:
    r"""Solve C-ReLU and return the mapped optimal network as a torch module, with the solution.

    With ``patterns=None`` the exact pattern set is enumerated
    (:func:`convexnn.enumerate_patterns`, small ``d`` only), so the module is a **global**
    minimizer of the PyTorch objective with ``weight_decay`` (or of convexnn's with ``lam``) over
    networks of every width (Pilanci & Ergen, ICML 2020).

    Returns
    -------
    (torch.nn.Module, ConvexSolution)
    """
    from convexnn.arrangements.enumerate import enumerate_patterns
    from convexnn.formulations.two_layer import c_relu
    from convexnn.solvers.dispatch import solve

    Xc = check_X(X)
    c = 1 if np.ndim(y) == 1 or (np.ndim(y) == 2 and np.shape(y)[1] == 1) else int(np.shape(y)[1])
    lam_v = resolve_lam(lam, weight_decay, reduction, Xc, loss, n_outputs=c)
    pats = enumerate_patterns(Xc, bias=bias) if patterns is None else patterns
    sol = solve(c_relu(Xc, y, pats, lam_v, loss=loss, bias=pats.bias), method=method)
    return to_torch(sol.to_network(), dtype=dtype, device=device, like=like), sol
