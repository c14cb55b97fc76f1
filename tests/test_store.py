"""Tests of the answer store (pyomo_prefobj.store) and Candidates.save/load."""

import dataclasses
import sqlite3
import threading

import numpy as np
import pytest

pytest.importorskip("sqlalchemy")

from conftest import random_candidates  # noqa: E402
from pyomo_prefobj.candidates import Candidates  # noqa: E402
from pyomo_prefobj.errors import FileFormatError, PairsError  # noqa: E402
from pyomo_prefobj.pairs import Pairs  # noqa: E402
from pyomo_prefobj.store import (  # noqa: E402
    AuthenticationError,
    DuplicateAnswerError,
    InvalidAnswerError,
    PreferenceStore,
    StoreError,
    UnknownQueryError,
    UnknownSessionError,
    fewest_answers,
    load_pairs,
)

N_GROUPS, PER_GROUP, N_DECISIONS = 3, 4, 5
PAIRS_PER_GROUP = PER_GROUP * (PER_GROUP - 1) // 2


def make_candidates(seed=0):
    """Three contexts, four candidates each, five named decisions."""
    return random_candidates(seed, N_GROUPS, PER_GROUP, N_DECISIONS)


@pytest.fixture
def candidates():
    return make_candidates()


@pytest.fixture
def session(store, candidates):
    return store.create_session(candidates, "demo", seed=1)


# ----------------------------------------------------------------------
# Candidates.save / load
# ----------------------------------------------------------------------
def test_candidates_save_load_round_trip(tmp_path, candidates):
    path = tmp_path / "cands.npz"
    candidates.save(path)
    loaded = Candidates.load(path)
    for name in ("u", "context", "nominal_cost", "group"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(candidates, name))
    assert loaded.names == candidates.names
    with np.load(path, allow_pickle=False) as data:  # readable without pickle
        assert str(data["format"]) == "pyomo_prefobj.candidates"


def test_candidates_load_rejects_other_files(tmp_path, candidates):
    pairs_file = tmp_path / "pairs.npz"
    Pairs(candidates.context[:2], candidates.u[:2], candidates.u[2:4]).save(pairs_file)
    with pytest.raises(FileFormatError, match="is not a candidates file"):
        Candidates.load(pairs_file)
    with pytest.raises(FileFormatError, match="cannot read candidates"):
        Candidates.load(tmp_path / "missing.npz")


# ----------------------------------------------------------------------
# Database and sessions
# ----------------------------------------------------------------------
def test_sqlite_runs_in_wal_mode_with_full_sync(store, url, session):
    with store.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    path = url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as raw:  # WAL is a property of the file itself
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_in_memory_sqlite_is_one_database_for_all_threads(candidates):
    with PreferenceStore("sqlite://") as memory:
        session = memory.create_session(candidates, "demo")
        rater = memory.add_rater(session, "alice")
        seen = []
        worker = threading.Thread(target=lambda: seen.append(len(memory.query_pool(rater))))
        worker.start()
        worker.join()
        assert seen == [session.n_queries]


def test_store_rejects_a_path_that_is_no_url():
    with pytest.raises(StoreError, match="SQLAlchemy URL"):
        PreferenceStore("prefs.db")


@pytest.mark.parametrize("url, message", [
    ("nosuchdb://user:secret@host/db", r"'nosuchdb' in 'nosuchdb://user:\*\*\*@host/db' is not a database"),
    ("postgresql+nosuchdriver://host/db", "not a database SQLAlchemy knows"),
    ("sqlite:////no/such/directory/prefs.db", "cannot open the database"),
])
def test_store_says_why_a_database_cannot_be_opened(url, message):
    with pytest.raises(StoreError, match=message):
        PreferenceStore(url)


def test_a_file_that_is_not_a_database_is_refused(tmp_path):
    path = tmp_path / "candidates.npz"
    path.write_bytes(b"PK\x03\x04 not an SQLite file" * 100)
    with pytest.raises(StoreError, match="cannot open the database .*file is not a database"):
        PreferenceStore(f"sqlite:///{path}")


def test_store_names_a_missing_database_driver(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def without_psycopg(name, *args, **kwargs):
        if name.split(".")[0] == "psycopg":
            raise ModuleNotFoundError("No module named 'psycopg'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", without_psycopg)
    with pytest.raises(StoreError, match=r"driver of 'postgresql\+psycopg' is not installed"):
        PreferenceStore("postgresql+psycopg://user@localhost/db")


def test_session_plans_every_same_context_pair_once(store, session, candidates):
    assert session.n_queries == N_GROUPS * PAIRS_PER_GROUP
    assert session.n_contexts == N_GROUPS and session.n_candidates == len(candidates)
    assert session.admin_token and session.names == candidates.names
    rater = store.add_rater(session, "alice")
    pool = store.query_pool(rater)
    assert len(pool) == session.n_queries
    assert np.all(candidates.group[pool.first] == candidates.group[pool.second])
    unordered = {frozenset(p) for p in zip(pool.first.tolist(), pool.second.tolist())}
    assert len(unordered) == session.n_queries
    assert 0 < np.sum(pool.first > pool.second) < session.n_queries  # A/B order shuffled


def test_session_with_a_subsample_of_pairs_spreads_contexts(store, candidates):
    session = store.create_session(candidates, "small", n_pairs=6)
    assert session.n_queries == 6
    rater = store.add_rater(session, "alice")
    groups = candidates.group[store.query_pool(rater).first]
    assert np.bincount(groups, minlength=N_GROUPS).tolist() == [2, 2, 2]


def test_session_stores_candidates_exactly(url, session, candidates):
    with PreferenceStore(url) as reopened:  # no cache: read back from the database
        stored = reopened.candidates("demo")
    for name in ("u", "context", "nominal_cost", "group"):
        np.testing.assert_array_equal(getattr(stored, name), getattr(candidates, name))
    assert stored.names == candidates.names


def test_session_names_the_context_as_the_candidates_do(store, candidates):
    named = dataclasses.replace(candidates, context_names=("demand",))
    assert store.create_session(named, "named").context_names == ("demand",)
    assert store.create_session(candidates, "unnamed").context_names == ("x0[0]",)
    chosen = store.create_session(named, "chosen", context_names=["load"])
    assert chosen.context_names == ("load",)


def test_exported_pairs_are_the_same_in_the_serving_process_and_later(url, candidates):
    """The process that created the session (its cache) and a later one
    (the database) give the same Pairs, context names included."""
    named = dataclasses.replace(candidates, context_names=("demand",))
    with PreferenceStore(url) as store:
        store.create_session(named, "named", context_names=["load"])
        rater = store.add_rater("named", "alice")
        for _ in range(3):
            store.record_answer(rater, store.next_query(rater).id, "A")
        here = store.export_pairs("named")
    with PreferenceStore(url) as reopened:
        later = reopened.export_pairs("named")
    assert here.context_names == later.context_names == ()
    np.testing.assert_array_equal(here.preferred, later.preferred)
    np.testing.assert_array_equal(here.context, later.context)


def test_session_errors(store, session, candidates):
    with pytest.raises(StoreError, match="exists already"):
        store.create_session(candidates, "demo")
    bad = Candidates(candidates.u.copy(), candidates.context, candidates.nominal_cost,
                     candidates.group, candidates.names)
    bad.u[0, 0] = np.nan
    with pytest.raises(StoreError, match="holds NaN or inf"):
        store.create_session(bad, "bad")
    with pytest.raises(StoreError, match="2 context names given"):
        store.create_session(candidates, "named", context_names=["a", "b"])
    with pytest.raises(UnknownSessionError, match="no session 'nope'"):
        store.session("nope")
    lonely = Candidates(candidates.u[:3], candidates.context[:3], candidates.nominal_cost[:3],
                        [0, 1, 2], candidates.names)
    with pytest.raises(PairsError, match="no context has two distinct candidates"):
        store.create_session(lonely, "lonely")
    assert [s.name for s in store.sessions()] == ["demo"]  # failed creations left nothing


def test_store_of_another_version_is_refused(url, store):
    with store.engine.begin() as connection:
        connection.exec_driver_sql("UPDATE store_meta SET value = '99' WHERE key = 'version'")
    with pytest.raises(FileFormatError, match="version '99'"):
        PreferenceStore(url)


# ----------------------------------------------------------------------
# Raters
# ----------------------------------------------------------------------
def test_raters_get_secret_tokens_stored_only_as_hashes(store, url, session):
    alice = store.add_rater(session, "alice")
    bob = store.add_rater(session, "bob")
    assert len(alice.token) >= 32 and alice.token != bob.token
    assert store.authenticate(alice.token).name == "alice"
    assert store.authenticate_admin(session.admin_token).name == "demo"
    raw = sqlite3.connect(url.removeprefix("sqlite:///"))
    dump = "\n".join(raw.iterdump())
    raw.close()
    assert alice.token not in dump and session.admin_token not in dump
    with pytest.raises(StoreError, match="has a rater named 'alice' already"):
        store.add_rater(session, "alice")
    with pytest.raises(StoreError, match="rater name must be a non-empty string"):
        store.add_rater(session, "  ")


def test_wrong_tokens_are_refused(store, session):
    alice = store.add_rater(session, "alice")
    for token in ("", "nope", None, "x" * 1000, session.admin_token):
        with pytest.raises(AuthenticationError):
            store.authenticate(token)
    with pytest.raises(AuthenticationError, match="matches no session"):
        store.authenticate_admin(alice.token)


def test_new_tokens_replace_old_ones(store, session):
    alice = store.add_rater(session, "alice")
    renewed = store.new_rater_token(session, "alice")
    assert store.authenticate(renewed.token).id == alice.id
    with pytest.raises(AuthenticationError):
        store.authenticate(alice.token)
    admin = store.new_admin_token(session)
    with pytest.raises(AuthenticationError):
        store.authenticate_admin(session.admin_token)
    assert store.authenticate_admin(admin.admin_token).id == session.id


# ----------------------------------------------------------------------
# Queries, answers
# ----------------------------------------------------------------------
def test_next_query_walks_the_plan_and_ends(store, session):
    alice = store.add_rater(session, "alice")
    seen = []
    while (query := store.next_query(alice)) is not None:
        assert query.first.group == query.second.group
        np.testing.assert_array_equal(query.context, query.second.context)
        seen.append(query.position)
        store.record_answer(alice, query.id, ("A", "B", "cant_tell")[len(seen) % 3])
    assert seen == list(range(session.n_queries))
    assert store.count_answers(session=session) == session.n_queries


def test_fewest_answers_spreads_raters(store, session):
    alice, bob = store.add_rater(session, "alice"), store.add_rater(session, "bob")
    first = store.next_query(alice, fewest_answers)
    store.record_answer(alice, first.id, "A")
    assert store.next_query(bob, fewest_answers).id != first.id
    assert store.next_query(bob).id == first.id  # in order: bob starts where alice did


def test_custom_selector_and_its_validation(store, session):
    alice = store.add_rater(session, "alice")
    assert store.next_query(alice, lambda pool: len(pool) - 1).position == session.n_queries - 1
    assert store.next_query(alice, lambda pool: None) is None
    for bad in (len(range(session.n_queries)), -1, 1.0, True):
        with pytest.raises(StoreError, match="it must return an index"):
            store.next_query(alice, lambda pool, bad=bad: bad)


def test_record_answer_validates_and_stores_once(store, session, candidates):
    alice = store.add_rater(session, "alice")
    query = store.next_query(alice)
    for query_id in ("abc", "1.5", -3, 0, True, None, 2.0):
        with pytest.raises(InvalidAnswerError, match="query_id must be a positive integer"):
            store.record_answer(alice, query_id, "A")
    for choice in ("C", "", None, 1, "AB"):
        with pytest.raises(InvalidAnswerError, match="choice must be one of"):
            store.record_answer(alice, query.id, choice)
    with pytest.raises(UnknownQueryError, match="no query 99999"):
        store.record_answer(alice, 99999, "A")
    answer = store.record_answer(alice, str(query.id), "b")
    assert (answer.choice, answer.rater, answer.query_id) == ("B", "alice", query.id)
    with pytest.raises(DuplicateAnswerError, match="answered query .* already"):
        store.record_answer(alice, query.id, "A")
    assert [a.choice for a in store.answers(alice)] == ["B"]
    # Another session's query is unknown to alice.
    other = store.create_session(candidates, "other")
    carol = store.add_rater(other, "carol")
    foreign = store.next_query(carol)
    with pytest.raises(UnknownQueryError):
        store.record_answer(alice, foreign.id, "A")
    with pytest.raises(UnknownQueryError):
        store.query(alice, foreign.id)
    assert store.count_answers() == 1


def test_each_rater_sees_only_their_own_answers(store, session):
    alice, bob = store.add_rater(session, "alice"), store.add_rater(session, "bob")
    query = store.next_query(alice)
    store.record_answer(alice, query.id, "A")
    store.record_answer(bob, query.id, "B")  # bob answers for himself; alice's answer stays
    assert [(a.rater, a.choice) for a in store.answers(alice)] == [("alice", "A")]
    assert [(a.rater, a.choice) for a in store.answers(bob)] == [("bob", "B")]


def test_add_queries_extends_the_plan(store, session, candidates):
    alice = store.add_rater(session, "alice")
    group0 = np.flatnonzero(candidates.group == 0)
    with pytest.raises(StoreError, match="planned already"):
        store.add_queries(session, [[group0[0], group0[1]]])
    with pytest.raises(StoreError, match="same context"):
        store.add_queries(session, [[group0[0], np.flatnonzero(candidates.group == 1)[0]]])
    with pytest.raises(StoreError, match="must lie in"):
        store.add_queries(session, [[0, 999]])
    small = store.create_session(candidates, "small", n_pairs=3)
    bob = store.add_rater(small, "bob")
    pool = store.query_pool(bob)
    planned = {frozenset(p) for p in zip(pool.first.tolist(), pool.second.tolist())}
    new = next([a, b] for a in group0 for b in group0 if a < b and frozenset((a, b)) not in planned)
    ids = store.add_queries(small, [new])
    assert store.next_query(bob, lambda pool: len(pool) - 1).id == ids[0]
    assert len(store.query_pool(alice)) == session.n_queries  # other session untouched


# ----------------------------------------------------------------------
# Progress and export
# ----------------------------------------------------------------------
def answer_some(store, session):
    """alice: A, B, can't tell; bob: B on alice's first query. Returns the queries."""
    alice, bob = store.add_rater(session, "alice"), store.add_rater(session, "bob")
    queries = []
    for choice in ("A", "B", "cant_tell"):
        query = store.next_query(alice)
        store.record_answer(alice, query.id, choice)
        queries.append(query)
    store.record_answer(bob, queries[0].id, "B")
    return queries


def test_export_puts_the_preferred_decision_first(store, session):
    queries = answer_some(store, session)
    pairs = store.export_pairs(session)
    assert isinstance(pairs, Pairs) and len(pairs) == 3  # can't tell left out
    expected = [
        (queries[0].first, queries[0].second, "alice"),
        (queries[1].second, queries[1].first, "alice"),
        (queries[0].second, queries[0].first, "bob"),
    ]
    for row, (preferred, other, rater) in enumerate(expected):
        np.testing.assert_array_equal(pairs.preferred[row], preferred.u)
        np.testing.assert_array_equal(pairs.other[row], other.u)
        np.testing.assert_array_equal(pairs.context[row], preferred.context)
        assert pairs.rater[row] == rater
    assert pairs.names == session.names
    assert len(store.export_pairs(session, raters="bob")) == 1
    assert len(store.export_pairs(session, raters=["alice", "bob"])) == 3


def test_export_without_answers_says_so(store, session):
    with pytest.raises(PairsError, match="no A/B answers yet"):
        store.export_pairs(session)


def test_load_pairs_reads_a_session_by_id_or_name(store, url, session):
    answer_some(store, session)
    by_id = load_pairs(url, session.id)
    by_name = load_pairs(url, "demo", raters="alice")
    np.testing.assert_array_equal(by_id.preferred, store.export_pairs(session).preferred)
    assert by_name.rater.tolist() == ["alice", "alice"]
    with pytest.raises(UnknownSessionError):
        load_pairs(url, 42)


def test_progress_counts_per_rater_and_context(store, session, candidates):
    queries = answer_some(store, session)
    progress = store.progress(session)
    assert (progress.n_answers, progress.n_cant_tell, progress.n_queries_answered) == (4, 1, 3)
    by_name = {r.name: r for r in progress.raters}
    assert (by_name["alice"].answered, by_name["alice"].chose_a, by_name["alice"].chose_b,
            by_name["alice"].cant_tell) == (3, 1, 1, 1)
    assert (by_name["bob"].answered, by_name["bob"].chose_b) == (1, 1)
    assert by_name["alice"].last_answer_at is not None
    per_group = {c.group: c for c in progress.contexts}
    expected = np.zeros(N_GROUPS, dtype=int)
    for query, n in zip(queries, (2, 1, 1)):
        expected[query.first.group] += n
    assert [per_group[g].answered for g in range(N_GROUPS)] == expected.tolist()
    assert all(per_group[g].n_queries == PAIRS_PER_GROUP for g in range(N_GROUPS))
    assert per_group[1].context == (0.5,)


def test_agreement_with_the_other_raters_majority(store, session):
    alice, bob, carol = (store.add_rater(session, name) for name in ("alice", "bob", "carol"))
    q1, q2, q3, q4 = (store.next_query(alice, lambda pool, k=k: k) for k in range(4))
    answers = [  # query, (alice, bob, carol); None: not answered
        (q1, ("A", "A", "A")),
        (q2, ("A", "A", "B")),
        (q3, ("A", "B", None)),
        (q4, ("cant_tell", "B", "B")),
    ]
    for query, choices in answers:
        for rater, choice in zip((alice, bob, carol), choices):
            if choice is not None:
                store.record_answer(rater, query.id, choice)
    rows = {row.name: row for row in store.agreement(session)}
    # alice: q1 agrees (others A, A), q2 tie (A, B) left out, q3 disagrees (bob B);
    # her "can't tell" on q4 is no A/B answer.
    assert (rows["alice"].answered, rows["alice"].compared, rows["alice"].agreed) == (3, 2, 1)
    assert rows["alice"].agreement == 0.5
    # bob: q1 agrees, q2 tie (alice A, carol B), q3 disagrees (alice A), q4 agrees (carol B).
    assert (rows["bob"].answered, rows["bob"].compared, rows["bob"].agreed) == (4, 3, 2)
    # carol: q1 agrees, q2 disagrees (alice, bob say A), q4 agrees (bob B).
    assert (rows["carol"].answered, rows["carol"].compared, rows["carol"].agreed) == (3, 3, 2)
    other = store.create_session(make_candidates(seed=3), "other")
    assert store.agreement(other) == ()
