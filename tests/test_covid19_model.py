"""Tests of the COVID-19 example: model, simulated user, best composite."""

import math

import numpy as np
import pyomo.environ as pyo
import pytest

from examples.covid19 import best, model, user

RELATIVE_TOLERANCE = 1e-6
FEASIBILITY_TOLERANCE = 1e-6

# The nominal optimum written by hand (patients per county and facility,
# only the nonzero assignments), as SCIP reports it; temporaries 15, 17, 18.
# fmt: off
NOMINAL_ASSIGNMENTS = {
    (1, 1): 281, (1, 15): 57, (1, 18): 13,
    (2, 2): 187, (2, 15): 43,
    (3, 3): 200, (3, 4): 223, (3, 7): 6, (3, 17): 100,
    (4, 5): 281, (4, 18): 58,
    (5, 6): 281, (5, 7): 50, (5, 18): 29,
    (6, 7): 166, (6, 8): 200, (6, 11): 161,
    (7, 9): 250, (7, 10): 125, (7, 13): 94,
    (8, 12): 28, (8, 13): 206,
    (9, 12): 272, (9, 14): 228,
}
# fmt: on
NOMINAL_OPENED = (15, 17, 18)


def decision_from(assignments, opened, instance):
    """Build a decision vector ``(216,)`` from a dict and opened temporaries."""
    x = np.zeros((len(instance.counties), len(instance.facilities)))
    for (county, facility), patients in assignments.items():
        x[instance.counties.index(county), instance.facilities.index(facility)] = (
            patients
        )
    y = np.array([1.0 if t in opened else 0.0 for t in instance.temporary])
    return np.concatenate([x.ravel(), y])


def constraint_violation(u, instance):
    """Largest violation of the model's constraints by decision ``u``."""
    x, y = user.split_decision(u, instance)
    opened = np.ones(len(instance.facilities))
    opened[instance.temporary_positions] = y
    violations = [
        np.abs(x.sum(axis=1) - instance.demand).max(),
        (x.sum(axis=0) - instance.capacity * opened).max(),
        -x.min(),
        np.abs(y - np.round(y)).max(),
    ]
    return max(violations)


@pytest.fixture(scope="module")
def instance():
    return model.load_instance()


@pytest.fixture(scope="module")
def solved_nominal(instance):
    """The nominal model solved with SCIP: (model, results)."""
    m = model.build_model(instance)
    results = pyo.SolverFactory("scip_direct").solve(m)
    return m, results


@pytest.fixture(scope="module")
def nominal_decision(instance):
    """The hand-written nominal optimum as a decision vector."""
    return decision_from(NOMINAL_ASSIGNMENTS, NOMINAL_OPENED, instance)


@pytest.fixture(scope="module")
def simulated_user(instance):
    return user.SimulatedUser(instance)


# ---------------------------------------------------------------- instance


def test_instance_data(instance):
    assert instance.counties == tuple(range(1, 10))
    assert instance.facilities == tuple(range(1, 24))
    assert instance.temporary == tuple(range(15, 24))
    assert instance.existing == tuple(range(1, 15))
    assert instance.demand.sum() == 3539
    assert instance.capacity[:14].sum() == 3280
    assert instance.capacity[14:].sum() == 900
    assert np.all(instance.fixed_cost == 500000)
    # County 1 at (1, 1.5), facility 1 at (1, 2): 5 * 0.5.
    assert instance.assignment_cost[0, 0] == pytest.approx(2.5)
    # County 9 at (4.5, 8), facility 23 at (5.5, 6.5): 5 * sqrt(1 + 2.25).
    assert instance.assignment_cost[8, 22] == pytest.approx(5 * math.sqrt(3.25))
    with pytest.raises(ValueError):
        instance.demand[0] = 1.0


# ------------------------------------------------------------------- model


def test_variable_counts_and_components(instance):
    m = model.build_model(instance)
    x, y = model.decision_vars(m)
    assert x is m.x and y is m.y
    assert len(m.x) == 207 and len(m.y) == 9
    assert sum(len(component) for component in model.decision_vars(m)) == 216
    assert instance.n_decisions == 216
    assert all(v.is_continuous() and v.lb == 0 and v.ub is None for v in m.x.values())
    assert all(v.is_binary() for v in m.y.values())
    assert list(m.y.keys()) == list(range(15, 24))
    assert list(m.x.keys())[:2] == [(1, 1), (1, 2)]  # county-major order
    assert m.x0.mutable and pyo.value(m.x0) == 0.0
    objectives = list(m.component_data_objects(pyo.Objective, active=True))
    assert objectives == [m.cost]
    assert (len(m.demand), len(m.existing_capacity), len(m.temporary_capacity)) == (
        9,
        14,
        9,
    )
    # The context enters no constraint.
    for constraint in m.component_data_objects(pyo.Constraint):
        assert "x0" not in str(constraint.expr)


def test_nominal_optimum(solved_nominal, instance):
    m, results = solved_nominal
    assert results.solver.termination_condition == pyo.TerminationCondition.optimal
    assert pyo.value(m.cost) == pytest.approx(
        model.NOMINAL_OPTIMUM, rel=RELATIVE_TOLERANCE
    )
    opened = tuple(t for t in m.temporary if m.y[t].value > 0.5)
    assert opened == NOMINAL_OPENED
    u = model.decision_vector(m)
    assert u.shape == (216,)
    assert user.nominal_cost(u, instance) == pytest.approx(
        model.NOMINAL_OPTIMUM, rel=RELATIVE_TOLERANCE
    )


def test_hand_written_nominal_decision(nominal_decision, solved_nominal, instance):
    assert constraint_violation(nominal_decision, instance) <= FEASIBILITY_TOLERANCE
    assert user.nominal_cost(nominal_decision, instance) == pytest.approx(
        model.NOMINAL_OPTIMUM, rel=RELATIVE_TOLERANCE
    )
    m, _ = solved_nominal
    np.testing.assert_allclose(
        model.decision_vector(m), nominal_decision, atol=FEASIBILITY_TOLERANCE
    )


# ------------------------------------------------------------------ user


def test_features_of_the_nominal_decision(nominal_decision, instance):
    x, y = user.split_decision(nominal_decision, instance)
    expected = [
        281 / 281,  # facility 1 is full
        0 / 100,  # facility 23 is closed
        (100 + 100 + 100) / 900,  # temporaries 15, 17, 18 are full
        281 / 529,  # largest assignment / largest county demand
        3539 / 3539,  # all demand served
    ]
    np.testing.assert_allclose(user.features(x, y, instance), expected)
    np.testing.assert_allclose(user.features_many(nominal_decision, instance), expected)


def test_features_and_cost_of_a_modified_decision(instance):
    # Send 50 of county 9's patients to facility 23 instead of 14 and open 23:
    # both are at distance sqrt(3.25) from county 9, so only K_23 is added.
    assignments = dict(NOMINAL_ASSIGNMENTS)
    assignments[(9, 14)] = 228 - 50
    assignments[(9, 23)] = 50
    u = decision_from(assignments, NOMINAL_OPENED + (23,), instance)
    assert constraint_violation(u, instance) <= FEASIBILITY_TOLERANCE
    expected = [1.0, 50 / 100, 350 / 900, 281 / 529, 1.0]
    np.testing.assert_allclose(user.features_many(u, instance), expected)
    assert user.nominal_cost(u, instance) == pytest.approx(
        model.NOMINAL_OPTIMUM + 500000, rel=RELATIVE_TOLERANCE
    )


def hand_rosenbrock(f1, f2, f3, f4, f5):
    return (
        100 * (f2 - f1**2) ** 2
        + (1 - f1) ** 2
        + 100 * (f3 - f2**2) ** 2
        + (1 - f2) ** 2
        + 100 * (f4 - f3**2) ** 2
        + (1 - f3) ** 2
        + 100 * (f5 - f4**2) ** 2
        + (1 - f4) ** 2
    )


def test_rosenbrock():
    assert user.rosenbrock(np.ones(5)) == 0.0
    assert user.rosenbrock(np.zeros(5)) == pytest.approx(4.0)
    f = np.array([0.3, -0.2, 0.9, 0.5, 1.1])
    assert user.rosenbrock(f) == pytest.approx(hand_rosenbrock(*f))


@pytest.mark.parametrize("x0", [0.0, 0.5, 1.0])
def test_score_of_the_nominal_decision(nominal_decision, simulated_user, x0):
    shift = 0.1 * x0
    expected_R = hand_rosenbrock(
        1 - shift, 0 - shift, 1 / 3 - shift, 281 / 529 - shift, 1 - shift
    )
    R, J = simulated_user.terms(nominal_decision, x0)
    assert R == pytest.approx(expected_R)
    assert J == pytest.approx(model.NOMINAL_OPTIMUM, rel=RELATIVE_TOLERANCE)
    assert simulated_user.score(nominal_decision, x0) == pytest.approx(
        expected_R + 1.0, rel=RELATIVE_TOLERANCE
    )


def test_context_shift_changes_R(nominal_decision, instance):
    f = user.features_many(nominal_decision, instance)
    np.testing.assert_allclose(user.context_shift(f, 1.0), f - 0.1)
    R = [user.acceptability_cost(nominal_decision, x0, instance) for x0 in (0, 0.5, 1)]
    # Shifting the features 0.1 down lowers R for the nominal decision.
    assert R[0] > R[1] > R[2]
    assert R[0] - R[2] == pytest.approx(
        hand_rosenbrock(1, 0, 1 / 3, 281 / 529, 1)
        - hand_rosenbrock(0.9, -0.1, 1 / 3 - 0.1, 281 / 529 - 0.1, 0.9)
    )


def test_j_weight(nominal_decision, instance):
    heavy = user.SimulatedUser(instance, j_weight=2.0)
    light = user.SimulatedUser(instance)
    difference = heavy.score(nominal_decision, 0.3) - light.score(nominal_decision, 0.3)
    assert difference == pytest.approx(1.0, rel=RELATIVE_TOLERANCE)
    assert user.composite(nominal_decision, 0.3, instance, j_weight=2.0) == (
        pytest.approx(heavy.score(nominal_decision, 0.3))
    )


def test_vectorized_and_scalar_versions_agree(instance, simulated_user):
    generator = np.random.default_rng(0)
    U = generator.uniform(0.0, 300.0, size=(20, instance.n_decisions))
    U[:, instance.n_assignments :] = generator.integers(0, 2, size=(20, 9))
    contexts = np.linspace(0.0, 1.0, 20)

    F = user.features_many(U, instance)
    assert F.shape == (20, 5)
    for u, f in zip(U, F):
        x, y = user.split_decision(u, instance)
        np.testing.assert_allclose(user.features(x, y, instance), f)

    scores = simulated_user.score_many(U, contexts)
    assert scores.shape == (20,)
    np.testing.assert_allclose(
        scores, [simulated_user.score(u, x0) for u, x0 in zip(U, contexts)]
    )
    np.testing.assert_allclose(scores, user.composite(U, contexts, instance))
    # A scalar context broadcasts over all decisions.
    np.testing.assert_allclose(
        simulated_user.score_many(U, 0.4),
        [simulated_user.score(u, 0.4) for u in U],
    )
    R, J = simulated_user.terms(U, contexts)
    np.testing.assert_allclose(R + J / model.NOMINAL_OPTIMUM, scores)


def test_user_rejects_bad_input(nominal_decision, simulated_user):
    with pytest.raises(ValueError, match=r"decisions must have shape \(216,\)"):
        simulated_user.score_many(np.zeros((3, 215)), 0.0)
    with pytest.raises(ValueError, match="context x0 must lie in"):
        simulated_user.score(nominal_decision, 1.5)
    with pytest.raises(ValueError, match="use score_many"):
        simulated_user.score(nominal_decision[None, :], 0.0)


# ------------------------------------------------------------ best composite


def test_feature_bounds(instance):
    ranges = best.feature_bounds(instance)
    assert ranges.shape == (5, 2)
    # Every feasible decision serves all demand.
    assert ranges[4] == pytest.approx([1.0, 1.0], abs=1e-6)
    assert ranges[3, 1] == pytest.approx(300 / 529, abs=1e-6)


def test_best_composite_beats_the_nominal_decision(
    instance, nominal_decision, simulated_user
):
    x0 = 0.5
    result = best.best_composite(
        instance, x0, time_limit=10.0, initial_decision=nominal_decision
    )
    assert result.decision.shape == (216,)
    assert constraint_violation(result.decision, instance) <= FEASIBILITY_TOLERANCE
    assert result.phi == pytest.approx(simulated_user.score(result.decision, x0))
    assert result.phi <= simulated_user.score(nominal_decision, x0)
    assert result.dual_bound <= result.phi + 1e-6
    assert result.gap >= 0.0
    assert result.optimal == (result.status == "optimal")
    assert (result.acceptability, result.nominal_cost) == pytest.approx(
        simulated_user.terms(result.decision, x0)
    )
