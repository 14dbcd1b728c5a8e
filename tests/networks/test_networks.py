"""TwoLayerReLU / GatedReLU: predictions, objective, bias convention, rescaling, torch import/export."""

from __future__ import annotations

import sys

import numpy as np
import pytest

import convexnn as cx
from convexnn.errors import InputError


def _net(seed: int = 0, d: int = 3, m: int = 5, c: int | None = None, bias: bool = False) -> cx.TwoLayerReLU:
    rng = np.random.default_rng(seed)
    w2 = rng.standard_normal(m) if c is None else rng.standard_normal((m, c))
    return cx.TwoLayerReLU(rng.standard_normal((d + bias, m)), w2, bias=bias)


def test_predict_and_objective_match_the_formula():
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((7, 3)), rng.standard_normal(7)
    net = _net(bias=True)
    assert net.n_neurons == 5 and net.n_features == 3 and net.n_outputs == 1
    Xa = np.hstack([X, np.ones((7, 1))])
    pred = np.maximum(Xa @ net.W1, 0) @ net.w2
    np.testing.assert_allclose(net.predict(X), pred)
    manual = 0.5 * np.sum((pred - y) ** 2) + 0.3 / 2 * (np.sum(net.W1 ** 2) + np.sum(net.w2 ** 2))
    assert net.objective(X, y, 0.3) == pytest.approx(manual)
    yc = np.where(y > 0, 1.0, -1.0)
    logistic = np.sum(np.log1p(np.exp(-yc * pred))) + 0.15 * (np.sum(net.W1 ** 2) + np.sum(net.w2 ** 2))
    assert net.objective(X, yc, 0.3, loss="logistic") == pytest.approx(logistic)
    hinge = np.sum(np.maximum(0, 1 - yc * pred))
    assert net.objective(X, yc, 0.0, loss="hinge") == pytest.approx(hinge)


def test_bias_is_the_last_row_of_W1():
    W1 = np.array([[1.0, -1.0], [0.5, 2.0]])  # d = 1, bias row [0.5, 2.0]
    net = cx.TwoLayerReLU(W1, np.array([1.0, -1.0]), bias=True)
    X = np.array([[0.0], [3.0]])
    expected = np.maximum(X[:, 0:1] * W1[0] + W1[1], 0) @ np.array([1.0, -1.0])
    np.testing.assert_allclose(net.predict(X), expected)
    assert net.regularizer() == pytest.approx(0.5 * (np.sum(W1 ** 2) + 2.0))  # bias is regularized


def test_vector_output_and_gated_network():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((6, 3))
    net = _net(c=2)
    assert net.predict(X).shape == (6, 2) and net.vector_output
    gated = cx.GatedReLU(net.W1, net.W1, net.w2)  # gates = weights: a ReLU network
    np.testing.assert_allclose(gated.predict(X), net.predict(X))
    other = cx.GatedReLU(-net.W1, net.W1, net.w2)
    expected = ((X @ -net.W1) >= 0) * (X @ net.W1) @ net.w2
    np.testing.assert_allclose(other.predict(X), expected)
    Y = rng.standard_normal((6, 2))
    assert gated.objective(X, Y, 0.2) == pytest.approx(net.objective(X, Y, 0.2))  # gates not regularized
    with pytest.raises(InputError, match="shape"):
        net.objective(X, Y[:, 0], 0.2)


def test_balanced_keeps_predictions_and_minimizes_weight_decay():
    rng = np.random.default_rng(2)
    X = rng.standard_normal((9, 3))
    net = cx.TwoLayerReLU(rng.standard_normal((3, 4)) * 5, rng.standard_normal(4) * 0.1)
    bal = net.balanced()
    np.testing.assert_allclose(bal.predict(X), net.predict(X), atol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(bal.W1, axis=0), np.abs(bal.w2))
    assert bal.regularizer() < net.regularizer()
    assert bal.regularizer() == pytest.approx(np.sum(np.linalg.norm(net.W1, axis=0) * np.abs(net.w2)))
    pruned = cx.TwoLayerReLU(np.c_[net.W1, np.zeros(3)], np.r_[net.w2, 1.0]).without_zero_neurons()
    assert pruned.n_neurons == 4


def test_network_input_errors():
    with pytest.raises(InputError, match="neurons"):
        cx.TwoLayerReLU(np.ones((3, 4)), np.ones(5))
    with pytest.raises(InputError, match="NaN"):
        cx.TwoLayerReLU(np.full((3, 2), np.nan), np.ones(2))
    with pytest.raises(InputError, match="shape"):
        cx.TwoLayerReLU(np.ones(3), np.ones(3))
    with pytest.raises(InputError, match="gates"):
        cx.GatedReLU(np.ones((2, 2)), np.ones((3, 2)), np.ones(2))
    net = _net()
    with pytest.raises(InputError, match="features"):
        net.predict(np.ones((4, 2)))
    with pytest.raises(InputError, match=">= 0"):
        net.objective(np.ones((4, 3)), np.ones(4), -1.0)
    with pytest.raises(InputError, match="-1, \\+1"):
        net.objective(np.ones((4, 3)), np.arange(4.0), 0.1, loss="hinge")


# ----------------------------------------------------------------------------- torch
@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("c", [None, 2])
def test_torch_round_trip(bias, c):
    torch = pytest.importorskip("torch")
    net = _net(seed=3, c=c, bias=bias)
    module = net.to_torch()
    assert module[0].bias is not None if bias else module[0].bias is None
    assert module[2].bias is None
    X = np.random.default_rng(4).standard_normal((8, 3))
    out = module(torch.as_tensor(X)).detach().numpy()
    np.testing.assert_allclose(out.reshape(net.predict(X).shape), net.predict(X), atol=1e-12)
    back = cx.TwoLayerReLU.from_torch(module)
    assert back.bias == bias and back.w2.shape == net.w2.shape
    np.testing.assert_allclose(back.W1, net.W1)
    np.testing.assert_allclose(back.w2, net.w2)


def test_from_torch_output_bias_and_wrong_modules():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    nn = torch.nn
    with_bias = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 1))
    with pytest.raises(InputError, match="output layer has a nonzero bias"):
        cx.TwoLayerReLU.from_torch(with_bias)
    with torch.no_grad():
        with_bias[2].bias.zero_()
    net = cx.TwoLayerReLU.from_torch(with_bias)  # an all-zero output bias is accepted
    X = np.random.default_rng(5).standard_normal((5, 3))
    expected = with_bias(torch.as_tensor(X, dtype=torch.float32)).detach().numpy()[:, 0]
    np.testing.assert_allclose(net.predict(X), expected, atol=1e-5)
    with pytest.raises(InputError, match="nn.Sequential"):
        cx.TwoLayerReLU.from_torch(nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1)))
    with pytest.raises(InputError, match="nn.Sequential"):
        cx.TwoLayerReLU.from_torch(nn.Linear(3, 4))


def test_torch_missing_gives_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(ImportError, match="optional extra"):
        _net().to_torch()
