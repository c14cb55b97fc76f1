"""SCIP options, warm starts and formulations of the COVID-19 reintegration solves.

Fits a few configurations of the COVID-19 experiment (the sweep's
candidates, 15 per training context; the recommended training), then solves
each fit at the 52 evaluation contexts the way the experiment does (one
``pyomo_prefobj.PersistentScip`` per chunk of 26 contexts, relative gap
1e-4) once per option set given, and prints per option set: the median SCIP
time of nominal solves with the same options (one cold solve of the
nominal MILP after each learned solve, so that both medians see the same
stretches of the machine's speed, which varies by a third from minute to
minute), the surrogate solves' median, 99th percentile and worst SCIP time
and their ratios to that nominal median (issue 4's targets: median <= 1.5x, worst <= 10x), and how
far the optimal values of the learned objective are from those of the first
option set (they must agree within the gap).

``--warm-start`` also solves with the first option set and
``warmstart_discrete_vars=True``: ``PersistentScip`` hands SCIP the
previous context's decision (the nominal decision at a chunk's first
context), with the learned block's variables at the values it implies
(``activate`` sets them), as a complete starting solution.

Run from the repository root::

    python benchmarks/bench_scip_options.py \\
        --options base= --options scaling=lp/scaling=2 \\
        --options scaling+rounds=lp/scaling=2,separating/maxroundsroot=3

``base=`` is ``pyomo_prefobj.SCIP_OPTIONS`` as it is; each ``key=value``
after the label is set on top of it (``key=default`` resets one to SCIP's
default).

``--variant NAME`` (repeatable) also solves with the first option set (and
warm starts with ``--warm-start``) after rewriting the learned quadratic
that ``activate`` wrote (``e >= sum_k w_k^2`` with ``w = c S' z``, see
:mod:`pyomo_prefobj.component`) in another form with the same minimizer:

* ``tangent``: the same, plus the tangent row ``e >= 2 w0' w - w0' w0`` at
  the starting point's ``w0`` (the previous context's decision), a cut
  SCIP would otherwise have to find;
* ``cone``: the rotated second-order cone ``sqrt(sum_k w_k^2 + t^2) <= s``
  with ``s = (e + 1) / 2``, ``t = (e - 1) / 2``, which SCIP's SOC handler
  detects and separates by its disaggregated cuts;
* ``z-space``: ``e >= z' (c^2 S S') z`` in the PCA coordinates directly,
  without the ``w`` rows;
* ``w-from-u``: ``w = c S' P (u - mu)`` written on the decisions directly,
  without the ``z`` variables and rows (30 fewer rows and columns in the
  LP, each ``w`` row as dense as a ``z`` row).
"""

import argparse
import pathlib
import sys
import tempfile
import time

import numpy as np
import pyomo.environ as pyo
from pyomo.repn import generate_standard_repn

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # the examples package

from examples.covid19 import experiment  # noqa: E402
from examples.covid19.model import build_model  # noqa: E402
from pyomo_prefobj import Candidates, PersistentScip, PreferenceObjective  # noqa: E402

FITS = ("448:0.1:0", "896:0.3:4", "1344:0:1", "448:0.3:2")
"""Default configurations, ``pairs:flip:seed``; 896/30%/seed 4 held the
slowest solve of the whole sweep."""

GAP = 1e-4
SWEEP_COVERAGE = 2.0
"""The sweep's ``--pair-coverage``: its candidates per training context
are those the largest pair count of the grid needs at this coverage."""


def parse_options(text):
    """``label=key=value,key=value`` -> ``(label, {key: value})``."""
    label, _, assignments = text.partition("=")
    if not label:
        raise argparse.ArgumentTypeError(f"{text!r}: give a label before the first '='")
    options = {}
    for assignment in filter(None, assignments.split(",")):
        key, equals, value = assignment.partition("=")
        if not equals:
            raise argparse.ArgumentTypeError(f"{assignment!r}: write key=value")
        options[key] = None if value == "default" else experiment._scalar(value)
    try:  # SCIP's own names and values, before any work
        experiment.check_scip_options({k: v for k, v in options.items() if v is not None}, label)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return label, options


def parse_fit(text):
    """``pairs:flip:seed`` -> ``(pairs, flip, seed)``."""
    try:
        pairs, flip, seed = text.split(":")
        pairs, flip, seed = int(pairs), float(flip), int(seed)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: write PAIRS:FLIP:SEED, e.g. 448:0.1:0") from None
    if pairs < 2 or not 0.0 <= flip < 1.0 or seed < 0:
        raise argparse.ArgumentTypeError(
            f"{text!r}: pairs must be >= 2, flip in [0, 1) and seed >= 0")
    return pairs, flip, seed


def scip_options(changes):
    options = dict(experiment.recommended_settings().scip_options)
    for key, value in changes.items():
        if value is None:
            options.pop(key, None)
        else:
            options[key] = value
    return experiment._scip_options(GAP, options)


def _tangent(block):
    w0 = np.array([block.w[k].value for k in block.w])
    if any(value is None for value in w0):  # no starting point: nothing to add
        return
    block.variant = pyo.Constraint(expr=block.e >= sum(
        2.0 * float(w0[k]) * block.w[k] for k in block.w) - float(w0 @ w0))


def _cone(block):
    block.variant_s = pyo.Var(bounds=(0, None))
    block.variant_t = pyo.Var()
    block.variant_s_definition = pyo.Constraint(expr=block.variant_s == 0.5 * block.e + 0.5)
    block.variant_t_definition = pyo.Constraint(expr=block.variant_t == 0.5 * block.e - 0.5)
    if block.e.value is not None:
        block.variant_s.set_value(0.5 * block.e.value + 0.5)
        block.variant_t.set_value(0.5 * block.e.value - 0.5)
    block.epigraph.deactivate()
    block.variant = pyo.Constraint(
        expr=pyo.sqrt(sum(block.w[k] ** 2 for k in block.w) + block.variant_t ** 2) <= block.variant_s)


def _linear_rows(rows, defined, variables):
    """``(A, b)`` of linear rows ``defined[k] == sum_j A[k, j] variables[j] + b[k]``."""
    position = {id(v): j for j, v in enumerate(variables)}
    coefficients, constants = np.zeros((len(rows), len(variables))), np.zeros(len(rows))
    for k, (row, own_var) in enumerate(zip(rows, defined)):
        repn = generate_standard_repn(row.body)
        terms = dict(zip(map(id, repn.linear_vars), repn.linear_coefs))
        own = terms.pop(id(own_var))
        for var in repn.linear_vars:
            if id(var) in terms:
                coefficients[k, position[id(var)]] = -terms[id(var)] / own
        constants[k] = ((row.upper if row.upper is not None else 0.0) - (repn.constant or 0.0)) / own
    return coefficients, constants


def _z_space(block):
    w, z = [block.w[k] for k in block.w], [block.z[j] for j in block.z]
    rows, _ = _linear_rows([block.w_definition[k] for k in block.w], w, z)  # w = rows @ z
    quadratic = rows.T @ rows
    r = len(z)
    block.epigraph.deactivate()
    block.w_definition.deactivate()
    block.variant = pyo.Constraint(expr=block.e >= sum(
        float(quadratic[i, j]) * z[i] * z[j]
        for i in range(r) for j in range(r) if quadratic[i, j] != 0.0))


def _w_from_u(block):
    u = list(block.parent_block().decision.values())
    z = [block.z[j] for j in block.z]
    w = [block.w[k] for k in block.w]
    projection, shift = _linear_rows([block.z_definition[j] for j in block.z], z, u)
    rows, _ = _linear_rows([block.w_definition[k] for k in block.w], w, z)
    combined, offset = rows @ projection, rows @ shift
    repn = generate_standard_repn(block.objective.expr)
    weights = {id(v): c for v, c in zip(repn.linear_vars, repn.linear_coefs)}
    linear = np.array([weights.get(id(v), 0.0) for v in z])
    block.z_definition.deactivate()
    block.w_definition.deactivate()
    block.objective.deactivate()
    block.variant_rows = pyo.Constraint(list(block.w), rule=lambda b, k: b.w[k] == sum(
        float(combined[k, i]) * u[i] for i in range(len(u)) if combined[k, i] != 0.0) + float(offset[k]))
    objective_u = linear @ projection
    block.variant_objective = pyo.Objective(expr=weights[id(block.e)] * block.e + sum(
        float(objective_u[i]) * u[i] for i in range(len(u)) if objective_u[i] != 0.0)
        + float(linear @ shift) + (repn.constant or 0.0))


VARIANTS = {"tangent": _tangent, "cone": _cone, "z-space": _z_space, "w-from-u": _w_from_u}
"""Rewrites of the learned block after ``activate`` (see the module docstring)."""


def solve_fit(path, x0_values, options, span_penalty, warm_start, variant=None):
    """SCIP seconds and learned objective values of one fit at every context,
    and the SCIP seconds of a cold nominal solve timed after each.

    ``variant``: a function of :data:`VARIANTS`, applied to the learned
    block after each ``activate`` (``None``: the block as ``activate``
    wrote it)."""
    m = build_model()
    m.pref = PreferenceObjective.load(path)
    nominal_model = build_model()
    seconds, values, nominal = [], [], []
    for chunk in experiment._chunks(x0_values):  # one solver per chunk, as the experiment
        solver = PersistentScip()
        if warm_start:  # start the chunk from the nominal decision
            solver.solve(m, solver_options=options)
        for x0 in chunk:
            m.pref.activate([float(x0)], span_penalty=span_penalty)
            if variant is not None:
                variant(m.pref.learned)
            results = solver.solve(m, solver_options=options, load_solutions=False,
                                   warmstart_discrete_vars=warm_start,
                                   raise_exception_on_nonoptimal_result=False)
            results.solution_loader.load_vars()
            seconds.append(float(results.timing_info.scip_time))
            values.append(float(results.incumbent_objective))
            nominal.append(float(PersistentScip().solve(
                nominal_model, solver_options=options).timing_info.scip_time))
            m.pref.deactivate()
            for name in [c.local_name for c in m.pref.learned.component_objects(descend_into=False)
                         if c.local_name.startswith("variant")]:
                m.pref.learned.del_component(name)
    return np.array(seconds), np.array(values), np.array(nominal)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fits", nargs="+", type=parse_fit, default=[parse_fit(f) for f in FITS],
                        metavar="PAIRS:FLIP:SEED")
    parser.add_argument("--options", action="append", type=parse_options, metavar="LABEL=K=V,...",
                        help="an option set on top of SCIP_OPTIONS (repeatable; default: base=)")
    parser.add_argument("--span-penalty", type=float, default=None)
    parser.add_argument("--warm-start", action="store_true")
    parser.add_argument("--variant", action="append", choices=sorted(VARIANTS), default=[],
                        help="also solve with the learned quadratic in this form (repeatable)")
    parser.add_argument("--fits-dir", default=None,
                        help="keep the fits here and reuse those already there (default: a temporary folder)")
    args = parser.parse_args()
    if args.span_penalty is not None and args.span_penalty < 0:
        parser.error(f"--span-penalty must be >= 0; got {args.span_penalty}")
    option_sets = args.options or [("base", {})]
    settings = experiment.recommended_settings(solve_gap=GAP, n_jobs=1, progress=False)
    eval_x0 = experiment.contexts(settings.eval_contexts)
    per_context = experiment.candidates_per_context(
        max(experiment.SWEEP_PAIRS), settings.train_contexts, SWEEP_COVERAGE)
    with tempfile.TemporaryDirectory() as temporary:
        folder = pathlib.Path(args.fits_dir or temporary)
        folder.mkdir(parents=True, exist_ok=True)
        paths, start = [], time.perf_counter()
        for pairs, flip, seed in args.fits:
            paths.append(str(folder / f"fit_{pairs}_{flip:g}_{seed}.npz"))
            if pathlib.Path(paths[-1]).exists():
                continue
            candidates = Candidates.concatenate([
                experiment.sample_context(seed, i, x0, per_context, settings)
                for i, x0 in enumerate(experiment.contexts(settings.train_contexts))
            ])
            experiment.fit_configuration(candidates, seed, pairs, flip, settings, paths[-1])
        fits = " ".join(f"{pairs}:{flip:g}:{seed}" for pairs, flip, seed in args.fits)
        print(f"{len(paths)} fits ({fits}) in {time.perf_counter() - start:.0f} s; "
              f"{len(eval_x0)} contexts each, span penalty {args.span_penalty}")
        runs = [(label, changes, False, None) for label, changes in option_sets]
        if args.warm_start:
            runs.append((f"{option_sets[0][0]}, warm start", option_sets[0][1], True, None))
        first, changes = option_sets[0]
        runs += [(f"{first}, {name}", changes, args.warm_start, name) for name in args.variant]
        reference = None
        for label, changes, warm_start, variant in runs:
            options = scip_options(changes)
            solved = [solve_fit(path, eval_x0, options, args.span_penalty, warm_start,
                                VARIANTS.get(variant)) for path in paths]
            seconds = np.concatenate([s for s, _, _ in solved])
            values = np.concatenate([v for _, v, _ in solved])
            nominal = np.median(np.concatenate([n for _, _, n in solved]))
            reference = values if reference is None else reference
            agree = np.max(np.abs(values - reference) / np.abs(reference))
            print(f"{label:<22} nominal {nominal:.3f} s | surrogate median {np.median(seconds):.3f} s "
                  f"({np.median(seconds) / nominal:.2f}x), 99th pct {np.percentile(seconds, 99):.3f} s, "
                  f"worst {seconds.max():.3f} s ({seconds.max() / nominal:.1f}x), total "
                  f"{seconds.sum():.1f} s | values within {agree:.1e} of {option_sets[0][0]}")


if __name__ == "__main__":
    main()
