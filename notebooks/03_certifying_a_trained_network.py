# %% [markdown]
# # 3. Certifying a trained network
#
# Weak duality gives, for any dual point $v$ with $\max_{\|u\|\le1}|\langle v, (X_au)_+\rangle| \le \lambda$,
# a lower bound $-\ell^*(-v)$ on the objective of **every** two-layer network of **any** width.
# `convexnn.certify` builds such a $v$ from the network's own residual, checks the constraint
# over all chambers of the arrangement, and reports
#
# * `primal`: the network's objective, `lower_bound`: the certified bound, `gap = primal - lower_bound`;
# * `exact=True` when the patterns are the complete set of chambers (then the bound is a proof);
# * an **improving neuron** when the dual constraint is violated: adding it lowers the objective.
#
# (Pilanci & Ergen, ICML 2020; Mishkin & Pilanci, *Optimal Sets and Solution Paths of ReLU
# Networks*, ICML 2023; Ergen & Pilanci, ICML 2021, Remark 3.)

# %%
import numpy as np
import matplotlib.pyplot as plt
import torch
import convexnn as cx
from convexnn import plot as cplot

torch.set_default_dtype(torch.float64)
torch.set_num_threads(1)

X, y = cx.load_dataset("diabetes", n_features=2)
X, y = X[:30], y[:30]
lam = 0.5
patterns = cx.enumerate_patterns(X, bias=True)          # all chambers: certificates are proofs
p_star = cx.c_relu(X, y, patterns, lam).solve().value
print(len(patterns), "chambers;  convex optimum", p_star)

# %% [markdown]
# ## Train with Adam, certify a checkpoint every 100 steps

# %%
torch.manual_seed(1)
width = 8
model = torch.nn.Sequential(torch.nn.Linear(2, width), torch.nn.ReLU(), torch.nn.Linear(width, 1, bias=False))
opt = torch.optim.Adam(model.parameters(), lr=3e-3)
Xt, yt = torch.tensor(X), torch.tensor(y)
steps, every = 1500, 100
objective, checkpoints = [], []
for step in range(steps + 1):
    if step % every == 0:
        net = cx.TwoLayerReLU.from_torch(model)
        cert = cx.certify(net, X, y, lam, patterns=patterns, refine=1)
        checkpoints.append((step, cert.primal, cert.lower_bound, cert.rel_gap))
    out = model(Xt)[:, 0]
    reg = sum((p ** 2).sum() for p in model.parameters())   # weights and first-layer bias
    obj = 0.5 * ((out - yt) ** 2).sum() + lam / 2 * reg
    opt.zero_grad(); obj.backward(); opt.step()
    objective.append(obj.item())
ck = np.array(checkpoints)

# %%
fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 3.8))
a1.plot(objective, lw=1, label="Adam objective")
a1.plot(ck[:, 0], ck[:, 1], "o", label="certified primal")
a1.plot(ck[:, 0], ck[:, 2], "s-", label="certified lower bound")
a1.axhline(p_star, color="k", ls="--", lw=1, label="convex optimum")
a1.set_ylim(p_star - 1, p_star + 6); a1.set_xlabel("step"); a1.set_ylabel("objective"); a1.legend(fontsize=8)
cplot.plot_trace({"relative gap": (ck[:, 0], ck[:, 3])}, x="step", y="rel_gap", ax=a2)
a2.set_xlabel("step")
plt.tight_layout()
assert np.all(ck[:, 2] <= p_star + 1e-6 * p_star)          # every lower bound is valid

# %% [markdown]
# The lower bounds never exceed the optimum (they are proofs), and they *move*: at an early
# checkpoint the residual of the network gives a weak bound, near a stationary point a tight one.

# %% [markdown]
# ## The improving neuron
# At a checkpoint with a gap, the most violated dual constraint is a direction $u$ in which a new
# neuron $(\sqrt t\,u, \sigma\sqrt t)$ decreases the objective at rate
# $\lambda - \sigma\langle v, (X_au)_+\rangle < 0$.

# %%
torch.manual_seed(3)
small = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.ReLU(), torch.nn.Linear(2, 1, bias=False))
net = cx.TwoLayerReLU.from_torch(small)
cert = cx.certify(net, X, y, lam, patterns=patterns)
print(cert)
better = cert.improve()
print("objective before", net.objective(X, y, lam), " after adding the neuron", better.objective(X, y, lam))
assert better.objective(X, y, lam) < net.objective(X, y, lam)

# %% [markdown]
# ## What "exact" means
# With a *sampled* set of patterns the maximum over the samples may miss the worst chamber, so the
# certificate falls back to a pattern-free bound that is valid but looser, and says it is not a
# proof (`exact=False`). With `patterns=None` certify enumerates all chambers itself.

# %%
final = cx.TwoLayerReLU.from_torch(model)
for name, P in [("all chambers", patterns), ("50 sampled gates", cx.sample_patterns(X, 50, seed=0, bias=True))]:
    c = cx.certify(final, X, y, lam, patterns=P)
    print(f"{name:18s} exact={c.exact!s:5s} lower bound {c.lower_bound:10.5f}  rel gap {c.rel_gap:.2e}  ({c.verdict})")
