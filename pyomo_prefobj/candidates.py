"""Feasible candidate decisions, as sampled by :meth:`PreferenceObjective.sample`.

A candidate is one feasible decision ``u`` of a model at one context ``x0``.
Decisions are numpy vectors in the order of the component's decision
variables (``decision_names``): each entry of ``decisions`` in the order
given, an indexed Var in its index order.
"""

from dataclasses import dataclass, field

import numpy as np

from .errors import FileFormatError, PairsError
from .npzfile import load_arrays, save_arrays

CANDIDATES_FORMAT = "pyomo_prefobj.candidates"
CANDIDATES_VERSION = 1


@dataclass(frozen=True)
class Candidate:
    """One feasible decision at one context.

    Attributes:
        u: decision values, shape ``(d,)``.
        context: context values, shape ``(k,)`` (``k`` may be 0).
        nominal_cost: value of the model's nominal objective at ``u``.
        names: decision names, length ``d``, in the order of ``u``.
        group: index of the context this candidate was sampled at.
    """

    u: np.ndarray
    context: np.ndarray
    nominal_cost: float
    names: tuple = field(repr=False)
    group: int = 0

    @property
    def values(self):
        """dict: decision name -> value."""
        return dict(zip(self.names, self.u.tolist()))


@dataclass(frozen=True)
class Candidates:
    """A set of feasible decisions, stacked.

    Attributes:
        u: decisions, shape ``(n, d)``.
        context: the context of each decision, shape ``(n, k)``.
        nominal_cost: nominal objective of each decision, shape ``(n,)``.
        group: index of each decision's context in the sampled contexts,
            shape ``(n,)``; candidates of one group share a context.
        names: decision names, length ``d``.
        context_names: names of the context values, length ``k`` (empty
            when unknown, as in files written before they were stored).
    """

    u: np.ndarray
    context: np.ndarray
    nominal_cost: np.ndarray
    group: np.ndarray
    names: tuple
    context_names: tuple = ()

    def __post_init__(self):
        n = len(self.u)
        u = np.asarray(self.u, dtype=float)
        if u.ndim != 2:
            raise PairsError(f"Candidates.u must have shape (n, d); got {u.shape}")
        context = np.asarray(self.context, dtype=float)
        if not (context.ndim == 2 and len(context) == n):  # (0, k) stays (0, k)
            context = context.reshape(n, -1)
        object.__setattr__(self, "u", u)
        object.__setattr__(self, "context", context)
        object.__setattr__(
            self, "nominal_cost", np.asarray(self.nominal_cost, dtype=float).reshape(n)
        )
        object.__setattr__(self, "group", np.asarray(self.group, dtype=int).reshape(n))
        object.__setattr__(self, "names", tuple(self.names))
        object.__setattr__(self, "context_names", tuple(self.context_names))
        if len(self.names) != u.shape[1]:
            raise PairsError(
                f"Candidates have {u.shape[1]} decision columns but "
                f"{len(self.names)} names"
            )
        if self.context_names and len(self.context_names) != context.shape[1]:
            raise PairsError(
                f"Candidates have {context.shape[1]} context columns but "
                f"{len(self.context_names)} context names"
            )

    def __len__(self):
        return len(self.u)

    def __getitem__(self, index):
        """``candidates[i]``: one :class:`Candidate`; ``candidates[10:20]``,
        ``candidates[mask]``, ``candidates[[0, 3]]``: :meth:`subset`."""
        if not isinstance(index, (int, np.integer)) or isinstance(index, bool):
            return self.subset(index)
        return Candidate(
            u=self.u[index],
            context=self.context[index],
            nominal_cost=float(self.nominal_cost[index]),
            names=self.names,
            group=int(self.group[index]),
        )

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def subset(self, index):
        """Return the candidates at ``index`` (a slice, index array or boolean
        mask), with their context groups."""
        return Candidates(
            self.u[index], self.context[index], self.nominal_cost[index], self.group[index],
            self.names, self.context_names,
        )

    def groups(self):
        """Return the candidate indices of each context, as a list of arrays."""
        return [np.flatnonzero(self.group == g) for g in np.unique(self.group)]

    @classmethod
    def concatenate(cls, parts):
        """Stack several candidate sets of the same decisions into one.

        Groups are renumbered so candidates of different sets never share one.
        """
        parts = list(parts)
        if not parts:
            raise PairsError("Candidates.concatenate needs at least one set")
        offset, groups = 0, []
        for part in parts:
            if part.names != parts[0].names:
                raise PairsError("cannot concatenate candidates of different decisions")
            if part.context_names != parts[0].context_names:
                raise PairsError("cannot concatenate candidates of different context names")
            groups.append(part.group + offset)
            offset += int(part.group.max()) + 1 if len(part) else 0
        return cls(
            u=np.vstack([p.u for p in parts]),
            context=np.vstack([p.context for p in parts]),
            nominal_cost=np.concatenate([p.nominal_cost for p in parts]),
            group=np.concatenate(groups),
            names=parts[0].names,
            context_names=parts[0].context_names,
        )

    def save(self, path):
        """Write the candidates to ``path`` as an ``.npz`` file (no pickle)."""
        save_arrays(
            path, CANDIDATES_FORMAT, CANDIDATES_VERSION,
            u=self.u,
            context=self.context,
            nominal_cost=self.nominal_cost,
            group=self.group,
            names=np.array(self.names, dtype=str),
            context_names=np.array(self.context_names, dtype=str),
        )

    @classmethod
    def load(cls, path):
        """Read candidates written by :meth:`save`.

        Raises:
            FileFormatError: the file is not a candidates file of a known version.
        """
        data = load_arrays(path, CANDIDATES_FORMAT, CANDIDATES_VERSION, "candidates")
        try:
            return cls(
                u=data["u"],
                context=data["context"],
                nominal_cost=data["nominal_cost"],
                group=data["group"],
                names=tuple(data["names"].tolist()),
                # Files written before the context names were stored have none.
                context_names=tuple(data.get("context_names", np.array([], dtype=str)).tolist()),
            )
        except (KeyError, ValueError) as exc:
            raise FileFormatError(f"cannot read candidates from {path}: {exc}") from exc
