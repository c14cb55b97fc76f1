"""Saving and loading a learned objective: round trip, and bad files."""

import io
import json
import zipfile

import numpy as np
import pyomo.environ as pyo
import pytest

from conftest import (
    active_objective,
    add_component,
    build_toy_model,
    decision_vector,
    snapshot,
    solve,
)
from pyomo_prefobj import (Candidates, ContextError, DecisionError, FileFormatError, ModelError, Pairs,
                           PreferenceObjective)

CONTEXTS = [(0.3, 0.7), (0.9, 0.1), (0.0, 0.0)]


@pytest.fixture
def saved(fitted_model, tmp_path):
    path = tmp_path / "objective.npz"
    fitted_model.pref.save(path)
    return fitted_model, path


def rewrite(path, target, header=None, drop=(), extra=None):
    """Copy a saved objective with its header or arrays changed."""
    with np.load(path, allow_pickle=False) as data:
        arrays = {key: data[key] for key in data.files if key not in drop}
    if header is not None:
        meta = json.loads(str(arrays["header"]))
        meta.update(header)
        arrays["header"] = np.array(json.dumps(meta))
    arrays.update(extra or {})
    np.savez(target, **arrays)
    return target


def test_save_load_round_trip(saved):
    m, path = saved
    m2 = build_toy_model()
    m2.pref = PreferenceObjective.load(path)
    assert m2.pref.is_fitted
    assert m2.pref.decision_names == m.pref.decision_names
    assert m2.pref.context_names == m.pref.context_names
    assert m2.pref.decision[0] is m2.x[0]  # found on the new model by name
    assert m2.pref.context_param[1] is m2.theta[1]
    for context in CONTEXTS:
        before, after = m.pref.cost(context), m2.pref.cost(context)
        np.testing.assert_array_equal(after.hessian, before.hessian)
        np.testing.assert_array_equal(after.linear, before.linear)
        assert after.constant == before.constant


@pytest.mark.parametrize("progress", [True, False])
def test_load_takes_the_constructors_progress(saved, capsys, progress):
    _, path = saved
    m2 = build_toy_model()
    m2.pref = PreferenceObjective.load(path, progress=progress, solver_options={"limits/gap": 0.01})
    m2.pref.sample([(0.5, 0.5)], per_context=2, seed=0)
    assert ("sampling" in capsys.readouterr().err) is progress


@pytest.mark.parametrize("call", ["activate", "cost", "sample", "decision_values", "n_context"])
def test_a_loaded_objective_not_yet_on_a_model_says_so(saved, call):
    _, path = saved
    pref = PreferenceObjective.load(path)
    calls = {
        "activate": lambda: pref.activate([0.3, 0.7]),
        "cost": lambda: pref.cost([0.3, 0.7]),
        "sample": lambda: pref.sample([[0.3, 0.7]]),
        "decision_values": pref.decision_values,
        "n_context": lambda: pref.n_context,
    }
    with pytest.raises(ModelError, match="not on a model yet"):
        calls[call]()
    # Added to a model afterwards, it works.
    m = build_toy_model()
    m.pref = pref
    m.pref.activate([0.3, 0.7])
    assert active_objective(m) is m.pref.learned.objective


def test_loaded_objective_solves_like_the_original(saved):
    m, path = saved
    m2 = build_toy_model()
    m2.pref = PreferenceObjective.load(path)
    context = CONTEXTS[0]
    values = []
    for model in (m, m2):
        model.pref.activate(context)
        solve(model, "scip_direct")
        values.append((pyo.value(active_objective(model)), decision_vector(model)))
        model.pref.deactivate()
        assert active_objective(model) is model.cost
    assert values[0][0] == pytest.approx(values[1][0], rel=1e-6, abs=1e-6)
    np.testing.assert_allclose(values[0][1], values[1][1], atol=1e-5)


def test_load_with_other_components(saved):
    """Decisions and context given explicitly, on a model with other names."""
    _, path = saved
    m = pyo.ConcreteModel()
    m.flows = pyo.Var(range(3), bounds=(0, 4))
    m.switch = pyo.Var(range(2), domain=pyo.Binary)
    m.count = pyo.Var(domain=pyo.Integers, bounds=(0, 3))
    m.scenario = pyo.Param(range(2), mutable=True, initialize=0.5)
    m.pref = PreferenceObjective.load(path, decisions=[m.flows, m.switch, m.count], context=[m.scenario])
    assert m.pref.decision_names == ("flows[0]", "flows[1]", "flows[2]", "switch[0]", "switch[1]", "count")
    assert m.pref.cost((0.3, 0.7)).hessian.shape == (6, 6)


def test_saved_file_is_npz_with_json_header_and_no_pickle(saved):
    _, path = saved
    with np.load(path, allow_pickle=False) as data:  # raises if anything is pickled
        header = json.loads(str(data["header"]))
        assert all(data[key].dtype != object for key in data.files)
    assert header["format"] == "pyomo_prefobj.preference_objective"
    assert header["version"] == 1
    assert header["decisions"] == ["x[0]", "x[1]", "x[2]", "y[0]", "y[1]", "n"]
    assert header["context"] == ["theta[0]", "theta[1]"]


def test_load_without_context(plain_pairs, tmp_path):
    m = build_toy_model(context=False)
    add_component(m, context=False)
    m.pref.fit(plain_pairs, seed=0, max_epochs=10, progress=False)
    m.pref.save(tmp_path / "plain.npz")
    m2 = build_toy_model(context=False)
    m2.pref = PreferenceObjective.load(tmp_path / "plain.npz")
    assert m2.pref.n_context == 0
    np.testing.assert_array_equal(m2.pref.cost().hessian, m.pref.cost().hessian)


# ------------------------------------------------------------------ bad files
def check_load_fails(path, message):
    m = build_toy_model()
    before = snapshot(m)
    with pytest.raises(FileFormatError, match=message):
        m.pref = PreferenceObjective.load(path)
    assert snapshot(m) == before
    assert m.component("pref") is None


def test_corrupted_file(saved, tmp_path):
    _, path = saved
    data = path.read_bytes()
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(data[: len(data) // 2])
    check_load_fails(truncated, "cannot read a saved PreferenceObjective")
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"this is not a zip file at all" * 10)
    check_load_fails(garbage, "cannot read a saved PreferenceObjective .*: not an .npz archive$")
    check_load_fails(tmp_path / "missing.npz", "cannot read a saved PreferenceObjective .*No such file")


def test_corrupted_arrays(saved, tmp_path):
    _, path = saved
    with np.load(path) as data:
        names = [key for key in data.files if key.startswith("network.")]
    broken = rewrite(path, tmp_path / "broken.npz", extra={names[0]: np.zeros(3)})
    check_load_fails(broken, "learned arrays are corrupted")
    missing = rewrite(path, tmp_path / "missing_mean.npz", drop=("mean",))
    check_load_fails(missing, "learned arrays are corrupted")


def test_wrong_format_file(saved, tmp_path, toy_pairs):
    _, path = saved
    pairs_file = tmp_path / "pairs.npz"
    toy_pairs.save(pairs_file)
    check_load_fails(pairs_file, "is not a saved PreferenceObjective")
    other = rewrite(path, tmp_path / "other.npz", header={"format": "something.else"})
    check_load_fails(other, r"is not a saved PreferenceObjective \(format 'something.else'\)")
    no_json = rewrite(path, tmp_path / "nojson.npz", extra={"header": np.array("{not json")})
    check_load_fails(no_json, "no valid header")


def test_wrong_version_file(saved, tmp_path):
    _, path = saved
    future = rewrite(path, tmp_path / "future.npz", header={"version": 2})
    check_load_fails(future, "has format version 2; this pyomo_prefobj reads version 1")


def test_pickled_content_is_refused(saved, tmp_path):
    """An object array needs pickle to load; the loader never unpickles."""
    _, path = saved
    evil = tmp_path / "evil.npz"
    with np.load(path) as data:
        arrays = {key: data[key] for key in data.files}
    arrays["mean"] = np.array([object()], dtype=object)
    np.savez(evil, **arrays)
    check_load_fails(evil, "cannot read a saved PreferenceObjective")


def test_saved_objective_for_another_model(saved):
    _, path = saved
    m = build_toy_model()
    before = snapshot(m)
    # The components given do not fit the file: the argument's error, as for
    # a misordered list (below), not the file's.
    with pytest.raises(DecisionError, match="the saved objective has 6 decisions; this model gives 3"):
        m.pref = PreferenceObjective.load(path, decisions=[m.x])
    assert snapshot(m) == before


def test_a_name_saved_without_the_npz_suffix_loads_as_given(fitted_model, toy_pairs, toy_candidates,
                                                            tmp_path):
    # numpy's savez adds ".npz" to a name without it; load takes the name given to save.
    fitted_model.pref.save(tmp_path / "fit")
    toy_pairs.save(tmp_path / "pairs")
    toy_candidates.save(str(tmp_path / "candidates"))
    m = build_toy_model()
    m.pref = PreferenceObjective.load(tmp_path / "fit")
    assert m.pref.is_fitted
    assert len(Pairs.load(tmp_path / "pairs")) == len(toy_pairs)
    assert len(Candidates.load(str(tmp_path / "candidates"))) == len(toy_candidates)


def test_saved_names_given_in_another_order_are_refused(saved):
    _, path = saved
    m = build_toy_model()
    before = snapshot(m)
    with pytest.raises(DecisionError, match=r"the saved ones in another order \('y\[0\]' where 'x\[0\]'"):
        m.pref = PreferenceObjective.load(path, decisions=[m.y, m.x, m.n])
    with pytest.raises(ContextError, match=r"in another order \('theta\[1\]' where 'theta\[0\]'"):
        m.pref = PreferenceObjective.load(path, context=[m.theta[1], m.theta[0]])
    with pytest.raises(ContextError, match="2 context values; this model gives 1 context Params"):
        m.pref = PreferenceObjective.load(path, context=[m.theta[1]])
    assert snapshot(m) == before
    m.pref = PreferenceObjective.load(path, decisions=[m.x, m.y, m.n], context=[m.theta])
    assert m.pref.is_fitted


def test_wrong_pairs_files(tmp_path, saved):
    _, path = saved
    with pytest.raises(FileFormatError, match="is not a pairs file"):
        Pairs.load(rewrite(path, tmp_path / "fake.npz", extra={"format": np.array("x"), "version": np.array(1)}))
    pairs = Pairs(np.zeros((2, 1)), np.eye(2), np.ones((2, 2)))
    pairs.save(tmp_path / "pairs.npz")
    with np.load(tmp_path / "pairs.npz") as data:
        arrays = {key: data[key] for key in data.files}
    arrays["version"] = np.array(9)
    np.savez(tmp_path / "future.npz", **arrays)
    with pytest.raises(FileFormatError, match="pairs format version 9"):
        Pairs.load(tmp_path / "future.npz")
    with pytest.raises(FileFormatError, match="is not a pairs file .it names no format and version"):
        Pairs.load(path)  # an objective file has no 'format' entry
    (tmp_path / "junk.npz").write_bytes(b"junk")
    with pytest.raises(FileFormatError, match="cannot read pairs .*: not an .npz archive"):
        Pairs.load(tmp_path / "junk.npz")
    with pytest.raises(FileFormatError, match="cannot read pairs .*: not an .npz archive"):
        Pairs.load(io.BytesIO(b"junk"))
    data = (tmp_path / "pairs.npz").read_bytes()
    (tmp_path / "truncated.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(FileFormatError, match="cannot read pairs"):
        Pairs.load(tmp_path / "truncated.npz")


def test_saved_file_is_a_zip_of_npy(saved):
    _, path = saved
    with zipfile.ZipFile(path) as archive:
        assert all(name.endswith(".npy") for name in archive.namelist())


def test_candidates_save_load_round_trip(tmp_path, toy_candidates):
    path = tmp_path / "candidates.npz"
    toy_candidates.save(path)
    loaded = Candidates.load(path)
    np.testing.assert_array_equal(loaded.u, toy_candidates.u)
    np.testing.assert_array_equal(loaded.context, toy_candidates.context)
    np.testing.assert_array_equal(loaded.nominal_cost, toy_candidates.nominal_cost)
    np.testing.assert_array_equal(loaded.group, toy_candidates.group)
    assert loaded.names == toy_candidates.names
    assert loaded.context_names == toy_candidates.context_names == ("theta[0]", "theta[1]")
    data = path.read_bytes()
    (tmp_path / "truncated.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(FileFormatError, match="cannot read candidates"):
        Candidates.load(tmp_path / "truncated.npz")


def test_save_load_keeps_the_learned_nominal_weight(toy_pairs, tmp_path):
    m = build_toy_model()
    m.pref = PreferenceObjective(decisions=[m.x, m.y, m.n], context=[m.theta], progress=False)
    m.pref.fit(toy_pairs, seed=0, nominal_weight=True, max_epochs=20, progress=False)
    m.pref.save(tmp_path / "weighted.npz")
    m2 = build_toy_model()
    m2.pref = PreferenceObjective.load(tmp_path / "weighted.npz")
    for context in CONTEXTS:
        before = m.pref.learner.nominal_weights(np.array([context]))
        assert before[0] > 0
        np.testing.assert_array_equal(m2.pref.learner.nominal_weights(np.array([context])), before)
