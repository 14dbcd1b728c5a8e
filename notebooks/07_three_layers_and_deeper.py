# %% [markdown]
# # 7. Three layers and deeper
#
# Ergen & Pilanci (*Global Optimality Beyond Two Layers: Training Deep ReLU Networks via Convex
# Programs*, ICML 2021) write the training problem of $K$ parallel three-layer sub-networks
# $f_k(X) = ((X_aW_{1k})_+w_{2k})_+w_{3k}$ (with $\|W_{1k}\|_F \le 1$ and weight decay on the
# last two layers) as a convex program over *pairs* of arrangements: the first-layer chambers and
# the second-layer patterns (their program (12)). Their Figure 4 compares its optimal value with
# SGD trials on a tiny data set, $(n, d, m_1) = (5, 2, 3)$. We repeat it here.

# %%
import numpy as np
import matplotlib.pyplot as plt
import torch
import convexnn as cx

torch.set_num_threads(1)
rng = np.random.default_rng(0)
X = rng.standard_normal((5, 2))
teacher = cx.ThreeLayerReLU(rng.standard_normal((5, 2, 3)), rng.standard_normal((5, 3)),
                            rng.standard_normal(5)).projected()
y = teacher.predict(X)
beta = 0.002

# %% [markdown]
# ## The exact program (12)
# Complete first-layer patterns and the complete second-layer construction: the value is the
# global optimum of the three-layer problem, and `three_layer_gap` certifies it.

# %%
f = cx.three_layer(X, y, cx.enumerate_patterns(X), "complete", beta, m1=3)
sol = f.solve()
net = sol.to_network()                       # Proposition 1: a three-layer network attaining it
print(f"convex optimum {sol.value:.6f}; mapped network objective {net.objective(X, y, beta):.6f}")
cert = cx.three_layer_gap(f)
print(f"certificate: gap {cert.gap:.2e}, exact = {cert.exact}")

# %% [markdown]
# ## SGD and Adam trials on the non-convex problem

# %%
trials = {}
for seed in range(4):
    trials[f"SGD {seed}"] = cx.train_three_layer(X, y, K=5, m1=3, lam=beta, steps=1000, lr=2e-2,
                                                 optimizer="sgd", seed=seed).objective(X, y, beta)
for seed in range(2):
    trials[f"Adam {seed}"] = cx.train_three_layer(X, y, K=5, m1=3, lam=beta, steps=1000, lr=1e-2,
                                                  optimizer="adam", seed=seed).objective(X, y, beta)
fig, ax = plt.subplots(figsize=(6, 3.5))
ax.bar(list(trials), list(trials.values()), color="tab:blue", alpha=0.7, label="trained (final objective)")
ax.axhline(sol.value, color="k", ls="--", label="convex optimum (12)")
ax.set_ylabel("objective"); ax.set_yscale("log"); ax.legend(); plt.xticks(rotation=30);
assert all(v >= sol.value * (1 - 1e-6) for v in trials.values())

# %% [markdown]
# No trial goes below the convex value; the gap between the bars and the line is what the
# local methods leave on the table.
#
# ## Deep networks as tensor programs
# Mishkin's thesis eliminates layers one at a time: the output of an $L$-layer network with the
# path-norm regularizer is a *reduction product* of recursively lifted data with a tensor, and the
# activation-consistency constraints are linear. With complete pattern sets (tiny data only) the
# program's value lower-bounds every network, and its solution maps to a tree network that
# attains it.

# %%
layers = cx.deep_layer_patterns(X, (4, 3), method="complete")
g = cx.deep_relu(X, y, layers, 0.01)
deep_sol = g.solve()
deep_net = deep_sol.to_network()
print(f"deep convex value {deep_sol.value:.6f}; tree network objective {deep_net.objective(X, y, 0.01):.6f}")
gated = cx.deep_grelu(X, y, layers, 0.01).solve()
print(f"deep gated value {gated.value:.6f} (<= the ReLU value, same patterns)")
assert gated.value <= deep_sol.value * (1 + 1e-6)
