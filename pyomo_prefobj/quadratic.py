"""Convex quadratic costs and their reconstruction from PCA coordinates.

The learner works in compressed coordinates ``z = P (u - mu)``, where the
rows of ``P`` (shape ``(r, d)``) are the top ``r`` PCA directions of the
sampled decisions, each divided by its standard deviation so ``z`` has unit
variance. A cost there,

    f(z) = 1/2 z' Hz z + qz' z,   Hz = S S',

equals, for every ``u``, the cost in the original decision space

    f(u) = 1/2 u' Hu u + qu' u + c,
    Hu = P' Hz P,   qu = P' qz - Hu mu,   c = 1/2 mu' Hu mu - qz' P mu.

(Written with ``W = P'``: ``Hu = W Hz W'``, ``qu = W qz - Hu mu``.)
"""

from dataclasses import dataclass

import numpy as np

from .errors import DecisionError


@dataclass(frozen=True)
class QuadraticCost:
    """A quadratic cost ``f(u) = 1/2 u' H u + q' u + constant``.

    Attributes:
        hessian: ``H``, shape ``(d, d)``, symmetric positive semidefinite.
        linear: ``q``, shape ``(d,)``.
        constant: the constant term (does not move the minimizer).
    """

    hessian: np.ndarray
    linear: np.ndarray
    constant: float = 0.0

    @property
    def H(self):
        """np.ndarray: alias of :attr:`hessian`."""
        return self.hessian

    @property
    def q(self):
        """np.ndarray: alias of :attr:`linear`."""
        return self.linear

    def value(self, u):
        """Evaluate the cost at ``u`` of shape ``(d,)`` or ``(n, d)``."""
        u = np.asarray(u, dtype=float)
        d = len(self.linear)
        if u.ndim not in (1, 2) or u.shape[-1] != d:
            raise DecisionError(
                f"QuadraticCost.value needs decisions of shape ({d},) or (n, {d}); "
                f"got shape {u.shape}"
            )
        quad = 0.5 * np.einsum("...i,ij,...j->...", u, self.hessian, u)
        return quad + u @ self.linear + self.constant

    @classmethod
    def from_compressed(cls, factor, linear, projection, mean):
        """Map a cost in PCA coordinates back to the decision space exactly.

        Args:
            factor: ``S``, shape ``(r, r)``; ``Hz = S S'``.
            linear: ``qz``, shape ``(r,)``.
            projection: ``P``, shape ``(r, d)``; ``z = P (u - mu)``.
            mean: ``mu``, shape ``(d,)``.
        """
        reduced = factor.T @ projection  # S' P, shape (r, d)
        hessian = reduced.T @ reduced  # P' S S' P
        hessian = 0.5 * (hessian + hessian.T)
        qu = projection.T @ linear - hessian @ mean
        constant = 0.5 * mean @ hessian @ mean - linear @ (projection @ mean)
        return cls(hessian, qu, float(constant))
