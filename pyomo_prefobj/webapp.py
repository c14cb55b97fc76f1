"""The preference web app: raters answer pairwise queries in a browser.

``create_app(store)`` returns a Flask application on a
:class:`~pyomo_prefobj.store.PreferenceStore` (or a database URL). Serve it
with ``python -m pyomo_prefobj.serve`` (see :mod:`pyomo_prefobj.serve`) or
any WSGI server, e.g. ``waitress-serve --call`` or
``gunicorn 'pyomo_prefobj.webapp:create_app("postgresql+psycopg://...")'``.

Pages (HTML):

* ``GET /``: sign in with a rater token.
* ``GET /rate?token=T``: remembers the rater token in a cookie and opens the
  rating page; the page loads each pair with ``fetch`` (no page reload).
* ``GET /admin?token=T``: the session owner's progress view, answers per
  rater and per context, export links, new raters.

JSON API (rater token from the cookie or ``Authorization: Bearer T``):

* ``GET /api/next``: the next pair for this rater (``query: null`` when done).
* ``POST /api/answer``: ``query_id`` and ``choice`` (``A``, ``B`` or
  ``cant_tell``), as JSON or form fields.
* ``GET /api/answers``: this rater's own answers (never anyone else's).
* ``GET /api/admin/progress``, ``GET /api/admin/agreement``,
  ``POST /api/admin/raters`` (``name``), ``GET /admin/export.npz[?rater=NAME]``
  (an empty NAME: every rater): admin token from the admin cookie or
  ``Authorization: Bearer T``.

A selector with a ``notify(answer, rater=...)`` method (such as
:class:`~pyomo_prefobj.active.ActiveSelector`) is told of every stored
answer right after it is committed; it must return quickly (the active
selector starts its refits in a background thread), and an exception it
raises is logged, never shown to the rater. An exception raised while a
selector chooses is logged too, and that rater gets the open query with the
fewest answers instead.

Every error of the API is JSON ``{"error": code, "message": text}`` with a
4xx status: 400 malformed input, 401 no token, 403 wrong token, 404 unknown
query, 409 answered already (nothing is stored twice), 413 body too large.
"""

import io
import logging
import secrets

import numpy as np
from flask import Flask, g, jsonify, redirect, render_template, request, send_file, url_for
from werkzeug.exceptions import HTTPException

from .errors import PairsError
from .store import (
    SELECTORS,
    AuthenticationError,
    DuplicateAnswerError,
    DuplicateRaterError,
    InvalidAnswerError,
    PreferenceStore,
    StoreError,
    UnknownQueryError,
    UnknownRaterError,
    UnknownSessionError,
    fewest_answers,
)

logger = logging.getLogger(__name__)

RATER_COOKIE = "prefobj_rater"
ADMIN_COOKIE = "prefobj_admin"
MAX_BODY_BYTES = 64 * 1024

_STATUS = (
    (AuthenticationError, 403, "invalid_token"),
    (UnknownQueryError, 404, "unknown_query"),
    (UnknownSessionError, 404, "unknown_session"),
    (DuplicateAnswerError, 409, "already_answered"),
    (DuplicateRaterError, 409, "rater_exists"),
    (UnknownRaterError, 404, "unknown_rater"),
    (InvalidAnswerError, 400, "malformed"),
    (PairsError, 409, "nothing_to_export"),
    (StoreError, 400, "bad_request"),
)


class _ApiError(Exception):
    def __init__(self, status, code, message):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def describe_query(query, context_names, max_rows=40, tolerance=1e-6):
    """The JSON a rater's page shows for one query.

    Args:
        query: a :class:`~pyomo_prefobj.store.Query`.
        context_names: names of the context values.
        max_rows: most differing decisions listed (largest differences first).
        tolerance: values closer than this count as equal, and values
            closer than this to 0 are shown as 0.

    Returns:
        dict: ``id``, ``context`` (name/value rows), ``nominal_cost`` of A and
        B, ``rows`` (name, A, B of the decisions that differ), ``n_differ``,
        ``hidden`` (differing decisions not listed) and ``n_decisions``.
    """
    a, b = query.first, query.second

    def shown(value):  # a solver's -1e-9 is a 0 to a planner
        return 0.0 if abs(value) <= tolerance else float(value)

    difference = np.abs(a.u - b.u)
    differ = np.flatnonzero(difference > tolerance)
    order = differ[np.argsort(-difference[differ], kind="stable")][:max_rows]
    return {
        "id": query.id,
        "context": [
            {"name": name, "value": float(value)}
            for name, value in zip(context_names, a.context.tolist())
        ],
        "nominal_cost": {"A": a.nominal_cost, "B": b.nominal_cost},
        "rows": [
            {"name": a.names[i], "A": shown(a.u[i]), "B": shown(b.u[i])} for i in order
        ],
        "n_differ": int(len(differ)),
        "hidden": int(len(differ) - len(order)),
        "n_decisions": int(len(a.u)),
    }


FLIP_THRESHOLD = 0.3  # a learned flip rate above this flags a rater
MIN_AGREEMENT = 0.6  # without flip rates: agreement below this flags a rater ...
MIN_COMPARED = 10  # ... once this many of their answers could be compared


def fitted_flip_rates(selector, session=None):
    """Per-rater flip rates of the selector's last fit, or ``{}``.

    An :class:`~pyomo_prefobj.active.ActiveSelector` whose members use the
    ``"flip"`` loss learns a flip rate per rater at every refit; this
    averages them over the ensemble members. Any other selector gives ``{}``,
    and so does one fitted to another session than ``session`` (a
    :class:`~pyomo_prefobj.store.SessionInfo`; rater names are only unique
    within a session).
    """
    if session is not None and getattr(selector, "session", None) not in (session.id, session.name):
        return {}
    ensemble = getattr(selector, "ensemble", None)
    members = getattr(ensemble, "members_", None) or ()
    rates = [dict(getattr(member, "flip_rates_", None) or {}) for member in members]
    rates = [r for r in rates if r]
    names = sorted(set().union(*rates)) if rates else []
    return {name: float(np.mean([r[name] for r in rates if name in r])) for name in names}


def rater_agreement(store, session, selector=None, flip_threshold=FLIP_THRESHOLD,
                    min_agreement=MIN_AGREEMENT, min_compared=MIN_COMPARED):
    """Each rater's agreement with the consensus, as JSON-ready dicts.

    Keys: ``name``, ``answered`` (A/B answers), ``compared``, ``agreed``,
    ``agreement`` (see :meth:`PreferenceStore.agreement`), ``flip_rate``
    (from the selector's last ``"flip"`` fit, else ``None``) and
    ``disagrees``: the flip rate exceeds ``flip_threshold`` (as
    ``PreferenceLearner.disagreeing_raters`` says), or, without a flip rate,
    the agreement is below ``min_agreement`` on at least ``min_compared``
    compared answers. (Agreement is noisier: with three reliable raters,
    two answering at random and one against, a reliable rater agrees with
    the others' majority about 75% of the time, a random one 50%.)
    """
    flips = fitted_flip_rates(selector, store.session(session))
    rows = []
    for row in store.agreement(session):
        flip = flips.get(row.name)
        if flip is not None:
            disagrees = flip > flip_threshold
        else:
            disagrees = (row.compared >= min_compared and row.agreement is not None
                         and row.agreement < min_agreement)
        rows.append({"name": row.name, "answered": row.answered, "compared": row.compared,
                     "agreed": row.agreed, "agreement": row.agreement,
                     "flip_rate": flip, "disagrees": bool(disagrees)})
    return rows


def create_app(store, selector=None, max_rows=40, tolerance=1e-6, secure_cookies=False):
    """Build the Flask app on ``store``.

    Args:
        store: a :class:`~pyomo_prefobj.store.PreferenceStore`, or an
            SQLAlchemy URL to open one.
        selector: chooses each rater's next query,
            ``selector(pool) -> index or None`` (see
            :mod:`pyomo_prefobj.store`), or the name of a built-in one
            (``"in_order"``, default, or ``"fewest_answers"``). If it has a
            ``notify`` method, ``selector.notify(answer, rater=rater)`` is called after
            each stored answer (an
            :class:`~pyomo_prefobj.active.ActiveSelector` refits then).
        max_rows: most differing decision values shown per pair.
        tolerance: decision values closer than this count as equal.
        secure_cookies: mark cookies ``Secure`` (serve over HTTPS then).

    Returns:
        flask.Flask: the app; ``app.extensions["pyomo_prefobj"]`` holds the
        store and settings.
    """
    if isinstance(store, str):
        store = PreferenceStore(store)
    if not isinstance(store, PreferenceStore):
        raise StoreError(f"create_app needs a PreferenceStore or a database URL; got {store!r}")
    if selector is None or isinstance(selector, str):
        name = selector or "in_order"
        if name not in SELECTORS:
            raise StoreError(f"unknown selector {name!r}; built-in ones: {sorted(SELECTORS)}")
        selector = SELECTORS[name]
    if not callable(selector):
        raise StoreError(f"the selector must be callable; got {selector!r}")

    def choose(pool):
        # A failing selector (e.g. a model that does not fit this session)
        # must not cost the rater the page: log it and spread the raters.
        current = app.extensions["pyomo_prefobj"]["selector"]
        try:
            return current(pool)
        except Exception:
            logger.exception("selector %r failed; using fewest_answers instead", current)
            return fewest_answers(pool)

    def notify(answer, rater):
        current = app.extensions["pyomo_prefobj"]["selector"]
        hook = getattr(current, "notify", None)
        if not callable(hook):
            return
        try:
            hook(answer, rater=rater)
        except Exception:
            logger.exception("selector %r: notify failed (the answer is stored)", current)

    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.extensions["pyomo_prefobj"] = {
        "store": store, "selector": selector, "max_rows": int(max_rows),
        "tolerance": float(tolerance),
    }

    def set_cookie(response, name, token):
        response.set_cookie(
            name, token, httponly=True, samesite="Lax", secure=secure_cookies, path="/",
            max_age=180 * 24 * 3600,
        )
        return response

    def bearer():
        header = request.headers.get("Authorization", "")
        if header.lower().startswith("bearer "):
            return header[7:].strip()
        return None

    def token(cookie, who, link):
        found = bearer() or request.cookies.get(cookie)
        if not found:
            raise _ApiError(401, "not_authenticated",
                            f"no {who} token: open {link}, or send "
                            "'Authorization: Bearer <token>'")
        return found

    def current_rater():
        return store.authenticate(token(RATER_COOKIE, "rater", "the link you were given"))

    def current_admin():
        return store.authenticate_admin(token(ADMIN_COOKIE, "admin", "the owner's admin link"))

    def wants_json():
        return request.path.startswith("/api/") or request.path.endswith(".npz")

    def error_response(status, code, message):
        if wants_json():
            response = jsonify(error=code, message=message)
            response.status_code = status
            return response
        return render_template("error.html", status=status, message=message), status

    @app.before_request
    def _nonce():
        g.nonce = secrets.token_urlsafe(16)

    @app.after_request
    def _headers(response):
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["Cache-Control"] = "no-store"
        nonce = getattr(g, "nonce", "")
        response.headers["Content-Security-Policy"] = (
            f"default-src 'self'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; "
            "img-src 'self' data:; object-src 'none'; base-uri 'none'; "
            "form-action 'self'; frame-ancestors 'none'"
        )
        return response

    @app.errorhandler(_ApiError)
    def _api_error(exc):
        return error_response(exc.status, exc.code, exc.message)

    @app.errorhandler(StoreError)
    @app.errorhandler(PairsError)
    def _store_error(exc):
        for kind, status, code in _STATUS:
            if isinstance(exc, kind):
                return error_response(status, code, str(exc))
        return error_response(400, "bad_request", str(exc))

    @app.errorhandler(HTTPException)
    def _http_error(exc):
        code = (exc.name or "error").lower().replace(" ", "_")
        return error_response(exc.code or 400, code, exc.description or exc.name)

    # ------------------------------------------------------------------
    # Rater pages
    # ------------------------------------------------------------------
    @app.get("/")
    def index():
        return render_template("index.html", message=None)

    @app.post("/login")
    def login():
        token = request.form.get("token", "").strip()
        try:
            store.authenticate(token)
        except AuthenticationError as exc:
            return render_template("index.html", message=str(exc)), 403
        return set_cookie(redirect(url_for("rate"), code=303), RATER_COOKIE, token)

    @app.post("/logout")
    def logout():
        response = redirect(url_for("index"), code=303)
        response.delete_cookie(RATER_COOKIE, path="/")
        return response

    @app.get("/rate")
    def rate():
        token = request.args.get("token")
        if token is not None:
            # Keep the token out of the address bar and history: cookie, then redirect.
            store.authenticate(token.strip())
            return set_cookie(redirect(url_for("rate"), code=303), RATER_COOKIE, token.strip())
        token = request.cookies.get(RATER_COOKIE)
        if not token:
            return redirect(url_for("index"), code=303)
        rater = store.authenticate(token)
        session = store.session(rater.session_id)
        return render_template("rate.html", rater=rater, session=session)

    # ------------------------------------------------------------------
    # Rater API
    # ------------------------------------------------------------------
    def status_of(rater):
        return {"answered": store.count_answers(rater=rater),
                "open": len(store.query_pool(rater))}

    @app.get("/api/next")
    def api_next():
        rater = current_rater()
        state = app.extensions["pyomo_prefobj"]
        query = store.next_query(rater, choose)
        session = store.session(rater.session_id)
        described = None if query is None else describe_query(
            query, session.context_names, state["max_rows"], state["tolerance"]
        )
        return jsonify(query=described, done=query is None, progress=status_of(rater),
                       rater=rater.name)

    @app.post("/api/answer")
    def api_answer():
        rater = current_rater()
        if request.is_json:
            data = request.get_json(silent=True)
            if not isinstance(data, dict):
                raise _ApiError(400, "malformed", "the body must be a JSON object "
                                "{\"query_id\": ..., \"choice\": \"A\" | \"B\" | \"cant_tell\"}")
        else:
            data = request.form
        missing = [key for key in ("query_id", "choice") if key not in data]
        if missing:
            raise _ApiError(400, "malformed", f"missing field(s) {missing}: send query_id "
                            "and choice (A, B or cant_tell)")
        answer = store.record_answer(rater, data["query_id"], data["choice"])
        notify(answer, rater)  # committed already; a failing hook is only logged
        return jsonify(
            ok=True,
            answer={"id": answer.id, "query_id": answer.query_id, "choice": answer.choice,
                    "answered_at": answer.answered_at.isoformat() + "Z"},
            progress=status_of(rater),
        ), 201

    @app.get("/api/answers")
    def api_answers():
        rater = current_rater()
        return jsonify(rater=rater.name, answers=[
            {"id": a.id, "query_id": a.query_id, "choice": a.choice,
             "answered_at": a.answered_at.isoformat() + "Z"}
            for a in store.answers(rater)
        ])

    # ------------------------------------------------------------------
    # Admin
    # ------------------------------------------------------------------
    @app.get("/admin")
    def admin():
        token = request.args.get("token")
        if token is not None:
            store.authenticate_admin(token.strip())
            return set_cookie(redirect(url_for("admin"), code=303), ADMIN_COOKIE, token.strip())
        token = request.cookies.get(ADMIN_COOKIE)
        if not token:
            raise _ApiError(401, "not_authenticated", "open the admin link the owner was given")
        session = store.authenticate_admin(token)
        progress = store.progress(session)
        agreement = rater_agreement(store, session, app.extensions["pyomo_prefobj"]["selector"])
        return render_template("admin.html", progress=progress, session=progress.session,
                               agreement=agreement, flip_threshold=FLIP_THRESHOLD,
                               min_agreement=MIN_AGREEMENT, min_compared=MIN_COMPARED)

    @app.get("/api/admin/progress")
    def api_progress():
        session = current_admin()
        progress = store.progress(session)
        return jsonify(
            session={"id": session.id, "name": session.name,
                     "n_candidates": session.n_candidates, "n_contexts": session.n_contexts,
                     "n_queries": session.n_queries},
            n_answers=progress.n_answers,
            n_cant_tell=progress.n_cant_tell,
            n_queries_answered=progress.n_queries_answered,
            raters=[{"name": r.name, "answered": r.answered, "A": r.chose_a, "B": r.chose_b,
                     "cant_tell": r.cant_tell,
                     "last_answer_at": None if r.last_answer_at is None
                     else r.last_answer_at.isoformat() + "Z"}
                    for r in progress.raters],
            contexts=[{"group": c.group, "context": list(c.context),
                       "n_candidates": c.n_candidates, "n_queries": c.n_queries,
                       "answered": c.answered, "cant_tell": c.cant_tell}
                      for c in progress.contexts],
        )

    @app.get("/api/admin/agreement")
    def api_agreement():
        session = current_admin()
        return jsonify(
            flip_threshold=FLIP_THRESHOLD, min_agreement=MIN_AGREEMENT, min_compared=MIN_COMPARED,
            raters=rater_agreement(store, session, app.extensions["pyomo_prefobj"]["selector"]),
        )

    @app.post("/api/admin/raters")
    def api_add_rater():
        session = current_admin()
        data = request.get_json(silent=True) if request.is_json else request.form
        if data is None or not hasattr(data, "get"):
            raise _ApiError(400, "malformed", "send the rater's name as JSON {\"name\": ...}")
        name = data.get("name")
        if not isinstance(name, str):
            raise _ApiError(400, "malformed", "send the rater's name (a string) in field 'name'")
        rater = store.add_rater(session, name)
        link = url_for("rate", token=rater.token, _external=True)
        return jsonify(name=rater.name, token=rater.token, link=link), 201

    @app.get("/admin/export.npz")
    def export():
        session = current_admin()
        rater = request.args.get("rater") or None  # ?rater= (empty): every rater
        pairs = store.export_pairs(session, raters=rater)
        buffer = io.BytesIO()
        pairs.save(buffer)
        buffer.seek(0)
        suffix = f"-{rater}" if rater else ""
        filename = "".join(ch if ch.isalnum() or ch in "-_." else "_"
                           for ch in f"{session.name}{suffix}-pairs.npz")
        return send_file(buffer, mimetype="application/octet-stream", as_attachment=True,
                         download_name=filename)

    @app.get("/healthz")
    def healthz():
        return jsonify(ok=True)

    return app
