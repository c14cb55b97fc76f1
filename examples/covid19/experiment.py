"""The paper's COVID-19 experiment (Table 1, Figure 2) on the public API.

Everything here is a *user* of :mod:`pyomo_prefobj`: the model of
:mod:`examples.covid19.model` gets a ``PreferenceObjective`` and the
protocol of SPEC.md ("Protocol") runs through ``sample``, ``ask`` with a
``ScoreOracle``, ``fit``, ``activate`` and a SCIP solve.

Protocol, for each seed ``s`` and each configuration (``n_pairs``, ``flip``):

1. **Sample** candidates at ``n_train`` contexts evenly spaced in ``[0, 1]``
   (``m.pref.sample``, one call per context with a seed derived from ``s``
   and the context's index). Sampling happens once per seed, with enough
   candidates per context for the largest ``n_pairs`` of the run, and every
   configuration of that seed draws its pairs from the same candidates.
2. **Ask** ``n_pairs`` same-context pairs of a ``ScoreOracle`` whose score
   is the simulated user's composite cost ``phi`` at the candidate's context
   (:class:`examples.covid19.user.SimulatedUser`), with a fraction ``flip``
   of answers inverted. The pair draw and the flips are seeded by ``s``
   alone, so the pairs of 448 are the first 448 of 896, and the labels
   flipped at 10% are also flipped at 20% (common random numbers).
3. **Fit** the learned objective (``m.pref.fit``, ``n_components=30``,
   seed ``s``; the PCA basis comes from all of the seed's candidates).
4. **Evaluate** at ``n_eval`` contexts evenly spaced in ``[0, 1]``: solve the
   nominal model (once per run: it depends neither on the seed nor, in this
   model, on ``x0``) and the model with the learned objective activated,
   both with SCIP (:class:`pyomo_prefobj.PersistentScip`, Pyomo's
   persistent interface with a linear objective passed to SCIP directly:
   one SCIP model per task, and between contexts only the learned rows and
   objective change; with ``warm_start``, each solve after a task's first
   starts from the previous context's decision). A
   **win** is a context where the surrogate's decision has a strictly lower
   composite cost ``phi`` than the nominal decision.

Honesty baselines (SPEC.md and issue 4), beside the wins:

* **chance**: the share of sampled candidates (nominal optima left out)
  whose ``phi`` is below the nominal decision's at their own training
  context; ``chance * n_eval`` is what picking a random candidate would win.
* **one-swap**: re-solve the nominal MILP with the last temporary facility
  forced open, at each evaluation context, and count its wins.
* **captured gain** per context, ``(phi_nom - phi_sur) / (phi_nom -
  phi_best)``, with ``phi_best`` from :func:`examples.covid19.best.best_composite`
  (cached per evaluation context in a JSON file, see :func:`best_reference`).

Parallelism and determinism: the work is split into small tasks (chunks of
contexts, one seed's sampling per context, one fit per seed and
configuration, chunks of evaluation solves) that joblib runs on ``n_jobs``
processes. No task's result depends on how tasks are grouped or ordered:
each training context is sampled with its own seed derived from
``(s, context index)``, each fit is saved to a file and re-loaded by the
evaluation tasks, and every task runs with one BLAS thread (the learner
itself trains on one torch thread). A serial run therefore gives the same
numbers as a parallel one. (SCIP is deterministic at fixed parameters; a
solve stopped by a time limit would not be, and is reported.)
"""

import argparse
import dataclasses
import functools
import json
import logging
import math
import os
import shutil
import sys
import tempfile
import time

import joblib
import numpy as np
import pyomo.environ as pyo
import threadpoolctl
from pyomo.contrib.solver.common.factory import SolverFactory
from pyomo.contrib.solver.common.results import SolutionStatus, TerminationCondition
from pyomo.core.expr.visitor import identify_mutable_parameters
from tqdm.auto import tqdm

from pyomo_prefobj import (
    SCIP_OPTIONS,
    PersistentScip,
    PreferenceLearner,
    PreferenceObjective,
    ScoreOracle,
)
from examples.covid19.model import NOMINAL_OPTIMUM, build_model, decision_vars
from examples.covid19.user import SimulatedUser

logger = logging.getLogger(__name__)
logger.addHandler(logging.NullHandler())

PAPER_WINS = {
    (448, 0.0): 48.429, (448, 0.1): 50.571, (448, 0.2): 44.857, (448, 0.3): 18.714,
    (896, 0.0): 51.143, (896, 0.1): 51.429, (896, 0.2): 47.429, (896, 0.3): 39.571,
    (1344, 0.0): 52.0, (1344, 0.1): 52.0, (1344, 0.2): 41.429, (1344, 0.3): 47.143,
}
"""Table 1 of the paper: mean wins out of 52 over 7 seeds, by (pairs, flip)."""

SWEEP_PAIRS = (448, 896, 1344)
SWEEP_FLIPS = (0.0, 0.1, 0.2, 0.3)
SWEEP_SEEDS = 7
FIGURE_CELLS = ((448, 0.1), (1344, 0.0))
"""The two configurations of the paper's Figure 2."""

DEFAULT_RESULTS_DIR = os.path.join("results", "covid19")
"""Where :func:`best_reference` caches ``phi_best`` (relative to the cwd)."""

CONTEXT_CHUNK = 26
"""Contexts per evaluation / reference task. A task builds the model, loads
the fit and sets up its persistent solver once for all its contexts, and
SCIP's state carries over from one context's solve to the next: with the
evaluation gap of 1e-4 a near-optimal tie can resolve differently with
another chunk size (195 of the sweep's 4368 surrogate decisions differed
between 13 and 26 contexts per task; no win did). The size is fixed, so a
serial and a parallel run give the same results."""

FEASIBLE = (SolutionStatus.optimal, SolutionStatus.feasible)


# ----------------------------------------------------------------------
# Settings and results
# ----------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class ExperimentSettings:
    """Everything a run depends on (defaults: the CLI's small run).

    Attributes:
        pairs: pair counts, one configuration per (pairs, flip).
        flips: fractions of inverted answers, each in ``[0, 1)``.
        seeds: the seeds run for every configuration.
        train_contexts: number of training contexts, evenly spaced in [0, 1].
        eval_contexts: number of evaluation contexts, evenly spaced in [0, 1].
        per_context: candidates sampled per training context (nominal
            optimum included); ``None`` picks :func:`candidates_per_context`.
        pair_coverage: with ``per_context=None``, sample enough candidates
            that each context has ``pair_coverage`` times the distinct pairs
            the largest configuration asks for.
        bias_weight: ``lambda`` of the biased sampling solves.
        bias_width: ``w`` of the random bias targets.
        sample_gap: SCIP relative gap of the sampling solves.
        sample_options: further SCIP parameters of the sampling solves
            (default none). ``pyomo_prefobj.SCIP_OPTIONS`` shorten them by
            10-25% (docs/results.md "Speed") but change SCIP's path and so
            about one sampled decision in five: every documented table was
            sampled with SCIP's defaults.
        sample_time_limit: seconds per sampling solve.
        n_components: PCA coordinates of the learned objective.
        loss: the learner's ranking loss (``"hinge"`` is the paper's).
        min_epochs: epochs trained before early stopping may act.
        max_epochs: epoch limit of the learner.
        fit_options: further ``PreferenceLearner`` hyperparameters passed to
            ``fit`` (e.g. ``{"l2": 1e-2}``).
        trust_region: ``activate``'s trust region (``None``: the paper's
            unbounded reintegration).
        tie_break: ``activate``'s weight of the nominal cost as a tie-breaker
            (``None``: the paper's, none).
        span_penalty: ``activate``'s penalty on the distance from the PCA
            span of the sampled decisions (``None``: the paper's, none).
        rounds: rounds of questions near the learned decisions
            (``PreferenceObjective.ask_in_rounds``; 0: the paper's random
            pairs only).
        round_initial: with ``rounds``, the share of the pairs asked at
            random first (the rest is split over the rounds).
        round_candidates: with ``rounds``, decisions sampled per training
            context and round (``ask_in_rounds``' ``per_context``).
        round_width: with ``rounds``, ``bias_width`` of that sampling.
        scip_options: further SCIP parameters of the nominal, surrogate and
            one-swap solves (e.g. ``{"presolving/maxrestarts": 0}``).
        solve_gap: SCIP relative gap of the nominal, surrogate and one-swap
            solves (``None``: SCIP's default).
        solve_time_limit: seconds per evaluation solve.
        warm_start: start each surrogate solve of an evaluation task from
            the decision of its previous context
            (``warmstart_discrete_vars=True`` of
            :class:`pyomo_prefobj.PersistentScip`, which passes every
            variable's value); the task's first context starts cold.
        baselines: also compute the one-swap baseline and the captured gain
            (needs ``phi_best``, see :func:`best_reference`).
        best_time_limit: SCIP seconds per ``phi_best`` solve.
        results_dir: folder of the ``phi_best`` cache.
        n_jobs: joblib worker processes (1: in this process).
        progress: show tqdm progress bars.
    """

    pairs: tuple = (448,)
    flips: tuple = (0.1,)
    seeds: tuple = (0,)
    train_contexts: int = 26
    eval_contexts: int = 52
    per_context: int = None
    pair_coverage: float = 1.0
    bias_weight: float = 1000.0
    bias_width: float = 1.0
    sample_gap: float = 0.01
    sample_options: dict = dataclasses.field(default_factory=dict)
    sample_time_limit: float = 10.0
    n_components: int = 30
    loss: str = "hinge"
    min_epochs: int = 0
    max_epochs: int = 500
    fit_options: dict = dataclasses.field(default_factory=dict)
    trust_region: float = None
    tie_break: float = None
    span_penalty: float = None
    rounds: int = 0
    round_initial: float = 0.5
    round_candidates: int = 9
    round_width: float = 0.2
    solve_gap: float = None
    scip_options: dict = dataclasses.field(default_factory=dict)
    solve_time_limit: float = 120.0
    warm_start: bool = False
    baselines: bool = False
    best_time_limit: float = 60.0
    results_dir: str = DEFAULT_RESULTS_DIR
    n_jobs: int = 1
    progress: bool = True

    def __post_init__(self):
        for name in ("pairs", "flips", "seeds"):
            value = getattr(self, name)
            value = (value,) if np.isscalar(value) else tuple(value)
            if not value:
                raise ValueError(f"ExperimentSettings.{name} is empty; give at least one value")
            object.__setattr__(self, name, value)
        object.__setattr__(self, "pairs", tuple(int(p) for p in self.pairs))
        object.__setattr__(self, "flips", tuple(float(f) for f in self.flips))
        object.__setattr__(self, "seeds", tuple(int(s) for s in self.seeds))
        if min(self.pairs) < 2:
            raise ValueError(f"ExperimentSettings.pairs must be >= 2; got {self.pairs}")
        if not all(0.0 <= f < 1.0 for f in self.flips):
            raise ValueError(f"ExperimentSettings.flips must lie in [0, 1); got {self.flips}")
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"ExperimentSettings.seeds repeats a seed: {self.seeds}")
        if self.train_contexts < 1 or self.eval_contexts < 1:
            raise ValueError(
                "ExperimentSettings: train_contexts and eval_contexts must be >= 1; got "
                f"{self.train_contexts} and {self.eval_contexts}"
            )
        if self.per_context is not None and self.per_context < 2:
            raise ValueError(
                f"ExperimentSettings.per_context must be >= 2 (pairs need two "
                f"candidates per context); got {self.per_context}"
            )
        if not self.pair_coverage > 0:
            raise ValueError(f"ExperimentSettings.pair_coverage must be > 0; got {self.pair_coverage}")
        if self.rounds < 0:
            raise ValueError(f"ExperimentSettings.rounds must be >= 0; got {self.rounds}")
        if not 0.0 < self.round_initial < 1.0:
            raise ValueError(
                f"ExperimentSettings.round_initial must lie in (0, 1); got {self.round_initial}"
            )
        if self.round_candidates < 2:
            raise ValueError(
                f"ExperimentSettings.round_candidates must be >= 2; got {self.round_candidates}"
            )
        if not (math.isfinite(self.round_width) and self.round_width > 0):
            raise ValueError(f"ExperimentSettings.round_width must be > 0; got {self.round_width}")
        if self.rounds and any(p - int(p * self.round_initial) < self.rounds for p in self.pairs):
            raise ValueError(
                f"ExperimentSettings: {self.rounds} rounds need at least one question each; "
                f"the smallest pair count {min(self.pairs)} leaves fewer after the random ones"
            )
        if self.n_jobs != -1 and self.n_jobs < 1:
            raise ValueError(f"ExperimentSettings.n_jobs must be >= 1 or -1; got {self.n_jobs}")
        for name, option in self.activation.items():
            if option is not None and not option >= 0:
                raise ValueError(f"ExperimentSettings.{name} must be >= 0; got {option}")
        if any(s < 0 for s in self.seeds):
            raise ValueError(f"ExperimentSettings.seeds must be >= 0; got {self.seeds}")
        for name in ("sample_gap", "solve_gap"):
            gap = getattr(self, name)
            if gap is not None and not (math.isfinite(gap) and gap >= 0):
                raise ValueError(f"ExperimentSettings.{name} must be a number >= 0; got {gap}")
        for name in ("sample_time_limit", "solve_time_limit", "best_time_limit"):
            limit = getattr(self, name)
            if not (math.isfinite(limit) and limit > 0):
                raise ValueError(f"ExperimentSettings.{name} must be a number of seconds > 0; "
                                 f"got {limit}")
        # The gap has its own setting; a second one among the SCIP options
        # would be overridden by it without a word.
        for options, gap, name in ((self.sample_options, "sample_gap", "sample_options"),
                                   (self.scip_options, "solve_gap", "scip_options")):
            if "limits/gap" in options and getattr(self, gap) is not None:
                raise ValueError(
                    f"ExperimentSettings.{name} sets limits/gap, which {gap} sets "
                    f"({getattr(self, gap)}); give the gap once, as {gap} (on the command "
                    f"line: {GAP_OPTIONS[gap]})"
                )
        check_scip_options(self.sample_options, "sample_options")
        check_scip_options(self.scip_options, "scip_options")
        # Before hours of sampling, not after: the fit's own checks.
        fixed = {"n_components", "loss", "min_epochs", "max_epochs"} & set(self.fit_options)
        if fixed:
            raise ValueError(
                f"fit option {sorted(fixed)[0]!r} has a setting of its own; set it there "
                "(on the command line: --components, --loss, --min-epochs, --max-epochs), "
                "not among the fit options"
            )
        try:
            learner = PreferenceLearner(
                n_components=self.n_components, loss=self.loss, min_epochs=self.min_epochs,
                max_epochs=self.max_epochs, **self.fit_options,
            )
        except TypeError as exc:
            raise ValueError(f"unknown fit option: {exc}") from exc
        learner.check_options()

    @property
    def activation(self):
        """dict: the keyword arguments of ``PreferenceObjective.activate``."""
        return {"trust_region": self.trust_region, "tie_break": self.tie_break,
                "span_penalty": self.span_penalty}

    @property
    def cells(self):
        """list of ``(n_pairs, flip)``, pairs-major."""
        return [(p, f) for p in self.pairs for f in self.flips]

    @property
    def candidates_per_context(self):
        """int: candidates sampled per training context."""
        if self.per_context is not None:
            return int(self.per_context)
        return candidates_per_context(max(self.pairs), self.train_contexts, self.pair_coverage)


#: Where each gap of :class:`ExperimentSettings` is set on the command line.
GAP_OPTIONS = {"sample_gap": "--sample-gap", "solve_gap": "--gap"}


def check_scip_options(options, name):
    """ValueError unless SCIP knows each parameter of ``options`` and takes its value.

    Checked on an empty SCIP model, before any work, so that a typo does not
    end a long run in its first solve.
    """
    if not options:
        return
    import pyscipopt

    model = pyscipopt.Model()
    model.hideOutput()
    for key, value in options.items():
        try:
            model.getParam(key)
        except (KeyError, LookupError):
            raise ValueError(f"{name}: SCIP has no parameter {key!r}") from None
        try:
            model.setParam(key, value)
        except Exception as exc:  # SCIP's own errors are plain exceptions of several kinds
            raise ValueError(f"{name}: SCIP refuses {key}={value!r} ({exc})") from None


#: Training the documentation recommends (docs/results.md): it avoids the
#: collapsed seeds of the paper's settings. ``ExperimentSettings()`` keeps
#: the paper's training so that Table 1 can be reproduced. Training stops
#: 20 epochs after the last improvement of the validation loss, with the
#: learning-rate schedule of the learner's default patience of 50 (halving
#: after 16 epochs without improvement): every fit of the sweep kept an
#: epoch within a few epochs after ``min_epochs``, so stopping after 20
#: instead of 50 keeps the same networks and saves a fifth of the epochs
#: (docs/results.md, "Speed").
RECOMMENDED_TRAINING = {
    "loss": "logistic",
    "min_epochs": 100,
    "fit_options": {"patience": 20, "lr_patience": 16},
}


def recommended_settings(**overrides):
    """:class:`ExperimentSettings` with :data:`RECOMMENDED_TRAINING`,
    ``pyomo_prefobj.SCIP_OPTIONS`` for the evaluation solves and warm
    starts from the previous context (same optima, shorter solves).
    The sampling solves keep SCIP's defaults, so that both trainings learn
    from the same candidates (see ``sample_options``).

    Args:
        **overrides: any other ``ExperimentSettings`` field.
    """
    fields = {key: (dict(value) if isinstance(value, dict) else value)
              for key, value in RECOMMENDED_TRAINING.items()}
    fields["scip_options"] = dict(SCIP_OPTIONS)
    fields["warm_start"] = True
    fields.update(overrides)
    return ExperimentSettings(**fields)


@dataclasses.dataclass
class ContextSolutions:
    """Decisions solved at a list of contexts, scored by the simulated user.

    All arrays have shape ``(m,)``, one entry per context; ``phi`` is ``nan``
    where the solve found no solution.

    Attributes:
        x0: the contexts.
        phi: composite cost ``R + J / J*``.
        acceptability: ``R``, the Rosenbrock term.
        nominal_cost: ``J`` in $.
        seconds: wall time of each solve (Pyomo translation included).
        scip_seconds: SCIP's own solving time.
        status: termination condition of each solve.
    """

    x0: np.ndarray
    phi: np.ndarray
    acceptability: np.ndarray
    nominal_cost: np.ndarray
    seconds: np.ndarray
    scip_seconds: np.ndarray
    status: list

    @classmethod
    def concatenate(cls, parts):
        """Join the solutions of consecutive context chunks."""
        parts = list(parts)
        return cls(
            **{
                f.name: (
                    sum((p.status for p in parts), [])
                    if f.name == "status"
                    else np.concatenate([getattr(p, f.name) for p in parts])
                )
                for f in dataclasses.fields(cls)
            }
        )

    def to_dict(self):
        """JSON-ready dict of lists (``nan`` becomes ``None``)."""
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            out[f.name] = list(value) if f.name == "status" else _json_floats(value)
        return out


@dataclasses.dataclass
class SeedRun:
    """One seed of one configuration.

    Attributes:
        seed: the seed.
        n_pairs, flip: the configuration.
        wins: contexts where the surrogate beats the nominal decision.
        surrogate: the surrogate's decisions, scored.
        n_answered: pairs the oracle answered (ties are dropped).
        fit: the fit report's summary (epochs, best epoch, accuracies).
        seconds: wall seconds of this run's stages (ask, fit, solve).
        captured_gain: per evaluation context, or ``None`` without baselines.
    """

    seed: int
    n_pairs: int
    flip: float
    wins: int
    surrogate: ContextSolutions
    n_answered: int
    fit: dict
    seconds: dict
    captured_gain: np.ndarray = None

    def to_dict(self):
        out = {
            "seed": self.seed,
            "wins": self.wins,
            "n_answered": self.n_answered,
            "fit": self.fit,
            "seconds": self.seconds,
            "surrogate": self.surrogate.to_dict(),
        }
        if self.captured_gain is not None:
            out["captured_gain"] = _json_floats(self.captured_gain)
        return out


@dataclasses.dataclass
class CellResult:
    """All seeds of one configuration ``(n_pairs, flip)``."""

    n_pairs: int
    flip: float
    runs: list

    @property
    def wins(self):
        """dict seed -> wins."""
        return {run.seed: run.wins for run in self.runs}

    @property
    def mean_wins(self):
        """float: wins averaged over seeds."""
        return float(np.mean([run.wins for run in self.runs]))

    @property
    def paper_wins(self):
        """float or None: the paper's Table 1 value of this cell."""
        return PAPER_WINS.get((self.n_pairs, round(self.flip, 6)))

    def captured_gain(self):
        """dict with the mean and worst captured gain over seeds and contexts
        (``None`` without baselines)."""
        gains = [run.captured_gain for run in self.runs if run.captured_gain is not None]
        if not gains:
            return None
        gains = np.concatenate(gains)
        return {"mean": float(np.nanmean(gains)), "worst": float(np.nanmin(gains))}


@dataclasses.dataclass
class ExperimentResult:
    """What :func:`run_experiment` returns.

    Attributes:
        settings: the settings run.
        nominal: nominal decisions at the evaluation contexts.
        cells: one :class:`CellResult` per configuration, in
            ``settings.cells`` order.
        candidates: per seed, the number of distinct sampled candidates.
        chance: per seed, the share of sampled candidates (nominal optima
            left out) that beat the nominal decision at their context.
        candidate_spread: per seed, min / median / max of ``R`` and ``J / J*``
            over the sampled candidates.
        one_swap: the one-swap decisions at the evaluation contexts
            (baselines only).
        best: ``phi_best`` per evaluation context with SCIP's gap and status
            (baselines only).
        stage_seconds: wall seconds of each stage of the run.
        task_seconds: summed task seconds of each stage (CPU-ish time, all
            workers together).
        wall_seconds: wall time of the whole run.
    """

    settings: ExperimentSettings
    nominal: ContextSolutions
    cells: list
    candidates: dict
    chance: dict
    candidate_spread: dict
    one_swap: ContextSolutions = None
    best: dict = None
    stage_seconds: dict = dataclasses.field(default_factory=dict)
    task_seconds: dict = dataclasses.field(default_factory=dict)
    wall_seconds: float = 0.0

    def cell(self, n_pairs, flip):
        """The :class:`CellResult` of ``(n_pairs, flip)``."""
        for cell in self.cells:
            if cell.n_pairs == n_pairs and math.isclose(cell.flip, flip):
                return cell
        raise KeyError(f"no configuration ({n_pairs} pairs, flip {flip}) in this result")

    @property
    def chance_rate(self):
        """float: the chance win rate averaged over seeds."""
        return float(np.mean(list(self.chance.values())))

    @property
    def one_swap_wins(self):
        """int or None: contexts the one-swap decision wins."""
        if self.one_swap is None:
            return None
        return int(np.sum(self.one_swap.phi < self.nominal.phi))

    def to_dict(self):
        """JSON-ready dict (see the README for the layout)."""
        nominal = self.nominal.to_dict()
        cells = []
        for cell in self.cells:
            cells.append({
                "pairs": cell.n_pairs,
                "flip": cell.flip,
                "paper_wins": cell.paper_wins,
                "wins_per_seed": {str(s): w for s, w in cell.wins.items()},
                "mean_wins": cell.mean_wins,
                "captured_gain": cell.captured_gain(),
                "nominal": nominal,
                "seeds": [run.to_dict() for run in cell.runs],
            })
        out = {
            "settings": dataclasses.asdict(self.settings),
            "candidates_per_context": self.settings.candidates_per_context,
            "wall_seconds": self.wall_seconds,
            "stage_seconds": self.stage_seconds,
            "task_seconds": self.task_seconds,
            "nominal": nominal,
            "baselines": {
                "candidates_per_seed": {str(s): n for s, n in self.candidates.items()},
                "candidate_spread_per_seed": {str(s): v for s, v in self.candidate_spread.items()},
                "chance_rate_per_seed": {str(s): r for s, r in self.chance.items()},
                "chance_rate": self.chance_rate,
                "chance_expected_wins": self.chance_rate * len(self.nominal.x0),
            },
            "cells": cells,
        }
        if self.one_swap is not None:
            out["baselines"]["one_swap"] = self.one_swap.to_dict()
            out["baselines"]["one_swap_wins"] = self.one_swap_wins
        if self.best is not None:
            out["baselines"]["best"] = {k: _json_floats(v) if k != "status" else v
                                        for k, v in self.best.items()}
        return out


def _json_floats(values):
    return [None if not np.isfinite(v) else float(v) for v in np.asarray(values, dtype=float)]


# ----------------------------------------------------------------------
# Small helpers
# ----------------------------------------------------------------------
def add_output_arguments(parser, n_jobs, n_jobs_help, figure_help):
    """The output options both command lines share: ``--n-jobs``, ``--json``,
    ``--figure``, ``--no-progress`` and ``--verbose``.

    Args:
        parser: an ``argparse`` parser or argument group.
        n_jobs: default of ``--n-jobs``.
        n_jobs_help, figure_help: their help texts.
    """
    parser.add_argument("--n-jobs", type=worker_count, default=n_jobs, metavar="J", help=n_jobs_help)
    parser.add_argument("--json", metavar="PATH", help="write every number to PATH")
    parser.add_argument("--figure", metavar="PATH", help=figure_help)
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--verbose", action="store_true", help="log at INFO level")


def add_results_dir_argument(parser):
    """``--results-dir``, the folder of the ``phi_best`` cache, for both command lines."""
    parser.add_argument("--results-dir", default=DEFAULT_RESULTS_DIR, metavar="DIR",
                        help=f"folder of the phi_best cache (default {DEFAULT_RESULTS_DIR})")


def configure_logging(verbose):
    """Log to stderr at INFO level with ``verbose``, else at WARNING."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )


def report_failure(program, exc, verbose=False):
    """Print a failed run's error on one line (stderr); return exit status 1.

    With ``verbose`` the exception propagates with its traceback instead.
    """
    if verbose:
        raise exc
    hint = " (on the command line: --components)" if "n_components" in str(exc) else ""
    print(f"{program}: {exc}{hint}", file=sys.stderr)
    return 1


def report_interrupt(program):
    """Print that a run was stopped (Ctrl-C) on one line; return exit status 130."""
    print(f"{program}: interrupted; nothing was written", file=sys.stderr)
    return 130


def results_cache_path(results_dir):
    """The ``phi_best`` cache file in ``results_dir`` (see :func:`best_reference`)."""
    return os.path.join(results_dir, "phi_best.json")


def given(value, default):
    """A command-line option's ``value`` unless it was left out (``None``);
    a 0 stays 0 (``value or default`` would replace it)."""
    return default if value is None else value


def _int_at_least(text, low):
    """Parse a command-line integer >= ``low``.

    Raises:
        argparse.ArgumentTypeError: ``text`` is not such an integer.
    """
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {text!r}") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"must be an integer >= {low}, got {value}")
    return value


def positive_int(text):
    """Parse a command-line integer >= 1."""
    return _int_at_least(text, 1)


def non_negative_int(text):
    """Parse a command-line integer >= 0 (a seed)."""
    return _int_at_least(text, 0)


def check_output_paths(*paths):
    """ValueError unless each given path can be written, checked before the run.

    A missing folder is fine (it is created when the file is written); a
    path that is a folder, or under one that cannot be created or written,
    is not.
    """
    for path in paths:
        if not path:
            continue
        if os.path.isdir(path):
            raise ValueError(f"cannot write {path}: it is a folder")
        folder = os.path.dirname(os.path.abspath(path))
        while not os.path.exists(folder):
            folder = os.path.dirname(folder)
        try:  # a file made and removed at once: the one test that holds everywhere
            with tempfile.TemporaryFile(dir=folder):
                pass
        except OSError as exc:
            raise ValueError(f"cannot write {path}: no file can be made in {folder} "
                             f"({exc.strerror})") from None


def worker_count(text):
    """Parse ``--n-jobs``: an integer >= 1, or -1 for every core."""
    if text.strip() == "-1":
        return -1
    try:
        return positive_int(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"expected a number of workers >= 1, or -1 for every core; got {text!r}"
        ) from None


def key_value(text):
    """Parse a command-line ``KEY=VALUE``; the value is read as a bool
    (``true``/``false``), int, float or str, and a comma-separated value as
    a tuple of those (``hidden_layers=5,`` is ``(5,)``).

    Raises:
        argparse.ArgumentTypeError: ``text`` has no ``=`` or an empty key.
    """
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    if "," in value:
        return key.strip(), tuple(_scalar(item) for item in value.split(",") if item.strip())
    return key.strip(), _scalar(value)


def _scalar(value):
    """A command-line value read as a bool, int, float or str."""
    if value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value


def contexts(n):
    """``n`` contexts evenly spaced in ``[0, 1]`` (``[0.0]`` when ``n == 1``)."""
    return np.linspace(0.0, 1.0, int(n))


def candidates_per_context(max_pairs, n_contexts, coverage=1.0):
    """Smallest ``k >= 3`` whose ``k (k - 1) / 2`` distinct pairs per context
    hold ``coverage`` times the pairs each context is asked for.

    Args:
        max_pairs: the largest pair count of the run.
        n_contexts: training contexts the pairs are spread over.
        coverage: distinct pairs available per pair asked (>= 1).
    """
    need = coverage * math.ceil(max_pairs / n_contexts)
    k = 3
    while k * (k - 1) / 2 < need:
        k += 1
    return k


def context_seed(seed, index):
    """Seed of the sampling at training context ``index`` of run seed ``seed``."""
    return int(np.random.SeedSequence([int(seed), int(index)]).generate_state(1)[0])


def _model(sample_gap=None, sample_options=None):
    """The COVID-19 model with a (not yet fitted) PreferenceObjective whose
    sampling solves use ``sample_options`` and the gap ``sample_gap``."""
    m = build_model()
    m.pref = PreferenceObjective(
        decisions=decision_vars(m),
        context=[m.x0],
        progress=False,
        solver_options=_scip_options(sample_gap, sample_options) or None,
    )
    return m


def _chunks(values, size=CONTEXT_CHUNK):
    values = np.asarray(values, dtype=float)
    return [values[i:i + size] for i in range(0, len(values), size)]


def _solver(name=None):
    """A persistent SCIP interface: the package's by default, or Pyomo's ``name``.

    A persistent interface keeps its SCIP model between solves and only
    updates what changed: between two contexts, ``activate`` keeps the
    coordinate rows and replaces only the context's rows and objective, so
    the 216-variable model is not translated again (``scip_direct``
    translates it at every solve). :class:`pyomo_prefobj.PersistentScip`
    (the default) is Pyomo's ``scip_persistent`` except that a linear
    objective, such as the learned objective's compact form and the nominal
    cost, becomes SCIP's objective instead of a row on an auxiliary
    variable. The same solutions up to near-optimal ties within the gap;
    ``benchmarks/bench_covid19.py`` compares the three.
    """
    return PersistentScip() if name is None else SolverFactory(name)


def _solve(m, solver, user, x0, time_limit, gap, options=None, warm_start=False):
    """Solve ``m`` with its active objective; score the decision at ``x0``.

    Args:
        solver: the solver of :func:`_solver` used for every solve of ``m``.
        warm_start: start from the model's current values (see
            :class:`pyomo_prefobj.PersistentScip`).

    Returns:
        tuple ``(phi, R, J, wall seconds, SCIP seconds, status)``.
    """
    start = time.perf_counter()
    results = solver.solve(
        m,
        time_limit=time_limit,
        solver_options=_scip_options(gap, options),
        load_solutions=False,
        raise_exception_on_nonoptimal_result=False,
        warmstart_discrete_vars=warm_start,
    )
    if results.termination_condition == TerminationCondition.interrupted:
        # SCIP caught Ctrl-C and stopped early: not a result to count.
        raise KeyboardInterrupt
    if results.solution_status in FEASIBLE:
        results.solution_loader.load_vars()
    seconds = time.perf_counter() - start
    scip_seconds = dict(results.timing_info.items()).get("scip_time")
    scip_seconds = float(scip_seconds) if isinstance(scip_seconds, (int, float)) else seconds
    status = str(results.termination_condition.name)
    if results.solution_status not in FEASIBLE:
        return math.nan, math.nan, math.nan, seconds, scip_seconds, status
    u = m.pref.decision_values()
    R, J = user.terms(u, float(x0))
    return R + J / NOMINAL_OPTIMUM, R, J, seconds, scip_seconds, status


def _scip_options(gap, options):
    """SCIP parameters: ``options`` plus ``limits/gap`` when ``gap`` is given."""
    merged = dict(options or {})
    if gap is not None:
        merged["limits/gap"] = float(gap)
    return merged


def _solutions(rows, x0):
    phi, R, J, seconds, scip_seconds, status = zip(*rows) if rows else ([],) * 6
    return ContextSolutions(
        x0=np.asarray(x0, dtype=float),
        phi=np.array(phi, dtype=float),
        acceptability=np.array(R, dtype=float),
        nominal_cost=np.array(J, dtype=float),
        seconds=np.array(seconds, dtype=float),
        scip_seconds=np.array(scip_seconds, dtype=float),
        status=list(status),
    )


def _run_task(function, args):
    """Run ``function(*args)`` with one BLAS thread; return ``(result, seconds)``.

    One thread everywhere makes a task's floating-point result independent
    of the process it runs in (serial and parallel runs agree bit for bit).
    """
    start = time.perf_counter()
    with threadpoolctl.threadpool_limits(limits=1):
        result = function(*args)
    return result, time.perf_counter() - start


# ----------------------------------------------------------------------
# Tasks (module-level functions: joblib sends them to worker processes)
# ----------------------------------------------------------------------
def nominal_depends_on_context():
    """Whether the context ``m.x0`` appears in the nominal model at all.

    In this example it does not (``x0`` only shifts the simulated user's
    features), so the nominal decision is the same at every context and
    :func:`nominal_solutions` solves once.
    """
    m = build_model()
    for data in m.component_data_objects((pyo.Constraint, pyo.Objective), active=True):
        parts = [data.body, data.lower, data.upper] if data.ctype is pyo.Constraint else [data.expr]
        for part in parts:
            if part is not None and any(
                p is m.x0 for p in identify_mutable_parameters(part)
            ):
                return True
    return False


def nominal_solutions(x0_values, time_limit=120.0, gap=None, one_swap=False, options=None):
    """Solve the nominal MILP at each context and score its decision.

    When :func:`nominal_depends_on_context` is false (this example), one
    solve serves every context: its decision is scored at each context and
    its solve time is repeated.

    Args:
        x0_values: contexts, shape ``(m,)``.
        time_limit: SCIP seconds per solve.
        gap: SCIP relative gap (``None``: SCIP's default).
        one_swap: force the last temporary facility open (the one-swap
            baseline of issue 4) before solving.
        options: further SCIP parameters.

    Returns:
        ContextSolutions: the decisions' scores and solve times.
    """
    m = _model()
    if one_swap:
        m.y[m.temporary.last()].fix(1)
    user, solver = SimulatedUser(), _solver()
    rows = []
    solve_each = nominal_depends_on_context()
    for position, x0 in enumerate(x0_values):
        m.x0.set_value(float(x0))
        if solve_each or position == 0:
            rows.append(_solve(m, solver, user, x0, time_limit, gap, options))
            decision = m.pref.decision_values()
            continue
        R, J = user.terms(decision, float(x0))
        rows.append((R + J / NOMINAL_OPTIMUM, R, J) + rows[0][3:])
    return _solutions(rows, x0_values)


def sample_context(seed, index, x0, per_context, settings):
    """Sample candidates at one training context (seed from ``(seed, index)``).

    Returns:
        Candidates: the distinct candidates sampled at ``x0``.
    """
    m = _model(settings.sample_gap, settings.sample_options)
    return m.pref.sample(
        np.array([[float(x0)]]),
        per_context=per_context,
        seed=context_seed(seed, index),
        bias_weight=settings.bias_weight,
        bias_width=settings.bias_width,
        time_limit=settings.sample_time_limit,
    )


def _composite_score(user):
    def score(candidate):
        return user.score(candidate.u, float(candidate.context[0]))

    return score


def fit_with_settings(pref, pairs, candidates, seed, settings, loss=None):
    """``pref.fit`` with the training of ``settings``; returns the FitReport.

    Args:
        pref: the model's :class:`~pyomo_prefobj.PreferenceObjective`.
        pairs: the answers to learn from.
        candidates: the seed's candidates (they give the PCA basis).
        seed: seed of the fit.
        settings: :class:`ExperimentSettings` (``n_components``, ``loss``,
            ``min_epochs``, ``max_epochs``, ``fit_options``).
        loss: a loss instead of ``settings.loss`` (e.g. ``"flip"``).
    """
    options = fit_keywords(settings, seed)
    if loss is not None:
        options["loss"] = loss
    return pref.fit(pairs, candidates=candidates, **options)


def fit_keywords(settings, seed):
    """The keyword arguments of ``fit`` for the training of ``settings``."""
    return {
        "n_components": settings.n_components,
        "seed": seed,
        "loss": settings.loss,
        "min_epochs": settings.min_epochs,
        "max_epochs": settings.max_epochs,
        "progress": False,
        **settings.fit_options,
    }


def fit_summary(report):
    """The JSON-ready numbers of a FitReport."""
    return {
        "epochs": report.epochs,
        "best_epoch": report.best_epoch,
        "train_accuracy": report.train_accuracy,
        "validation_accuracy": report.validation_accuracy,
        "explained_variance": report.explained_variance,
        "n_components": report.n_components,
    }


def fit_in_rounds(pref, candidates, seed, n_pairs, oracle, settings):
    """``pref.ask_in_rounds`` with the rounds, training and solver settings
    of ``settings``; returns ``(pairs, report)``: every answer and the
    FitReport of the last fit (the one the component holds)."""
    result = pref.ask_in_rounds(
        candidates,
        n_pairs,
        oracle,
        rounds=settings.rounds,
        initial=int(n_pairs * settings.round_initial),
        per_context=settings.round_candidates,
        bias_width=settings.round_width,
        bias_weight=settings.bias_weight,
        activation=settings.activation,
        solver=_solver(),
        solve_options={
            "solver_options": _scip_options(settings.solve_gap, settings.scip_options),
            "time_limit": settings.solve_time_limit,
        },
        fit_options=fit_keywords(settings, seed),
        sample_options={"time_limit": settings.sample_time_limit},
        seed=seed,
        progress=False,
    )
    return result.pairs, result.reports[-1]


def fit_configuration(candidates, seed, n_pairs, flip, settings, path):
    """Ask ``n_pairs`` pairs (``flip`` inverted) and fit; save the fit to ``path``.

    With ``settings.rounds``, the questions are asked in rounds
    (:func:`fit_in_rounds`) and ``ask`` holds the time of the whole loop.

    Returns:
        dict: ``n_answered``, the fit summary and the seconds of ask and fit.
    """
    m = _model(settings.sample_gap, settings.sample_options)
    user = SimulatedUser()
    start = time.perf_counter()
    oracle = ScoreOracle(_composite_score(user), flip=flip, seed=seed)
    if settings.rounds:
        pairs, report = fit_in_rounds(m.pref, candidates, seed, n_pairs, oracle, settings)
        asked = fitted = time.perf_counter()
    else:
        pairs = m.pref.ask(candidates, n_pairs, oracle, seed=seed, progress=False)
        asked = time.perf_counter()
        report = fit_with_settings(m.pref, pairs, candidates, seed, settings)
        fitted = time.perf_counter()
    m.pref.save(path)
    return {
        "n_answered": len(pairs),
        "fit": fit_summary(report),
        "seconds": {"ask": asked - start, "fit": fitted - asked},
    }


def surrogate_solutions(path, x0_values, time_limit=120.0, gap=None, activation=None,
                        options=None, solver=None, warm_start=False):
    """Load a saved fit and solve the model with it at each context.

    Args:
        activation: keyword arguments of ``activate`` (see
            :attr:`ExperimentSettings.activation`).
        options: further SCIP parameters.
        solver: ``None`` (:class:`pyomo_prefobj.PersistentScip`) or the name
            of a Pyomo SCIP interface (``pyomo.contrib.solver``).
        warm_start: start each solve from the previous context's decision
            (the first context starts cold).

    Returns:
        ContextSolutions: the surrogate decisions' scores and solve times.
    """
    m = build_model()
    m.pref = PreferenceObjective.load(path)
    user, solver = SimulatedUser(), _solver(solver)
    rows = []
    for x0 in x0_values:
        m.pref.activate([float(x0)], **(activation or {}))
        try:
            rows.append(_solve(m, solver, user, x0, time_limit, gap, options, warm_start))
        finally:
            m.pref.deactivate()
    return _solutions(rows, x0_values)


def evaluate_fits(runner, paths, x0_values, settings):
    """Solve each saved fit in ``paths`` at every context of ``x0_values``.

    One task per fit and chunk of contexts, with the solver settings of
    ``settings`` (gap, time limit, SCIP options, activation, warm start).

    Returns:
        list of ContextSolutions, one per path, in order.
    """
    chunks = _chunks(x0_values)
    solve = functools.partial(
        surrogate_solutions,
        time_limit=settings.solve_time_limit,
        gap=settings.solve_gap,
        activation=settings.activation,
        options=dict(settings.scip_options),
        warm_start=settings.warm_start,
    )
    solved = runner("solving", [(solve, (path, chunk)) for path in paths for chunk in chunks])
    return [
        ContextSolutions.concatenate(solved[k * len(chunks): (k + 1) * len(chunks)])
        for k in range(len(paths))
    ]


def best_solution(x0, time_limit):
    """``phi_best`` at ``x0`` (:func:`examples.covid19.best.best_composite`)."""
    from examples.covid19 import best

    solution = best.best_composite(x0=float(x0), time_limit=time_limit)
    return {
        "x0": float(x0),
        "phi": solution.phi,
        "acceptability": solution.acceptability,
        "nominal_cost": solution.nominal_cost,
        "dual_bound": solution.dual_bound,
        "gap": solution.gap,
        "status": solution.status,
        "seconds": solution.solve_time,
    }


# ----------------------------------------------------------------------
# The run
# ----------------------------------------------------------------------
class _Runner:
    """Runs task lists on joblib workers with one progress bar per stage."""

    def __init__(self, n_jobs, progress):
        self.n_jobs = int(n_jobs)
        self.progress = bool(progress)
        self.stage_seconds = {}
        self.task_seconds = {}
        self._parallel = joblib.Parallel(n_jobs=self.n_jobs, return_as="generator")

    def __call__(self, stage, tasks):
        """Run ``[(function, args), ...]``; return the results in order."""
        start = time.perf_counter()
        results, spent = [], 0.0
        if tasks:
            calls = (joblib.delayed(_run_task)(f, args) for f, args in tasks)
            bar = tqdm(total=len(tasks), desc=stage, disable=not self.progress, leave=False)
            with bar:
                for result, seconds in self._parallel(calls):
                    results.append(result)
                    spent += seconds
                    bar.update(1)
        self.stage_seconds[stage] = self.stage_seconds.get(stage, 0.0) + time.perf_counter() - start
        self.task_seconds[stage] = self.task_seconds.get(stage, 0.0) + spent
        return results


def best_reference(x0_values, time_limit=60.0, results_dir=DEFAULT_RESULTS_DIR, runner=None):
    """``phi_best`` per context, read from (and added to) a JSON cache.

    The cache ``<results_dir>/phi_best.json`` maps ``"%.12g" % x0`` to the
    :func:`best_solution` dict; an entry solved with a smaller time limit
    that did not prove optimality is solved again.

    Returns:
        dict of arrays (``phi``, ``gap``, ``dual_bound``, ...) and a
        ``status`` list, one entry per context.
    """
    runner = runner or _Runner(1, False)
    path = results_cache_path(results_dir)
    cache = {}
    if os.path.exists(path):
        with open(path) as handle:
            cache = json.load(handle).get("contexts", {})
    keys = [f"{float(x0):.12g}" for x0 in x0_values]

    def usable(entry):
        return entry is not None and (
            entry["status"] == "optimal" or entry.get("time_limit", 0.0) >= time_limit
        )

    missing = [(x0, key) for x0, key in zip(x0_values, keys) if not usable(cache.get(key))]
    solved = runner("best", [(best_solution, (x0, time_limit)) for x0, _ in missing])
    for (_, key), entry in zip(missing, solved):
        entry["time_limit"] = float(time_limit)
        cache[key] = entry
    if missing:
        os.makedirs(results_dir, exist_ok=True)
        with open(path + ".tmp", "w") as handle:
            json.dump({"j_weight": 1.0, "contexts": cache}, handle, indent=1, sort_keys=True)
        os.replace(path + ".tmp", path)
    entries = [cache[key] for key in keys]
    out = {
        name: np.array([e[name] for e in entries], dtype=float)
        for name in ("x0", "phi", "acceptability", "nominal_cost", "dual_bound", "gap", "seconds")
    }
    out["status"] = [e["status"] for e in entries]
    return out


def captured_gain(phi_nominal, phi_surrogate, phi_best):
    """``(phi_nom - phi_sur) / (phi_nom - phi_best)`` elementwise.

    1 means the surrogate found the user's ideal; 0, no better than nominal;
    negative, worse. A failed surrogate solve (``nan``) stays ``nan`` and is
    left out of means, as is a context where nothing beats the nominal.
    """
    phi_nominal = np.asarray(phi_nominal, dtype=float)
    room = phi_nominal - np.asarray(phi_best, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(room > 0, (phi_nominal - np.asarray(phi_surrogate)) / room, np.nan)


def _candidate_statistics(candidates, nominal_train, user):
    """Chance rate and spread of one seed's candidates."""
    x0 = candidates.context[:, 0]
    R, J = user.terms(candidates.u, x0)
    phi = R + J / NOMINAL_OPTIMUM
    reference = nominal_train.phi[candidates.group]
    # Leave out the nominal optima themselves (they never win strictly).
    is_nominal = np.isclose(phi, reference, rtol=0.0, atol=1e-9)
    beats = phi[~is_nominal] < reference[~is_nominal]
    spread = {
        "R": [float(R.min()), float(np.median(R)), float(R.max())],
        "J_over_J_star": [float(v / NOMINAL_OPTIMUM) for v in (J.min(), np.median(J), J.max())],
        "per_context": [int(n) for n in np.bincount(candidates.group)],
    }
    return float(beats.mean()) if len(beats) else math.nan, spread


def run_experiment(settings=None):
    """Run the protocol for every seed and configuration of ``settings``.

    Args:
        settings: :class:`ExperimentSettings` (default: the small run).

    Returns:
        ExperimentResult
    """
    from pyomo_prefobj import Candidates

    settings = settings or ExperimentSettings()
    start = time.perf_counter()
    runner = _Runner(settings.n_jobs, settings.progress)
    user = SimulatedUser()
    train_x0 = contexts(settings.train_contexts)
    eval_x0 = contexts(settings.eval_contexts)
    gap, limit = settings.solve_gap, settings.solve_time_limit

    # Stage 1: nominal decisions (seed-independent) and the one-swap baseline.
    eval_chunks = _chunks(eval_x0)
    if nominal_depends_on_context():
        nominal_chunks, train_chunks = eval_chunks, _chunks(train_x0)
    else:  # one solve serves every context
        nominal_chunks, train_chunks = [eval_x0], [train_x0]
    options = dict(settings.scip_options)
    tasks = [(nominal_solutions, (c, limit, gap, False, options))
             for c in nominal_chunks + train_chunks]
    if settings.baselines:
        tasks += [(nominal_solutions, (c, limit, gap, True, options)) for c in nominal_chunks]
    solved = runner("nominal", tasks)
    n_eval, n_train = len(nominal_chunks), len(train_chunks)
    nominal = ContextSolutions.concatenate(solved[:n_eval])
    nominal_train = ContextSolutions.concatenate(solved[n_eval: n_eval + n_train])
    one_swap = (
        ContextSolutions.concatenate(solved[n_eval + n_train:]) if settings.baselines else None
    )
    best = (
        best_reference(eval_x0, settings.best_time_limit, settings.results_dir, runner)
        if settings.baselines
        else None
    )

    # Stage 2: candidates, once per seed, one task per training context.
    per_context = settings.candidates_per_context
    tasks = [
        (sample_context, (seed, index, x0, per_context, settings))
        for seed in settings.seeds
        for index, x0 in enumerate(train_x0)
    ]
    sampled = runner("sampling", tasks)
    candidates, chance, spread = {}, {}, {}
    for s, seed in enumerate(settings.seeds):
        parts = sampled[s * len(train_x0): (s + 1) * len(train_x0)]
        candidates[seed] = Candidates.concatenate(parts)
        chance[seed], spread[seed] = _candidate_statistics(candidates[seed], nominal_train, user)

    # Stages 3-4: pairs and fit per (seed, configuration), then the solves.
    workdir = tempfile.mkdtemp(prefix="covid19_fits_")
    try:
        runs = [(seed, n_pairs, flip) for n_pairs, flip in settings.cells for seed in settings.seeds]
        paths = [
            os.path.join(workdir, f"fit_{seed}_{n_pairs}_{flip:g}.npz")
            for seed, n_pairs, flip in runs
        ]
        fits = runner("fitting", [
            (fit_configuration, (candidates[seed], seed, n_pairs, flip, settings, path))
            for (seed, n_pairs, flip), path in zip(runs, paths)
        ])
        surrogates = evaluate_fits(runner, paths, eval_x0, settings)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    cells = {cell: CellResult(cell[0], cell[1], []) for cell in settings.cells}
    for (seed, n_pairs, flip), fit, surrogate in zip(runs, fits, surrogates):
        seconds = dict(fit["seconds"])
        seconds["solve"] = float(np.sum(surrogate.seconds))
        cells[(n_pairs, flip)].runs.append(SeedRun(
            seed=seed,
            n_pairs=n_pairs,
            flip=flip,
            wins=int(np.sum(surrogate.phi < nominal.phi)),
            surrogate=surrogate,
            n_answered=fit["n_answered"],
            fit=fit["fit"],
            seconds=seconds,
            captured_gain=(
                captured_gain(nominal.phi, surrogate.phi, best["phi"]) if best else None
            ),
        ))

    return ExperimentResult(
        settings=settings,
        nominal=nominal,
        cells=[cells[cell] for cell in settings.cells],
        candidates={seed: len(c) for seed, c in candidates.items()},
        chance=chance,
        candidate_spread=spread,
        one_swap=one_swap,
        best=best,
        stage_seconds=runner.stage_seconds,
        task_seconds=runner.task_seconds,
        wall_seconds=time.perf_counter() - start,
    )


# ----------------------------------------------------------------------
# Reporting
# ----------------------------------------------------------------------
def format_table(result):
    """Text tables in the paper's layout: rows pairs, columns flipped %.

    Each cell shows our mean wins with the paper's in brackets; with
    baselines a second table shows the captured gain (mean / worst).
    """
    settings = result.settings
    n_eval = len(result.nominal.x0)
    header = ["pairs"] + [f"{round(100 * f):d}% flipped" for f in settings.flips]
    rows = []
    for n_pairs in settings.pairs:
        row = [str(n_pairs)]
        for flip in settings.flips:
            cell = result.cell(n_pairs, flip)
            paper = cell.paper_wins
            row.append(f"{cell.mean_wins:.3f}" + (f" ({paper:.3f})" if paper is not None else ""))
        rows.append(row)
    lines = [
        f"Mean wins out of {n_eval} over {len(settings.seeds)} seed(s); "
        "the paper's Table 1 in brackets.",
        *_text_table(header, rows),
    ]
    lines.append("")
    lines.append("Wins per seed:")
    for cell in result.cells:
        per_seed = " ".join(str(w) for w in cell.wins.values())
        lines.append(f"  {cell.n_pairs:5d} pairs, {round(100 * cell.flip):2d}% flipped: {per_seed}")
    if any(cell.captured_gain() for cell in result.cells):
        rows = []
        for n_pairs in settings.pairs:
            row = [str(n_pairs)]
            for flip in settings.flips:
                gain = result.cell(n_pairs, flip).captured_gain()
                row.append(f"{gain['mean']:.3f} / {gain['worst']:.3f}")
            rows.append(row)
        lines += ["", "Captured gain (phi_nom - phi_sur) / (phi_nom - phi_best), mean / worst:"]
        lines += _text_table(header, rows)
    lines.append("")
    lines.append(
        f"Chance: a random sampled candidate beats the nominal decision "
        f"{100 * result.chance_rate:.1f}% of the time "
        f"(= {result.chance_rate * n_eval:.1f} of {n_eval} contexts)."
    )
    if result.one_swap is not None:
        lines.append(
            f"One-swap (last temporary facility forced open): "
            f"{result.one_swap_wins} of {n_eval} wins."
        )
    if result.best is not None:
        unproven = [s for s in result.best["status"] if s != "optimal"]
        lines.append(
            f"phi_best: {len(result.best['status']) - len(unproven)} of {n_eval} contexts "
            f"proven optimal, largest gap {np.max(result.best['gap']):.2g}."
        )
    failed = sum(int(np.sum(~np.isfinite(run.surrogate.phi))) for c in result.cells for run in c.runs)
    if failed:
        lines.append(f"{failed} surrogate solve(s) found no decision (counted as losses).")
    surrogate = np.concatenate([run.surrogate.scip_seconds for c in result.cells for run in c.runs])
    nominal = result.nominal.scip_seconds
    lines.append(
        f"SCIP seconds per solve, median / max: nominal {np.median(nominal):.3f} / "
        f"{nominal.max():.3f}, surrogate {np.median(surrogate):.3f} / {surrogate.max():.3f}."
    )
    stages = ", ".join(f"{k} {v:.1f}s" for k, v in result.stage_seconds.items())
    lines.append(f"Wall time {result.wall_seconds:.1f}s ({stages}; n_jobs={settings.n_jobs}).")
    return "\n".join(lines)


def _text_table(header, rows):
    widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]

    def line(cells):
        return "| " + " | ".join(c.rjust(w) for c, w in zip(cells, widths)) + " |"

    return [line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|"] + [
        line(r) for r in rows
    ]


def save_json(result, path):
    """Write ``result.to_dict()`` (an :class:`ExperimentResult` or another
    result with that method) to ``path``, creating its folder."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    with open(path, "w") as handle:
        json.dump(result.to_dict(), handle, indent=1)


def plot_figure(result, path, cells=None):
    """Figure 2: per context, mean +- std over seeds of dR and dJ.

    ``dR = R_nom - R_sur`` (> 0: more acceptable) and ``dJ = J_sur - J_nom``
    (> 0: less efficient), one row per configuration.

    Args:
        result: an :class:`ExperimentResult`.
        path: PNG file to write.
        cells: ``[(n_pairs, flip), ...]``; default: the paper's two cells of
            Figure 2 that were run, else every configuration run.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if cells is None:
        run = {(c.n_pairs, round(c.flip, 6)) for c in result.cells}
        cells = [cell for cell in FIGURE_CELLS if cell in run] or [
            (c.n_pairs, c.flip) for c in result.cells
        ]
    nominal = result.nominal
    x0 = nominal.x0
    fig, axes = plt.subplots(len(cells), 2, figsize=(10, 3.2 * len(cells)), squeeze=False)
    for row, (n_pairs, flip) in enumerate(cells):
        cell = result.cell(n_pairs, flip)
        d_r = np.array([nominal.acceptability - run.surrogate.acceptability for run in cell.runs])
        d_j = np.array([run.surrogate.nominal_cost - nominal.nominal_cost for run in cell.runs])
        for col, (values, label, color) in enumerate((
            (d_r, r"$\Delta R = R_{nom} - R_{sur}$", "tab:blue"),
            (d_j, r"$\Delta J = J_{sur} - J_{nom}$  [\$]", "tab:red"),
        )):
            ax = axes[row, col]
            mean, std = np.nanmean(values, axis=0), np.nanstd(values, axis=0)
            ax.plot(x0, mean, color=color, marker=".", lw=1.2)
            ax.fill_between(x0, mean - std, mean + std, color=color, alpha=0.25, lw=0)
            ax.axhline(0.0, color="black", lw=0.6)
            ax.set_xlabel(r"context $x_0$")
            ax.set_ylabel(label)
            ax.set_title(
                f"{n_pairs} pairs, {round(100 * flip)}% flipped "
                f"({len(cell.runs)} seed{'s' if len(cell.runs) != 1 else ''}, "
                f"{cell.mean_wins:.1f} wins)",
                fontsize=10,
            )
            ax.grid(alpha=0.3)
    fig.tight_layout()
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
