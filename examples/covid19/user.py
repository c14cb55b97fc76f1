"""Simulated user of the COVID-19 facility-allocation example.

The user judges a decision ``u = (x, y)`` (layout in
:mod:`examples.covid19.model`: 207 ``x[c, f]`` county-major, then 9 ``y[t]``)
by five features, each normalized to be about 1 at its largest:

====  ===========================================  ==============================
 k    feature                                      normalization
====  ===========================================  ==============================
 1    load on the first existing facility (id 1)   ``sum_c x[c, 1] / C_1``  (281)
 2    load on the last facility (id 23, temporary) ``sum_c x[c, 23] / C_23`` (100)
 3    total load on the temporary facilities       ``sum_{c,t} x[c, t] / sum_t C_t``
                                                   (900)
 4    largest single county-to-facility            ``max_{c,f} x[c, f] / max_c D_c``
      assignment                                   (529)
 5    overall demand served                        ``sum_{c,f} x[c, f] / sum_c D_c``
                                                   (3539)
====  ===========================================  ==============================

``C_f`` is a facility capacity and ``D_c`` a county demand. Features 1, 2, 3
and 5 are linear in ``u`` (:func:`linear_feature_weights`); feature 4 is a
maximum. Every feasible decision serves all demand, so feature 5 equals 1; the
largest capacity is 300, so feature 4 is at most ``300 / 529``.

The context ``x0`` in ``[0, 1]`` shifts the features, ``f' = f - 0.1 x0``, and
the user's dissatisfaction is the Rosenbrock function of the shifted features
(lower is better, 0 at ``f' = 1``):

.. math::

    R(u, x_0) = \\sum_{k=1}^{4} 100 (f'_{k+1} - f'^2_k)^2 + (1 - f'_k)^2 .

Preferences follow the composite cost (lower preferred)

.. math::

    \\phi(u, x_0) = R(u, x_0) + w_J \\, \\frac{J(u)}{J^*},

where ``J`` is the nominal cost, ``J* = NOMINAL_OPTIMUM`` (so ``J / J*`` is 1
at the nominal optimum and about 1 near it) and ``w_J`` is ``j_weight``
(default 1). Everything here is vectorized numpy; no Pyomo solve happens.
"""

import functools

import numpy as np

from examples.covid19.model import NOMINAL_OPTIMUM, load_instance

N_FEATURES = 5
"""Number of features the simulated user looks at."""

MAX_ASSIGNMENT_FEATURE = 3
"""Position (0-based) of the largest-assignment feature, the nonlinear one."""

CONTEXT_SHIFT = 0.1
"""Features are shifted by ``-CONTEXT_SHIFT * x0``."""


@functools.lru_cache(maxsize=1)
def _default_instance():
    return load_instance()


def _resolve(instance):
    return _default_instance() if instance is None else instance


def linear_feature_weights(instance=None):
    """Weights of the features that are linear in the decision vector.

    Args:
        instance: The data; defaults to the shipped instance.

    Returns:
        np.ndarray: ``W`` of shape ``(5, 216)`` with ``f_k = W[k] @ u`` for
        features 1, 2, 3 and 5 (rows 0, 1, 2, 4); row
        :data:`MAX_ASSIGNMENT_FEATURE` is zero (that feature is a maximum,
        see :func:`max_assignment_normalizer`).
    """
    instance = _resolve(instance)
    n_counties = len(instance.counties)
    n_facilities = len(instance.facilities)
    capacity = instance.capacity
    temporary_positions = instance.temporary_positions

    # Each feature is a weighted sum of the loads x[c, f]; y has weight 0.
    assignment_weights = np.zeros((N_FEATURES, n_counties, n_facilities))
    assignment_weights[0, :, 0] = 1.0 / capacity[0]
    assignment_weights[1, :, -1] = 1.0 / capacity[-1]
    assignment_weights[2, :, temporary_positions] = (
        1.0 / capacity[temporary_positions].sum()
    )
    assignment_weights[4] = 1.0 / instance.demand.sum()

    weights = np.zeros((N_FEATURES, instance.n_decisions))
    weights[:, : instance.n_assignments] = assignment_weights.reshape(N_FEATURES, -1)
    return weights


def max_assignment_normalizer(instance=None):
    """Divisor of the largest-assignment feature: the largest county demand.

    Args:
        instance: The data; defaults to the shipped instance.

    Returns:
        float: ``max_c D_c`` (529 for the shipped instance).
    """
    return float(_resolve(instance).demand.max())


def _as_decisions(U, instance):
    U = np.asarray(U, dtype=float)
    if U.ndim not in (1, 2) or U.shape[-1] != instance.n_decisions:
        raise ValueError(
            f"covid19 user: decisions must have shape ({instance.n_decisions},) "
            f"or (n, {instance.n_decisions}), got {U.shape}; lay them out as "
            "model.decision_vars orders them (x county-major, then y)."
        )
    return U


def features_many(U, instance=None):
    """Unshifted features of many decisions.

    Args:
        U: Decisions, shape ``(n, 216)`` (a single ``(216,)`` also works).
        instance: The data; defaults to the shipped instance.

    Returns:
        np.ndarray: Features ``F`` of shape ``(n, 5)`` (``(5,)`` for one
        decision), normalized as in the module docstring.
    """
    instance = _resolve(instance)
    U = _as_decisions(U, instance)
    features = U @ linear_feature_weights(instance).T
    largest_assignment = U[..., : instance.n_assignments].max(axis=-1)
    features[..., MAX_ASSIGNMENT_FEATURE] = largest_assignment / (
        max_assignment_normalizer(instance)
    )
    return features


def features(x, y, instance=None):
    """Unshifted features of one decision.

    Args:
        x: Assignments ``x[c, f]``, shape ``(9, 23)`` (counties by
            facilities, in instance order).
        y: Temporary-facility openings, shape ``(9,)``.
        instance: The data; defaults to the shipped instance.

    Returns:
        np.ndarray: Features ``f`` of shape ``(5,)``.
    """
    u = np.concatenate([np.ravel(np.asarray(x, dtype=float)), np.ravel(y)])
    return features_many(u, instance)


def split_decision(u, instance=None):
    """Split a decision vector into its assignments and openings.

    Args:
        u: Decision, shape ``(216,)``.
        instance: The data; defaults to the shipped instance.

    Returns:
        tuple: ``x`` of shape ``(9, 23)`` and ``y`` of shape ``(9,)``.
    """
    instance = _resolve(instance)
    u = _as_decisions(u, instance)
    x = u[: instance.n_assignments].reshape(
        len(instance.counties), len(instance.facilities)
    )
    return x, u[instance.n_assignments :]


def check_context(x0):
    """Validate a context: a scalar or array with values in ``[0, 1]``.

    Args:
        x0: Context, scalar or array.

    Returns:
        np.ndarray: ``x0`` as a float array (0-d for a scalar).

    Raises:
        ValueError: If a value lies outside ``[0, 1]`` or is ``nan``.
    """
    x0 = np.asarray(x0, dtype=float)
    if np.any((x0 < 0.0) | (x0 > 1.0)) or np.any(np.isnan(x0)):
        raise ValueError(
            f"covid19 user: context x0 must lie in [0, 1], got {x0}."
        )
    return x0


def context_shift(features_array, x0):
    """Shift features by the context: ``f' = f - 0.1 x0``.

    Args:
        features_array: Features, shape ``(..., 5)``.
        x0: Context in ``[0, 1]``: a scalar, or shape ``(n,)`` matching the
            leading axis of ``features_array``.

    Returns:
        np.ndarray: Shifted features, same shape as ``features_array``.
    """
    x0 = check_context(x0)
    return np.asarray(features_array, dtype=float) - CONTEXT_SHIFT * x0[..., None]


def rosenbrock(features_array):
    """Rosenbrock function along the last axis.

    ``R(f) = sum_{k=1..4} 100 (f_{k+1} - f_k^2)^2 + (1 - f_k)^2``; pass
    context-shifted features (:func:`context_shift`) to get the user's
    dissatisfaction.

    Args:
        features_array: Features, shape ``(..., 5)``.

    Returns:
        np.ndarray or float: ``R``, shape ``(...)``.
    """
    f = np.asarray(features_array, dtype=float)
    head, tail = f[..., :-1], f[..., 1:]
    return (100.0 * (tail - head**2) ** 2 + (1.0 - head) ** 2).sum(axis=-1)


def nominal_cost(u, instance=None):
    """Nominal cost ``J(u) = sum_{c,f} d_cf x_cf + sum_t K_t y_t``.

    Args:
        u: Decisions, shape ``(216,)`` or ``(n, 216)``.
        instance: The data; defaults to the shipped instance.

    Returns:
        np.ndarray or float: ``J``, shape ``()`` or ``(n,)``.
    """
    instance = _resolve(instance)
    u = _as_decisions(u, instance)
    cost_vector = np.concatenate(
        [instance.assignment_cost.ravel(), instance.fixed_cost]
    )
    return u @ cost_vector


def acceptability_cost(u, x0, instance=None):
    """The user's dissatisfaction ``R(u, x0)``, Rosenbrock of shifted features.

    Args:
        u: Decisions, shape ``(216,)`` or ``(n, 216)``.
        x0: Context in ``[0, 1]``, scalar or shape ``(n,)``.
        instance: The data; defaults to the shipped instance.

    Returns:
        np.ndarray or float: ``R``, shape ``()`` or ``(n,)``.
    """
    return rosenbrock(context_shift(features_many(u, instance), x0))


def composite(u, x0, instance=None, j_weight=1.0):
    """Composite cost ``phi = R(u, x0) + j_weight * J(u) / NOMINAL_OPTIMUM``.

    Args:
        u: Decisions, shape ``(216,)`` or ``(n, 216)``.
        x0: Context in ``[0, 1]``, scalar or shape ``(n,)``.
        instance: The data; defaults to the shipped instance.
        j_weight: Weight ``w_J`` of the normalized nominal cost.

    Returns:
        np.ndarray or float: ``phi``, shape ``()`` or ``(n,)``; lower is
        preferred.
    """
    return acceptability_cost(u, x0, instance) + j_weight * (
        nominal_cost(u, instance) / NOMINAL_OPTIMUM
    )


class SimulatedUser:
    """A simulated decision maker who prefers the lower composite cost.

    ``phi(u, x0) = R(u, x0) + j_weight * J(u) / NOMINAL_OPTIMUM`` (see the
    module docstring for ``R`` and the feature normalization).

    Args:
        instance: The data; defaults to the shipped instance.
        j_weight: Weight ``w_J`` of the normalized nominal cost (default 1).
    """

    def __init__(self, instance=None, j_weight=1.0):
        self.instance = _resolve(instance)
        self.j_weight = float(j_weight)

    def terms(self, u, x0):
        """The two parts of the composite cost.

        Args:
            u: Decisions, shape ``(216,)`` or ``(n, 216)``.
            x0: Context in ``[0, 1]``, scalar or shape ``(n,)``.

        Returns:
            tuple: ``(R, J)``, each a float (one decision) or shape ``(n,)``;
            ``J`` is the raw nominal cost in $, not normalized.
        """
        R = acceptability_cost(u, x0, self.instance)
        J = nominal_cost(u, self.instance)
        if np.ndim(R) == 0:
            return float(R), float(J)
        return R, J

    def score(self, u, x0):
        """Composite cost ``phi`` of one decision.

        Args:
            u: Decision, shape ``(216,)``.
            x0: Context, a scalar in ``[0, 1]``.

        Returns:
            float: ``phi(u, x0)``; lower is preferred.
        """
        u = np.asarray(u, dtype=float)
        if u.ndim != 1:
            raise ValueError(
                f"SimulatedUser.score: expected one decision of shape "
                f"({self.instance.n_decisions},), got {u.shape}; use score_many."
            )
        return float(self.score_many(u[None, :], x0)[0])

    def score_many(self, U, x0):
        """Composite cost ``phi`` of many decisions.

        Args:
            U: Decisions, shape ``(n, 216)``.
            x0: Context in ``[0, 1]``, scalar or shape ``(n,)``.

        Returns:
            np.ndarray: ``phi`` of shape ``(n,)``.
        """
        R, J = self.terms(U, x0)
        return R + self.j_weight * J / NOMINAL_OPTIMUM
