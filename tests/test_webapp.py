"""Tests of the preference web app, its server and a model fitted from it.

* API tests with Flask's test client: pages, the JSON API and every invalid
  input (each a 4xx JSON error that stores nothing).
* The durability test: the real server in a subprocess on an SQLite file,
  answers over HTTP, ``kill -9``, restart, count.
* A toy Pyomo model fits from answers given through the app.
* A rater answers through the page in a real headless Chromium (skipped only
  where Debian's ``chromium`` is absent).
"""

import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import pytest

pytest.importorskip("flask")
pytest.importorskip("sqlalchemy")

from pyomo_prefobj import serve  # noqa: E402
from conftest import random_candidates  # noqa: E402
from pyomo_prefobj.pairs import Pairs  # noqa: E402
from pyomo_prefobj.candidates import Candidate  # noqa: E402
from pyomo_prefobj.store import PreferenceStore, Query, StoreError, load_pairs  # noqa: E402
from pyomo_prefobj.webapp import RATER_COOKIE, create_app, describe_query  # noqa: E402

N_GROUPS, PER_GROUP, N_DECISIONS = 3, 4, 5
CHROMIUM = shutil.which("chromium") or next(
    (p for p in ("/usr/bin/chromium",) if os.path.exists(p)), None
)
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


def make_candidates(seed=0):
    """Three contexts, four candidates each; decision x[3] equal everywhere."""
    return random_candidates(seed, N_GROUPS, PER_GROUP, N_DECISIONS, constant_column=3)


@pytest.fixture
def candidates():
    return make_candidates()


@pytest.fixture
def session(store, candidates):
    return store.create_session(candidates, "demo", seed=1, context_names=["load"])


@pytest.fixture
def alice(store, session):
    return store.add_rater(session, "alice")


@pytest.fixture
def bob(store, session):
    return store.add_rater(session, "bob")


@pytest.fixture
def app(store, session):
    application = create_app(store)
    application.config["TESTING"] = True
    return application


def client_of(app, token=None, admin=False):
    """A test client signed in (cookie set) with ``token``."""
    client = app.test_client()
    if token is not None:
        response = client.get(("/admin" if admin else "/rate") + f"?token={token}")
        assert response.status_code == 303
    return client


def auth(token):
    return {"Authorization": f"Bearer {token}"}


# ----------------------------------------------------------------------
# Pages
# ----------------------------------------------------------------------
def test_rater_link_sets_a_cookie_and_hides_the_token(app, alice):
    client = app.test_client()
    response = client.get(f"/rate?token={alice.token}")
    assert response.status_code == 303 and response.headers["Location"].endswith("/rate")
    cookie = response.headers["Set-Cookie"]
    assert f"{RATER_COOKIE}={alice.token}" in cookie
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    page = client.get("/rate")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert alice.token not in html
    for button in ('data-choice="A"', 'data-choice="B"', 'data-choice="cant_tell"'):
        assert button in html
    assert "fetch(" in html and "/api/next" in html
    # The inline script runs under the page's CSP nonce.
    policy = page.headers["Content-Security-Policy"]
    nonce = re.search(r"script-src 'nonce-([^']+)'", policy).group(1)
    assert f'<script nonce="{nonce}">' in html


def test_pages_refuse_wrong_tokens(app, alice, session):
    client = app.test_client()
    assert client.get("/rate").status_code == 303  # no cookie: to the sign-in page
    response = client.get("/rate?token=wrong")
    assert response.status_code == 403 and "matches nobody" in response.get_data(as_text=True)
    assert client.post("/login", data={"token": "wrong"}).status_code == 403
    assert client.post("/login", data={"token": alice.token}).status_code == 303
    assert client.get("/rate").status_code == 200
    assert client.post("/logout").status_code == 303
    assert client.get("/rate").status_code == 303
    # A rater token opens no admin page, an admin token no rater page.
    assert client.get(f"/admin?token={alice.token}").status_code == 403
    assert client.get(f"/rate?token={session.admin_token}").status_code == 403
    assert client.get("/admin").status_code == 401


def test_index_page(app):
    response = app.test_client().get("/")
    assert response.status_code == 200 and 'name="token"' in response.get_data(as_text=True)


# ----------------------------------------------------------------------
# Rater API
# ----------------------------------------------------------------------
def test_next_pair_shows_context_costs_and_differing_values(app, store, alice):
    data = client_of(app, alice.token).get("/api/next").get_json()
    assert data["done"] is False and data["progress"] == {"answered": 0, "open": 18}
    shown = data["query"]
    query = store.query(alice, shown["id"])
    assert shown["context"] == [{"name": "load", "value": float(query.context[0])}]
    assert shown["nominal_cost"] == {"A": query.first.nominal_cost, "B": query.second.nominal_cost}
    names = [row["name"] for row in shown["rows"]]
    assert "x[3]" not in names and len(names) == N_DECISIONS - 1 == shown["n_differ"]
    gaps = [abs(row["A"] - row["B"]) for row in shown["rows"]]
    assert gaps == sorted(gaps, reverse=True)
    for row in shown["rows"]:
        assert row["A"] == query.first.values[row["name"]]
        assert row["B"] == query.second.values[row["name"]]


def test_values_within_the_tolerance_of_zero_show_as_zero():
    names = ("x", "y", "z")
    a = Candidate(np.array([-1e-9, 2.0, 0.0]), np.array([0.5]), 1.0, names)
    b = Candidate(np.array([3.0, 2.0, -2e-9]), np.array([0.5]), 2.0, names)
    shown = describe_query(Query(7, 1, 0, 0, 1, a, b), ["load"])
    # y is equal, z differs by solver noise only; x's -1e-9 shows as 0.
    assert [(row["name"], row["A"], row["B"]) for row in shown["rows"]] == [("x", 0.0, 3.0)]


def test_long_tables_are_cut_to_max_rows(store, session, alice):
    app = create_app(store, max_rows=2)
    shown = client_of(app, alice.token).get("/api/next").get_json()["query"]
    assert len(shown["rows"]) == 2 and shown["hidden"] == N_DECISIONS - 1 - 2


def test_answers_by_json_and_by_form_then_done(app, store, alice, session):
    client = client_of(app, alice.token)
    first = client.get("/api/next").get_json()["query"]["id"]
    response = client.post("/api/answer", json={"query_id": first, "choice": "A"})
    assert response.status_code == 201 and response.get_json()["answer"]["choice"] == "A"
    second = client.get("/api/next").get_json()["query"]["id"]
    assert second != first
    response = client.post("/api/answer", data={"query_id": str(second), "choice": "cant_tell"})
    assert response.status_code == 201
    assert response.get_json()["progress"] == {"answered": 2, "open": 16}
    # Bearer header works without cookie.
    bearer_client = app.test_client()
    while (query := bearer_client.get("/api/next", headers=auth(alice.token)).json["query"]):
        bearer_client.post("/api/answer", json={"query_id": query["id"], "choice": "B"},
                               headers=auth(alice.token))
    done = client.get("/api/next").get_json()
    assert done["done"] is True and done["query"] is None
    assert store.count_answers(session=session) == session.n_queries


OWN, FOREIGN = "<own query id>", "<another session's query id>"  # filled in at run time
VALID = {"query_id": OWN, "choice": "A"}
INVALID = [
    # name, token, request, status, error code
    ("no token", None, {"json": VALID}, 401, "not_authenticated"),
    ("wrong token", "wrong", {"json": VALID}, 403, "invalid_token"),
    ("admin token", "admin", {"json": VALID}, 403, "invalid_token"),
    ("missing query id", "alice", {"json": {"choice": "A"}}, 400, "malformed"),
    ("missing choice", "alice", {"data": {"query_id": OWN}}, 400, "malformed"),
    ("query id not a number", "alice", {"data": {"query_id": "abc", "choice": "A"}}, 400, "malformed"),
    ("query id a float", "alice", {"json": {"query_id": 1.5, "choice": "A"}}, 400, "malformed"),
    ("query id a bool", "alice", {"json": {"query_id": True, "choice": "A"}}, 400, "malformed"),
    ("query id negative", "alice", {"json": {"query_id": -1, "choice": "A"}}, 400, "malformed"),
    ("unknown choice", "alice", {"json": {"query_id": OWN, "choice": "C"}}, 400, "malformed"),
    ("choice not a string", "alice", {"json": {"query_id": OWN, "choice": 0}}, 400, "malformed"),
    ("broken JSON", "alice", {"data": "{query_id: 1", "content_type": "application/json"},
     400, "malformed"),
    ("JSON not an object", "alice", {"json": [OWN, "A"]}, 400, "malformed"),
    ("empty body", "alice", {}, 400, "malformed"),
    ("body too large", "alice", {"data": {"query_id": "1" * 100_000, "choice": "A"}},
     413, "request_entity_too_large"),
    ("unknown query id", "alice", {"json": {"query_id": 999_999, "choice": "A"}}, 404, "unknown_query"),
    ("another session's query", "alice", {"json": {"query_id": FOREIGN, "choice": "A"}},
     404, "unknown_query"),
]


def _fill(value, ids):
    """Replace the OWN / FOREIGN stand-ins in a request description."""
    if isinstance(value, dict):
        return {key: _fill(item, ids) for key, item in value.items()}
    if isinstance(value, list):
        return [_fill(item, ids) for item in value]
    return ids.get(value, value) if isinstance(value, str) else value


@pytest.mark.parametrize("name, who, request_kwargs, status, code", INVALID,
                         ids=[case[0] for case in INVALID])
def test_invalid_answers_are_clear_4xx_json_and_store_nothing(
    app, store, session, candidates, alice, name, who, request_kwargs, status, code
):
    own = store.next_query(alice).id
    other = store.create_session(candidates, "other")
    foreign = store.next_query(store.add_rater(other, "carol")).id
    token = {"alice": alice.token, "admin": session.admin_token, "wrong": "wrong", None: None}[who]
    headers = auth(token) if token else {}
    kwargs = _fill(request_kwargs, {OWN: own, FOREIGN: foreign})
    if "data" in kwargs and isinstance(kwargs["data"], dict):  # form fields are strings
        kwargs["data"] = {key: str(item) for key, item in kwargs["data"].items()}
    response = app.test_client().post("/api/answer", headers=headers, **kwargs)
    assert response.status_code == status
    assert response.is_json
    error = response.get_json()
    assert error["error"] == code and error["message"]
    assert store.count_answers() == 0


def test_double_submit_is_409_and_stored_once(app, store, alice):
    client = client_of(app, alice.token)
    query_id = client.get("/api/next").get_json()["query"]["id"]
    assert client.post("/api/answer", json={"query_id": query_id, "choice": "A"}).status_code == 201
    again = client.post("/api/answer", json={"query_id": query_id, "choice": "B"})
    assert again.status_code == 409 and again.get_json()["error"] == "already_answered"
    assert [a.choice for a in store.answers(alice)] == ["A"]


def test_simultaneous_double_submit_stores_one_answer(app, store, alice):
    query_id = store.next_query(alice).id
    statuses, barrier = [], threading.Barrier(4)

    def submit():
        client = app.test_client()
        barrier.wait()
        response = client.post("/api/answer", json={"query_id": query_id, "choice": "A"},
                               headers=auth(alice.token))
        statuses.append(response.status_code)

    threads = [threading.Thread(target=submit) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [201, 409, 409, 409]
    assert store.count_answers() == 1


def test_other_http_errors_on_the_api_are_json(app, alice):
    client = client_of(app, alice.token)
    wrong_method = client.get("/api/answer")
    assert wrong_method.status_code == 405 and wrong_method.get_json()["error"] == "method_not_allowed"
    missing = client.get("/api/nothing")
    assert missing.status_code == 404 and missing.get_json()["error"] == "not_found"


def test_a_rater_reads_and_changes_only_their_own_answers(app, store, alice, bob):
    alice_client, bob_client = client_of(app, alice.token), client_of(app, bob.token)
    query_id = alice_client.get("/api/next").get_json()["query"]["id"]
    alice_client.post("/api/answer", json={"query_id": query_id, "choice": "A"})
    # bob's answer to the same pair is his own; alice's stays as it was.
    response = bob_client.post("/api/answer", json={"query_id": query_id, "choice": "B"})
    assert response.status_code == 201
    mine = bob_client.get("/api/answers?rater=alice").get_json()
    assert mine["rater"] == "bob" and [a["choice"] for a in mine["answers"]] == ["B"]
    assert [a.choice for a in store.answers(alice)] == ["A"]
    # No rater endpoint shows other raters' answers or counts.
    assert "alice" not in json.dumps(bob_client.get("/api/next").get_json())
    # A rater cookie is no admin credential.
    assert bob_client.get("/api/admin/progress").status_code == 401


# ----------------------------------------------------------------------
# Admin
# ----------------------------------------------------------------------
def answer_all(client, score=None):
    """Answer every open pair: the lower ``score(query_json, side)`` wins."""
    count = 0
    while (query := client.get("/api/next").get_json()["query"]) is not None:
        if score is None:
            choice = ("A", "B", "cant_tell")[count % 3]
        else:
            a, b = score(query, "A"), score(query, "B")
            choice = "cant_tell" if a == b else ("A" if a < b else "B")
        response = client.post("/api/answer", json={"query_id": query["id"], "choice": choice})
        assert response.status_code == 201
        count += 1
    return count


def test_admin_progress_export_and_new_raters(app, store, session, alice, bob):
    answer_all(client_of(app, alice.token))
    bob_client = client_of(app, bob.token)
    bob_query = bob_client.get("/api/next").get_json()["query"]
    bob_client.post("/api/answer", json={"query_id": bob_query["id"], "choice": "B"})
    admin = client_of(app, session.admin_token, admin=True)
    page = admin.get("/admin").get_data(as_text=True)
    assert "alice" in page and "bob" in page and "Answers per context" in page
    progress = admin.get("/api/admin/progress").get_json()
    assert progress["n_answers"] == session.n_queries + 1
    assert {r["name"]: r["answered"] for r in progress["raters"]} == {"alice": 18, "bob": 1}
    assert sum(c["answered"] for c in progress["contexts"]) == progress["n_answers"]
    response = admin.get("/admin/export.npz")
    assert response.status_code == 200
    assert "demo-pairs.npz" in response.headers["Content-Disposition"]
    exported = Pairs.load(io.BytesIO(response.data))
    expected = store.export_pairs(session)
    np.testing.assert_array_equal(exported.preferred, expected.preferred)
    np.testing.assert_array_equal(exported.other, expected.other)
    assert exported.rater.tolist() == expected.rater.tolist() and exported.names == session.names
    only_bob = Pairs.load(io.BytesIO(admin.get("/admin/export.npz?rater=bob").data))
    assert only_bob.rater.tolist() == ["bob"]
    everyone = Pairs.load(io.BytesIO(admin.get("/admin/export.npz?rater=").data))  # empty: all
    assert everyone.rater.tolist() == expected.rater.tolist()
    created = admin.post("/api/admin/raters", json={"name": "carol"})
    assert created.status_code == 201
    carol = created.get_json()
    assert carol["link"].endswith(f"/rate?token={carol['token']}")
    assert app.test_client().get("/api/next", headers=auth(carol["token"])).status_code == 200
    again = admin.post("/api/admin/raters", json={"name": "carol"})
    assert again.status_code == 409 and again.get_json()["error"] == "rater_exists"
    assert "a rater named 'carol' already" in again.get_json()["message"]
    assert "SessionInfo" not in again.get_json()["message"]
    assert admin.post("/api/admin/raters", json=["carol"]).status_code == 400
    nobody = admin.get("/admin/export.npz?rater=nobody")
    assert nobody.status_code == 404 and nobody.get_json()["error"] == "unknown_rater"
    assert "no rater named 'nobody'" in nobody.get_json()["message"]


def test_admin_endpoints_refuse_other_tokens(app, store, session, candidates, alice):
    other = store.create_session(candidates, "other")
    for token, status in ((None, 401), ("wrong", 403), (alice.token, 403)):
        headers = auth(token) if token else {}
        for path in ("/api/admin/progress", "/admin/export.npz"):
            response = app.test_client().get(path, headers=headers)
            assert response.status_code == status and response.is_json
    # An owner sees only the own session.
    progress = app.test_client().get("/api/admin/progress", headers=auth(other.admin_token)).json
    assert progress["session"]["name"] == "other"


def test_export_without_answers_is_409(app, session):
    response = app.test_client().get("/admin/export.npz", headers=auth(session.admin_token))
    assert response.status_code == 409 and response.get_json()["error"] == "nothing_to_export"


# ----------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------
def test_serve_help_documents_the_options(capsys):
    with pytest.raises(SystemExit) as exit_info:
        serve.main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for option in ("--db", "--candidates", "--host", "--port", "--rater", "127.0.0.1"):
        assert option in text


def test_serve_setup_creates_then_reopens_the_session(tmp_path, candidates, url):
    path = tmp_path / "cands.npz"
    candidates.save(path)
    out = io.StringIO()
    args = ["--db", url, "--candidates", str(path), "--rater", "alice", "--setup-only",
            "--port", "8123"]
    assert serve.main(args, out=out) == 0
    text = out.getvalue()
    assert "created session 'cands'" in text and "admin link" in text
    token = re.search(r"rater 'alice': http://127\.0\.0\.1:8123/rate\?token=(\S+)", text).group(1)
    again = io.StringIO()
    serve.main(args, out=again)
    assert "created" not in again.getvalue() and "exists already" in again.getvalue()
    with PreferenceStore(url) as store:
        assert [s.name for s in store.sessions()] == ["cands"]
        assert store.authenticate(token).name == "alice"
    make_candidates(seed=5).save(path)  # other content under the same name
    with pytest.raises(SystemExit, match="holds other candidates"):
        serve.main(args, out=io.StringIO())


def test_serve_says_in_one_line_that_the_port_is_taken(tmp_path, candidates, url):
    import socket

    path = tmp_path / "cands.npz"
    candidates.save(path)
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        out = io.StringIO()
        with pytest.raises(SystemExit, match=rf"error: cannot listen on 127.0.0.1:{port}: "
                                             "Address already in use"):
            serve.main(["--db", url, "--candidates", str(path), "--port", str(port)], out=out)
    assert "serving on" not in out.getvalue()


@pytest.mark.parametrize("port", ["0", "99999", "http"])
def test_serve_refuses_a_port_out_of_range(capsys, port):
    with pytest.raises(SystemExit) as exit_info:
        serve.main(["--port", port])
    assert exit_info.value.code == 2
    assert "--port" in capsys.readouterr().err


@pytest.mark.parametrize("bad", [["--pairs", "0"], ["--context-name", "a", "--context-name", "b"],
                                 ["--candidates-is-pairs"]])
def test_failed_serve_setup_leaves_no_new_database(tmp_path, candidates, toy_pairs, bad):
    db = tmp_path / "new.db"
    path = tmp_path / "cands.npz"
    if bad == ["--candidates-is-pairs"]:
        toy_pairs.save(path)  # a pairs file given as candidates
        bad = []
    else:
        candidates.save(path)
    with pytest.raises(SystemExit, match="error"):
        serve.main(["--db", f"sqlite:///{db}", "--candidates", str(path), "--setup-only", *bad],
                   out=io.StringIO())
    assert list(tmp_path.iterdir()) == [path]


def test_load_pairs_from_a_missing_sqlite_file_creates_none(tmp_path):
    with pytest.raises(StoreError, match="does not exist"):
        load_pairs(f"sqlite:///{tmp_path / 'nosuch.db'}", "cands")
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------
# Durability: kill -9 the real server, restart, count
# ----------------------------------------------------------------------
def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def http(method, url, token, body=None, timeout=10):
    request = urllib.request.Request(url, method=method, headers=auth(token))
    if body is not None:
        request.data = json.dumps(body).encode()
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


class Server:
    """``python -m pyomo_prefobj.serve`` in a subprocess."""

    def __init__(self, tmp_path, db_url, candidates_path):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = open(tmp_path / f"server-{self.port}.log", "w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "pyomo_prefobj.serve", "--db", db_url,
             "--candidates", str(candidates_path), "--port", str(self.port)],
            stdout=self.log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(self.base + "/healthz", timeout=1):
                    return
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    with open(self.log.name) as log:
                        raise RuntimeError(f"the server did not start: {log.read()}")
                time.sleep(0.1)

    def kill9(self):
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        self.log.close()

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


def answer_over_http(server, token):
    status, data = http("GET", server.base + "/api/next", token)
    assert status == 200
    query = data["query"]
    body = {"query_id": query["id"], "choice": "A"}
    status, _ = http("POST", server.base + "/api/answer", token, body)
    return status, query["id"]


def test_answers_survive_kill_9(tmp_path, candidates):
    db_url = f"sqlite:///{tmp_path / 'prefs.db'}"
    candidates_path = tmp_path / "cands.npz"
    candidates.save(candidates_path)
    with PreferenceStore(db_url) as store:
        store.create_session(candidates, "cands")
        token = store.add_rater("cands", "alice").token

    # 1. Acknowledged answers, then kill -9 with nothing in flight: exactly those are stored.
    server = Server(tmp_path, db_url, candidates_path)
    try:
        acknowledged = [answer_over_http(server, token) for _ in range(6)]
        assert all(status == 201 for status, _ in acknowledged)
    finally:
        server.kill9()
    with PreferenceStore(db_url) as store:
        stored = [a.query_id for a in store.answers(store.authenticate(token))]
    assert stored == [query_id for _, query_id in acknowledged]

    # 2. Restart; kill -9 while answers are in flight: every acknowledged
    # answer is stored, and at most the one in flight besides.
    server = Server(tmp_path, db_url, candidates_path)
    status, data = http("GET", server.base + "/api/next", token)
    assert data["progress"]["answered"] == len(acknowledged)  # the restarted server sees them
    acked, stop = [], threading.Event()

    def keep_answering():
        while not stop.is_set():
            try:
                status, query_id = answer_over_http(server, token)
            except (OSError, ValueError, AssertionError):
                return  # the server is gone
            if status == 201:
                acked.append(query_id)

    worker = threading.Thread(target=keep_answering)
    worker.start()
    try:
        deadline = time.monotonic() + 30
        while len(acked) < 4 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        server.kill9()
        stop.set()
        worker.join(timeout=30)
    assert len(acked) >= 4
    server = Server(tmp_path, db_url, candidates_path)
    try:
        status, data = http("GET", server.base + "/api/next", token)
        with PreferenceStore(db_url) as store:
            stored = [a.query_id for a in store.answers(store.authenticate(token))]
    finally:
        server.stop()
    expected = [query_id for _, query_id in acknowledged] + acked
    assert stored[: len(expected)] == expected
    assert len(expected) <= len(stored) <= len(expected) + 1
    assert data["progress"]["answered"] == len(stored)


# ----------------------------------------------------------------------
# A model fits from answers given through the app
# ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def toy():
    """A tiny MILP with a PreferenceObjective and its sampled candidates."""
    pyo = pytest.importorskip("pyomo.environ")
    from pyomo_prefobj import PreferenceObjective

    m = pyo.ConcreteModel()
    m.x = pyo.Var(range(3), bounds=(0, 10))
    m.y = pyo.Var(within=pyo.Binary)
    m.x0 = pyo.Param(mutable=True, initialize=0.0)
    m.demand = pyo.Constraint(expr=sum(m.x[i] for i in range(3)) >= 4 + 2 * m.x0)
    m.link = pyo.Constraint(expr=m.x[2] <= 10 * m.y)
    m.cost = pyo.Objective(expr=m.x[0] + 2 * m.x[1] + 1.5 * m.x[2] + m.y)
    m.pref = PreferenceObjective(decisions=[m.x, m.y], context=[m.x0])
    contexts = [[0.0], [0.5], [1.0]]
    candidates = m.pref.sample(contexts, per_context=8, seed=0, bias_weight=50, progress=False)
    return m, candidates


def planner_score(query, side):
    """A planner who dislikes loading x[0]: cost + 2 x[0], from what the page shows."""
    x0 = sum(row[side] for row in query["rows"] if row["name"] == "x[0]")
    return query["nominal_cost"][side] + 2.0 * x0


def test_model_fits_from_answers_given_through_the_app(toy, tmp_path):
    m, candidates = toy
    db_url = f"sqlite:///{tmp_path / 'prefs.db'}"
    with PreferenceStore(db_url) as store:
        session = store.create_session(candidates, "toy", context_names=m.pref.context_names)
        planner = store.add_rater(session, "planner")
        app = create_app(store)
        answered = answer_all(client_of(app, planner.token), planner_score)
        assert answered == session.n_queries
        response = client_of(app, session.admin_token, admin=True).get("/admin/export.npz")
        pairs = Pairs.load(io.BytesIO(response.data))
    assert set(pairs.rater) == {"planner"} and len(pairs) >= answered - 3
    np.testing.assert_array_equal(load_pairs(db_url, "toy").preferred, pairs.preferred)
    report = m.pref.fit(pairs, max_epochs=20, progress=False)
    assert report.n_train + report.n_validation == len(pairs)
    assert m.pref.is_fitted
    assert np.isfinite(m.pref.cost([0.5]).value(candidates.u[0]))


# ----------------------------------------------------------------------
# A real browser
# ----------------------------------------------------------------------
@pytest.mark.skipif(
    CHROMIUM is None,
    reason="no chromium: the browser test needs Debian's chromium and chromium-driver "
           "(apt-get install -y chromium chromium-driver) and selenium (pip install selenium)",
)
def test_rater_answers_in_headless_chromium(toy, tmp_path):
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support.ui import WebDriverWait
    except ImportError:
        pytest.fail("chromium is installed but selenium is not: pip install selenium")
    if not os.path.exists(CHROMEDRIVER):
        pytest.fail("chromium is installed but chromedriver is not: apt-get install -y chromium-driver")
    from werkzeug.serving import make_server

    m, candidates = toy
    db_url = f"sqlite:///{tmp_path / 'prefs.db'}"
    store = PreferenceStore(db_url)
    session = store.create_session(candidates, "toy", context_names=m.pref.context_names)
    planner = store.add_rater(session, "planner")
    server = make_server("127.0.0.1", 0, create_app(store), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_port}"

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'chromium'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    n_answers = 10
    try:
        wait = WebDriverWait(driver, 20, poll_frequency=0.05)
        driver.get(f"{base}/rate?token={planner.token}")
        assert driver.current_url == f"{base}/rate"  # the token left the address bar

        def shown_query_id(_driver=None):
            return driver.find_element(By.ID, "pair").get_attribute("data-query-id")

        wait.until(shown_query_id)
        driver.execute_script("window.sameDocument = true;")  # gone if the page reloads
        for step in range(n_answers):
            query_id = int(shown_query_id())
            query = store.query(planner, query_id)
            names = [cell.text for cell in driver.find_elements(
                By.CSS_SELECTOR, "#decision-table tbody tr td:first-child")]
            differing = [n for n, a, b in zip(query.first.names, query.first.u, query.second.u)
                         if abs(a - b) > 1e-6]
            assert sorted(names) == sorted(differing)
            assert driver.find_element(By.ID, "cost-a").text
            assert driver.find_element(By.ID, "cost-b").text
            shown = {"nominal_cost": {"A": query.first.nominal_cost, "B": query.second.nominal_cost},
                     "rows": [{"name": n, "A": query.first.values[n], "B": query.second.values[n]}
                              for n in names]}
            if step == 3:
                driver.find_element(By.TAG_NAME, "body").send_keys("c")  # keyboard: can't tell
            else:
                better = "A" if planner_score(shown, "A") <= planner_score(shown, "B") else "B"
                driver.find_element(By.ID, f"choose-{better.lower()}").click()
            wait.until(lambda d: shown_query_id() not in ("", str(query_id))
                       or d.find_element(By.ID, "done").is_displayed())
            assert driver.execute_script("return window.sameDocument === true;")
        progress = driver.find_element(By.ID, "progress").text
        assert f"Answered {n_answers}" in progress
    finally:
        driver.quit()
        server.shutdown()
        thread.join(timeout=10)
    answers = store.answers(planner)
    assert len(answers) == n_answers and [a.choice for a in answers].count("cant_tell") == 1
    store.close()
    pairs = load_pairs(db_url, session.id)
    assert len(pairs) == n_answers - 1
    report = m.pref.fit(pairs, max_epochs=20, progress=False)
    assert report.n_train + report.n_validation == n_answers - 1
