"""Per-stage time of one COVID-19 configuration (issue: speed of the example).

Runs one configuration (default 448 pairs, 10% flipped, one seed, the
recommended training) through ``examples.covid19.experiment`` in this
process (``n_jobs=1``, so stage times are not blurred by parallel workers)
and prints the wall time of each stage, the SCIP time of the nominal and
surrogate solves (median and worst) and their ratios (targets: median
<= 1.5x, worst <= 10x the nominal solve).

Run from the repository root: ``python benchmarks/bench_covid19.py [--pairs N] [--flip F]``.
"""

import argparse
import pathlib
import sys

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # the examples package

from examples.covid19.experiment import ExperimentSettings, run_experiment  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=448)
    parser.add_argument("--flip", type=float, default=0.1)
    parser.add_argument("--eval-contexts", type=int, default=52)
    args = parser.parse_args()
    settings = ExperimentSettings(
        pairs=(args.pairs,), flips=(args.flip,), seeds=(0,), eval_contexts=args.eval_contexts,
        loss="logistic", min_epochs=100, n_jobs=1, progress=False,
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


if __name__ == "__main__":
    main()
