"""Bad input: the package's own exception, a message that says what is wrong,
and the user's model exactly as it was (components, active objectives, Param
and variable values)."""

import dataclasses
import math

import numpy as np
import pyomo.environ as pyo
import pytest
import torch

import pyomo_prefobj.solver
from conftest import (
    FAST_FIT,
    INFEASIBLE_CONTEXT,
    SAMPLE_OPTIONS,
    active_objective,
    add_component,
    build_toy_model,
    snapshot,
    toy_decisions,
)
from pyomo_prefobj import (
    ArgumentError,
    Candidates,
    ContextError,
    DecisionError,
    LearningError,
    ModelError,
    NoFeasibleCandidateError,
    NotFittedError,
    OracleError,
    Pairs,
    PairsError,
    PreferenceObjective,
    PreferenceObjectiveData,
    PreferenceObjectiveError,
    ScoreOracle,
    SolverUnavailableError,
)

CONTEXT = (0.3, 0.7)


@pytest.fixture
def unchanged():
    """Call with a model before the failing call; call the result after it."""

    def take(m):
        before = snapshot(m)

        def check():
            assert snapshot(m) == before

        return check

    return take


def assert_no_component(m):
    assert m.component("pref") is None
    assert active_objective(m) is m.cost


# ---------------------------------------------------------------- construction
def test_decisions_of_another_model(toy_model, unchanged):
    other = build_toy_model()
    check = unchanged(toy_model)
    with pytest.raises(DecisionError, match=r"'x\[0\]' belongs to another model"):
        toy_model.pref = PreferenceObjective(decisions=[other.x], context=[toy_model.theta])
    check()
    assert_no_component(toy_model)


@pytest.mark.parametrize("positional", ["one", "several"])
def test_decisions_given_positionally(toy_model, unchanged, positional):
    # Pyomo reads a positional argument as an index set (an indexed block).
    decisions = [toy_model.x] if positional == "one" else [toy_model.x, toy_model.theta]
    check = unchanged(toy_model)
    with pytest.raises(DecisionError, match=r"takes keyword arguments only, e.g. PreferenceObjective\(decisions="):
        toy_model.pref = PreferenceObjective(decisions)
    check()
    assert_no_component(toy_model)


def test_decision_not_on_any_model(toy_model, unchanged):
    check = unchanged(toy_model)
    with pytest.raises(DecisionError, match="is not on any model"):
        toy_model.pref = PreferenceObjective(decisions=[pyo.Var()])
    check()
    assert_no_component(toy_model)


@pytest.mark.parametrize("what", ["param", "constraint", "number", "missing name"])
def test_decisions_that_are_not_vars(toy_model, unchanged, what):
    m = toy_model
    bad = {"param": m.theta, "constraint": m.demand, "number": 3.0, "missing name": "nope"}[what]
    check = unchanged(m)
    message = {
        "param": r"decisions must be Pyomo Var .*; got 'theta' \(IndexedParam\)",
        "constraint": r"decisions must be Pyomo Var .*; got 'demand' \(",
        "number": r"decisions must be Pyomo Var .*; got 3.0 \(float\)",
        "missing name": r"no decisions named 'nope'",
    }[what]
    with pytest.raises(DecisionError, match=message):
        m.pref = PreferenceObjective(decisions=[m.x, bad], context=[m.theta])
    check()
    assert_no_component(m)


@pytest.mark.parametrize("decisions", [[], None, ()])
def test_empty_decisions(toy_model, unchanged, decisions):
    check = unchanged(toy_model)
    with pytest.raises(DecisionError, match="at least one decision variable"):
        toy_model.pref = PreferenceObjective(decisions=decisions, context=[toy_model.theta])
    check()
    assert_no_component(toy_model)


def test_decision_given_twice(toy_model, unchanged):
    m = toy_model
    check = unchanged(m)
    with pytest.raises(DecisionError, match=r"'x\[1\]' is given twice"):
        m.pref = PreferenceObjective(decisions=[m.x, m.x[1]])
    check()
    assert_no_component(m)


@pytest.mark.parametrize("indexed", [False, True])
def test_context_param_not_mutable(toy_model, unchanged, indexed):
    m = toy_model
    # Pyomo's default is not mutable; an indexed one's elements are then plain numbers.
    m.fixed = pyo.Param(range(2), initialize=1.0) if indexed else pyo.Param(initialize=2.0)
    check = unchanged(m)
    with pytest.raises(ContextError, match=r"context Param 'fixed' is not mutable"):
        m.pref = PreferenceObjective(decisions=toy_decisions(m), context=[m.fixed])
    check()
    assert_no_component(m)


def test_failed_replacement_keeps_the_fitted_component(fitted_model, unchanged):
    m = fitted_model
    m.pref.activate([0.3, 0.6])
    check = unchanged(m)
    with pytest.raises(ContextError, match="context must be Pyomo Param"):
        m.pref = PreferenceObjective(decisions=toy_decisions(m), context=[5])
    check()
    assert m.pref.is_fitted


def test_context_that_is_not_a_param(toy_model, unchanged):
    m = toy_model
    check = unchanged(m)
    with pytest.raises(ContextError, match="context must be Pyomo Param"):
        m.pref = PreferenceObjective(decisions=toy_decisions(m), context=[m.x])
    check()
    assert_no_component(m)


def test_unknown_formulation(toy_model, unchanged):
    check = unchanged(toy_model)
    with pytest.raises(ModelError, match="formulation must be one of"):
        add_component(toy_model, formulation="sparse")
    check()
    assert_no_component(toy_model)


# -------------------------------------------------------------------- sampling
def test_no_active_objective_at_sample(toy_model, unchanged):
    m = toy_model
    pref = add_component(m)
    m.cost.deactivate()
    check = unchanged(m)
    with pytest.raises(ModelError, match="has no active objective"):
        pref.sample([CONTEXT], per_context=2, seed=0)
    check()


def test_several_active_objectives_at_sample(toy_model, unchanged):
    m = toy_model
    pref = add_component(m)
    m.second = pyo.Objective(expr=m.n)
    check = unchanged(m)
    with pytest.raises(ModelError, match="2 active objectives"):
        pref.sample([CONTEXT], per_context=2, seed=0)
    check()


def test_no_solver_available(toy_model, unchanged, monkeypatch):
    class Unavailable:
        def __init__(self, *args, **kwargs):
            pass

        def available(self, exception_flag=False):
            return False

        def license_is_valid(self):
            return False

    monkeypatch.setattr(pyomo_prefobj.solver, "SolverFactory", Unavailable)
    pref = add_component(toy_model)
    check = unchanged(toy_model)
    with pytest.raises(SolverUnavailableError, match="SCIP is not available"):
        pref.sample([CONTEXT], per_context=2, seed=0)
    check()
    assert active_objective(toy_model) is toy_model.cost


def test_every_context_infeasible(toy_model, unchanged):
    pref = add_component(toy_model)
    check = unchanged(toy_model)
    with pytest.warns(UserWarning, match="infeasible"):
        with pytest.raises(NoFeasibleCandidateError, match=r"no context gave a feasible solution \(2 tried\)"):
            pref.sample([INFEASIBLE_CONTEXT, (7.0, 0.0)], per_context=3, seed=0, **SAMPLE_OPTIONS)
    check()


@pytest.mark.parametrize(
    "contexts, message",
    [
        (np.zeros((2, 3)), r"2 columns; got shape \(2, 3\)"),
        (np.zeros((0, 2)), r"got shape \(0, 2\)"),
        ([[0.1, math.nan]], "NaN or inf"),
        ([["a", "b"]], r"contexts must hold numbers; got \[\['a', 'b'\]\]"),
        ([{"demand": 1.0}], "contexts must hold numbers"),
    ],
)
def test_bad_contexts_at_sample(toy_model, unchanged, contexts, message):
    pref = add_component(toy_model)
    check = unchanged(toy_model)
    with pytest.raises(ContextError, match=message):
        pref.sample(contexts, per_context=2, seed=0)
    check()


@pytest.mark.parametrize("per_context", [0, -1, 2.5, True])
def test_bad_per_context(toy_model, per_context):
    pref = add_component(toy_model)
    with pytest.raises(ModelError, match="per_context must be a positive integer"):
        pref.sample([CONTEXT], per_context=per_context)


@pytest.mark.parametrize(
    "options, message",
    [
        ({"time_limit": 0}, "time_limit must be a number of seconds > 0 or None; got 0"),
        ({"time_limit": -1.0}, "time_limit must be"),
        ({"time_limit": "60"}, "time_limit must be"),
        ({"bias_weight": "50"}, "bias_weight must be a finite number >= 0; got '50'"),
        ({"seed": "x"}, "seed must be a non-negative integer or None; got 'x'"),
        ({"seed": -3}, "seed must be"),
        ({"seed": 1.5}, "seed must be"),
    ],
)
def test_bad_sample_options(toy_model, unchanged, options, message):
    pref = add_component(toy_model)
    check = unchanged(toy_model)
    with pytest.raises(ModelError, match=message):
        pref.sample([CONTEXT], per_context=2, **options)
    check()


def test_sample_takes_a_numpy_generator_as_seed(toy_model):
    pref = add_component(toy_model)
    by_generator = pref.sample([CONTEXT], per_context=4, seed=np.random.default_rng(3), **SAMPLE_OPTIONS)
    by_integer = pref.sample([CONTEXT], per_context=4, seed=3, **SAMPLE_OPTIONS)
    np.testing.assert_array_equal(by_generator.u, by_integer.u)


# -------------------------------------------------------------- oracles, pairs
@pytest.mark.parametrize("answer", ["maybe", 2, True, 0.5, "AB"])
def test_oracle_answer_not_a_valid_choice(toy_model, toy_candidates, unchanged, answer):
    pref = add_component(toy_model)
    check = unchanged(toy_model)
    with pytest.raises(OracleError, match=r"answered .*; a valid answer is 0 or 'A'"):
        pref.ask(toy_candidates, n_pairs=5, oracle=lambda a, b: answer, seed=0)
    check()


def test_oracle_that_is_not_callable(toy_model, toy_candidates):
    pref = add_component(toy_model)
    with pytest.raises(OracleError, match="must be callable"):
        pref.ask(toy_candidates, n_pairs=5, oracle="A")


@pytest.mark.parametrize("flip", [1.0, -0.1, 2, "x", "0.1", None, True])
def test_score_oracle_bad_flip(flip):
    with pytest.raises(OracleError, match=r"flip must be a number in \[0, 1\)"):
        ScoreOracle(lambda c: 0.0, flip=flip)


def test_score_oracle_score_of_two_arguments():
    def user_cost(u, x0):
        return float(u.sum() + x0.sum())

    with pytest.raises(OracleError, match=r"called with one Candidate .*'user_cost' does not take one"):
        ScoreOracle(user_cost)
    ScoreOracle(lambda c, weight=2.0: 0.0)  # a default for the rest is fine
    ScoreOracle(np.linalg.norm)  # one positional argument and keywords


@pytest.mark.parametrize("n_pairs", [None, 2.7, "10", 0, -3, True])
def test_ask_bad_n_pairs(toy_model, toy_candidates, unchanged, n_pairs):
    pref = add_component(toy_model)
    check = unchanged(toy_model)
    with pytest.raises(PairsError, match=rf"n_pairs must be a positive integer; got {n_pairs!r}"):
        pref.ask(toy_candidates, n_pairs=n_pairs, oracle=lambda a, b: 0)
    check()


@pytest.mark.parametrize("seed", [1.5, -1, "0"])
def test_fit_bad_seed(toy_model, toy_pairs, unchanged, seed):
    pref = add_component(toy_model)
    check = unchanged(toy_model)
    with pytest.raises(LearningError, match=rf"seed must be an integer >= 0; got {seed!r}"):
        pref.fit(toy_pairs, seed=seed, **FAST_FIT)
    check()
    assert not pref.is_fitted


def test_fit_on_too_few_pairs_to_validate_warns(toy_model, toy_pairs):
    pref = add_component(toy_model)
    with pytest.warns(UserWarning, match="fit on 4 pairs: too few to hold out validation pairs"):
        pref.fit(toy_pairs[:4], seed=0, **FAST_FIT)
    assert pref.is_fitted


def test_score_oracle_non_finite_score(toy_candidates):
    oracle = ScoreOracle(lambda c: math.nan)
    with pytest.raises(OracleError, match="score returned nan"):
        oracle(toy_candidates[0], toy_candidates[1])


@pytest.mark.parametrize("score", [None, "low", [1.0, 2.0]])
def test_score_oracle_score_that_is_not_a_number(toy_candidates, score):
    oracle = ScoreOracle(lambda c: score)
    with pytest.raises(OracleError, match="score must return a number"):
        oracle(toy_candidates[0], toy_candidates[1])


def test_cost_value_of_decisions_of_the_wrong_length(fitted_model):
    cost = fitted_model.pref.cost(CONTEXT)
    d = fitted_model.pref.n_decisions
    with pytest.raises(DecisionError, match=rf"shape \({d},\) or \(n, {d}\); got shape \(3,\)"):
        cost.value(np.zeros(3))
    assert np.shape(cost.value(np.zeros((4, d)))) == (4,)


def test_binary_decisions_that_sampling_cannot_move():
    # With bias_width <= 0.5 a binary's target rounds back to its optimum.
    m = pyo.ConcreteModel()
    m.y = pyo.Var(range(4), domain=pyo.Binary)
    m.pick = pyo.Constraint(expr=sum(m.y.values()) >= 2)
    m.cost = pyo.Objective(expr=sum((i + 1) * m.y[i] for i in range(4)))
    m.pref = PreferenceObjective(decisions=[m.y], progress=False)
    with pytest.warns(UserWarning, match="only the nominal decision.*bias_width is above 0.5"):
        lonely = m.pref.sample(per_context=6, bias_weight=50, bias_width=0.5)
    assert len(lonely) == 1
    with pytest.raises(PairsError, match="bias_width is above 0.5"):
        m.pref.ask(lonely, n_pairs=3, oracle=lambda a, b: 0)
    assert len(m.pref.sample(per_context=6, bias_weight=50)) > 1  # the default width moves them


def test_candidates_of_another_component(toy_model, toy_candidates):
    m = toy_model
    m.pref = PreferenceObjective(decisions=[m.x], context=[m.theta], progress=False)
    with pytest.raises(PairsError, match="decisions of another component"):
        m.pref.ask(toy_candidates, n_pairs=5, oracle=lambda a, b: 0)


@pytest.mark.parametrize("where", ["context", "preferred", "other"])
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_pairs(where, bad):
    arrays = {"context": np.zeros((4, 2)), "preferred": np.zeros((4, 3)), "other": np.ones((4, 3))}
    arrays[where][2, 1] = bad
    with pytest.raises(PairsError, match=rf"Pairs.{where} holds a non-finite value .* at row 2"):
        Pairs(**arrays)


def test_pairs_of_unequal_shapes():
    with pytest.raises(PairsError, match="differ in shape"):
        Pairs(np.zeros((4, 2)), np.zeros((4, 3)), np.zeros((4, 2)))
    with pytest.raises(PairsError, match=r"Pairs.context must have shape \(4, k\)"):
        Pairs(np.zeros((3, 2)), np.zeros((4, 3)), np.zeros((4, 3)))


# -------------------------------------------------------------------- fitting
def test_pairs_of_another_decision_length(toy_model, toy_pairs, unchanged):
    pref = add_component(toy_model)
    short = Pairs(toy_pairs.context, toy_pairs.preferred[:, :5], toy_pairs.other[:, :5])
    check = unchanged(toy_model)
    with pytest.raises(PairsError, match="decisions of length 5; this component has 6 decisions"):
        pref.fit(short, seed=0, **FAST_FIT)
    check()
    assert not pref.is_fitted


def test_pairs_of_another_component_with_as_many_decisions(toy_model, toy_pairs, toy_candidates,
                                                          unchanged):
    pref = add_component(toy_model)
    renamed = Pairs(toy_pairs.context, toy_pairs.preferred, toy_pairs.other,
                    names=("y",) + tuple(toy_pairs.names[1:]))
    check = unchanged(toy_model)
    with pytest.raises(PairsError, match=r"these pairs are decisions of another component .*'y' where 'x\[0\]'"):
        pref.fit(renamed, seed=0, **FAST_FIT)
    with pytest.raises(PairsError, match="fit's candidates must be a Candidates set"):
        pref.fit(toy_pairs, seed=0, candidates=toy_candidates.u, **FAST_FIT)
    check()
    assert not pref.is_fitted


def test_pairs_and_candidates_of_context_params_in_another_order(toy_model, toy_pairs,
                                                                 toy_candidates, unchanged):
    m = toy_model
    assert toy_candidates.context_names == toy_pairs.context_names == ("theta[0]", "theta[1]")
    m.pref = PreferenceObjective(decisions=toy_decisions(m), context=[m.theta[1], m.theta[0]],
                                 progress=False)
    check = unchanged(m)
    swapped = r"context names differ: 'theta\[0\]' where 'theta\[1\]' was expected"
    with pytest.raises(PairsError, match="contexts of other Params, or in another order.*" + swapped):
        m.pref.fit(toy_pairs, seed=0, **FAST_FIT)
    with pytest.raises(PairsError, match=swapped):
        m.pref.ask(toy_candidates, n_pairs=5, oracle=lambda a, b: 0)
    check()
    assert not m.pref.is_fitted
    # Pairs that name no context (built from arrays, older files) are taken as they are.
    unnamed = Pairs(toy_pairs.context, toy_pairs.preferred, toy_pairs.other, names=toy_pairs.names)
    m.pref.fit(unnamed[:40], seed=0, **FAST_FIT)
    assert m.pref.is_fitted


def test_pairs_of_another_context_length(toy_model, toy_pairs):
    pref = add_component(toy_model)
    wide = Pairs(np.hstack([toy_pairs.context, toy_pairs.context]), toy_pairs.preferred, toy_pairs.other)
    with pytest.raises(PairsError, match="contexts of length 4; this component has 2 context Params"):
        pref.fit(wide, seed=0, **FAST_FIT)
    assert not pref.is_fitted


def test_fit_needs_pairs(toy_model):
    pref = add_component(toy_model)
    with pytest.raises(PairsError, match="fit needs a Pairs dataset"):
        pref.fit({"preferred": []})


def test_n_components_larger_than_the_data_allows(toy_model, toy_pairs, unchanged):
    pref = add_component(toy_model)
    check = unchanged(toy_model)
    with pytest.raises(LearningError, match=r"n_components=7 is larger than the data allows.*n_components <= 6"):
        pref.fit(toy_pairs, n_components=7, seed=0, **FAST_FIT)
    check()
    assert not pref.is_fitted


def test_n_components_limited_by_few_distinct_decisions(toy_model, toy_pairs):
    pref = add_component(toy_model)
    few = toy_pairs.subset(np.arange(2))  # at most 4 distinct decisions: 3 directions
    with pytest.raises(LearningError, match="larger than the data allows"):
        pref.fit(few, n_components=4, seed=0, **FAST_FIT)


@pytest.mark.parametrize("n_components", [0, -2, 2.5, True])
def test_n_components_not_a_positive_integer(toy_model, toy_pairs, n_components):
    pref = add_component(toy_model)
    with pytest.raises(LearningError, match="n_components must be a positive integer or None"):
        pref.fit(toy_pairs, n_components=n_components, seed=0, **FAST_FIT)


@pytest.mark.parametrize(
    "option, message",
    [
        ({"margin": 0.0}, "margin must be a positive number"),
        ({"loss": "squared"}, "loss must be one of"),
        ({"max_epochs": 0}, "max_epochs must be a positive integer"),
        ({"n_networks": 0}, "n_networks must be a positive integer"),
        ({"n_networks": 2.0}, "n_networks must be a positive integer"),
        ({"lr_patience": -1}, "lr_patience must be an integer >= 0"),
        ({"lr_patience": 2.5}, "lr_patience must be an integer >= 0"),
        ({"curvature_floor": -0.1}, "curvature_floor must be a number >= 0"),
        ({"curvature_floor": float("inf")}, "curvature_floor must be a number >= 0"),
        ({"l2": float("nan")}, "l2 must be a number >= 0"),
        ({"validation_fraction": 1.0}, r"validation_fraction must lie in \[0, 1\)"),
        ({"device": "no-such-device"}, "unknown torch device"),
        ({"hidden_layers": 5}, r"hidden_layers must be a tuple of layer widths"),
        pytest.param({"device": "cuda"}, "has no CUDA device", marks=pytest.mark.skipif(
            torch.cuda.is_available(), reason="a CUDA device is present")),
        ({"epochs": 3}, "unknown fit option"),
    ],
)
def test_bad_fit_options(toy_model, toy_pairs, option, message):
    pref = add_component(toy_model)
    options = {"progress": False, "max_epochs": 5, **option}
    with pytest.raises(LearningError, match=message):
        pref.fit(toy_pairs, seed=0, **options)
    assert not pref.is_fitted


def test_too_few_or_identical_pairs(toy_model, toy_pairs):
    pref = add_component(toy_model)
    with pytest.raises(LearningError, match="at least 2 pairs"):
        pref.fit(toy_pairs.subset(np.arange(1)), **FAST_FIT)
    same = np.ones((5, 6))
    with pytest.warns(UserWarning, match="5 of 5 pairs compare a decision with itself"):
        with pytest.raises(LearningError, match="all decisions in the pairs are identical"):
            pref.fit(Pairs(np.zeros((5, 2)), same, same), **FAST_FIT)


def test_warm_start_before_fit(toy_model, toy_pairs):
    pref = add_component(toy_model)
    with pytest.raises(NotFittedError, match="warm_start=True needs an earlier fit"):
        pref.fit(toy_pairs, warm_start=True, **FAST_FIT)
    assert not pref.is_fitted


def test_warm_start_with_another_number_of_networks(toy_model, toy_pairs):
    pref = add_component(toy_model)
    pref.fit(toy_pairs, seed=0, **FAST_FIT)
    before = pref.learner
    with pytest.raises(LearningError, match="init has another n_networks"):
        pref.fit(toy_pairs, warm_start=True, n_networks=2, **FAST_FIT)
    assert pref.learner is before


# ------------------------------------------------------------------ activation
def test_activate_before_fit(toy_model, unchanged):
    pref = add_component(toy_model)
    check = unchanged(toy_model)
    with pytest.raises(NotFittedError, match=r"no learned objective yet; call fit\(pairs\)"):
        pref.activate(CONTEXT)
    with pytest.raises(NotFittedError, match="no learned objective yet"):
        pref.cost(CONTEXT)
    with pytest.raises(NotFittedError, match="no learned objective yet"):
        pref.save("never-written.npz")
    check()


@pytest.mark.parametrize("context", [(0.3,), (0.3, 0.7, 0.1), 0.3, [[0.3, 0.7], [0.1, 0.2]],
                                     [[0.3, 0.7]], (0.3, math.inf), ("a", "b")])
def test_context_of_the_wrong_size_at_activate(fitted_model, unchanged, context):
    m = fitted_model
    check = unchanged(m)
    with pytest.raises(ContextError, match=r"pref: (a context is a sequence of 2 floats|"
                                           r"context holds NaN or inf|a context must hold numbers)"):
        m.pref.activate(context)
    check()
    assert active_objective(m) is m.cost


@pytest.mark.parametrize("option", ["tie_break", "span_penalty", "trust_region"])
@pytest.mark.parametrize("value", ["x", -1.0, math.nan, True])
def test_bad_activate_options(fitted_model, unchanged, option, value):
    m = fitted_model
    check = unchanged(m)
    with pytest.raises(ModelError, match=f"{option} must be a number >= 0 or None"):
        m.pref.activate(CONTEXT, **{option: value})
    check()


def test_context_of_the_wrong_size_while_active(fitted_model, unchanged):
    m = fitted_model
    m.pref.activate(CONTEXT)
    check = unchanged(m)
    with pytest.raises(ContextError, match="a context is a sequence of 2 floats"):
        m.pref.activate((1.0, 2.0, 3.0))
    check()  # still the learned objective at CONTEXT


def test_no_active_objective_at_activate(fitted_model, unchanged):
    m = fitted_model
    m.cost.deactivate()
    check = unchanged(m)
    with pytest.raises(ModelError, match="has no active objective"):
        m.pref.activate(CONTEXT)
    check()


def test_second_component_does_not_take_the_first_ones_learned_objective(fitted_model, unchanged):
    """With ``m.pref``'s learned objective active, a second component would
    otherwise take it for the nominal one and sample or stack on it."""
    m = fitted_model
    m.other = PreferenceObjective(decisions=toy_decisions(m), context=[m.theta], progress=False)
    m.pref.activate(CONTEXT)
    check = unchanged(m)
    with pytest.raises(ModelError, match=r"learned objective of 'pref'.*pref\.deactivate\(\)"):
        m.other.sample([CONTEXT], per_context=2, seed=0)
    check()
    m.pref.deactivate()
    assert len(m.other.sample([CONTEXT], per_context=2, seed=0, **SAMPLE_OPTIONS)) >= 1


def test_unknown_formulation_at_activate(fitted_model, unchanged):
    check = unchanged(fitted_model)
    with pytest.raises(ModelError, match="formulation must be one of"):
        fitted_model.pref.activate(CONTEXT, formulation="sparse")
    check()


def test_failure_mid_activate_keeps_the_nominal(fitted_model, unchanged, monkeypatch):
    m = fitted_model

    def broken(self, *args, **kwargs):
        raise RuntimeError("solver-side failure while writing the objective")

    monkeypatch.setattr(PreferenceObjectiveData, "_push", broken)
    check = unchanged(m)
    with pytest.raises(RuntimeError, match="while writing the objective"):
        m.pref.activate(CONTEXT)
    assert active_objective(m) is m.cost
    check()
    monkeypatch.undo()
    m.pref.activate(CONTEXT)  # works once the failure is gone
    assert active_objective(m) is m.pref.learned.objective


def test_failure_mid_reactivate_brings_the_nominal_back(fitted_model, monkeypatch):
    m = fitted_model
    theta_before = [pyo.value(m.theta[k]) for k in range(2)]
    m.pref.activate(CONTEXT)

    def broken(self, *args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(PreferenceObjectiveData, "_push", broken)
    with pytest.raises(RuntimeError, match="boom"):
        m.pref.activate((0.9, 0.1))
    assert active_objective(m) is m.cost
    assert [pyo.value(m.theta[k]) for k in range(2)] == theta_before


def test_unbounded_nominal_objective_at_sample(unchanged):
    """SCIP holds a point of a ray for an unbounded problem: not a candidate."""
    m = pyo.ConcreteModel()
    m.x = pyo.Var(range(2), domain=pyo.NonNegativeReals)
    m.need = pyo.Constraint(expr=m.x[0] + m.x[1] >= 1)
    m.profit = pyo.Objective(expr=3 * m.x[0] + 2 * m.x[1], sense=pyo.maximize)
    m.pref = PreferenceObjective(decisions=m.x, progress=False)
    check = unchanged(m)
    with pytest.raises(ModelError, match="pref: the nominal objective 'profit' is unbounded"):
        m.pref.sample(per_context=3, seed=0)
    check()


def test_ctrl_c_caught_by_scip_stops_sampling(toy_model, unchanged, monkeypatch):
    """SCIP catches SIGINT and returns early ('userinterrupt'); sampling must
    stop, not take the interrupted solve for a candidate. The interrupt comes
    from SCIP itself (interruptSolve at the first node), as Ctrl-C does."""
    import pyscipopt

    class Interrupt(pyscipopt.Eventhdlr):
        def eventinit(self):
            self.model.catchEvent(pyscipopt.SCIP_EVENTTYPE.NODEFOCUSED, self)

        def eventexec(self, event):
            self.model.interruptSolve()

    rebuild = pyomo_prefobj.solver.ScipSession.rebuild

    def interrupted_rebuild(session):
        rebuild(session)
        session.scip.includeEventhdlr(Interrupt(), "interrupt", "Ctrl-C at the first node")

    monkeypatch.setattr(pyomo_prefobj.solver.ScipSession, "rebuild", interrupted_rebuild)
    pref = add_component(toy_model, solver_options={"presolving/maxrounds": 0})
    check = unchanged(toy_model)
    with pytest.raises(KeyboardInterrupt):
        pref.sample([CONTEXT], per_context=2, seed=0)
    check()


def test_fixed_decision_without_a_value_at_sample(toy_model, unchanged):
    pref = add_component(toy_model)
    toy_model.x[2].fix()
    check = unchanged(toy_model)
    with pytest.raises(ModelError, match=r"variable 'x\[2\]' is fixed but has no value"):
        pref.sample([CONTEXT], per_context=2, seed=0)
    check()


def test_nonlinear_objective_is_named_at_sample(toy_model, unchanged):
    toy_model.cost.deactivate()
    toy_model.odd = pyo.Objective(expr=pyo.exp(toy_model.x[0]))
    pref = add_component(toy_model)
    check = unchanged(toy_model)
    with pytest.raises(ModelError, match="objective 'odd' is neither linear nor quadratic"):
        pref.sample([CONTEXT], per_context=2, seed=0)
    check()


@pytest.mark.parametrize("call", ["sample", "activate"])
def test_context_outside_the_params_domain(call, toy_pairs, unchanged):
    m = build_toy_model()
    m.theta.domain = pyo.NonNegativeReals
    add_component(m)
    if call == "activate":
        m.pref.fit(toy_pairs, seed=0, **FAST_FIT)
        m.pref.activate(CONTEXT)
    check = unchanged(m)
    with pytest.raises(ContextError, match=r"context value -1.0 is not in the domain "
                                           r"NonNegativeReals of the context Param 'theta\[1\]'"):
        if call == "sample":
            m.pref.sample([CONTEXT, (0.5, -1.0)], per_context=2, seed=0)
        else:
            m.pref.activate((0.5, -1.0))
    check()  # while active: still the learned objective at CONTEXT


def test_context_where_the_learned_cost_overflows_keeps_the_learned_objective(fitted_model,
                                                                              unchanged):
    m = fitted_model
    m.pref.activate(CONTEXT)
    check = unchanged(m)
    with pytest.raises(ContextError, match="the learned cost is not finite at context"):
        m.pref.activate((1e300, 1e300))
    check()
    assert active_objective(m) is m.pref.learned.objective


@pytest.mark.parametrize("context", [(True, 0.5), [0.5, np.True_]])
def test_context_of_booleans(fitted_model, unchanged, context):
    check = unchanged(fitted_model)
    with pytest.raises(ContextError, match=r"a context must hold numbers \(one per context "
                                           r"Param, in the order \['theta\[0\]', 'theta\[1\]'\]\)"):
        fitted_model.pref.activate(context)
    check()


def test_context_given_to_a_component_without_context(plain_model, plain_pairs, unchanged):
    add_component(plain_model, context=False)
    plain_model.pref.fit(plain_pairs, seed=0, **FAST_FIT)
    check = unchanged(plain_model)
    with pytest.raises(ContextError, match="has no context Params; leave the context out"):
        plain_model.pref.activate(3.0)
    check()


def test_unknown_keyword_keeps_the_fitted_component(fitted_model, unchanged):
    m = fitted_model
    check = unchanged(m)
    with pytest.raises(ArgumentError, match=r"unknown keyword argument\(s\) \['progres'\]; it takes "
                                            r"\['context', 'decisions', 'doc'"):
        m.pref = PreferenceObjective(decisions=toy_decisions(m), context=[m.theta], progres=False)
    check()
    assert m.pref.is_fitted
    assert isinstance(ArgumentError("x"), TypeError)


@pytest.mark.parametrize("how", ["slice", "nested"])
def test_decisions_as_a_slice_or_nested_list_say_how_to_pass_them(toy_model, unchanged, how):
    m = toy_model
    m.grid = pyo.Var(range(2), range(2))
    decisions = [m.grid[0, :]] if how == "slice" else [[m.x[0], m.x[1]]]
    hint = r"pyo.Reference\(m.y\[0, :\]\)" if how == "slice" else r"\['x\[0\]', 'x\[1\]'\] \(list\); pass one flat list"
    check = unchanged(m)
    with pytest.raises(DecisionError, match=hint):
        m.pref = PreferenceObjective(decisions=decisions)
    check()


def test_an_empty_subset_of_candidates(toy_candidates):
    empty = toy_candidates[np.zeros(len(toy_candidates), dtype=bool)]
    assert isinstance(empty, Candidates)
    assert len(empty) == 0 and empty.context.shape == (0, 2) and empty.u.shape == (0, 6)


def test_integer_context_params_keep_their_integer_values(toy_pairs):
    """sample and activate/deactivate leave an integer Param an int."""
    m = build_toy_model()
    m.shifts = pyo.Param(mutable=True, initialize=3, within=pyo.PositiveIntegers)
    m.pref = PreferenceObjective(decisions=toy_decisions(m), context=[m.theta, m.shifts],
                                 progress=False)
    m.pref.sample([(0.5, 0.5, 2.0)], per_context=2, seed=0, **SAMPLE_OPTIONS)
    assert type(m.shifts.value) is int and m.shifts.value == 3
    pairs = dataclasses.replace(
        toy_pairs, context=np.hstack([toy_pairs.context, np.full((len(toy_pairs), 1), 2.0)]),
        context_names=m.pref.context_names,
    )
    m.pref.fit(pairs, seed=0, **FAST_FIT)
    m.pref.activate((0.5, 0.5, 2.0))
    assert type(m.shifts.value) is int and m.shifts.value == 2
    m.pref.deactivate()
    assert type(m.shifts.value) is int and m.shifts.value == 3


# --------------------------------------------------------------------- classes
@pytest.mark.parametrize(
    "error, builtin",
    [
        (DecisionError, ValueError),
        (ContextError, ValueError),
        (ModelError, ValueError),
        (OracleError, ValueError),
        (PairsError, ValueError),
        (LearningError, ValueError),
        (SolverUnavailableError, RuntimeError),
        (NoFeasibleCandidateError, RuntimeError),
        (NotFittedError, RuntimeError),
    ],
)
def test_error_classes(error, builtin):
    assert issubclass(error, PreferenceObjectiveError)
    assert issubclass(error, builtin)
