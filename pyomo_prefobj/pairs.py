"""Preference pairs: the training data of a learned objective.

A pair ``(x0, uA, uB)`` says that at context ``x0`` the decision ``uA`` was
preferred to ``uB``. Pairs are stored preferred-first, as three stacked
arrays, and saved as a plain ``.npz`` file (no pickled objects).
"""

from dataclasses import dataclass

import numpy as np

from .errors import FileFormatError, PairsError
from .npzfile import load_arrays, save_arrays

PAIRS_FORMAT = "pyomo_prefobj.pairs"
PAIRS_VERSION = 1


@dataclass(frozen=True)
class Pairs:
    """Preference pairs, the preferred decision first.

    Attributes:
        context: context of each pair, shape ``(n, k)`` (``k`` may be 0).
        preferred: the preferred decision ``uA``, shape ``(n, d)``.
        other: the other decision ``uB``, shape ``(n, d)``.
        rater: who answered each pair, shape ``(n,)`` of str ("" when unknown).
        names: decision names, length ``d`` (empty when unknown).
        preferred_cost, other_cost: the nominal objective's value at each
            decision, shape ``(n,)`` (``nan`` when unknown); needed by
            ``fit(..., nominal_weight=True)``.
        context_names: names of the context values, length ``k`` (empty
            when unknown).
    """

    context: np.ndarray
    preferred: np.ndarray
    other: np.ndarray
    rater: np.ndarray = None
    names: tuple = ()
    preferred_cost: np.ndarray = None
    other_cost: np.ndarray = None
    context_names: tuple = ()

    def __post_init__(self):
        preferred = np.asarray(self.preferred, dtype=float)
        other = np.asarray(self.other, dtype=float)
        if preferred.ndim != 2 or other.ndim != 2:
            raise PairsError(
                "Pairs.preferred and Pairs.other must have shape (n, d); got "
                f"{preferred.shape} and {other.shape}"
            )
        if preferred.shape != other.shape:
            raise PairsError(
                "Pairs.preferred and Pairs.other differ in shape: "
                f"{preferred.shape} vs {other.shape}; every pair needs two "
                "decisions of the same length"
            )
        n = len(preferred)
        context = np.asarray(self.context, dtype=float)
        if context.ndim == 1 and context.size == n:
            context = context.reshape(n, 1)
        if context.size == 0 and not (context.ndim == 2 and len(context) == n):
            context = np.zeros((n, 0))  # no context (an empty (n, k) keeps its k)
        if context.ndim != 2 or len(context) != n:
            raise PairsError(
                f"Pairs.context must have shape ({n}, k); got {context.shape}"
            )
        for label, array in (("context", context), ("preferred", preferred), ("other", other)):
            if not np.all(np.isfinite(array)):
                bad = np.argwhere(~np.isfinite(array))[0]
                raise PairsError(
                    f"Pairs.{label} holds a non-finite value (NaN or inf) at "
                    f"row {bad[0]}; remove or repair that pair"
                )
        rater = self.rater
        rater = np.full(n, "", dtype=object) if rater is None else np.asarray(rater, dtype=str).astype(object)
        if rater.shape != (n,):
            raise PairsError(f"Pairs.rater must have shape ({n},); got {rater.shape}")
        names = tuple(self.names)
        if names and len(names) != preferred.shape[1]:
            raise PairsError(
                f"Pairs have {preferred.shape[1]} decision columns but {len(names)} names"
            )
        context_names = tuple(self.context_names)
        if context_names and len(context_names) != context.shape[1]:
            raise PairsError(
                f"Pairs have {context.shape[1]} context columns but "
                f"{len(context_names)} context names"
            )
        costs = []
        for label in ("preferred_cost", "other_cost"):
            cost = getattr(self, label)
            cost = np.full(n, np.nan) if cost is None else np.asarray(cost, dtype=float).reshape(-1)
            if cost.shape != (n,):
                raise PairsError(f"Pairs.{label} must have shape ({n},); got {cost.shape}")
            if np.any(np.isinf(cost)):
                raise PairsError(f"Pairs.{label} holds an infinite value; use nan for unknown")
            costs.append(cost)
        object.__setattr__(self, "context", context)
        object.__setattr__(self, "preferred", preferred)
        object.__setattr__(self, "other", other)
        object.__setattr__(self, "rater", rater)
        object.__setattr__(self, "preferred_cost", costs[0])
        object.__setattr__(self, "other_cost", costs[1])
        object.__setattr__(self, "names", names)
        object.__setattr__(self, "context_names", context_names)

    def __len__(self):
        return len(self.preferred)

    @property
    def n_decisions(self):
        """int: length ``d`` of each decision."""
        return self.preferred.shape[1]

    @property
    def n_context(self):
        """int: length ``k`` of each context."""
        return self.context.shape[1]

    @property
    def has_costs(self):
        """bool: every pair knows the nominal cost of both its decisions."""
        return bool(np.all(np.isfinite(self.preferred_cost)) and np.all(np.isfinite(self.other_cost)))

    @classmethod
    def from_candidates(cls, candidates, preferred, other, rater=""):
        """Pairs of rows of a :class:`~pyomo_prefobj.candidates.Candidates` set.

        Args:
            candidates: the Candidates the rows index.
            preferred, other: integer arrays ``(n,)`` of candidate rows, the
                preferred one first.
            rater: one name for all pairs, or an array ``(n,)``.
        """
        preferred, other = np.asarray(preferred, dtype=int), np.asarray(other, dtype=int)
        rater = np.broadcast_to(np.asarray(rater, dtype=str), preferred.shape)
        return cls(
            context=candidates.context[preferred],
            preferred=candidates.u[preferred],
            other=candidates.u[other],
            rater=rater,
            names=candidates.names,
            preferred_cost=candidates.nominal_cost[preferred],
            other_cost=candidates.nominal_cost[other],
            context_names=candidates.context_names,
        )

    def __getitem__(self, index):
        """``pairs[10:20]``, ``pairs[mask]``, ``pairs[[0, 3]]``: :meth:`subset`;
        ``pairs[i]``: pair ``i`` as a set of one."""
        if isinstance(index, (int, np.integer)) and not isinstance(index, bool):
            index = [index]
        return self.subset(index)

    def subset(self, index):
        """Return the pairs at ``index`` (an index array or boolean mask)."""
        return Pairs(
            self.context[index], self.preferred[index], self.other[index],
            self.rater[index], self.names, self.preferred_cost[index], self.other_cost[index],
            self.context_names,
        )

    @classmethod
    def concatenate(cls, parts):
        """Stack several pair sets of the same decisions into one.

        Names (decision and context) known in one set and not in another are
        kept; names that differ between sets are refused.
        """
        parts = list(parts)
        if not parts:
            raise PairsError("Pairs.concatenate needs at least one set")
        names = _common_names([p.names for p in parts], "decision")
        context_names = _common_names([p.context_names for p in parts], "context")
        return cls(
            np.vstack([p.context for p in parts]),
            np.vstack([p.preferred for p in parts]),
            np.vstack([p.other for p in parts]),
            np.concatenate([p.rater for p in parts]),
            names,
            np.concatenate([p.preferred_cost for p in parts]),
            np.concatenate([p.other_cost for p in parts]),
            context_names,
        )

    def save(self, path):
        """Write the pairs to ``path`` as an ``.npz`` file (no pickle)."""
        save_arrays(
            path, PAIRS_FORMAT, PAIRS_VERSION,
            context=self.context,
            preferred=self.preferred,
            other=self.other,
            rater=self.rater.astype(str),
            names=np.array(self.names, dtype=str),
            preferred_cost=self.preferred_cost,
            other_cost=self.other_cost,
            context_names=np.array(self.context_names, dtype=str),
        )

    @classmethod
    def load(cls, path):
        """Read pairs written by :meth:`save`.

        Raises:
            FileFormatError: the file is not a pairs file of a known version.
        """
        data = load_arrays(path, PAIRS_FORMAT, PAIRS_VERSION, "pairs")
        try:
            return cls(
                data["context"], data["preferred"], data["other"],
                data["rater"], tuple(data["names"].tolist()),
                # Files written before the costs were stored have none.
                data.get("preferred_cost"), data.get("other_cost"),
                tuple(data.get("context_names", np.array([], dtype=str)).tolist()),
            )
        except (KeyError, ValueError) as exc:
            raise FileFormatError(f"cannot read pairs from {path}: {exc}") from exc


def _common_names(name_lists, what):
    """The one non-empty name tuple of ``name_lists`` (``()`` if none)."""
    known = {tuple(names) for names in name_lists if names}
    if len(known) > 1:
        raise PairsError(f"cannot concatenate pairs of different {what} names")
    return known.pop() if known else ()
