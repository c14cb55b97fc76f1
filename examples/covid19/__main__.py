"""Command line of the COVID-19 experiment: ``python -m examples.covid19``.

Without options it runs one small configuration (448 pairs, 10% flipped,
one seed) and prints the table in the paper's layout; ``--sweep`` runs the
paper's full grid. See ``examples/covid19/README.md``.
"""

import argparse
import sys

from pyomo_prefobj import PreferenceObjectiveError

from examples.covid19 import experiment


def _parser():
    parser = argparse.ArgumentParser(
        prog="python -m examples.covid19",
        description=(
            "Learn the simulated user's objective from pairwise preferences and "
            "count the evaluation contexts where it beats the nominal decision "
            "(the paper's Table 1 and Figure 2)."
        ),
    )
    grid = parser.add_argument_group("configurations")
    grid.add_argument("--pairs", type=experiment.positive_int, nargs="+", default=None, metavar="N",
                      help="pair counts (default 448; sweep: 448 896 1344)")
    grid.add_argument("--flip", type=float, nargs="+", default=None, metavar="F",
                      help="fractions of flipped labels in [0, 1) (default 0.1; "
                           "sweep: 0 0.1 0.2 0.3)")
    grid.add_argument("--seeds", type=experiment.positive_int, default=None, metavar="K",
                      help="number of seeds, run as 0..K-1 (default 1; sweep: 7)")
    grid.add_argument("--first-seed", type=experiment.non_negative_int, default=0, metavar="S",
                      help="first seed (default 0)")
    grid.add_argument("--sweep", action="store_true",
                      help="the paper's grid: pairs {448, 896, 1344} x flipped "
                           "{0, 10, 20, 30}%%, 7 seeds, --pair-coverage 2, with the "
                           "paper's training, SCIP's defaults and no warm start "
                           "(--pairs/--flip/--seeds and the others override)")
    protocol = parser.add_argument_group("protocol")
    protocol.add_argument("--train-contexts", type=experiment.positive_int, default=26, metavar="M",
                          help="training contexts evenly spaced in [0, 1] (default 26)")
    protocol.add_argument("--eval-contexts", type=experiment.positive_int, default=52, metavar="M",
                          help="evaluation contexts evenly spaced in [0, 1] (default 52)")
    protocol.add_argument("--per-context", type=experiment.positive_int, default=None, metavar="K",
                          help="candidates sampled per training context (default: "
                               "enough distinct pairs for the largest --pairs, "
                               "times --pair-coverage)")
    protocol.add_argument("--pair-coverage", type=float, default=None, metavar="C",
                          help="distinct pairs available per pair asked when "
                               "--per-context is not given (default 1; sweep: 2)")
    protocol.add_argument("--bias-weight", type=float, default=1000.0, metavar="LAMBDA",
                          help="weight of the random bias in the sampling solves (default 1000)")
    protocol.add_argument("--bias-width", type=float, default=1.0, metavar="W",
                          help="half-width of the random bias targets, relative to "
                               "each decision's scale (default 1)")
    protocol.add_argument("--sample-gap", type=float, default=0.01, metavar="G",
                          help="SCIP relative gap of the sampling solves (default 0.01); "
                               "it changes which decisions are sampled")
    protocol.add_argument("--sample-scip-option", action="append", default=[], metavar="KEY=VALUE",
                          type=experiment.key_value,
                          help="another SCIP parameter of the sampling solves (repeatable; "
                               "default: SCIP's own; the gap is --sample-gap); it changes "
                               "which decisions are sampled")
    learning = parser.add_argument_group("learning")
    learning.add_argument("--loss", default=None,
                          help="ranking loss of fit: hinge (the paper's), logistic, flip "
                               "(default logistic, the recommended setting; --sweep and "
                               "--paper-settings: hinge)")
    learning.add_argument("--min-epochs", type=int, default=None, metavar="E",
                          help="epochs before early stopping may act (default 100; "
                               "--sweep and --paper-settings: 0, the paper's)")
    learning.add_argument("--paper-settings", action="store_true",
                          help="train as the paper did (hinge loss, early stopping from "
                               "the first epoch); the default of --sweep")
    learning.add_argument("--max-epochs", type=int, default=500, metavar="E",
                          help="epoch limit (default 500)")
    learning.add_argument("--components", type=experiment.positive_int, default=30, metavar="R",
                          help="PCA coordinates of the learned objective (default 30)")
    learning.add_argument("--fit-option", action="append", default=[], metavar="KEY=VALUE",
                          type=experiment.key_value,
                          help="another PreferenceLearner hyperparameter, e.g. l2=0.01 "
                               "(repeatable; VALUE read as int, float or string, a VALUE "
                               "with commas as a tuple: hidden_layers=20,20 or, for one "
                               "layer, hidden_layers=5, with its trailing comma)")
    learning.add_argument("--trust-region", type=float, default=None, metavar="T",
                          help="keep the surrogate's solution within the PCA range of the "
                               "sampled decisions, widened by T of that range per side "
                               "(default: unbounded, the paper's)")
    learning.add_argument("--tie-break", type=float, default=None, metavar="EPS",
                          help="add EPS * J / |J(mu)| to the learned objective so the nominal "
                               "cost decides directions the preferences leave flat "
                               "(default: none, the paper's)")
    learning.add_argument("--span-penalty", type=float, default=None, metavar="A",
                          help="penalize the l1 distance of the surrogate's solution from "
                               "the PCA span of the sampled decisions, A times the learned "
                               "curvature (try 0.03; default: none, the paper's)")
    questions = parser.add_argument_group("questions in rounds")
    questions.add_argument("--rounds", type=experiment.non_negative_int, default=0, metavar="N",
                           help="ask part of the pairs in N rounds about decisions sampled "
                                "near the learned decisions (PreferenceObjective."
                                "ask_in_rounds; default 0: random pairs only, the paper's)")
    questions.add_argument("--round-initial", type=float, default=0.5, metavar="F",
                           help="with --rounds, the share of the pairs asked at random "
                                "first (default 0.5)")
    questions.add_argument("--round-candidates", type=int, default=9, metavar="K",
                           help="with --rounds, decisions sampled per training context and "
                                "round (default 9)")
    questions.add_argument("--round-width", type=float, default=0.2, metavar="W",
                           help="with --rounds, bias width of that sampling (default 0.2)")
    solving = parser.add_argument_group("solving and baselines")
    solving.add_argument("--gap", type=float, default=None, metavar="G",
                         help="SCIP relative gap of the evaluation solves (default: "
                              "SCIP's own, 0; not also as --scip-option limits/gap)")
    solving.add_argument("--scip-option", action="append", default=[], metavar="KEY=VALUE",
                         type=experiment.key_value,
                         help="a SCIP parameter of the evaluation solves, e.g. "
                              "presolving/maxrestarts=0 (repeatable); added to "
                              "pyomo_prefobj.SCIP_OPTIONS, which the recommended "
                              "training uses (--sweep and --paper-settings: SCIP's defaults)")
    solving.add_argument("--warm-start", action=argparse.BooleanOptionalAction, default=None,
                         help="start each evaluation solve from the previous context's "
                              "decision (default: on with the recommended training, off "
                              "with --sweep and --paper-settings)")
    solving.add_argument("--time-limit", type=float, default=120.0, metavar="S",
                         help="SCIP seconds per evaluation solve (default 120)")
    solving.add_argument("--baselines", action="store_true",
                         help="also the one-swap baseline and the captured gain "
                              "(solves phi_best per evaluation context once, cached "
                              "in --results-dir)")
    solving.add_argument("--best-time-limit", type=float, default=60.0, metavar="S",
                         help="SCIP seconds per phi_best solve (default 60)")
    experiment.add_results_dir_argument(solving)
    experiment.add_output_arguments(
        parser.add_argument_group("output"),
        n_jobs=2,
        n_jobs_help="worker processes (default 2; 1: no workers; -1: all cores); the "
                    "numbers do not depend on it",
        figure_help="write Figure 2 (dR and dJ per context) as a PNG",
    )
    return parser


def settings_from_args(args):
    """:class:`~examples.covid19.experiment.ExperimentSettings` of parsed args."""
    sweep = args.sweep
    pairs = experiment.given(args.pairs, experiment.SWEEP_PAIRS if sweep else (448,))
    flips = experiment.given(args.flip, experiment.SWEEP_FLIPS if sweep else (0.1,))
    n_seeds = experiment.given(args.seeds, experiment.SWEEP_SEEDS if sweep else 1)
    coverage = experiment.given(args.pair_coverage, 2.0 if sweep else 1.0)
    # The paper's training reproduces Table 1 (ExperimentSettings' defaults);
    # the recommended one avoids collapsed seeds (docs/results.md) and solves
    # with SCIP_OPTIONS.
    paper = sweep or args.paper_settings
    make = experiment.ExperimentSettings if paper else experiment.recommended_settings
    base = make()
    loss = args.loss or base.loss
    min_epochs = args.min_epochs if args.min_epochs is not None else base.min_epochs
    fit_options = {**base.fit_options, **dict(args.fit_option)}
    scip_options = {**base.scip_options, **dict(args.scip_option)}
    sample_options = {**base.sample_options, **dict(args.sample_scip_option)}
    return make(
        pairs=tuple(pairs),
        flips=tuple(flips),
        seeds=tuple(range(args.first_seed, args.first_seed + n_seeds)),
        train_contexts=args.train_contexts,
        eval_contexts=args.eval_contexts,
        per_context=args.per_context,
        pair_coverage=coverage,
        bias_weight=args.bias_weight,
        bias_width=args.bias_width,
        sample_gap=args.sample_gap,
        sample_options=sample_options,
        n_components=args.components,
        loss=loss,
        min_epochs=min_epochs,
        max_epochs=args.max_epochs,
        fit_options=fit_options,
        trust_region=args.trust_region,
        tie_break=args.tie_break,
        span_penalty=args.span_penalty,
        rounds=args.rounds,
        round_initial=args.round_initial,
        round_candidates=args.round_candidates,
        round_width=args.round_width,
        solve_gap=args.gap,
        scip_options=scip_options,
        solve_time_limit=args.time_limit,
        warm_start=experiment.given(args.warm_start, base.warm_start),
        baselines=args.baselines,
        best_time_limit=args.best_time_limit,
        results_dir=args.results_dir,
        n_jobs=args.n_jobs,
        progress=not args.no_progress,
    )


def main(argv=None):
    """Run the experiment from the command line; return the exit status."""
    args = _parser().parse_args(argv)
    experiment.configure_logging(args.verbose)
    try:
        settings = settings_from_args(args)
        experiment.check_output_paths(args.json, args.figure,
                                      experiment.results_cache_path(args.results_dir))
    except ValueError as exc:
        print(f"python -m examples.covid19: {exc}", file=sys.stderr)
        return 2
    print(
        f"{len(settings.cells)} configuration(s) x {len(settings.seeds)} seed(s); "
        f"{settings.train_contexts} training contexts x {settings.candidates_per_context} "
        f"candidates, {settings.eval_contexts} evaluation contexts, n_jobs={settings.n_jobs}",
        flush=True,
    )
    try:
        result = experiment.run_experiment(settings)
    except PreferenceObjectiveError as exc:
        return experiment.report_failure("python -m examples.covid19", exc, args.verbose)
    except KeyboardInterrupt:
        return experiment.report_interrupt("python -m examples.covid19")
    print(experiment.format_table(result))
    if args.json:
        experiment.save_json(result, args.json)
        print(f"wrote {args.json}")
    if args.figure:
        experiment.plot_figure(result, args.figure)
        print(f"wrote {args.figure}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
