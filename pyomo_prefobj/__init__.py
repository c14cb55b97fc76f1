"""pyomo_prefobj: learned objectives for Pyomo models, from pairwise preferences.

Add :class:`PreferenceObjective` to a ``ConcreteModel``, sample feasible
decisions, ask an oracle which of two it prefers, fit a context-conditioned
convex quadratic and make it the model's objective, solved with SCIP.

Public names are imported lazily, so that light entry points (the ``scip``
console script) do not pay for importing torch.
"""

import importlib
import logging

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())

_EXPORTS = {
    "PreferenceObjective": "component",
    "PreferenceObjectiveData": "component",
    "load_preference_objective": "component",
    "Candidate": "candidates",
    "Candidates": "candidates",
    "Pairs": "pairs",
    "ScoreOracle": "oracles",
    "ConsoleOracle": "oracles",
    "PreferenceLearner": "learning",
    "FitReport": "learning",
    "QuadraticCost": "quadratic",
    "SCIP_OPTIONS": "solver",
    "PersistentScip": "persistent",
    "RoundsResult": "rounds",
    "PreferenceObjectiveError": "errors",
    "DecisionError": "errors",
    "ContextError": "errors",
    "ModelError": "errors",
    "SolverUnavailableError": "errors",
    "NoFeasibleCandidateError": "errors",
    "OracleError": "errors",
    "PairsError": "errors",
    "LearningError": "errors",
    "NotFittedError": "errors",
    "FileFormatError": "errors",
    "ArgumentError": "errors",
    "StopAsking": "errors",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        module = importlib.import_module(f".{_EXPORTS[name]}", __name__)
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + __all__)
