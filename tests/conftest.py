"""Shared fixtures: small seeded models, a simulated user, SCIP helpers.

The toy model is a tiny MIQP with every kind of decision the component must
handle::

    x[0..2] continuous in [0, 4], y[0..1] binary, n integer in [0, 3]
    context theta[0..1] (mutable Param), nominally in [0, 1]

    min   x0 + 2 x1 + 3 x2 + 2 y0 + y1 + 1.5 n + 0.2 (x0^2 + x1^2 + x2^2)
    s.t.  x0 + x1 + x2 + n >= 3 + 2 theta0      (demand)
          x0 <= 4 y0,  x1 <= 4 y1                (on/off)
          x2 + n <= 5 - theta1                   (capacity)

Decision order of ``u`` (``decisions=[m.x, m.y, m.n]``):
``x[0], x[1], x[2], y[0], y[1], n``. Any ``theta0 > 5`` (``theta1 >= 0``) makes it infeasible
(at most ``4 + 4 + 5 - theta1`` units can be supplied).

The simulated user scores a decision with a latent convex quadratic
``L(u, theta) = 1/2 (u - t(theta))' A (u - t(theta))``, ``A`` positive
definite and ``t`` affine in ``theta``, far from what the nominal cost wants.
"""

import numpy as np
import pyomo.environ as pyo
import pytest

from pyomo_prefobj import PreferenceObjective, ScoreOracle
from pyomo_prefobj.oracles import draw_pairs
from pyomo_prefobj.pairs import Pairs

DECISION_NAMES = ("x[0]", "x[1]", "x[2]", "y[0]", "y[1]", "n")
DEFAULT_CONTEXT = (0.5, 0.5)
INFEASIBLE_CONTEXT = (6.0, 0.0)  # demand 15 > the 13 units that can be supplied
FEASIBILITY_TOLERANCE = 1e-6
# Small models: the default bias weight is tuned for ~200 decisions; on six
# decisions it must be larger for biased solves to leave the nominal optimum.
SAMPLE_OPTIONS = {"bias_weight": 50.0, "bias_width": 1.0}
# Few epochs keep fits well under a second on these pairs.
FAST_FIT = {"max_epochs": 40, "progress": False}
# The tiny model (below): learned in a fraction of a second per fit.
TINY_FIT = {"max_epochs": 100, "hidden_layers": (8,), "validation_fraction": 0.0,
            "progress": False}


def build_toy_model(context=True):
    """The toy MIQP of the module docstring (``context=False``: theta fixed)."""
    m = pyo.ConcreteModel()
    m.x = pyo.Var(range(3), bounds=(0, 4))
    m.y = pyo.Var(range(2), domain=pyo.Binary)
    m.n = pyo.Var(domain=pyo.Integers, bounds=(0, 3))
    if context:
        m.theta = pyo.Param(range(2), mutable=True, initialize=dict(enumerate(DEFAULT_CONTEXT)))
        theta = m.theta
    else:
        theta = dict(enumerate(DEFAULT_CONTEXT))
    m.demand = pyo.Constraint(expr=sum(m.x.values()) + m.n >= 3 + 2 * theta[0])
    m.on0 = pyo.Constraint(expr=m.x[0] <= 4 * m.y[0])
    m.on1 = pyo.Constraint(expr=m.x[1] <= 4 * m.y[1])
    m.capacity = pyo.Constraint(expr=m.x[2] + m.n <= 5 - theta[1])
    m.cost = pyo.Objective(
        expr=m.x[0] + 2 * m.x[1] + 3 * m.x[2] + 2 * m.y[0] + m.y[1] + 1.5 * m.n
        + 0.2 * sum(m.x[i] ** 2 for i in range(3))
    )
    return m


def toy_decisions(m):
    """The decision components of a toy model, in the documented order."""
    return [m.x, m.y, m.n]


def add_component(m, context=True, **options):
    """Attach ``m.pref`` to a toy model (no progress bars in tests)."""
    options.setdefault("progress", False)
    m.pref = PreferenceObjective(
        decisions=toy_decisions(m), context=[m.theta] if context else (), **options
    )
    return m.pref


def decision_vector(m):
    """Current decision values of a toy model, in the documented order."""
    return np.array([pyo.value(v) for v in (m.x[0], m.x[1], m.x[2], m.y[0], m.y[1], m.n)])


def set_context(m, theta):
    for k, value in enumerate(theta):
        m.theta[k] = float(value)


def solve(m, solver="scip"):
    """Solve ``m`` with real SCIP and insist on a proven optimum."""
    results = pyo.SolverFactory(solver).solve(m)
    condition = results.solver.termination_condition
    assert condition == pyo.TerminationCondition.optimal, f"{solver}: {condition}"
    return results


def active_objective(m):
    """The single active objective of ``m`` (asserts there is exactly one)."""
    active = list(m.component_data_objects(pyo.Objective, active=True, descend_into=True))
    assert len(active) == 1, [o.name for o in active]
    return active[0]


def max_violation(m):
    """Largest constraint or bound violation at the current variable values."""
    worst = 0.0
    for con in m.component_data_objects(pyo.Constraint, active=True, descend_into=True):
        body = pyo.value(con.body)
        if con.lower is not None:
            worst = max(worst, pyo.value(con.lower) - body)
        if con.upper is not None:
            worst = max(worst, body - pyo.value(con.upper))
    for var in m.component_data_objects(pyo.Var, descend_into=True):
        if var.value is None:
            continue
        lb, ub = var.bounds
        if lb is not None:
            worst = max(worst, lb - var.value)
        if ub is not None:
            worst = max(worst, var.value - ub)
        if var.is_integer() or var.is_binary():
            worst = max(worst, abs(var.value - round(var.value)))
    return worst


def snapshot(m):
    """What a failing call must leave unchanged on the user's model."""
    return {
        "components": sorted(c.name for c in m.component_objects(descend_into=True)),
        "active_objectives": sorted(
            o.name for o in m.component_data_objects(pyo.Objective, active=True, descend_into=True)
        ),
        "params": {  # elements of an immutable indexed Param are plain numbers
            p.name: {k: pyo.value(v) for k, v in p.items()}
            for p in m.component_objects(pyo.Param, descend_into=False)
        },
        "vars": {v.name: v.value for v in m.component_data_objects(pyo.Var, descend_into=False)},
    }


class LatentUser:
    """The simulated user: a known convex quadratic of the decision (see above)."""

    def __init__(self, seed=123):
        rng = np.random.default_rng(seed)
        root = rng.normal(size=(6, 6))
        self.A = root @ root.T / 6 + 0.5 * np.eye(6)
        self.t0 = np.array([1.0, 2.5, 1.0, 1.0, 1.0, 1.0])
        self.T = np.array(
            [[1.0, -1.0], [0.0, 1.0], [1.0, 0.0], [0.0, 0.0], [0.0, 0.0], [0.5, -0.5]]
        )

    def target(self, theta):
        return self.t0 + self.T @ np.asarray(theta, dtype=float)

    def cost(self, u, theta):
        error = np.asarray(u, dtype=float) - self.target(theta)
        return 0.5 * error @ self.A @ error

    def score(self, candidate):
        """``ScoreOracle`` score: lower latent cost is preferred."""
        return self.cost(candidate.u, candidate.context)

    def oracle(self, flip=0.0, seed=0):
        return ScoreOracle(self.score, flip=flip, seed=seed)

    def optimum(self, theta, solver="scip_direct"):
        """Latent optimum over the toy model's feasible set, solved by SCIP."""
        m = build_toy_model()
        set_context(m, theta)
        m.cost.deactivate()
        u = [m.x[0], m.x[1], m.x[2], m.y[0], m.y[1], m.n]
        target = self.target(theta)
        m.latent = pyo.Objective(
            expr=0.5 * sum(
                float(self.A[i, j]) * (u[i] - float(target[i])) * (u[j] - float(target[j]))
                for i in range(6)
                for j in range(6)
            )
        )
        solve(m, solver)
        return decision_vector(m)

    def nominal(self, theta, solver="scip_direct"):
        """The nominal cost's optimum at ``theta``, solved by SCIP."""
        m = build_toy_model()
        set_context(m, theta)
        solve(m, solver)
        return decision_vector(m)


@pytest.fixture
def toy_model():
    """A fresh toy MIQP with a context Param, no component attached."""
    return build_toy_model()


@pytest.fixture
def plain_model():
    """A fresh toy MIQP without context (theta fixed at its default)."""
    return build_toy_model(context=False)


@pytest.fixture(scope="session")
def latent_user():
    return LatentUser()


@pytest.fixture(scope="session")
def train_contexts():
    """Twelve seeded training contexts in [0, 1]^2."""
    return np.random.default_rng(0).uniform(0.0, 1.0, size=(12, 2))


@pytest.fixture(scope="session")
def toy_candidates(train_contexts):
    """Candidates of the toy model: 12 contexts x 15 solves, seed 0."""
    m = build_toy_model()
    pref = add_component(m)
    return pref.sample(train_contexts, per_context=15, seed=0, **SAMPLE_OPTIONS)


@pytest.fixture(scope="session")
def toy_pairs(toy_candidates, latent_user):
    """400 clean pairs of the toy candidates, labelled by the latent user."""
    m = build_toy_model()
    pref = add_component(m)
    return pref.ask(toy_candidates, n_pairs=400, oracle=latent_user.oracle(), seed=0)


@pytest.fixture
def fitted_model(toy_pairs):
    """A fresh toy model whose component is fitted (quickly) to ``toy_pairs``."""
    m = build_toy_model()
    add_component(m)
    m.pref.fit(toy_pairs, seed=0, **FAST_FIT)
    return m


@pytest.fixture(scope="session")
def plain_candidates():
    """Candidates of the no-context toy model: 30 solves, seed 0."""
    m = build_toy_model(context=False)
    pref = add_component(m, context=False)
    return pref.sample(None, per_context=30, seed=0, **SAMPLE_OPTIONS)


@pytest.fixture(scope="session")
def plain_pairs(plain_candidates, latent_user):
    m = build_toy_model(context=False)
    pref = add_component(m, context=False)

    def score(candidate):
        return latent_user.cost(candidate.u, DEFAULT_CONTEXT)

    return pref.ask(plain_candidates, n_pairs=200, oracle=ScoreOracle(score), seed=0)


# ----------------------------------------------------------------------
# A tiny model for the active-selection and aggregation tests
# ----------------------------------------------------------------------
def build_tiny_model():
    """Three continuous decisions, no context; sampled and learned in seconds.

    ::

        x[0..2] in [0, 4],   x0 + x1 + x2 >= 3,   min x0 + 2 x1 + 3 x2
    """
    m = pyo.ConcreteModel()
    m.x = pyo.Var(range(3), bounds=(0, 4))
    m.demand = pyo.Constraint(expr=sum(m.x.values()) >= 3)
    m.cost = pyo.Objective(expr=m.x[0] + 2 * m.x[1] + 3 * m.x[2])
    return m


def add_tiny_component(m):
    m.pref = PreferenceObjective(decisions=[m.x], progress=False)
    return m.pref


class TinyUser:
    """Latent convex quadratic ``1/2 (u - t)' A (u - t)`` of the tiny model's decision."""

    def __init__(self, seed=5):
        root = np.random.default_rng(seed).normal(size=(3, 3))
        self.A = root @ root.T / 3 + 0.3 * np.eye(3)
        self.target = np.array([1.5, 1.0, 1.5])

    def score(self, candidate):
        error = np.asarray(candidate.u, dtype=float) - self.target
        return 0.5 * error @ self.A @ error

    def oracle(self, flip=0.0, seed=0):
        return ScoreOracle(self.score, flip=flip, seed=seed)

    def adversary(self):
        """Always answers against the user."""
        return ScoreOracle(lambda candidate: -self.score(candidate))


def all_clean_pairs(candidates, score):
    """Every same-context pair of ``candidates``, labelled by ``score`` (lower preferred)."""
    index = draw_pairs(candidates, np.iinfo(np.int64).max, np.random.default_rng(0), warn=False)
    cost = np.array([score(candidate) for candidate in candidates])
    a, b = index[:, 0], index[:, 1]
    keep = np.abs(cost[a] - cost[b]) > 1e-9
    a, b = a[keep], b[keep]
    first = cost[a] < cost[b]
    preferred, other = np.where(first, a, b), np.where(first, b, a)
    return Pairs(candidates.context[preferred], candidates.u[preferred], candidates.u[other],
                 None, candidates.names)


@pytest.fixture(scope="session")
def tiny_user():
    return TinyUser()


@pytest.fixture(scope="session")
def tiny_candidates():
    """About 70 distinct candidates of the tiny model (80 solves, seed 0)."""
    m = build_tiny_model()
    return add_tiny_component(m).sample(None, per_context=80, seed=0, **SAMPLE_OPTIONS)


@pytest.fixture(scope="session")
def tiny_split(tiny_candidates, tiny_user):
    """Half the candidates to ask about, and every clean pair of the other half."""
    index = np.arange(len(tiny_candidates))
    pool = tiny_candidates[index % 2 == 0]
    held_out = tiny_candidates[index % 2 == 1]
    return pool, all_clean_pairs(held_out, tiny_user.score)


@pytest.fixture
def url(tmp_path):
    """A fresh SQLite database URL for the preference store."""
    return f"sqlite:///{tmp_path / 'prefs.db'}"


@pytest.fixture
def store(url):
    """An open :class:`PreferenceStore` on ``url``."""
    from pyomo_prefobj.store import PreferenceStore

    with PreferenceStore(url) as opened:
        yield opened


def random_candidates(seed=0, n_groups=3, per_group=4, n_decisions=5, constant_column=None):
    """Seeded random candidates: ``n_groups`` contexts in [0, 1], named ``x[i]``.

    ``constant_column``: a decision set to 1.0 everywhere (never a difference).
    """
    from pyomo_prefobj import Candidates

    rng = np.random.default_rng(seed)
    n = n_groups * per_group
    u = rng.normal(size=(n, n_decisions))
    if constant_column is not None:
        u[:, constant_column] = 1.0
    return Candidates(
        u=u,
        context=np.repeat(np.linspace(0, 1, n_groups).reshape(-1, 1), per_group, axis=0),
        nominal_cost=rng.uniform(1, 2, n),
        group=np.repeat(np.arange(n_groups), per_group),
        names=[f"x[{i}]" for i in range(n_decisions)],
    )
