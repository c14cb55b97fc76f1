"""People in the loop on the COVID-19 example: active questions, several raters.

Two measurements on the protocol of :mod:`examples.covid19.experiment`
(same candidates, same recommended training, same evaluation), each a user
of the package's public API:

``active``: asking where the model is least sure.
    For each seed the training candidates are sampled as the experiment
    samples them (:func:`~examples.covid19.experiment.sample_context` with
    the settings of :func:`~examples.covid19.experiment.recommended_settings`).
    For every budget ``B`` of pairs two fits are evaluated:

    * *random*: ``B`` random pairs (``m.pref.ask``), exactly the
      experiment's configuration of ``B`` pairs
      (:func:`~examples.covid19.experiment.fit_configuration`);
    * *active*: the first ``B`` questions of one
      :func:`pyomo_prefobj.active.ask_active` run to the largest budget
      (``batch`` random questions first, then batches of ``batch`` pairs the
      ensemble disagrees on most, refitting between batches). With every
      budget a multiple of ``batch``, these are exactly the questions
      ``ask_active(candidates, B, initial=batch, batch=batch)`` asks: the
      loop is sequential and seeded, so a shorter run is a prefix of a
      longer one (``tests/test_covid19_people.py`` checks it).

    * *rounds* (with ``--rounds N``): ``B`` pairs asked with
      ``m.pref.ask_in_rounds`` (half at random, the rest in ``N`` rounds
      about decisions sampled near the learned decisions), exactly the
      experiment's configuration of ``B`` pairs with ``--rounds N``.

    ``--arms`` picks which of them run (default: random and active). Every
    fit uses the recommended training and is solved at the evaluation
    contexts; a win is a context where the surrogate's composite cost
    ``phi`` is strictly below the nominal decision's. The result is the
    curve of wins against pairs and the pairs each selection needs to
    reach the mean wins of random selection at the largest budget.

``raters``: one surrogate from several raters who disagree.
    Six simulated raters answer their own random pairs of the same
    candidates (:data:`RATERS`): three reliable ones (the simulated user,
    no flips), two answering at random (half of the answers flipped) and
    one adversary (a ``ScoreOracle`` of the negated score: every answer
    inverted). Three fits are compared:

    * *aggregated*: all answers, ``loss="flip"`` (a flip rate per rater,
      learned jointly with the cost; :mod:`pyomo_prefobj.learning`), the
      rest of the recommended training;
    * *reliable only*: the reliable raters' answers, recommended training;
    * *unweighted*: all answers pooled, recommended training.

    It reports the wins of each, the learned flip rates and
    ``disagreeing_raters()`` of the aggregated fit. ``--aggregated-option
    KEY=VALUE`` adds a variant of the aggregated fit with other learner
    options (e.g. ``patience=200``: the flip rates need more epochs than
    early stopping leaves them).

Command line::

    python -m examples.covid19.people {active,raters} [--quick] [--seeds K]
        [--n-jobs J] [--json PATH] [--figure PATH]

Every random draw is seeded from the run seed (see :func:`rater_seed`);
parallel and serial runs give the same numbers (the experiment's task
runner, one BLAS thread per task).
"""

import argparse
import dataclasses
import logging
import os
import shutil
import sys
import tempfile
import time

import numpy as np

from pyomo_prefobj import Candidates, Pairs, PreferenceObjectiveError, ScoreOracle
from pyomo_prefobj.active import ask_active
from examples.covid19 import experiment
from examples.covid19.user import SimulatedUser

logger = logging.getLogger(__name__)
logger.addHandler(logging.NullHandler())

BUDGETS = (56, 112, 224, 336, 448)
"""Pair budgets of the ``active`` measurement (the largest is the experiment's 448)."""

ACTIVE_BATCH = 28
"""Random questions before the first ensemble fit, and questions between refits."""

ENSEMBLE_MEMBERS = 5
"""Members of the ensemble whose disagreement picks the active questions."""

ARMS = ("random", "active", "rounds")
"""The ways of choosing questions the ``active`` measurement can compare."""

DEFAULT_ARMS = ("random", "active")
"""The arms run unless ``--arms`` says otherwise."""

ARM_STYLE = {
    "random": ("tab:gray", "o"),
    "active": ("tab:blue", "s"),
    "rounds": ("tab:green", "^"),
}

RATER_PAIRS = 448
"""Pairs answered by all raters together in the ``raters`` measurement."""

RELIABLE, RANDOM, ADVERSARY = "reliable", "random", "adversary"
RATERS = (
    ("reliable-1", RELIABLE), ("reliable-2", RELIABLE), ("reliable-3", RELIABLE),
    ("random-1", RANDOM), ("random-2", RANDOM), ("adversary", ADVERSARY),
)
"""The simulated raters, ``(name, kind)``, in the order their pairs are drawn."""

RANDOM_FLIP = 0.5
"""Share of a random rater's answers flipped (0.5: no information)."""

DISAGREEMENT_THRESHOLD = 0.3
"""Flip rate above which ``disagreeing_raters`` names a rater."""

QUICK = {"train_contexts": 8, "eval_contexts": 13, "budgets": (28, 56, 84, 112),
         "batch": 14, "rater_pairs": 112}
"""Sizes of ``--quick``: a few minutes on one core, for debugging."""

_RATER_STREAM = 7919  # keeps rater seeds apart from the experiment's context seeds


# ----------------------------------------------------------------------
# Shared steps
# ----------------------------------------------------------------------
def rater_seed(seed, index):
    """Seed of rater ``index``'s pair draw and answers in run seed ``seed``."""
    return int(np.random.SeedSequence([int(seed), _RATER_STREAM, int(index)]).generate_state(1)[0])


def sample_candidates(settings, runner):
    """Training candidates per seed, sampled as the experiment samples them.

    Args:
        settings: :class:`~examples.covid19.experiment.ExperimentSettings`
            (``seeds``, ``train_contexts``, ``candidates_per_context``, the
            sampling options).
        runner: the experiment's task runner.

    Returns:
        dict seed -> :class:`~pyomo_prefobj.Candidates`.
    """
    train_x0 = experiment.contexts(settings.train_contexts)
    per_context = settings.candidates_per_context
    sampled = runner("sampling", [
        (experiment.sample_context, (seed, index, x0, per_context, settings))
        for seed in settings.seeds
        for index, x0 in enumerate(train_x0)
    ])
    n = len(train_x0)
    return {
        seed: Candidates.concatenate(sampled[s * n: (s + 1) * n])
        for s, seed in enumerate(settings.seeds)
    }


def fit_pairs(candidates, pairs, seed, settings, path, loss=None):
    """Fit the learned objective to given ``pairs`` and save it to ``path``.

    The training is ``settings``' (``n_components``, ``loss``,
    ``min_epochs``, ``max_epochs``, ``fit_options``), as in
    :func:`~examples.covid19.experiment.fit_configuration`; the PCA basis
    comes from all of ``candidates``.

    Args:
        candidates: the seed's :class:`~pyomo_prefobj.Candidates`.
        pairs: the :class:`~pyomo_prefobj.Pairs` to learn from.
        seed: seed of the fit.
        settings: :class:`~examples.covid19.experiment.ExperimentSettings`.
        path: ``.npz`` file the fitted objective is saved to.
        loss: a loss instead of ``settings.loss`` (e.g. ``"flip"``).

    Returns:
        dict: ``n_answered``, the fit summary, the learned ``flip_rates``
        (``"flip"`` loss; else empty), ``disagreeing`` raters and the fit's
        seconds.
    """
    m = experiment._model()
    start = time.perf_counter()
    report = experiment.fit_with_settings(m.pref, pairs, candidates, seed, settings, loss)
    seconds = time.perf_counter() - start
    m.pref.save(path)
    learner = m.pref.learner
    disagreeing = learner.disagreeing_raters(DISAGREEMENT_THRESHOLD) if learner.flip_rates_ else {}
    return {
        "n_answered": len(pairs),
        "fit": experiment.fit_summary(report),
        "flip_rates": dict(learner.flip_rates_),
        "disagreeing": disagreeing,
        "seconds": {"fit": seconds},
    }


def _nominal(runner, eval_x0, settings):
    solved = runner("nominal", [
        (experiment.nominal_solutions, (chunk, settings.solve_time_limit, settings.solve_gap))
        for chunk in experiment._chunks(eval_x0)
    ])
    return experiment.ContextSolutions.concatenate(solved)


def _wins(surrogate, nominal):
    return int(np.sum(surrogate.phi < nominal.phi))


def _training(settings):
    return {"loss": settings.loss, "min_epochs": settings.min_epochs,
            "max_epochs": settings.max_epochs, "n_components": settings.n_components,
            "fit_options": dict(settings.fit_options)}


# ----------------------------------------------------------------------
# Active selection against random selection
# ----------------------------------------------------------------------
class _AnswerLog:
    """An oracle that remembers, per question, whether it was answered."""

    def __init__(self, oracle):
        self.oracle = oracle
        self.answered = []

    def __call__(self, a, b):
        answer = self.oracle(a, b)
        self.answered.append(answer is not None)
        return answer


def active_questions(candidates, seed, budgets, flip, settings, batch=ACTIVE_BATCH,
                     n_members=ENSEMBLE_MEMBERS, top=None):
    """Ask the simulated user ``max(budgets)`` questions chosen by ensemble disagreement.

    Runs :func:`pyomo_prefobj.active.ask_active` once, with ``batch`` random
    questions first and ``batch`` questions between refits; the ensemble
    members use ``settings``' training. The answers to the first ``B``
    questions are those of an ``ask_active`` run of budget ``B`` (every
    budget is a multiple of ``batch``).

    Args:
        candidates: the seed's :class:`~pyomo_prefobj.Candidates`.
        seed: seed of the questions, the oracle's flips and the ensemble.
        budgets: question counts, each a multiple of ``batch``.
        flip: share of the simulated user's answers inverted.
        settings: :class:`~examples.covid19.experiment.ExperimentSettings`.
        batch: see above.
        n_members: ensemble size.
        top: ``ask_active``'s ``top`` (``None``: every pair).

    Returns:
        dict: ``pairs`` (all answered pairs, in the order asked) and
        ``answered`` (per budget, the answered pairs among its questions),
        ``seconds``.
    """
    budgets = sorted(int(b) for b in budgets)
    oracle = _AnswerLog(ScoreOracle(experiment._composite_score(SimulatedUser()), flip=flip,
                                    seed=seed))
    start = time.perf_counter()
    training = _training(settings)
    pairs = ask_active(
        candidates, budgets[-1], oracle, initial=batch, batch=batch, n_members=n_members,
        seed=seed, progress=False, top=top, loss=training["loss"], min_epochs=training["min_epochs"],
        max_epochs=training["max_epochs"], n_components=training["n_components"],
        **training["fit_options"],
    )
    asked = np.cumsum(oracle.answered)
    if len(asked) < budgets[-1]:
        raise ValueError(
            f"the candidates allow only {len(asked)} distinct pairs; the largest budget "
            f"{budgets[-1]} needs more (sample more candidates per context)"
        )
    return {
        "pairs": pairs,
        "answered": {b: int(asked[b - 1]) for b in budgets},
        "seconds": time.perf_counter() - start,
    }


@dataclasses.dataclass
class ActiveResult:
    """What :func:`run_active` returns.

    Attributes:
        settings: the experiment settings (training, contexts, seeds).
        budgets: the pair budgets, increasing.
        flip: share of the simulated user's answers inverted.
        batch, n_members: the active loop's batch size and ensemble size.
        top: ``ask_active``'s ``top`` (``None``: every pair).
        arms: the arms run, ``"random"`` first.
        rounds: the rounds of the ``"rounds"`` arm (0 when it did not run).
        wins: ``{"random": (n_seeds, n_budgets), "active": ...}`` integer
            arrays, one per arm.
        captured_gain: same layout, the mean captured gain over the
            evaluation contexts (``None`` unless ``settings.baselines``).
        n_answered: same layout, pairs answered (ties dropped).
        eval_contexts: number of evaluation contexts.
        ask_seconds: per seed, seconds of the active questions (ensemble fits included).
        stage_seconds: wall seconds per stage.
        wall_seconds: the whole run.
    """

    settings: experiment.ExperimentSettings
    budgets: tuple
    flip: float
    batch: int
    n_members: int
    top: int
    arms: tuple
    rounds: int
    wins: dict
    captured_gain: dict
    n_answered: dict
    eval_contexts: int
    ask_seconds: dict
    stage_seconds: dict
    wall_seconds: float

    def mean_wins(self, arm):
        """Mean wins over seeds per budget, shape ``(n_budgets,)``."""
        return self.wins[arm].mean(axis=0)

    @property
    def target(self):
        """float: mean wins of random pairs at the largest budget."""
        return float(self.mean_wins("random")[-1])

    def pairs_needed(self, arm):
        """Smallest budget whose mean wins reach :attr:`target` (``None``: none does)."""
        return pairs_needed(self.budgets, self.mean_wins(arm), self.target)

    def to_dict(self):
        """JSON-ready dict."""
        return {
            "measurement": "active",
            "settings": dataclasses.asdict(self.settings),
            "candidates_per_context": self.settings.candidates_per_context,
            "budgets": list(self.budgets),
            "flip": self.flip,
            "batch": self.batch,
            "n_members": self.n_members,
            "top": self.top,
            "arms": list(self.arms),
            "rounds": self.rounds,
            "eval_contexts": self.eval_contexts,
            "wins": {arm: {str(s): w.tolist() for s, w in zip(self.settings.seeds, wins)}
                     for arm, wins in self.wins.items()},
            "n_answered": {arm: {str(s): n.tolist() for s, n in zip(self.settings.seeds, values)}
                           for arm, values in self.n_answered.items()},
            "mean_wins": {arm: self.mean_wins(arm).tolist() for arm in self.wins},
            "captured_gain": None if self.captured_gain is None else {
                arm: {str(s): g.tolist() for s, g in zip(self.settings.seeds, gains)}
                for arm, gains in self.captured_gain.items()},
            "std_wins": {arm: self.wins[arm].std(axis=0).tolist() for arm in self.wins},
            "target": self.target,
            "pairs_needed": {arm: self.pairs_needed(arm) for arm in self.wins},
            "ask_seconds": {str(s): v for s, v in self.ask_seconds.items()},
            "stage_seconds": self.stage_seconds,
            "wall_seconds": self.wall_seconds,
        }


def pairs_needed(budgets, mean_wins, target):
    """Smallest of ``budgets`` whose ``mean_wins`` reach ``target``, else ``None``."""
    for budget, wins in zip(budgets, mean_wins):
        if wins >= target - 1e-9:
            return int(budget)
    return None


def _check_budgets(budgets, batch):
    budgets = tuple(sorted(int(b) for b in budgets))
    if not budgets or budgets[0] < batch or any(b % batch for b in budgets):
        raise ValueError(
            f"every budget must be a positive multiple of the batch size {batch}; got {budgets}"
        )
    if len(set(budgets)) != len(budgets):
        raise ValueError(f"budgets repeat a value: {budgets}")
    return budgets


def check_arms(arms, rounds):
    """The arms to run, ``"random"`` first; ValueError for unknown ones."""
    arms = tuple(dict.fromkeys(("random",) + tuple(arms)))
    unknown = [arm for arm in arms if arm not in ARMS]
    if unknown:
        raise ValueError(f"unknown arm {unknown[0]!r}; the arms are {', '.join(ARMS)}")
    if "rounds" in arms and not rounds:
        raise ValueError("the rounds arm needs --rounds N (N >= 1)")
    if rounds and "rounds" not in arms:
        raise ValueError("--rounds is an option of the rounds arm; add it to --arms")
    return arms


def run_active(settings, budgets=BUDGETS, flip=0.0, batch=ACTIVE_BATCH,
               n_members=ENSEMBLE_MEMBERS, top=None, arms=DEFAULT_ARMS, rounds=0):
    """Wins of each arm's pairs (random, active, rounds) at each budget, for every seed.

    Args:
        settings: :class:`~examples.covid19.experiment.ExperimentSettings`,
            e.g. ``recommended_settings(pairs=(max(budgets),), ...)`` so that
            candidates are sampled for the largest budget as the experiment
            would.
        budgets: pair budgets, each a multiple of ``batch``.
        flip: share of the simulated user's answers inverted.
        batch: see :func:`active_questions`.
        n_members: ensemble size.
        top: ask only about pairs with one of the ``top`` candidates the
            ensemble ranks best (``None``: every pair).
        arms: which of :data:`ARMS` to run; ``"random"`` always runs (it
            sets the target).
        rounds: rounds of the ``"rounds"`` arm (``ask_in_rounds``).

    With ``settings.baselines`` every fit's captured gain is measured too
    (``phi_best`` from :func:`examples.covid19.experiment.best_reference`,
    cached in ``settings.results_dir``).

    Returns:
        ActiveResult
    """
    budgets = _check_budgets(budgets, batch)
    arms = check_arms(arms, rounds)
    start = time.perf_counter()
    runner = experiment._Runner(settings.n_jobs, settings.progress)
    eval_x0 = experiment.contexts(settings.eval_contexts)
    nominal = _nominal(runner, eval_x0, settings)
    best = (experiment.best_reference(eval_x0, settings.best_time_limit, settings.results_dir,
                                      runner) if settings.baselines else None)
    candidates = sample_candidates(settings, runner)
    asked = runner("asking (active)", [
        (active_questions,
         (candidates[seed], seed, budgets, flip, settings, batch, n_members, top))
        for seed in settings.seeds
    ]) if "active" in arms else []
    in_rounds = dataclasses.replace(settings, rounds=int(rounds))
    workdir = tempfile.mkdtemp(prefix="covid19_people_")
    try:
        runs = [(seed, arm, budget) for seed in settings.seeds for arm in arms
                for budget in budgets]
        paths = [os.path.join(workdir, f"fit_{seed}_{arm}_{budget}.npz")
                 for seed, arm, budget in runs]
        tasks = []
        for (seed, arm, budget), path in zip(runs, paths):
            if arm in ("random", "rounds"):
                tasks.append((experiment.fit_configuration,
                              (candidates[seed], seed, budget, flip,
                               settings if arm == "random" else in_rounds, path)))
            else:
                active = asked[settings.seeds.index(seed)]
                prefix = active["pairs"].subset(np.arange(active["answered"][budget]))
                tasks.append((fit_pairs, (candidates[seed], prefix, seed, settings, path)))
        fits = runner("fitting", tasks)
        solutions = experiment.evaluate_fits(runner, paths, eval_x0, settings)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    shape = (len(settings.seeds), len(budgets))
    wins = {arm: np.zeros(shape, dtype=int) for arm in arms}
    answered = {arm: np.zeros(shape, dtype=int) for arm in arms}
    gains = {arm: np.zeros(shape) for arm in arms} if best else None
    for (seed, arm, budget), fit, surrogate in zip(runs, fits, solutions):
        position = (settings.seeds.index(seed), budgets.index(budget))
        wins[arm][position] = _wins(surrogate, nominal)
        answered[arm][position] = fit["n_answered"]
        if best:
            gains[arm][position] = np.nanmean(
                experiment.captured_gain(nominal.phi, surrogate.phi, best["phi"]))
    return ActiveResult(
        settings=settings,
        budgets=budgets,
        flip=float(flip),
        batch=int(batch),
        n_members=int(n_members),
        top=None if top is None else int(top),
        arms=arms,
        rounds=int(rounds),  # 0 unless the rounds arm runs (check_arms)
        wins=wins,
        captured_gain=gains,
        n_answered=answered,
        eval_contexts=len(eval_x0),
        ask_seconds={seed: a["seconds"] for seed, a in zip(settings.seeds, asked)},
        stage_seconds=runner.stage_seconds,
        wall_seconds=time.perf_counter() - start,
    )


def arm_label(result, arm):
    """How an arm is named in tables and plots."""
    if arm == "active":
        return ("active pairs (ensemble disagreement"
                + ("" if result.top is None else f", top {result.top}") + ")")
    if arm == "rounds":
        return f"pairs in {result.rounds} rounds near the learned decisions"
    return "random pairs"


def format_active(result):
    """Text table of wins per budget (mean, std and per seed) and the pairs needed."""
    seeds = result.settings.seeds
    arms = result.arms
    header = ["pairs"]
    for arm in arms:
        header += [f"{arm}: mean (std)", f"{arm} per seed"]
    rows = []
    for k, budget in enumerate(result.budgets):
        row = [str(budget)]
        for arm in arms:
            wins = result.wins[arm][:, k]
            row += [f"{wins.mean():.1f} ({wins.std():.1f})", " ".join(str(w) for w in wins)]
        rows.append(row)
    needed = {arm: result.pairs_needed(arm) for arm in arms}

    def show(value):
        return "not reached" if value is None else f"{value} pairs"

    described = []
    if "active" in arms:
        described.append(
            f"active: ensemble of {result.n_members}, batches of {result.batch}, "
            + ("every open pair" if result.top is None else
               f"pairs with one of the {result.top} best-ranked candidates of their context"))
    if "rounds" in arms:
        described.append(f"rounds: half the pairs at random, the rest in {result.rounds} rounds")
    lines = [
        f"Wins out of {result.eval_contexts} evaluation contexts, {len(seeds)} seed(s) "
        f"{list(seeds)}, {result.settings.train_contexts} training contexts x "
        f"{result.settings.candidates_per_context} candidates, "
        f"{round(100 * result.flip)}% flipped answers"
        + "".join(f"; {text}" for text in described) + ".",
        *experiment._text_table(header, rows),
        "",
        f"Target: the mean wins of {result.budgets[-1]} random pairs, {result.target:.2f}.",
        "Pairs needed to reach it (smallest budget run): "
        + ", ".join(f"{arm} {show(needed[arm])}" for arm in arms) + ".",
    ]
    for arm in arms[1:]:
        lines.append(_half_the_pairs_verdict(result, needed[arm], "wins", arm))
    if min(result.mean_wins(arm).min() for arm in arms) >= result.eval_contexts:
        lines.append("Every fit wins every context: the wins cannot separate the arms; "
                     "compare the captured gain (--captured-gain).")
    if result.captured_gain is not None:
        gains = {arm: result.captured_gain[arm].mean(axis=0) for arm in arms}
        lines += ["", "Captured gain (mean over the evaluation contexts), mean over seeds and per seed:"]
        lines += experiment._text_table(
            ["pairs"] + [text for arm in arms for text in (arm, f"{arm} per seed")],
            [[str(budget)] + [
                value
                for arm in arms
                for value in (f"{gains[arm][k]:.3f}",
                              " ".join(f"{g:.2f}" for g in result.captured_gain[arm][:, k]))
            ] for k, budget in enumerate(result.budgets)],
        )
        target = float(gains["random"][-1])
        needed_gain = {arm: pairs_needed(result.budgets, gains[arm], target) for arm in arms[1:]}
        lines.append(f"Target: the mean captured gain of {result.budgets[-1]} random pairs, "
                     f"{target:.3f}; " + ", ".join(f"{arm}: {show(needed_gain[arm])}"
                                                    for arm in arms[1:]) + ".")
        for arm in arms[1:]:
            lines.append(_half_the_pairs_verdict(result, needed_gain[arm], "captured gain", arm))
    if result.ask_seconds:
        asking = ", ".join(f"seed {s}: {v:.0f}s" for s, v in result.ask_seconds.items())
        lines.append(f"Active asking (ensemble refits included): {asking}.")
    stages = ", ".join(f"{k} {v:.1f}s" for k, v in result.stage_seconds.items())
    lines.append(f"Wall time {result.wall_seconds:.1f}s ({stages}; "
                 f"n_jobs={result.settings.n_jobs}).")
    return "\n".join(lines)


def _half_the_pairs_verdict(result, needed, measure, arm="active"):
    """The line saying whether ``arm``'s pairs reach the target with half the pairs."""
    half = result.budgets[-1] / 2
    name = arm.capitalize()
    if needed is None:
        return f"{name} needs <= half the pairs ({measure}): not met (target not reached)."
    verdict = "met" if needed <= half else "not met"
    return f"{name} needs <= half of {result.budgets[-1]} ({half:g}) pairs ({measure}): {verdict}."


def plot_active(result, path):
    """Wins against pairs, mean +- std over seeds, one line per arm, as a PNG.

    With captured gains (``--captured-gain``) a second panel shows them the
    same way: where every fit wins (e.g. with the span penalty) the wins
    saturate and only the captured gain separates the arms.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("wins", result.wins, f"wins out of {result.eval_contexts} contexts",
               (0, result.eval_contexts + 1), 1)]
    if result.captured_gain is not None:
        panels.append(("captured gain", result.captured_gain,
                       "captured gain (mean over contexts)", None, 3))
    fig, axes = plt.subplots(1, len(panels), figsize=(6.4 * len(panels), 4.2), squeeze=False)
    for ax, panel in zip(axes[0], panels):
        _plot_active_panel(ax, result, *panel)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _plot_active_panel(ax, result, name, values, ylabel, ylim, digits):
    """One measure (arm -> array (seeds, budgets)) against pairs on ``ax``;
    ``digits``: decimals in the label of the largest random budget's line."""
    budgets = np.array(result.budgets)
    for arm in result.arms:
        color, marker = ARM_STYLE[arm]
        mean, std = values[arm].mean(axis=0), values[arm].std(axis=0)
        label = arm_label(result, arm)
        ax.plot(budgets, mean, color=color, marker=marker, lw=1.5, label=label)
        ax.fill_between(budgets, mean - std, mean + std, color=color, alpha=0.2, lw=0)
    target = values["random"][:, -1].mean()
    ax.axhline(target, color="black", lw=0.8, ls="--",
               label=f"{result.budgets[-1]} random pairs ({target:.{digits}f})")
    ax.axvline(result.budgets[-1] / 2, color="tab:red", lw=0.8, ls=":", label="half the pairs")
    ax.set_xlabel("pairs asked")
    ax.set_ylabel(ylabel)
    ax.set_xticks(budgets)
    if ylim is not None:
        ax.set_ylim(*ylim)
    ax.set_title(f"COVID-19: {name} vs pairs (mean $\\pm$ std over {len(result.settings.seeds)} "
                 f"seeds)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")


# ----------------------------------------------------------------------
# Several raters
# ----------------------------------------------------------------------
def rater_oracle(kind, user, seed):
    """The oracle of one simulated rater of ``kind`` (see :data:`RATERS`).

    A reliable rater is the simulated user; a random one flips half of its
    answers; the adversary prefers what the user likes least (negated score).
    """
    score = experiment._composite_score(user)
    if kind == RELIABLE:
        return ScoreOracle(score, seed=seed)
    if kind == RANDOM:
        return ScoreOracle(score, flip=RANDOM_FLIP, seed=seed)
    if kind == ADVERSARY:
        return ScoreOracle(lambda candidate: -score(candidate), seed=seed)
    raise ValueError(f"unknown rater kind {kind!r}; use one of {RELIABLE}, {RANDOM}, {ADVERSARY}")


def rater_answers(candidates, seed, n_pairs, raters=RATERS):
    """Each rater answers its share of ``n_pairs`` random pairs; stacked, named.

    The shares differ by at most one pair; rater ``k`` draws its pairs and
    flips with :func:`rater_seed` ``(seed, k)``.

    Returns:
        Pairs: every answer, ``rater`` holding the rater's name.
    """
    m = experiment._model()
    user = SimulatedUser()
    shares = [len(part) for part in np.array_split(np.arange(int(n_pairs)), len(raters))]
    parts = []
    for index, ((name, kind), share) in enumerate(zip(raters, shares)):
        seed_k = rater_seed(seed, index)
        parts.append(m.pref.ask(candidates, share, rater_oracle(kind, user, seed_k),
                                seed=seed_k, progress=False, rater=name))
    return Pairs.concatenate(parts)


FIT_ARMS = ("aggregated", "reliable only", "unweighted")
"""The three fits of the ``raters`` measurement (variants of the aggregated
fit with other learner options may be added, see :func:`run_raters`)."""


def variant_name(options):
    """Name of the aggregated fit with extra learner ``options``."""
    return "aggregated (" + ", ".join(f"{k}={v}" for k, v in sorted(options.items())) + ")"


_SETTINGS_OPTIONS = ("n_components", "min_epochs", "max_epochs")


def _with_options(settings, options):
    """``settings`` with extra learner ``options`` (the aggregated fit's variant)."""
    if "loss" in options:
        raise ValueError("a variant of the aggregated fit keeps loss='flip'; drop the loss option")
    direct = {k: v for k, v in options.items() if k in _SETTINGS_OPTIONS}
    rest = {k: v for k, v in options.items() if k not in _SETTINGS_OPTIONS}
    return dataclasses.replace(settings, fit_options={**settings.fit_options, **rest}, **direct)


def _rater_fit(candidates, seed, n_pairs, settings, path, arm, raters, options=None):
    """Ask every rater, then fit one arm (one task).

    ``arm`` is one of :data:`FIT_ARMS`, or ``"aggregated"`` with extra
    learner ``options`` (a variant).
    """
    pairs = rater_answers(candidates, seed, n_pairs, raters)
    if arm == "aggregated":
        if options:
            settings = _with_options(settings, options)
        return fit_pairs(candidates, pairs, seed, settings, path, loss="flip")
    if arm == "reliable only":
        reliable = [name for name, kind in raters if kind == RELIABLE]
        return fit_pairs(candidates, pairs.subset(np.isin(pairs.rater, reliable)), seed,
                         settings, path)
    return fit_pairs(candidates, pairs, seed, settings, path)


@dataclasses.dataclass
class RatersResult:
    """What :func:`run_raters` returns.

    Attributes:
        settings: the experiment settings (training, contexts, seeds).
        n_pairs: answers of all raters together.
        raters: ``(name, kind)`` per rater.
        arms: the fits, :data:`FIT_ARMS` then the variants' names.
        wins: arm -> integer array ``(n_seeds,)``.
        n_answered: arm -> pairs fitted, ``(n_seeds,)``.
        flip_rates: arm -> per seed, rater -> learned flip rate (the
            ``"flip"``-loss fits: the aggregated one and its variants).
        disagreeing: same layout, ``disagreeing_raters()`` of those fits.
        eval_contexts: number of evaluation contexts.
        stage_seconds, wall_seconds: timings.
    """

    settings: experiment.ExperimentSettings
    n_pairs: int
    raters: tuple
    arms: tuple
    wins: dict
    n_answered: dict
    flip_rates: dict
    disagreeing: dict
    eval_contexts: int
    stage_seconds: dict
    wall_seconds: float

    def mean_wins(self, arm):
        """float: wins of ``arm`` averaged over seeds."""
        return float(np.mean(self.wins[arm]))

    def mean_flip_rates(self, arm="aggregated"):
        """dict rater -> flip rate learned by ``arm``, averaged over seeds."""
        rates = self.flip_rates[arm]
        return {name: float(np.mean([per_seed[name] for per_seed in rates.values()]))
                for name, _ in self.raters}

    def targets(self, arm="aggregated", tolerance=2.0):
        """The issue's targets for ``arm``, on mean wins.

        Returns:
            dict: ``at_least_reliable_minus_2`` (``arm`` >= reliable only -
            ``tolerance``) and ``more_than_unweighted`` (``arm`` > unweighted).
        """
        wins = self.mean_wins(arm)
        return {
            "at_least_reliable_minus_2": wins >= self.mean_wins("reliable only") - tolerance,
            "more_than_unweighted": wins > self.mean_wins("unweighted"),
        }

    def to_dict(self):
        """JSON-ready dict."""
        seeds = self.settings.seeds
        return {
            "measurement": "raters",
            "settings": dataclasses.asdict(self.settings),
            "candidates_per_context": self.settings.candidates_per_context,
            "n_pairs": self.n_pairs,
            "raters": [list(r) for r in self.raters],
            "eval_contexts": self.eval_contexts,
            "arms": list(self.arms),
            "wins": {arm: {str(s): int(w) for s, w in zip(seeds, self.wins[arm])}
                     for arm in self.arms},
            "mean_wins": {arm: self.mean_wins(arm) for arm in self.arms},
            "n_answered": {arm: self.n_answered[arm].tolist() for arm in self.arms},
            "flip_rates": {arm: {str(s): r for s, r in rates.items()}
                           for arm, rates in self.flip_rates.items()},
            "mean_flip_rates": {arm: self.mean_flip_rates(arm) for arm in self.flip_rates},
            "disagreeing": {arm: {str(s): d for s, d in found.items()}
                            for arm, found in self.disagreeing.items()},
            "targets": {arm: {k: bool(v) for k, v in self.targets(arm).items()}
                        for arm in self.flip_rates},
            "stage_seconds": self.stage_seconds,
            "wall_seconds": self.wall_seconds,
        }


def run_raters(settings, n_pairs=RATER_PAIRS, raters=RATERS, variants=()):
    """Wins of the aggregated, reliable-only and unweighted fits, for every seed.

    Args:
        settings: :class:`~examples.covid19.experiment.ExperimentSettings`
            (its ``pairs`` set the candidates per context, as in the experiment).
        n_pairs: answers of all raters together.
        raters: ``(name, kind)`` per rater, kinds as in :data:`RATERS`.
        variants: dicts of extra learner options; each adds an aggregated
            fit with those options (named by :func:`variant_name`), e.g.
            ``({"patience": 200},)`` for longer training.

    Returns:
        RatersResult
    """
    if not any(kind == RELIABLE for _, kind in raters):
        raise ValueError("the raters measurement needs at least one reliable rater")
    variants = [dict(options) for options in variants]
    for options in variants:
        _with_options(settings, options)  # a bad option fails here, not in a task
    arms = [(arm, None) for arm in FIT_ARMS] + [("aggregated", options) for options in variants]
    names = tuple(FIT_ARMS) + tuple(variant_name(options) for options in variants)
    if len(set(names)) != len(names):
        raise ValueError(f"the variants repeat a fit: {names}")
    start = time.perf_counter()
    runner = experiment._Runner(settings.n_jobs, settings.progress)
    eval_x0 = experiment.contexts(settings.eval_contexts)
    nominal = _nominal(runner, eval_x0, settings)
    candidates = sample_candidates(settings, runner)
    workdir = tempfile.mkdtemp(prefix="covid19_raters_")
    try:
        runs = [(seed, k) for seed in settings.seeds for k in range(len(arms))]
        paths = [os.path.join(workdir, f"fit_{seed}_{k}.npz") for seed, k in runs]
        fits = runner("fitting", [
            (_rater_fit, (candidates[seed], seed, n_pairs, settings, path, arms[k][0],
                          tuple(raters), arms[k][1]))
            for (seed, k), path in zip(runs, paths)
        ])
        solutions = experiment.evaluate_fits(runner, paths, eval_x0, settings)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    n_seeds = len(settings.seeds)
    wins = {name: np.zeros(n_seeds, dtype=int) for name in names}
    answered = {name: np.zeros(n_seeds, dtype=int) for name in names}
    flip_rates, disagreeing = {}, {}
    for (seed, k), fit, surrogate in zip(runs, fits, solutions):
        name, s = names[k], settings.seeds.index(seed)
        wins[name][s] = _wins(surrogate, nominal)
        answered[name][s] = fit["n_answered"]
        if arms[k][0] == "aggregated":
            flip_rates.setdefault(name, {})[seed] = fit["flip_rates"]
            disagreeing.setdefault(name, {})[seed] = fit["disagreeing"]
    return RatersResult(
        settings=settings,
        n_pairs=int(n_pairs),
        raters=tuple(tuple(r) for r in raters),
        arms=names,
        wins=wins,
        n_answered=answered,
        flip_rates=flip_rates,
        disagreeing=disagreeing,
        eval_contexts=len(eval_x0),
        stage_seconds=runner.stage_seconds,
        wall_seconds=time.perf_counter() - start,
    )


def format_raters(result):
    """Text tables: wins per fit, learned flip rates per rater, the targets."""
    seeds = result.settings.seeds
    header = ["fit", "pairs", "wins per seed", "mean"]
    rows = [[arm, " ".join(str(n) for n in result.n_answered[arm]),
             " ".join(str(w) for w in result.wins[arm]), f"{result.mean_wins(arm):.1f}"]
            for arm in result.arms]
    lines = [
        f"Wins out of {result.eval_contexts} evaluation contexts, {len(seeds)} seed(s) "
        f"{list(seeds)}, {result.n_pairs} answers from {len(result.raters)} raters, "
        f"{result.settings.train_contexts} training contexts x "
        f"{result.settings.candidates_per_context} candidates.",
        *experiment._text_table(header, rows),
    ]
    for arm in result.flip_rates:
        lines += ["", f"Flip rates learned by the fit '{arm}' (loss='flip'):"]
        header = ["rater", "kind"] + [f"seed {s}" for s in seeds] + ["mean"]
        means = result.mean_flip_rates(arm)
        rows = [[name, kind] + [f"{result.flip_rates[arm][s][name]:.3f}" for s in seeds]
                + [f"{means[name]:.3f}"] for name, kind in result.raters]
        lines += experiment._text_table(header, rows)
        for seed in seeds:
            found = result.disagreeing[arm][seed]
            named = ", ".join(f"{name} ({rate:.2f})" for name, rate in found.items())
            lines.append(f"disagreeing_raters() seed {seed}: {named or 'none'}")
        targets = result.targets(arm)
        lines.append(
            f"{arm} >= reliable only - 2: "
            f"{'met' if targets['at_least_reliable_minus_2'] else 'not met'} "
            f"({result.mean_wins(arm):.1f} vs {result.mean_wins('reliable only'):.1f}); "
            f"{arm} > unweighted: {'yes' if targets['more_than_unweighted'] else 'no'} "
            f"({result.mean_wins(arm):.1f} vs {result.mean_wins('unweighted'):.1f})."
        )
    lines.append("")
    stages = ", ".join(f"{k} {v:.1f}s" for k, v in result.stage_seconds.items())
    lines.append(f"Wall time {result.wall_seconds:.1f}s ({stages}; "
                 f"n_jobs={result.settings.n_jobs}).")
    return "\n".join(lines)


# ----------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------
def _parser():
    parser = argparse.ArgumentParser(
        prog="python -m examples.covid19.people",
        description=(
            "People in the loop on the COVID-19 example: active pair selection "
            "against random pairs (active), or one fit from several raters who "
            "disagree (raters)."
        ),
    )
    parser.add_argument("measurement", choices=("active", "raters"))
    parser.add_argument("--quick", action="store_true",
                        help=f"small sizes for debugging ({QUICK['train_contexts']} training, "
                             f"{QUICK['eval_contexts']} evaluation contexts, budgets "
                             f"{' '.join(map(str, QUICK['budgets']))} in batches of "
                             f"{QUICK['batch']}, raters' pairs "
                             f"{QUICK['rater_pairs']}); explicit options override")
    parser.add_argument("--seeds", type=experiment.positive_int, default=1, metavar="K",
                        help="number of seeds, run as S..S+K-1 (default 1)")
    parser.add_argument("--first-seed", type=experiment.non_negative_int, default=0, metavar="S",
                        help="first seed (default 0)")
    parser.add_argument("--train-contexts", type=experiment.positive_int, default=None, metavar="M",
                        help="training contexts (default 26)")
    parser.add_argument("--eval-contexts", type=experiment.positive_int, default=None, metavar="M",
                        help="evaluation contexts (default 52)")
    parser.add_argument("--per-context", type=experiment.positive_int, default=None, metavar="K",
                        help="candidates per training context (default: as the experiment "
                             "samples for the largest budget / --pairs)")
    parser.add_argument("--budgets", type=experiment.positive_int, nargs="+", default=None, metavar="N",
                        help="active: pair budgets, multiples of --batch "
                             f"(default {' '.join(map(str, BUDGETS))})")
    parser.add_argument("--batch", type=experiment.positive_int, default=None, metavar="B",
                        help=f"active: random questions first and questions between "
                             f"refits (default {ACTIVE_BATCH})")
    parser.add_argument("--members", type=experiment.positive_int, default=ENSEMBLE_MEMBERS, metavar="N",
                        help=f"active: ensemble size (default {ENSEMBLE_MEMBERS})")
    parser.add_argument("--top", type=experiment.positive_int, default=None, metavar="K",
                        help="active: ask only about pairs with one of the K candidates "
                             "the ensemble ranks best at their context (default: every pair)")
    parser.add_argument("--arms", nargs="+", choices=ARMS, default=list(DEFAULT_ARMS),
                        metavar="ARM",
                        help="active: the ways of choosing questions to compare, of "
                             f"{', '.join(ARMS)} (default: {' '.join(DEFAULT_ARMS)}; "
                             "random always runs)")
    parser.add_argument("--rounds", type=experiment.non_negative_int, default=0, metavar="N",
                        help="active: rounds of the rounds arm (PreferenceObjective."
                             "ask_in_rounds; needed with --arms ... rounds)")
    parser.add_argument("--captured-gain", action="store_true",
                        help="active: also measure each fit's captured gain (phi_best from "
                             "the experiment's cache in --results-dir, solved where missing)")
    experiment.add_results_dir_argument(parser)
    parser.add_argument("--flip", type=float, default=0.0, metavar="F",
                        help="active: share of the simulated user's answers inverted (default 0)")
    parser.add_argument("--pairs", type=experiment.positive_int, default=None, metavar="N",
                        help=f"raters: answers of all raters together (default {RATER_PAIRS})")
    parser.add_argument("--aggregated-option", action="append", default=[], metavar="KEY=VALUE",
                        type=experiment.key_value,
                        help="raters: also fit the aggregated (flip-loss) model with this "
                             "extra learner option, e.g. patience=200 (repeatable: all "
                             "options go into one extra fit)")
    parser.add_argument("--max-epochs", type=int, default=None, metavar="E",
                        help="epoch limit of every fit (default: the recommended settings')")
    parser.add_argument("--components", type=experiment.positive_int, default=None, metavar="R",
                        help="PCA coordinates of every fit (default: the recommended "
                             "settings)")
    parser.add_argument("--span-penalty", type=float, default=None, metavar="A",
                        help="activate every fit with this span penalty (default: none; "
                             "see python -m examples.covid19 --help)")
    experiment.add_output_arguments(
        parser,
        n_jobs=1,
        n_jobs_help="worker processes (default 1); tasks are seeded and single-threaded, "
                    "so the numbers are meant not to depend on it",
        figure_help="active: write the wins-vs-pairs curve as a PNG",
    )
    return parser


def settings_from_args(args):
    """``(settings, options)`` of parsed arguments: the recommended settings
    with the sizes asked for, and the measurement's own options."""
    quick = QUICK if args.quick else {}
    budgets = tuple(experiment.given(args.budgets, quick.get("budgets", BUDGETS)))
    batch = experiment.given(args.batch, quick.get("batch", ACTIVE_BATCH))
    rater_pairs = experiment.given(args.pairs, quick.get("rater_pairs", RATER_PAIRS))
    largest = max(budgets) if args.measurement == "active" else rater_pairs
    overrides = {
        "pairs": (largest,),
        "flips": (args.flip,),
        "seeds": tuple(range(args.first_seed, args.first_seed + args.seeds)),
        "train_contexts": experiment.given(args.train_contexts, quick.get("train_contexts", 26)),
        "eval_contexts": experiment.given(args.eval_contexts, quick.get("eval_contexts", 52)),
        "per_context": args.per_context,
        "n_jobs": args.n_jobs,
        "progress": not args.no_progress,
        "baselines": bool(args.captured_gain),
        "results_dir": args.results_dir,
    }
    if args.max_epochs is not None:
        overrides["max_epochs"] = args.max_epochs
    if args.components is not None:
        overrides["n_components"] = args.components
    if args.span_penalty is not None:
        overrides["span_penalty"] = args.span_penalty
    settings = experiment.recommended_settings(**overrides)
    options = {"budgets": budgets, "batch": batch, "n_members": args.members, "top": args.top,
               "flip": args.flip, "n_pairs": rater_pairs, "arms": tuple(args.arms),
               "rounds": args.rounds,
               "variants": [dict(args.aggregated_option)] if args.aggregated_option else []}
    return settings, options


# Options that only one measurement reads (argparse dest names).
_OWN_OPTIONS = {
    "active": ("budgets", "batch", "members", "top", "captured_gain", "flip", "figure", "arms",
               "rounds"),
    "raters": ("pairs", "aggregated_option"),
}


def _refuse_other_measurements_options(parser, args):
    """ValueError for an option the chosen measurement would ignore."""
    for measurement, dests in _OWN_OPTIONS.items():
        if measurement == args.measurement:
            continue
        for dest in dests:
            if getattr(args, dest) != parser.get_default(dest):
                raise ValueError(f"--{dest.replace('_', '-')} is an option of '{measurement}', "
                                 f"not of '{args.measurement}'")


def main(argv=None):
    """Run one measurement from the command line; return the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    experiment.configure_logging(args.verbose)
    try:
        _refuse_other_measurements_options(parser, args)
        settings, options = settings_from_args(args)
        if args.measurement == "active":
            _check_budgets(options["budgets"], options["batch"])
            check_arms(options["arms"], options["rounds"])
            if options["n_members"] < 2:
                raise ValueError(f"--members must be at least 2 (an ensemble); got {options['n_members']}")
        else:
            if options["n_pairs"] < len(RATERS):
                raise ValueError(f"--pairs must be at least {len(RATERS)}, one answer per simulated "
                                 f"rater; got {options['n_pairs']}")
            for variant in options["variants"]:
                _with_options(settings, variant)  # a bad --aggregated-option fails here
        experiment.check_output_paths(args.json, args.figure,
                                      experiment.results_cache_path(args.results_dir))
    except ValueError as exc:
        print(f"python -m examples.covid19.people: {exc}", file=sys.stderr)
        return 2
    print(
        f"{args.measurement}: {len(settings.seeds)} seed(s); {settings.train_contexts} training "
        f"contexts x {settings.candidates_per_context} candidates, {settings.eval_contexts} "
        f"evaluation contexts; training {_training(settings)}; n_jobs={settings.n_jobs}",
        flush=True,
    )
    try:
        if args.measurement == "active":
            result = run_active(settings, options["budgets"], options["flip"], options["batch"],
                                options["n_members"], options["top"], options["arms"],
                                options["rounds"])
        else:
            result = run_raters(settings, options["n_pairs"], variants=options["variants"])
    except PreferenceObjectiveError as exc:
        return experiment.report_failure("python -m examples.covid19.people", exc, args.verbose)
    except KeyboardInterrupt:
        return experiment.report_interrupt("python -m examples.covid19.people")
    print(format_active(result) if args.measurement == "active" else format_raters(result))
    if args.json:
        experiment.save_json(result, args.json)
        print(f"wrote {args.json}")
    if args.figure and args.measurement == "active":
        plot_active(result, args.figure)
        print(f"wrote {args.figure}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
