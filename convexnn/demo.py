r"""``make demo``: prove (or refute) that a ReLU network trained by Adam is globally optimal.

Steps (each printed with its timing):

1. load a real low-dimensional dataset shipped with scikit-learn (diabetes: two standardized
   features, a random subset of points, hidden-layer bias);
2. train a two-layer ReLU network with Adam (torch; a numpy Adam when torch is missing) on the
   weight-decay objective :math:`\frac12\|(X_aW_1)_+w_2 - y\|^2 + \frac\lambda2\sum_j(\|W_{1j}\|^2 + w_{2j}^2)`;
3. enumerate the exact activation patterns (count vs Cover's bound);
4. certify the trained network (:func:`convexnn.certify`): a lower bound on the global optimum
   over networks of *any* width, the duality gap and the verdict;
5. solve the exact convex program (C-ReLU, Clarabel) and compare both objectives;
6. add the improving neuron when the network is not optimal;
7. explore the optimal set (Mishkin & Pilanci (ICML 2023)), extract a minimal model and certify it.

Run with ``python -m convexnn.demo`` (under two minutes on a laptop core).
"""

from __future__ import annotations

import time
import warnings
from typing import Any

import numpy as np

N_POINTS = 40
FEATURES = (2, 3)  # diabetes: body-mass index, blood pressure
WIDTH = 24
LAM = 0.1
STEPS = 3000
SEED = 0


def _rule(title: str) -> None:
    print(f"\n== {title} " + "=" * max(0, 74 - len(title)))


def _train_torch(X: np.ndarray, y: np.ndarray, width: int, lam: float, steps: int, seed: int) -> tuple[Any, str]:
    import torch

    torch.set_num_threads(1)  # a tiny full-batch problem: threads only add overhead
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(X.shape[1], width), torch.nn.ReLU(),
                                torch.nn.Linear(width, 1, bias=False)).double()
    Xt = torch.tensor(X)
    yt = torch.tensor(y)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps, eta_min=1e-4)
    for _ in range(steps):
        opt.zero_grad()
        pred = model(Xt)[:, 0]
        reg = sum((p ** 2).sum() for p in model.parameters())
        obj = 0.5 * ((pred - yt) ** 2).sum() + 0.5 * lam * reg
        obj.backward()
        opt.step()
        sched.step()
    return model, "torch.optim.Adam"


def _train_numpy(X: np.ndarray, y: np.ndarray, width: int, lam: float, steps: int, seed: int) -> tuple[Any, str]:
    rng = np.random.default_rng(seed)
    Xa = np.hstack([X, np.ones((X.shape[0], 1))])
    W1 = rng.standard_normal((Xa.shape[1], width)) / np.sqrt(Xa.shape[1])
    w2 = rng.standard_normal(width) / np.sqrt(width)
    params = [W1, w2]
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    b1, b2, eps = 0.9, 0.999, 1e-8
    for t in range(1, steps + 1):
        lr = 1e-4 + 0.5 * (1e-2 - 1e-4) * (1 + np.cos(np.pi * t / steps))
        H = Xa @ W1
        A = np.maximum(H, 0.0)
        r = A @ w2 - y
        g2 = A.T @ r + lam * w2
        g1 = Xa.T @ ((H > 0) * np.outer(r, w2)) + lam * W1
        for p, g, mm, vv in zip(params, (g1, g2), m, v):
            mm *= b1
            mm += (1 - b1) * g
            vv *= b2
            vv += (1 - b2) * g * g
            p -= lr * (mm / (1 - b1 ** t)) / (np.sqrt(vv / (1 - b2 ** t)) + eps)
    return (W1, w2), "numpy Adam (torch is not installed: the same Adam update, written in numpy)"


def main() -> None:
    import convexnn as cx
    from convexnn.arrangements.enumerate import cover_bound, enumerate_patterns

    t_all = time.perf_counter()
    print("convexnn demo: is a ReLU network trained by Adam globally optimal?")

    _rule("1. data")
    X, y = cx.load_dataset("diabetes")
    rng = np.random.default_rng(SEED)
    idx = rng.choice(X.shape[0], N_POINTS, replace=False)
    X = X[idx][:, list(FEATURES)]
    y = y[idx]
    print(f"scikit-learn diabetes: n = {X.shape[0]} points, d = {X.shape[1]} standardized features "
          "(bmi, bp) + bias, standardized target")
    print(f"objective: 0.5*||relu([X,1] W1) w2 - y||^2 + (lam/2)*sum_j(||W1_j||^2 + w2_j^2), lam = {LAM}")

    _rule("2. train a ReLU network with a standard optimizer")
    t0 = time.perf_counter()
    try:
        net, how = _train_torch(X, y, WIDTH, LAM, STEPS, SEED)
    except ImportError:
        net, how = _train_numpy(X, y, WIDTH, LAM, STEPS, SEED)
    model = cx.TwoLayerReLU.from_torch(net) if not isinstance(net, tuple) else cx.TwoLayerReLU(*net, bias=True)
    obj_nn = model.objective(X, y, LAM)
    print(f"{how}: width {WIDTH}, {STEPS} full-batch steps, {time.perf_counter() - t0:.1f} s")
    print(f"network objective: {obj_nn:.10g}")

    _rule("3. exact activation patterns")
    t0 = time.perf_counter()
    with warnings.catch_warnings():  # the reason is printed below
        warnings.simplefilter("ignore", cx.NotProvenWarning)
        P = enumerate_patterns(X, bias=True)
    r = np.linalg.matrix_rank(np.hstack([X, np.ones((X.shape[0], 1))]))
    print(f"{len(P)} chambers of the arrangement of [X, 1] (Cover bound {cover_bound(X.shape[0], r)}), "
          f"enumerated in {time.perf_counter() - t0:.2f} s")
    if not P.exact:
        print(f"not proven complete: {P.reason}.\nThe certificates below bound the dual constraint over "
              "ALL chambers by branch and bound, so they are proofs all the same.")

    _rule("4. certificate of the trained network")
    # the torch module itself is certified; without torch, the TwoLayerReLU holding the numpy weights
    cert = cx.certify(model if isinstance(net, tuple) else net, X, y, LAM, patterns=P)
    print(cert)

    _rule("5. the exact convex program (C-ReLU)")
    f = cx.c_relu(X, y, P, LAM)
    print(f"variables/constraints: {f.size()}")
    sol = f.solve()
    print(f"solved by {sol.solver} in {sol.solve_time:.1f} s (+{sol.compile_time:.1f} s compile): "
          f"optimal value p* = {sol.value:.10g}")

    _rule("6. comparison")
    true_gap = obj_nn - sol.value
    print(f"  network objective (Adam)         {obj_nn:.10g}")
    print(f"  global optimum p* (convex)       {sol.value:.10g}")
    print(f"  certified lower bound            {cert.lower_bound:.10g}   (<= p*: "
          f"{cert.lower_bound <= sol.value + 1e-9 * abs(sol.value)})")
    print(f"  true suboptimality  F - p*       {true_gap:.4g}  (relative {true_gap / abs(obj_nn):.3g})")
    print(f"  certified gap       F - bound    {cert.gap:.4g}  (relative {cert.rel_gap:.3g})")
    print(f"  verdict                          {cert.verdict}")
    if cert.improving_neuron is not None and not cert.is_optimal:
        better = cert.improve()
        print(f"  adding the improving neuron      objective {obj_nn:.10g} -> {better.objective(X, y, LAM):.10g}")

    _rule("7. all optimal networks, a minimal one, and its certificate")
    S = cx.optimal_set(sol)
    opt = sol.to_network()
    print(f"C-ReLU solution -> network with {opt.n_neurons} neurons (interior-point solutions are dense)")
    print(f"optimal set (Mishkin & Pilanci (ICML 2023)): polytope over {S.B.shape[1]} candidate neurons; unique up to symmetries: "
          f"{S.is_unique()}")
    objs = [net.objective(X, y, LAM) for net in S.sample(5, seed=SEED)]
    print(f"5 random optimal networks: objectives within {max(objs) - min(objs):.2g} of each other")
    small = S.minimal_model()
    pruned = cx.prune(opt, X)
    print(f"minimal model (vertex of the polytope): {small.n_neurons} neurons; pruning the dense network "
          f"directly (Mishkin & Pilanci (ICML 2023) algorithm): {pruned.n_neurons} neurons (both <= n = {X.shape[0]})")
    c2 = cx.certify(small, X, y, LAM, patterns=P)
    print(f"certificate of the minimal model: objective {c2.primal:.10g}, gap {c2.gap:.3g} "
          f"(relative {c2.rel_gap:.3g}) -> {c2.verdict}")

    print(f"\ntotal time {time.perf_counter() - t_all:.1f} s")


if __name__ == "__main__":
    main()
