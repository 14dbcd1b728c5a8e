# %% [markdown]
# # 8. First-order solvers at scale
#
# Interior-point solvers (CVXPY + Clarabel) solve the convex programs to high accuracy, but their
# cost grows quickly with $n \cdot P \cdot d'$. `convexnn.solve(..., method="first_order")` runs
# R-FISTA on C-GReLU (group lasso; Mishkin, Sahiner & Pilanci, ICML 2022) and an active-set method
# with a global certificate on C-ReLU. Every iterate comes with a **certified** duality gap: the
# dual point $\nabla f(\hat y)$ is scaled into the dual feasible set, so
# $P(u) - D(\theta) \ge P(u) - P^\star$.

# %%
import time
import numpy as np
import matplotlib.pyplot as plt
import convexnn as cx
from convexnn import plot as cplot

X, y = cx.load_dataset("diabetes")            # n = 442, d = 10 (standardized)
patterns = cx.sample_patterns(X, 100, seed=0, bias=True)
lam = 0.05 * cx.solvers.lam_max(np.c_[X, np.ones(len(X))], patterns.masks, y)
f = cx.c_grelu(X, y, patterns, lam)

# %% [markdown]
# ## Gap vs time: R-FISTA against Clarabel

# %%
t0 = time.perf_counter()
fo = cx.solve(f, method="first_order", tol=1e-8, polish=False)
t_fo = time.perf_counter() - t0
t0 = time.perf_counter()
ip = cx.solve(f, method="interior")
t_ip = time.perf_counter() - t0
print(f"R-FISTA : {t_fo:.2f} s, certified relative gap {fo.info['gap']:.1e}, value {fo.value:.8f}")
print(f"Clarabel: {t_ip:.2f} s (compile {ip.compile_time:.2f} s), value {ip.value:.8f}")
ax = cplot.plot_trace({"R-FISTA (numpy)": fo.info["history"]}, x="time", y="rel_gap")
ax.axvline(t_ip, color="k", ls="--", label="Clarabel finished")
ax.legend();
assert abs(fo.value - ip.value) <= 1e-5 * abs(ip.value)

# %% [markdown]
# The Newton polish (default, `polish=True`) finishes once R-FISTA has found the support:

# %%
t0 = time.perf_counter()
pol = cx.solve(f, method="first_order", tol=1e-8)
print(f"R-FISTA + Newton polish: {time.perf_counter() - t0:.2f} s, gap {pol.info['gap']:.1e}, "
      f"{pol.info['polish']['newton_iterations']} Newton iterations on {pol.info['polish']['working_set']} groups")

# %% [markdown]
# ## C-ReLU: active set with a global certificate

# %%
fr = cx.c_relu(X[:200], y[:200], cx.sample_patterns(X[:200], 40, seed=0, bias=True), lam)
t0 = time.perf_counter()
ar = cx.solve(fr, method="first_order", tol=1e-8)
print(f"active set: {time.perf_counter() - t0:.2f} s, solver {ar.solver}, certified gap {ar.info['gap']:.1e}, "
      f"cone violation {ar.info['violation']:.1e}")

# %% [markdown]
# ## On a GPU
# The same code runs on torch tensors: `device="cuda"` (and `dtype="float32"` for speed). The cell
# skips itself on a machine without CUDA.

# %%
try:
    import torch
    has_cuda = torch.cuda.is_available()
except ImportError:
    has_cuda = False
if has_cuda:
    t0 = time.perf_counter()
    gpu = cx.solve(f, method="first_order", tol=1e-6, device="cuda", dtype="float32")
    print(f"GPU: {time.perf_counter() - t0:.2f} s, gap {gpu.info['gap']:.1e}")
else:
    print("no CUDA device: skipping the GPU run")
