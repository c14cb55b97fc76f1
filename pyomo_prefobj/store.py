"""A durable store of people's answers: sessions, candidates, raters, queries.

A *session* holds one :class:`~pyomo_prefobj.candidates.Candidates` set (the
decisions, their contexts and nominal costs) and a plan of *queries*: pairs
``(A, B)`` of candidates of the same context, in the order shown. *Raters*
(each with a secret token) answer queries with ``"A"``, ``"B"`` or
``"cant_tell"``; every answer is stored with the rater and a UTC timestamp,
and a rater answers a query at most once (a unique constraint, not just a
check in Python). :meth:`PreferenceStore.export_pairs` (or
:func:`load_pairs`) turns the answers into the :class:`~pyomo_prefobj.pairs.Pairs`
that :meth:`PreferenceObjective.fit` takes::

    store = PreferenceStore("sqlite:///prefs.db")
    session = store.create_session(candidates, name="covid")
    alice = store.add_rater(session, "alice")      # alice.token: give it to her
    ...                                            # answers arrive (web app)
    pairs = load_pairs("sqlite:///prefs.db", "covid")
    m.pref.fit(pairs)

Storage is SQLAlchemy 2.x: SQLite by default, in WAL mode with
``synchronous=FULL`` so an acknowledged answer survives a killed server (and
a power cut); any SQLAlchemy URL (``postgresql+psycopg://...``) works for a
team server. Tables: ``sessions``, ``candidates`` (context and decision values
as JSON lists, nominal cost), ``raters`` (name and the SHA-256 of the token:
the token itself is only shown once, at creation), ``queries`` and
``answers`` (rater, query, choice, timestamp; unique per rater and query).

Which open query a rater sees next is chosen by a *selector*, a callable
``selector(pool) -> int or None`` given a :class:`QueryPool` (the rater's
open queries as arrays) and returning an index into it; :func:`in_order`
(the default) and :func:`fewest_answers` are provided. Informative
(active) selection plugs in here, and :meth:`PreferenceStore.add_queries`
lets it extend the plan with pairs of its own choosing.
:meth:`PreferenceStore.agreement` reports how often each rater agrees with
the other raters' majority on shared queries.
"""

import dataclasses
import hashlib
import logging
import os
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timezone

import numpy as np
from sqlalchemy import (
    JSON,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Integer,
    String,
    UniqueConstraint,
    case,
    create_engine,
    event,
    func,
    select,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DatabaseError, IntegrityError, NoSuchModuleError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker
from sqlalchemy.pool import StaticPool

from .candidates import Candidates
from .errors import FileFormatError, PairsError, PreferenceObjectiveError
from .oracles import draw_pairs
from .pairs import Pairs

logger = logging.getLogger(__name__)

STORE_FORMAT = "pyomo_prefobj.store"
STORE_VERSION = 1
CHOICES = ("A", "B", "cant_tell")
MAX_NAME_LENGTH = 200
_MAX_TOKEN_LENGTH = 200


# ----------------------------------------------------------------------
# Errors
# ----------------------------------------------------------------------
class StoreError(PreferenceObjectiveError, ValueError):
    """The preference store cannot do what was asked (bad input or state)."""


class UnknownSessionError(StoreError, LookupError):
    """No session of that id or name."""


class AuthenticationError(StoreError, PermissionError):
    """A rater or admin token is missing or matches nobody."""


class UnknownQueryError(StoreError, LookupError):
    """No query of that id in the rater's session."""


class InvalidAnswerError(StoreError):
    """An answer is malformed (query id not an integer, unknown choice)."""


class DuplicateAnswerError(StoreError):
    """The rater has already answered this query; answers are final."""


class DuplicateRaterError(StoreError):
    """The session has a rater of that name already."""


class UnknownRaterError(StoreError, LookupError):
    """The session has no rater of that name."""


# ----------------------------------------------------------------------
# Tables
# ----------------------------------------------------------------------
def _utcnow():
    """Naive UTC time: stored the same way by every database."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


class _Base(DeclarativeBase):
    pass


class _MetaRecord(_Base):
    __tablename__ = "store_meta"
    key: Mapped[str] = mapped_column(String(50), primary_key=True)
    value: Mapped[str] = mapped_column(String(200))


class _SessionRecord(_Base):
    __tablename__ = "sessions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(MAX_NAME_LENGTH), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=_utcnow)
    admin_token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    names: Mapped[list] = mapped_column(JSON)
    context_names: Mapped[list] = mapped_column(JSON)
    n_candidates: Mapped[int] = mapped_column(Integer)


class _CandidateRecord(_Base):
    __tablename__ = "candidates"
    session_id: Mapped[int] = mapped_column(ForeignKey("sessions.id"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    context_group: Mapped[int] = mapped_column(Integer)
    context: Mapped[list] = mapped_column(JSON)
    u: Mapped[list] = mapped_column(JSON)
    nominal_cost: Mapped[float] = mapped_column(Float)


class _RaterRecord(_Base):
    __tablename__ = "raters"
    __table_args__ = (UniqueConstraint("session_id", "name"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("sessions.id"), index=True)
    name: Mapped[str] = mapped_column(String(MAX_NAME_LENGTH))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=_utcnow)


class _QueryRecord(_Base):
    __tablename__ = "queries"
    __table_args__ = (
        UniqueConstraint("session_id", "position"),
        CheckConstraint("candidate_a <> candidate_b", name="two_distinct_candidates"),
        ForeignKeyConstraint(
            ["session_id", "candidate_a"], ["candidates.session_id", "candidates.position"]
        ),
        ForeignKeyConstraint(
            ["session_id", "candidate_b"], ["candidates.session_id", "candidates.position"]
        ),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("sessions.id"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    candidate_a: Mapped[int] = mapped_column(Integer)
    candidate_b: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=_utcnow)


class _AnswerRecord(_Base):
    __tablename__ = "answers"
    __table_args__ = (
        UniqueConstraint("query_id", "rater_id", name="one_answer_per_rater_and_query"),
        CheckConstraint("choice IN ('A', 'B', 'cant_tell')", name="known_choice"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    query_id: Mapped[int] = mapped_column(ForeignKey("queries.id"), index=True)
    rater_id: Mapped[int] = mapped_column(ForeignKey("raters.id"), index=True)
    choice: Mapped[str] = mapped_column(String(10))
    answered_at: Mapped[datetime] = mapped_column(DateTime, default=_utcnow)


# ----------------------------------------------------------------------
# What the store hands out
# ----------------------------------------------------------------------
@dataclass(frozen=True)
class SessionInfo:
    """A stored session.

    Attributes:
        id, name: how to refer to it.
        n_candidates, n_contexts, n_queries: its size.
        names: decision names, length ``d``.
        context_names: context names, length ``k``.
        created_at: naive UTC time.
        admin_token: the owner's secret; only set by
            :meth:`PreferenceStore.create_session` and
            :meth:`PreferenceStore.new_admin_token` (the store keeps a hash).
    """

    id: int
    name: str
    n_candidates: int
    n_contexts: int
    n_queries: int
    names: tuple
    context_names: tuple
    created_at: datetime
    admin_token: str = field(default=None, repr=False)


@dataclass(frozen=True)
class Rater:
    """A person who answers the queries of one session.

    ``token`` is only set when the rater is created (or gets a new token);
    the store keeps its SHA-256 hash.
    """

    id: int
    session_id: int
    name: str
    token: str = field(default=None, repr=False)


@dataclass(frozen=True)
class Query:
    """One question: which of two candidates of the same context is better?

    Attributes:
        id: query id (what an answer refers to).
        position: place in the session's plan.
        first_index, second_index: candidate indices of A and B.
        first, second: the candidates shown as A and B.
    """

    id: int
    session_id: int
    position: int
    first_index: int
    second_index: int
    first: object
    second: object

    @property
    def context(self):
        """np.ndarray: the context both candidates share, shape ``(k,)``."""
        return self.first.context


@dataclass(frozen=True)
class Answer:
    """One stored answer (``choice`` is ``"A"``, ``"B"`` or ``"cant_tell"``)."""

    id: int
    query_id: int
    rater: str
    choice: str
    answered_at: datetime


@dataclass(frozen=True)
class QueryPool:
    """The queries a rater has not answered yet, what a selector chooses from.

    All arrays have shape ``(m,)`` and are sorted by ``position``.

    Attributes:
        rater: who is asking.
        candidates: the session's candidate set.
        query_id: query ids.
        position: places in the session's plan.
        first, second: candidate indices shown as A and B.
        n_answers: answers each query already has, from all raters.
    """

    rater: Rater
    candidates: Candidates
    query_id: np.ndarray
    position: np.ndarray
    first: np.ndarray
    second: np.ndarray
    n_answers: np.ndarray

    def __len__(self):
        return len(self.query_id)


@dataclass(frozen=True)
class RaterProgress:
    """Answers of one rater: total and per choice; ``last_answer_at`` in UTC."""

    name: str
    answered: int
    chose_a: int
    chose_b: int
    cant_tell: int
    last_answer_at: datetime = None


@dataclass(frozen=True)
class ContextProgress:
    """Answers at one context (``group`` as in :class:`Candidates`)."""

    group: int
    context: tuple
    n_candidates: int
    n_queries: int
    answered: int
    cant_tell: int


@dataclass(frozen=True)
class RaterAgreement:
    """How often one rater agrees with the others (see :meth:`PreferenceStore.agreement`).

    Attributes:
        name: the rater.
        answered: the rater's A/B answers.
        compared: those on a query where the *other* raters' A/B answers
            have a strict majority (the consensus).
        agreed: those among ``compared`` that match the consensus.
        agreement: ``agreed / compared``, or ``None`` when nothing could be
            compared yet.
    """

    name: str
    answered: int
    compared: int
    agreed: int
    agreement: float = None


@dataclass(frozen=True)
class SessionProgress:
    """How far the answering of one session has got."""

    session: SessionInfo
    n_answers: int
    n_cant_tell: int
    n_queries_answered: int
    raters: tuple
    contexts: tuple


# ----------------------------------------------------------------------
# Selectors
# ----------------------------------------------------------------------
def in_order(pool):
    """Selector: the rater's first open query in plan order.

    Every rater walks the same plan, so raters overlap on the first queries
    (what agreement between raters is measured on).
    """
    return 0


def fewest_answers(pool):
    """Selector: the open query with the fewest answers (ties: plan order).

    Spreads the raters over the plan, for the most distinct pairs.
    """
    return int(np.lexsort((pool.position, pool.n_answers))[0])


SELECTORS = {"in_order": in_order, "fewest_answers": fewest_answers}


# ----------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------
def _hash_token(token):
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _new_token():
    return secrets.token_urlsafe(24)


def fingerprint(candidates):
    """SHA-256 of a candidate set's arrays and names (identifies its content)."""
    digest = hashlib.sha256()
    for array in (candidates.u, candidates.context, candidates.nominal_cost):
        digest.update(np.ascontiguousarray(array, dtype="<f8").tobytes())
        digest.update(str(array.shape).encode())
    digest.update(np.ascontiguousarray(candidates.group, dtype="<i8").tobytes())
    digest.update("\x00".join(candidates.names).encode("utf-8"))
    return digest.hexdigest()


def normalize_choice(choice):
    """Return ``"A"``, ``"B"`` or ``"cant_tell"`` for an accepted spelling.

    Raises:
        InvalidAnswerError: anything else.
    """
    if isinstance(choice, str):
        key = choice.strip()
        if key.upper() in ("A", "B"):
            return key.upper()
        if key.lower() == "cant_tell":
            return "cant_tell"
    raise InvalidAnswerError(
        f"choice must be one of {list(CHOICES)}; got {choice!r}"
    )


def normalize_query_id(query_id):
    """Return ``query_id`` as a positive int (an int or a string of digits).

    Raises:
        InvalidAnswerError: anything else (bools, floats, negative numbers).
    """
    if isinstance(query_id, str) and query_id.strip().isdigit() and len(query_id.strip()) <= 18:
        query_id = int(query_id.strip())
    is_integer = isinstance(query_id, (int, np.integer)) and not isinstance(query_id, bool)
    if is_integer and 0 < query_id < 2**62:
        return int(query_id)
    raise InvalidAnswerError(f"query_id must be a positive integer; got {query_id!r}")


def _check_name(name, what):
    if not isinstance(name, str) or not name.strip() or len(name.strip()) > MAX_NAME_LENGTH:
        raise StoreError(
            f"a {what} name must be a non-empty string of at most "
            f"{MAX_NAME_LENGTH} characters; got {name!r}"
        )
    return name.strip()


def _count_if(condition):
    return func.sum(case((condition, 1), else_=0))


def sqlite_path(url):
    """The file of an SQLite URL (``sqlite:///prefs.db`` -> ``prefs.db``);
    ``None`` for another database, an in-memory one, or an unparsable URL."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return None
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return parsed.database


def remove_sqlite_files(path):
    """Delete an SQLite database file and its WAL and shared-memory files."""
    for name in (path, f"{path}-wal", f"{path}-shm", f"{path}-journal"):
        if os.path.exists(name):
            os.remove(name)


def _engine_for(url, echo=False):
    """Create the engine; SQLite files get WAL mode and ``synchronous=FULL``."""
    if isinstance(url, str) and "://" not in url:
        raise StoreError(
            f"the store needs an SQLAlchemy URL such as 'sqlite:///prefs.db' or "
            f"'postgresql+psycopg://user@host/db'; got {url!r}"
        )
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise StoreError(f"cannot parse the database URL {url!r}: {exc}") from exc
    options = {"echo": echo}
    sqlite = parsed.get_backend_name() == "sqlite"
    in_memory = sqlite and parsed.database in (None, "", ":memory:")
    if in_memory:
        # One shared connection, so every thread of the web app sees one database.
        options.update(poolclass=StaticPool, connect_args={"check_same_thread": False})
    try:
        engine = create_engine(parsed, **options)
    except NoSuchModuleError as exc:
        raise StoreError(
            f"{parsed.drivername!r} in {parsed.render_as_string(hide_password=True)!r} is "
            f"not a database SQLAlchemy knows: {exc}"
        ) from exc
    except ImportError as exc:  # the dialect's driver (DBAPI) is not installed
        raise StoreError(
            f"the database driver of {parsed.drivername!r} is not installed ({exc}); install "
            "it, e.g. pip install 'psycopg[binary]' for postgresql+psycopg"
        ) from exc
    if sqlite:
        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):
            cursor = dbapi_connection.cursor()
            if not in_memory:
                # WAL: readers never block the writer; FULL: a commit is on
                # disk (fsync) before it is acknowledged.
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=10000")
            cursor.close()
    return engine


# ----------------------------------------------------------------------
# The store
# ----------------------------------------------------------------------
class PreferenceStore:
    """Sessions, raters, queries and answers in a SQL database.

    Args:
        url: SQLAlchemy database URL (default ``"sqlite:///prefs.db"``);
            an SQLite file is created if missing.
        echo: log every SQL statement.

    Methods that take a ``session`` accept a :class:`SessionInfo`, a session
    id or a session name. Every write is one transaction.

    Raises:
        StoreError: the URL is not an SQLAlchemy URL, its database driver is
            not installed, or the database cannot be opened.
        FileFormatError: the database holds a store of another version.
    """

    def __init__(self, url="sqlite:///prefs.db", echo=False):
        self.url = url
        self.engine = _engine_for(url, echo=echo)
        self._sessionmaker = sessionmaker(self.engine, expire_on_commit=False)
        self._candidates_cache = {}
        try:
            _Base.metadata.create_all(self.engine)
        except DatabaseError as exc:  # no such server, no access, a file that is not a database
            self.engine.dispose()
            raise StoreError(f"cannot open the database {self._display_url()}: {exc.orig}") from exc
        with self._sessionmaker.begin() as db:
            meta = {row.key: row.value for row in db.scalars(select(_MetaRecord))}
            if not meta:
                db.add_all([
                    _MetaRecord(key="format", value=STORE_FORMAT),
                    _MetaRecord(key="version", value=str(STORE_VERSION)),
                ])
            elif meta.get("format") != STORE_FORMAT or meta.get("version") != str(STORE_VERSION):
                raise FileFormatError(
                    f"{self._display_url()} holds a store of format "
                    f"{meta.get('format')!r} version {meta.get('version')!r}; this "
                    f"pyomo_prefobj reads {STORE_FORMAT!r} version {STORE_VERSION}"
                )

    def _display_url(self):
        return make_url(self.url).render_as_string(hide_password=True)

    def __repr__(self):
        return f"PreferenceStore({self._display_url()!r})"

    def close(self):
        """Release the database connections."""
        self.engine.dispose()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ------------------------------------------------------------------
    # Sessions
    # ------------------------------------------------------------------
    def create_session(self, candidates, name, n_pairs=None, seed=0, context_names=None):
        """Store ``candidates`` and a plan of queries as a new session.

        Args:
            candidates: the :class:`Candidates` to ask about.
            name: unique session name.
            n_pairs: queries in the plan (``None``: every distinct pair of
                same-context candidates), drawn by
                :func:`~pyomo_prefobj.oracles.draw_pairs`, spread evenly
                over the contexts, each shown in random A/B order.
            seed: seed of the draw and of the A/B order.
            context_names: names of the ``k`` context values (shown to raters;
                default: the candidates' own ``context_names``, or ``x0[0]``,
                ``x0[1]``, ... where they have none).

        Returns:
            SessionInfo: with ``admin_token``, the owner's secret (shown once).

        Raises:
            StoreError: the name is taken, or the candidates hold NaN or inf.
            PairsError: no context has two candidates.
        """
        if not isinstance(candidates, Candidates):
            raise StoreError(
                f"create_session needs a Candidates set; got {type(candidates).__name__}"
            )
        name = _check_name(name, "session")
        for label in ("u", "context", "nominal_cost"):
            if not np.all(np.isfinite(getattr(candidates, label))):
                raise StoreError(
                    f"session {name!r}: candidates.{label} holds NaN or inf; "
                    "remove those candidates first"
                )
        k = candidates.context.shape[1]
        if context_names is None:
            context_names = list(candidates.context_names) or [f"x0[{i}]" for i in range(k)]
        context_names = [str(c) for c in context_names]
        if len(context_names) != k:
            raise StoreError(
                f"session {name!r}: {len(context_names)} context names given for "
                f"contexts of length {k}"
            )
        rng = np.random.default_rng(seed)
        if n_pairs is None:
            sizes = [len(members) for members in candidates.groups()]
            # At least 1, so that draw_pairs says why when no pair exists.
            n_pairs = max(1, sum(s * (s - 1) // 2 for s in sizes))
        if isinstance(n_pairs, bool) or not isinstance(n_pairs, (int, np.integer)) or n_pairs < 1:
            raise StoreError(
                f"session {name!r}: n_pairs must be a positive integer; got {n_pairs!r}"
            )
        chosen = draw_pairs(candidates, int(n_pairs), rng)
        swap = rng.random(len(chosen)) < 0.5  # show each side first equally often
        chosen[swap] = chosen[swap][:, ::-1]
        admin_token = _new_token()
        with self._sessionmaker.begin() as db:
            if db.scalar(select(_SessionRecord.id).where(_SessionRecord.name == name)) is not None:
                raise StoreError(
                    f"a session named {name!r} exists already; choose another name "
                    "or open that one"
                )
            record = _SessionRecord(
                name=name,
                admin_token_hash=_hash_token(admin_token),
                fingerprint=fingerprint(candidates),
                names=list(candidates.names),
                context_names=context_names,
                n_candidates=len(candidates),
            )
            db.add(record)
            db.flush()
            db.execute(
                _CandidateRecord.__table__.insert(),
                [
                    {
                        "session_id": record.id,
                        "position": i,
                        "context_group": int(candidates.group[i]),
                        "context": candidates.context[i].tolist(),
                        "u": candidates.u[i].tolist(),
                        "nominal_cost": float(candidates.nominal_cost[i]),
                    }
                    for i in range(len(candidates))
                ],
            )
            now = _utcnow()
            db.execute(
                _QueryRecord.__table__.insert(),
                [
                    {"session_id": record.id, "position": p, "candidate_a": int(a),
                     "candidate_b": int(b), "created_at": now}
                    for p, (a, b) in enumerate(chosen)
                ],
            )
            session_id = record.id
        # As candidates() reads them back: the session keeps the names shown
        # to raters, not the model's context names.
        self._candidates_cache[session_id] = dataclasses.replace(candidates, context_names=())
        logger.info(
            "created session %r: %d candidates, %d queries", name, len(candidates), len(chosen)
        )
        info = self.session(session_id)
        return SessionInfo(**{**info.__dict__, "admin_token": admin_token})

    def _session_record(self, db, session):
        if isinstance(session, SessionInfo):
            session = session.id
        if isinstance(session, str):
            record = db.scalar(select(_SessionRecord).where(_SessionRecord.name == session))
        elif isinstance(session, (int, np.integer)) and not isinstance(session, bool):
            record = db.get(_SessionRecord, int(session))
        else:
            raise UnknownSessionError(
                f"a session is given by its SessionInfo, id or name; got {session!r}"
            )
        if record is None:
            raise UnknownSessionError(
                f"{self._display_url()} has no session {session!r}; sessions: "
                f"{[s.name for s in self.sessions()]}"
            )
        return record

    def _info(self, db, record):
        n_contexts = db.scalar(
            select(func.count(func.distinct(_CandidateRecord.context_group))).where(
                _CandidateRecord.session_id == record.id
            )
        )
        n_queries = db.scalar(
            select(func.count(_QueryRecord.id)).where(_QueryRecord.session_id == record.id)
        )
        return SessionInfo(
            id=record.id,
            name=record.name,
            n_candidates=record.n_candidates,
            n_contexts=int(n_contexts),
            n_queries=int(n_queries),
            names=tuple(record.names),
            context_names=tuple(record.context_names),
            created_at=record.created_at,
        )

    def session(self, session):
        """Return the :class:`SessionInfo` of a session (id, name or info)."""
        with self._sessionmaker() as db:
            return self._info(db, self._session_record(db, session))

    def find_session(self, name):
        """Return the session called ``name``, or ``None``."""
        try:
            return self.session(str(name))
        except UnknownSessionError:
            return None

    def sessions(self):
        """Return every stored session, oldest first."""
        with self._sessionmaker() as db:
            records = db.scalars(select(_SessionRecord).order_by(_SessionRecord.id)).all()
            return tuple(self._info(db, r) for r in records)

    def session_fingerprint(self, session):
        """SHA-256 of the session's candidates, as :func:`fingerprint` computes it."""
        with self._sessionmaker() as db:
            return self._session_record(db, session).fingerprint

    def candidates(self, session):
        """Return the session's :class:`Candidates` (exactly as stored).

        Their ``context_names`` are empty: the session keeps the names shown
        to raters (``SessionInfo.context_names``), which may differ from the
        model's, so pairs built from them are checked by ``fit`` on the
        number of context values only."""
        with self._sessionmaker() as db:
            record = self._session_record(db, session)
            cached = self._candidates_cache.get(record.id)
            if cached is not None:
                return cached
            rows = db.scalars(
                select(_CandidateRecord)
                .where(_CandidateRecord.session_id == record.id)
                .order_by(_CandidateRecord.position)
            ).all()
            d, k = len(record.names), len(record.context_names)
            candidates = Candidates(
                u=np.array([r.u for r in rows], dtype=float).reshape(len(rows), d),
                context=np.array([r.context for r in rows], dtype=float).reshape(len(rows), k),
                nominal_cost=np.array([r.nominal_cost for r in rows], dtype=float),
                group=np.array([r.context_group for r in rows], dtype=int),
                names=tuple(record.names),
            )
        self._candidates_cache[record.id] = candidates  # candidates never change
        return candidates

    def new_admin_token(self, session):
        """Replace the session's admin token; return the info with the new one."""
        token = _new_token()
        with self._sessionmaker.begin() as db:
            record = self._session_record(db, session)
            record.admin_token_hash = _hash_token(token)
            info = self._info(db, record)
        return SessionInfo(**{**info.__dict__, "admin_token": token})

    def authenticate_admin(self, token):
        """Return the session whose admin token is ``token``.

        Raises:
            AuthenticationError: no session has that token.
        """
        if not isinstance(token, str) or not token or len(token) > _MAX_TOKEN_LENGTH:
            raise AuthenticationError("an admin token is needed (the owner's link)")
        with self._sessionmaker() as db:
            record = db.scalar(
                select(_SessionRecord).where(_SessionRecord.admin_token_hash == _hash_token(token))
            )
            if record is None:
                raise AuthenticationError("this admin token matches no session")
            return self._info(db, record)

    def add_queries(self, session, pairs):
        """Append queries to the session's plan.

        Args:
            session: the session.
            pairs: candidate indices, shape ``(m, 2)``; each row is shown as
                ``(A, B)``. Both candidates of a row must share a context, and
                a pair already planned (in either order) is refused.

        Returns:
            np.ndarray: the new query ids, shape ``(m,)``.

        Raises:
            StoreError: an index is out of range, a row mixes contexts, or a
                pair is planned already.
        """
        pairs = np.asarray(pairs)
        if pairs.ndim != 2 or pairs.shape[1] != 2 or not np.issubdtype(pairs.dtype, np.integer):
            raise StoreError(f"add_queries needs integer pairs of shape (m, 2); got {pairs.shape}")
        candidates = self.candidates(session)
        if pairs.size and (pairs.min() < 0 or pairs.max() >= len(candidates)):
            raise StoreError(
                f"add_queries: candidate indices must lie in [0, {len(candidates)}); "
                f"got {pairs.min()}..{pairs.max()}"
            )
        for a, b in pairs:
            if a == b or candidates.group[a] != candidates.group[b]:
                raise StoreError(
                    f"add_queries: pair ({a}, {b}) is not two distinct candidates "
                    "of the same context"
                )
        with self._sessionmaker.begin() as db:
            record = self._session_record(db, session)
            planned = {
                frozenset(row)
                for row in db.execute(
                    select(_QueryRecord.candidate_a, _QueryRecord.candidate_b).where(
                        _QueryRecord.session_id == record.id
                    )
                )
            }
            start = db.scalar(
                select(func.coalesce(func.max(_QueryRecord.position), -1)).where(
                    _QueryRecord.session_id == record.id
                )
            ) + 1
            new = []
            for offset, (a, b) in enumerate(pairs.tolist()):
                key = frozenset((a, b))
                if key in planned:
                    raise StoreError(f"add_queries: pair ({a}, {b}) is planned already")
                planned.add(key)
                new.append(_QueryRecord(session_id=record.id, position=start + offset,
                                        candidate_a=a, candidate_b=b))
            db.add_all(new)
            db.flush()
            return np.array([q.id for q in new], dtype=int)

    # ------------------------------------------------------------------
    # Raters
    # ------------------------------------------------------------------
    def add_rater(self, session, name):
        """Add a rater to a session.

        Returns:
            Rater: with ``token``, the rater's secret (shown once: the store
            keeps only its hash).

        Raises:
            DuplicateRaterError: the session has a rater of that name already.
        """
        name = _check_name(name, "rater")
        token = _new_token()
        try:
            with self._sessionmaker.begin() as db:
                record = self._session_record(db, session)
                rater = _RaterRecord(session_id=record.id, name=name, token_hash=_hash_token(token))
                db.add(rater)
                db.flush()
                result = Rater(id=rater.id, session_id=record.id, name=name, token=token)
        except IntegrityError as exc:
            raise DuplicateRaterError(
                f"this session has a rater named {name!r} already; choose another "
                "name, or give that rater a new link (serve --new-tokens, or "
                "PreferenceStore.new_rater_token)"
            ) from exc
        logger.info("added rater %r to session %r", name, record.name)
        return result

    def new_rater_token(self, session, name):
        """Replace a rater's token (the old link stops working); return the rater."""
        token = _new_token()
        with self._sessionmaker.begin() as db:
            record = self._session_record(db, session)
            rater = db.scalar(
                select(_RaterRecord).where(
                    _RaterRecord.session_id == record.id, _RaterRecord.name == name
                )
            )
            if rater is None:
                raise UnknownRaterError(f"session {record.name!r} has no rater named {name!r}")
            rater.token_hash = _hash_token(token)
            return Rater(id=rater.id, session_id=record.id, name=rater.name, token=token)

    def raters(self, session):
        """Return the session's raters (without tokens), oldest first."""
        with self._sessionmaker() as db:
            record = self._session_record(db, session)
            rows = db.scalars(
                select(_RaterRecord)
                .where(_RaterRecord.session_id == record.id)
                .order_by(_RaterRecord.id)
            ).all()
            return tuple(Rater(id=r.id, session_id=r.session_id, name=r.name) for r in rows)

    def authenticate(self, token):
        """Return the rater whose token is ``token``.

        Raises:
            AuthenticationError: no rater has that token.
        """
        if not isinstance(token, str) or not token or len(token) > _MAX_TOKEN_LENGTH:
            raise AuthenticationError("a rater token is needed (the link you were given)")
        with self._sessionmaker() as db:
            rater = db.scalar(
                select(_RaterRecord).where(_RaterRecord.token_hash == _hash_token(token))
            )
            if rater is None:
                raise AuthenticationError("this rater token matches nobody; ask for a new link")
            return Rater(id=rater.id, session_id=rater.session_id, name=rater.name)

    # ------------------------------------------------------------------
    # Queries and answers
    # ------------------------------------------------------------------
    def query_pool(self, rater):
        """Return the :class:`QueryPool` of queries ``rater`` has not answered."""
        with self._sessionmaker() as db:
            answered = select(_AnswerRecord.query_id).where(_AnswerRecord.rater_id == rater.id)
            counts = (
                select(_AnswerRecord.query_id, func.count(_AnswerRecord.id).label("n"))
                .group_by(_AnswerRecord.query_id)
                .subquery()
            )
            rows = db.execute(
                select(
                    _QueryRecord.id, _QueryRecord.position, _QueryRecord.candidate_a,
                    _QueryRecord.candidate_b, func.coalesce(counts.c.n, 0),
                )
                .outerjoin(counts, counts.c.query_id == _QueryRecord.id)
                .where(
                    _QueryRecord.session_id == rater.session_id,
                    _QueryRecord.id.not_in(answered),
                )
                .order_by(_QueryRecord.position)
            ).all()
        columns = np.array(rows, dtype=np.int64).reshape(len(rows), 5).T
        return QueryPool(
            rater=rater,
            candidates=self.candidates(rater.session_id),
            query_id=columns[0],
            position=columns[1],
            first=columns[2],
            second=columns[3],
            n_answers=columns[4],
        )

    def next_query(self, rater, selector=None):
        """Choose the next query for ``rater``, or ``None`` when none is open.

        Args:
            rater: a :class:`Rater` (from :meth:`authenticate`).
            selector: ``selector(pool) -> int or None``, an index into the
                :class:`QueryPool` (default :func:`in_order`); ``None`` means
                "nothing more to ask".

        Raises:
            StoreError: the selector returned something that is not an index
                into the pool.
        """
        selector = in_order if selector is None else selector
        pool = self.query_pool(rater)
        if not len(pool):
            return None
        index = selector(pool)
        if index is None:
            return None
        is_integer = isinstance(index, (int, np.integer)) and not isinstance(index, bool)
        if not is_integer or not 0 <= index < len(pool):
            raise StoreError(
                f"selector {selector!r} returned {index!r}; it must return an "
                f"index in [0, {len(pool)}) or None"
            )
        return self.query(rater, int(pool.query_id[index]))

    def query(self, rater, query_id):
        """Return query ``query_id`` of the rater's session.

        Raises:
            InvalidAnswerError: ``query_id`` is not a positive integer.
            UnknownQueryError: the rater's session has no such query.
        """
        query_id = normalize_query_id(query_id)
        with self._sessionmaker() as db:
            record = db.get(_QueryRecord, query_id)
            if record is None or record.session_id != rater.session_id:
                raise UnknownQueryError(f"there is no query {query_id} in this session")
        candidates = self.candidates(rater.session_id)
        return Query(
            id=record.id,
            session_id=record.session_id,
            position=record.position,
            first_index=record.candidate_a,
            second_index=record.candidate_b,
            first=candidates[record.candidate_a],
            second=candidates[record.candidate_b],
        )

    def record_answer(self, rater, query_id, choice):
        """Store ``rater``'s answer to a query, in one transaction.

        Args:
            rater: a :class:`Rater` (from :meth:`authenticate`).
            query_id: the query answered.
            choice: ``"A"``, ``"B"`` or ``"cant_tell"``.

        Returns:
            Answer: as stored (committed when this returns).

        Raises:
            InvalidAnswerError: malformed query id or choice.
            UnknownQueryError: the rater's session has no such query.
            DuplicateAnswerError: the rater answered this query already.
        """
        choice = normalize_choice(choice)
        query_id = normalize_query_id(query_id)
        try:
            with self._sessionmaker.begin() as db:
                query = db.get(_QueryRecord, query_id)
                if query is None or query.session_id != rater.session_id:
                    raise UnknownQueryError(f"there is no query {query_id} in this session")
                answer = _AnswerRecord(query_id=query_id, rater_id=rater.id, choice=choice)
                db.add(answer)
                db.flush()
                result = Answer(
                    id=answer.id, query_id=query_id, rater=rater.name,
                    choice=choice, answered_at=answer.answered_at,
                )
        except IntegrityError as exc:
            with self._sessionmaker() as db:
                exists = db.scalar(
                    select(_AnswerRecord.id).where(
                        _AnswerRecord.query_id == query_id, _AnswerRecord.rater_id == rater.id
                    )
                )
            if exists is not None:
                raise DuplicateAnswerError(
                    f"rater {rater.name!r} has answered query {query_id} already; "
                    "answers are final"
                ) from exc
            raise
        logger.debug("rater %r answered query %d: %s", rater.name, query_id, choice)
        return result

    def answers(self, rater):
        """Return ``rater``'s own answers, oldest first."""
        with self._sessionmaker() as db:
            rows = db.execute(
                select(_AnswerRecord.id, _AnswerRecord.query_id, _AnswerRecord.choice,
                       _AnswerRecord.answered_at)
                .where(_AnswerRecord.rater_id == rater.id)
                .order_by(_AnswerRecord.id)
            ).all()
        return tuple(Answer(id=r[0], query_id=r[1], rater=rater.name, choice=r[2],
                            answered_at=r[3]) for r in rows)

    def count_answers(self, session=None, rater=None):
        """Number of stored answers, of one session, one rater, or all."""
        statement = select(func.count(_AnswerRecord.id))
        if rater is not None:
            statement = statement.where(_AnswerRecord.rater_id == rater.id)
        if session is not None:
            with self._sessionmaker() as db:
                session_id = self._session_record(db, session).id
            statement = statement.join(
                _QueryRecord, _QueryRecord.id == _AnswerRecord.query_id
            ).where(_QueryRecord.session_id == session_id)
        with self._sessionmaker() as db:
            return int(db.scalar(statement))

    # ------------------------------------------------------------------
    # Progress and export
    # ------------------------------------------------------------------
    def progress(self, session):
        """Return the :class:`SessionProgress`: answers per rater and per context."""
        candidates = self.candidates(session)
        with self._sessionmaker() as db:
            record = self._session_record(db, session)
            info = self._info(db, record)
            in_session = _QueryRecord.session_id == record.id
            by_rater = {
                row[0]: row[1:]
                for row in db.execute(
                    select(
                        _AnswerRecord.rater_id,
                        func.count(_AnswerRecord.id),
                        _count_if(_AnswerRecord.choice == "A"),
                        _count_if(_AnswerRecord.choice == "B"),
                        _count_if(_AnswerRecord.choice == "cant_tell"),
                        func.max(_AnswerRecord.answered_at),
                    )
                    .join(_QueryRecord, _QueryRecord.id == _AnswerRecord.query_id)
                    .where(in_session)
                    .group_by(_AnswerRecord.rater_id)
                )
            }
            raters = db.scalars(
                select(_RaterRecord)
                .where(_RaterRecord.session_id == record.id)
                .order_by(_RaterRecord.id)
            ).all()
            rater_rows = []
            for rater in raters:
                n, a, b, cant, last = by_rater.get(rater.id, (0, 0, 0, 0, None))
                rater_rows.append(RaterProgress(rater.name, int(n), int(a or 0), int(b or 0),
                                                int(cant or 0), last))
            # Per context, through the candidate shown as A.
            query_group = (
                select(
                    _QueryRecord.id.label("query_id"),
                    _CandidateRecord.context_group.label("grp"),
                )
                .join(
                    _CandidateRecord,
                    (_CandidateRecord.session_id == _QueryRecord.session_id)
                    & (_CandidateRecord.position == _QueryRecord.candidate_a),
                )
                .where(in_session)
                .subquery()
            )
            planned = dict(
                db.execute(
                    select(query_group.c.grp, func.count()).group_by(query_group.c.grp)
                ).all()
            )
            answered = {
                row[0]: row[1:]
                for row in db.execute(
                    select(
                        query_group.c.grp,
                        func.count(_AnswerRecord.id),
                        _count_if(_AnswerRecord.choice == "cant_tell"),
                    )
                    .join(_AnswerRecord, _AnswerRecord.query_id == query_group.c.query_id)
                    .group_by(query_group.c.grp)
                )
            }
            n_queries_answered = db.scalar(
                select(func.count(func.distinct(_AnswerRecord.query_id)))
                .join(_QueryRecord, _QueryRecord.id == _AnswerRecord.query_id)
                .where(in_session)
            )
        context_rows = []
        for members in candidates.groups():
            group = int(candidates.group[members[0]])
            n, cant = answered.get(group, (0, 0))
            context_rows.append(ContextProgress(
                group=group,
                context=tuple(candidates.context[members[0]].tolist()),
                n_candidates=len(members),
                n_queries=int(planned.get(group, 0)),
                answered=int(n),
                cant_tell=int(cant or 0),
            ))
        return SessionProgress(
            session=info,
            n_answers=sum(r.answered for r in rater_rows),
            n_cant_tell=sum(r.cant_tell for r in rater_rows),
            n_queries_answered=int(n_queries_answered),
            raters=tuple(rater_rows),
            contexts=tuple(context_rows),
        )

    def agreement(self, session):
        """Each rater's agreement with the consensus of the other raters.

        For every A/B answer of a rater, the other raters' A/B answers to the
        same query are counted; when one side has a strict majority, the
        answer is *compared* and *agrees* if it picks that side (queries
        the others have not answered, or answered in a tie, are left out).
        Leaving the rater's own answer out of the majority keeps a
        two-rater session meaningful. A reliable rater scores near 1, one
        answering at random near 0.5, one answering against the others near
        0 (once enough queries are shared: serve with the ``in_order``
        selector, or plan overlap, to get shared queries).

        Returns:
            tuple of :class:`RaterAgreement`, one per rater, oldest first.
        """
        with self._sessionmaker() as db:
            record = self._session_record(db, session)
            rows = db.execute(
                select(_AnswerRecord.query_id, _AnswerRecord.rater_id, _AnswerRecord.choice)
                .join(_QueryRecord, _QueryRecord.id == _AnswerRecord.query_id)
                .where(_QueryRecord.session_id == record.id, _AnswerRecord.choice != "cant_tell")
            ).all()
            raters = db.execute(
                select(_RaterRecord.id, _RaterRecord.name)
                .where(_RaterRecord.session_id == record.id)
                .order_by(_RaterRecord.id)
            ).all()
        votes = {}  # query id -> [A count, B count]
        for query_id, _, choice in rows:
            votes.setdefault(query_id, [0, 0])[choice == "B"] += 1
        counts = {rater_id: [0, 0, 0] for rater_id, _ in raters}  # answered, compared, agreed
        for query_id, rater_id, choice in rows:
            mine = int(choice == "B")
            others = list(votes[query_id])
            others[mine] -= 1
            count = counts[rater_id]
            count[0] += 1
            if others[0] != others[1]:
                count[1] += 1
                count[2] += int((others[1] > others[0]) == bool(mine))
        rows = []
        for rater_id, name in raters:
            answered, compared, agreed = counts[rater_id]
            rows.append(RaterAgreement(
                name=name, answered=answered, compared=compared, agreed=agreed,
                agreement=agreed / compared if compared else None,
            ))
        return tuple(rows)

    def export_pairs(self, session, raters=None):
        """Return the session's answers as :class:`Pairs`, preferred first.

        One pair per answer ``"A"`` or ``"B"``, in the order answered, with
        the rater's name in ``Pairs.rater``; ``"cant_tell"`` answers are
        left out. Several raters answering one query give one pair each.

        Args:
            session: the session.
            raters: a rater name or a list of names to keep (default: all).

        Raises:
            PairsError: there is no A/B answer (yet) to export.
            UnknownRaterError: ``raters`` names someone not in the session.
        """
        candidates = self.candidates(session)
        with self._sessionmaker() as db:
            record = self._session_record(db, session)
            statement = (
                select(
                    _QueryRecord.candidate_a, _QueryRecord.candidate_b,
                    _AnswerRecord.choice, _RaterRecord.name,
                )
                .join(_AnswerRecord, _AnswerRecord.query_id == _QueryRecord.id)
                .join(_RaterRecord, _RaterRecord.id == _AnswerRecord.rater_id)
                .where(_QueryRecord.session_id == record.id, _AnswerRecord.choice != "cant_tell")
                .order_by(_AnswerRecord.id)
            )
            if raters is not None:
                names = [raters] if isinstance(raters, str) else list(raters)
                known = set(db.scalars(
                    select(_RaterRecord.name).where(_RaterRecord.session_id == record.id)
                ))
                unknown = [name for name in names if name not in known]
                if unknown:
                    raise UnknownRaterError(
                        f"session {record.name!r} has no rater named "
                        f"{', '.join(map(repr, unknown))}; raters: {sorted(known)}"
                    )
                statement = statement.where(_RaterRecord.name.in_(names))
            rows = db.execute(statement).all()
        if not rows:
            raise PairsError(
                f"session {record.name!r} has no A/B answers"
                + (f" from {raters!r}" if raters is not None else "")
                + " yet; nothing to export"
            )
        first = np.array([r[0] for r in rows])
        second = np.array([r[1] for r in rows])
        a_wins = np.array([r[2] == "A" for r in rows])
        preferred = np.where(a_wins, first, second)
        other = np.where(a_wins, second, first)
        return Pairs.from_candidates(
            candidates, preferred, other, rater=np.array([r[3] for r in rows], dtype=str)
        )


def load_pairs(url, session_id, raters=None):
    """Load a stored session's answers as :class:`Pairs`, ready for ``fit``.

    The stored counterpart of ``m.pref.ask(candidates, n, oracle)``::

        pairs = load_pairs("sqlite:///prefs.db", "covid")   # id or name
        m.pref.fit(pairs)

    Args:
        url: SQLAlchemy database URL of the store.
        session_id: the session's id or name.
        raters: a rater name or list of names to keep (default: all).

    Raises:
        UnknownSessionError: no such session.
        StoreError: ``url`` names an SQLite file that does not exist (none
            is created).
        PairsError: the session has no A/B answers yet.
    """
    path = sqlite_path(url)
    if path is not None and not os.path.exists(path):
        raise StoreError(f"no preference store at {url!r}: the file {path!r} does not exist")
    store = PreferenceStore(url)
    try:
        return store.export_pairs(session_id, raters=raters)
    finally:
        store.close()
