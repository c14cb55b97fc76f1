"""Learning a context-conditioned convex quadratic from preference pairs.

A Siamese scheme: one network scores both decisions of a pair with the same
cost, and a ranking loss asks the preferred one to cost less by a margin.

The cost lives in PCA coordinates ``z = P (u - mu)`` (see
:mod:`pyomo_prefobj.quadratic`). An MLP of the context ``x0`` outputs a
factor ``S(x0)`` (``r x r``) and a linear term ``q(x0)`` (``r``):

    f(z, x0) = 1/2 z' S(x0) S(x0)' z + q(x0)' z,

convex in ``z`` for every ``x0`` since ``H = S S'`` is positive semidefinite.
With ``nominal_weight=True`` the network has one more output, ``a(x0)``, and
the cost gains a learned share of the model's own (nominal) objective:

    f(z, x0) + softplus(a(x0)) * (J(u) - J_mean) / J_scale,

``J_mean``, ``J_scale`` the mean and standard deviation of ``J`` over the
fitted decisions. ``J`` is known exactly, so the network need not learn
what a decision costs from the answers, only how much that cost counts;
the weight is non-negative (all else equal, a cheaper decision is never
worse), and the term keeps the cost convex wherever ``J`` is.
With ``n_networks = K > 1`` (:class:`QuadraticEnsemble`), ``K`` networks
are trained side by side, each on its own ranking loss, and the learned cost
is their mean: again a convex quadratic.
Losses, for a pair with costs ``fA`` (preferred) and ``fB``:

* ``"hinge"`` (the paper's): ``max(0, fA - fB + margin)``, the differentiable
  form of a Rank-SVM with slacks;
* ``"logistic"`` (Bradley-Terry): ``log(1 + exp((fA - fB) / margin))``, which
  keeps pulling on every pair and is less driven by mislabelled ones;
* ``"flip"``: a Bradley-Terry model of answers that each rater inverts with
  an unknown probability ``eps_r``, learned jointly with the cost:
  ``-log((1 - eps_r) p + eps_r (1 - p))``, ``p = sigmoid((fB - fA) / margin)``.
  Pairs without rater names share one ``eps``. A rater answering at random
  ends near ``eps = 0.5`` (no weight); one who answers against the others
  ends above 0.5 (answers used inverted). ``flip_rates_`` holds the
  estimates.

Training: Adam, L2 penalty on weights and biases, a validation split,
learning-rate reduction on plateau, early stopping that restores the best
weights. torch is imported by this module only.
"""

import copy
import logging
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from .errors import LearningError, NotFittedError, warn_user
from .pairs import Pairs
from .progress import progress_bar
from .quadratic import QuadraticCost

logger = logging.getLogger(__name__)

LOSSES = ("hinge", "logistic", "flip")


class QuadraticNetwork(nn.Module):
    """MLP ``x0 -> (S, q)`` of a convex quadratic in ``r`` coordinates.

    Args:
        n_inputs: context length ``k`` (a network of no context gets one
            constant input).
        n_components: ``r``.
        hidden_layers: widths of the hidden ReLU layers.
        curvature_floor: ``eps`` of :func:`_with_floor` (0: ``S`` as the
            last layer gives it).
    """

    def __init__(self, n_inputs, n_components, hidden_layers=(20, 20, 20), nominal_weight=False,
                 curvature_floor=0.0):
        super().__init__()
        self.n_inputs = max(int(n_inputs), 1)
        self.n_components = int(n_components)
        self.nominal_weight = bool(nominal_weight)
        self.curvature_floor = float(curvature_floor)
        layers, width = [], self.n_inputs
        for size in hidden_layers:
            layers += [nn.Linear(width, int(size)), nn.ReLU()]
            width = int(size)
        outputs = self.n_components ** 2 + self.n_components + int(self.nominal_weight)
        layers.append(nn.Linear(width, outputs))
        self.body = nn.Sequential(*layers)

    def forward(self, context):
        """Return ``S`` ``(n, r, r)`` (``(n, r, 2 r)`` with a curvature floor),
        ``q`` ``(n, r)`` and the weight of the nominal cost ``(n,)`` (``None``
        without ``nominal_weight``)."""
        return _split_outputs(self.body(context), self.n_components, self.nominal_weight,
                              self.curvature_floor)


def _split_outputs(out, r, nominal_weight, curvature_floor=0.0):
    """``S``, ``q`` and the nominal weight from a network's last layer ``(..., outputs)``."""
    # One split, not three slices: its gradient is one concatenation, where
    # each slice's is a zero-filled copy of the whole output.
    parts = out.split([r * r, r] + [1] * int(nominal_weight), dim=-1)
    factor = _with_floor(parts[0].reshape(*out.shape[:-1], r, r), curvature_floor)
    weight = nn.functional.softplus(parts[2][..., 0]) if nominal_weight else None
    return factor, parts[1], weight


def _with_floor(factor, eps):
    """``[S, sqrt(eps m) I]``, whose ``H = S S' + eps m I`` with ``m = ||S||_F^2 / r``
    the mean eigenvalue of ``S S'``: every curvature at least ``eps`` times the
    mean one (the condition number of ``H`` at most ``1 + r / eps``). The
    learned cost then cannot be nearly flat along a direction the answers
    did not pin down, where its minimizer would run off. The floor scales
    with ``S``, so the ranking loss's margin means what it did. ``eps = 0``:
    ``S`` itself."""
    if not eps:
        return factor
    r = factor.shape[-1]
    mean = (factor ** 2).sum(dim=(-2, -1), keepdim=True) / r
    eye = torch.eye(r, dtype=factor.dtype, device=factor.device).expand(factor.shape)
    return torch.cat([factor, torch.sqrt((eps * mean).clamp_min(1e-30)) * eye], dim=-1)


class QuadraticEnsemble(nn.Module):
    """``K`` :class:`QuadraticNetwork` evaluated as one batch; their mean cost.

    The mean of ``K`` convex quadratics ``1/2 ||S_k' z||^2 + q_k' z`` is the
    convex quadratic ``1/2 ||F' z||^2 + mean(q_k)' z`` with the ``r x rK``
    factor ``F = [S_1 ... S_K] / sqrt(K)`` (and the mean nominal weight), so
    an ensemble is still one learned quadratic. Each layer's weights are
    stacked over the members, ``(K, in, out)``, and applied with one batched
    product: training ``K`` small networks costs little more than one.
    Members start as ``K`` independently initialized :class:`QuadraticNetwork`.
    """

    def __init__(self, n_networks, n_inputs, n_components, hidden_layers=(20, 20, 20),
                 nominal_weight=False, curvature_floor=0.0):
        super().__init__()
        members = [
            QuadraticNetwork(n_inputs, n_components, hidden_layers, nominal_weight)
            for _ in range(int(n_networks))
        ]
        self.n_networks = int(n_networks)
        self.n_components = members[0].n_components
        self.nominal_weight = members[0].nominal_weight
        self.curvature_floor = float(curvature_floor)  # of each member's cost
        self.weights, self.biases = nn.ParameterList(), nn.ParameterList()
        layers = [[m for m in member.body if isinstance(m, nn.Linear)] for member in members]
        for stacked in zip(*layers):
            self.weights.append(nn.Parameter(torch.stack([layer.weight.detach().t() for layer in stacked])))
            self.biases.append(nn.Parameter(torch.stack([layer.bias.detach()[None] for layer in stacked])))

    def each(self, context):
        """Every member's ``S``, ``q`` and nominal weight, member-major:
        shapes ``(K n, r, c)``, ``(K n, r)``, ``(K n,)`` (or ``None``), with
        ``c = r`` (``2 r`` with a curvature floor, see :func:`_with_floor`)."""
        hidden = context.unsqueeze(0).expand(self.n_networks, -1, -1)
        last = len(self.weights) - 1
        for i, (weight, bias) in enumerate(zip(self.weights, self.biases)):
            hidden = torch.baddbmm(bias, hidden, weight)
            if i < last:
                hidden = torch.relu(hidden)
        return _split_outputs(hidden.flatten(0, 1), self.n_components, self.nominal_weight,
                              self.curvature_floor)

    def forward(self, context):
        """The mean cost's factor ``F`` ``(n, r, cK)``, ``q`` ``(n, r)`` and
        nominal weight ``(n,)`` (``None`` without ``nominal_weight``)."""
        k, n, r = self.n_networks, len(context), self.n_components
        factor, linear, weight = self.each(context)
        c = factor.shape[-1]
        factor = factor.reshape(k, n, r, c).permute(1, 2, 0, 3).reshape(n, r, k * c)
        mean_weight = None if weight is None else weight.reshape(k, n).mean(dim=0)
        return factor / np.sqrt(k), linear.reshape(k, n, r).mean(dim=0), mean_weight


class _Adam(torch.optim.Adam):
    """``torch.optim.Adam(foreach=True)`` with its defaults, stepped with less
    bookkeeping.

    The step is the multi-tensor update of PyTorch's Adam (2.x), operation
    for operation (the same numbers): ``m <- lerp(m, g, 1 - b1)``, ``v <- b2 v
    + (1 - b2) g^2``, ``p <- p - lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 -
    b2^t) + eps)``. PyTorch's own step also groups the tensors by device
    and type and reads each parameter's step count from a tensor, at every
    step; for a small network that bookkeeping cost as much as the update.
    The state (``exp_avg``, ``exp_avg_sq``, ``step``) and ``param_groups``
    are PyTorch's, so the learning-rate scheduler works as with Adam.
    """

    def __init__(self, params, lr):
        super().__init__(params, lr=lr, foreach=True)
        group = self.param_groups[0]
        if len(self.param_groups) != 1 or group["amsgrad"] or group["weight_decay"] \
                or group["maximize"] or group["capturable"] or group["differentiable"]:
            raise ValueError("_Adam takes one parameter group with Adam's defaults")

    @torch.no_grad()
    def step(self, closure=None):
        group = self.param_groups[0]
        params = [p for p in group["params"] if p.grad is not None]
        if not params:
            return None
        grads = [p.grad for p in params]
        states = [self.state[p] for p in params]
        for p, state in zip(params, states):
            if not state:
                state["step"] = torch.tensor(0.0, dtype=_scalar_dtype())
                state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        exp_avgs = [state["exp_avg"] for state in states]
        exp_avg_sqs = [state["exp_avg_sq"] for state in states]
        steps = [state["step"] for state in states]
        torch._foreach_add_(steps, torch.tensor(1.0), alpha=1.0)
        beta1, beta2 = group["betas"]
        lr, eps = group["lr"], group["eps"]
        torch._foreach_lerp_(exp_avgs, grads, 1 - beta1)
        torch._foreach_mul_(exp_avg_sqs, beta2)
        torch._foreach_addcmul_(exp_avg_sqs, grads, grads, 1 - beta2)
        counts = [step.item() for step in steps]
        step_sizes = [(lr / (1 - beta1 ** count)) * -1 for count in counts]
        denominators = torch._foreach_sqrt(exp_avg_sqs)
        torch._foreach_div_(denominators, [(1 - beta2 ** count) ** 0.5 for count in counts])
        torch._foreach_add_(denominators, eps)
        torch._foreach_addcdiv_(params, exp_avgs, denominators, step_sizes)
        return None


def _scalar_dtype():
    """The type of Adam's step counts (PyTorch's own choice)."""
    return torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32


def _square_factor(factor):
    """An ``r x r`` factor ``S`` with ``S S' = F F'`` for factors ``(n, r, c)``."""
    if factor.shape[1] == factor.shape[2]:
        return factor
    eigenvalues, vectors = np.linalg.eigh(factor @ np.swapaxes(factor, 1, 2))
    return vectors * np.sqrt(np.clip(eigenvalues, 0.0, None))[:, None, :]


class _FactorProduct(torch.autograd.Function):
    """``S' z`` row by row, ``(n,r,c), (n,r) -> (n,c)``.

    The forward pass is the batched product autograd would record; the
    gradient in ``S`` is the outer product ``z g'`` of each row, which is
    what autograd's batched-product backward computes (one multiplication
    per entry, so the same numbers), written as a broadcast product: a
    batched product of ``r x 1`` by ``1 x c`` matrices costs several times
    more on the CPU, and it ran twice in every training step.
    """

    @staticmethod
    def forward(ctx, factor, z):
        ctx.save_for_backward(factor, z)
        # The product einsum("nij,ni->nj") computes, through bmm directly
        # (the same arithmetic, without einsum's per-call parsing).
        return torch.bmm(factor.transpose(1, 2), z.unsqueeze(2)).squeeze(2)

    @staticmethod
    def backward(ctx, grad):
        factor, z = ctx.saved_tensors
        grad_factor = grad_z = None
        if ctx.needs_input_grad[0]:
            grad_factor = z.unsqueeze(2) * grad.unsqueeze(1)
        if ctx.needs_input_grad[1]:
            grad_z = torch.bmm(factor, grad.unsqueeze(2)).squeeze(2)
        return grad_factor, grad_z


def quadratic_value(factor, linear, z, weight=None, cost=None):
    """``1/2 ||S' z||^2 + q' z (+ weight * cost)`` row by row.

    Shapes ``(n,r,r), (n,r), (n,r)``; ``weight`` and ``cost`` (the scaled
    nominal cost) ``(n,)``; no such term when ``weight`` is ``None``.
    """
    reduced = _FactorProduct.apply(factor, z)
    value = 0.5 * (reduced ** 2).sum(dim=1) + (linear * z).sum(dim=1)
    return value if weight is None else value + weight * cost


def ranking_loss(cost_preferred, cost_other, loss="hinge", margin=1.0, flip_logit=None):
    """Mean ranking loss of a batch; see the module docstring.

    ``flip_logit`` (``"flip"`` loss only): per-pair logit of the rater's
    flip probability, shape ``(n,)``.
    """
    gap = cost_preferred - cost_other
    if loss == "hinge":
        return torch.relu(gap + margin).mean()
    if loss == "logistic":
        return nn.functional.softplus(gap / margin).mean()
    agree = torch.sigmoid(-gap / margin)
    flip = torch.sigmoid(flip_logit)
    observed = (1.0 - flip) * agree + flip * (1.0 - agree)
    return -torch.log(observed.clamp_min(1e-12)).mean()


@dataclass
class FitReport:
    """What :meth:`PreferenceLearner.fit` did.

    Attributes:
        n_train, n_validation: pairs used to train and to validate.
        n_components: PCA coordinates ``r`` used.
        explained_variance: fraction of the decisions' variance the ``r``
            coordinates keep.
        epochs: epochs run; best_epoch: the epoch whose weights were kept.
        train_loss, validation_loss: loss per epoch (validation empty if
            there was no validation split).
        train_accuracy, validation_accuracy: fraction of pairs whose
            preferred decision costs less, with the kept weights
            (``nan`` when there is no validation split).
        seconds: wall time of the fit.
    """

    n_train: int
    n_validation: int
    n_components: int
    explained_variance: float
    epochs: int = 0
    best_epoch: int = 0
    train_loss: list = field(default_factory=list)
    validation_loss: list = field(default_factory=list)
    train_accuracy: float = float("nan")
    validation_accuracy: float = float("nan")
    seconds: float = 0.0

    def __str__(self):
        validation = (f"validation acc={self.validation_accuracy:.3f}" if self.n_validation
                      else "no validation pairs")
        return (
            f"FitReport(pairs={self.n_train}+{self.n_validation}, r={self.n_components}, "
            f"epochs={self.epochs} (best {self.best_epoch}), "
            f"train acc={self.train_accuracy:.3f}, {validation}, {self.seconds:.1f}s)"
        )


def _check_positive(name, value, integer=False, allow_zero=False):
    ok = isinstance(value, (int, np.integer)) if integer else isinstance(value, (int, float, np.number))
    if (not ok or isinstance(value, bool) or not np.isfinite(value) or value < 0
            or (value == 0 and not allow_zero)):
        kind = "integer" if integer else "number"
        rule = f"{'an integer' if integer else 'a number'} >= 0" if allow_zero else f"a positive {kind}"
        raise LearningError(f"{name} must be {rule}; got {value!r}")


class PreferenceLearner:
    """Fit a context-conditioned convex quadratic cost to preference pairs.

    Follows scikit-learn's conventions: hyperparameters are stored as given,
    :meth:`fit` validates, learns and returns ``self``, learned state ends
    in ``_``.

    Args:
        n_components: PCA coordinates ``r``; ``None`` takes
            ``min(30, what the data allows)``.
        hidden_layers: hidden ReLU layer widths (paper: three of 20).
        loss: ``"hinge"`` (paper), ``"logistic"`` or ``"flip"`` (learns a
            flip rate per rater, ``flip_rates_``; see the module docstring).
        margin: ranking margin ``delta > 0``.
        nominal_weight: add a learned, non-negative share of the nominal
            cost to the quadratic (see the module docstring); the pairs
            must carry both decisions' nominal costs (``Pairs.has_costs``).
        l2: weight of the L2 penalty on all weights and biases.
        learning_rate: Adam's initial step.
        batch_size: pairs per gradient step.
        max_epochs: epoch limit; it also ends training before ``min_epochs``
            when that is larger.
        min_epochs: epochs always run before early stopping may trigger
            (up to ``max_epochs``).
        patience: epochs without validation improvement before stopping;
            the learning rate halves after ``lr_patience`` such epochs.
        validation_fraction: share of pairs held out (paper: 0.1).
        device: torch device to train on (``"cpu"``, ``"cuda"``, ...).
        seed: seed of the split, the initial weights and the batch order.
        progress: show a progress bar over epochs.
        n_networks: train this many networks on the same pairs, from
            independent initializations, and learn their mean cost (still one
            convex quadratic, see :class:`QuadraticEnsemble`); 1 (default,
            the paper's) trains one network. Averaging smooths the learned
            cost where single networks disagree; on the COVID-19 example it
            did not improve the decisions (``docs/results.md``). The
            members share the validation split and stop early together.
        lr_patience: epochs without validation improvement before the
            learning rate halves (``None``, the default: ``patience // 3``,
            at least 1). Giving it separately lets ``patience`` end the
            training sooner without changing the learning-rate schedule,
            i.e. every epoch before the stop is the same.
        curvature_floor: ``eps >= 0``; the learned ``H`` in the PCA
            coordinates becomes ``S S' + eps m I`` (``m`` the mean eigenvalue
            of ``S S'``), trained as such: no curvature below ``eps`` times
            the mean one. 0 (default, the paper's) leaves ``H = S S'``. With
            few answers the learned cost is often nearly flat along some
            direction and its minimizer runs far along it; on the README's
            Quickstart (an exactly quadratic user) 1.0 made the learned
            decision beat the nominal one at each of 7 contexts, on the
            COVID-19 example it lowered the captured gain
            (``docs/results.md``).
    """

    def __init__(
        self,
        n_components=None,
        hidden_layers=(20, 20, 20),
        loss="hinge",
        margin=1.0,
        nominal_weight=False,
        l2=1e-4,
        learning_rate=1e-2,
        batch_size=64,
        max_epochs=500,
        min_epochs=0,
        patience=50,
        validation_fraction=0.1,
        device="cpu",
        seed=0,
        progress=True,
        n_networks=1,
        lr_patience=None,
        curvature_floor=0.0,
    ):
        self.n_components = n_components
        self.hidden_layers = hidden_layers
        self.loss = loss
        self.margin = margin
        self.nominal_weight = nominal_weight
        self.l2 = l2
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.min_epochs = min_epochs
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.device = device
        self.seed = seed
        self.progress = progress
        self.n_networks = n_networks
        self.lr_patience = lr_patience
        self.curvature_floor = curvature_floor

    # -- validation -----------------------------------------------------
    def check_options(self):
        """Check the hyperparameters without fitting (``fit`` checks them too).

        Raises:
            LearningError: a hyperparameter is out of range or of the wrong kind,
                or ``device`` is not available.
        """
        self._validate_options()

    def _validate_options(self):
        if self.loss not in LOSSES:
            raise LearningError(f"loss must be one of {LOSSES}; got {self.loss!r}")
        _check_positive("margin", self.margin)
        if not isinstance(self.nominal_weight, (bool, np.bool_)):
            raise LearningError(f"nominal_weight must be True or False; got {self.nominal_weight!r}")
        _check_positive("l2", self.l2, allow_zero=True)
        if not (self.seed is None
                or isinstance(self.seed, (np.random.Generator, np.random.SeedSequence))):
            _check_positive("seed", self.seed, integer=True, allow_zero=True)
        _check_positive("learning_rate", self.learning_rate)
        _check_positive("batch_size", self.batch_size, integer=True)
        _check_positive("max_epochs", self.max_epochs, integer=True)
        _check_positive("min_epochs", self.min_epochs, integer=True, allow_zero=True)
        _check_positive("patience", self.patience, integer=True)
        if self.lr_patience is not None:
            _check_positive("lr_patience", self.lr_patience, integer=True, allow_zero=True)
        _check_positive("curvature_floor", self.curvature_floor, allow_zero=True)
        _check_positive("n_networks", self.n_networks, integer=True)
        if not 0.0 <= float(self.validation_fraction) < 1.0:
            raise LearningError(
                f"validation_fraction must lie in [0, 1); got {self.validation_fraction!r}"
            )
        if not isinstance(self.hidden_layers, (tuple, list)):
            raise LearningError(
                f"hidden_layers must be a tuple of layer widths, e.g. (20, 20) or (5,); "
                f"got {self.hidden_layers!r}"
            )
        for width in self.hidden_layers:
            _check_positive("hidden_layers entry", width, integer=True)
        try:
            device = torch.device(self.device)
        except (RuntimeError, TypeError) as exc:
            raise LearningError(f"unknown torch device {self.device!r}: {exc}") from exc
        if device.type == "cuda" and not torch.cuda.is_available():
            raise LearningError(
                f"device {self.device!r}: this torch has no CUDA device "
                "(torch.cuda.is_available() is False); use device='cpu'"
            )
        return device

    # -- compression ----------------------------------------------------
    def _fit_compression(self, pairs, decisions=None):
        if decisions is None:
            decisions = np.vstack([pairs.preferred, pairs.other])
        decisions = np.asarray(decisions, dtype=float)
        if decisions.ndim != 2 or decisions.shape[1] != pairs.n_decisions:
            raise LearningError(
                f"decisions for the PCA basis must have shape (m, {pairs.n_decisions}); "
                f"got {decisions.shape}"
            )
        decisions = np.unique(decisions, axis=0)
        mean = decisions.mean(axis=0)
        centered = decisions - mean
        _, singular, directions = np.linalg.svd(centered, full_matrices=False)
        std = singular / np.sqrt(max(len(decisions) - 1, 1))
        allowed = int(np.sum(std > 1e-7 * max(std.max(initial=0.0), 1e-300)))
        if allowed == 0:
            raise LearningError("all decisions in the pairs are identical; nothing to learn")
        r = self.n_components
        if r is None:
            r = min(30, allowed)
        elif isinstance(r, bool) or not isinstance(r, (int, np.integer)) or r < 1:
            raise LearningError(f"n_components must be a positive integer or None; got {r!r}")
        elif r > allowed:
            raise LearningError(
                f"n_components={r} is larger than the data allows: the "
                f"{len(decisions)} distinct decisions in the pairs span only "
                f"{allowed} directions; use n_components <= {allowed}"
            )
        self.n_components_ = int(r)
        self.mean_ = mean
        self.projection_ = directions[:r] / std[:r, None]
        total = float(np.sum(std ** 2))
        self.explained_variance_ = float(np.sum(std[:r] ** 2) / total)
        # Where the fitted decisions lie in PCA coordinates (the trust region).
        compressed = (decisions - mean) @ self.projection_.T
        self.z_range_ = np.vstack([compressed.min(axis=0), compressed.max(axis=0)])

    def _context_inputs(self, context):
        # Width from the fit, not -1: an empty split (no validation pairs) has size 0.
        context = np.asarray(context, dtype=float).reshape(len(context), self.n_context_)
        if self.n_context_ == 0:
            return np.ones((len(context), 1))
        return (context - self.context_mean_) / self.context_scale_

    # -- fitting ---------------------------------------------------------
    def fit(self, pairs, decisions=None, init=None):
        """Fit to ``pairs`` and return ``self``; the report is ``self.report_``.

        Args:
            pairs: the :class:`Pairs` to learn from.
            decisions: array ``(m, d)`` whose PCA gives the compression
                (e.g. all sampled candidates' ``u``); default: the
                decisions in ``pairs``.
            init: a fitted learner to warm-start from: its compression,
                context scaling and network weights are reused (it must have
                the same decisions, context length and hidden layers).
        """
        if not isinstance(pairs, Pairs):
            raise LearningError(f"fit needs a Pairs dataset; got {type(pairs).__name__}")
        device = self._validate_options()
        if len(pairs) < 2:
            raise LearningError(f"fit needs at least 2 pairs; got {len(pairs)}")
        same = int(np.sum(np.all(pairs.preferred == pairs.other, axis=1)))
        if same:
            warn_user(
                f"{same} of {len(pairs)} pairs compare a decision with itself; "
                "they say nothing about a preference",
            )
        if self.nominal_weight and not pairs.has_costs:
            raise LearningError(
                "nominal_weight=True needs the nominal cost of every decision in the "
                "pairs (Pairs.preferred_cost / other_cost); these pairs lack some: "
                "build them with ask() or Pairs.from_candidates()"
            )
        start = time.perf_counter()
        rng = np.random.default_rng(self.seed)
        if init is not None:
            self._adopt(init, pairs)
        else:
            self._fit_compression(pairs, decisions)
            self.n_decisions_ = pairs.n_decisions
            self.n_context_ = pairs.n_context
            self.context_mean_ = pairs.context.mean(axis=0)
            scale = pairs.context.std(axis=0)
            self.context_scale_ = np.where(scale > 1e-12, scale, 1.0)
            costs = np.concatenate([pairs.preferred_cost, pairs.other_cost])
            known = costs[np.isfinite(costs)]
            self.cost_mean_ = float(known.mean()) if len(known) else 0.0
            spread = float(known.std()) if len(known) else 0.0
            self.cost_scale_ = spread if spread > 1e-12 * max(abs(self.cost_mean_), 1.0) else 1.0

        n = len(pairs)
        order = rng.permutation(n)
        n_validation = int(round(self.validation_fraction * n))
        n_validation = min(n_validation, n - 1)
        if n_validation == 0 and self.validation_fraction > 0:
            warn_user(
                f"fit on {n} pairs: too few to hold out validation pairs "
                f"(validation_fraction={self.validation_fraction:g}), so nothing checks "
                "the fit on answers it did not train on; the learned objective is "
                "likely poor: ask more pairs (hundreds for tens of decisions)"
            )
        validation, train = order[:n_validation], order[n_validation:]

        self.raters_, rater_index = np.unique(pairs.rater.astype(str), return_inverse=True)
        self.raters_ = [str(r) for r in self.raters_]

        def tensors(index):
            x = self._context_inputs(pairs.context[index])
            za = (pairs.preferred[index] - self.mean_) @ self.projection_.T
            zb = (pairs.other[index] - self.mean_) @ self.projection_.T
            data = [torch.as_tensor(a, dtype=torch.float32, device=device) for a in (x, za, zb)]
            if self.nominal_weight:
                data += [torch.as_tensor(self._scaled_cost(c[index]), dtype=torch.float32, device=device)
                         for c in (pairs.preferred_cost, pairs.other_cost)]
            else:  # no cost term: nothing to index in every training step
                data += [None, None]
            if self.loss != "flip":  # the raters matter to the flip loss only
                return data + [None]
            return data + [torch.as_tensor(rater_index[index], dtype=torch.long, device=device)]

        train_data, validation_data = tensors(train), tensors(validation)
        report = FitReport(
            n_train=len(train),
            n_validation=len(validation),
            n_components=self.n_components_,
            explained_variance=self.explained_variance_,
        )
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # a small MLP: threads cost more than they give
        try:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(int(rng.integers(2**31)))
                network = self._new_network()
                if init is not None:
                    network.load_state_dict(init.network_.state_dict())
                network.to(device)
                # Flip rates start at 10% for every rater (used by the "flip" loss only).
                self._flip_logit = torch.full(
                    (len(self.raters_),), float(np.log(0.1 / 0.9)), device=device, requires_grad=True
                )
                self._train(network, train_data, validation_data, rng, report)
        finally:
            torch.set_num_threads(threads)
        self.network_ = network.cpu().eval()
        flips = torch.sigmoid(self._flip_logit.detach().cpu()).numpy()
        self.flip_rates_ = (
            dict(zip(self.raters_, flips.astype(float).tolist())) if self.loss == "flip" else {}
        )
        del self._flip_logit
        report.train_accuracy = self._accuracy(train_data)
        report.validation_accuracy = self._accuracy(validation_data) if len(validation) else float("nan")
        report.seconds = time.perf_counter() - start
        self.report_ = report
        logger.info("%s", report)
        return self

    def _adopt(self, init, pairs):
        """Take the compression and context scaling of a fitted learner."""
        if not hasattr(init, "network_"):
            raise NotFittedError("init must be a fitted PreferenceLearner")
        if (init.n_decisions_, init.n_context_) != (pairs.n_decisions, pairs.n_context):
            raise LearningError(
                f"init was fitted to decisions of length {init.n_decisions_} and contexts "
                f"of length {init.n_context_}; these pairs have {pairs.n_decisions} and "
                f"{pairs.n_context}"
            )
        if tuple(init.hidden_layers) != tuple(self.hidden_layers):
            raise LearningError("init has other hidden_layers; warm start needs the same network")
        if bool(init.nominal_weight) != bool(self.nominal_weight):
            raise LearningError("init has another nominal_weight; warm start needs the same network")
        if int(init.n_networks) != int(self.n_networks):
            raise LearningError("init has another n_networks; warm start needs the same network")
        for name in ("n_components_", "mean_", "projection_", "explained_variance_", "z_range_",
                     "n_decisions_", "n_context_", "context_mean_", "context_scale_",
                     "cost_mean_", "cost_scale_"):
            setattr(self, name, getattr(init, name))

    def _scaled_cost(self, cost):
        """Nominal costs as the network sees them (0 where unknown)."""
        scaled = (np.asarray(cost, dtype=float) - self.cost_mean_) / self.cost_scale_
        return np.nan_to_num(scaled, nan=0.0)

    def _new_network(self):
        """An untrained network of this learner's shape (drawn from torch's RNG)."""
        shape = (self.n_context_, self.n_components_, self.hidden_layers, self.nominal_weight,
                 float(self.curvature_floor))
        if self.n_networks == 1:
            return QuadraticNetwork(*shape)
        return QuadraticEnsemble(self.n_networks, *shape)

    def _batch_loss(self, network, x, za, zb, ca, cb, rater):
        flip = self._flip_logit[rater] if self.loss == "flip" else None
        if isinstance(network, QuadraticEnsemble):
            # The sum of the members' own losses (not the mean cost's loss):
            # each member is trained as it would be alone.
            k = network.n_networks
            factor, linear, weight = network.each(x)
            za, zb = za.repeat(k, 1), zb.repeat(k, 1)
            ca, cb = (None if c is None else c.repeat(k) for c in (ca, cb))
            flip = None if flip is None else flip.repeat(k)
        else:
            k = 1
            factor, linear, weight = network(x)
        loss = ranking_loss(
            quadratic_value(factor, linear, za, weight, ca),
            quadratic_value(factor, linear, zb, weight, cb),
            self.loss,
            self.margin,
            flip,
        )
        return loss if k == 1 else k * loss

    def _add_penalty_gradient(self, weights):
        """Add the gradient of ``l2 * sum ||p||^2`` to each weight's gradient.

        It is ``(2 l2) p`` added to the loss's gradient: the same floating
        point operations as autograd's ``l2 * (2 p)`` through the penalty
        term (both products are exact multiples by 2 of ``l2 p``), without
        the penalty's forward and backward passes in every step.
        """
        if not self.l2:
            return
        with torch.no_grad():
            # One multi-tensor multiply and add (the same products and sums
            # as a loop over the weights, in fewer operations).
            grads, penalties = [], []
            for p, penalty in zip(weights, torch._foreach_mul(weights, 2.0 * self.l2)):
                if p.grad is None:  # a weight the loss does not reach
                    p.grad = penalty
                else:
                    grads.append(p.grad)
                    penalties.append(penalty)
            if grads:
                torch._foreach_add_(grads, penalties)

    def _train(self, network, train_data, validation_data, rng, report):
        weights = list(network.parameters())
        parameters = list(weights)
        if self.loss == "flip":
            parameters.append(self._flip_logit)
        # foreach: one multi-tensor update per step instead of a loop over the
        # parameters (the same arithmetic; a small network's step is mostly
        # per-operation overhead).
        optimizer = _Adam(parameters, lr=self.learning_rate)
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, factor=0.5, patience=self._lr_patience()
        )
        has_validation = len(validation_data[0]) > 0
        n_train = len(train_data[0])
        best, best_state, waited = np.inf, None, 0
        epochs = progress_bar(range(self.max_epochs), self.progress, desc="fitting")
        for epoch in epochs:
            network.train()
            total = 0.0
            for batch in np.array_split(rng.permutation(n_train), max(n_train // self.batch_size, 1)):
                index = torch.as_tensor(batch, device=train_data[0].device)
                loss = self._batch_loss(
                    network, *(None if t is None else t[index] for t in train_data)
                )
                optimizer.zero_grad()
                loss.backward()
                self._add_penalty_gradient(weights)
                optimizer.step()
                total += loss.item() * len(batch)
            report.train_loss.append(total / n_train)
            network.eval()
            with torch.no_grad():
                if has_validation:
                    monitored = float(self._batch_loss(network, *validation_data))
                    report.validation_loss.append(monitored)
                else:
                    monitored = report.train_loss[-1]
            scheduler.step(monitored)
            report.epochs = epoch + 1
            # Before min_epochs every epoch counts as the best so far: a noisy
            # validation split must not pick a barely trained network.
            if monitored < best - 1e-6 or epoch < self.min_epochs:
                best, report.best_epoch = monitored, epoch + 1
                best_state = (self._copy_state(network), self._flip_logit.detach().clone())
                waited = 0
            else:
                waited += 1
                if waited >= self.patience:
                    break
        if best_state is not None:
            # The flip rates are kept from the same epoch as the weights.
            network.load_state_dict(best_state[0])
            with torch.no_grad():
                self._flip_logit.copy_(best_state[1])

    def _lr_patience(self):
        """Epochs without improvement before the learning rate halves."""
        if self.lr_patience is not None:
            return int(self.lr_patience)
        return max(self.patience // 3, 1)

    @staticmethod
    def _copy_state(network):
        return {k: v.detach().clone() for k, v in network.state_dict().items()}

    def _accuracy(self, data):
        network = self.network_
        device = next(network.parameters()).device
        with torch.no_grad():
            x, za, zb, ca, cb = (None if t is None else t.to(device) for t in data[:5])
            factor, linear, weight = network(x)
            wins = (quadratic_value(factor, linear, za, weight, ca)
                    < quadratic_value(factor, linear, zb, weight, cb))
        return float(wins.float().mean()) if len(wins) else float("nan")

    # -- prediction ------------------------------------------------------
    def _check_fitted(self):
        if not hasattr(self, "network_"):
            raise NotFittedError(
                "this PreferenceLearner is not fitted yet; call fit(pairs) first"
            )

    def terms(self, contexts):
        """The learned cost's terms at contexts ``(n, k)``.

        Returns:
            ``S`` ``(n, r, r)``, ``qz`` ``(n, r)`` and the weight of the
            nominal cost per unit of ``J``, ``(n,)`` (zeros without
            ``nominal_weight``). With ``n_networks > 1``, ``S`` is a
            square factor of the mean cost's ``H = F F'``.
        """
        # float64 so that one context alone and in a batch give the same S, q.
        self._check_fitted()
        inputs = torch.as_tensor(self._context_inputs(contexts), dtype=torch.float64)
        network = self._double_network()
        with torch.no_grad():
            factor, linear, weight = network(inputs)
        weight = np.zeros(len(inputs)) if weight is None else weight.numpy() / self.cost_scale_
        return _square_factor(factor.numpy()), linear.numpy(), weight

    def _double_network(self):
        """A float64 copy of ``network_``, made once per fitted network (an
        ``activate`` per context would otherwise copy it every time)."""
        cached = getattr(self, "_double", None)
        if cached is None or cached[0] is not self.network_:
            cached = (self.network_, copy.deepcopy(self.network_).double())
            self._double = cached
        return cached[1]

    def compressed(self, contexts):
        """Return ``S`` ``(n, r, r)`` and ``qz`` ``(n, r)`` for contexts ``(n, k)``."""
        factor, linear, _ = self.terms(contexts)
        return factor, linear

    def nominal_weights(self, contexts):
        """Weight of the nominal cost ``J`` (per unit of ``J``) in the learned
        cost at contexts ``(n, k)``, shape ``(n,)``; zeros without
        ``nominal_weight``."""
        return self.terms(contexts)[2]

    def cost(self, context=()):
        """Return the :class:`QuadraticCost` in decision space at one context."""
        factor, linear = self.compressed(np.asarray(context, dtype=float).reshape(1, -1))
        return QuadraticCost.from_compressed(factor[0], linear[0], self.projection_, self.mean_)

    def predict_cost(self, context, u, nominal_cost=None):
        """Cost of decisions ``u`` ``(n, d)`` at contexts ``(n, k)``.

        Args:
            nominal_cost: ``J(u)``, shape ``(n,)``; required with
                ``nominal_weight``, ignored without.
        """
        self._check_fitted()
        u = np.asarray(u, dtype=float)
        z = (u - self.mean_) @ self.projection_.T
        factor, linear, weight = self.terms(context)
        reduced = np.einsum("nij,ni->nj", factor, z)
        value = 0.5 * (reduced ** 2).sum(axis=1) + (linear * z).sum(axis=1)
        if not self.nominal_weight:
            return value
        if nominal_cost is None:
            raise LearningError(
                "this learner weighs the nominal cost (nominal_weight=True); "
                "predict_cost needs nominal_cost"
            )
        return value + weight * (np.asarray(nominal_cost, dtype=float) - self.cost_mean_)

    def disagreeing_raters(self, threshold=0.3):
        """Raters whose learned flip rate exceeds ``threshold`` (``"flip"`` loss).

        Returns:
            dict rater -> flip rate, most disagreeing first.
        """
        self._check_fitted()
        found = {r: p for r, p in self.flip_rates_.items() if p > threshold}
        return dict(sorted(found.items(), key=lambda item: -item[1]))

    def accuracy(self, pairs):
        """Fraction of ``pairs`` whose preferred decision the model rates cheaper."""
        return float(np.mean(
            self.predict_cost(pairs.context, pairs.preferred, pairs.preferred_cost)
            < self.predict_cost(pairs.context, pairs.other, pairs.other_cost)
        ))

    # -- persistence -----------------------------------------------------
    def get_params(self):
        """Hyperparameters as a JSON-ready dict."""
        return {
            "n_components": self.n_components,
            "hidden_layers": [int(h) for h in self.hidden_layers],
            "loss": self.loss,
            "margin": self.margin,
            "nominal_weight": bool(self.nominal_weight),
            "l2": self.l2,
            "learning_rate": self.learning_rate,
            "batch_size": self.batch_size,
            "max_epochs": self.max_epochs,
            "min_epochs": self.min_epochs,
            "patience": self.patience,
            "validation_fraction": self.validation_fraction,
            "device": str(self.device),
            "seed": self.seed,
            "progress": self.progress,
            "n_networks": int(self.n_networks),
            "lr_patience": None if self.lr_patience is None else int(self.lr_patience),
            "curvature_floor": float(self.curvature_floor),
        }

    def learned_arrays(self):
        """Learned state as a dict of numpy arrays (for saving)."""
        self._check_fitted()
        arrays = {
            "mean": self.mean_,
            "projection": self.projection_,
            "context_mean": self.context_mean_,
            "context_scale": self.context_scale_,
            "explained_variance": np.array(self.explained_variance_),
            "z_range": self.z_range_,
            "cost_mean": np.array(self.cost_mean_),
            "cost_scale": np.array(self.cost_scale_),
            "n_context": np.array(self.n_context_),
            "raters": np.array(list(self.flip_rates_), dtype=str),
            "flip_rates": np.array(list(self.flip_rates_.values()), dtype=float),
        }
        for name, value in self.network_.state_dict().items():
            arrays["network." + name] = value.numpy()
        return arrays

    @classmethod
    def from_arrays(cls, params, arrays):
        """Rebuild a fitted learner from :meth:`get_params` and :meth:`learned_arrays`."""
        learner = cls(**params)
        learner.mean_ = np.asarray(arrays["mean"], dtype=float)
        learner.projection_ = np.asarray(arrays["projection"], dtype=float)
        learner.context_mean_ = np.asarray(arrays["context_mean"], dtype=float)
        learner.context_scale_ = np.asarray(arrays["context_scale"], dtype=float)
        learner.explained_variance_ = float(arrays["explained_variance"])
        learner.z_range_ = np.asarray(arrays["z_range"], dtype=float)
        learner.n_context_ = int(arrays["n_context"])
        # Fits saved before the nominal weight existed have no cost scaling.
        learner.cost_mean_ = float(arrays.get("cost_mean", 0.0))
        learner.cost_scale_ = float(arrays.get("cost_scale", 1.0))
        learner.flip_rates_ = dict(
            zip(np.asarray(arrays["raters"]).tolist(), np.asarray(arrays["flip_rates"]).tolist())
        )
        learner.n_components_, learner.n_decisions_ = learner.projection_.shape
        network = learner._new_network()
        state = {
            key[len("network."):]: torch.as_tensor(np.asarray(value))
            for key, value in arrays.items()
            if key.startswith("network.")
        }
        network.load_state_dict(state)
        learner.network_ = network.eval()
        return learner


def learner_from_options(what, n_components=None, seed=0, **options):
    """A :class:`PreferenceLearner` from ``fit``'s keyword arguments.

    Raises:
        LearningError: an option that is no hyperparameter (named after ``what``).
    """
    try:
        return PreferenceLearner(n_components=n_components, seed=seed, **options)
    except TypeError as exc:
        raise LearningError(f"{what}: unknown fit option: {exc}") from exc
