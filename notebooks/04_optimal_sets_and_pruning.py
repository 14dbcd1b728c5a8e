# %% [markdown]
# # 4. Optimal sets and pruning
#
# The C-ReLU program is convex but not strictly convex: it can have many solutions. Mishkin &
# Pilanci (*Optimal Sets and Solution Paths of ReLU Networks*, ICML 2023) show that all of them
# are described by the KKT conditions: every optimal block is $\theta_i = \alpha_i q_i$ with the
# **block correlations** $q_i$ fixed by the (unique) optimal fit, so the optimal set is the
# polytope
#
# $$\{\alpha \ge 0 : \textstyle\sum_i \sigma_i D_iX_aq_i\alpha_i = \hat y\}.$$
#
# Every point is an optimal network; its vertices are **minimal models** with at most $n$
# neurons, found by the pruning algorithm.

# %%
import numpy as np
import matplotlib.pyplot as plt
import convexnn as cx
from convexnn import plot as cplot

# points on a grid with labels in {-1, 0, 1}: degenerate data, several optimal networks
rng = np.random.default_rng(1)
X = np.sort(rng.choice(np.linspace(-1, 1, 9), 6, replace=False))[:, None]
y = rng.choice([-1.0, 0.0, 1.0], 6)
lam = 0.01
sol = cx.c_relu(X, y, cx.enumerate_patterns(X, bias=True), lam).solve()
S = cx.optimal_set(sol)
print(S)
print("unique (up to symmetries)?", S.is_unique(), "  vertices found:", len(S.vertices))

# %% [markdown]
# ## Several optimal networks
# Points sampled from the polytope: the same fit on the 6 training points and the same objective,
# possibly different functions between the points.

# %%
ax = cplot.plot_optimal_set(S, X, k=5, y=y)
values = [S.network(a).objective(X, y, lam) for a in S.sample_alphas(5, seed=0)]
print("objectives of the sampled networks:", np.round(values, 10), " p* =", round(sol.value, 10))
assert np.allclose(values, sol.value, rtol=1e-6)

# %% [markdown]
# ## A minimal model
# The interior-point solution spreads weight over many blocks; the minimal model uses as few
# neurons as an optimal network can (a vertex of the polytope: linearly independent neuron outputs).

# %%
net = sol.to_network()
minimal = cx.prune(net, X)
print(f"solver's network: {net.n_neurons} neurons, objective {net.objective(X, y, lam):.8f}")
print(f"minimal model:    {minimal.n_neurons} neurons, objective {minimal.objective(X, y, lam):.8f}")
assert minimal.n_neurons <= len(X)

# %% [markdown]
# ## Pruning below the minimal width
# Going further changes the function. `prune_to` removes one neuron at a time and corrects the
# remaining output weights by least squares; compare with plain magnitude pruning.

# %%
widths = list(range(minimal.n_neurons, 0, -1))
curves = {}
for name, kw in [("least-squares rule + correction", dict(rule="ls")),
                 ("magnitude rule + correction", dict(rule="magnitude")),
                 ("magnitude, no correction", dict(rule="magnitude", correct=False))]:
    curves[name] = [cx.prune_to(net, X, width=w, **kw).objective(X, y, lam) for w in widths]
fig, ax = plt.subplots(figsize=(5.5, 3.5))
for name, vals in curves.items():
    ax.plot(widths, vals, "o-", label=name)
ax.axhline(sol.value, color="k", ls="--", label="optimum")
ax.set_xlabel("width"); ax.set_ylabel("objective"); ax.set_yscale("log"); ax.invert_xaxis(); ax.legend(fontsize=8);
