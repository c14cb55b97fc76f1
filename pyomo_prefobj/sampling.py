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
solves: ``(u - b)^2 / s^2 = u^2 / s^2 - 2 b u / s^2 + b^2 / s^2``, with
``u^2 = u`` for a binary and an epigraph variable ``e_i >= (u_i / s_i)^2``
otherwise (one small convex constraint per decision, which SCIP handles far
better than a single quadratic objective row).
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


def build_bias_block(block, decisions, nominal, scales, reference, weight):
    """Fill ``block`` with the biased objective; return the target setter.

    Args:
        block: an empty Block on the model.
        decisions: list of ``d`` VarData.
        nominal: the nominal ObjectiveData.
        scales: ``s``, shape ``(d,)``.
        reference: ``J_ref``.
        weight: ``lambda``.

    Returns:
        ``set_target(b)``, which pushes a target ``b`` of shape ``(d,)`` into
        the objective's mutable Params.
    """
    d = len(decisions)
    binary = [i for i, v in enumerate(decisions) if v.is_binary()]
    squared = [i for i, v in enumerate(decisions) if not v.is_binary()]
    per_term = weight / d
    sign = 1.0 if nominal.sense == pyo.minimize else -1.0
    block.e = pyo.Var(squared, bounds=(0, None))
    block.epigraph = pyo.Constraint(
        squared, rule=lambda b, i: b.e[i] >= (decisions[i] / float(scales[i])) ** 2
    )
    block.linear = pyo.Param(range(d), mutable=True, initialize=0.0)
    block.constant = pyo.Param(mutable=True, initialize=0.0)
    block.objective = pyo.Objective(
        expr=(sign / reference) * nominal.expr
        + per_term * (sum(decisions[i] for i in binary) + sum(block.e[i] for i in squared))
        + sum(block.linear[i] * decisions[i] for i in range(d))
        + block.constant
    )
    inverse_square = 1.0 / scales ** 2

    def set_target(target):
        coefficients = -2.0 * per_term * target * inverse_square
        for i in range(d):
            block.linear[i] = float(coefficients[i])
        block.constant = float(per_term * np.sum(target ** 2 * inverse_square))

    return set_target
