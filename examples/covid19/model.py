"""COVID-19 healthcare facility allocation: instance data and Pyomo model.

The instance (9 counties, 14 existing and 9 temporary facilities) comes from
the Gurobi modeling-examples notebook (see ``data/README.md``). The nominal
model is the mixed-integer linear program

.. math::

    \\min_{x, y} \\; J(x, y) = \\sum_{c, f} d_{cf} x_{cf}
                               + \\sum_{t} K_t y_t

    \\text{s.t.} \\quad \\sum_f x_{cf} = D_c \\quad \\forall c
        \\qquad \\text{(demand met exactly)}

    \\sum_c x_{cf} \\le C_f \\quad \\forall f \\text{ existing}

    \\sum_c x_{ct} \\le C_t y_t \\quad \\forall t \\text{ temporary}

    x_{cf} \\ge 0, \\quad y_t \\in \\{0, 1\\}

where ``x[c, f]`` is the number of patients of county ``c`` treated at
facility ``f``, ``y[t]`` opens temporary facility ``t``, ``D_c`` is the county
demand, ``C_f`` the facility capacity, ``K_t`` the fixed cost of building a
temporary facility and ``d_cf = 5 * ||p_c - p_f||_2`` the per-patient
assignment cost (5 $ per coordinate unit of 10 miles, no rounding).

Unlike the notebook, the temporary capacity is hard (no extra-capacity
variable ``z``): the base-scenario demand (3539) fits in the total capacity
(3280 + 900). The nominal optimum is ``NOMINAL_OPTIMUM = 1521653.4243``
(temporaries 15, 17 and 18 opened).

Decision vectors: everywhere in this example a decision is a flat numpy array
``u`` of shape ``(216,)`` laid out as :func:`decision_vars` orders the
variables: the 207 ``x[c, f]`` in index order (county-major, then facility),
followed by the 9 ``y[t]`` in temporary-facility order. Many decisions stack
into ``U`` of shape ``(n, 216)``.
"""

import csv
import dataclasses
import os

import numpy as np
import pyomo.environ as pyo

DATA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
"""Folder holding ``counties.csv`` and ``facilities.csv``."""

NOMINAL_OPTIMUM = 1521653.4243
"""Optimal value of the nominal cost ``J`` (rounded to 4 decimals)."""

COST_PER_DISTANCE = 5.0
"""Assignment cost in $ per patient and per coordinate unit (10 miles)."""


@dataclasses.dataclass(frozen=True, eq=False)
class Instance:
    """Data of one facility-allocation instance (all arrays read-only).

    Attributes:
        counties: County ids, length ``n_counties`` (9).
        facilities: Facility ids, length ``n_facilities`` (23), existing
            first, in file order.
        temporary: Ids of the temporary facilities, length
            ``n_temporary`` (9), a sub-sequence of ``facilities``.
        demand: Patients per county, shape ``(n_counties,)``.
        capacity: Patients each facility can treat, shape
            ``(n_facilities,)``.
        fixed_cost: Cost ``K_t`` of building each temporary facility, shape
            ``(n_temporary,)``, aligned with ``temporary``.
        assignment_cost: Per-patient cost ``d_cf = 5 * ||p_c - p_f||_2``,
            shape ``(n_counties, n_facilities)``.
        county_coordinates: County centroids, shape ``(n_counties, 2)``.
        facility_coordinates: Facility locations, shape
            ``(n_facilities, 2)``.
    """

    counties: tuple
    facilities: tuple
    temporary: tuple
    demand: np.ndarray
    capacity: np.ndarray
    fixed_cost: np.ndarray
    assignment_cost: np.ndarray
    county_coordinates: np.ndarray
    facility_coordinates: np.ndarray

    @property
    def existing(self):
        """tuple: Ids of the existing (non-temporary) facilities."""
        temporary = set(self.temporary)
        return tuple(f for f in self.facilities if f not in temporary)

    @property
    def n_assignments(self):
        """int: Number of ``x`` variables, ``n_counties * n_facilities``."""
        return len(self.counties) * len(self.facilities)

    @property
    def n_decisions(self):
        """int: Length of a decision vector, ``n_assignments + n_temporary``."""
        return self.n_assignments + len(self.temporary)

    @property
    def temporary_positions(self):
        """np.ndarray: Positions of the temporary facilities in
        ``facilities``, shape ``(n_temporary,)``."""
        return np.array([self.facilities.index(t) for t in self.temporary])


def _read_rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def _read_only(array):
    array = np.array(array, dtype=float)
    array.setflags(write=False)
    return array


def load_instance(data_dir=None):
    """Read the instance from ``counties.csv`` and ``facilities.csv``.

    Args:
        data_dir: Folder with the two CSV files; defaults to
            :data:`DATA_DIR` (``examples/covid19/data``).

    Returns:
        Instance: The instance, with ``d_cf = 5 * ||p_c - p_f||_2``.
    """
    data_dir = DATA_DIR if data_dir is None else data_dir
    county_rows = _read_rows(os.path.join(data_dir, "counties.csv"))
    facility_rows = _read_rows(os.path.join(data_dir, "facilities.csv"))

    county_coordinates = _read_only(
        [[float(row["x"]), float(row["y"])] for row in county_rows]
    )
    facility_coordinates = _read_only(
        [[float(row["x"]), float(row["y"])] for row in facility_rows]
    )
    # Euclidean distance between every county centroid and every facility.
    differences = county_coordinates[:, None, :] - facility_coordinates[None, :, :]
    distance = np.sqrt((differences**2).sum(axis=2))

    temporary_rows = [row for row in facility_rows if row["kind"] == "temporary"]
    return Instance(
        counties=tuple(int(row["county_id"]) for row in county_rows),
        facilities=tuple(int(row["facility_id"]) for row in facility_rows),
        temporary=tuple(int(row["facility_id"]) for row in temporary_rows),
        demand=_read_only([float(row["demand"]) for row in county_rows]),
        capacity=_read_only([float(row["capacity"]) for row in facility_rows]),
        fixed_cost=_read_only([float(row["fixed_cost"]) for row in temporary_rows]),
        assignment_cost=_read_only(COST_PER_DISTANCE * distance),
        county_coordinates=county_coordinates,
        facility_coordinates=facility_coordinates,
    )


def build_model(instance=None):
    """Build the nominal facility-allocation MILP (see the module docstring).

    Components:
        ``x[c, f] >= 0``: patients of county ``c`` treated at facility ``f``
        (207 continuous variables).
        ``y[t]``: binary, 1 when temporary facility ``t`` is built (9).
        ``x0``: mutable Param, the context in ``[0, 1]`` (initialized to 0.0);
        it does not enter the constraints, only a learned objective.
        ``demand[c]``, ``existing_capacity[f]``, ``temporary_capacity[t]``:
        the constraints.
        ``cost``: the active nominal Objective ``J``.

    Args:
        instance: The data; defaults to :func:`load_instance` ``()``.

    Returns:
        pyo.ConcreteModel: The model, with ``m.instance`` holding the data.
    """
    instance = load_instance() if instance is None else instance
    county_position = {c: i for i, c in enumerate(instance.counties)}
    facility_position = {f: j for j, f in enumerate(instance.facilities)}
    temporary_position = {t: k for k, t in enumerate(instance.temporary)}

    m = pyo.ConcreteModel(name="covid19_facility_allocation")
    m.instance = instance
    m.counties = pyo.Set(initialize=instance.counties, ordered=True)
    m.facilities = pyo.Set(initialize=instance.facilities, ordered=True)
    m.existing = pyo.Set(initialize=instance.existing, ordered=True)
    m.temporary = pyo.Set(initialize=instance.temporary, ordered=True)

    m.x = pyo.Var(m.counties, m.facilities, domain=pyo.NonNegativeReals)
    m.y = pyo.Var(m.temporary, domain=pyo.Binary)
    m.x0 = pyo.Param(initialize=0.0, mutable=True, within=pyo.UnitInterval)

    def capacity(f):
        return float(instance.capacity[facility_position[f]])

    @m.Constraint(m.counties)
    def demand(m, c):
        return sum(m.x[c, f] for f in m.facilities) == float(
            instance.demand[county_position[c]]
        )

    @m.Constraint(m.existing)
    def existing_capacity(m, f):
        return sum(m.x[c, f] for c in m.counties) <= capacity(f)

    @m.Constraint(m.temporary)
    def temporary_capacity(m, t):
        return sum(m.x[c, t] for c in m.counties) <= capacity(t) * m.y[t]

    m.cost = pyo.Objective(
        expr=sum(
            float(instance.assignment_cost[county_position[c], facility_position[f]])
            * m.x[c, f]
            for c in m.counties
            for f in m.facilities
        )
        + sum(
            float(instance.fixed_cost[temporary_position[t]]) * m.y[t]
            for t in m.temporary
        ),
        sense=pyo.minimize,
    )
    return m


def decision_vars(m):
    """The decision variables of ``m``, in the order of decision vectors.

    Args:
        m: A model from :func:`build_model`.

    Returns:
        list: ``[m.x, m.y]``; iterating each in index order gives the layout
        of a decision vector ``u`` (207 ``x`` values, then 9 ``y`` values).
    """
    return [m.x, m.y]


def decision_vector(m):
    """Read the current values of ``m``'s decision variables.

    Args:
        m: A model from :func:`build_model`, typically after a solve.

    Returns:
        np.ndarray: ``u`` of shape ``(216,)``; unset variables give ``nan``.
    """
    values = [
        var.value if var.value is not None else np.nan
        for component in decision_vars(m)
        for var in component.values()
    ]
    return np.array(values, dtype=float)
