r"""Three-layer (parallel) and deep ReLU networks: the non-convex models that
:func:`convexnn.three_layer`, :func:`convexnn.deep_relu` and :func:`convexnn.deep_grelu` are
equivalent to.

* :class:`ThreeLayerReLU` -- Ergen & Pilanci (ICML 2021) architecture (4): :math:`K` parallel sub-networks
  :math:`f_k(X) = ((X_a W_{1k})_+ w_{2k})_+ w_{3k}`, :math:`\|W_{1k}\|_F \le 1`, objective
  :math:`\ell(\sum_k f_k(X), y) + \tfrac\beta2\sum_k(\|w_{2k}\|_2^2 + w_{3k}^2)`.
* :class:`DeepReLU` -- a fully connected network
  :math:`f(X) = (\cdots((X_a W_1)_+ W_2)_+ \cdots)_+ w_L` with the **path-norm** regularizer
  :math:`\mathrm{PN}(\theta) = \sum_{i_1,\dots,i_{L-1}} \|W_{1,:i_1}\|_2\,|W_{2,i_1 i_2}|\cdots
  |w_{L,i_{L-1}}|` (objective :math:`\ell(f(X), y) + \lambda\,\mathrm{PN}(\theta)`), the
  regularizer under which the deep program of Mishkin (PhD thesis, Stanford) is exact (see ``docs/deep.md``). For
  :math:`L = 2` its minimum over rescalings equals weight decay
  :math:`\tfrac\lambda2\sum_j(\|W_{1,:j}\|^2 + w_{2j}^2)`.
* :class:`DeepGatedReLU` -- the same tree-structured model with fixed gates (masks on the
  training data) instead of ReLUs at every layer; the model of :func:`convexnn.deep_grelu`.

With ``bias=True`` the first layer acts on :math:`X_a = [X, \mathbf 1]` (its bias is part of
:math:`W_1` and regularized with it, ``docs/DESIGN.md``); deeper layers have no bias.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from convexnn.arrangements.patterns import data_fingerprint, design_matrix
from convexnn.data import check_bool, check_lam, check_X, check_y
from convexnn.backend import Backend
from convexnn.errors import InputError
from convexnn.formulations.losses import Loss, get_loss

__all__ = ["ThreeLayerReLU", "DeepReLU", "DeepGatedReLU", "train_three_layer", "train_deep"]


def _loss_value(pred: np.ndarray, y: Any, loss: str | Loss) -> float:
    lo = get_loss(loss)
    yy = check_y(y, pred.shape[0], loss=lo.name)
    if yy.shape != pred.shape:
        raise InputError(f"y has shape {yy.shape} but the network outputs shape {pred.shape}.")
    return lo.value(pred, yy)


class ThreeLayerReLU:
    r"""K parallel three-layer ReLU sub-networks (Ergen & Pilanci (ICML 2021) eq. (4)).

    Parameters
    ----------
    W1 : array, shape (K, d', m1)
        First-layer weights of each sub-network (``d' = d + 1`` when ``bias``);
        the architecture requires :math:`\|W_{1k}\|_F \le 1`.
    w2 : array, shape (K, m1)
    w3 : array, shape (K,)
    bias : bool

    Notes
    -----
    By Lemma 1 of Ergen & Pilanci (ICML 2021) the regularizer :math:`\tfrac\beta2(\|w_{2k}\|^2 + w_{3k}^2)` can be
    replaced by :math:`\beta\|w_{2k}\|_2|w_{3k}|` after rescaling (:meth:`balanced`).
    """

    def __init__(self, W1: Any, w2: Any, w3: Any, *, bias: bool = False) -> None:
        W1 = np.asarray(W1, dtype=float)
        w2 = np.asarray(w2, dtype=float)
        w3 = np.asarray(w3, dtype=float).reshape(-1)
        if W1.ndim != 3 or w2.ndim != 2 or w2.shape != (W1.shape[0], W1.shape[2]) or w3.shape != (W1.shape[0],):
            raise InputError(f"expected W1 (K, d', m1), w2 (K, m1), w3 (K,); got {W1.shape}, {w2.shape}, "
                             f"{w3.shape}.")
        if not (np.all(np.isfinite(W1)) and np.all(np.isfinite(w2)) and np.all(np.isfinite(w3))):
            raise InputError("network weights contain NaN or inf.")
        self.W1, self.w2, self.w3, self.bias = W1, w2, w3, check_bool(bias, "bias")

    @property
    def n_subnetworks(self) -> int:
        return int(self.W1.shape[0])

    @property
    def m1(self) -> int:
        return int(self.W1.shape[2])

    def design(self, X: Any) -> np.ndarray:
        Xa = design_matrix(X, self.bias)
        if Xa.shape[1] != self.W1.shape[1]:
            raise InputError(f"X gives {Xa.shape[1]} features (bias={self.bias}) but W1 expects "
                             f"{self.W1.shape[1]}.")
        return Xa

    def subnetwork_outputs(self, X: Any) -> np.ndarray:
        r"""Outputs :math:`f_k(X)` of every sub-network, shape ``(n, K)``."""
        Xa = self.design(X)
        h1 = np.maximum(np.einsum("nd,kdm->knm", Xa, self.W1), 0.0)
        z = np.einsum("knm,km->kn", h1, self.w2)
        return (np.maximum(z, 0.0) * self.w3[:, None]).T

    def predict(self, X: Any) -> np.ndarray:
        r""":math:`\sum_k ((X_a W_{1k})_+ w_{2k})_+ w_{3k}`, shape ``(n,)``."""
        return self.subnetwork_outputs(X).sum(axis=1)

    def regularizer(self) -> float:
        r""":math:`\tfrac12\sum_k(\|w_{2k}\|_2^2 + w_{3k}^2)` (multiplied by ``lam`` in the objective)."""
        return 0.5 * float(np.sum(self.w2 ** 2) + np.sum(self.w3 ** 2))

    def constraint_violation(self) -> float:
        r"""Largest violation :math:`\max_k(\|W_{1k}\|_F - 1)_+` of the architecture's constraint."""
        if self.n_subnetworks == 0:
            return 0.0
        return float(max(0.0, np.max(np.sqrt(np.sum(self.W1 ** 2, axis=(1, 2)))) - 1.0))

    def objective(self, X: Any, y: Any, lam: float, loss: str | Loss = "squared", *,
                  tol: float = 1e-8) -> float:
        r"""Training objective (4): :math:`\ell(f(X), y) + \tfrac\lambda2\sum_k(\|w_{2k}\|^2 + w_{3k}^2)`.

        Raises
        ------
        InputError
            If some :math:`\|W_{1k}\|_F > 1 + \mathrm{tol}` (outside the architecture of (4);
            project with :meth:`projected` first).
        """
        viol = self.constraint_violation()
        if viol > tol:
            raise InputError(f"||W1_k||_F exceeds 1 by {viol:.3g}: the three-layer architecture (4) "
                             "requires ||W1_k||_F <= 1; use net.projected().")
        lam = check_lam(lam, allow_zero=True)
        return _loss_value(self.predict(X), y, loss) + lam * self.regularizer()

    def projected(self) -> "ThreeLayerReLU":
        r"""Same function with :math:`\|W_{1k}\|_F \le 1`: scale :math:`W_{1k}` down by
        :math:`c = \|W_{1k}\|_F` and :math:`w_{2k}` up by ``c`` (positive homogeneity)."""
        c = np.maximum(np.sqrt(np.sum(self.W1 ** 2, axis=(1, 2))), 1.0)
        return ThreeLayerReLU(self.W1 / c[:, None, None], self.w2 * c[:, None], self.w3, bias=self.bias)

    def balanced(self) -> "ThreeLayerReLU":
        r"""Lemma 1 rescaling: :math:`w_{2k} \to \alpha w_{2k}`, :math:`w_{3k} \to w_{3k}/\alpha`
        with :math:`\|\alpha w_{2k}\| = |w_{3k}/\alpha|` (same function, minimal regularizer
        :math:`\beta\|w_{2k}\||w_{3k}|`)."""
        a = np.linalg.norm(self.w2, axis=1)
        b = np.abs(self.w3)
        s = np.ones_like(a)
        ok = (a > 0) & (b > 0)
        s[ok] = np.sqrt(b[ok] / a[ok])
        return ThreeLayerReLU(self.W1, self.w2 * s[:, None], self.w3 / s, bias=self.bias)

    def as_deep(self) -> "DeepReLU":
        r"""The same function as a fully connected :class:`DeepReLU`: :math:`W_1 = [W_{11},\dots,
        W_{1K}]`, :math:`W_2 = \operatorname{blockdiag}(w_{2k})`, :math:`w_3 = (w_{3k})_k`.
        Its path norm is at most the balanced regularizer :math:`\sum_k\|w_{2k}\||w_{3k}|`
        when :math:`\|W_{1k}\|_F \le 1` (Cauchy-Schwarz)."""
        K, dp, m = self.W1.shape
        W1 = self.W1.transpose(1, 0, 2).reshape(dp, K * m)
        W2 = np.zeros((K * m, K))
        for k in range(K):
            W2[k * m:(k + 1) * m, k] = self.w2[k]
        return DeepReLU([W1, W2, self.w3.copy()], bias=self.bias)

    def __repr__(self) -> str:
        return f"ThreeLayerReLU(K={self.n_subnetworks}, d'={self.W1.shape[1]}, m1={self.m1}, bias={self.bias})"


class DeepReLU:
    r"""Fully connected ReLU network :math:`f(X) = (\cdots((X_a W_1)_+ W_2)_+\cdots)_+ w_L`.

    Parameters
    ----------
    weights : sequence of arrays
        ``[W_1 (d', m_1), W_2 (m_1, m_2), ..., w_L (m_{L-1},)]``; ``L = len(weights) >= 2``.
    bias : bool
        The first layer acts on ``[X, 1]``.
    """

    def __init__(self, weights: Sequence[Any], *, bias: bool = False) -> None:
        Ws = [np.asarray(W, dtype=float) for W in weights]
        if len(Ws) < 2:
            raise InputError(f"a deep network needs at least 2 weight matrices; got {len(Ws)}.")
        if Ws[-1].ndim == 2 and Ws[-1].shape[1] == 1:
            Ws[-1] = Ws[-1][:, 0]
        if any(W.ndim != 2 for W in Ws[:-1]) or Ws[-1].ndim != 1:
            raise InputError("weights must be 2-D matrices followed by a 1-D output vector.")
        for a, b in zip(Ws[:-1], Ws[1:]):
            if a.shape[1] != b.shape[0]:
                raise InputError(f"consecutive weights do not chain: {a.shape} then {b.shape}.")
        if not all(np.all(np.isfinite(W)) for W in Ws):
            raise InputError("network weights contain NaN or inf.")
        self.weights, self.bias = Ws, check_bool(bias, "bias")

    @property
    def depth(self) -> int:
        """Number of layers ``L``."""
        return len(self.weights)

    @property
    def widths(self) -> tuple[int, ...]:
        """Hidden widths ``(m_1, ..., m_{L-1})``."""
        return tuple(int(W.shape[1]) for W in self.weights[:-1])

    def design(self, X: Any) -> np.ndarray:
        Xa = design_matrix(X, self.bias)
        if Xa.shape[1] != self.weights[0].shape[0]:
            raise InputError(f"X gives {Xa.shape[1]} features (bias={self.bias}) but W_1 expects "
                             f"{self.weights[0].shape[0]}.")
        return Xa

    def forward(self, X: Any) -> list[np.ndarray]:
        """Pre-activations of every layer: ``[Z_1 (n, m_1), ..., Z_{L-1}, f(X) (n,)]``."""
        h = self.design(X)
        out = []
        for W in self.weights[:-1]:
            z = h @ W
            out.append(z)
            h = np.maximum(z, 0.0)
        out.append(h @ self.weights[-1])
        return out

    def predict(self, X: Any) -> np.ndarray:
        return self.forward(X)[-1]

    def path_norm(self) -> float:
        r""":math:`\sum_{\text{paths}} \|W_{1,:i_1}\|_2 \prod_{l\ge2} |W_{l,i_{l-1}i_l}|`
        (one matrix-vector product per layer)."""
        v = np.linalg.norm(self.weights[0], axis=0)
        for W in self.weights[1:]:
            v = v @ np.abs(W)
        return float(np.sum(v))

    def regularizer(self) -> float:
        """The path norm (:meth:`path_norm`)."""
        return self.path_norm()

    def objective(self, X: Any, y: Any, lam: float, loss: str | Loss = "squared") -> float:
        r""":math:`\ell(f(X), y) + \lambda\,\mathrm{PN}(\theta)` (the objective of :func:`convexnn.deep_relu`)."""
        lam = check_lam(lam, allow_zero=True)
        return _loss_value(self.predict(X), y, loss) + lam * self.path_norm()

    def __repr__(self) -> str:
        return f"DeepReLU(L={self.depth}, widths={self.widths}, bias={self.bias})"


class DeepGatedReLU:
    r"""Deep gated ReLU network: every hidden neuron multiplies its pre-activation by a fixed
    0/1 gate instead of applying the ReLU, :math:`h_l = G_l \odot (h_{l-1} W_l)`.

    The gates of layers :math:`\ge 2` are masks on the training points (in general no linear
    witness exists), so the model is evaluated on its training data only; first-layer gates are
    masks too (``patterns.gates`` give them on new data for the first layer only).

    Parameters
    ----------
    weights : sequence of arrays
        As in :class:`DeepReLU`.
    gates : sequence of bool arrays
        ``gates[l]`` of shape ``(n, m_{l+1})``: the gate of every hidden neuron on each point.
    X : array
        The training data the gates belong to (its fingerprint is checked by :meth:`predict`).
    bias : bool
    """

    def __init__(self, weights: Sequence[Any], gates: Sequence[Any], X: Any, *, bias: bool = False) -> None:
        self._net = DeepReLU(weights, bias=bias)
        Xc = check_X(X)
        G = [np.asarray(g, dtype=bool) for g in gates]
        if len(G) != len(self._net.weights) - 1:
            raise InputError(f"need one gate matrix per hidden layer ({len(self._net.weights) - 1}); got {len(G)}.")
        for g, W in zip(G, self._net.weights[:-1]):
            if g.shape != (Xc.shape[0], W.shape[1]):
                raise InputError(f"gate matrix of shape {g.shape} does not match (n, width) = "
                                 f"({Xc.shape[0]}, {W.shape[1]}).")
        self.gates, self.bias, self._fp = G, check_bool(bias, "bias"), data_fingerprint(Xc)

    @property
    def weights(self) -> list[np.ndarray]:
        return self._net.weights

    def predict(self, X: Any) -> np.ndarray:
        """Output on the training data ``X`` (another ``X`` raises :class:`InputError`)."""
        Xc = check_X(X)
        if data_fingerprint(Xc) != self._fp:
            raise InputError("a DeepGatedReLU's gates are fixed masks on its training data; it cannot "
                             "be evaluated on another X.")
        h = self._net.design(Xc)
        for W, g in zip(self._net.weights[:-1], self.gates):
            h = g * (h @ W)
        return h @ self._net.weights[-1]

    def path_norm(self) -> float:
        return self._net.path_norm()

    def objective(self, X: Any, y: Any, lam: float, loss: str | Loss = "squared") -> float:
        r""":math:`\ell(f(X), y) + \lambda\,\mathrm{PN}(\theta)` (the objective of :func:`convexnn.deep_grelu`)."""
        lam = check_lam(lam, allow_zero=True)
        return _loss_value(self.predict(X), y, loss) + lam * self.path_norm()

    def __repr__(self) -> str:
        return f"DeepGatedReLU(L={self._net.depth}, widths={self._net.widths}, bias={self.bias})"


def _torch() -> Any:
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - torch is optional
        raise InputError("training baselines need PyTorch: pip install torch") from exc
    return torch


def train_three_layer(X: Any, y: Any, *, K: int, m1: int, lam: float, loss: str | Loss = "squared",
                      bias: bool = False, steps: int = 3000, lr: float = 1e-2, batch_size: int | None = None,
                      optimizer: str = "adam", seed: int | None = None) -> ThreeLayerReLU:
    r"""Train architecture (4) with SGD or Adam (the non-convex baseline of Ergen & Pilanci (ICML 2021) Figure 4 / Table 1).

    Gradient steps on :math:`\ell(f(X), y) + \tfrac\lambda2\sum_k(\|w_{2k}\|^2 + w_{3k}^2)`
    followed by the projection :math:`W_{1k} \leftarrow W_{1k}/\max(1, \|W_{1k}\|_F)` after every
    step (projected gradient for the constraint of (4)). The loss is summed over samples as in
    the convex programs; with ``batch_size`` the minibatch loss is rescaled by ``n / batch``.
    Deterministic given ``seed`` (CPU, float64).
    """
    torch = _torch()
    lo = get_loss(loss)
    Xa = design_matrix(X, bias)
    yy = check_y(y, Xa.shape[0], loss=lo.name)
    lam = check_lam(lam, allow_zero=True)
    gen = torch.Generator().manual_seed(int(seed) if seed is not None else 0)
    n, dp = Xa.shape
    Xt = torch.tensor(Xa, dtype=torch.float64)
    yt = torch.tensor(yy, dtype=torch.float64)
    W1 = torch.randn((K, dp, m1), generator=gen, dtype=torch.float64) / np.sqrt(dp * m1)
    w2 = torch.randn((K, m1), generator=gen, dtype=torch.float64) / np.sqrt(m1)
    w3 = torch.randn((K,), generator=gen, dtype=torch.float64) / np.sqrt(K)
    params = [W1.requires_grad_(), w2.requires_grad_(), w3.requires_grad_()]
    opt = (torch.optim.Adam(params, lr=lr) if optimizer == "adam" else torch.optim.SGD(params, lr=lr))

    bk = Backend("torch", "cpu", "float64")

    def loss_fn(pred: Any, target: Any) -> Any:
        return lo.value_on(bk, pred, target)

    bs = n if batch_size is None else int(batch_size)
    for _ in range(int(steps)):
        idx = torch.randperm(n, generator=gen)[:bs] if bs < n else slice(None)
        Xb = Xt[idx]
        h1 = torch.relu(Xb @ W1.permute(1, 0, 2).reshape(dp, K * m1)).reshape(-1, K, m1)
        pred = torch.relu((h1 * w2).sum(-1)) @ w3
        obj = loss_fn(pred, yt[idx]) * (n / pred.shape[0]) + 0.5 * lam * (w2.pow(2).sum() + w3.pow(2).sum())
        opt.zero_grad()
        obj.backward()
        opt.step()
        with torch.no_grad():
            nrm = W1.pow(2).sum(dim=(1, 2)).sqrt().clamp(min=1.0)
            W1 /= nrm[:, None, None]
    return ThreeLayerReLU(W1.detach().numpy(), w2.detach().numpy(), w3.detach().numpy(), bias=bias)


def train_deep(X: Any, y: Any, *, widths: Sequence[int], lam: float, loss: str | Loss = "squared",
               bias: bool = False, steps: int = 2000, lr: float = 1e-2, seed: int | None = None) -> DeepReLU:
    r"""Train a :class:`DeepReLU` on :math:`\ell(f(X), y) + \lambda\,\mathrm{PN}(\theta)` with full-batch Adam."""
    torch = _torch()
    lo = get_loss(loss)
    Xa = design_matrix(X, bias)
    yy = check_y(y, Xa.shape[0], loss=lo.name)
    lam = check_lam(lam, allow_zero=True)
    gen = torch.Generator().manual_seed(int(seed) if seed is not None else 0)
    dims = [Xa.shape[1]] + [int(w) for w in widths] + [1]
    Ws = [(torch.randn((a, b), generator=gen, dtype=torch.float64) / np.sqrt(a)).requires_grad_()
          for a, b in zip(dims[:-1], dims[1:])]
    Xt = torch.tensor(Xa, dtype=torch.float64)
    yt = torch.tensor(yy, dtype=torch.float64)
    opt = torch.optim.Adam(Ws, lr=lr)
    bk = Backend("torch", "cpu", "float64")
    for _ in range(int(steps)):
        h = Xt
        for W in Ws[:-1]:
            h = torch.relu(h @ W)
        pred = (h @ Ws[-1])[:, 0]
        fit = lo.value_on(bk, pred, yt)
        v = Ws[0].pow(2).sum(0).add(1e-30).sqrt()
        for W in Ws[1:]:
            v = v @ W.abs()
        obj = fit + lam * v.sum()
        opt.zero_grad()
        obj.backward()
        opt.step()
    out = [W.detach().numpy().copy() for W in Ws]
    out[-1] = out[-1][:, 0]
    return DeepReLU(out, bias=bias)
