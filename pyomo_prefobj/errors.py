"""Exception types raised by pyomo_prefobj.

Every error the package raises on purpose derives from
:class:`PreferenceObjectiveError` and from the builtin exception that fits
(``ValueError`` for bad input, ``RuntimeError`` for a failed solve), so
callers can catch either.
"""


class PreferenceObjectiveError(Exception):
    """Base class of every error raised by pyomo_prefobj."""


class DecisionError(PreferenceObjectiveError, ValueError):
    """The decision variables given to a component are unusable."""


class ContextError(PreferenceObjectiveError, ValueError):
    """A context Param, or a context value, is unusable."""


class ModelError(PreferenceObjectiveError, ValueError):
    """The Pyomo model is not in a state the operation needs."""


class SolverUnavailableError(PreferenceObjectiveError, RuntimeError):
    """No working SCIP could be found."""


class NoFeasibleCandidateError(PreferenceObjectiveError, RuntimeError):
    """Sampling found no feasible decision in any context."""


class OracleError(PreferenceObjectiveError, ValueError):
    """An oracle answered something that is not a valid choice."""


class PairsError(PreferenceObjectiveError, ValueError):
    """A preference-pair dataset is malformed."""


class LearningError(PreferenceObjectiveError, ValueError):
    """Training options or training data are unusable."""


class NotFittedError(PreferenceObjectiveError, RuntimeError):
    """A learned objective was requested before ``fit``."""


class FileFormatError(PreferenceObjectiveError, ValueError):
    """A saved file is corrupted, of another kind, or of another version."""
