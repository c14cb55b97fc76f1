"""Sampling with contexts solved side by side in threads (``sample(n_jobs=...)``).

Every solve is a real SCIP solve.
"""

import threading

import numpy as np
import pytest

import pyomo_prefobj.solver
from conftest import SAMPLE_OPTIONS, add_component, snapshot
from pyomo_prefobj import ModelError


@pytest.mark.parametrize("n_jobs", [2, 3, -1])
def test_threads_give_the_serial_candidates(toy_model, train_contexts, n_jobs):
    pref = add_component(toy_model)
    before = snapshot(toy_model)
    serial = pref.sample(train_contexts[:5], per_context=6, seed=3, **SAMPLE_OPTIONS)
    threaded = pref.sample(train_contexts[:5], per_context=6, seed=3, n_jobs=n_jobs,
                           **SAMPLE_OPTIONS)
    np.testing.assert_array_equal(threaded.u, serial.u)
    np.testing.assert_array_equal(threaded.group, serial.group)
    np.testing.assert_array_equal(threaded.context, serial.context)
    np.testing.assert_array_equal(threaded.nominal_cost, serial.nominal_cost)
    assert snapshot(toy_model) == before


def test_threads_solve_contexts_side_by_side(toy_model, train_contexts, monkeypatch):
    """The biased solves run in more than one thread, and at once."""
    solve = pyomo_prefobj.solver.ScipSession.solve
    lock, running, seen = threading.Lock(), [0], {"threads": set(), "most": 0}

    def counted(session, objective, release_gil=False):
        with lock:
            running[0] += 1
            seen["most"] = max(seen["most"], running[0])
            seen["threads"].add(threading.get_ident())
        try:
            return solve(session, objective, release_gil)
        finally:
            with lock:
                running[0] -= 1

    monkeypatch.setattr(pyomo_prefobj.solver.ScipSession, "solve", counted)
    pref = add_component(toy_model)
    pref.sample(train_contexts[:4], per_context=20, seed=0, n_jobs=2, **SAMPLE_OPTIONS)
    assert len(seen["threads"]) >= 2
    assert seen["most"] == 2


@pytest.mark.parametrize("n_jobs", [0, -2, 1.5, "2", True, None])
def test_bad_n_jobs(toy_model, n_jobs):
    pref = add_component(toy_model)
    before = snapshot(toy_model)
    with pytest.raises(ModelError, match=r"n_jobs must be a positive integer or -1 .*; got "):
        pref.sample([(0.3, 0.7)], per_context=2, n_jobs=n_jobs)
    assert snapshot(toy_model) == before


def test_a_failing_context_stops_the_threads(toy_model, train_contexts, monkeypatch):
    """An error in one thread's solve reaches the caller; the model is left as it was."""
    solve = pyomo_prefobj.solver.ScipSession.solve
    calls = []

    def failing(session, objective, release_gil=False):
        calls.append(1)
        if len(calls) == 8:
            raise KeyboardInterrupt
        return solve(session, objective, release_gil)

    monkeypatch.setattr(pyomo_prefobj.solver.ScipSession, "solve", failing)
    pref = add_component(toy_model)
    before = snapshot(toy_model)
    with pytest.raises(KeyboardInterrupt):
        pref.sample(train_contexts[:6], per_context=10, seed=0, n_jobs=2, **SAMPLE_OPTIONS)
    assert snapshot(toy_model) == before
    # The other thread stopped after its current solve: far fewer than 6 x 9.
    assert len(calls) < 30
