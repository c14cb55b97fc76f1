"""Per-stage time of one COVID-19 configuration (issue: speed of the example).

Runs one configuration (default 448 pairs, 10% flipped, one seed, the
recommended training) through ``examples.covid19.experiment`` in this
process (``n_jobs=1``, so stage times are not blurred by parallel workers)
and prints the wall time of each stage, the SCIP time of the nominal and
surrogate solves (median and worst) and their ratios (targets: median
<= 1.5x, worst <= 10x the nominal solve; the nominal time is the median
of 20 solves). Then it fits the same
configuration once more and solves it at every evaluation context through
three interfaces: ``pyomo_prefobj.PersistentScip`` (the experiment's
choice: Pyomo's persistent interface, one SCIP model with only the
context's rows and objective updated between contexts, and the linear
objective set as SCIP's objective), Pyomo's ``scip_persistent`` (the same
with the objective in a row on an auxiliary variable) and ``scip_direct``
(the whole model translated at every solve). It prints the SCIP time and
the time outside SCIP (Pyomo's update or translation and loading the
solution) per solve of each, and the time per context of ``activate``.
``--span-penalty A`` solves with ``activate(span_penalty=A)``.

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
    parser.add_argument("--pairs", type=int, default=448, help="pairs asked (default 448)")
    parser.add_argument("--flip", type=float, default=0.1,
                        help="fraction of flipped answers (default 0.1)")
    parser.add_argument("--eval-contexts", type=int, default=52,
                        help="evaluation contexts (default 52)")
    parser.add_argument("--span-penalty", type=float, default=None,
                        help="activate with this span penalty (default: none)")
    args = parser.parse_args()
    try:  # the experiment's own checks, before any work
        settings = recommended_settings(
            pairs=(args.pairs,), flips=(args.flip,), seeds=(0,), eval_contexts=args.eval_contexts,
            solve_gap=1e-4, span_penalty=args.span_penalty, n_jobs=1, progress=False,
        )
    except ValueError as exc:
        parser.error(str(exc))
    result = run_experiment(settings)
    print(f"one configuration: {args.pairs} pairs, {args.flip:.0%} flipped, seed 0, "
          f"{settings.train_contexts} training / {args.eval_contexts} evaluation contexts")
    for stage, seconds in result.stage_seconds.items():
        print(f"  {stage:<10} {seconds:8.1f} s")
    print(f"  {'total':<10} {result.wall_seconds:8.1f} s")
    # The nominal decision does not depend on the context, so the run solves
    # it once; one SCIP time varies by about 30%, so take the median of more.
    nominal = np.array([
        float(experiment.nominal_solutions(
            [0.5], settings.solve_time_limit, settings.solve_gap, False, settings.scip_options
        ).scip_seconds[0])
        for _ in range(NOMINAL_REPEATS)
    ])
    surrogate = np.concatenate([run.surrogate.scip_seconds for run in result.cells[0].runs])
    median_nominal = float(np.median(nominal))
    print(f"SCIP seconds, nominal ({NOMINAL_REPEATS} solves): median {median_nominal:.3f}, "
          f"range {nominal.min():.3f}-{nominal.max():.3f}")
    print(f"SCIP seconds, surrogate: median {np.median(surrogate):.3f}, max {surrogate.max():.3f}")
    print(f"surrogate / nominal: median {np.median(surrogate) / median_nominal:.2f}x (target <= 1.5x), "
          f"worst {surrogate.max() / median_nominal:.2f}x (target <= 10x)")
    print(f"wins: {result.cells[0].runs[0].wins} of {args.eval_contexts}")
    compare_solvers(settings, result)


NOMINAL_REPEATS = 20
"""Nominal solves timed for the surrogate / nominal ratio."""

INTERFACES = {"PersistentScip": None, "scip_persistent": "scip_persistent", "scip_direct": "scip_direct"}
"""Label and ``surrogate_solutions(solver=...)`` of each interface compared."""


def compare_solvers(settings, result):
    """Time the reintegration solves of one fit through the three interfaces."""
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
        for name, interface in INTERFACES.items():
            start = time.perf_counter()
            solved[name] = experiment.surrogate_solutions(
                path, eval_x0, settings.solve_time_limit, settings.solve_gap,
                settings.activation, settings.scip_options, solver=interface)
            total[name] = time.perf_counter() - start
    print("reintegration, seconds per solve (median over the evaluation contexts):")
    outside = {}
    for name, solutions in solved.items():
        outside[name] = float(np.median(solutions.seconds - solutions.scip_seconds))
        print(f"  {name:<16} wall {np.median(solutions.seconds):.3f}, SCIP "
              f"{np.median(solutions.scip_seconds):.3f}, outside SCIP {outside[name]:.3f}; "
              f"activate, load and loop {(total[name] - solutions.seconds.sum()) / len(eval_x0):.3f}")
    ours = solved["PersistentScip"]
    for name in ("scip_persistent", "scip_direct"):
        other = solved[name]
        differ = ~np.isclose(ours.phi, other.phi, rtol=1e-6, atol=1e-9, equal_nan=True)
        print(f"PersistentScip vs {name}: SCIP time {np.median(ours.scip_seconds) / np.median(other.scip_seconds):.2f}x "
              f"(total {ours.scip_seconds.sum() / other.scip_seconds.sum():.2f}x), outside SCIP "
              f"{outside['PersistentScip'] / outside[name]:.2f}x; decisions whose composite cost "
              f"differs (SCIP stops at a {settings.solve_gap:g} gap, so near-optimal ties may "
              f"resolve differently): {int(differ.sum())} of {len(differ)}, largest relative "
              f"difference {np.max(np.abs(ours.phi - other.phi) / np.abs(other.phi)):.1e}")
    nominal = result.nominal.phi
    print("wins: " + ", ".join(f"{name} {int(np.sum(s.phi < nominal))}" for name, s in solved.items()))


if __name__ == "__main__":
    main()
