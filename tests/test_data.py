"""Input validation: every bad input gets a clear InputError, never a wrong answer."""

import numpy as np
import pytest

from convexnn import InputError
from convexnn.data import add_bias, check_lam, check_X, check_Xy, load_dataset, standardize


@pytest.mark.parametrize(
    "X, match",
    [
        (np.array([[1.0, np.nan]]), "NaN or infinite"),
        (np.array([[1.0, np.inf]]), "NaN or infinite"),
        (np.arange(3.0), "2-D"),
        (np.zeros((0, 3)), "empty"),
        (np.zeros((3, 0)), "empty"),
        (np.array([["a", "b"]]), "numeric"),
        (np.array([[1 + 1j, 0]]), "real"),
        (None, "None"),
    ],
)
def test_bad_X_is_refused(X, match):
    with pytest.raises(InputError, match=match):
        check_X(X)


def test_input_error_is_a_value_error():
    with pytest.raises(ValueError):
        check_X(np.arange(3.0))


def test_y_shape_and_labels():
    X = np.ones((4, 2))
    with pytest.raises(InputError, match="rows"):
        check_Xy(X, np.ones(3))
    with pytest.raises(InputError, match=r"\{-1, \+1\}"):
        check_Xy(X, np.array([0, 1, 0, 1.0]), loss="logistic")
    _, y = check_Xy(X, np.array([-1, 1, 1, -1]), loss="hinge")
    assert y.dtype == np.float64
    _, y2 = check_Xy(X, np.ones((4, 1)))
    assert y2.shape == (4,)


@pytest.mark.parametrize("lam", [0.0, -1.0, np.nan, np.inf, "a", None])
def test_bad_lam(lam):
    with pytest.raises(InputError):
        check_lam(lam)


def test_lam_zero_allowed_when_asked():
    assert check_lam(0.0, allow_zero=True) == 0.0


def test_add_bias_and_standardize():
    X = np.arange(6.0).reshape(3, 2)
    Xb = add_bias(X)
    np.testing.assert_array_equal(Xb[:, -1], 1.0)
    Z = standardize(np.c_[X, np.ones(3)])
    np.testing.assert_allclose(Z[:, :2].mean(0), 0.0, atol=1e-12)
    np.testing.assert_allclose(Z[:, :2].std(0), 1.0)
    np.testing.assert_array_equal(Z[:, 2], 0.0)  # constant column: centered, not divided by 0


def test_load_dataset():
    X, y = load_dataset("diabetes", n_features=3)
    assert X.shape == (442, 3) and abs(y.mean()) < 1e-12
    X, y = load_dataset("iris")
    assert set(np.unique(y)) == {-1.0, 1.0}
    with pytest.raises(InputError, match="unknown dataset"):
        load_dataset("mnist")
