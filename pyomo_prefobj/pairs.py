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
    """

    context: np.ndarray
    preferred: np.ndarray
    other: np.ndarray
    rater: np.ndarray = None
    names: tuple = ()

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
        if context.size == 0:
            context = np.zeros((n, 0))
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
        object.__setattr__(self, "context", context)
        object.__setattr__(self, "preferred", preferred)
        object.__setattr__(self, "other", other)
        object.__setattr__(self, "rater", rater)
        object.__setattr__(self, "names", names)

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

    def subset(self, index):
        """Return the pairs at ``index`` (an index array or boolean mask)."""
        return Pairs(
            self.context[index], self.preferred[index], self.other[index],
            self.rater[index], self.names,
        )

    @classmethod
    def concatenate(cls, parts):
        """Stack several pair sets of the same decisions into one."""
        parts = list(parts)
        if not parts:
            raise PairsError("Pairs.concatenate needs at least one set")
        return cls(
            np.vstack([p.context for p in parts]),
            np.vstack([p.preferred for p in parts]),
            np.vstack([p.other for p in parts]),
            np.concatenate([p.rater for p in parts]),
            parts[0].names,
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
            )
        except (KeyError, ValueError) as exc:
            raise FileFormatError(f"cannot read pairs from {path}: {exc}") from exc
