"""Stage 1: feasible, distinct, sub-optimal decisions by biased re-solves.

At each context the nominal model is solved for ``u*``; then, repeatedly, a
random target ``b = u* + s * U[-w, w]`` (elementwise) is drawn and

    min  J(u) / J_ref + (lambda / d) * sum_i ((u_i - b_i) / s_i)^2

is solved over the model's own constraints, so every solution is feasible.
``J_ref`` is the mean ``|J(u*)|`` over the contexts (1 if that is 0), so
``lambda`` (``bias_weight``) weighs the bias against the nominal cost
without units. ``s_i`` is the decision's range ``ub - lb`` when both bounds
are finite (1 for a binary), else the largest ``|u*|`` of its Var component
over the contexts (at least 1); ``w`` is ``bias_width``.

The squares are expanded so that only the linear objective changes between
solves: ``(u - b)^2 / s^2 = u^2 / s^2 - 2 b u / s^2 + b^2 / s^2`` (the
last term is a constant and dropped), with ``u^2 = u`` for a binary and an
epigraph variable ``e_i >= (u_i / s_i)^2`` otherwise (one small convex
constraint per decision, which SCIP handles far better than a single
quadratic objective row). These live in SCIP's copy of the model only; the
Pyomo model is not touched.

Each context's biased solves run in a SCIP model of their own, translated
at that context, so contexts can be solved side by side: with ``n_jobs``
above 1, :func:`solve_contexts` runs them in threads, SCIP solving without
Python's lock. The targets are drawn in the same order either way and each
SCIP model sees the same sequence of solves, so the candidates are the
same as in a serial run.
"""

import collections
import concurrent.futures
import os
import threading

import numpy as np
import pyomo.environ as pyo
from pyomo.common.collections import ComponentMap

from . import oracles
from .errors import ModelError


def decision_scales(decisions, nominal_solutions):
    """Scale ``s_i`` of each decision (see the module docstring).

    Args:
        decisions: list of ``d`` VarData.
        nominal_solutions: array ``(m, d)`` of nominal optima.
    """
    largest = ComponentMap()
    magnitude = np.abs(nominal_solutions).max(axis=0)
    for i, var in enumerate(decisions):
        parent = var.parent_component()
        largest[parent] = max(largest.get(parent, 1.0), float(magnitude[i]))
    scales = np.empty(len(decisions))
    for i, var in enumerate(decisions):
        lb, ub = var.bounds
        if lb is not None and ub is not None and ub > lb:
            scales[i] = float(ub - lb)
        else:
            scales[i] = largest[var.parent_component()]
    return scales


def bias_objective(session, decisions, nominal, scales, reference, weight):
    """Prepare the biased objective in ``session``'s SCIP model.

    Adds the epigraph variables ``e_i >= (u_i / s_i)^2`` to the SCIP model
    of :class:`~pyomo_prefobj.solver.ScipSession` ``session``.

    Args:
        session: a rebuilt ScipSession.
        decisions: list of ``d`` VarData.
        nominal: the nominal ObjectiveData.
        scales: ``s``, shape ``(d,)``.
        reference: ``J_ref``.
        weight: ``lambda``.

    Returns:
        ``objective(target)``: the SCIP objective expression for a target
        ``b`` of shape ``(d,)``.
    """
    scip, quicksum = session.scip, session._pyscipopt.quicksum
    d = len(decisions)
    per_term = weight / d
    sign = 1.0 if nominal.sense == pyo.minimize else -1.0
    u = [session.variable(v) for v in decisions]
    squares = []
    for i, var in enumerate(decisions):
        if var.is_binary():
            squares.append(u[i])
        else:
            bound = scip.addVar(lb=0.0, ub=None)
            scip.addCons(bound >= (u[i] * (1.0 / float(scales[i]))) ** 2)
            squares.append(bound)
    cost = session.expression(nominal.expr, f"objective {nominal.name!r}")
    base = (sign / reference) * cost + per_term * quicksum(squares)
    inverse_square = 1.0 / scales ** 2

    def objective(target):
        coefficients = -2.0 * per_term * np.asarray(target) * inverse_square
        return base + quicksum(float(c) * u[i] for i, c in enumerate(coefficients))

    return objective


def check_n_jobs(n_jobs, name):
    """``n_jobs`` as a number of threads: a positive integer, or -1 for one
    per core; ModelError (naming ``name``) for anything else."""
    if not isinstance(n_jobs, bool) and isinstance(n_jobs, (int, np.integer)):
        if n_jobs == -1:
            return os.cpu_count() or 1
        if n_jobs >= 1:
            return int(n_jobs)
    raise ModelError(f"{name}: n_jobs must be a positive integer or -1 (one thread per core); "
                     f"got {n_jobs!r}")


def check_time_limit(time_limit, name):
    """ModelError (naming ``name``) unless ``time_limit`` is ``None`` or seconds > 0."""
    if time_limit is None:
        return
    if oracles.is_number(time_limit) and time_limit > 0:
        return
    raise ModelError(f"{name}: time_limit must be a number of seconds > 0 or None; "
                     f"got {time_limit!r}")


def solve_contexts(prepared, n_jobs=1, tick=None):
    """Run each context's biased solves; yield the solutions in context order.

    Args:
        prepared: iterable of ``(key, session, objective, targets)``: a
            rebuilt :class:`~pyomo_prefobj.solver.ScipSession` of one
            context, the ``objective(target)`` of :func:`bias_objective` and
            the targets to solve for. It is consumed in the caller's thread
            (it may use the Pyomo model), at most ``2 n_jobs`` contexts
            ahead of the solves.
        n_jobs: threads solving contexts side by side (1: in this thread).
        tick: ``tick(1)`` after each solve (e.g. a progress bar's update).

    Yields:
        ``(key, session, solutions)``, one per context, in the order of
        ``prepared``: per target, the session's variable values
        (``session.load(values)``), or ``None`` where the solve found no
        feasible solution. The caller's thread uses the Pyomo model between
        yields, while other contexts' solves go on.
    """
    tick = tick or (lambda count: None)
    if n_jobs == 1:
        for key, session, objective, targets in prepared:
            yield key, session, _solve_targets(session, objective, targets, tick)
        return
    lock, stop = threading.Lock(), threading.Event()

    def locked_tick(count):
        with lock:
            tick(count)

    pool = concurrent.futures.ThreadPoolExecutor(max_workers=n_jobs)
    pending = collections.deque()
    try:
        for key, session, objective, targets in prepared:
            pending.append((key, session, pool.submit(
                _solve_targets, session, objective, targets, locked_tick, stop)))
            while len(pending) > 2 * n_jobs:
                key, session, future = pending.popleft()
                yield key, session, future.result()
        while pending:
            key, session, future = pending.popleft()
            yield key, session, future.result()
    finally:
        # A failure (or Ctrl-C) ends the other threads' loops after their
        # current solve.
        stop.set()
        pool.shutdown(wait=True, cancel_futures=True)


def _solve_targets(session, objective, targets, tick, stop=None):
    """The solutions of one context's biased solves (see :func:`solve_contexts`)."""
    threaded = stop is not None
    solutions = []
    for target in targets:
        if threaded and stop.is_set():
            break  # another context failed: its error is what the caller gets
        try:
            result, values = session.solve(objective(target), release_gil=threaded)
        except BaseException:
            if threaded:
                stop.set()
            raise
        solutions.append(None if result is None else values)
        tick(1)
    return solutions
