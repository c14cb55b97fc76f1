"""A persistent SCIP interface that hands SCIP a linear objective directly.

Pyomo's ``scip_persistent`` (``pyomo.contrib.solver``) always minimizes an
auxiliary variable ``t`` with one row ``t >= objective``, because SCIP's
objective must be linear and Pyomo's may not be. For a linear objective
that row hides the objective from SCIP: its coefficients no longer reach
the variables, so reduced-cost fixing, objective propagation and
pseudo-cost branching work through one free variable and one dense row.

The learned objective's compact form (``activate``, the default) is linear
in the auxiliary variables (``1/(2c^2) e + qz' z``, the quadratic sits in a
constraint), and so are the nominal objectives of most models. On the
COVID-19 model SCIP solved the learned objective with the span penalty in
about half the time with the objective passed directly
(``benchmarks/bench_covid19.py``, ``docs/benchmarks.md``).

::

    from pyomo_prefobj import PersistentScip, SCIP_OPTIONS

    solver = PersistentScip()
    for context in contexts:
        m.pref.activate(context)
        solver.solve(m, solver_options=SCIP_OPTIONS)

Everything else is Pyomo's ``scip_persistent``: the same options, results
and incremental updates. A nonlinear objective still goes through Pyomo's
auxiliary variable.

Warm starts: with ``solve(..., warmstart_discrete_vars=True)`` SCIP gets
the model's current values of every variable as one complete solution,
where every variable has a value; ``activate`` gives the learned block's
variables the values the current decision implies, so after a solve at one
context the next context starts from that decision. (Pyomo's own interface
passes only the discrete variables, as a partial solution, and SCIP keeps
at most ``limits/maxorigsol`` (10) of those in a model that lives across
solves: the eleventh failed. Where a value is missing, this class passes a
partial solution too, and skips the start with a warning once SCIP's limit
is reached.) On the COVID-19 model a start from the previous context's
decision cut the median learned solve by 12-43% in six benchmark runs
(``benchmarks/bench_scip_options.py``).

SCIP runs without Python's global interpreter lock. Pyomo reads SCIP's log
through a pipe in a Python thread while SCIP solves; with the lock held
during the solve, a log larger than the pipe's buffer (64 KiB on Linux)
blocked SCIP's next write forever. A persistent model reaches that size
easily: after the model changes, SCIP re-checks the solutions it kept from
the last solve and prints every violated row of each one in full (on the
COVID-19 model, a solve of the nominal objective followed by one of the
learned objective printed 80 KiB and hung Pyomo's ``scip_persistent``).
This class therefore sets SCIP's ``misc/printreason`` to false before
each solve (that re-check then prints nothing; on the COVID-19 model the
log of a nominal solve and three learned solves shrank from 83 KiB to
18 KiB); ``solver_options={"misc/printreason": True}`` brings the
messages back.
"""

import logging

from pyomo.core.base.objective import maximize
from pyomo.core.expr.visitor import value

try:
    from pyomo.contrib.solver.solvers.scip.scip_persistent import ScipPersistent
except ImportError as exc:  # Pyomo before its contrib SCIP interfaces
    raise ImportError(
        "pyomo_prefobj.PersistentScip needs Pyomo's persistent SCIP interface "
        "(pyomo.contrib.solver, Pyomo >= 6.10); upgrade Pyomo: pip install -U pyomo"
    ) from exc


logger = logging.getLogger(__name__)


class PersistentScip(ScipPersistent):
    """Pyomo's ``scip_persistent`` with a linear objective set as SCIP's objective.

    Use it as Pyomo's persistent interface (``solve(model, **options)``);
    the translation of a linear objective and warm starts
    (``warmstart_discrete_vars=True``: every variable's current value, see
    the module's documentation) differ.
    """

    _partial_starts = 0
    """Partial starting solutions handed to the current SCIP model."""

    def _clear(self):
        super()._clear()
        self._partial_starts = 0

    def _mipstart(self):
        self._check_reopt()  # SCIP takes new solutions only before its next solve
        scip = self._solver_model
        values = [(scip_var, var.value) for var, scip_var in self._pyomo_var_to_solver_var_map.items()]
        # Mutable Params are fixed SCIP variables; Pyomo's objective row has its own.
        values += [(scip_var, value(param))
                   for param, scip_var in self._pyomo_param_to_solver_param_map.items()]
        if self._obj_con is not None:
            values.append((self._obj_var, value(self._objective.expr, exception=False)))
        if all(number is not None for _, number in values):
            solution = scip.createSol()
            for scip_var, number in values:
                scip.setSolVal(solution, scip_var, number)
            scip.addSol(solution, free=True)  # SCIP checks it and drops it if infeasible
            return
        if self._partial_starts >= scip.getParam("limits/maxorigsol"):
            logger.warning("PersistentScip: no warm start; SCIP keeps at most %d partial "
                           "starting solutions in one model (give every variable a value)",
                           self._partial_starts)
            return
        solution = scip.createPartialSol()
        for var, scip_var in self._pyomo_var_to_solver_var_map.items():
            if var.is_integer() and var.value is not None:
                scip.setSolVal(solution, scip_var, var.value)
        scip.addSol(solution, free=True)
        self._partial_starts += 1

    def _create_solver_model(self, pyomo_model, config):
        scip_model, solution_loader, has_objective = super()._create_solver_model(pyomo_model, config)
        # Called at every solve, before the solve's own options are set.
        scip_model.setParam("misc/printreason", False)
        return _WithoutGil(scip_model), solution_loader, has_objective

    def _set_objective(self, obj):
        expression = None if obj is None else self._expr_visitor.walk_expression(obj.expr)
        if not _is_linear(expression):  # no objective, a constant or a nonlinear one
            super()._set_objective(obj)
            return
        if self._obj_con is not None:  # the last objective went through Pyomo's row
            self._solver_model.delCons(self._obj_con)
            self._obj_con = None
        sense = "maximize" if obj.sense == maximize else "minimize"
        # clear=True also zeroes the auxiliary variable's coefficient and the
        # offset of an earlier objective.
        self._solver_model.setObjective(expression, sense=sense, clear=True)
        self._objective = obj


class _WithoutGil:
    """A PySCIPOpt model whose ``optimize`` releases Python's lock.

    Pyomo's solve calls ``optimize`` on the model its interface returns and
    everything else as on the model itself. The interface adds no Python
    callbacks to SCIP, so nothing in the solve needs the lock.
    """

    def __init__(self, scip_model):
        self._scip_model = scip_model

    def optimize(self):
        self._scip_model.optimizeNogil()

    def __getattr__(self, name):
        return getattr(self._scip_model, name)


def _is_linear(expression):
    """Whether ``expression`` is a PySCIPOpt expression of degree 1 or 0."""
    degree = getattr(expression, "degree", None)
    return degree is not None and degree() <= 1
