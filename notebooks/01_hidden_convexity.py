# %% [markdown]
# # 1. The hidden convexity: hyperplane arrangements
#
# A two-layer ReLU network $f(x) = \sum_j (x_a^\top w_j)_+ \alpha_j$ with weight decay has an
# exact convex reformulation (Pilanci & Ergen, *Neural Networks are Convex Regularizers*,
# ICML 2020). The key object is the set of **activation patterns** of the data,
#
# $$D_i = \operatorname{diag}\bigl(\mathbf 1[X_a g_i \ge 0]\bigr),$$
#
# one per chamber of the hyperplane arrangement $\{g : x_j^\top g = 0\}$ in *gate space*.
# This notebook draws arrangements, counts their chambers against Cover's bound, and compares
# exact enumeration with random sampling.

# %%
import numpy as np
import matplotlib.pyplot as plt
import convexnn as cx
from convexnn import plot as cplot

# %% [markdown]
# ## The n = 3, d = 2 example
# Pilanci's 2021 talk uses three points $x_1 = (2, 2)$, $x_2 = (3, 3)$, $x_3 = (1, 0)$. $x_1$ and
# $x_2$ are parallel, so they define the same line: there are 2 distinct lines and 4 chambers
# (Cover's bound for 3 points in general position in $\mathbb R^2$ would be 6).

# %%
X3 = np.array([[2.0, 2.0], [3.0, 3.0], [1.0, 0.0]])
P3 = cx.enumerate_patterns(X3)
print(len(P3), "patterns:", [cplot.pattern_label(m) for m in P3.masks.T])
print("Cover bound:", cx.cover_bound(3, 2))
cplot.plot_arrangement(X3);

# %% [markdown]
# ## One feature with bias: lines through the origin of $(w, b)$
# A neuron $(x w + b)_+$ on 1-D data is determined (up to scale) by a direction in the
# $(w, b)$ plane. Each data point $x_j$ gives the line $x_j w + b = 0$; the $2n$ sectors are the
# $2n$ ways a single ReLU can switch the points on and off.

# %%
rng = np.random.default_rng(0)
X1 = np.sort(rng.uniform(-1, 1, (5, 1)), axis=0)
cplot.plot_arrangement(X1, bias=True);
print(cx.count_patterns(X1, bias=True), "chambers = 2n =", 2 * len(X1))

# %% [markdown]
# ## Two features with bias: a central arrangement in $\mathbb R^3$
# Gate space is $(w_1, w_2, b)$. We draw it in the two affine charts $b = +1$ and $b = -1$
# (each chamber labelled once, in the chart where it is widest).

# %%
X2 = rng.standard_normal((6, 2))
axes = cplot.plot_arrangement(X2, bias=True)
plt.tight_layout()
print("chambers:", cx.count_patterns(X2, bias=True), " Cover bound:", cx.cover_bound(6, 3))

# %% [markdown]
# ## Counts against Cover's bound
# For $n$ points in general position in $\mathbb R^{r}$ (rank $r$ of $X_a$) the number of chambers is
# exactly Cover's (1965) bound $2\sum_{k<r}\binom{n-1}{k} = O(n^{r-1})$ — polynomial in $n$ for
# fixed dimension. Points on a grid are *not* in general position: many lines meet in common
# points and the count drops (Zaslavsky 1975 counts it exactly through the characteristic
# polynomial).

# %%
ns = np.arange(3, 41, 3)
gauss = [cx.count_patterns(rng.standard_normal((n, 2)), bias=True) for n in ns]
grid_pts = np.array([(i, j) for i in range(7) for j in range(7)], float)
grid = [cx.count_patterns(grid_pts[rng.permutation(49)[:n]], bias=True) for n in ns]
cover = [cx.cover_bound(int(n), 3) for n in ns]
fig, ax = plt.subplots(figsize=(5, 3.5))
ax.plot(ns, cover, "k--", label="Cover bound")
ax.plot(ns, gauss, "o", label="Gaussian points")
ax.plot(ns, grid, "s", label="points of a 7x7 grid")
ax.set_xlabel("n"); ax.set_ylabel("number of patterns P"); ax.legend();

# %% [markdown]
# ## Exact vs sampled patterns
# In practice one often samples gates $g \sim \mathcal N(0, I)$ instead of enumerating. Random
# gates find the large chambers quickly, the thin ones slowly: the program with sampled
# patterns is a *restriction* whose value is an upper bound on the true optimum.

# %%
X, y = cx.load_dataset("diabetes", n_features=2)
X, y = X[:15], y[:15]
exact = cx.enumerate_patterns(X, bias=True)
budgets = [5, 10, 20, 50, 100, 200, 500, 2000]
found = [len(cx.sample_patterns(X, m, seed=1, bias=True)) for m in budgets]
lam = 0.5
p_exact = cx.c_relu(X, y, exact, lam).solve().value
p_sampled = [cx.c_relu(X, y, cx.sample_patterns(X, m, seed=1, bias=True), lam).solve().value for m in budgets]
fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.5))
a1.semilogx(budgets, found, "o-", label="distinct sampled patterns")
a1.axhline(len(exact), color="k", ls="--", label=f"all {len(exact)} chambers")
a1.set_xlabel("number of random gates"); a1.set_ylabel("patterns"); a1.legend()
a2.semilogx(budgets, p_sampled, "o-", label="C-ReLU with sampled patterns")
a2.axhline(p_exact, color="k", ls="--", label="exact optimum")
a2.set_xlabel("number of random gates"); a2.set_ylabel("optimal value"); a2.legend()
plt.tight_layout()
assert all(p >= p_exact - 1e-6 * p_exact for p in p_sampled)   # restrictions: upper bounds
