"""Serve the preference web app: ``python -m pyomo_prefobj.serve``.

::

    # once: sample candidates and save them
    candidates = m.pref.sample(contexts, per_context=20)
    candidates.save("cands.npz")

    # create the session (first run) or reopen it, add raters, serve
    python -m pyomo_prefobj.serve --db sqlite:///prefs.db --candidates cands.npz \\
        --rater alice --rater bob --host 127.0.0.1 --port 8000

    # later: fit from the stored answers
    pairs = pyomo_prefobj.store.load_pairs("sqlite:///prefs.db", "cands")
    m.pref.fit(pairs)

With ``--selector active`` each rater gets the open pair that an ensemble
of learned objectives disagrees on most
(:class:`~pyomo_prefobj.active.ActiveSelector`); the ensemble is refitted
in a background thread every ``--refit-every`` answers, so a request never
waits for a fit.

The first run prints the owner's admin link and each new rater's personal
link (each shown once: the database keeps only hashes of the tokens).
Running again with the same ``--candidates`` reopens the same session.
The server listens on 127.0.0.1 unless ``--host`` says otherwise; it is
Werkzeug's threaded server, fine for a team of raters; behind HTTPS (a
reverse proxy) add ``--secure-cookies``. Any WSGI server can run
``pyomo_prefobj.webapp.create_app(url)`` instead.
"""

import argparse
import logging
import os
import socket
import sys
from pathlib import Path

from .candidates import Candidates
from .errors import PreferenceObjectiveError
from .store import SELECTORS, PreferenceStore, fingerprint, remove_sqlite_files, sqlite_path

logger = logging.getLogger(__name__)

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


SELECTOR_CHOICES = list(SELECTORS) + ["active"]
LOSSES = ("hinge", "logistic", "flip")  # as pyomo_prefobj.learning.LOSSES (no torch import here)


def _check_port_free(host, port):
    """SystemExit with one line where ``host:port`` cannot be listened on
    (another server holds it, or the address is not this machine's)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server does
            probe.bind(address)
    except OSError as exc:
        raise SystemExit(f"error: cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer; got {text!r}")
    return value


def _members(text):
    value = _positive_int(text)
    if value < 2:
        raise argparse.ArgumentTypeError(f"an ensemble needs at least 2 members; got {text!r}")
    return value


def build_selector(store, session, args, say=print):
    """The selector that ``--selector`` names (an ``ActiveSelector`` for ``active``).

    An active selector on a session that has enough answers already starts
    fitting to them in the background; until that fit finishes, raters get
    the pairs with the fewest answers.
    """
    if args.selector != "active":
        return args.selector
    from .active import ActiveSelector  # torch only when asked for

    selector = ActiveSelector(
        store, session.id, n_members=args.members, refit_every=args.refit_every,
        min_pairs=args.min_pairs, loss=args.loss, max_epochs=args.max_epochs,
    )
    stored = store.count_answers(session=session)
    if stored >= args.min_pairs:
        say(f"active selection: fitting {args.members} members to the {stored} stored "
            "answers in the background")
        selector.start_refit()
    say(f"active selection: {args.members} members, refit every {args.refit_every} answers"
        + ("" if stored >= args.min_pairs else f" (first fit after {args.min_pairs})"))
    return selector


def build_parser():
    """The command-line parser (``--help`` documents every option)."""
    parser = argparse.ArgumentParser(
        prog="python -m pyomo_prefobj.serve",
        description=(
            "Serve the pairwise-preference web app: raters open their personal "
            "link, see two candidate decisions of the same context side by side "
            "and answer A, B or can't tell; answers go to the database. The "
            "owner's admin link shows progress and exports the pairs."
        ),
        epilog=(
            "Example: python -m pyomo_prefobj.serve --db sqlite:///prefs.db "
            "--candidates cands.npz --rater alice --rater bob. Fit from the "
            "answers with pyomo_prefobj.store.load_pairs(URL, SESSION) or the "
            "admin page's export (Pairs.load)."
        ),
    )
    parser.add_argument(
        "--db", default="sqlite:///prefs.db",
        help="SQLAlchemy database URL (default: sqlite:///prefs.db, an SQLite "
             "file in WAL mode; e.g. postgresql+psycopg://user@host/prefs for a team server)",
    )
    parser.add_argument(
        "--candidates", type=Path,
        help="candidates file written by Candidates.save (.npz); creates the "
             "session on the first run, reopens it afterwards (same content required)",
    )
    parser.add_argument(
        "--session",
        help="session name (default: the candidates file name without suffix; "
             "without --candidates: the database's only session)",
    )
    parser.add_argument(
        "--pairs", type=int, default=None,
        help="pairs planned for a new session (default: every distinct pair of "
             "same-context candidates)",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of a new session's pair plan (default 0)"
    )
    parser.add_argument(
        "--context-name", action="append", default=None, metavar="NAME",
        help="name of a context value shown to raters (repeat, in order; default: "
             "the candidates' context names, or x0[0], x0[1], ... where they have none)",
    )
    parser.add_argument(
        "--rater", action="append", default=[], metavar="NAME",
        help="add a rater and print their personal link (repeatable; an existing "
             "rater is left as is unless --new-tokens)",
    )
    parser.add_argument(
        "--new-tokens", action="store_true",
        help="issue new links for the --rater names given and for the admin "
             "(old links stop working)",
    )
    parser.add_argument(
        "--selector", choices=SELECTOR_CHOICES, default="in_order",
        help="how each rater's next pair is chosen (default in_order: every rater "
             "follows the plan; fewest_answers: spread raters over the plan; "
             "active: the open pair an ensemble of learned objectives, refitted "
             "in the background as answers arrive, disagrees on most; before "
             "its first fit it acts as fewest_answers)",
    )
    active = parser.add_argument_group("active selection (--selector active)")
    active.add_argument(
        "--refit-every", type=_positive_int, default=10, metavar="N",
        help="answers between background refits of the ensemble (default 10)",
    )
    active.add_argument(
        "--members", type=_members, default=3, metavar="N",
        help="ensemble size, at least 2 (default 3)",
    )
    active.add_argument(
        "--min-pairs", type=_positive_int, default=10, metavar="N",
        help="answers needed before the first fit (default 10)",
    )
    active.add_argument(
        "--loss", choices=LOSSES, default="hinge",
        help="ranking loss of the ensemble members (default hinge; flip also "
             "learns each rater's flip rate, shown on the admin page)",
    )
    active.add_argument(
        "--max-epochs", type=_positive_int, default=200, metavar="N",
        help="epoch limit of each member's (re)fit (default 200)",
    )
    parser.add_argument(
        "--max-rows", type=_positive_int, default=40,
        help="most differing decision values shown per pair (default 40)",
    )
    parser.add_argument(
        "--host", default="127.0.0.1",
        help="interface to listen on (default 127.0.0.1: this machine only; "
             "0.0.0.0 opens it to the network)",
    )
    parser.add_argument("--port", type=_port, default=8000, help="port, 1-65535 (default 8000)")
    parser.add_argument(
        "--secure-cookies", action="store_true",
        help="mark cookies Secure (when served over HTTPS)",
    )
    parser.add_argument(
        "--setup-only", action="store_true",
        help="create or update the session and raters, print the links, do not serve",
    )
    parser.add_argument(
        "--verbose", "-v", action="store_true",
        help="log every request and store action (request lines show link tokens)",
    )
    return parser


def _port(text):
    """argparse type of ``--port``: an integer from 1 to 65535."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"a port is between 1 and 65535; got {port}")
    return port


def _open_session(store, args, say):
    if args.candidates is not None:
        try:
            candidates = Candidates.load(args.candidates)
        except PreferenceObjectiveError as exc:
            raise SystemExit(f"error: {exc}") from exc
        name = args.session or args.candidates.stem
        existing = store.find_session(name)
        if existing is None:
            session = store.create_session(
                candidates, name, n_pairs=args.pairs, seed=args.seed,
                context_names=args.context_name,
            )
            say(f"created session {name!r} (id {session.id})")
            return session, session.admin_token
        if store.session_fingerprint(existing) != fingerprint(candidates):
            raise SystemExit(
                f"error: session {name!r} in {args.db} holds other candidates than "
                f"{args.candidates}; pass --session with a new name"
            )
        return existing, None
    sessions = store.sessions()
    if args.session is not None:
        return store.session(args.session), None
    if len(sessions) == 1:
        return sessions[0], None
    if not sessions:
        raise SystemExit(
            f"error: {args.db} has no session yet; pass --candidates FILE to create one"
        )
    raise SystemExit(
        f"error: {args.db} has several sessions {[s.name for s in sessions]}; pass --session NAME"
    )


def main(argv=None, out=None):
    """Run the command line; returns the exit status."""
    args = build_parser().parse_args(argv)
    out = out or sys.stdout

    def say(line):
        print(line, file=out, flush=True)

    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(name)s %(levelname)s: %(message)s")
    new_file = sqlite_path(args.db)
    if new_file is not None and os.path.exists(new_file):
        new_file = None
    store = None
    try:
        store = PreferenceStore(args.db)
        session, admin_token = _open_session(store, args, say)
        if args.new_tokens:
            admin_token = store.new_admin_token(session).admin_token
        base = f"http://{'[' + args.host + ']' if ':' in args.host else args.host}:{args.port}"
        existing = {r.name for r in store.raters(session)}
        links = []
        for name in args.rater:
            if name.strip() in existing:
                if args.new_tokens:
                    links.append(store.new_rater_token(session, name.strip()))
                else:
                    say(f"rater {name.strip()!r} exists already (use --new-tokens for a new link)")
            else:
                links.append(store.add_rater(session, name))
                existing.add(name.strip())
    except (PreferenceObjectiveError, SystemExit) as exc:  # store, file format, pairs
        # A failed set-up leaves no new database behind.
        if store is not None:
            store.close()
        if new_file is not None:
            remove_sqlite_files(new_file)
        if isinstance(exc, SystemExit):
            raise
        raise SystemExit(f"error: {exc}") from exc
    session = store.session(session)
    say(f"session {session.name!r} (id {session.id}): {session.n_candidates} candidates, "
        f"{session.n_contexts} contexts, {session.n_queries} pairs planned, "
        f"{store.count_answers(session=session)} answers stored")
    if admin_token:
        say(f"admin link (keep it private): {base}/admin?token={admin_token}")
    for rater in links:
        say(f"rater {rater.name!r}: {base}/rate?token={rater.token}")
    if args.setup_only:
        store.close()
        return 0
    if args.host not in LOCAL_HOSTS:
        logger.warning(
            "listening on %s: anyone who can reach this machine and holds a link can "
            "answer; put it behind HTTPS for use beyond a trusted network", args.host
        )
    _check_port_free(args.host, args.port)
    from .webapp import create_app  # flask only when serving

    selector = build_selector(store, session, args, say)
    app = create_app(store, selector=selector, max_rows=args.max_rows,
                     secure_cookies=args.secure_cookies)
    if not args.verbose:
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
    say(f"serving on {base} (Ctrl+C stops)")
    app.run(host=args.host, port=args.port, threaded=True, debug=False, use_reloader=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
