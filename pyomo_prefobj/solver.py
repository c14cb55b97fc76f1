"""SCIP access for the many solves the component makes itself.

Sampling solves one model hundreds of times with only parameter values and
the objective changing, so it goes through Pyomo's persistent SCIP
interface (``scip_persistent``, over PySCIPOpt), which keeps SCIP's copy of
the model between solves; ``benchmarks/bench_core.py`` compares it with a
bare PySCIPOpt solve and with the ``.nl`` route of ``SolverFactory('scip')``.
"""

import logging

from pyomo.contrib.solver.common.factory import SolverFactory
from pyomo.contrib.solver.common.results import SolutionStatus

from .errors import SolverUnavailableError

logger = logging.getLogger(__name__)

FEASIBLE = (SolutionStatus.optimal, SolutionStatus.feasible)


class ScipSession:
    """Repeated solves of one Pyomo model with SCIP, keeping SCIP's model.

    Args:
        model: the Pyomo model (or block) to solve.
        time_limit: seconds per solve, or ``None``.
        options: extra SCIP parameters, e.g. ``{"limits/gap": 1e-4}``.

    Raises:
        SolverUnavailableError: PySCIPOpt is missing or unusable.
    """

    def __init__(self, model, time_limit=None, options=None):
        self.model = model
        self.time_limit = time_limit
        self.options = dict(options or {})
        try:
            self._solver = SolverFactory("scip_persistent")
            available = bool(self._solver.available())
        except Exception as exc:  # a broken install may fail in many ways
            raise SolverUnavailableError(f"SCIP is not usable through PySCIPOpt: {exc}") from exc
        if not available:
            raise SolverUnavailableError(
                "SCIP is not available: install PySCIPOpt (pip install pyscipopt)"
            )

    def solve(self):
        """Solve and load the solution into the model's variables.

        Returns:
            the objective value if a feasible solution was found (and loaded),
            else ``None``.
        """
        config = {
            "load_solutions": False,
            "raise_exception_on_nonoptimal_result": False,
            "solver_options": self.options,
        }
        if self.time_limit is not None:
            config["time_limit"] = self.time_limit
        try:
            results = self._solver.solve(self.model, **config)
        except Exception as exc:  # SCIP errors come as several types
            logger.warning("SCIP failed: %s", exc)
            return None
        if results.solution_status not in FEASIBLE:
            return None
        results.solution_loader.load_vars()
        return results.incumbent_objective
