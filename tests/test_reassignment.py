"""Assigning a new PreferenceObjective over a fitted one (``m.pref = ...``).

Pyomo replaces a component by deleting the old one and then adding (and so
building) the new one. Where the new one fails to build (names resolve only
on the model), the old one must come back as it was: the same object, its
fit, and an active learned objective still active at the same context, with
no warning that it was removed.
"""

import pyomo.environ as pyo
import pytest

from conftest import (
    active_objective,
    add_component,
    build_toy_model,
    set_context,
    snapshot,
    toy_decisions,
)
from pyomo_prefobj import ContextError, DecisionError, PreferenceObjective

USER_CONTEXT = (0.1, 0.2)  # the context Params' values before activate
CONTEXT = (0.3, 0.7)


def restored_warnings(recwarn):
    return [w for w in recwarn if "restored" in str(w.message)]


@pytest.mark.parametrize("mistake", ["misspelled", "twice", "other model", "saved counts"])
def test_failed_reassignment_keeps_the_fitted_component(fitted_model, mistake, tmp_path, recwarn):
    m = fitted_model
    old, learner, names = m.pref, m.pref.learner, m.pref.decision_names
    if mistake == "saved counts":
        m.pref.save(tmp_path / "pref.npz")
    before = snapshot(m)
    message = {
        "misspelled": r"no decisions named 'no_such_var' on the model",
        "twice": r"decisions 'x\[0\]' is given twice",
        "other model": r"decisions 'x\[0\]' belongs to another model",
        "saved counts": r"the saved objective has 6 decisions; this model gives 3",
    }[mistake]
    with pytest.raises(DecisionError, match=message):
        if mistake == "misspelled":
            m.pref = PreferenceObjective(decisions=["x", "no_such_var"], context=[m.theta])
        elif mistake == "twice":
            m.pref = PreferenceObjective(decisions=["x", "x"], context=[m.theta])
        elif mistake == "other model":
            other = build_toy_model()  # kept alive: a Var holds its model by a weak reference
            m.pref = PreferenceObjective(decisions=[other.x], context=[m.theta])
        else:
            m.pref = PreferenceObjective.load(tmp_path / "pref.npz", decisions=[m.x])
    assert m.pref is old
    assert m.pref.is_fitted and m.pref.learner is learner
    assert m.pref.decision_names == names
    assert snapshot(m) == before
    assert active_objective(m) is m.cost
    assert not restored_warnings(recwarn)


def test_failed_reassignment_keeps_the_learned_objective_active(fitted_model, recwarn):
    m = fitted_model
    set_context(m, USER_CONTEXT)
    m.pref.activate(CONTEXT, span_penalty=0.03)
    old, objective, activation = m.pref, m.pref.learned.objective, dict(m.pref._activation)
    before = snapshot(m)
    with pytest.raises(ContextError, match=r"no context named 'no_such_param' on the model"):
        m.pref = PreferenceObjective(decisions=toy_decisions(m), context=["no_such_param"])
    assert m.pref is old
    assert snapshot(m) == before
    # Active at the same context, with the same options, and never switched off.
    assert active_objective(m) is objective
    assert not m.cost.active
    assert [pyo.value(m.theta[k]) for k in range(2)] == list(CONTEXT)
    assert m.pref._activation == activation and activation["span_penalty"] == 0.03
    assert m.pref.learned.component("span_residual") is not None
    assert not restored_warnings(recwarn)
    # deactivate() still brings back what the user had before activate().
    m.pref.deactivate()
    assert active_objective(m) is m.cost
    assert [pyo.value(m.theta[k]) for k in range(2)] == list(USER_CONTEXT)


def test_successful_reassignment_after_a_failed_one_restores_the_nominal(fitted_model):
    m = fitted_model
    set_context(m, USER_CONTEXT)
    m.pref.activate(CONTEXT)
    old = m.pref
    with pytest.raises(DecisionError, match="no decisions named 'no_such_var'"):
        m.pref = PreferenceObjective(decisions=["no_such_var"], context=[m.theta])
    with pytest.warns(UserWarning, match="pref was removed from the model while its learned "
                                         "objective was active; the nominal objective 'cost'") as caught:
        add_component(m)
    assert caught[0].filename.endswith(("test_reassignment.py", "conftest.py"))
    assert m.pref is not old and not m.pref.is_fitted
    assert active_objective(m) is m.cost
    assert [pyo.value(m.theta[k]) for k in range(2)] == list(USER_CONTEXT)
    assert not old.learned.active


def test_failed_assignment_after_del_does_not_bring_the_deleted_component_back(fitted_model):
    m = fitted_model
    del m.pref
    with pytest.raises(DecisionError, match="no decisions named 'no_such_var'"):
        m.pref = PreferenceObjective(decisions=["no_such_var"], context=[m.theta])
    assert m.component("pref") is None
    assert active_objective(m) is m.cost
