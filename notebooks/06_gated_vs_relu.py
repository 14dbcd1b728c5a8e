# %% [markdown]
# # 6. Gated ReLU vs ReLU: the cone decomposition
#
# Dropping the cone constraints of C-ReLU gives **C-GReLU**, an unconstrained group lasso that is
# exactly the training problem of a *gated* ReLU network with fixed gates (Mishkin, Sahiner &
# Pilanci, *Fast Convex Optimization for Two-Layer ReLU Networks*, ICML 2022, Theorem 2.2).
# For the same patterns $p_{\text{gated}} \le p_{\text{ReLU}}$. A **cone decomposition** turns a gated
# solution back into a ReLU network with the same predictions: each $u_i = v_i - w_i$ with
# $v_i, w_i \in \mathcal K_i$. Theorem 3.7 bounds the price: when $X_a$ has full row rank,
#
# $$\lambda\Big(\sum_i\|v_i\| + \|w_i\| - \|u_i\|\Big) \le 2\lambda\,\kappa(X_a)\sum_i\|u_i\| .$$

# %%
import numpy as np
import matplotlib.pyplot as plt
import convexnn as cx

# %% [markdown]
# ## Gated below ReLU, for the same patterns

# %%
X, y = cx.load_dataset("diabetes", n_features=2)
X, y = X[:40], y[:40]
rows = []
for m in (10, 30, 100, 300):
    P = cx.sample_patterns(X, m, seed=0, bias=True)
    g = cx.c_grelu(X, y, P, 0.5).solve().value
    r = cx.c_relu(X, y, P, 0.5).solve().value
    rows.append((len(P), g, r))
    print(f"P = {len(P):3d}   gated {g:.5f}   ReLU {r:.5f}")
    assert g <= r + 1e-6 * r
rows = np.array(rows)
fig, ax = plt.subplots(figsize=(5, 3.5))
ax.plot(rows[:, 0], rows[:, 1], "o-", label="C-GReLU (gated)")
ax.plot(rows[:, 0], rows[:, 2], "s-", label="C-ReLU")
ax.set_xscale("log"); ax.set_xlabel("patterns P"); ax.set_ylabel("optimal value"); ax.legend();

# %% [markdown]
# ## Theorem 3.7, numerically
# Full row rank needs $n \le d'$: wide data (here $n = 6$ points in $\mathbb R^{8}$, with bias).
# For random instances and several $\lambda$, the objective increase of the decomposition against
# the bound.

# %%
changes, bounds = [], []
for seed in (0, 2, 3, 4, 5, 6):
    rng = np.random.default_rng(seed)
    Xw = rng.standard_normal((6, 8))
    yw = rng.standard_normal(6)
    Pw = cx.sample_patterns(Xw, 40, seed=seed, bias=True)
    for lam in (0.05, 0.2, 0.5):
        dec = cx.cone_decomposition(cx.c_grelu(Xw, yw, Pw, lam).solve(), Xw)
        assert dec.bound_applies and dec.max_prediction_error < 1e-6
        changes.append(dec.objective_change)
        bounds.append(dec.bound)
changes, bounds = np.array(changes), np.array(bounds)
fig, ax = plt.subplots(figsize=(4.5, 4))
ax.loglog(bounds, np.maximum(changes, 1e-12), "o")
lim = [bounds.min() / 2, bounds.max() * 2]
ax.plot(lim, lim, "k--", label="change = bound")
ax.set_xlabel("Theorem 3.7 bound $2\\lambda\\kappa(X_a)\\sum\\|u_i\\|$"); ax.set_ylabel("objective change"); ax.legend();
print("largest ratio change / bound:", (changes / bounds).max())
assert np.all(changes <= bounds * (1 + 1e-6))

# %% [markdown]
# The bound holds with a wide margin: the decomposition usually costs far less than the worst
# case. With more points than dimensions ($n > d'$) the theorem does not apply, but a
# decomposition often still exists (or the solver reports that a block has none).

# %%
dec = cx.cone_decomposition(cx.c_grelu(X, y, cx.sample_patterns(X, 30, seed=0, bias=True), 0.5).solve(), X)
print(f"n = {len(X)} > d' = 3: bound applies? {dec.bound_applies};  objective change {dec.objective_change:.4g}")
