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
"""

import numpy as np
import pyomo.environ as pyo
from pyomo.common.collections import ComponentMap


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
