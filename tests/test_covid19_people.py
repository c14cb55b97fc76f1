"""Tests of the people-in-the-loop measurements (examples/covid19/people.py).

Tiny sizes (3 training contexts of 4-6 candidates, 1 evaluation context,
short training) run each measurement end to end in seconds:

* ``active``: through the command line, one wins entry per budget and arm,
  the JSON, the figure (the rounds arm, ``ask_in_rounds``, beside random
  pairs too); the active questions of a budget are exactly those
  of a shorter ``ask_active`` run (the prefix the measurement relies on);
  the training comes from ``experiment.RECOMMENDED_TRAINING``, not a copy.
* ``raters``: every rater answers its share, the reliable ones for the user
  and the adversary against; the aggregated (flip-loss) fit learns a higher
  flip rate for the adversary than for every reliable rater and names it.

The real measurements (26 training and 52 evaluation contexts) are in
``docs/people-in-the-loop-results.md``.
"""

import json

import numpy as np
import pytest

from examples.covid19 import experiment, people
from examples.covid19.user import SimulatedUser
from pyomo_prefobj import ScoreOracle
from pyomo_prefobj.active import ask_active

TINY = {"train_contexts": 3, "eval_contexts": 1, "per_context": 4, "n_components": 5,
        "min_epochs": 5, "max_epochs": 20, "progress": False}
TINY_ARGS = ["--train-contexts", "3", "--eval-contexts", "1", "--per-context", "4",
             "--components", "5", "--max-epochs", "20", "--no-progress"]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def tiny_settings():
    return experiment.recommended_settings(pairs=(12,), seeds=(0,), **TINY)


@pytest.fixture(scope="module")
def covid_candidates(tiny_settings):
    """Seed 0's candidates: 3 contexts x 4 candidates, 18 distinct pairs."""
    return people.sample_candidates(tiny_settings, experiment._Runner(1, False))[0]


def test_active_command_line_gives_one_point_per_budget(tmp_path, capsys):
    json_path, figure_path = tmp_path / "active.json", tmp_path / "active.png"
    args = ["active", *TINY_ARGS, "--budgets", "6", "12", "--batch", "6", "--members", "2",
            "--top", "2", "--captured-gain", "--results-dir", str(tmp_path / "results"),
            "--json", str(json_path), "--figure", str(figure_path)]
    assert people.main(args) == 0
    data = json.loads(json_path.read_text())
    assert data["budgets"] == [6, 12]
    assert data["top"] == 2
    for arm in ("random", "active"):
        wins = data["wins"][arm]["0"]
        assert len(wins) == 2 and all(0 <= w <= 1 for w in wins)
        assert data["n_answered"][arm]["0"] == [6, 12]
        assert data["mean_wins"][arm] == wins
        # One evaluation context: a positive captured gain is a win.
        gains = data["captured_gain"][arm]["0"]
        assert len(gains) == 2 and all(g <= 1.0 + 1e-9 for g in gains)
        assert [g > 0 for g in gains] == [w == 1 for w in wins]
    assert data["target"] == data["wins"]["random"]["0"][-1]
    for arm in ("random", "active"):
        expected = people.pairs_needed([6, 12], data["mean_wins"][arm], data["target"])
        assert data["pairs_needed"][arm] == expected
    assert data["pairs_needed"]["random"] in (6, 12)  # random reaches its own target
    assert data["settings"]["loss"] == experiment.RECOMMENDED_TRAINING["loss"]
    assert figure_path.read_bytes()[:8] == PNG_SIGNATURE
    printed = capsys.readouterr().out
    assert "pairs (wins):" in printed or "half the pairs (wins)" in printed
    assert "pairs (captured gain):" in printed or "half the pairs (captured gain)" in printed


@pytest.mark.filterwarnings("ignore:fit on 3 pairs")  # the tiny initial fit
def test_the_rounds_arm_runs_beside_random_pairs(tmp_path, capsys):
    json_path = tmp_path / "rounds.json"
    args = ["active", *TINY_ARGS, "--budgets", "6", "12", "--batch", "6", "--arms", "rounds",
            "--rounds", "1", "--json", str(json_path)]
    assert people.main(args) == 0
    data = json.loads(json_path.read_text())
    assert data["arms"] == ["random", "rounds"] and data["rounds"] == 1
    assert set(data["wins"]) == {"random", "rounds"}
    # Half the budget at random, the rest in one round about new local candidates.
    assert data["n_answered"]["rounds"]["0"] == [6, 12]
    printed = capsys.readouterr().out
    assert "Rounds needs <= half of 12 (6) pairs (wins):" in printed
    assert "rounds: half the pairs at random, the rest in 1 rounds" in printed


@pytest.mark.filterwarnings("ignore:fit on 4 pairs")  # batches of 4 on purpose
def test_active_questions_are_those_of_a_shorter_ask_active_run(covid_candidates, tiny_settings):
    asked = people.active_questions(covid_candidates, 0, (4, 8, 12), 0.0, tiny_settings,
                                    batch=4, n_members=2)
    assert asked["answered"] == {4: 4, 8: 8, 12: 12}
    pairs = asked["pairs"]
    assert len(pairs) == 12 and len(set(pairs.rater)) == 1
    # The 8-question run: 4 random questions, one ensemble fit, 4 disputed ones.
    training = people._training(tiny_settings)
    oracle = ScoreOracle(experiment._composite_score(SimulatedUser()), seed=0)
    short = ask_active(covid_candidates, 8, oracle, initial=4, batch=4, n_members=2, seed=0,
                       progress=False, loss=training["loss"], min_epochs=training["min_epochs"],
                       max_epochs=training["max_epochs"], n_components=training["n_components"])
    np.testing.assert_array_equal(short.preferred, pairs.preferred[:8])
    np.testing.assert_array_equal(short.other, pairs.other[:8])
    with pytest.raises(ValueError, match="only 18 distinct pairs"):
        people.active_questions(covid_candidates, 0, (20,), 0.0, tiny_settings, batch=4,
                                n_members=2)


def test_budgets_must_be_multiples_of_the_batch():
    assert people._check_budgets((112, 56), 28) == (56, 112)
    for budgets in ((56, 100), (14,), ()):
        with pytest.raises(ValueError, match="multiple of the batch size 28"):
            people._check_budgets(budgets, 28)
    assert people.main(["active", "--budgets", "50", "--batch", "28"]) == 2


@pytest.mark.parametrize("argv, message", [
    (["raters", "--pairs", "5"], "--pairs must be at least 6, one answer per simulated rater"),
    (["raters", "--aggregated-option", "nosuch=1"], "unknown fit option"),
    (["active", "--members", "1"], "--members must be at least 2"),
    (["raters", "--json", "/proc/raters.json"], "cannot write /proc/raters.json"),
    (["raters", "--figure", "r.png"], "--figure is an option of 'active', not of 'raters'"),
    (["raters", "--top", "3"], "--top is an option of 'active', not of 'raters'"),
    (["active", "--aggregated-option", "patience=1"],
     "--aggregated-option is an option of 'raters', not of 'active'"),
    (["active", "--pairs", "50"], "--pairs is an option of 'raters', not of 'active'"),
    (["active", "--arms", "rounds"], "the rounds arm needs --rounds N"),
    (["active", "--rounds", "2"], "--rounds is an option of the rounds arm; add it to --arms"),
    (["raters", "--rounds", "2"], "--rounds is an option of 'active', not of 'raters'"),
])
def test_bad_options_end_the_command_before_sampling(argv, message, capsys):
    assert people.main(argv) == 2
    assert message in capsys.readouterr().err


def test_pairs_needed_is_the_first_budget_reaching_the_target():
    assert people.pairs_needed((56, 112, 224), [40.0, 49.7, 49.0], 49.7) == 112
    assert people.pairs_needed((56, 112, 224), [50.0, 20.0, 20.0], 49.7) == 56
    assert people.pairs_needed((56, 112, 224), [40.0, 41.0, 42.0], 49.7) is None


def test_training_comes_from_the_recommended_settings(monkeypatch):
    monkeypatch.setattr(experiment, "RECOMMENDED_TRAINING",
                        {"loss": "hinge", "min_epochs": 7, "fit_options": {"l2": 0.5}})
    for measurement in ("active", "raters"):
        args = people._parser().parse_args([measurement, "--quick"])
        settings, options = people.settings_from_args(args)
        training = (settings.loss, settings.min_epochs, settings.fit_options)
        assert training == ("hinge", 7, {"l2": 0.5})
    assert settings.pairs == (people.QUICK["rater_pairs"],)
    assert options["variants"] == []
    args = people._parser().parse_args(["raters", "--aggregated-option", "patience=200"])
    assert people.settings_from_args(args)[1]["variants"] == [{"patience": 200}]
    # A variant's options reach the aggregated fit's learner; the loss stays "flip".
    variant = people._with_options(settings, {"patience": 200, "max_epochs": 20})
    assert (variant.max_epochs, variant.fit_options) == (20, {"l2": 0.5, "patience": 200})
    assert settings.fit_options == {"l2": 0.5}
    with pytest.raises(ValueError, match="keeps loss='flip'"):
        people._with_options(settings, {"loss": "hinge"})
    with pytest.raises(SystemExit):
        people._parser().parse_args(["raters", "--aggregated-option", "patience"])


def test_each_rater_answers_its_share_as_its_kind_says(covid_candidates):
    pairs = people.rater_answers(covid_candidates, 0, 20)
    names = [name for name, _ in people.RATERS]
    assert [int(np.sum(pairs.rater == name)) for name in names] == [4, 4, 3, 3, 3, 3]
    user = SimulatedUser()
    x0 = pairs.context[:, 0]
    better = np.array([user.score(a, c) < user.score(b, c)
                       for a, b, c in zip(pairs.preferred, pairs.other, x0)])
    for name, kind in people.RATERS:
        mine = better[pairs.rater == name]
        if kind == people.RELIABLE:
            assert mine.all()
        elif kind == people.ADVERSARY:
            assert not mine.any()
    # Seeded: the same answers again.
    again = people.rater_answers(covid_candidates, 0, 20)
    np.testing.assert_array_equal(again.preferred, pairs.preferred)
    with pytest.raises(ValueError, match="unknown rater kind"):
        people.rater_oracle("sometimes", user, 0)


def test_raters_aggregated_fit_learns_who_disagrees():
    # 6 candidates per context (45 distinct pairs), 20 answers per rater, and
    # enough gradient steps (small batches, 100 epochs) for the flip
    # rates to move away from their start, 0.1.
    fit_options = {**experiment.RECOMMENDED_TRAINING["fit_options"], "batch_size": 16}
    settings = experiment.recommended_settings(
        pairs=(120,), seeds=(0,), fit_options=fit_options,
        **{**TINY, "per_context": 6, "min_epochs": 100, "max_epochs": 100})
    result = people.run_raters(settings, n_pairs=120, variants=[{"max_epochs": 20}])
    assert result.arms == people.FIT_ARMS + ("aggregated (max_epochs=20)",)
    assert [int(result.n_answered[arm][0]) for arm in people.FIT_ARMS] == [120, 60, 120]
    for arm in result.arms:
        assert 0 <= result.wins[arm][0] <= 1
    rates = result.flip_rates["aggregated"][0]
    assert set(rates) == {name for name, _ in people.RATERS}
    reliable = [rates[name] for name, kind in people.RATERS if kind == people.RELIABLE]
    assert rates["adversary"] > max(reliable) + 0.2, rates
    assert rates["adversary"] > 0.5, rates  # its answers are used inverted
    disagreeing = result.disagreeing["aggregated"][0]
    assert "adversary" in disagreeing
    assert not any(name.startswith("reliable") for name in disagreeing), disagreeing
    assert set(result.flip_rates) == {"aggregated", "aggregated (max_epochs=20)"}
    data = json.loads(json.dumps(result.to_dict()))
    assert data["targets"]["aggregated"] == {
        key: bool(value) for key, value in result.targets().items()}
    text = people.format_raters(result)
    assert "disagreeing_raters() seed 0: " in text and "adversary (" in text
