"""Exception types raised by pyomo_prefobj.

Every error the package raises on purpose derives from
:class:`PreferenceObjectiveError` and from the builtin exception that fits
(``ValueError`` for bad input, ``RuntimeError`` for a failed solve,
``TypeError`` for an unknown keyword argument), so
callers can catch either. :func:`warn_user` points the package's
warnings at the caller's line.
"""

import sys
import warnings


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


class ArgumentError(PreferenceObjectiveError, TypeError):
    """A call got a keyword argument it does not take."""


class StopAsking(Exception):
    """Raised by an oracle to end :meth:`ask` early, keeping the answers so far.

    :class:`~pyomo_prefobj.oracles.ConsoleOracle` raises it when the person
    types ``q`` or the input ends (Ctrl-D). Not an error: ``ask`` returns
    the pairs answered before it, with a warning.
    """


_INTERNAL = ("pyomo_prefobj.", "pyomo.")  # Pyomo's frames too: its block calls ours


def warn_user(message, category=UserWarning):
    """``warnings.warn`` at the first caller outside pyomo_prefobj.

    A warning raised several calls deep (``m.pref.ask`` -> ``oracles.ask``
    -> ``draw_pairs``) then names the user's line, whichever public
    function (or Pyomo method calling the component) it came through.
    """
    frame, level = sys._getframe(1), 2
    while frame is not None and frame.f_globals.get("__name__", "").startswith(_INTERNAL):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)
