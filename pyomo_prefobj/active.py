"""Asking what is worth asking: pair selection by ensemble disagreement.

An :class:`EnsembleLearner` fits several :class:`PreferenceLearner` members,
each on a bootstrap resample of the pairs with its own seed, all in the same
PCA basis. For a candidate pair ``(A, B)`` at context ``x0`` member ``m``
says ``P_m(A preferred) = sigmoid((f_m(B) - f_m(A)) / margin)``; the
*disagreement* is the standard deviation of ``P_m`` over the members. The
next questions are the pairs the members disagree on most (query by
committee): answers there move the fit most, while pairs every member
already orders alike teach little.

:func:`ask_active` runs the loop with an oracle: a few random pairs first,
then batches of the most disputed pairs (spread over the candidates: a
batch uses each candidate once while it can), refitting (warm-started)
after each batch. :class:`ActiveSelector` does the same for the web app: it
picks each rater's next query from the open ones and refits in a background
thread as answers arrive, never blocking a request.
"""

import logging
import threading

import numpy as np

from .candidates import Candidates
from .errors import LearningError, NotFittedError, PairsError, StopAsking
from .learning import PreferenceLearner
from .oracles import _normalize_answer, check_count, draw_pairs, stopped
from .pairs import Pairs
from .progress import progress_bar

logger = logging.getLogger(__name__)


class EnsembleLearner:
    """Several preference learners on bootstrap resamples of the pairs.

    Args:
        n_members: ensemble size.
        seed: members use seeds ``seed, seed + 1, ...``; also seeds the resamples.
        bootstrap: resample the pairs with replacement for each member.
        **learner_options: :class:`PreferenceLearner` hyperparameters.
    """

    def __init__(self, n_members=5, seed=0, bootstrap=True, **learner_options):
        if isinstance(n_members, bool) or not isinstance(n_members, (int, np.integer)) or n_members < 2:
            raise LearningError(f"n_members must be an integer >= 2; got {n_members!r}")
        self.n_members = int(n_members)
        self.seed = seed
        self.bootstrap = bootstrap
        self.learner_options = learner_options
        # Checked now, not at the first fit: ask_active asks its first
        # questions (a person's answers) before it fits.
        try:
            probe = PreferenceLearner(seed=seed, **learner_options)
        except TypeError as exc:
            raise LearningError(f"unknown learner option: {exc}") from exc
        probe.check_options()

    def fit(self, pairs, decisions=None, warm_start=False):
        """Fit every member and return ``self``.

        Args:
            pairs: :class:`Pairs`.
            decisions: array ``(m, d)`` giving the shared PCA basis.
            warm_start: start each member from its previous fit.
        """
        if warm_start and not hasattr(self, "members_"):
            raise NotFittedError("warm_start=True needs an earlier fit of this ensemble")
        rng = np.random.default_rng(self.seed)
        options = dict(self.learner_options)
        options.setdefault("progress", False)
        if decisions is None:
            # Every member's PCA basis from the same decisions (not its
            # resample's), so that all members share one basis.
            decisions = np.vstack([pairs.preferred, pairs.other])
        members = []
        for k in range(self.n_members):
            index = rng.integers(0, len(pairs), len(pairs)) if self.bootstrap else np.arange(len(pairs))
            member = PreferenceLearner(seed=int(self.seed) + k, **options)
            if warm_start:
                # Its own last fit's basis and weights as the start.
                member.fit(pairs.subset(index), init=self.members_[k])
            else:
                # Fresh weights from the member's own seed: members that all
                # started from one network's weights would barely disagree.
                member.fit(pairs.subset(index), decisions=decisions)
            members.append(member)
        self.members_ = members
        return self

    def _check_fitted(self):
        if not hasattr(self, "members_"):
            raise NotFittedError("this EnsembleLearner is not fitted yet; call fit(pairs) first")

    def probabilities(self, context, first, second, first_cost=None, second_cost=None):
        """``P_m(first preferred)``, shape ``(n_members, n)``.

        Args:
            context: ``(n, k)``; first, second: ``(n, d)``.
            first_cost, second_cost: their nominal costs ``(n,)``, needed
                when the members weigh the nominal cost (``nominal_weight``).
        """
        self._check_fitted()
        rows = []
        for member in self.members_:
            gap = (member.predict_cost(context, second, second_cost)
                   - member.predict_cost(context, first, first_cost))
            rows.append(1.0 / (1.0 + np.exp(-np.clip(gap / member.margin, -50, 50))))
        return np.array(rows)

    def disagreement(self, context, first, second, first_cost=None, second_cost=None):
        """Standard deviation over members of ``P(first preferred)``, shape ``(n,)``."""
        return self.probabilities(context, first, second, first_cost, second_cost).std(axis=0)

    def candidate_disagreement(self, candidates, first, second):
        """:meth:`disagreement` of candidate rows ``first``, ``second`` (index arrays)."""
        return self.disagreement(
            candidates.context[first], candidates.u[first], candidates.u[second],
            candidates.nominal_cost[first], candidates.nominal_cost[second],
        )


def candidate_pairs(candidates):
    """Every unordered same-context pair of candidate indices, shape ``(m, 2)``."""
    return draw_pairs(candidates, np.iinfo(np.int64).max, np.random.default_rng(0), warn=False)


def spread_batch(index_pairs, score, n):
    """Positions of ``n`` high-``score`` rows of ``index_pairs``, spread over candidates.

    Rows are taken by decreasing score, skipping a row that shares a
    candidate with one already taken; if that leaves fewer than ``n``, the
    skipped rows fill up in score order. Without the spreading, one
    disputed candidate (say, an extreme decision) would appear in most of
    a batch's pairs, asking nearly the same question again and again.
    """
    order = np.argsort(-np.asarray(score), kind="stable")
    n = min(int(n), len(order))
    used, taken, skipped = set(), [], []
    for position in order:
        i, j = (int(v) for v in index_pairs[position])
        if i in used or j in used:
            skipped.append(position)
            continue
        taken.append(position)
        used.update((i, j))
        if len(taken) == n:
            break
    taken += skipped[: n - len(taken)]
    return np.array(taken, dtype=int)


def leading_candidates(ensemble, candidates, k):
    """Mask of the ``k`` candidates of each context the ensemble ranks best.

    Each member ranks a context's candidates by its learned cost; a
    candidate's place is its mean rank over the members (ties by position).

    Returns:
        bool array ``(len(candidates),)``.
    """
    ensemble._check_fitted()
    k = int(k)
    costs = np.array([
        member.predict_cost(candidates.context, candidates.u, candidates.nominal_cost)
        for member in ensemble.members_
    ])
    lead = np.zeros(len(candidates), dtype=bool)
    for members in candidates.groups():
        ranks = np.argsort(np.argsort(costs[:, members], axis=1, kind="stable"), axis=1)
        lead[members[np.argsort(ranks.mean(axis=0), kind="stable")[:k]]] = True
    return lead


def most_disputed(ensemble, candidates, index_pairs, n):
    """``n`` rows of ``index_pairs`` the ensemble disagrees on most (see :func:`spread_batch`)."""
    if len(index_pairs) == 0:
        return index_pairs
    score = ensemble.candidate_disagreement(candidates, index_pairs[:, 0], index_pairs[:, 1])
    return index_pairs[spread_batch(index_pairs, score, n)]


def ask_active(candidates, n_pairs, oracle, initial=None, batch=None, n_members=5,
               seed=None, progress=True, rater="", top=None, **learner_options):
    """Ask ``oracle`` about ``n_pairs`` pairs, chosen where an ensemble disagrees.

    Args:
        candidates: :class:`Candidates`.
        n_pairs: questions in all.
        oracle: ``oracle(a, b) -> 0/'A', 1/'B' or None``.
        initial: random questions first (default ``max(n_pairs // 8, 20)``).
        batch: questions between refits (default ``max(n_pairs // 8, 10)``).
        n_members: ensemble size.
        seed: seed of the random start, the A/B order and the ensemble.
        progress: show a progress bar.
        rater: name stored with every answer.
        top: ask only about pairs with at least one of the ``top``
            candidates the ensemble ranks best at their context (while
            enough such pairs are open; ``None``: every pair). The solver
            picks the decision the learned cost ranks first, so ordering
            the best candidates right matters more than ordering the rest.
        **learner_options: :class:`PreferenceLearner` hyperparameters of the
            ensemble members (e.g. ``max_epochs``).

    Returns:
        Pairs: the answered pairs, preferred first, in the order asked (as
        with ``ask``, fewer than ``n_pairs`` when the oracle cannot tell some
        apart or raises :class:`~pyomo_prefobj.errors.StopAsking`).
    """
    if not isinstance(candidates, Candidates):
        raise PairsError(f"ask_active needs a Candidates set; got {type(candidates).__name__}")
    n_pairs = check_count(n_pairs, "n_pairs")
    initial = max(n_pairs // 8, 20) if initial is None else check_count(initial, "initial")
    batch = max(n_pairs // 8, 10) if batch is None else check_count(batch, "batch")
    if top is not None and (isinstance(top, bool) or not isinstance(top, (int, np.integer)) or top < 1):
        raise LearningError(f"top must be a positive integer or None; got {top!r}")
    rng = np.random.default_rng(seed)
    pool = candidate_pairs(candidates)
    pool = pool[rng.permutation(len(pool))]
    asked = np.zeros(len(pool), dtype=bool)
    rows = []
    ensemble = EnsembleLearner(n_members=n_members, seed=0 if seed is None else seed, **learner_options)
    bar = progress_bar(total=min(n_pairs, len(pool)), enabled=progress, desc="asking (active)")

    def put(positions):
        for position in positions:
            i, j = pool[position]
            if rng.random() < 0.5:
                i, j = j, i
            answer = oracle(candidates[i], candidates[j])  # StopAsking ends the loop below
            asked[position] = True
            answer = _normalize_answer(answer, oracle)
            if answer is not None:
                rows.append((i, j) if answer == 0 else (j, i))
            bar.update(1)

    def as_pairs():
        index = np.array(rows)
        return Pairs.from_candidates(candidates, index[:, 0], index[:, 1], rater=str(rater))

    try:
        put(range(min(initial, n_pairs, len(pool))))
        fitted = False
        while asked.sum() < min(n_pairs, len(pool)):
            if len(rows) < 2:
                put(np.flatnonzero(~asked)[:batch])
                continue
            ensemble.fit(as_pairs(), decisions=candidates.u, warm_start=fitted)
            fitted = True
            open_positions = np.flatnonzero(~asked)
            take = min(batch, n_pairs - int(asked.sum()))
            if top is not None:
                lead = leading_candidates(ensemble, candidates, top)
                focused = open_positions[lead[pool[open_positions, 0]] | lead[pool[open_positions, 1]]]
                if len(focused) >= take:
                    open_positions = focused
            score = ensemble.candidate_disagreement(
                candidates, pool[open_positions, 0], pool[open_positions, 1]
            )
            put(open_positions[spread_batch(pool[open_positions], score, take)])
    except StopAsking as stop:
        stopped(stop, int(asked.sum()), min(n_pairs, len(pool)), len(rows))
    finally:
        bar.close()
    if not rows:
        raise PairsError("the oracle could not tell any pair apart; no pairs to learn from")
    return as_pairs()


class ActiveSelector:
    """A web-app selector: the open query the ensemble disagrees on most.

    Until the first fit it behaves like the store's ``fewest_answers``.
    Call :meth:`notify` after each stored answer (the web app does): every
    ``refit_every`` answers a warm-started refit starts in a background
    thread; requests keep using the last finished ensemble meanwhile.

    Args:
        store: the :class:`~pyomo_prefobj.store.PreferenceStore`.
        session: the session (id or name) whose answers train the ensemble.
        n_members: ensemble size.
        refit_every: answers between refits.
        min_pairs: answers needed before the first fit.
        **learner_options: member hyperparameters (e.g. ``max_epochs``).
    """

    def __init__(self, store, session, n_members=3, refit_every=10, min_pairs=10, **learner_options):
        self.store = store
        self.session = session
        self.n_members = n_members
        self.refit_every = int(refit_every)
        self.min_pairs = int(min_pairs)
        self.learner_options = learner_options
        self.ensemble = None
        self.fits = 0
        self._answers_since_fit = 0
        self._lock = threading.Lock()
        self._thread = None
        self._session_id = None

    def _serves(self, rater):
        """Whether ``rater`` belongs to this selector's session."""
        if self._session_id is None:
            self._session_id = self.store.session(self.session).id
        return rater is None or rater.session_id == self._session_id

    def __call__(self, pool):
        ensemble = self.ensemble
        if ensemble is None or len(pool) == 0 or not self._serves(pool.rater):
            return int(np.lexsort((pool.position, pool.n_answers))[0]) if len(pool) else None
        candidates = pool.candidates
        score = ensemble.candidate_disagreement(candidates, pool.first, pool.second)
        return int(np.argmax(score))

    def notify(self, answer=None, rater=None):
        """Count one stored answer; start a background refit when due.

        Answers of raters of another session (``rater`` given) are ignored.
        """
        if not self._serves(rater):
            return False
        with self._lock:
            self._answers_since_fit += 1
            due = self._answers_since_fit >= (self.refit_every if self.ensemble else self.min_pairs)
            return due and self._start_locked()

    def start_refit(self):
        """Start a refit in a background thread now, e.g. when a server
        reopens a session that already has answers.

        Returns:
            bool: False when a refit is already running (nothing started).
        """
        with self._lock:
            return self._start_locked()

    def _start_locked(self):
        if self._thread is not None and self._thread.is_alive():
            return False
        self._answers_since_fit = 0
        self._thread = threading.Thread(target=self.refit, daemon=True)
        self._thread.start()
        return True

    def refit(self):
        """Refit the ensemble on every stored answer (runs in the background)."""
        try:
            pairs = self.store.export_pairs(self.session)
            candidates = self.store.candidates(self.session)
        except Exception as exc:  # no A/B answer yet, or the store is gone
            logger.info("active selector: no refit (%s)", exc)
            return
        previous = self.ensemble
        try:
            ensemble = EnsembleLearner(n_members=self.n_members, **self.learner_options)
            if previous is not None:
                ensemble.members_ = previous.members_
            ensemble.fit(pairs, decisions=candidates.u, warm_start=previous is not None)
        except Exception as exc:
            logger.warning("active selector: refit failed: %s", exc)
            return
        self.ensemble = ensemble  # one assignment: requests see old or new, never half
        self.fits += 1

    def wait(self, timeout=None):
        """Wait for a running refit to finish (for tests and shutdown)."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
