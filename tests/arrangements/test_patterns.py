"""The Patterns container: dedup, canonical order, bit packing, provenance checks."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import convexnn as cx
from convexnn import InputError, Patterns


def _brute_masks(X, G):
    """Independent computation: one pattern per gate, as a Python set of tuples."""
    return {tuple(int(X[j] @ G[:, i] >= 0) for j in range(X.shape[0])) for i in range(G.shape[1])}


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 20), d=st.integers(1, 4), P=st.integers(1, 60), seed=st.integers(0, 2**31 - 1))
def test_from_gates_dedups_and_matches_brute_force(n, d, P, seed):
    rng = np.random.default_rng(seed)
    X = rng.integers(-2, 3, size=(n, d)).astype(float)  # integer grid: many ties and duplicates
    G = rng.integers(-2, 3, size=(d, P)).astype(float)
    pats = Patterns.from_gates(X, G)
    got = {tuple(int(b) for b in col) for col in pats.masks.T}
    assert got == _brute_masks(X, G)
    assert len(pats) == len(got)
    # every witness gate reproduces its mask
    np.testing.assert_array_equal(X @ pats.gates >= 0, pats.masks)
    # canonical order: independent of the order of the gates
    perm = rng.permutation(P)
    assert Patterns.from_gates(X, G[:, perm]) == pats
    np.testing.assert_array_equal(Patterns.from_gates(X, G[:, perm]).masks, pats.masks)


def test_packed_storage_roundtrip_and_size():
    rng = np.random.default_rng(0)
    masks = rng.random((200, 5000)) < 0.5
    pats = Patterns(masks, rng.standard_normal((3, 5000)))
    assert len(pats) == 5000  # random 200-bit columns are distinct
    assert pats.packed.nbytes == 5000 * 25  # 200 bits -> 25 bytes per pattern
    assert {m.tobytes() for m in pats} == {m.tobytes() for m in masks.T}
    assert pats.contains(masks[:, :7]).all()
    assert not pats.contains(~masks[:, 0]).any() or (~masks[:, 0]).tobytes() in {m.tobytes() for m in masks.T}


def test_immutability():
    pats = Patterns.from_gates(np.eye(3), np.eye(3))
    with pytest.raises(ValueError):
        pats.masks[0, 0] = False
    with pytest.raises(ValueError):
        pats.gates[0, 0] = 1.0


def test_n3_d2_example_by_gates():
    # Pilanci (2021 talk): X = [[2,2],[3,3],[1,0]] has exactly 4 patterns; dense sampling finds all of them.
    X = np.array([[2.0, 2.0], [3.0, 3.0], [1.0, 0.0]])
    G = np.random.default_rng(1).standard_normal((2, 2000))
    pats = Patterns.from_gates(X, G)
    expected = {(0, 0, 0), (1, 1, 1), (1, 1, 0), (0, 0, 1)}
    assert {tuple(int(b) for b in c) for c in pats.masks.T} == expected


def test_check_rejects_other_data_and_wrong_bias():
    rng = np.random.default_rng(2)
    X = rng.standard_normal((10, 2))
    pats = Patterns.from_gates(X, rng.standard_normal((2, 50)))
    assert pats.check(X).shape == (10, 2)
    with pytest.raises(InputError, match="another data matrix"):
        pats.check(X + 1.0)
    with pytest.raises(InputError, match="rows"):
        pats.check(X[:5])
    with pytest.raises(InputError, match="bias"):
        pats.check(rng.standard_normal((10, 3)))
    # without a fingerprint the witness gates are the check
    bare = Patterns(pats.masks, pats.gates)
    bare.check(X)
    with pytest.raises(InputError, match="another data matrix"):
        bare.check(-X)


def test_check_accepts_either_mask_where_a_gate_lies_on_a_hyperplane():
    # the gate (0, 1) lies on the hyperplane of the first point (x^T g = 0: no decidable sign, e.g.
    # a cone projection on a facet of its chamber): both mask values pass; a flipped mask on a row
    # with a clear margin is another data matrix
    X = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 2.0]])
    g = np.array([[0.0], [1.0]])
    for first in (True, False):
        Patterns(np.array([[first], [True], [True]]), g).check(X)
    with pytest.raises(InputError, match="witness gates"):
        Patterns(np.array([[True], [False], [True]]), g).check(X)


def test_bias_gates_act_on_augmented_matrix():
    X = np.array([[0.0], [1.0], [2.0]])
    G = np.array([[1.0, 1.0, -1.0], [-0.5, -1.5, 0.5]])  # thresholds at 0.5, 1.5 and x <= 0.5
    pats = Patterns.from_gates(X, G, bias=True)
    got = {tuple(int(b) for b in c) for c in pats.masks.T}
    assert got == {(0, 1, 1), (0, 0, 1), (1, 0, 0)}
    assert pats.n_features == 2 and pats.bias


def test_union_subset_and_empty_removal():
    X = np.array([[1.0, 0.0], [0.0, 1.0]])
    a = Patterns.from_gates(X, np.array([[1.0], [1.0]]))
    b = Patterns.from_gates(X, np.array([[-1.0, 1.0], [-1.0, -1.0]]))
    u = a.union(b)
    assert len(u) == 3
    assert len(u.without_empty()) == 2
    assert len(u[[0, 2]]) == 2
    with pytest.raises(InputError):
        a.union(Patterns.from_gates(np.ones((3, 2)), np.ones((2, 1))))


def test_bad_constructor_input():
    with pytest.raises(InputError):
        Patterns(np.ones(3, bool), np.ones((2, 3)))
    with pytest.raises(InputError):
        Patterns(np.ones((3, 2), bool), np.ones((2, 3)))
    with pytest.raises(InputError):
        Patterns(np.full((3, 1), 2), np.ones((2, 1)))


def test_patterns_are_immutable():
    X = np.array([[2.0, 2.0], [3.0, 3.0], [1.0, 0.0]])
    P = cx.enumerate_patterns(X)
    for name, value in (("exact", False), ("bias", True), ("kind", "x"), ("fingerprint", None), ("reason", "x")):
        with pytest.raises(AttributeError):
            setattr(P, name, value)
    with pytest.raises(ValueError):
        P.masks[0, 0] = not P.masks[0, 0]
    assert P.exact and P.without_empty().exact
