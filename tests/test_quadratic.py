"""QuadraticCost and its exact reconstruction from PCA coordinates.

Property tests (hypothesis) over random factors ``S``, linear terms ``qz``,
projections ``P`` and means ``mu``:

* ``Hu = P' S S' P`` is symmetric positive semidefinite (smallest eigenvalue
  >= -1e-9 times the largest magnitude, float64 round-off);
* for any ``u``, ``1/2 u'Hu u + qu'u + c`` equals the PCA-space cost
  ``1/2 ||S'z||^2 + qz'z`` at ``z = P (u - mu)``, to 1e-9 relative (of the
  sum of the absolute values of the terms, which is what round-off scales with).
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyomo_prefobj import QuadraticCost


@st.composite
def compressed_costs(draw):
    """Random ``(S, qz, P, mu, u)`` with r <= d, entries of mixed scales."""
    d = draw(st.integers(1, 12))
    r = draw(st.integers(1, d))
    seed = draw(st.integers(0, 2**32 - 1))
    scale = draw(st.sampled_from([1e-3, 1.0, 1e3]))
    rng = np.random.default_rng(seed)
    factor = scale * rng.normal(size=(r, r))
    if draw(st.booleans()):
        factor[:, 0] = 0.0  # a rank-deficient factor
    linear = rng.normal(size=r)
    projection = rng.normal(size=(r, d))
    mean = rng.normal(scale=draw(st.sampled_from([0.0, 1.0, 100.0])), size=d)
    u = rng.normal(scale=10.0, size=(4, d))
    return factor, linear, projection, mean, u


@settings(max_examples=200, deadline=None)
@given(compressed_costs())
def test_hessian_is_symmetric_psd(data):
    factor, linear, projection, mean, _ = data
    cost = QuadraticCost.from_compressed(factor, linear, projection, mean)
    hessian = cost.hessian
    d = len(mean)
    assert hessian.shape == (d, d) and cost.linear.shape == (d,)
    np.testing.assert_array_equal(hessian, hessian.T)
    eigenvalues = np.linalg.eigvalsh(hessian)
    assert eigenvalues.min() >= -1e-9 * max(np.abs(eigenvalues).max(), 1e-300)
    assert np.linalg.matrix_rank(hessian, tol=1e-8 * max(np.abs(hessian).max(), 1e-300)) <= len(linear)


@settings(max_examples=200, deadline=None)
@given(compressed_costs())
def test_decision_space_cost_equals_pca_space_cost(data):
    factor, linear, projection, mean, u = data
    cost = QuadraticCost.from_compressed(factor, linear, projection, mean)
    z = (u - mean) @ projection.T
    reduced = z @ factor
    quadratic, linear_part = 0.5 * (reduced ** 2).sum(axis=1), z @ linear
    expected = quadratic + linear_part
    # Round-off of the expanded form scales with its largest terms.
    u_terms = (
        np.abs(0.5 * np.einsum("ni,ij,nj->n", u, cost.hessian, u))
        + np.abs(u @ cost.linear)
        + abs(cost.constant)
    )
    magnitude = np.maximum(np.abs(quadratic) + np.abs(linear_part), u_terms)
    np.testing.assert_array_less(np.abs(cost.value(u) - expected), 1e-9 * magnitude + 1e-300)


def test_reconstruction_at_the_mean_is_zero():
    """At ``u = mu`` we have ``z = 0``, so the cost is exactly its constant part: 0."""
    rng = np.random.default_rng(0)
    factor, linear = rng.normal(size=(3, 3)), rng.normal(size=3)
    projection, mean = rng.normal(size=(3, 5)), rng.normal(size=5)
    cost = QuadraticCost.from_compressed(factor, linear, projection, mean)
    assert cost.value(mean) == pytest.approx(0.0, abs=1e-12)


def test_value_of_one_and_of_many_decisions():
    cost = QuadraticCost(np.array([[2.0, 0.0], [0.0, 4.0]]), np.array([1.0, -1.0]), 3.0)
    assert cost.value([1.0, 2.0]) == pytest.approx(0.5 * (2 + 16) + 1 - 2 + 3)
    values = cost.value(np.array([[0.0, 0.0], [1.0, 2.0]]))
    assert values.shape == (2,)
    np.testing.assert_allclose(values, [3.0, 11.0])
    assert cost.H is cost.hessian and cost.q is cost.linear


def test_formulas_of_the_spec():
    """``Hu = W Hz W'``, ``qu = W qz - Hu mu``, ``c = 1/2 mu'Hu mu - qz'W'mu`` with ``W = P'``."""
    rng = np.random.default_rng(1)
    factor, linear = rng.normal(size=(2, 2)), rng.normal(size=2)
    projection, mean = rng.normal(size=(2, 4)), rng.normal(size=4)
    cost = QuadraticCost.from_compressed(factor, linear, projection, mean)
    W = projection.T
    Hz = factor @ factor.T
    Hu = W @ Hz @ W.T
    np.testing.assert_allclose(cost.hessian, Hu, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(cost.linear, W @ linear - Hu @ mean, rtol=1e-12, atol=1e-12)
    assert cost.constant == pytest.approx(0.5 * mean @ Hu @ mean - linear @ W.T @ mean, rel=1e-12)
