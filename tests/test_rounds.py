"""Asking in rounds (``ask_in_rounds``) and sampling around given decisions.

* On the toy MIQP (conftest) with the latent quadratic user, the same budget
  asked in rounds about decisions near the learned optimum gives learned
  decisions of lower latent regret than random pairs, averaged over seeds;
  with the mechanism switched off (the local candidates sampled around the
  nominal decision instead of the learned one) the gain is gone.
* What it returns and leaves behind: every answer and candidate, each
  round's learned decisions (feasible, among the candidates), a fitted
  component, the model's variable values and objective as they were.
* Bad input is refused before the first question; a failing oracle leaves
  the earlier fit in place; ``StopAsking`` ends the rounds with the answers
  so far.
* ``sample(around=...)`` draws its targets around the given decisions.
"""

import numpy as np
import pyomo.environ as pyo
import pytest

from conftest import (
    SAMPLE_OPTIONS,
    add_component,
    build_toy_model,
    decision_vector,
    max_violation,
    snapshot,
    solve,
)
from pyomo_prefobj import LearningError, ModelError, OracleError, PairsError, RoundsResult, StopAsking
from pyomo_prefobj import rounds as rounds_module

SEEDS = (0, 1, 2, 3, 4, 5)
BUDGET, ROUNDS, PER_CONTEXT = 60, 2, 6
FIT = {"max_epochs": 150, "min_epochs": 50, "loss": "logistic", "hidden_layers": (8,),
       "progress": False}
LOCAL = {"per_context": PER_CONTEXT, "bias_weight": 50.0, "bias_width": 0.2}
# Measured when written (mean latent regret at 6 held-out contexts, 6 seeds):
# random pairs 5.64, in rounds 3.80, rounds around the nominal decision 5.24.
GAIN = 0.8


# On the toy MIQP one context's biased solves sometimes all return its
# nominal decision, and sample() says so; expected here.
ONLY_NOMINAL = pytest.mark.filterwarnings("ignore:.*biased solves returned only the nominal decision")


@pytest.fixture(scope="module")
def contexts():
    train = np.random.default_rng(0).uniform(0.0, 1.0, size=(6, 2))
    held_out = np.random.default_rng(1).uniform(0.0, 1.0, size=(6, 2))
    return train, held_out


def fresh(train, seed):
    m = build_toy_model()
    add_component(m)
    return m, m.pref.sample(train, per_context=PER_CONTEXT, seed=seed, **SAMPLE_OPTIONS)


def assert_model_as_it_was(m, before):
    """Variable and Param values and the active objective as in ``before``
    (a :func:`snapshot`); the component's own learned block may be new."""
    after = snapshot(m)
    for key in ("active_objectives", "params", "vars"):
        assert after[key] == before[key], key


def mean_regret(m, held_out, latent_user):
    regret = []
    for theta in held_out:
        m.pref.activate(theta)
        solve(m)
        u = decision_vector(m)
        m.pref.deactivate()
        best = latent_user.optimum(theta)
        regret.append(latent_user.cost(u, theta) - latent_user.cost(best, theta))
    return float(np.mean(regret))


def regrets(contexts, latent_user, in_rounds):
    train, held_out = contexts
    out = []
    for seed in SEEDS:
        m, candidates = fresh(train, seed)
        oracle = latent_user.oracle(seed=seed)
        if in_rounds:
            m.pref.ask_in_rounds(candidates, BUDGET, oracle, rounds=ROUNDS, seed=seed,
                                 fit_options=dict(seed=seed, **FIT), **LOCAL)
        else:
            m.pref.fit(m.pref.ask(candidates, BUDGET, oracle, seed=seed), seed=seed, **FIT)
        out.append(mean_regret(m, held_out, latent_user))
    return np.array(out)


@pytest.fixture(scope="module")
def random_regret(contexts, latent_user):
    return regrets(contexts, latent_user, in_rounds=False)


def test_rounds_beat_random_pairs_of_the_same_budget(contexts, latent_user, random_regret):
    in_rounds = regrets(contexts, latent_user, in_rounds=True)
    assert in_rounds.mean() < GAIN * random_regret.mean(), (in_rounds, random_regret)


@ONLY_NOMINAL
def test_control_rounds_around_the_nominal_decision_gain_little(contexts, latent_user,
                                                                random_regret, monkeypatch):
    """The mechanism switched off: local candidates around the nominal decision."""
    learned = rounds_module.learned_decisions

    def nominal_decisions(pref, contexts, solver, solve_options, activation):
        _, cost, errors = learned(pref, contexts, solver, solve_options, activation)
        return np.array([latent_user.nominal(theta) for theta in contexts]), cost, errors

    monkeypatch.setattr(rounds_module, "learned_decisions", nominal_decisions)
    control = regrets(contexts, latent_user, in_rounds=True)
    assert not control.mean() < GAIN * random_regret.mean(), (control, random_regret)


def test_what_ask_in_rounds_returns_and_leaves(contexts, latent_user):
    train, _ = contexts
    m, candidates = fresh(train, 0)
    m.x[0].set_value(1.25)
    before = snapshot(m)
    result = m.pref.ask_in_rounds(candidates, BUDGET, latent_user.oracle(), rounds=ROUNDS,
                                  seed=0, fit_options=dict(seed=0, **FIT), **LOCAL)
    assert isinstance(result, RoundsResult)
    assert len(result.pairs) == BUDGET
    assert len(result.reports) == ROUNDS + 1
    assert result.decisions.shape == (ROUNDS, len(train), 6)
    assert np.all(np.isfinite(result.decisions))
    # Each round's learned decision is a feasible candidate at its context.
    for round_decisions in result.decisions:
        for theta, u in zip(train, round_decisions):
            here = np.all(np.isclose(result.candidates.context, theta), axis=1)
            assert np.any(np.all(np.isclose(result.candidates.u[here], u, atol=1e-6), axis=1))
            probe = build_toy_model()
            for k, value in enumerate(theta):
                probe.theta[k] = float(value)
            for var, value in zip((probe.x[0], probe.x[1], probe.x[2], probe.y[0], probe.y[1],
                                   probe.n), u):
                var.set_value(float(value))
            assert max_violation(probe) < 1e-6
    assert len(result.candidates) > len(candidates)
    assert m.pref.is_fitted
    assert_model_as_it_was(m, before)
    # The component holds the fit on every answer: refitting the same data
    # with the same options gives the same learned cost.
    refit = build_toy_model()
    add_component(refit)
    refit.pref.fit(result.pairs, candidates=result.candidates, seed=0, **FIT)
    theta = train[0]
    assert np.allclose(refit.pref.cost(theta).H, m.pref.cost(theta).H)


def test_same_seed_same_questions(contexts, latent_user):
    train, _ = contexts
    runs = []
    for _ in range(2):
        m, candidates = fresh(train, 3)
        runs.append(m.pref.ask_in_rounds(candidates, 30, latent_user.oracle(seed=3), rounds=1,
                                         seed=3, fit_options=dict(seed=3, **FIT), **LOCAL))
    assert np.array_equal(runs[0].pairs.preferred, runs[1].pairs.preferred)
    assert np.array_equal(runs[0].decisions, runs[1].decisions)


@pytest.mark.parametrize("options, message", [
    ({"rounds": -1}, "rounds must be an integer >= 0"),
    ({"rounds": 1.5}, "rounds must be an integer >= 0"),
    ({"initial": 70}, r"initial \(70\) must not exceed n_pairs \(60\)"),
    ({"initial": 60}, "leaves no questions for the rounds"),
    ({"rounds": 40, "initial": 30}, "40 rounds need at least one question each"),
    ({"per_context": 1}, "per_context must be >= 2"),
    ({"activation": ["span_penalty"]}, "activation must be a dict"),
    ({"sample_options": {"seed": 3}}, "give 'seed' as ask_in_rounds' own argument"),
    ({"sample_options": {"n_jobs": 0}}, "sample_options: n_jobs must be a positive integer"),
    ({"sample_options": {"time_limt": 1}}, "sample_options: unknown option 'time_limt'"),
    ({"sample_options": {"time_limit": 0}}, "sample_options: time_limit must be a number"),
    ({"fit_options": {"warm_start": True}}, "fit_options may not hold 'warm_start'"),
    ({"fit_options": {"los": "hinge"}}, "fit_options: unknown fit option: .*'los'"),
    ({"fit_options": {"loss": "hinj"}}, "fit_options: loss must be one of"),
    ({"fit_options": {"min_epochs": -3}}, "fit_options: min_epochs must be"),
    ({"activation": {"span_penalty": 0.03, "spam_penalty": 1}},
     "unknown activate option 'spam_penalty' in activation"),
    ({"activation": {"span_penalty": -1}}, "span_penalty must be a number >= 0"),
    ({"activation": {"formulation": "sparse"}}, "formulation must be one of"),
    ({"rounds": 0, "initial": 30}, r"with rounds=0 every question is asked at random"),
    ({"seed": -2}, "seed"),
])
def test_bad_options_are_refused_before_the_first_question(contexts, options, message):
    train, _ = contexts
    m, candidates = fresh(train, 0)
    asked = []

    def oracle(a, b):
        asked.append(1)
        return 0

    before = snapshot(m)
    with pytest.raises((ModelError, LearningError), match=message):
        m.pref.ask_in_rounds(candidates, BUDGET, oracle, **options)
    assert not asked
    assert snapshot(m) == before
    assert not m.pref.is_fitted


def test_no_rounds_asks_every_question_at_random(contexts, latent_user):
    """rounds=0: n_pairs random questions and one fit (was half of them)."""
    train, _ = contexts
    m, candidates = fresh(train, 0)
    result = m.pref.ask_in_rounds(candidates, 30, latent_user.oracle(seed=0), rounds=0, seed=0,
                                  fit_options=FIT, **LOCAL)
    assert len(result.pairs) == 30
    assert len(result.reports) == 1


def test_other_inputs_are_refused(contexts, latent_user):
    train, _ = contexts
    m, candidates = fresh(train, 0)
    with pytest.raises(PairsError, match="needs a Candidates set"):
        m.pref.ask_in_rounds(candidates.u, BUDGET, latent_user.oracle())
    with pytest.raises(OracleError, match="oracle must be callable"):
        m.pref.ask_in_rounds(candidates, BUDGET, "A")
    m.pref.fit(m.pref.ask(candidates, 30, latent_user.oracle(), seed=0), seed=0, **FIT)
    m.pref.activate(train[0])
    with pytest.raises(ModelError, match="learned objective is active"):
        m.pref.ask_in_rounds(candidates, BUDGET, latent_user.oracle())


def test_a_failing_oracle_keeps_the_earlier_fit(contexts, latent_user):
    train, _ = contexts
    m, candidates = fresh(train, 0)
    m.pref.fit(m.pref.ask(candidates, 30, latent_user.oracle(), seed=0), seed=0, **FIT)
    earlier = m.pref.learner
    before = snapshot(m)
    calls = []

    def failing(a, b):
        calls.append(1)
        if len(calls) > 35:  # in the first round's questions
            raise RuntimeError("rater went away")
        return latent_user.oracle()(a, b)

    with pytest.raises(RuntimeError, match="rater went away"):
        m.pref.ask_in_rounds(candidates, BUDGET, failing, rounds=ROUNDS, seed=0,
                             fit_options=dict(seed=0, **FIT), **LOCAL)
    assert m.pref.learner is earlier
    assert_model_as_it_was(m, before)


def test_a_failing_solver_ends_the_rounds_and_keeps_the_answers(contexts, latent_user):
    train, _ = contexts
    m, candidates = fresh(train, 0)

    class BrokenSolver:
        def solve(self, model, **options):
            raise RuntimeError("licence expired")

    before = snapshot(m)
    with pytest.warns(UserWarning, match=r"no solve of the learned objective gave a solution in "
                                         r"round 1 \(RuntimeError: licence expired\); the rounds "
                                         r"end here, with the 30 answers so far"):
        result = m.pref.ask_in_rounds(candidates, BUDGET, latent_user.oracle(), rounds=ROUNDS,
                                      seed=0, solver=BrokenSolver(),
                                      fit_options=dict(seed=0, **FIT), **LOCAL)
    assert len(result.pairs) == 30 and len(result.reports) == 1
    assert np.all(np.isnan(result.decisions))
    assert m.pref.is_fitted
    assert_model_as_it_was(m, before)


def test_stop_asking_ends_the_rounds_with_the_answers_so_far(contexts, latent_user):
    train, _ = contexts
    m, candidates = fresh(train, 0)
    oracle = latent_user.oracle()
    calls = []

    def stopping(a, b):
        calls.append(1)
        if len(calls) > 40:
            raise StopAsking("q typed")
        return oracle(a, b)

    with pytest.warns(UserWarning, match="stopped"):
        result = m.pref.ask_in_rounds(candidates, BUDGET, stopping, rounds=ROUNDS, seed=0,
                                      fit_options=dict(seed=0, **FIT), **LOCAL)
    assert len(result.pairs) == 40
    assert len(result.reports) == 2  # the initial fit and one on the 40 answers
    assert len(calls) == 41
    assert m.pref.is_fitted


@ONLY_NOMINAL
def test_sample_around_draws_targets_around_the_given_decisions(contexts, latent_user):
    train, _ = contexts
    m = build_toy_model()
    add_component(m)
    far = np.tile([4.0, 4.0, 0.0, 1.0, 1.0, 0.0], (len(train), 1))
    options = {"per_context": 8, "seed": 0, "bias_weight": 50.0, "bias_width": 0.1}
    near = m.pref.sample(train, around=far, **options)
    plain = m.pref.sample(train, **options)
    distance = [np.abs(c.u - far[0]).sum() for c in near]
    plain_distance = [np.abs(c.u - far[0]).sum() for c in plain]
    assert np.median(distance) < 0.5 * np.median(plain_distance)
    before = snapshot(m)
    with pytest.raises(ModelError, match=r"around must have one decision per context, shape "
                                         r"\(6, 6\); got shape \(6, 5\)"):
        m.pref.sample(train, around=far[:, :5])
    with pytest.raises(ModelError, match="around holds NaN or inf"):
        m.pref.sample(train, around=np.full_like(far, np.nan))
    assert snapshot(m) == before
