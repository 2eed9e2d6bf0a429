"""theta.theory representation similarity: linear CKA and CCA against NumPy formulas."""

import numpy as np
import pytest

import theta.theory as th


def _centred(x):
    return x - x.mean(axis=0)


def _numpy_cka(x, y):
    xc, yc = _centred(x), _centred(y)
    return np.linalg.norm(yc.T @ xc) ** 2 / (np.linalg.norm(xc.T @ xc) * np.linalg.norm(yc.T @ yc))


def test_linear_cka_matches_numpy_and_the_gram_form(rng):
    x, y = rng.normal(size=(30, 5)), rng.normal(size=(30, 8)) + 2.0
    expected = _numpy_cka(x, y)
    assert th.linear_cka(x, y) == pytest.approx(expected, rel=1e-13)
    assert th.gram_cka(x @ x.T, y @ y.T) == pytest.approx(expected, rel=1e-12)
    q, _ = np.linalg.qr(rng.normal(size=(5, 5)))
    assert th.linear_cka(x, 3.0 * x @ q) == pytest.approx(1.0, abs=1e-12)
    matrix = th.linear_cka_matrix([x, y], [y])
    assert matrix.shape == (2, 1)
    assert matrix[0, 0] == pytest.approx(expected, rel=1e-13)
    assert matrix[1, 0] == pytest.approx(1.0, abs=1e-13)


def test_canonical_correlations_match_numpy(rng):
    x = rng.normal(size=(40, 3))
    y = x @ rng.normal(size=(3, 4)) + 2.0 * rng.normal(size=(40, 4))
    qx, _ = np.linalg.qr(_centred(x))
    qy, _ = np.linalg.qr(_centred(y))
    expected = np.linalg.svd(qx.T @ qy, compute_uv=False)
    np.testing.assert_allclose(th.canonical_correlations(x, y), expected, rtol=1e-12)
    assert th.mean_cca(x, y) == pytest.approx(expected.mean(), rel=1e-12)
    np.testing.assert_allclose(th.mean_cca_matrix([x], [y, x]), [[expected.mean(), 1.0]], rtol=1e-12)
    # Wider than the examples: every correlation is 1, related or not.
    wide = th.canonical_correlations(rng.normal(size=(10, 12)), rng.normal(size=(10, 15)), relative_tolerance=1e-12)
    np.testing.assert_allclose(wide, np.ones(9), atol=1e-12)


def test_similarity_rejects_bad_input(rng):
    with pytest.raises(ValueError, match=r"\[10, 3\].*\[9, 3\]"):
        th.linear_cka(rng.normal(size=(10, 3)), rng.normal(size=(9, 3)))
    with pytest.raises(ValueError, match="same for every example"):
        th.mean_cca(np.ones((5, 2)), rng.normal(size=(5, 2)))
