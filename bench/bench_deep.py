"""Benchmark of the three-layer / deep convex programs: the shape of Ergen & Pilanci (ICML 2021) Table 1.

Part A (Table 1 shape): training objective (4) of architecture (4) with (m1, K, beta) =
(7, 10, 0.1) on small real datasets shipped with scikit-learn, trained by minibatch Adam
(projected onto ||W1_k||_F <= 1, batch floor(n/8)) versus program (12) solved by Clarabel with
Remark-3 sampled patterns ("matched": one block per random network), alone and together with
the trained network's own patterns (the active-set view of Remark 3, which guarantees
convex <= SGD). Test error = mean squared error on held-out points. The convex value is an
*upper* bound on the global optimum here (sampled patterns), realized by the mapped network.

Part B: build / compile / solve times of program (12) and of the deep program (L = 3) versus
the number of patterns.

Run:  python bench/bench_deep.py   (about 2-4 minutes on 2 cores; writes nothing, prints Markdown)
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import convexnn as cx  # noqa: E402
from convexnn.arrangements.layers import merge_combos, network_combos, sample_combos  # noqa: E402

M1, K, BETA = 7, 10, 0.1
N_TRAIN, N_TEST = 60, 40
N_SAMPLES = 40
SGD_STEPS = 1500


def split(name: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    X, y = cx.load_dataset(name, n_features=8)
    rng = np.random.default_rng(seed)
    idx = rng.permutation(len(y))
    tr, te = idx[:N_TRAIN], idx[N_TRAIN:N_TRAIN + N_TEST]
    return X[tr], y[tr], X[te], y[te]


def mse(pred: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean((pred - y) ** 2))


def part_a() -> None:
    print("## A. Training objective (4), (m1, K, beta) = (7, 10, 0.1)\n")
    print(f"n_train = {N_TRAIN}, n_test = {N_TEST}, first 8 features, {N_SAMPLES} sampled networks, "
          f"Adam {SGD_STEPS} steps (lr 1e-2, batch floor(n/8)).\n")
    print("| dataset | n | d | SGD obj | Convex obj (sampled) | Convex obj (sampled + SGD patterns) "
          "| SGD test MSE | Convex test MSE | convex blocks | convex time (s) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name in ("diabetes", "iris", "wine", "breast_cancer"):
        Xtr, ytr, Xte, yte = split(name)
        t0 = time.perf_counter()
        net = cx.train_three_layer(Xtr, ytr, K=K, m1=M1, lam=BETA, steps=SGD_STEPS, lr=1e-2,
                                   batch_size=max(1, N_TRAIN // 8), seed=0)
        sgd_obj = net.objective(Xtr, ytr, BETA)
        combos, _ = sample_combos(Xtr, M1, N_SAMPLES, seed=0)
        f = cx.three_layer(Xtr, ytr, combos, "matched", BETA, m1=M1)
        s = f.solve()
        t1 = time.perf_counter()
        both = merge_combos(combos, network_combos(net, Xtr)[0])
        g = cx.three_layer(Xtr, ytr, both, "matched", BETA, m1=M1)
        sg = g.solve()
        t2 = time.perf_counter()
        mapped = sg.to_network()
        assert abs(mapped.objective(Xtr, ytr, BETA) - sg.value) <= 1e-5 * max(1.0, sg.value)
        print(f"| {name} | {N_TRAIN} | {Xtr.shape[1]} | {sgd_obj:.4f} | {s.value:.4f} | {sg.value:.4f} | "
              f"{mse(net.predict(Xte), yte):.4f} | {mse(mapped.predict(Xte), yte):.4f} | {g.n_blocks} | "
              f"{t2 - t1:.1f} |", flush=True)
        del t0
    print()


def part_b() -> None:
    print("## B. Build / solve time vs number of patterns\n")
    Xtr, ytr, _, _ = split("diabetes")
    print("Program (12), diabetes (n = 60, d = 8), m1 = 7, 'matched' sampled blocks:\n")
    print("| sampled networks | blocks | variables | constraint rows | build (s) | compile (s) | solve (s) | value |")
    print("|---|---|---|---|---|---|---|---|")
    for S in (5, 10, 20, 40, 80):
        combos, _ = sample_combos(Xtr, M1, S, seed=1)
        t0 = time.perf_counter()
        f = cx.three_layer(Xtr, ytr, combos, "matched", BETA, m1=M1)
        tb = time.perf_counter() - t0
        s = f.solve()
        sz = f.meta["size"]
        print(f"| {S} | {sz['blocks']} | {sz['variables']} | {sz['constraints']} | {tb:.3f} | "
              f"{s.compile_time:.2f} | {s.solve_time:.2f} | {s.value:.4f} |", flush=True)
    print()
    rng = np.random.default_rng(0)
    X = rng.standard_normal((5, 2))
    teacher = cx.ThreeLayerReLU(rng.standard_normal((5, 2, 3)), rng.standard_normal((5, 3)),
                                rng.standard_normal(5)).projected()
    y = teacher.predict(X)
    P = cx.enumerate_patterns(X)
    print("Exact program (12) on the Ergen & Pilanci (ICML 2021) Figure 4 setup ((n, d, m1, beta) = (5, 2, 3, 0.002), "
          f"{len(P)} exact first-layer patterns, second_patterns='complete'):\n")
    print("| m1 | tuples | blocks | variables | build (s) | compile (s) | solve (s) | value | mapped objective |")
    print("|---|---|---|---|---|---|---|---|---|")
    for m1 in (1, 2, 3):
        t0 = time.perf_counter()
        f = cx.three_layer(X, y, P, "complete", 0.002, m1=m1)
        tb = time.perf_counter() - t0
        s = f.solve()
        print(f"| {m1} | {f.meta['n_combos']} | {f.n_blocks} | {f.meta['size']['variables']} | {tb:.2f} | "
              f"{s.compile_time:.2f} | {s.solve_time:.2f} | {s.value:.6f} | "
              f"{s.to_network().objective(X, y, 0.002):.6f} |", flush=True)
    print()
    print("Deep program (L = 3) on n = 8, d = 2 random data, sampled per-layer patterns (widths (4, 3)):\n")
    print("| sampled networks | P1 | P2 | leaves | variables | constraint rows | compile (s) | solve (s) | value |")
    print("|---|---|---|---|---|---|---|---|---|")
    X = rng.standard_normal((8, 2))
    y = rng.standard_normal(8)
    for S in (1, 2, 4, 8):
        layers = cx.deep_layer_patterns(X, (4, 3), n_samples=S, seed=2)
        f = cx.deep_relu(X, y, layers, 0.05)
        s = f.solve()
        sz = f.meta["size"]
        print(f"| {S} | {f.meta['counts'][0]} | {f.meta['counts'][1]} | {sz['leaves']} | {sz['variables']} | "
              f"{sz['constraints']} | {s.compile_time:.2f} | {s.solve_time:.2f} | {s.value:.4f} |", flush=True)
    print()


def main() -> None:
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover
        pass
    t0 = time.perf_counter()
    part_a()
    part_b()
    print(f"Total wall time: {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
