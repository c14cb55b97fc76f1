"""Oracles (simulated and console), asking for pairs, the Pairs dataset."""

import numpy as np
import pytest

from conftest import DECISION_NAMES, add_component, build_toy_model
from pyomo_prefobj import Candidates, ConsoleOracle, Pairs, ScoreOracle, oracles
from pyomo_prefobj.errors import LearningError, PairsError


def small_candidates():
    """Two contexts with three and two hand-made candidates."""
    u = np.array(
        [
            [0.0, 0.0, 0.0, 0.0, 0.0, 3.0],
            [1.0, 0.0, 0.0, 1.0, 0.0, 2.0],
            [0.0, 2.0, 0.5, 0.0, 1.0, 1.0],
            [4.0, 0.0, 0.0, 1.0, 0.0, 0.0],
            [0.0, 4.0, 0.0, 0.0, 1.0, 0.0],
        ]
    )
    return Candidates(
        u=u,
        context=[[0.1, 0.2]] * 3 + [[0.7, 0.8]] * 2,
        nominal_cost=[4.5, 6.2, 5.0, 9.2, 12.2],
        group=[0, 0, 0, 1, 1],
        names=DECISION_NAMES,
    )


def first_entry(candidate):
    return candidate.u[0] + 0.1 * candidate.u[5]


# ---------------------------------------------------------------- ScoreOracle
def test_score_oracle_prefers_lower_score():
    cands = small_candidates()
    oracle = ScoreOracle(first_entry)
    assert oracle(cands[0], cands[1]) == 0
    assert oracle(cands[1], cands[0]) == 1
    tie = ScoreOracle(lambda c: 1.0)
    assert tie(cands[0], cands[1]) is None


def test_score_oracle_flips_the_stated_fraction():
    """flip=0.3 over 4000 answers: 0.3 +- 0.03 (more than 4 standard deviations)."""
    cands = small_candidates()
    oracle = ScoreOracle(first_entry, flip=0.3, seed=0)
    answers = np.array([oracle(cands[0], cands[1]) for _ in range(4000)])
    assert abs(answers.mean() - 0.3) < 0.03
    again = ScoreOracle(first_entry, flip=0.3, seed=0)
    np.testing.assert_array_equal(answers, [again(cands[0], cands[1]) for _ in range(4000)])


def test_ask_stores_preferred_first(latent_user, toy_candidates):
    m = build_toy_model()
    pref = add_component(m)
    pairs = pref.ask(toy_candidates, n_pairs=100, oracle=latent_user.oracle(), seed=0, rater="sim")
    assert isinstance(pairs, Pairs) and len(pairs) == 100
    assert pairs.names == DECISION_NAMES
    assert pairs.preferred.shape == pairs.other.shape == (100, 6)
    assert pairs.context.shape == (100, 2)
    assert set(pairs.rater) == {"sim"}
    for context, a, b in zip(pairs.context, pairs.preferred, pairs.other):
        assert latent_user.cost(a, context) < latent_user.cost(b, context)
        assert not np.array_equal(a, b)
        # Both decisions were sampled at this very context.
        for u in (a, b):
            rows = np.all(toy_candidates.u == u, axis=1) & np.all(toy_candidates.context == context, axis=1)
            assert rows.any()


def test_ask_spreads_pairs_over_contexts_and_shows_both_orders(toy_candidates):
    m = build_toy_model()
    pref = add_component(m)
    shown = []

    def oracle(a, b):
        shown.append((a.group, tuple(a.u), tuple(b.u)))
        assert a.group == b.group and np.array_equal(a.context, b.context)
        return "A"

    pairs = pref.ask(toy_candidates, n_pairs=60, oracle=oracle, seed=1)
    assert len(pairs) == 60
    counts = np.bincount([g for g, _, _ in shown], minlength=12)
    assert counts.min() >= 4 and counts.max() <= 6  # round-robin: 60 over 12 contexts
    # Distinct unordered pairs.
    assert len({frozenset((a, b)) for _, a, b in shown}) == 60


def test_candidates_index_like_pairs(toy_candidates):
    """``candidates[i]`` is one Candidate; a slice, mask or index list a Candidates set."""
    first = toy_candidates[:5]
    assert isinstance(first, Candidates) and len(first) == 5
    np.testing.assert_array_equal(first.u, toy_candidates.u[:5])
    assert first.names == toy_candidates.names
    assert first.context_names == toy_candidates.context_names
    in_group = toy_candidates[toy_candidates.group == 2]
    assert set(in_group.group.tolist()) == {2}
    picked = toy_candidates[[3, 0]]
    np.testing.assert_array_equal(picked.nominal_cost, toy_candidates.nominal_cost[[3, 0]])
    one = toy_candidates[np.int64(3)]
    assert one.group == toy_candidates.group[3]


def test_ask_same_seed_same_pairs(toy_candidates, latent_user):
    m = build_toy_model()
    pref = add_component(m)
    first = pref.ask(toy_candidates, n_pairs=50, oracle=latent_user.oracle(), seed=4)
    second = pref.ask(toy_candidates, n_pairs=50, oracle=latent_user.oracle(), seed=4)
    np.testing.assert_array_equal(first.preferred, second.preferred)
    np.testing.assert_array_equal(first.other, second.other)


def test_ask_accepts_letters_and_drops_cannot_tell():
    cands = small_candidates()
    m = build_toy_model()
    pref = add_component(m)
    replies = iter(["A", "b", None, " a "])
    pairs = pref.ask(cands, n_pairs=4, oracle=lambda a, b: next(replies), seed=0)
    assert len(pairs) == 3  # 3 + 1 distinct pairs exist; the "None" one is dropped


def test_pairs_index_like_arrays(toy_pairs):
    head = toy_pairs[:5]
    assert isinstance(head, Pairs) and len(head) == 5
    np.testing.assert_array_equal(head.preferred, toy_pairs.preferred[:5])
    one = toy_pairs[-1]
    assert len(one) == 1
    np.testing.assert_array_equal(one.other[0], toy_pairs.other[-1])
    mask = np.zeros(len(toy_pairs), dtype=bool)
    mask[[2, 7]] = True
    np.testing.assert_array_equal(toy_pairs[mask].context, toy_pairs.context[[2, 7]])


def test_no_pairs_keep_their_context_width(toy_model):
    empty = Pairs(context=np.zeros((0, 2)), preferred=np.zeros((0, 6)), other=np.zeros((0, 6)))
    assert empty.context.shape == (0, 2)
    pref = add_component(toy_model)
    with pytest.raises(LearningError, match="at least 2 pairs"):
        pref.fit(empty, progress=False)


def test_ask_caps_at_the_distinct_pairs_available():
    cands = small_candidates()
    m = build_toy_model()
    pref = add_component(m)
    with pytest.warns(UserWarning, match="only 4 distinct same-context pairs exist") as caught:
        pairs = pref.ask(cands, n_pairs=100, oracle=ScoreOracle(first_entry), seed=0)
    assert len(pairs) == 4  # C(3, 2) + C(2, 2)
    # The warning names the caller's line, through the component or directly.
    assert caught[0].filename == __file__
    with pytest.warns(UserWarning, match="only 4 distinct") as caught:
        oracles.ask(cands, 100, ScoreOracle(first_entry), seed=0, progress=False)
    assert caught[0].filename == __file__


# -------------------------------------------------------------- ConsoleOracle
class Terminal:
    """Scripted replies and a record of what was shown."""

    def __init__(self, *replies):
        self.replies = list(replies)
        self.prompts = []
        self.lines = []

    def input(self, prompt):
        self.prompts.append(prompt)
        if not self.replies:
            raise EOFError  # as input() at the end of the input
        return self.replies.pop(0)

    def print(self, line=""):
        self.lines.append(line)


@pytest.mark.parametrize(
    "replies, expected",
    [(["A"], "A"), (["b"], "B"), (["?"], None), ([""], None), (["maybe", "x", " B "], "B")],
)
def test_console_oracle_answers(replies, expected):
    cands = small_candidates()
    terminal = Terminal(*replies)
    oracle = ConsoleOracle(input_function=terminal.input, print_function=terminal.print)
    assert oracle(cands[0], cands[1]) == expected
    assert len(terminal.prompts) == len(replies)  # an invalid reply asks again
    assert terminal.replies == []
    text = "\n".join(terminal.lines)
    for bad in replies[:-1]:
        assert f"'{bad}' is not an answer" in text


def test_console_oracle_shows_context_costs_and_differing_decisions():
    cands = small_candidates()
    terminal = Terminal("A")
    ConsoleOracle(input_function=terminal.input, print_function=terminal.print)(cands[0], cands[1])
    text = "\n".join(terminal.lines)
    assert "0.1" in text and "0.2" in text  # the context
    assert "4.5" in text and "6.2" in text  # nominal costs
    shown = {line.split()[0] for line in terminal.lines if line.split()}
    assert {"x[0]", "y[0]", "n"} <= shown  # the decisions that differ
    assert not {"x[1]", "x[2]", "y[1]"} & shown  # equal ones are not listed


def test_console_oracle_limits_rows():
    cands = small_candidates()
    terminal = Terminal("B")
    oracle = ConsoleOracle(max_rows=1, input_function=terminal.input, print_function=terminal.print)
    assert oracle(cands[0], cands[2]) == "B"
    assert any("more decisions differ" in line for line in terminal.lines)


def test_console_oracle_through_ask():
    cands = small_candidates()
    m = build_toy_model()
    pref = add_component(m)
    terminal = Terminal("A", "nope", "B", "?", "A")
    oracle = ConsoleOracle(input_function=terminal.input, print_function=terminal.print)
    pairs = pref.ask(cands, n_pairs=4, oracle=oracle, seed=0, rater="alice")
    assert len(pairs) == 3
    assert list(pairs.rater) == ["alice"] * 3


@pytest.mark.parametrize("ending", [(), ("q",)])
def test_console_oracle_stops_at_q_or_end_of_input_keeping_the_answers(ending):
    m = build_toy_model()
    pref = add_component(m)
    cands = pref.sample([[0.2, 0.1]], per_context=6, seed=0, bias_weight=50)
    terminal = Terminal("A", "c", "b", *ending)
    oracle = ConsoleOracle(input_function=terminal.input, print_function=terminal.print)
    with pytest.warns(UserWarning, match=r"asking stopped .* after 3 of 5 questions; returning the 2 pairs"):
        pairs = pref.ask(cands, n_pairs=5, oracle=oracle, seed=0)
    assert len(pairs) == 2  # "c" is cannot tell, as in the web app
    with pytest.raises(PairsError, match="asking stopped .* before any answer"):
        pref.ask(cands, n_pairs=5, oracle=ConsoleOracle(input_function=Terminal("?").input,
                                                        print_function=Terminal().print), seed=0)


# ---------------------------------------------------------------------- Pairs
def test_pairs_save_load_round_trip(tmp_path, toy_pairs):
    path = tmp_path / "pairs.npz"
    toy_pairs.save(path)
    loaded = Pairs.load(path)
    np.testing.assert_array_equal(loaded.context, toy_pairs.context)
    np.testing.assert_array_equal(loaded.preferred, toy_pairs.preferred)
    np.testing.assert_array_equal(loaded.other, toy_pairs.other)
    assert list(loaded.rater) == list(toy_pairs.rater)
    assert loaded.names == toy_pairs.names == DECISION_NAMES


def test_pairs_without_context_round_trip(tmp_path):
    pairs = Pairs(np.zeros((3, 0)), np.eye(3), np.ones((3, 3)), rater=["a", "b", "c"])
    pairs.save(tmp_path / "p.npz")
    loaded = Pairs.load(tmp_path / "p.npz")
    assert loaded.n_context == 0 and loaded.n_decisions == 3 and len(loaded) == 3
    assert list(loaded.rater) == ["a", "b", "c"] and loaded.names == ()


def test_pairs_subset_and_concatenate(toy_pairs):
    head, tail = toy_pairs.subset(np.arange(10)), toy_pairs.subset(np.arange(10, 25))
    joined = Pairs.concatenate([head, tail])
    assert len(joined) == 25
    np.testing.assert_array_equal(joined.preferred, toy_pairs.preferred[:25])
    assert joined.names == toy_pairs.names


def test_context_names_survive_save_load_subset_and_concatenate(tmp_path, toy_pairs):
    assert toy_pairs.context_names == ("theta[0]", "theta[1]")
    toy_pairs.save(tmp_path / "pairs.npz")
    assert Pairs.load(tmp_path / "pairs.npz").context_names == toy_pairs.context_names
    unnamed = Pairs(toy_pairs.context[:3], toy_pairs.preferred[:3], toy_pairs.other[:3])
    joined = Pairs.concatenate([unnamed, toy_pairs[3:6]])  # the known names are kept
    assert joined.context_names == toy_pairs.context_names and joined.names == toy_pairs.names
    other = Pairs(toy_pairs.context[:3], toy_pairs.preferred[:3], toy_pairs.other[:3],
                  context_names=("a", "b"))
    with pytest.raises(PairsError, match="different context names"):
        Pairs.concatenate([other, toy_pairs[3:6]])
    with pytest.raises(PairsError, match="2 context columns but 1 context names"):
        Pairs(toy_pairs.context[:3], toy_pairs.preferred[:3], toy_pairs.other[:3],
              context_names=("a",))


def test_pairs_one_dimensional_context_is_a_column():
    pairs = Pairs([0.1, 0.2], np.zeros((2, 3)), np.ones((2, 3)))
    assert pairs.context.shape == (2, 1)


def test_ask_stores_the_nominal_cost_of_both_decisions(toy_pairs, toy_candidates):
    assert toy_pairs.has_costs
    # Each decision's stored cost is its candidate's nominal cost.
    for k in (0, 7, 123):
        row = np.flatnonzero((toy_candidates.u == toy_pairs.preferred[k]).all(axis=1)
                             & (toy_candidates.context == toy_pairs.context[k]).all(axis=1))
        assert toy_pairs.preferred_cost[k] == toy_candidates.nominal_cost[row[0]]


def test_pairs_costs_survive_save_load_subset_and_concatenate(tmp_path, toy_pairs):
    toy_pairs.save(tmp_path / "pairs.npz")
    loaded = Pairs.load(tmp_path / "pairs.npz")
    np.testing.assert_array_equal(loaded.preferred_cost, toy_pairs.preferred_cost)
    np.testing.assert_array_equal(loaded.other_cost, toy_pairs.other_cost)
    joined = Pairs.concatenate([toy_pairs.subset(np.arange(5)), toy_pairs.subset(np.arange(5, 9))])
    np.testing.assert_array_equal(joined.other_cost, toy_pairs.other_cost[:9])


def test_pairs_without_costs_have_nan_costs():
    pairs = Pairs(np.zeros((2, 0)), np.eye(2), np.ones((2, 2)))
    assert np.isnan(pairs.preferred_cost).all() and not pairs.has_costs


def test_pairs_cost_of_wrong_shape_is_refused():
    with pytest.raises(PairsError, match=r"Pairs.other_cost must have shape \(2,\)"):
        Pairs(np.zeros((2, 0)), np.eye(2), np.ones((2, 2)), other_cost=[1.0, 2.0, 3.0])
