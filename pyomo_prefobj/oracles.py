"""Oracles: who answers "which of these two decisions do you prefer?".

An oracle is any callable ``oracle(a, b)`` taking two
:class:`~pyomo_prefobj.candidates.Candidate` objects of the same context and
returning ``0`` (or ``"A"``) when ``a`` is preferred, ``1`` (or ``"B"``) when
``b`` is preferred, or ``None`` when it cannot tell (the pair is then
dropped). Raising :class:`~pyomo_prefobj.errors.StopAsking` ends ``ask``
early with the answers given so far.
"""

import inspect
import logging
import numbers

import numpy as np

from .candidates import Candidates
from .errors import OracleError, PairsError, StopAsking, warn_user
from .pairs import Pairs
from .progress import progress_bar

logger = logging.getLogger(__name__)

_ANSWERS = {0: 0, 1: 1, "a": 0, "b": 1}


def _normalize_answer(answer, oracle):
    if answer is None:
        return None
    key = answer.strip().lower() if isinstance(answer, str) else answer
    if isinstance(key, (bool, np.bool_)) or key not in _ANSWERS:
        raise OracleError(
            f"oracle {oracle!r} answered {answer!r}; a valid answer is 0 or 'A' "
            "(first preferred), 1 or 'B' (second preferred), or None (cannot tell)"
        )
    return _ANSWERS[key]


def _check_one_argument(score):
    """OracleError if ``score`` cannot be called with one argument (a
    ``Candidate``), e.g. a ``score(u, x0)``; callables whose signature
    Python cannot read pass."""
    try:
        inspect.signature(score).bind(None)
    except ValueError:  # no signature (some builtins)
        return
    except TypeError:
        raise OracleError(
            f"ScoreOracle's score is called with one Candidate (its .u, .context and "
            f".nominal_cost); {getattr(score, '__name__', score)!r} does not take one "
            "argument: wrap it, e.g. ScoreOracle(lambda c: cost(c.u, c.context))"
        ) from None


class ScoreOracle:
    """A simulated user: the candidate with the lower score is preferred.

    Args:
        score: callable ``score(candidate) -> float``; lower is better.
        flip: fraction of answers inverted at random, in ``[0, 1)``, to
            emulate inconsistent people.
        seed: seed of the generator that draws the flips.

    Equal scores give ``None`` (cannot tell).
    """

    def __init__(self, score, flip=0.0, seed=None):
        if not callable(score):
            raise OracleError(f"ScoreOracle needs a callable score; got {score!r}")
        if isinstance(flip, bool) or not isinstance(flip, numbers.Real) or not 0.0 <= flip < 1.0:
            raise OracleError(f"ScoreOracle flip must be a number in [0, 1); got {flip!r}")
        _check_one_argument(score)
        self.score = score
        self.flip = float(flip)
        self.seed = seed
        self._rng = np.random.default_rng(seed)

    def __repr__(self):
        return f"ScoreOracle(flip={self.flip}, seed={self.seed})"

    def __call__(self, a, b):
        raw = self.score(a), self.score(b)
        try:
            score_a, score_b = float(raw[0]), float(raw[1])
        except (TypeError, ValueError) as exc:
            raise OracleError(
                f"ScoreOracle score must return a number; got {raw[0]!r}, {raw[1]!r}"
            ) from exc
        if not (np.isfinite(score_a) and np.isfinite(score_b)):
            raise OracleError(f"ScoreOracle score returned {score_a!r}, {score_b!r}")
        if score_a == score_b:
            return None
        answer = 0 if score_a < score_b else 1
        if self.flip and self._rng.random() < self.flip:
            answer = 1 - answer
        return answer


class ConsoleOracle:
    """Ask a person in a terminal.

    Shows the context, the nominal cost of both decisions and a table of the
    decision values that differ, then reads ``A``, ``B``, or ``?`` / ``c``
    (cannot tell, as the web app's "can't tell"). ``q`` or the end of the
    input (Ctrl-D) stops asking: ``ask`` returns the pairs answered so far
    (:class:`~pyomo_prefobj.errors.StopAsking`).

    Args:
        max_rows: most differing decisions shown (largest differences first).
        input_function: reads one line (defaults to :func:`input`).
        print_function: writes one line (defaults to :func:`print`).
        tolerance: values closer than this count as equal.
    """

    def __init__(self, max_rows=20, input_function=input, print_function=print, tolerance=1e-6):
        self.max_rows = max_rows
        self.input_function = input_function
        self.print_function = print_function
        self.tolerance = tolerance

    def __call__(self, a, b):
        show = self.print_function
        show("")
        show(f"context: {np.array2string(a.context, precision=4)}")
        show(f"nominal cost   A: {a.nominal_cost:.6g}   B: {b.nominal_cost:.6g}")
        diff = np.abs(a.u - b.u)
        order = [i for i in np.argsort(-diff) if diff[i] > self.tolerance][: self.max_rows]
        width = max([len(a.names[i]) for i in order] + [8])
        show(f"{'decision':<{width}}  {'A':>12}  {'B':>12}")
        for i in order:
            show(f"{a.names[i]:<{width}}  {a.u[i]:>12.6g}  {b.u[i]:>12.6g}")
        hidden = int(np.sum(diff > self.tolerance)) - len(order)
        if hidden > 0:
            show(f"... and {hidden} more decisions differ")
        while True:
            try:
                reply = self.input_function("Prefer A, B, or ? (cannot tell; q stops): ")
            except EOFError:
                raise StopAsking("the input ended") from None
            reply = reply.strip().lower()
            if reply in ("a", "b"):
                return reply.upper()
            if reply in ("?", "c", ""):
                return None
            if reply in ("q", "quit"):
                raise StopAsking("q typed")
            show(f"'{reply}' is not an answer: type A, B, ? (cannot tell) or q (stop)")


def stopped(stop, asked, planned, answered):
    """After an oracle's :class:`StopAsking`: warn, or PairsError when nothing
    was answered yet."""
    if not answered:
        raise PairsError(f"asking stopped ({stop}) before any answer; no pairs to learn from") from None
    warn_user(f"asking stopped ({stop}) after {asked} of {planned} questions; "
              f"returning the {answered} pairs answered")


#: What to change when sampling gives too few distinct candidates.
SAMPLE_MORE = (
    "raise sample()'s bias_weight, or its bias_width: a binary or integer "
    "decision moves only when bias_width is above 0.5"
)


def draw_pairs(candidates, n_pairs, rng, warn=True):
    """Draw distinct unordered candidate pairs of equal context, spread evenly.

    Args:
        candidates: the candidate set.
        n_pairs: number of pairs wanted.
        rng: numpy generator.
        warn: warn (``UserWarning``) when fewer than ``n_pairs`` pairs exist.

    Returns:
        array of shape ``(m, 2)`` of candidate indices, ``m <= n_pairs``
        (fewer when the candidates allow fewer distinct pairs).
    """
    pools = []
    for members in candidates.groups():
        i, j = np.triu_indices(len(members), k=1)
        if len(i):
            pools.append(np.column_stack([members[i], members[j]]))
    if not pools:
        raise PairsError(
            "no context has two distinct candidates; sample again with more "
            f"solves per context or a stronger bias ({SAMPLE_MORE})"
        )
    total = sum(len(p) for p in pools)
    if n_pairs >= total:
        if n_pairs > total and warn:
            warn_user(
                f"only {total} distinct same-context pairs exist among these "
                f"candidates; asking all {total} instead of {n_pairs}",
            )
        chosen = np.vstack(pools)
        return chosen[rng.permutation(len(chosen))]
    # Round-robin over contexts so each gets an (almost) equal share.
    shuffled = [p[rng.permutation(len(p))] for p in pools]
    order = rng.permutation(len(shuffled))
    chosen, depth = [], 0
    while len(chosen) < n_pairs:
        for g in order:
            if depth < len(shuffled[g]) and len(chosen) < n_pairs:
                chosen.append(shuffled[g][depth])
        depth += 1
    return np.array(chosen)


def is_number(value):
    """A finite real number (not a bool)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and bool(np.isfinite(value))


def check_count(value, name, error=PairsError):
    """``value`` as an int; ``error`` unless it is a positive integer (not a
    bool, a float or a string)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise error(f"{name} must be a positive integer; got {value!r}")
    return int(value)


def ask(candidates, n_pairs, oracle, seed=None, progress=True, rater=""):
    """Ask ``oracle`` about ``n_pairs`` random pairs of same-context candidates.

    Args:
        candidates: a :class:`Candidates` set.
        n_pairs: number of questions.
        oracle: callable ``oracle(a, b)``, see the module docstring.
        seed: seed of the pair draw (and of the A/B order shown).
        progress: show a progress bar.
        rater: name stored with every answer.

    Returns:
        Pairs: one pair per answered question, preferred decision first;
        the questions the oracle could not tell apart (``None``, or a tie of
        :class:`ScoreOracle`) are left out, so it may hold fewer than
        ``n_pairs`` (the count is logged at INFO level).

    Raises:
        OracleError: an answer is not a valid choice.
        PairsError: no context has two candidates.
    """
    if not isinstance(candidates, Candidates):
        raise PairsError(f"ask needs a Candidates set; got {type(candidates).__name__}")
    n_pairs = check_count(n_pairs, "n_pairs")
    if not callable(oracle):
        raise OracleError(f"the oracle must be callable; got {oracle!r}")
    rng = np.random.default_rng(seed)
    chosen = draw_pairs(candidates, n_pairs, rng)
    swap = rng.random(len(chosen)) < 0.5  # show each side first equally often
    rows, asked = [], 0
    for (i, j), flip in zip(progress_bar(chosen, progress, desc="asking"), swap):
        first, second = (j, i) if flip else (i, j)
        try:
            answer = oracle(candidates[first], candidates[second])
        except StopAsking as stop:
            stopped(stop, asked, len(chosen), len(rows))
            break
        asked += 1
        answer = _normalize_answer(answer, oracle)
        if answer is None:
            continue
        rows.append((first, second) if answer == 0 else (second, first))
    if not rows:
        raise PairsError("the oracle could not tell any pair apart; no pairs to learn from")
    rows = np.array(rows)
    logger.info("asked %d pairs, %d answered", asked, len(rows))
    return Pairs.from_candidates(candidates, rows[:, 0], rows[:, 1], rater=str(rater))
