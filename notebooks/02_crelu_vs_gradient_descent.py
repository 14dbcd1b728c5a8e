# %% [markdown]
# # 2. The convex program vs gradient descent
#
# Training a two-layer ReLU network with weight decay,
#
# $$\min_{W_1, w_2}\ \tfrac12\|(X_aW_1)_+w_2 - y\|^2 + \tfrac\lambda2\big(\|W_1\|_F^2 + \|w_2\|^2\big),$$
#
# is non-convex, yet its optimal value equals that of the convex **C-ReLU** program over the
# activation patterns (Pilanci & Ergen, ICML 2020). Here we run Adam and SGD from several random
# initializations and compare their objective curves with the convex optimum, which is a lower
# bound for *every* network of *any* width.

# %%
import numpy as np
import matplotlib.pyplot as plt
import torch
import convexnn as cx
from convexnn import plot as cplot

torch.set_default_dtype(torch.float64)
torch.set_num_threads(1)   # tiny networks: one thread is fastest
device = "cpu"   # the runs are tiny; the notebook needs no GPU

# %% [markdown]
# ## 1-D data: the exact optimum

# %%
rng = np.random.default_rng(0)
X = np.sort(rng.uniform(-2, 2, (12, 1)), axis=0)
y = np.sin(2 * X[:, 0]) + 0.1 * rng.standard_normal(12)
lam = 0.05
f = cx.c_relu(X, y, cx.enumerate_patterns(X, bias=True), lam)
sol = f.solve()
net_convex = sol.to_network()
print(f"convex optimum p* = {sol.value:.6f} with {net_convex.n_neurons} neurons")

# %% [markdown]
# ## Gradient descent on the non-convex objective
# Same objective, same conventions (summed squared loss, bias regularized with the weights).

# %%
def train(X, y, lam, width, opt="adam", lr=1e-2, steps=1500, seed=0):
    torch.manual_seed(seed)
    Xa = torch.tensor(np.c_[X, np.ones(len(X))], device=device)
    yt = torch.tensor(y, device=device)
    W1 = (torch.randn(Xa.shape[1], width, device=device) / np.sqrt(Xa.shape[1])).requires_grad_()
    w2 = (torch.randn(width, device=device) / np.sqrt(width)).requires_grad_()
    optimizer = torch.optim.Adam([W1, w2], lr=lr) if opt == "adam" else torch.optim.SGD([W1, w2], lr=lr, momentum=0.9)
    trace = []
    for _ in range(steps):
        obj = 0.5 * ((torch.relu(Xa @ W1) @ w2 - yt) ** 2).sum() + lam / 2 * ((W1 ** 2).sum() + (w2 ** 2).sum())
        optimizer.zero_grad(); obj.backward(); optimizer.step()
        trace.append(obj.item())
    return cx.TwoLayerReLU(W1.detach().cpu().numpy(), w2.detach().cpu().numpy(), bias=True), np.array(trace)

runs = {}
nets = {}
for seed in range(3):
    nets[f"Adam {seed}"], runs[f"Adam {seed}"] = train(X, y, lam, width=20, opt="adam", seed=seed)
    nets[f"SGD {seed}"], runs[f"SGD {seed}"] = train(X, y, lam, width=20, opt="sgd", lr=2e-3, seed=seed)

ax = cplot.plot_trace({k: {"iter": np.arange(len(v)), "objective": v} for k, v in runs.items()},
                      x="iter", y="objective", optimum=sol.value)
ax.set_ylim(sol.value * 0.9, max(v[50] for v in runs.values()));

# %% [markdown]
# Every curve stays above the dashed line: the convex value is a global lower bound. Runs that
# come close to it found (nearly) optimal networks; the others are stuck at worse points.

# %%
for k, net in nets.items():
    print(f"{k:8s} objective {net.objective(X, y, lam):.6f}   excess {net.objective(X, y, lam) - sol.value:.2e}")
    assert net.objective(X, y, lam) >= sol.value - 1e-8

# %%
ax = cplot.plot_network_function(net_convex, X, y, label="convex optimum", color="k", lw=2)
best = min(nets, key=lambda k: nets[k].objective(X, y, lam))
worst = max(nets, key=lambda k: nets[k].objective(X, y, lam))
cplot.plot_network_function(nets[best], X, ax=ax, label=f"best run ({best})", ls="--")
cplot.plot_network_function(nets[worst], X, ax=ax, label=f"worst run ({worst})", ls=":")
ax.legend();

# %% [markdown]
# ## 2-D data
# Two standardized features of the diabetes data set (scikit-learn), 25 points. The exact
# pattern set has a few hundred chambers; the program is still small.

# %%
X2, y2 = cx.load_dataset("diabetes", n_features=2)
X2, y2 = X2[:25], y2[:25]
lam2 = 0.5
sol2 = cx.c_relu(X2, y2, cx.enumerate_patterns(X2, bias=True), lam2).solve()
adam2, tr2 = train(X2, y2, lam2, width=30, opt="adam", steps=1500, seed=0)
print(f"convex {sol2.value:.5f}   Adam {adam2.objective(X2, y2, lam2):.5f}")
fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4))
cplot.plot_network_function(sol2, X2, y2, ax=a1, label="C-ReLU optimum", resolution=80)
cplot.plot_network_function(adam2, X2, y2, ax=a2, label="Adam", resolution=80)
plt.tight_layout()
