"""PyTorch conventions: the weight-decay conversion checked against torch's own loss and optimizer
step, certificates in torch units, module adapters verified by forwards, export in the user's dtype."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional

import convexnn as cx  # noqa: E402
from convexnn.torch_interop import (  # noqa: E402
    from_module,
    improved_module,
    lam_from_torch,
    optimal_module,
    to_torch,
    to_torch_weight_decay,
    torch_objective_scale,
)


def _data(n=16, d=2, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    y = np.maximum(X[:, 0] - X[:, 1], 0) + 0.1 * rng.standard_normal(n)
    return X, y


def _model(d, m, bias, seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(d, m, bias=bias), nn.ReLU(), nn.Linear(m, 1, bias=False)).double()


def _torch_objective(model, X, y, wd, reduction, loss):
    """What the training loop minimizes: criterion + (wd / 2) * ||theta||^2 (all parameters)."""
    out = model(torch.as_tensor(X))
    t = torch.as_tensor(y)[:, None]
    if loss == "squared":
        crit = nn.MSELoss(reduction=reduction)(out, t)
    else:  # labels +-1 -> BCE targets in {0, 1}
        crit = nn.BCEWithLogitsLoss(reduction=reduction)(out, (t + 1) / 2)
    return crit + 0.5 * wd * sum((p ** 2).sum() for p in model.parameters())


def _val(t):
    return float(t.detach())


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("loss", ["squared", "logistic"])
def test_weight_decay_conversion_matches_torch(reduction, bias, loss):
    X, y = _data()
    if loss == "logistic":
        y = np.where(y > np.median(y), 1.0, -1.0)
    wd = 3e-3
    model = _model(2, 5, bias)
    T = _val(_torch_objective(model, X, y, wd, reduction, loss))
    net = cx.TwoLayerReLU.from_torch(model)
    lam = lam_from_torch(wd, len(X), reduction, loss=loss)
    c = torch_objective_scale(len(X), reduction, loss=loss)
    assert T == pytest.approx(c * net.objective(X, y, lam, loss), rel=1e-12)
    # closed forms: MSELoss mean -> lam = n wd / 2, sum -> wd / 2; logistic mean -> n wd, sum -> wd
    n = len(X)
    expected = {("squared", "mean"): n * wd / 2, ("squared", "sum"): wd / 2,
                ("logistic", "mean"): n * wd, ("logistic", "sum"): wd}[(loss, reduction)]
    assert lam == pytest.approx(expected, rel=1e-15)
    assert to_torch_weight_decay(lam, n, reduction, loss=loss) == pytest.approx(wd, rel=1e-15)


@pytest.mark.parametrize("opt", ["sgd", "adam"])
def test_optimizer_weight_decay_descends_that_objective(opt):
    """torch's coupled weight decay adds wd * theta to the gradient: the gradient of (wd/2)||theta||^2."""
    X, y = _data(seed=1)
    wd, lr = 0.05, 1e-2
    a, b = _model(2, 4, True, seed=3), _model(2, 4, True, seed=3)
    make = (lambda p, w: torch.optim.SGD(p, lr=lr, weight_decay=w)) if opt == "sgd" else \
        (lambda p, w: torch.optim.Adam(p, lr=lr, weight_decay=w))
    oa, ob = make(a.parameters(), wd), make(b.parameters(), 0.0)
    oa.zero_grad()
    nn.MSELoss()(a(torch.as_tensor(X)), torch.as_tensor(y)[:, None]).backward()
    oa.step()
    ob.zero_grad()
    _torch_objective(b, X, y, wd, "mean", "squared").backward()  # explicit penalty, no weight_decay
    ob.step()
    for pa, pb in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(pa, pb, rtol=1e-12, atol=1e-14)


def test_certify_with_weight_decay_is_certify_with_converted_lam():
    X, y = _data(n=14)
    wd = 0.02
    model = _model(2, 3, True, seed=2)
    c1 = cx.certify(model, X, y, weight_decay=wd, reduction="mean")
    c2 = cx.certify(model, X, y, lam_from_torch(wd, len(X), "mean"))
    assert c1.lam == pytest.approx(len(X) * wd / 2)
    assert c1.lower_bound == pytest.approx(c2.lower_bound, rel=1e-12)
    assert c1.rel_gap == pytest.approx(c2.rel_gap, rel=1e-9)
    # torch units: the primal is exactly the training objective
    scale = torch_objective_scale(len(X), "mean")
    assert scale * c1.primal == pytest.approx(_val(_torch_objective(model, X, y, wd, "mean", "squared")), rel=1e-12)
    with pytest.raises(cx.InputError, match="exactly one"):
        cx.certify(model, X, y, 0.1, weight_decay=wd)
    with pytest.raises(cx.InputError, match="reduction"):
        cx.certify(model, X, y, weight_decay=wd, reduction="none")


class _Custom(nn.Module):
    def __init__(self, act=F.relu, out_bias=False):
        super().__init__()
        torch.manual_seed(0)
        self.fc1 = nn.Linear(2, 4)
        self.fc2 = nn.Linear(4, 1, bias=out_bias)
        self.act = act

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


def test_from_module_accepts_a_custom_relu_module():
    X, y = _data()
    mod = _Custom().double()
    with pytest.raises(cx.InputError):  # the structural import refuses it ...
        cx.TwoLayerReLU.from_torch(mod)
    net = from_module(mod, X)  # ... the verified adapter accepts it
    with torch.no_grad():
        np.testing.assert_allclose(net.predict(X), mod(torch.as_tensor(X))[:, 0].numpy(), rtol=1e-12)
    cert = cx.certify(net, X, y, weight_decay=1e-2)
    assert np.isfinite(cert.lower_bound) and cert.lower_bound <= cert.primal
    # a float32 module is verified at float32 tolerance
    assert from_module(_Custom().float(), X).n_neurons == 4


@pytest.mark.parametrize("bad, match", [
    (lambda: _Custom(act=F.leaky_relu).double(), "differs"),
    (lambda: _Custom(act=torch.tanh).double(), "differs"),
    (lambda: _Custom(out_bias=True).double(), "bias"),
    (lambda: nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 3), nn.ReLU(), nn.Linear(3, 1)).double(),
     "exactly two"),
])
def test_from_module_refuses_what_it_cannot_certify(bad, match):
    X, _ = _data()
    mod = bad()
    if match == "bias":
        with torch.no_grad():
            mod.fc2.bias.fill_(0.5)
    with pytest.raises(cx.InputError, match=match):
        from_module(mod, X)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_to_torch_in_the_users_dtype(dtype):
    X, y = _data()
    P = cx.sample_patterns(X, 12, seed=0, bias=True)
    for build in (cx.c_relu, cx.c_grelu):
        net = build(X, y, P, 0.1).solve().to_network()
        like = _model(2, 3, True).to(dtype)
        mod = to_torch(net, like=like)
        assert next(mod.parameters()).dtype == dtype
        with torch.no_grad():
            out = mod(torch.as_tensor(X, dtype=dtype))[:, 0].double().numpy()
        tol = 1e-5 if dtype == torch.float32 else 1e-12
        np.testing.assert_allclose(out, net.predict(X), rtol=tol, atol=tol)
        # modules pickle (the gated module class is importable by name)
        again = pickle.loads(pickle.dumps(mod))
        with torch.no_grad():
            np.testing.assert_allclose(again(torch.as_tensor(X, dtype=dtype))[:, 0].double().numpy(), out)
    assert next(to_torch(net, dtype="float32").parameters()).dtype == torch.float32


def test_improved_and_optimal_modules():
    X, y = _data(n=12)
    wd = 0.02
    model = _model(2, 2, True, seed=5)
    cert = cx.certify(model, X, y, weight_decay=wd)
    assert not cert.is_optimal and cert.improving_neuron is not None
    better = improved_module(cert, like=model)
    T0 = _val(_torch_objective(model, X, y, wd, "mean", "squared"))
    T1 = _val(_torch_objective(better, X, y, wd, "mean", "squared"))
    assert T1 < T0
    best, sol = optimal_module(X, y, weight_decay=wd, like=model)
    T2 = _val(_torch_objective(best, X, y, wd, "mean", "squared"))
    assert T2 == pytest.approx(torch_objective_scale(len(X), "mean") * sol.value, rel=1e-6)
    assert T2 <= T1 + 1e-9
    assert cx.certify(best, X, y, weight_decay=wd).is_optimal


def test_conversion_validates_its_arguments():
    with pytest.raises(cx.InputError):
        lam_from_torch(-1.0, 10)
    with pytest.raises(cx.InputError):
        lam_from_torch(0.1, 0)
    with pytest.raises(cx.InputError):
        lam_from_torch(0.1, 10, "batchmean")
    assert lam_from_torch(0.1, 10, n_outputs=3) == pytest.approx(10 * 3 * 0.1 / 2)
