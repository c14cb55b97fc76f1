"""Per-stage time of one COVID-19 configuration (issue: speed of the example).

Runs one configuration (default 448 pairs, 10% flipped, one seed, the
recommended training) through ``examples.covid19.experiment`` in this
process (``n_jobs=1``, so stage times are not blurred by parallel workers)
and prints the wall time of each stage, the SCIP time of the nominal and
surrogate solves (median and worst) and their ratios (targets: median
<= 1.5x, worst <= 10x the nominal solve). Then it fits the same
configuration once more and solves it at every evaluation context twice,
through Pyomo's ``scip_persistent`` (the experiment's choice: one SCIP model,
only the context's rows and objective updated between contexts) and
through ``scip_direct`` (the whole model translated at every solve), and
prints the time per solve outside SCIP (Pyomo's update or translation and
loading the solution) of each, and the time per context of ``activate``.

Run from the repository root: ``python benchmarks/bench_covid19.py [--pairs N] [--flip F]``.
"""

import argparse
import pathlib
import sys
import time

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # the examples package

from examples.covid19 import experiment  # noqa: E402
from examples.covid19.experiment import recommended_settings, run_experiment  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=448)
    parser.add_argument("--flip", type=float, default=0.1)
    parser.add_argument("--eval-contexts", type=int, default=52)
    args = parser.parse_args()
    settings = recommended_settings(
        pairs=(args.pairs,), flips=(args.flip,), seeds=(0,), eval_contexts=args.eval_contexts,
        solve_gap=1e-4, n_jobs=1, progress=False,
    )
    result = run_experiment(settings)
    print(f"one configuration: {args.pairs} pairs, {args.flip:.0%} flipped, seed 0, "
          f"{settings.train_contexts} training / {args.eval_contexts} evaluation contexts")
    for stage, seconds in result.stage_seconds.items():
        print(f"  {stage:<10} {seconds:8.1f} s")
    print(f"  {'total':<10} {result.wall_seconds:8.1f} s")
    nominal = result.nominal.scip_seconds
    surrogate = np.concatenate([run.surrogate.scip_seconds for run in result.cells[0].runs])
    median_nominal = float(np.median(nominal))
    print(f"SCIP seconds, nominal: median {median_nominal:.3f}, max {nominal.max():.3f}")
    print(f"SCIP seconds, surrogate: median {np.median(surrogate):.3f}, max {surrogate.max():.3f}")
    print(f"surrogate / nominal: median {np.median(surrogate) / median_nominal:.2f}x (target <= 1.5x), "
          f"worst {surrogate.max() / median_nominal:.2f}x (target <= 10x)")
    print(f"wins: {result.cells[0].runs[0].wins} of {args.eval_contexts}")
    compare_solvers(settings, result)


def compare_solvers(settings, result):
    """Time the reintegration solves of one fit through both Pyomo interfaces."""
    import tempfile

    from pyomo_prefobj import Candidates

    x0 = experiment.contexts(settings.train_contexts)
    candidates = Candidates.concatenate([
        experiment.sample_context(0, i, value, settings.candidates_per_context, settings)
        for i, value in enumerate(x0)
    ])
    eval_x0 = experiment.contexts(settings.eval_contexts)
    with tempfile.TemporaryDirectory() as folder:
        path = str(pathlib.Path(folder) / "fit.npz")
        experiment.fit_configuration(candidates, 0, settings.pairs[0], settings.flips[0],
                                     settings, path)
        solved, total = {}, {}
        for name in ("scip_persistent", "scip_direct"):
            start = time.perf_counter()
            solved[name] = experiment.surrogate_solutions(
                path, eval_x0, settings.solve_time_limit, settings.solve_gap,
                settings.activation, settings.scip_options, solver=name)
            total[name] = time.perf_counter() - start
    print("reintegration, seconds per solve (median over the evaluation contexts):")
    outside = {}
    for name, solutions in solved.items():
        outside[name] = float(np.median(solutions.seconds - solutions.scip_seconds))
        print(f"  {name:<16} wall {np.median(solutions.seconds):.3f}, SCIP "
              f"{np.median(solutions.scip_seconds):.3f}, outside SCIP {outside[name]:.3f}; "
              f"activate, load and loop {(total[name] - solutions.seconds.sum()) / len(eval_x0):.3f}")
    persistent, direct = solved["scip_persistent"].phi, solved["scip_direct"].phi
    differ = ~np.isclose(persistent, direct, rtol=1e-6, atol=1e-9, equal_nan=True)
    nominal = result.nominal.phi
    print(f"outside SCIP, direct / persistent: "
          f"{outside['scip_direct'] / outside['scip_persistent']:.1f}x; decisions whose "
          f"composite cost differs (SCIP stops at a {settings.solve_gap:g} gap, so "
          f"near-optimal ties may resolve differently): {int(differ.sum())} of {len(differ)}, "
          f"largest relative difference {np.max(np.abs(persistent - direct) / np.abs(direct)):.1e}; "
          f"wins {int(np.sum(persistent < nominal))} and {int(np.sum(direct < nominal))}")


if __name__ == "__main__":
    main()
