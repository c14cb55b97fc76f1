"""Tests of the COVID-19 experiment (examples/covid19/experiment.py, CLI).

The default run has one small configuration end to end through the command
line (a few contexts, 100 pairs); the runs that take minutes are marked
``slow`` (``python -m pytest -m slow``).
"""

import argparse
import json
import math

import numpy as np
import pytest

from examples.covid19 import experiment
from examples.covid19.__main__ import _parser, main, settings_from_args

# One small configuration: 5 training contexts x 7 candidates (21 distinct
# pairs each, 105 in all), 100 exact labels, 4 evaluation contexts.
SMALL_ARGS = [
    "--train-contexts", "5",
    "--per-context", "7",
    "--pairs", "100",
    "--flip", "0",
    "--eval-contexts", "4",
    "--components", "10",
    "--max-epochs", "200",
    "--fit-option", "l2=0.01",
    "--scip-option", "display/verblevel=0",
    "--n-jobs", "1",
    "--no-progress",
]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    """The small configuration through the CLI, with baselines, JSON and figure."""
    folder = tmp_path_factory.mktemp("covid19")
    json_path, figure_path = folder / "run.json", folder / "figure.png"
    args = SMALL_ARGS + [
        "--baselines", "--results-dir", str(folder / "results"),
        "--json", str(json_path), "--figure", str(figure_path),
    ]
    assert main(args) == 0
    with open(json_path) as handle:
        return {"json": json.load(handle), "figure": figure_path, "folder": folder}


def test_small_configuration_wins_more_often_than_chance(small_run):
    data = small_run["json"]
    (cell,) = data["cells"]
    (run,) = cell["seeds"]
    chance_wins = data["baselines"]["chance_expected_wins"]
    assert 0.0 < data["baselines"]["chance_rate"] < 1.0
    assert run["wins"] > chance_wins
    assert run["wins"] == cell["wins_per_seed"]["0"] == cell["mean_wins"]
    # Wins recounted from the per-context composite costs.
    nominal = np.array(cell["nominal"]["phi"])
    surrogate = np.array(run["surrogate"]["phi"])
    assert run["wins"] == int(np.sum(surrogate < nominal))
    # A win means better for the user; the captured gain must agree.
    gain = np.array(run["captured_gain"], dtype=float)
    assert np.all((gain > 0) == (surrogate < nominal))
    assert cell["captured_gain"]["worst"] == pytest.approx(gain.min())
    assert cell["captured_gain"]["mean"] == pytest.approx(gain.mean())


def test_small_run_json_layout(small_run):
    # The recommended SCIP options plus the one given on the command line.
    from pyomo_prefobj import SCIP_OPTIONS

    assert small_run["json"]["settings"]["scip_options"] == {**SCIP_OPTIONS, "display/verblevel": 0}
    data = small_run["json"]
    n_eval = data["settings"]["eval_contexts"]
    assert data["candidates_per_context"] == 7
    assert set(data["stage_seconds"]) == {"nominal", "best", "sampling", "fitting", "solving"}
    (cell,) = data["cells"]
    assert (cell["pairs"], cell["flip"], cell["paper_wins"]) == (100, 0.0, None)
    (run,) = cell["seeds"]
    assert run["n_answered"] == 100
    assert set(run["seconds"]) == {"ask", "fit", "solve"}
    for solutions in (data["nominal"], run["surrogate"], data["baselines"]["one_swap"]):
        assert solutions["x0"] == pytest.approx(np.linspace(0, 1, n_eval).tolist())
        for key in ("phi", "acceptability", "nominal_cost", "seconds", "scip_seconds"):
            assert len(solutions[key]) == n_eval
        # phi = R + J / J* (the composite of examples/covid19/user.py)
        phi = np.array(solutions["acceptability"]) + np.array(
            solutions["nominal_cost"]
        ) / experiment.NOMINAL_OPTIMUM
        np.testing.assert_allclose(solutions["phi"], phi, rtol=1e-12)
    # The nominal decision is the cost-optimal one at every context.
    np.testing.assert_allclose(
        data["nominal"]["nominal_cost"], experiment.NOMINAL_OPTIMUM, rtol=1e-6
    )
    assert data["baselines"]["one_swap_wins"] == int(
        np.sum(np.array(data["baselines"]["one_swap"]["phi"]) < np.array(data["nominal"]["phi"]))
    )


def test_small_run_phi_best_is_a_lower_bound_and_cached(small_run):
    data = small_run["json"]
    best = np.array(data["baselines"]["best"]["phi"])
    for solutions in (data["nominal"], data["cells"][0]["seeds"][0]["surrogate"]):
        assert np.all(best <= np.array(solutions["phi"]) + 1e-6)
    with open(small_run["folder"] / "results" / "phi_best.json") as handle:
        cache = json.load(handle)["contexts"]
    assert len(cache) == data["settings"]["eval_contexts"]


def test_small_run_figure_is_a_png(small_run):
    with open(small_run["figure"], "rb") as handle:
        assert handle.read(8) == PNG_SIGNATURE


def test_candidates_per_context_gives_enough_distinct_pairs():
    assert experiment.candidates_per_context(448, 26) == 7  # 21 >= 18 pairs each
    assert experiment.candidates_per_context(1344, 26, coverage=2.0) == 15  # 105 >= 104
    assert experiment.candidates_per_context(2, 26) == 3
    for pairs in (10, 448, 896, 1344, 5000):
        k = experiment.candidates_per_context(pairs, 26)
        assert 26 * k * (k - 1) // 2 >= pairs


def test_context_seeds_are_reproducible_and_distinct():
    seeds = {experiment.context_seed(s, i) for s in range(7) for i in range(26)}
    assert len(seeds) == 7 * 26
    assert experiment.context_seed(3, 5) == experiment.context_seed(3, 5)


def test_scip_options_merge_the_gap():
    assert experiment._scip_options(None, None) == {}
    assert experiment._scip_options(1e-4, {"presolving/maxrestarts": 0}) == {
        "presolving/maxrestarts": 0, "limits/gap": 1e-4}


def test_activation_options_come_from_the_command_line():
    args = _parser().parse_args(["--span-penalty", "0.03", "--tie-break", "0.001"])
    settings = settings_from_args(args)
    assert settings.activation == {"trust_region": None, "tie_break": 0.001, "span_penalty": 0.03}
    assert settings_from_args(_parser().parse_args([])).activation == {
        "trust_region": None, "tie_break": None, "span_penalty": None}


@pytest.mark.parametrize("argv, sampling", [
    ([], {}), (["--paper-settings"], {}),
    (["--sample-scip-option", "lp/scaling=2", "--sample-scip-option", "presolving/maxrestarts=0"],
     {"lp/scaling": 2, "presolving/maxrestarts": 0}),
])
def test_sampling_scip_options_come_from_the_command_line(argv, sampling):
    settings = settings_from_args(_parser().parse_args(argv))
    assert settings.sample_options == sampling
    # ... and reach the sampling solves, beside the sampling gap.
    pref = experiment._model(settings.sample_gap, settings.sample_options).pref
    assert pref._solver_options == {**sampling, "limits/gap": settings.sample_gap}


@pytest.mark.parametrize("argv, message", [
    (["--scip-option", "nosuch/param=1"], "scip_options: SCIP has no parameter 'nosuch/param'"),
    (["--scip-option", "limits/gap=abc"], "SCIP refuses limits/gap='abc'"),
    (["--sample-scip-option", "nosuch/param=1"], "sample_options: SCIP has no parameter"),
    (["--gap", "1e-4", "--scip-option", "limits/gap=1e-3"], "give the gap once, as solve_gap"),
    (["--sample-scip-option", "limits/gap=0.5"], "on the command line: --sample-gap"),
    (["--gap", "-1"], "solve_gap must be a number >= 0"),
    (["--gap", "nan"], "solve_gap must be a number >= 0"),
    (["--time-limit", "0"], "solve_time_limit must be a number of seconds > 0"),
    (["--best-time-limit", "-1"], "best_time_limit must be a number of seconds > 0"),
    (["--fit-option", "min_epochs=5"], "fit option 'min_epochs' has a setting of its own"),
    (["--min-epochs", "-3"], "min_epochs must be an integer >= 0"),
    (["--json", "/proc/covid.json"], "cannot write /proc/covid.json: no file can be made in /proc"),
    (["--results-dir", "/proc/results"], "cannot write /proc/results/phi_best.json"),
])
def test_bad_settings_end_the_command_before_any_work(argv, message, capsys):
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_zero_components_is_refused_by_the_parser(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--components", "0"])
    assert stop.value.code == 2
    assert "--components: must be an integer >= 1, got 0" in capsys.readouterr().err


def test_a_results_dir_under_a_file_is_refused(tmp_path, capsys):
    (tmp_path / "afile").write_text("")
    assert main(["--results-dir", str(tmp_path / "afile" / "results")]) == 2
    assert "no file can be made in" in capsys.readouterr().err


def test_ctrl_c_ends_the_command_with_one_line(monkeypatch, tmp_path, capsys):
    def interrupted(settings):
        raise KeyboardInterrupt

    monkeypatch.setattr(experiment, "run_experiment", interrupted)
    assert main(["--json", str(tmp_path / "run.json"), "--no-progress"]) == 130
    assert capsys.readouterr().err.strip() == "python -m examples.covid19: interrupted; nothing was written"
    assert not (tmp_path / "run.json").exists()


def test_a_folder_as_the_json_path_is_refused(tmp_path, capsys):
    assert main(["--json", str(tmp_path)]) == 2
    assert "it is a folder" in capsys.readouterr().err
    experiment.check_output_paths(str(tmp_path / "new" / "folder" / "run.json"), None)  # made later


def test_sampling_gap_comes_from_the_command_line():
    assert settings_from_args(_parser().parse_args([])).sample_gap == 0.01
    assert settings_from_args(_parser().parse_args(["--sample-gap", "0.001"])).sample_gap == 0.001


@pytest.mark.parametrize("argv, warm_start", [
    ([], True), (["--no-warm-start"], False), (["--paper-settings"], False),
    (["--sweep", "--warm-start"], True),
])
def test_warm_start_is_on_with_the_recommended_settings_only(argv, warm_start):
    assert settings_from_args(_parser().parse_args(argv)).warm_start is warm_start


def test_fit_options_from_the_command_line_are_typed():
    args = _parser().parse_args([
        "--fit-option", "l2=0.01", "--fit-option", "hidden_layers=5,",
        "--fit-option", "nominal_weight=true", "--fit-option", "patience=30",
    ])
    # Added to the recommended training's own options (patience replaced).
    assert settings_from_args(args).fit_options == {
        "l2": 0.01, "hidden_layers": (5,), "nominal_weight": True, "patience": 30,
        "lr_patience": 16}
    assert experiment.key_value("hidden_layers=20,10") == ("hidden_layers", (20, 10))
    with pytest.raises(argparse.ArgumentTypeError, match="KEY=VALUE"):
        experiment.key_value("l2")


@pytest.mark.parametrize("argv, message", [
    (["--seeds", "0"], "argument --seeds: must be an integer >= 1, got 0"),
    (["--pairs", "448", "0"], "argument --pairs: must be an integer >= 1, got 0"),
    (["--n-jobs", "0"], "argument --n-jobs: expected a number of workers >= 1, or -1"),
    (["--train-contexts", "x"], "argument --train-contexts: expected an integer >= 1, got 'x'"),
])
def test_command_line_counts_must_be_positive(capsys, argv, message):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2 and message in capsys.readouterr().err


def test_command_line_zero_is_not_taken_for_the_default(capsys):
    # --pair-coverage 0 used to become the default (1) silently.
    assert main(["--pair-coverage", "0", "--no-progress"]) == 2
    assert "pair_coverage must be > 0" in capsys.readouterr().err
    assert _parser().parse_args(["--n-jobs", "-1"]).n_jobs == -1


def test_a_failed_run_ends_with_one_line_and_exit_status_1(capsys):
    # 2 contexts x 3 candidates span fewer than the default 30 PCA directions.
    argv = ["--pairs", "4", "--train-contexts", "2", "--per-context", "3",
            "--eval-contexts", "1", "--n-jobs", "1", "--no-progress"]
    assert main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "n_components=30 is larger than the data allows" in err[0]
    assert err[0].endswith("(on the command line: --components)")


def test_captured_gain():
    gain = experiment.captured_gain([10.0, 10.0, 10.0, 4.0], [4.0, 10.0, 12.0, 3.0], [4.0] * 4)
    np.testing.assert_allclose(gain[:3], [1.0, 0.0, -1.0 / 3.0])
    assert math.isnan(gain[3])  # nothing beats the nominal: no room to capture


def test_settings_validation():
    with pytest.raises(ValueError, match=r"flips must lie in \[0, 1\)"):
        experiment.ExperimentSettings(flips=(1.0,))
    with pytest.raises(ValueError, match="repeats a seed"):
        experiment.ExperimentSettings(seeds=(0, 0))
    with pytest.raises(ValueError, match="per_context must be >= 2"):
        experiment.ExperimentSettings(per_context=1)
    # Checked before any sampling, not when the first fit or solve runs.
    with pytest.raises(ValueError, match="unknown fit option"):
        experiment.ExperimentSettings(fit_options={"bogus": 3})
    with pytest.raises(ValueError, match="hidden_layers must be a tuple"):
        experiment.ExperimentSettings(fit_options={"hidden_layers": 5})
    with pytest.raises(ValueError, match="span_penalty must be >= 0"):
        experiment.ExperimentSettings(span_penalty=-1.0)
    with pytest.raises(ValueError, match="pair_coverage must be > 0"):
        experiment.ExperimentSettings(pair_coverage=0.0)
    with pytest.raises(ValueError, match="n_jobs must be >= 1 or -1"):
        experiment.ExperimentSettings(n_jobs=0)
    settings = experiment.ExperimentSettings(pairs=(448, 896), flips=(0, 0.3))
    assert settings.cells == [(448, 0.0), (448, 0.3), (896, 0.0), (896, 0.3)]
    assert settings.candidates_per_context == 9  # 896 pairs: 35 each, 36 distinct


def test_the_nominal_model_does_not_depend_on_the_context():
    # Why one nominal solve serves every context (see nominal_solutions).
    assert not experiment.nominal_depends_on_context()


@pytest.mark.slow
def test_parallel_run_equals_serial_run():
    settings = dict(
        pairs=(60,), flips=(0.0, 0.2), seeds=(0, 1), train_contexts=4, per_context=6,
        eval_contexts=3, n_components=8, max_epochs=60, progress=False,
    )
    serial = experiment.run_experiment(experiment.ExperimentSettings(n_jobs=1, **settings))
    parallel = experiment.run_experiment(experiment.ExperimentSettings(n_jobs=2, **settings))
    assert serial.chance == parallel.chance
    for a, b in zip(serial.cells, parallel.cells):
        assert a.wins == b.wins
        for run_a, run_b in zip(a.runs, b.runs):
            assert run_a.fit == run_b.fit
            np.testing.assert_array_equal(run_a.surrogate.phi, run_b.surrogate.phi)


@pytest.mark.slow
def test_default_command_line(capsys):
    assert main(["--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "(50.571)" in out and "Wins per seed" in out
