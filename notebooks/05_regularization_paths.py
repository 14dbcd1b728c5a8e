# %% [markdown]
# # 5. Regularization paths
#
# `lam` is a `cvxpy.Parameter` in every program, so a path over $\lambda$ compiles the problem
# **once** and re-solves it: `f.lam.value = new; f.solve()`. Along the path we record the optimal
# value, the number of active neurons (nonzero blocks of the group lasso) and the train / test
# error of the mapped network. Mishkin & Pilanci (ICML 2023) show that such paths can be
# discontinuous: the set of optimal networks can jump as $\lambda$ moves.

# %%
import time
import numpy as np
import matplotlib.pyplot as plt
import convexnn as cx
from convexnn import plot as cplot

X, y = cx.load_dataset("diabetes", n_features=3)
Xtr, ytr, Xte, yte = X[:80], y[:80], X[300:400], y[300:400]
patterns = cx.sample_patterns(Xtr, 100, seed=0, bias=True)
f = cx.c_relu(Xtr, ytr, patterns, lam=1.0)

# %%
lams = np.logspace(1.5, -1.5, 12)
rows = []
for lam in lams:
    f.lam.value = lam
    t0 = time.perf_counter()
    sol = f.solve()
    net = sol.to_network()
    rows.append(dict(lam=lam, value=sol.value, active=net.n_neurons, time=time.perf_counter() - t0,
                     compile=sol.compile_time,
                     train=np.mean((net.predict(Xtr) - ytr) ** 2), test=np.mean((net.predict(Xte) - yte) ** 2)))
for r in rows[:3]:
    print(f"lam {r['lam']:8.3f}  compile {r['compile']:.3f}s  solve+map {r['time']:.3f}s")

# %%
fig = cplot.plot_path([r["lam"] for r in rows], objective=[r["value"] for r in rows],
                      active=[r["active"] for r in rows],
                      train_error=[r["train"] for r in rows], test_error=[r["test"] for r in rows])

# %% [markdown]
# * The optimal value decreases with $\lambda$ (it is a minimum of functions increasing in $\lambda$).
# * Large $\lambda$: few active neurons (above $\lambda_{\max}$, none); small $\lambda$: many, and the
#   training error keeps falling while the test error eventually rises.
# * Only the first solve pays CVXPY's compilation; the others reuse it.

# %%
vals = np.array([r["value"] for r in rows])
assert np.all(np.diff(vals) <= 1e-6 * vals[:-1])          # decreasing as lam decreases
lam_max = cx.solvers.lam_max(f.Xa, patterns.masks, ytr)
print(f"lam_max = {lam_max:.3f}: above it the zero network is optimal (the C-GReLU threshold; the C-ReLU one is at most this)")
print("active neurons at the largest lam:", rows[0]["active"])
