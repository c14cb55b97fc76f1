"""SCIP access for the many solves the component makes itself.

Sampling solves one model hundreds of times with only the objective
changing, so it talks to PySCIPOpt directly and keeps SCIP's model between
solves; ``benchmarks/bench_core.py`` compares it with a bare PySCIPOpt solve
and with Pyomo's persistent SCIP interface.
"""

import logging
import os
import sysconfig

from pyomo.common.fileutils import Executable
from pyomo.common.collections import ComponentMap
from pyomo.core import Constraint, value
from pyomo.environ import SolverFactory
from pyomo.repn import generate_standard_repn

from .errors import ModelError, SolverUnavailableError

logger = logging.getLogger(__name__)

#: SCIP parameters that shorten solves of a learned objective without
#: changing its optimum (SCIP's default gap is kept); pass them yourself,
#: e.g. ``SolverFactory('scip').solve(m, options=SCIP_OPTIONS)``. On the
#: COVID-19 model (``benchmarks/bench_core.py``, ``docs/benchmarks.md``):
#: no restart of the root after reduced-cost fixing (SCIP would repeat its
#: cutting-plane rounds on the convex quadratic), and none of the primal
#: heuristics that solve NLPs or long LP sequences (MPEC, sub-NLP, locks),
#: which took most of the time left and made the slowest contexts; and
#: no aggregation separator (c-MIR, flow cover, knapsack cover), which
#: found no cut on the learned problem and took about a third of its
#: solve; and SoPlex's aggressive scaling of the LP (``lp/scaling`` 2), as
#: the LP of the coordinate rows (coefficients from 1e-7 to 1e-3) and of
#: hundreds of cuts on the quadratic ran into numerical trouble at some
#: contexts, where one solve took 20-80 times the median. SCIP still proves
#: the same optimum. The component never sets solver parameters itself.
SCIP_OPTIONS = {
    "presolving/maxrestarts": 0,
    "heuristics/mpec/freq": -1,
    "heuristics/subnlp/freq": -1,
    "heuristics/locks/freq": -1,
    "separating/aggregation/freq": -1,
    "lp/scaling": 2,
}


def register_scip_executable():
    """Point Pyomo's ``scip`` at this environment's console script if needed.

    ``pip install`` puts the ``scip`` console script (see
    :mod:`pyomo_prefobj.scip_shell`) into the environment's scripts folder,
    which is on ``PATH`` only while the environment is activated. When Pyomo
    finds no ``scip`` on ``PATH``, register that script so
    ``SolverFactory('scip')`` works either way; a ``scip`` on ``PATH``
    (a real SCIP included) is left alone.

    Returns:
        the path Pyomo uses for ``scip``, or ``None``.
    """
    executable = Executable("scip")
    if executable.available():
        return executable.path()
    candidate = os.path.join(sysconfig.get_path("scripts"), "scip")
    if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
        executable.set_path(candidate)
        return candidate
    return None


register_scip_executable()


class ScipSession:
    """Repeated solves of one Pyomo model's constraints directly in PySCIPOpt.

    The active linear and quadratic constraints are translated once (at the
    current Param values) by :meth:`rebuild`; each :meth:`minimize` then only
    sets a new objective. Pyomo's own SCIP interfaces turn every mutable Param
    into a fixed SCIP variable, which makes a Param-weighted objective
    nonlinear and many times slower (``benchmarks/bench_core.py``).

    Args:
        model: the Pyomo model (or block) whose constraints are solved.
        time_limit: seconds per solve, or ``None``.
        options: extra SCIP parameters, e.g. ``{"limits/gap": 1e-4}``.
        skip: predicate ``skip(constraint) -> bool`` for constraints to leave out.

    Raises:
        SolverUnavailableError: PySCIPOpt is missing or unusable.
    """

    def __init__(self, model, time_limit=None, options=None, skip=None):
        self.model = model
        self.skip = skip
        self.time_limit = time_limit
        self.options = dict(options or {})
        try:
            import pyscipopt
        except ImportError as exc:
            raise SolverUnavailableError(
                "SCIP is not available: install PySCIPOpt (pip install pyscipopt)"
            ) from exc
        if not bool(SolverFactory("scip_direct").available()):
            raise SolverUnavailableError(
                "SCIP is not available through PySCIPOpt; reinstall pyscipopt"
            )
        self._pyscipopt = pyscipopt
        self.scip = None
        self._vars = ComponentMap()

    def rebuild(self):
        """Translate the active constraints at the current Param values."""
        scip = self._pyscipopt.Model()
        scip.hideOutput()
        if self.time_limit is not None:
            scip.setParam("limits/time", float(self.time_limit))
        for name, setting in self.options.items():
            scip.setParam(name, setting)
        self.scip, self._vars = scip, ComponentMap()
        for con in self.model.component_data_objects(Constraint, active=True, descend_into=True):
            if self.skip is not None and self.skip(con):
                continue
            body = self.expression(con.body, what=f"constraint {con.name!r}")
            lower, upper = value(con.lower), value(con.upper)
            if con.equality:
                scip.addCons(body == upper)
                continue
            if lower is not None:
                scip.addCons(body >= lower)
            if upper is not None:
                scip.addCons(body <= upper)

    def variable(self, var):
        """The SCIP variable of Pyomo variable ``var`` (created on first use)."""
        found = self._vars.get(var)
        if found is None:
            if var.fixed:
                return var.value
            vtype = "B" if var.is_binary() else ("I" if var.is_integer() else "C")
            lb, ub = var.bounds
            found = self.scip.addVar(lb=lb, ub=ub, vtype=vtype)
            self._vars[var] = found
        return found

    def expression(self, expr, what="expression"):
        """Translate a linear or quadratic Pyomo expression to PySCIPOpt."""
        repn = generate_standard_repn(expr, quadratic=True, compute_values=True)
        if repn.nonlinear_expr is not None:
            raise ModelError(
                f"{what} is neither linear nor quadratic; the component's own "
                "solves support linear and quadratic models"
            )
        quicksum = self._pyscipopt.quicksum
        terms = quicksum(c * self.variable(v) for c, v in zip(repn.linear_coefs, repn.linear_vars))
        if repn.quadratic_vars:
            terms += quicksum(
                c * self.variable(a) * self.variable(b)
                for c, (a, b) in zip(repn.quadratic_coefs, repn.quadratic_vars)
            )
        return terms + value(repn.constant)

    def minimize(self, objective):
        """Minimize a PySCIPOpt expression over the constraints.

        A nonlinear (quadratic) objective goes into an epigraph constraint.
        The solution is loaded into the Pyomo variables.

        Returns:
            the objective value if a feasible solution was found, else ``None``.

        Raises:
            ModelError: SCIP reports the problem unbounded.
        """
        result, values = self.solve(objective)
        if result is not None:
            self.load(values)
        return result

    def solve(self, objective, release_gil=False):
        """:meth:`minimize` without touching the Pyomo model.

        Args:
            objective: a PySCIPOpt expression.
            release_gil: solve without Python's global interpreter lock, so
                that sessions in other threads solve at the same time (each
                session's SCIP model is its own; nothing else may use this
                session meanwhile).

        Returns:
            ``(objective value, values)``: the values of the session's
            variables (for :meth:`load`), or ``(None, None)`` where no
            feasible solution was found.

        Raises:
            ModelError: SCIP reports the problem unbounded.
        """
        scip = self.scip
        scip.freeTransform()
        epigraph = None
        if objective.degree() > 1:
            bound = scip.addVar(lb=None, ub=None)
            epigraph = scip.addCons(bound >= objective)
            objective = bound
        scip.setObjective(objective, "minimize")
        result = values = None
        try:
            if release_gil and hasattr(scip, "optimizeNogil"):
                scip.optimizeNogil()
            else:
                scip.optimize()
            status = scip.getStatus()
            if status != "unbounded" and scip.getNSols() > 0:
                solution = scip.getBestSol()
                values = [solution[scip_var] for scip_var in self._vars.values()]
                result = scip.getSolObjVal(solution)
        except Exception as exc:  # SCIP reports failures as several types
            logger.warning("SCIP failed: %s", exc)
            return None, None
        finally:
            if epigraph is not None:
                scip.freeTransform()
                scip.delCons(epigraph)
        if status == "userinterrupt":
            # SCIP caught Ctrl-C: stop the caller's loop of solves too.
            raise KeyboardInterrupt
        if status == "unbounded":
            # SCIP may hold a solution of an unbounded problem: an arbitrary
            # point of a ray, not an optimum.
            raise ModelError(
                "the objective is unbounded over the model's constraints (SCIP "
                "reports 'unbounded'); bound the decisions or add the missing constraints"
            )
        return result, values

    def load(self, values):
        """Set the Pyomo variables of this session to ``values`` (from :meth:`solve`)."""
        for var, number in zip(self._vars.keys(), values):
            var.set_value(number, skip_validation=True)
