"""The decision the simulated user likes best: minimize the composite cost.

For a context ``x0`` this solves, over the feasible set of the nominal model
(:func:`examples.covid19.model.build_model`),

.. math::

    \\min_{u = (x, y)} \\; \\phi(u, x_0) = R(f(u) - 0.1 x_0)
        + w_J \\, J(u) / J^*

(see :mod:`examples.covid19.user`) as a nonconvex mixed-integer polynomial
program with SCIP, through PySCIPOpt:

* The linear constraints and the nominal cost ``J`` are read from the Pyomo
  model (linear standard representation), so the model stays the only place
  where the feasible set is written down.
* Shifted features ``g_k = f_k(u) - 0.1 x0`` are auxiliary continuous
  variables bounded by the feature ranges over the feasible set
  (:func:`feature_bounds`; e.g. feature 5 is exactly 1); features 1, 2, 3
  and 5 are linear in ``u``
  (:func:`~examples.covid19.user.linear_feature_weights`).
* The largest assignment ``t = max_{c,f} x_cf`` (feature 4 is
  ``t / max_c D_c``) is an epigraph with one selector binary per
  assignment:

  .. math::

      t \\ge x_{cf}, \\quad t \\le x_{cf} + M (1 - b_{cf}), \\quad
      \\sum_{c,f} b_{cf} = 1, \\quad b_{cf} \\in \\{0, 1\\},

  with ``M = max_{c,f} min(D_c, C_f)`` (300): every feasible ``x_cf`` lies
  in ``[0, min(D_c, C_f)]``, so ``t - x_cf <= M`` and the constraint is
  slack when ``b_cf = 0``; it forces ``t <= x_cf`` for the selected one.
* The Rosenbrock polynomial (degree 4) is split so that its only nonconvex
  parts are the squares ``s_k = g_k^2`` (k = 1..4): with residuals
  ``e_k = g_{k+1} - s_k``, the epigraph
  ``r >= sum_k 100 e_k^2 + (1 - g_k)^2`` is convex, a much tighter
  relaxation than the expanded quartic. The objective
  ``min r + w_J J(u) / J*`` is linear.

SCIP starts from a known feasible decision (by default the nominal optimum),
so the result is never worse than it; within the time limit it returns its
best decision, a dual (lower) bound on ``phi`` and the relative gap.
"""

import dataclasses
import logging
import math

import numpy as np
import pyomo.environ as pyo
import pyscipopt
from pyomo.repn import generate_standard_repn

from examples.covid19 import user
from examples.covid19.model import (
    NOMINAL_OPTIMUM,
    build_model,
    decision_vars,
    decision_vector,
    load_instance,
)

logger = logging.getLogger(__name__)
logger.addHandler(logging.NullHandler())


@dataclasses.dataclass(frozen=True, eq=False)
class CompositeSolution:
    """Result of :func:`best_composite`.

    Attributes:
        x0: The context solved for.
        phi: Composite cost of ``decision``, recomputed with
            :func:`examples.covid19.user.composite`.
        decision: Best decision found, shape ``(216,)`` (layout of
            :func:`examples.covid19.model.decision_vars`).
        acceptability: Its Rosenbrock term ``R``.
        nominal_cost: Its nominal cost ``J`` in $.
        dual_bound: SCIP's lower bound on the minimal ``phi``.
        gap: SCIP's relative gap ``|primal - dual| / min(|primal|, |dual|)``.
        optimal: True when SCIP proved ``decision`` optimal (gap closed).
        status: SCIP's status string (``"optimal"``, ``"timelimit"``, ...).
        solve_time: SCIP's solving time in seconds.
    """

    x0: float
    phi: float
    decision: np.ndarray
    acceptability: float
    nominal_cost: float
    dual_bound: float
    gap: float
    optimal: bool
    status: str
    solve_time: float


def nominal_decision(instance=None):
    """Solve the nominal MILP (minimize ``J``) with SCIP.

    Args:
        instance: The data; defaults to the shipped instance.

    Returns:
        np.ndarray: The nominal optimal decision, shape ``(216,)``.
    """
    m = build_model(instance)
    pyo.SolverFactory("scip_direct").solve(m)
    return decision_vector(m)


FEATURE_BOUND_SLACK = 1e-7
"""Feature ranges are widened by this much against solver round-off."""


def feature_bounds(instance=None):
    """Range of each unshifted feature over the feasible set.

    Features 1, 2, 3 and 5 are minimized and maximized over the nominal
    model's feasible set (8 small MILPs). For the largest assignment
    ``t = max x_cf`` the lower end minimizes ``t`` subject to
    ``t >= x_cf``; the upper end is ``max_{c,f} min(D_c, C_f)``. Each
    range is widened by :data:`FEATURE_BOUND_SLACK`.

    Args:
        instance: The data; defaults to the shipped instance.

    Returns:
        np.ndarray: ``(5, 2)`` array of ``(lower, upper)`` per feature.
    """
    instance = load_instance() if instance is None else instance
    weights = user.linear_feature_weights(instance)
    normalizer = user.max_assignment_normalizer(instance)
    m = build_model(instance)
    m.cost.deactivate()
    variables = [v for component in decision_vars(m) for v in component.values()]
    m.largest_assignment = pyo.Var(domain=pyo.NonNegativeReals)
    m.largest_assignment_epigraph = pyo.Constraint(
        list(m.x.keys()), rule=lambda m, c, f: m.largest_assignment >= m.x[c, f]
    )
    m.largest_assignment_epigraph.deactivate()
    solver = pyo.SolverFactory("scip_direct")

    ranges = np.zeros((user.N_FEATURES, 2))
    for k in range(user.N_FEATURES):
        if k == user.MAX_ASSIGNMENT_FEATURE:
            m.largest_assignment_epigraph.activate()
            m.feature = pyo.Objective(expr=m.largest_assignment / normalizer)
            solver.solve(m)
            upper = np.minimum.outer(instance.demand, instance.capacity).max()
            ranges[k] = pyo.value(m.feature), upper / normalizer
            m.largest_assignment_epigraph.deactivate()
            m.del_component(m.feature)
            continue
        feature = sum(
            float(weights[k, j]) * variables[j] for j in np.flatnonzero(weights[k])
        )
        for end, sense in enumerate((pyo.minimize, pyo.maximize)):
            m.feature = pyo.Objective(expr=feature, sense=sense)
            solver.solve(m)
            ranges[k, end] = pyo.value(m.feature)
            m.del_component(m.feature)
    ranges[:, 0] -= FEATURE_BOUND_SLACK
    ranges[:, 1] += FEATURE_BOUND_SLACK
    return ranges


def _linear_expression(expression, scip_variables, what):
    """Translate a linear Pyomo expression into a PySCIPOpt one."""
    repn = generate_standard_repn(expression, compute_values=True)
    if not repn.is_linear():
        raise ValueError(
            f"best_composite: {what} is not linear; only linear constraints "
            "and a linear nominal objective can be translated."
        )
    terms = []
    for variable, coefficient in zip(repn.linear_vars, repn.linear_coefs):
        if id(variable) not in scip_variables:
            raise ValueError(
                f"best_composite: {what} uses {variable.name}, which is not "
                "among model.decision_vars(m)."
            )
        terms.append(coefficient * scip_variables[id(variable)])
    return pyscipopt.quicksum(terms) + repn.constant


def _variable_type(variable):
    if variable.is_binary():
        return "B"
    if variable.is_integer():
        return "I"
    return "C"


def best_composite(
    instance=None,
    x0=0.0,
    time_limit=60.0,
    j_weight=1.0,
    initial_decision=None,
    verbose=False,
):
    """Minimize the composite cost ``phi(u, x0)`` over the feasible set.

    Args:
        instance: The data; defaults to the shipped instance.
        x0: Context in ``[0, 1]``.
        time_limit: SCIP time limit in seconds.
        j_weight: Weight ``w_J`` of ``J / NOMINAL_OPTIMUM`` in ``phi``.
        initial_decision: A feasible decision, shape ``(216,)``, given to
            SCIP as a starting solution; ``None`` solves the nominal MILP and
            starts from its optimum.
        verbose: Show SCIP's log.

    Returns:
        CompositeSolution: The best decision found with its ``phi``, SCIP's
        dual bound and gap, and whether optimality was proven.
    """
    instance = load_instance() if instance is None else instance
    x0 = float(user.check_context(x0))
    if initial_decision is None:
        initial_decision = nominal_decision(instance)

    m = build_model(instance)
    m.x0.set_value(x0)
    solver = pyscipopt.Model("covid19_best_composite")
    if not verbose:
        solver.hideOutput()
    solver.setParam("limits/time", float(time_limit))

    # Decision variables, in decision-vector order.
    pyomo_variables = [v for component in decision_vars(m) for v in component.values()]
    decision = []
    scip_variables = {}
    for variable in pyomo_variables:
        lower, upper = variable.bounds
        scip_variable = solver.addVar(
            name=variable.name, vtype=_variable_type(variable), lb=lower, ub=upper
        )
        decision.append(scip_variable)
        scip_variables[id(variable)] = scip_variable

    # The model's constraints (all linear).
    for constraint in m.component_data_objects(pyo.Constraint, active=True):
        body = _linear_expression(constraint.body, scip_variables, constraint.name)
        if constraint.equality:
            solver.addCons(body == constraint.ub, name=constraint.name)
            continue
        if constraint.lb is not None:
            solver.addCons(body >= constraint.lb, name=constraint.name + "_lower")
        if constraint.ub is not None:
            solver.addCons(body <= constraint.ub, name=constraint.name + "_upper")
    nominal_cost = _linear_expression(m.cost.expr, scip_variables, "m.cost")

    # Largest assignment t = max x_cf: epigraph plus one selector binary each.
    n_assignments = instance.n_assignments
    big_m = float(np.minimum.outer(instance.demand, instance.capacity).max())
    largest = solver.addVar(name="largest_assignment", lb=0.0, ub=big_m)
    selectors = []
    for position in range(n_assignments):
        assignment = decision[position]
        selector = solver.addVar(name=f"select_{position}", vtype="B")
        selectors.append(selector)
        solver.addCons(largest >= assignment)
        solver.addCons(largest <= assignment + big_m * (1 - selector))
    solver.addCons(pyscipopt.quicksum(selectors) == 1)

    # Shifted features g_k = f_k(u) - 0.1 x0, bounded by the feature ranges.
    weights = user.linear_feature_weights(instance)
    normalizer = user.max_assignment_normalizer(instance)
    ranges = feature_bounds(instance)
    shift = user.CONTEXT_SHIFT * x0
    shifted = []
    for k in range(user.N_FEATURES):
        if k == user.MAX_ASSIGNMENT_FEATURE:
            feature = largest / normalizer
        else:
            feature = pyscipopt.quicksum(
                float(weights[k, j]) * decision[j] for j in np.flatnonzero(weights[k])
            )
        g = solver.addVar(
            name=f"shifted_feature_{k + 1}",
            lb=ranges[k, 0] - shift,
            ub=ranges[k, 1] - shift,
        )
        solver.addCons(g == feature - shift)
        shifted.append(g)

    # Rosenbrock with squares s_k = g_k^2 and residuals e_k = g_{k+1} - s_k:
    # r >= sum_k 100 e_k^2 + (1 - g_k)^2 is then convex, the only nonconvex
    # constraints being s_k = g_k^2 (a much tighter relaxation than the
    # expanded quartic).
    squares, residuals = [], []
    for k in range(user.N_FEATURES - 1):
        low, high = ranges[k] - shift
        square_high = max(low**2, high**2)
        square_low = 0.0 if low <= 0.0 <= high else min(low**2, high**2)
        square = solver.addVar(name=f"square_{k + 1}", lb=square_low, ub=square_high)
        solver.addCons(square == shifted[k] ** 2)
        residual = solver.addVar(name=f"residual_{k + 1}", lb=None, ub=None)
        solver.addCons(residual == shifted[k + 1] - square)
        squares.append(square)
        residuals.append(residual)
    rosenbrock_term = solver.addVar(name="rosenbrock", lb=0.0)
    solver.addCons(
        rosenbrock_term
        >= pyscipopt.quicksum(
            100.0 * residuals[k] ** 2 + (1.0 - shifted[k]) ** 2
            for k in range(user.N_FEATURES - 1)
        )
    )
    solver.setObjective(
        rosenbrock_term + (j_weight / NOMINAL_OPTIMUM) * nominal_cost, "minimize"
    )

    # Starting solution: the given decision and the auxiliaries it implies.
    start = np.asarray(initial_decision, dtype=float)
    start_features = user.features_many(start, instance) - shift
    start_largest = int(np.argmax(start[:n_assignments]))
    solution = solver.createSol()
    for variable, value in zip(decision, start):
        solver.setSolVal(solution, variable, float(value))
    solver.setSolVal(solution, largest, float(start[start_largest]))
    for position, selector in enumerate(selectors):
        solver.setSolVal(solution, selector, float(position == start_largest))
    for g, value in zip(shifted, start_features):
        solver.setSolVal(solution, g, float(value))
    for k, (square, residual) in enumerate(zip(squares, residuals)):
        solver.setSolVal(solution, square, float(start_features[k] ** 2))
        solver.setSolVal(
            solution, residual, float(start_features[k + 1] - start_features[k] ** 2)
        )
    solver.setSolVal(
        solution, rosenbrock_term, float(user.rosenbrock(start_features)) * (1 + 1e-12)
    )
    if not solver.addSol(solution, free=True):
        logger.warning("best_composite: SCIP rejected the starting decision.")

    solver.optimize()

    status = solver.getStatus()
    if status == "userinterrupt":  # SCIP caught Ctrl-C
        raise KeyboardInterrupt
    if solver.getNSols() == 0:
        raise RuntimeError(
            f"best_composite: SCIP found no feasible decision (status {status!r})."
        )
    best = solver.getBestSol()
    values = np.array([solver.getSolVal(best, variable) for variable in decision])
    # Remove solver noise: binaries to 0/1, assignments nonnegative.
    n_decisions = instance.n_decisions
    values[n_assignments:n_decisions] = np.round(values[n_assignments:n_decisions])
    values[:n_assignments] = np.maximum(values[:n_assignments], 0.0)

    acceptability = float(user.acceptability_cost(values, x0, instance))
    cost = float(user.nominal_cost(values, instance))
    dual_bound = solver.getDualbound()
    result = CompositeSolution(
        x0=x0,
        phi=acceptability + j_weight * cost / NOMINAL_OPTIMUM,
        decision=values,
        acceptability=acceptability,
        nominal_cost=cost,
        dual_bound=dual_bound if abs(dual_bound) < solver.infinity() else -math.inf,
        gap=solver.getGap(),
        optimal=status == "optimal",
        status=status,
        solve_time=solver.getSolvingTime(),
    )
    logger.info(
        "best_composite x0=%g: phi=%g, dual bound %g, gap %g, status %s",
        x0,
        result.phi,
        result.dual_bound,
        result.gap,
        status,
    )
    return result
