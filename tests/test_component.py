"""The PreferenceObjective block: construction, sampling, activation, clone.

Every solve is a real SCIP solve. Tolerances: feasibility 1e-6 (SCIP's
default feasibility tolerance); objective values relative 1e-6 with an
absolute floor of 1e-6 unless stated otherwise.
"""

import dataclasses
import io
import logging
import pickle

import numpy as np
import pyomo.environ as pyo
import pytest
from pyomo.common.log import LoggingIntercept

from conftest import (
    DECISION_NAMES,
    FAST_FIT,
    FEASIBILITY_TOLERANCE,
    INFEASIBLE_CONTEXT,
    SAMPLE_OPTIONS,
    TINY_FIT,
    active_objective,
    add_component,
    build_tiny_model,
    build_toy_model,
    decision_vector,
    max_violation,
    set_context,
    snapshot,
    solve,
)
from pyomo_prefobj import Candidates, ContextError, PreferenceObjective, ScoreOracle

CONTEXT = (0.3, 0.7)
OTHER_CONTEXT = (0.9, 0.1)


def test_decisions_in_documented_order(toy_model):
    m = toy_model
    pref = add_component(m)
    assert pref.decision_names == DECISION_NAMES
    assert pref.context_names == ("theta[0]", "theta[1]")
    assert (pref.n_decisions, pref.n_context) == (6, 2)
    # The block references the user's variables, it does not copy them.
    assert pref.decision[0] is m.x[0]
    assert pref.decision[5] is m.n
    assert not pref.is_fitted


def test_var_data_and_names_are_accepted(toy_model):
    m = toy_model
    m.pref = PreferenceObjective(
        decisions=[m.x[2], "y", m.n], context=[m.theta[1]], progress=False
    )
    assert m.pref.decision_names == ("x[2]", "y[0]", "y[1]", "n")
    assert m.pref.context_names == ("theta[1]",)


def test_pprint_shows_the_block(toy_model, capsys):
    m = toy_model
    add_component(m)
    m.pprint()
    out = capsys.readouterr().out
    assert "pref : Size=1, Index=None, Active=True" in out
    assert "decision : Size=6" in out
    assert "context_param : Size=2" in out


def test_pprint_shows_learned_objective(fitted_model):
    m = fitted_model
    m.pref.activate(CONTEXT)
    stream = io.StringIO()
    m.pprint(ostream=stream)
    text = stream.getvalue()
    assert "learned : Size=1, Index=None, Active=True" in text
    assert "objective : Size=1, Index=None, Active=True" in text
    assert "cost : Size=1, Index=None, Active=False" in text


def test_sample_gives_feasible_distinct_candidates(toy_model, train_contexts):
    m = toy_model
    pref = add_component(m)
    cands = pref.sample(train_contexts[:3], per_context=8, seed=1, **SAMPLE_OPTIONS)
    assert isinstance(cands, Candidates)
    assert cands.u.shape == (len(cands), 6)
    assert cands.context.shape == (len(cands), 2)
    assert cands.names == DECISION_NAMES
    # Several distinct candidates in every context, none repeated.
    for members in cands.groups():
        assert len(members) >= 3
        rows = {tuple(np.round(cands.u[i], 6)) for i in members}
        assert len(rows) == len(members)
    probe = m.clone()
    for cand in cands:
        assert cand.u.shape == (6,) and cand.context.shape == (2,)
        assert cand.values == dict(zip(DECISION_NAMES, cand.u.tolist()))
        np.testing.assert_allclose(cand.context, train_contexts[cand.group])
        # Integer and binary decisions take integer values.
        np.testing.assert_array_equal(cand.u[3:], np.round(cand.u[3:]))
        # Feasible in the user's model, and the recorded nominal cost is J(u).
        set_context(probe, cand.context)
        for name, value in cand.values.items():
            probe.find_component(name).set_value(value, skip_validation=True)
        assert max_violation(probe) <= FEASIBILITY_TOLERANCE
        assert cand.nominal_cost == pytest.approx(pyo.value(probe.cost), rel=1e-6, abs=1e-6)


def test_first_candidate_of_each_context_is_the_nominal_optimum(toy_model, latent_user, train_contexts):
    m = toy_model
    pref = add_component(m)
    cands = pref.sample(train_contexts[:2], per_context=4, seed=0, **SAMPLE_OPTIONS)
    for members, theta in zip(cands.groups(), train_contexts[:2]):
        best = min(cands.nominal_cost[members])
        probe = m.clone()
        set_context(probe, theta)
        solve(probe, "scip_direct")
        assert best == pytest.approx(pyo.value(probe.cost), rel=1e-6, abs=1e-6)


def test_sample_leaves_model_as_it_was(toy_model, train_contexts):
    m = toy_model
    m.x[0].set_value(1.25)
    pref = add_component(m)
    before = snapshot(m)
    pref.sample(train_contexts[:2], per_context=3, seed=0, **SAMPLE_OPTIONS)
    assert snapshot(m) == before
    assert active_objective(m) is m.cost


def test_sample_same_seed_same_candidates(toy_model, train_contexts):
    pref = add_component(toy_model)
    first = pref.sample(train_contexts[:2], per_context=6, seed=3, **SAMPLE_OPTIONS)
    second = pref.sample(train_contexts[:2], per_context=6, seed=3, **SAMPLE_OPTIONS)
    other = pref.sample(train_contexts[:2], per_context=6, seed=4, **SAMPLE_OPTIONS)
    np.testing.assert_array_equal(first.u, second.u)
    np.testing.assert_array_equal(first.group, second.group)
    np.testing.assert_array_equal(first.nominal_cost, second.nominal_cost)
    assert first.u.shape != other.u.shape or not np.array_equal(first.u, other.u)


def test_infeasible_context_is_skipped_with_a_warning(toy_model):
    pref = add_component(toy_model)
    contexts = np.array([CONTEXT, INFEASIBLE_CONTEXT, OTHER_CONTEXT])
    with pytest.warns(UserWarning, match="infeasible"):
        cands = pref.sample(contexts, per_context=3, seed=0, **SAMPLE_OPTIONS)
    assert set(np.unique(cands.group)) == {0, 2}
    assert not np.any(np.all(cands.context == INFEASIBLE_CONTEXT, axis=1))


def test_maximize_nominal_is_sampled_as_maximum(toy_model):
    m = toy_model
    m.cost.deactivate()
    m.profit = pyo.Objective(expr=m.x[0] + 2 * m.x[1] - m.n, sense=pyo.maximize)
    pref = add_component(m)
    cands = pref.sample([CONTEXT], per_context=5, seed=0, **SAMPLE_OPTIONS)
    probe = m.clone()
    set_context(probe, CONTEXT)
    solve(probe, "scip_direct")
    assert cands.nominal_cost.max() == pytest.approx(pyo.value(probe.profit), rel=1e-6)
    assert cands.nominal_cost.max() == pytest.approx(12.0, rel=1e-6)  # x0 = x1 = 4, n = 0


def test_activate_and_deactivate(fitted_model):
    m = fitted_model
    set_context(m, (0.1, 0.2))
    m.pref.activate(CONTEXT)
    assert not m.cost.active
    assert active_objective(m) is m.pref.learned.objective
    assert m.pref.context_values().tolist() == list(CONTEXT)
    # Re-activating changes the context only.
    m.pref.activate(OTHER_CONTEXT)
    assert active_objective(m) is m.pref.learned.objective
    assert m.pref.context_values().tolist() == list(OTHER_CONTEXT)
    m.pref.deactivate()
    assert active_objective(m) is m.cost
    # The context Params are back at their values before the first activate.
    assert [pyo.value(m.theta[k]) for k in range(2)] == [0.1, 0.2]
    assert not m.pref.learned.active


@pytest.mark.parametrize("how", ["del_component", "replace"])
def test_removing_an_active_component_restores_the_nominal_objective(fitted_model, how):
    """Deleting ``m.pref`` or assigning a new one over it (a notebook cell
    run again) while the learned objective is active brings the nominal
    objective and the context values back, with a warning."""
    m = fitted_model
    set_context(m, (0.1, 0.2))
    m.pref.activate(CONTEXT)
    with pytest.warns(UserWarning, match="nominal objective 'cost' and the context values are restored") as caught:
        if how == "del_component":
            m.del_component(m.pref)
        else:
            add_component(m)
    # It points at the user's line (conftest's add_component assigns m.pref).
    assert caught[0].filename.endswith(("test_component.py", "conftest.py"))
    assert active_objective(m) is m.cost
    assert [pyo.value(m.theta[k]) for k in range(2)] == [0.1, 0.2]
    solve(m)
    if how == "replace":
        assert not m.pref.is_fitted


def test_a_clone_of_the_active_block_alone_leaves_the_model_as_it_was(fitted_model, recwarn):
    """``m.pref.clone()`` detaches the copy, not the original: no restore."""
    m = fitted_model
    m.pref.activate(CONTEXT)
    m.pref.clone()
    assert active_objective(m) is m.pref.learned.objective
    assert not m.cost.active
    assert not [w for w in recwarn if "restored" in str(w.message)]


def test_removing_the_block_after_its_nominal_objective_raises_nothing(fitted_model, recwarn):
    """With the nominal objective deleted first there is nothing to restore."""
    m = fitted_model
    m.pref.activate(CONTEXT)
    m.del_component(m.cost)
    m.del_component(m.pref)
    assert m.component("pref") is None
    assert not [w for w in recwarn if "restored" in str(w.message)]


@pytest.mark.parametrize("span_penalty", [None, 0.03])
def test_an_activated_model_pickles_and_solves_the_same(fitted_model, span_penalty):
    m = fitted_model
    m.pref.activate(CONTEXT, span_penalty=span_penalty)
    copy = pickle.loads(pickle.dumps(m))
    assert active_objective(copy) is copy.pref.learned.objective
    solve(m)
    solve(copy)
    np.testing.assert_allclose(decision_vector(copy), decision_vector(m), atol=1e-6)
    copy.pref.deactivate()
    assert active_objective(copy) is copy.cost


def test_removing_an_inactive_component_warns_nothing(fitted_model, recwarn):
    m = fitted_model
    m.pref.activate(CONTEXT)
    m.pref.deactivate()
    m.del_component(m.pref)
    assert active_objective(m) is m.cost
    assert not [w for w in recwarn if "restored" in str(w.message)]


def test_reactivation_keeps_the_fits_rows_for_a_persistent_solver(fitted_model):
    """A new context replaces only the rows and objective that depend on it:
    the coordinate and span rows stay the same Pyomo objects, so a
    persistent solver only updates those, and it solves the new context as a
    fresh solve does."""
    from pyomo.contrib.solver.common.factory import SolverFactory as ContribSolverFactory
    from pyomo.contrib.solver.common.results import TerminationCondition

    m = fitted_model
    m.pref.activate(CONTEXT, span_penalty=0.5, trust_region=0.0)
    kept = (m.pref.learned.z_definition, m.pref.learned.span_residual)
    persistent = ContribSolverFactory("scip_persistent")
    persistent.solve(m)
    m.pref.activate(OTHER_CONTEXT, span_penalty=0.5)
    assert m.pref.learned.z_definition is kept[0]
    assert m.pref.learned.span_residual is kept[1]
    # The trust region of the first activation is gone.
    assert all(z.bounds == (None, None) for z in m.pref.learned.z.values())
    results = persistent.solve(m)
    assert results.termination_condition == TerminationCondition.convergenceCriteriaSatisfied
    reused = pyo.value(active_objective(m))
    solve(m, "scip_direct")
    assert reused == pytest.approx(pyo.value(active_objective(m)), rel=1e-6, abs=1e-6)
    # Without the penalty its rows go.
    m.pref.activate(CONTEXT)
    assert m.pref.learned.component("span_residual") is None
    assert m.pref.learned.z_definition is kept[0]


def test_activate_without_context_keeps_current_params(fitted_model):
    m = fitted_model
    set_context(m, OTHER_CONTEXT)
    m.pref.activate()
    assert m.pref.context_values().tolist() == list(OTHER_CONTEXT)
    solve(m, "scip_direct")
    cost = m.pref.cost(OTHER_CONTEXT)
    assert pyo.value(m.pref.learned.objective) == pytest.approx(
        cost.value(m.pref.decision_values()), rel=1e-6, abs=1e-6
    )


@pytest.mark.parametrize("formulation", ["compact", "dense"])
def test_activated_objective_value_equals_cost(fitted_model, formulation):
    m = fitted_model
    m.pref.activate(CONTEXT, formulation=formulation)
    solve(m)  # SolverFactory('scip'): the user's route, through the .nl file
    u = m.pref.decision_values()
    np.testing.assert_array_equal(u, decision_vector(m))
    assert max_violation(m) <= FEASIBILITY_TOLERANCE
    objective = pyo.value(active_objective(m))
    assert objective == pytest.approx(m.pref.cost(CONTEXT).value(u), rel=1e-6, abs=1e-6)


@pytest.mark.parametrize("context", [CONTEXT, OTHER_CONTEXT, (0.0, 1.0)])
def test_dense_and_compact_formulations_agree(fitted_model, context):
    m = fitted_model
    values = {}
    for formulation in ("dense", "compact"):
        m.pref.activate(context, formulation=formulation)
        solve(m, "scip_direct")
        values[formulation] = pyo.value(active_objective(m))
        # Both are the same function: the solution is optimal for the other one too.
        values[formulation + " cost"] = m.pref.cost(context).value(m.pref.decision_values())
        m.pref.deactivate()
    # 1e-5: two formulations, each solved to SCIP's default tolerances.
    assert values["dense"] == pytest.approx(values["compact"], rel=1e-5, abs=1e-5)
    assert values["dense cost"] == pytest.approx(values["compact cost"], rel=1e-5, abs=1e-5)


def test_learned_solution_is_the_minimum_over_candidates(fitted_model, toy_candidates):
    """SCIP's optimum of the learned cost is no worse than any sampled candidate."""
    m = fitted_model
    context = toy_candidates.context[0]
    m.pref.activate(context)
    solve(m, "scip_direct")
    cost = m.pref.cost(context)
    best = cost.value(m.pref.decision_values())
    members = toy_candidates.groups()[0]
    assert best <= cost.value(toy_candidates.u[members]).min() + 1e-6


def test_clone_remaps_references_and_solves_independently(fitted_model):
    m = fitted_model
    original = snapshot(m)
    m2 = m.clone()
    assert m2.pref.decision[0] is m2.x[0]
    assert m2.pref.decision[0] is not m.x[0]
    assert m2.pref.context_param[0] is m2.theta[0]
    assert m2.pref.is_fitted
    m2.pref.activate(CONTEXT)
    solve(m2, "scip_direct")
    assert active_objective(m2) is m2.pref.learned.objective
    # The original model is untouched: nominal active, no values written.
    assert snapshot(m) == original
    assert active_objective(m) is m.cost
    m2.pref.deactivate()
    assert active_objective(m2) is m2.cost


def test_clone_of_activated_model_deactivates_its_own_nominal(fitted_model):
    m = fitted_model
    m.pref.activate(CONTEXT)
    m2 = m.clone()
    assert active_objective(m2) is m2.pref.learned.objective
    m2.pref.deactivate()
    assert active_objective(m2) is m2.cost
    # The original is still on its learned objective.
    assert active_objective(m) is m.pref.learned.objective
    assert not m.cost.active
    m.pref.deactivate()
    assert active_objective(m) is m.cost


@pytest.mark.parametrize("between", ["activate", "deactivate", "refit"])
def test_clone_after_a_solve_and_a_new_activation(fitted_model, toy_pairs, between):
    # A classic solve keeps its solution and symbol map in m.solutions; the
    # rows activate replaced must leave them, or m.clone() cannot copy them.
    m = fitted_model
    m.pref.activate(CONTEXT)
    solve(m)
    if between == "deactivate":
        m.pref.deactivate()
    elif between == "refit":
        m.pref.fit(toy_pairs, seed=1, **FAST_FIT)
    m.pref.activate([0.6, 0.2])
    # The stored entries of the user's own variables stay.
    entries = m.solutions.solutions[0]._entry["variable"]
    assert all(id(x) in entries for x in m.x.values())
    m2 = m.clone()
    solve(m2)
    solve(m)
    assert pyo.value(m2.pref.learned.objective) == pytest.approx(
        pyo.value(m.pref.learned.objective), rel=1e-6, abs=1e-6
    )


def test_fit_while_active_updates_the_objective(fitted_model, toy_pairs):
    m = fitted_model
    m.pref.activate(CONTEXT)
    m.pref.fit(toy_pairs, seed=1, **FAST_FIT)
    assert active_objective(m) is m.pref.learned.objective
    solve(m, "scip_direct")
    u = m.pref.decision_values()
    assert pyo.value(m.pref.learned.objective) == pytest.approx(
        m.pref.cost(CONTEXT).value(u), rel=1e-6, abs=1e-6
    )


def test_sample_while_learned_is_active_uses_the_nominal(fitted_model, train_contexts):
    m = fitted_model
    m.pref.activate(CONTEXT)
    before = snapshot(m)
    cands = m.pref.sample(train_contexts[:1], per_context=2, seed=0, **SAMPLE_OPTIONS)
    assert snapshot(m) == before
    assert active_objective(m) is m.pref.learned.objective
    probe = m.clone()
    probe.pref.deactivate()
    set_context(probe, train_contexts[0])
    solve(probe, "scip_direct")
    assert cands.nominal_cost.min() == pytest.approx(pyo.value(probe.cost), rel=1e-6, abs=1e-6)


def test_model_without_context(plain_model, plain_pairs, plain_candidates):
    m = plain_model
    pref = add_component(m, context=False)
    assert pref.n_context == 0
    assert plain_candidates.context.shape == (len(plain_candidates), 0)
    assert len(plain_candidates) >= 10
    report = pref.fit(plain_pairs, seed=0, **FAST_FIT)
    assert report.train_accuracy > 0.8
    pref.activate()
    solve(m, "scip_direct")
    u = pref.decision_values()
    assert pyo.value(active_objective(m)) == pytest.approx(pref.cost().value(u), rel=1e-6, abs=1e-6)
    assert pref.cost(()).hessian.shape == (6, 6)
    pref.deactivate()
    assert active_objective(m) is m.cost


def test_one_context_param_takes_a_flat_list_of_contexts(toy_model):
    m = toy_model
    m.pref = PreferenceObjective(decisions=[m.x, m.n], context=[m.theta[0]], progress=False)
    cands = m.pref.sample([0.2, 0.8], per_context=2, seed=0, **SAMPLE_OPTIONS)
    assert cands.context.shape == (len(cands), 1)
    assert set(cands.context[:, 0]) == {0.2, 0.8}



@pytest.mark.parametrize("formulation", ["compact", "dense"])
def test_trust_region_keeps_solution_in_fitted_range(fitted_model, formulation):
    m = fitted_model
    learner = m.pref.learner
    m.pref.activate(CONTEXT, formulation=formulation, trust_region=0.0)
    solve(m, "scip_direct")
    z = learner.projection_ @ (m.pref.decision_values() - learner.mean_)
    low, high = learner.z_range_
    # 1e-6: SCIP's feasibility tolerance on the z definitions and bounds.
    assert np.all(z >= low - 1e-6) and np.all(z <= high + 1e-6)
    bounded = pyo.value(active_objective(m))
    # Again at the solution: its start values stay within the box (no
    # Pyomo warning of a value outside a variable's bounds).
    with LoggingIntercept(level=logging.WARNING) as log:
        m.pref.activate(CONTEXT, formulation=formulation, trust_region=0.0)
    assert "outside the bounds" not in log.getvalue()
    m.pref.activate(CONTEXT, formulation=formulation)
    solve(m, "scip_direct")
    # The box only removes decisions: the free optimum is never worse.
    assert pyo.value(active_objective(m)) <= bounded + 1e-6


def test_tie_break_adds_the_scaled_nominal_cost(fitted_model):
    m = fitted_model
    nominal = m.cost
    m.pref.activate(CONTEXT, tie_break=0.5)
    solve(m)
    u = m.pref.decision_values()
    learned = m.pref.cost(CONTEXT).value(u)
    total = pyo.value(active_objective(m))
    extra = total - learned
    assert extra != pytest.approx(0.0, abs=1e-9)
    # extra = 0.5 * J(u) / |J(mu)|: its ratio to J(u) is the same at any u.
    assert extra / pyo.value(nominal.expr) == pytest.approx(
        0.5 / abs(_nominal_at(m, m.pref.learner.mean_)), rel=1e-6
    )
    m.pref.deactivate()
    assert nominal.active


def _nominal_at(m, u):
    variables = [m.pref.decision[i] for i in range(m.pref.n_decisions)]
    saved = [v.value for v in variables]
    for var, value in zip(variables, u):
        var.set_value(float(value), skip_validation=True)
    result = pyo.value(m.cost.expr)
    for var, value in zip(variables, saved):
        var.set_value(value, skip_validation=True)
    return result


def _off_span(learner, u):
    """l1 norm of the part of ``u - mu`` off the fitted PCA span."""
    centered = u - learner.mean_
    std = 1.0 / np.linalg.norm(learner.projection_, axis=1)
    back = learner.projection_.T * std ** 2
    return float(np.abs(centered - back @ (learner.projection_ @ centered)).sum())


@pytest.mark.parametrize("formulation", ["compact", "dense"])
def test_span_penalty_adds_the_documented_l1_term(fitted_model, formulation):
    m = fitted_model
    learner = m.pref.learner
    m.pref.activate(CONTEXT, formulation=formulation, span_penalty=0.5)
    solve(m)
    u = m.pref.decision_values()
    extra = pyo.value(active_objective(m)) - m.pref.cost(CONTEXT).value(u)
    factor, _ = learner.compressed(np.array([CONTEXT]))
    kappa = np.sum(factor ** 2) / learner.n_components_
    std_last = 1.0 / np.linalg.norm(learner.projection_[-1])
    # 1e-5: the residual rows hold to SCIP's feasibility tolerance (1e-6) per term.
    assert extra == pytest.approx(0.5 * kappa * _off_span(learner, u) / std_last, rel=1e-5, abs=1e-5)
    m.pref.deactivate()
    assert active_objective(m) is m.cost


def test_span_penalty_pulls_the_solution_towards_the_fitted_span(toy_pairs):
    m = build_toy_model()
    add_component(m)
    # Two of the six directions: the learned cost is flat off that plane.
    m.pref.fit(toy_pairs, n_components=2, seed=0, **FAST_FIT)
    learner = m.pref.learner
    distances = []
    for weight in (None, 1e3):
        m.pref.activate(CONTEXT, span_penalty=weight)
        solve(m)
        distances.append(_off_span(learner, m.pref.decision_values()))
    assert distances[0] > 0.1
    assert distances[1] < 0.5 * distances[0]
    # A refit re-activates with the same penalty.
    m.pref.fit(toy_pairs, n_components=2, seed=1, **FAST_FIT)
    solve(m)
    assert _off_span(m.pref.learner, m.pref.decision_values()) < 0.5 * distances[0]


@pytest.mark.parametrize("option", ["trust_region", "tie_break", "span_penalty"])
@pytest.mark.parametrize("bad", [-1.0, float("nan"), True])
def test_bad_activation_option_leaves_model_unchanged(fitted_model, option, bad):
    from pyomo_prefobj import ModelError

    m = fitted_model
    before = snapshot(m)
    with pytest.raises(ModelError, match=option):
        m.pref.activate(CONTEXT, **{option: bad})
    assert snapshot(m) == before


@pytest.mark.parametrize("span_penalty", [None, 0.5])
def test_scip_options_keep_the_optimum(fitted_model, span_penalty):
    import pyscipopt

    from pyomo_prefobj import SCIP_OPTIONS

    probe = pyscipopt.Model()
    for name, value in SCIP_OPTIONS.items():
        assert probe.getParam(name) != value  # a real parameter, changed
    m = fitted_model
    m.pref.activate(CONTEXT, span_penalty=span_penalty)
    values = []
    for options in ({}, SCIP_OPTIONS):
        results = pyo.SolverFactory("scip").solve(m, options=dict(options))
        assert results.solver.termination_condition == pyo.TerminationCondition.optimal
        values.append(pyo.value(active_objective(m)))
    assert values[1] == pytest.approx(values[0], rel=1e-6, abs=1e-6)


@pytest.fixture(scope="module")
def cost_weighing_model(toy_pairs):
    m = build_toy_model()
    add_component(m)
    m.pref.fit(toy_pairs, seed=0, nominal_weight=True, **FAST_FIT)
    return m


def test_nominal_weight_adds_the_learned_share_of_the_nominal_cost(cost_weighing_model):
    m = cost_weighing_model
    weight = m.pref.learner.nominal_weights(np.array([CONTEXT]))[0]
    assert weight > 0
    m.pref.activate(CONTEXT)
    try:
        solve(m)
        u = m.pref.decision_values()
        extra = pyo.value(active_objective(m)) - m.pref.cost(CONTEXT).value(u)
        assert extra == pytest.approx(weight * pyo.value(m.cost.expr), rel=1e-6)
    finally:
        m.pref.deactivate()


def test_nominal_weight_prices_a_maximized_objective_negated(toy_pairs):
    m = build_toy_model()
    m.cost.deactivate()
    m.profit = pyo.Objective(expr=-m.cost.expr, sense=pyo.maximize)
    add_component(m)
    flipped = dataclasses.replace(
        toy_pairs, preferred_cost=-toy_pairs.preferred_cost, other_cost=-toy_pairs.other_cost
    )
    m.pref.fit(flipped, seed=0, nominal_weight=True, **FAST_FIT)
    weight = m.pref.learner.nominal_weights(np.array([CONTEXT]))[0]
    m.pref.activate(CONTEXT)
    solve(m)
    u = m.pref.decision_values()
    extra = pyo.value(active_objective(m)) - m.pref.cost(CONTEXT).value(u)
    # A higher profit is a lower cost: the share enters as -weight * profit.
    assert weight > 0
    assert extra == pytest.approx(-weight * pyo.value(m.profit.expr), rel=1e-6)


def test_a_context_far_from_the_fitted_ones_warns(fitted_model, recwarn):
    m = fitted_model
    m.pref.activate(CONTEXT)  # within the fitted contexts (uniform in [0, 1])
    assert not [w for w in recwarn if "extrapolated" in str(w.message)]
    with pytest.warns(UserWarning, match=r"context value 5.0 of 'theta\[0\]' lies [\d.]+ standard "
                                         "deviations .* the learned cost is extrapolated there") as caught:
        m.pref.activate((5.0, 0.5))
    assert caught[0].filename.endswith("test_component.py")
    assert active_objective(m) is m.pref.learned.objective


def test_a_number_is_the_context_of_a_single_context_param():
    m = build_tiny_model()
    m.x0 = pyo.Param(mutable=True, initialize=0.0)
    m.demand.set_value(sum(m.x.values()) >= 3 + m.x0)
    m.pref = PreferenceObjective(decisions=[m.x], context=[m.x0], progress=False)
    candidates = m.pref.sample([0.0, 1.0], per_context=8, seed=0, **SAMPLE_OPTIONS)
    pairs = m.pref.ask(candidates, 20, ScoreOracle(lambda c: float(c.u[2])), seed=0)
    m.pref.fit(pairs, seed=0, **TINY_FIT)
    np.testing.assert_array_equal(m.pref.cost(0.5).hessian, m.pref.cost([0.5]).hessian)
    m.pref.activate(0.5)
    assert pyo.value(m.x0) == 0.5 and m.pref.learned.active
    with pytest.raises(ContextError, match=r"a context must hold numbers \(one per context Param, in the order \[.x0.\]\); got True"):
        m.pref.activate(True)
    assert pyo.value(m.x0) == 0.5
