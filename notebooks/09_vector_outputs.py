# %% [markdown]
# # 9. Vector outputs and the nuclear norm
#
# With $c$ outputs, $y \in \mathbb R^{n\times c}$, each hidden neuron has a vector of output
# weights. Weight decay then becomes a **nuclear norm** on each block
# $V_i \in \mathbb R^{d'\times c}$ (Sahiner, Ergen, Pauly & Pilanci, *Vector-output ReLU Neural
# Network Problems are Copositive Programs*, ICLR 2021; Pilanci's 2021 talk):
#
# $$\min\ \ell\Big(\sum_i D_iX_a(V_i - W_i), Y\Big) + \lambda\sum_i\big(\|V_i\|_* + \|W_i\|_*\big).$$
#
# `vector_reg="group"` instead penalizes every column separately: the program of networks in which
# each neuron feeds a single output. Since $\|V\|_* \le \sum_k\|v_k\|_2$, the nuclear program's
# value is never larger, and its blocks are low rank: neurons shared across outputs.

# %%
import numpy as np
import matplotlib.pyplot as plt
import convexnn as cx

rng = np.random.default_rng(0)
X = rng.standard_normal((12, 2))
W_true = rng.standard_normal((3, 2))
Y = np.maximum(np.c_[X, np.ones(12)] @ W_true, 0) @ rng.standard_normal((2, 3))   # 3 outputs, 2 shared neurons
P = cx.sample_patterns(X, 8, seed=0, bias=True)
lam = 0.1

# %%
rows = {}
for kind in ("c_grelu", "c_relu"):
    build = cx.c_grelu if kind == "c_grelu" else cx.c_relu
    for reg in ("group", "nuclear"):
        sol = build(X, Y, P, lam, vector_reg=reg).solve()
        rows[(kind, reg)] = sol
        print(f"{kind:7s} {reg:8s} value {sol.value:.5f}")
    assert rows[(kind, "nuclear")].value <= rows[(kind, "group")].value * (1 + 1e-6)

# %% [markdown]
# ## Low-rank blocks
# Singular values of the gated blocks $U_i$ (one curve per nonzero block): with the nuclear norm
# most blocks have rank one (a single neuron serving all three outputs).

# %%
fig, axes = plt.subplots(1, 2, figsize=(10, 3.5), sharey=True)
for ax, reg in zip(axes, ("group", "nuclear")):
    U = rows[("c_grelu", reg)].weights["U"]            # (P, d', c)
    norms = np.linalg.norm(U.reshape(len(U), -1), axis=1)
    for Ui in U[norms > 1e-6 * norms.max()]:
        ax.semilogy(np.linalg.svd(Ui, compute_uv=False) + 1e-12, "o-")
    ax.set_title(f'vector_reg="{reg}"'); ax.set_xlabel("singular value index"); ax.set_ylabel("singular value")

# %%
for reg in ("group", "nuclear"):
    net = rows[("c_grelu", reg)].to_network()
    print(f"{reg:8s}: gated network with {net.n_neurons} neurons, max |prediction - fit| "
          f"{np.abs(net.predict(X) - rows[('c_grelu', reg)].fit).max():.1e}")
