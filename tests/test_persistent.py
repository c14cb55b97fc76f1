"""PersistentScip: Pyomo's persistent SCIP interface with a direct linear objective."""

import numpy as np
import pyomo.environ as pyo
import pytest
from pyomo.contrib.solver.common.factory import SolverFactory as ContribSolverFactory
from pyomo.contrib.solver.common.results import TerminationCondition

from conftest import (FEASIBILITY_TOLERANCE, active_objective, build_toy_model, decision_vector,
                      max_violation, solve)
from pyomo_prefobj import PersistentScip

OPTIMAL = TerminationCondition.convergenceCriteriaSatisfied
CONTEXTS = ((0.3, 0.7), (0.9, 0.1), (0.0, 1.0))


def knapsack(sense=pyo.maximize):
    m = pyo.ConcreteModel()
    m.x = pyo.Var(range(4), domain=pyo.Binary)
    m.capacity = pyo.Constraint(expr=3 * m.x[0] + 4 * m.x[1] + 5 * m.x[2] + 2 * m.x[3] <= 9)
    value = 4 * m.x[0] + 5 * m.x[1] + 7 * m.x[2] + 2 * m.x[3] + 10
    m.objective = pyo.Objective(expr=value if sense == pyo.maximize else -value, sense=sense)
    return m


@pytest.mark.parametrize("sense", [pyo.maximize, pyo.minimize])
def test_linear_objective_reaches_scip_as_its_objective(sense):
    m = knapsack(sense)
    solver = PersistentScip()
    results = solver.solve(m)
    assert results.termination_condition == OPTIMAL
    expected = 22.0 if sense == pyo.maximize else -22.0  # items 1 and 2, plus the constant
    assert pyo.value(m.objective) == pytest.approx(expected)
    assert results.incumbent_objective == pytest.approx(expected)
    # No auxiliary row: SCIP's objective is the model's own.
    assert solver._obj_con is None
    scip = solver._solver_model
    assert scip.getObjoffset() == pytest.approx(10.0 if sense == pyo.maximize else -10.0)
    assert scip.getNConss(transformed=False) == 1


def test_objective_changes_between_linear_and_nonlinear_on_one_solver():
    m = knapsack()
    solver = PersistentScip()
    solver.solve(m)
    m.objective.deactivate()
    m.squares = pyo.Objective(expr=sum((m.x[i] - 0.4 * i) ** 2 for i in range(4)))
    results = solver.solve(m)
    assert results.termination_condition == OPTIMAL
    assert solver._obj_con is not None  # Pyomo's row for the quadratic
    assert [round(pyo.value(m.x[i])) for i in range(4)] == [0, 0, 1, 1]
    assert pyo.value(m.squares) == pytest.approx(0.0 + 0.16 + 0.04 + 0.04)
    m.squares.deactivate()
    m.objective.activate()
    results = solver.solve(m)
    assert solver._obj_con is None
    assert pyo.value(m.objective) == pytest.approx(22.0)
    assert results.incumbent_objective == pytest.approx(22.0)


def test_learned_objective_at_many_contexts_matches_pyomos_interface(fitted_model):
    """The learned objective (linear in its auxiliary variables, with the
    span penalty) reaches the same optimum through both interfaces."""
    m = fitted_model
    ours, pyomos = PersistentScip(), ContribSolverFactory("scip_persistent")
    for context in CONTEXTS:
        m.pref.activate(context, span_penalty=0.5)
        assert ours.solve(m).termination_condition == OPTIMAL
        assert ours._obj_con is None
        value = pyo.value(active_objective(m))
        pyomos.solve(m)
        assert value == pytest.approx(pyo.value(active_objective(m)), rel=1e-6, abs=1e-6)
    m.pref.deactivate()
    ours.solve(m)  # the nominal objective, a quadratic one in this model
    nominal = pyo.value(active_objective(m))
    solve(m, "scip_direct")
    assert nominal == pytest.approx(pyo.value(active_objective(m)), rel=1e-6, abs=1e-6)


def test_model_without_objective_is_solved_for_feasibility():
    m = build_toy_model()
    m.cost.deactivate()
    results = PersistentScip().solve(m)
    assert results.termination_condition == OPTIMAL
    assert max_violation(m) <= FEASIBILITY_TOLERANCE


LONG_LOG_SCRIPT = """
import numpy as np
import pyomo.environ as pyo
from pyomo_prefobj import PersistentScip

n = 5000
m = pyo.ConcreteModel()
m.x = pyo.Var(range(n), bounds=(0, 1))
m.y = pyo.Var(within=pyo.Binary)
m.capacity = pyo.Constraint(expr=sum(m.x.values()) <= n / 2 + m.y)
m.objective = pyo.Objective(expr=sum(m.x.values()) + m.y, sense=pyo.maximize)
solver = PersistentScip()
solver.solve(m)
# The kept solution violates the new row: SCIP prints all 5000 terms of it.
m.tight = pyo.Constraint(expr=sum((i % 7 + 1) * m.x[i] for i in range(n)) <= 100)
results = solver.solve(m, solver_options={"misc/printreason": True})
print(round(results.incumbent_objective, 6), len(results.solver_log))
"""


def test_a_solve_whose_log_fills_the_pipe_finishes():
    """SCIP's log of a re-solve after a change can exceed the 64 KiB pipe
    Pyomo reads it through; with Python's lock held during the solve (Pyomo's
    own ``scip_persistent``), that solve never returned."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", LONG_LOG_SCRIPT], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    objective, log_size = done.stdout.split()
    assert float(objective) == pytest.approx(101.0)  # x at 1 where the weight is 1, up to 100, and y
    assert int(log_size) > 64 * 1024


def test_kept_solutions_that_a_change_made_infeasible_are_not_printed(fitted_model):
    """After a solve, ``activate`` rebuilds the learned rows, so the solutions
    SCIP kept are infeasible at the next solve; their violated rows are not
    printed unless asked for."""
    m, solver = fitted_model, PersistentScip()
    solver.solve(m)
    logs = []
    for context, options in zip(CONTEXTS, ({}, {"misc/printreason": True}, {})):
        m.pref.activate(context)
        results = solver.solve(m, solver_options=options)
        assert results.termination_condition == OPTIMAL
        logs.append(results.solver_log)
    m.pref.deactivate()
    assert "violat" not in logs[0] and "violat" not in logs[2]
    assert "violat" in logs[1]


@pytest.mark.parametrize("span_penalty", [None, 0.5])
def test_activate_leaves_a_complete_feasible_solution_to_start_from(fitted_model, span_penalty):
    """After a solve, ``activate`` at another context gives the learned
    block's variables the values the current decision implies."""
    m = fitted_model
    solver = PersistentScip()
    m.pref.activate(CONTEXTS[0], span_penalty=span_penalty)
    solver.solve(m)
    start = decision_vector(m)
    m.pref.activate(CONTEXTS[1], span_penalty=span_penalty)
    assert decision_vector(m) == pytest.approx(start)
    assert max_violation(m) <= FEASIBILITY_TOLERANCE
    learned = m.pref.learned
    assert all(var.value is not None for var in learned.component_data_objects(pyo.Var))


def test_warm_start_hands_scip_the_current_decision(fitted_model):
    """With a limit of one solution SCIP stops at the first it has: with the
    warm start that is the decision the model holds (here the nominal
    optimum, not the learned one)."""
    m = fitted_model
    solver = PersistentScip()
    solver.solve(m)  # the nominal objective
    nominal = decision_vector(m)
    m.pref.activate()  # at the current context, where the nominal decision is feasible
    results = solver.solve(m, warmstart_discrete_vars=True, solver_options={"limits/solutions": 1},
                           raise_exception_on_nonoptimal_result=False)
    assert results.termination_condition != OPTIMAL
    assert decision_vector(m) == pytest.approx(nominal, abs=1e-6)
    m.pref.deactivate()


def test_warm_started_solves_at_many_contexts_reach_the_cold_optimum(fitted_model):
    """Warm starts over more contexts than SCIP keeps partial solutions (10)
    on one solver; each optimum equals a cold solve's."""
    m = fitted_model
    warm, cold = PersistentScip(), PersistentScip()
    rng = np.random.default_rng(0)
    for context in rng.uniform(0, 1, size=(12, 2)):
        m.pref.activate(context)
        assert warm.solve(m, warmstart_discrete_vars=True).termination_condition == OPTIMAL
        value = pyo.value(active_objective(m))
        assert cold.solve(m).termination_condition == OPTIMAL
        assert value == pytest.approx(pyo.value(active_objective(m)), rel=1e-6, abs=1e-6)
    m.pref.deactivate()


def test_partial_warm_starts_stop_with_a_warning_at_scips_limit(caplog):
    """A variable without a value: the discrete ones go as a partial
    solution, of which SCIP keeps 10 per model; Pyomo's interface then
    failed ("method cannot be called at this time")."""
    m = knapsack()
    m.free = pyo.Var(bounds=(0, 1))  # never given a value by a solve: it is in no row
    m.use = pyo.Constraint(expr=m.free <= 1)
    solver = PersistentScip()
    with caplog.at_level("WARNING", logger="pyomo_prefobj.persistent"):
        for step in range(12):
            m.free.set_value(None)
            m.capacity.set_value(3 * m.x[0] + 4 * m.x[1] + 5 * m.x[2] + 2 * m.x[3] <= 9 + step % 2)
            assert solver.solve(m, warmstart_discrete_vars=True).termination_condition == OPTIMAL
    assert "at most 10 partial" in caplog.text
