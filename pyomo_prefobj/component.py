"""The ``PreferenceObjective`` block: a learned objective for any Pyomo model.

::

    m.pref = PreferenceObjective(decisions=[m.x, m.y], context=[m.x0])
    candidates = m.pref.sample(contexts, per_context=20, seed=0)
    pairs = m.pref.ask(candidates, n_pairs=448, oracle=ScoreOracle(score))
    report = m.pref.fit(pairs, seed=0)
    m.pref.activate(context)           # learned objective replaces the nominal
    pyo.SolverFactory("scip").solve(m)
    m.pref.deactivate()                # nominal objective back

The learned objective is the convex quadratic

    f(u, x0) = 1/2 u' H(x0) u + q(x0)' u + c(x0),
    H = P' S S' P,  q = P' qz - H mu,

with ``S(x0)``, ``qz(x0)`` output by the learner and ``z = P (u - mu)`` the
PCA coordinates (see :mod:`pyomo_prefobj.quadratic`). Two formulations put
it into the model:

* ``"compact"`` (default): auxiliary variables ``z = P (u - mu)`` (r of
  them), ``w = c S' z``, one epigraph variable ``e >= sum_k w_k^2``, and
  objective ``1/(2 c^2) e + qz' z``; O(d r) terms. ``c = 1 / max|S|`` scales
  the rows SCIP sees without moving the minimizer or changing the value.
* ``"dense"``: ``1/2 u' H u + q' u + c`` written out; O(d^2) terms.

``activate`` may add, on request, a box on ``z`` (``trust_region``), the
nominal cost as a tie-breaker (``tie_break``) and an l1 penalty on the
distance from the PCA span (``span_penalty``). Changing the context rebuilds
the block with that context's coefficients.
"""

import copy
import dataclasses
import inspect
import json
import logging
import numbers
import sys

import numpy as np
import pyomo.environ as pyo
from pyomo.core.base.indexed_component_slice import IndexedComponent_slice
from pyomo.core.base.block import BlockData, declare_custom_block
from pyomo.core.expr.numeric_expr import LinearExpression, SumExpression

from . import oracles, sampling
from . import rounds as rounds_module
from .candidates import Candidates
from .errors import (
    ArgumentError,
    ContextError,
    DecisionError,
    FileFormatError,
    ModelError,
    NoFeasibleCandidateError,
    NotFittedError,
    PairsError,
    warn_user,
)
from .learning import PreferenceLearner, learner_from_options
from .npzfile import read_npz
from .pairs import Pairs
from .progress import progress_bar
from .solver import ScipSession

logger = logging.getLogger(__name__)

FORMULATIONS = ("compact", "dense")
MODEL_FORMAT = "pyomo_prefobj.preference_objective"
MODEL_VERSION = 1


def _as_list(items):
    if items is None:
        return []
    if isinstance(items, (list, tuple)):
        return list(items)
    return [items]


def _describe(item):
    """A Pyomo component's name (its repr is an address), else the repr."""
    if isinstance(item, (list, tuple)):
        shown = ", ".join(_describe(part) for part in item[:5])
        return f"[{shown}{', ...' if len(item) > 5 else ''}]"
    if isinstance(item, IndexedComponent_slice):
        return "a slice"
    name = getattr(item, "name", None)
    return repr(name) if isinstance(name, str) and hasattr(item, "ctype") else repr(item)


def _float_array(values, message):
    """``values`` as a float array; ContextError ``message`` if they are not numbers."""
    try:
        array = np.asarray(values, dtype=float)
        flags = np.asarray(values, dtype=object).ravel()
    except (TypeError, ValueError):
        raise ContextError(message) from None
    if any(isinstance(v, (bool, np.bool_)) for v in flags):  # True would pass as 1.0
        raise ContextError(message)
    return array


def _check_seed(seed, name):
    """ModelError unless numpy can seed a generator with ``seed``: None, a
    non-negative integer, a ``numpy.random.Generator`` or ``SeedSequence``."""
    if seed is None or isinstance(seed, (np.random.Generator, np.random.SeedSequence)):
        return
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ModelError(f"{name}: seed must be a non-negative integer or None; got {seed!r}")


def _first_difference(found, expected):
    """``'x[2]' where 'y[2]' was expected`` for the first position that differs."""
    for mine, theirs in zip(found, expected):
        if mine != theirs:
            return f"{mine!r} where {theirs!r} was expected"
    return f"{len(found)} names where {len(expected)} were expected"


def _check_item(item, ctype, what, error):
    """``error`` unless ``item`` is a component (or element) of ``ctype``;
    a Param must be mutable (its elements are plain numbers otherwise)."""
    if getattr(item, "ctype", None) is not ctype:
        hint = ""
        if isinstance(item, IndexedComponent_slice):
            hint = "; wrap a slice as pyo.Reference(m.y[0, :]), or unpack it: *m.y[0, :]"
        elif isinstance(item, (list, tuple)):
            hint = "; pass one flat list"
        raise error(
            f"PreferenceObjective: {what} must be Pyomo {ctype.__name__} "
            f"components or their elements; got {_describe(item)} ({type(item).__name__}){hint}"
        )
    if ctype is pyo.Param and not item.parent_component().mutable:
        raise error(
            f"PreferenceObjective: context Param {item.parent_component().name!r} is not "
            "mutable; declare it with Param(mutable=True)"
        )


def _check_arguments(decisions, context):
    """What can be checked of the arguments before the block joins a model
    (names need the model): a failed check then leaves the model as it was,
    also where the assignment would replace a component of the same name."""
    for items, ctype, what, error in ((decisions, pyo.Var, "decisions", DecisionError),
                                      (context, pyo.Param, "context", ContextError)):
        for item in _as_list(items):
            if not isinstance(item, str):
                _check_item(item, ctype, what, error)


# activate warns beyond this many standard deviations of the fitted contexts
# (uniformly drawn training contexts reach 1.7).
EXTRAPOLATION_LIMIT = 4.0


def _param_value(param, value):
    """``value`` as a float, or as an ``int`` where it is integral and the
    domain of ``param`` (a ParamData) holds integers only."""
    value = float(value)
    step = param.parent_component().domain.get_interval()[2]
    return int(value) if step == 1 and value.is_integer() else value


def _summed(terms, kind=LinearExpression):
    """``sum(terms)`` as Python's ``sum`` builds it in Pyomo, without one
    operator dispatch per term: a ``kind`` expression (LinearExpression for
    products ``c * var``, SumExpression for others) of the terms in their
    order, or the term itself where there is one. The same expression, so
    a solver is handed the same rows; ``activate`` builds about a thousand
    terms at every context."""
    terms = list(terms)
    return kind(terms) if len(terms) > 1 else sum(terms)


def _add_rows(block, name, index, row):
    """Add the indexed Constraint ``name`` with ``row(i)`` for each ``i`` to
    ``block``, without keeping ``row`` on it (a Pyomo rule is kept, and a
    local function would make the model impossible to pickle)."""
    block.add_component(name, pyo.Constraint(index))
    rows = block.component(name)
    for i in index:
        rows[i] = row(i)


def _flatten(items, model, ctype, what, error):
    """Flatten components / component data of ``ctype`` into a list of data."""
    flat = []
    for item in _as_list(items):
        if isinstance(item, str):
            found = model.find_component(item)
            if found is None:
                raise error(f"PreferenceObjective: no {what} named {item!r} on the model")
            item = found
        _check_item(item, ctype, what, error)
        flat.extend(item.values() if item.is_indexed() else [item])
    seen = set()
    for data in flat:
        if data.model() is not model:
            where = "is not on any model" if data.parent_block() is None else "belongs to another model"
            raise error(
                f"PreferenceObjective: {what} {data.name!r} {where}; pass "
                "components of the model the PreferenceObjective is added to"
            )
        if id(data) in seen:
            raise error(f"PreferenceObjective: {what} {data.name!r} is given twice")
        seen.add(id(data))
    return flat


@declare_custom_block("PreferenceObjective", rule="build")
class PreferenceObjectiveData(BlockData):
    """A learned convex quadratic objective attached to a Pyomo model.

    Keyword Args:
        decisions: Var components or VarData the objective is a function
            of (the decision vector ``u``, in this order, each indexed Var in
            its index order; see ``decision_names``).
        context: mutable Param components or ParamData holding the context
            ``x0`` (may be empty).
        formulation: ``"compact"`` (default) or ``"dense"``.
        progress: show progress bars on long work (default True).
        solver_options: SCIP parameters for the component's own solves.
    """

    def build(self, *args, decisions=None, context=(), formulation="compact",
              progress=True, solver_options=None, _saved=None):
        # The block this one replaces (see __setattr__), removed but untouched.
        replaced = self.__dict__.pop("_replacing", (None,))[0]
        try:
            self._build(decisions, context, formulation, progress, solver_options, _saved)
        except Exception:
            # Leave the user's model exactly as it was before the assignment:
            # also the block this one was to replace, back under its name
            # (constructed already, Pyomo adds it as it is).
            parent = self.parent_block()
            if parent is not None:
                name = self.local_name
                parent.del_component(self)
                if replaced is not None:
                    parent.add_component(name, replaced)
            raise
        if replaced is not None:
            replaced._restore_before_removal(self.name)

    def __setattr__(self, name, value):
        # Pyomo's del_component (also when an assignment replaces the block)
        # clears _parent; the nominal objective and the context must not stay
        # as the learned objective left them. Where a new PreferenceObjective
        # replaces this one, that waits for the new one's build: if it fails
        # (a misspelled name), it puts this block back as it was, no warning.
        if name == "_parent" and value is None and self.__dict__.get("_parent") is not None:
            replacement = self._replacement()
            if replacement is None:
                self._restore_before_removal()
            else:
                replacement._replacing = (self,)  # a tuple: Pyomo would adopt a bare component
        super().__setattr__(name, value)

    def _replacement(self):
        """The PreferenceObjective that ``parent.<name> = PreferenceObjective(...)``
        is about to put in this block's place, else None.

        Pyomo's ``BlockData.__setattr__`` replaces a component by deleting
        it (``del_component``, which clears ``_parent``) and then adding the
        new one, whose construction calls its ``build``.
        """
        frame = sys._getframe(3)  # _replacement <- __setattr__ <- del_component <- ?
        if frame.f_code is not BlockData.__setattr__.__code__:
            return None
        parent, new = frame.f_locals.get("self"), frame.f_locals.get("val")
        if (isinstance(new, PreferenceObjectiveData) and not new._constructed
                and getattr(parent.parent_component(), "_constructed", False)):
            return new  # constructed, so built, as soon as it is added
        return None

    def _restore_before_removal(self, name=None):
        """Deactivate the learned objective of a block leaving the model,
        with a warning; ``name``: the block's name there (default: its own,
        which a detached block no longer has)."""
        if "_links" not in self.__dict__ or not self._is_learned_active():
            return
        nominal = self._links["nominal"]
        model = nominal.model()
        if model is None or nominal.active or next(
            iter(model.component_data_objects(pyo.Objective, active=True)), None
        ) is not None:
            # Not a removal that left the model without an objective: e.g. a
            # clone of this block alone, detached from a model that still
            # holds (and solves with) the original; or the nominal objective
            # was itself removed before.
            return
        self.deactivate()
        warn_user(
            f"{name or self.name} was removed from the model while its learned objective "
            f"was active; the nominal objective {nominal.name!r} and the context "
            "values are restored"
        )

    def _build(self, decisions, context, formulation, progress, solver_options, saved):
        model = self.model()
        if saved is not None:
            meta, learner = saved
            # A count that does not fit is the file's fault when its own names
            # were used, the argument's when the caller gave the components.
            count_errors = (FileFormatError if decisions is None else DecisionError,
                            FileFormatError if not context else ContextError)
            decisions = meta["decisions"] if decisions is None else decisions
            context = meta["context"] if not context else context
            formulation = meta.get("formulation", formulation)
        else:
            learner = None
        variables = _flatten(decisions, model, pyo.Var, "decisions", DecisionError)
        if not variables:
            raise DecisionError(
                "PreferenceObjective needs at least one decision variable; "
                "got an empty decisions list"
            )
        params = _flatten(context, model, pyo.Param, "context", ContextError)
        if formulation not in FORMULATIONS:
            raise ModelError(
                f"PreferenceObjective: formulation must be one of {FORMULATIONS}; "
                f"got {formulation!r}"
            )
        self.decision = pyo.Reference(variables)
        if params:
            self.context_param = pyo.Reference(params)
        self._decision_names = tuple(v.getname(fully_qualified=True) for v in variables)
        self._context_names = tuple(p.getname(fully_qualified=True) for p in params)
        if learner is not None:
            _check_saved_order(meta, self._decision_names, self._context_names)
            if learner.n_decisions_ != len(variables):
                raise count_errors[0](
                    f"the saved objective has {learner.n_decisions_} decisions; "
                    f"this model gives {len(variables)}"
                )
            if learner.n_context_ != len(params):
                raise count_errors[1](
                    f"the saved objective has {learner.n_context_} context values; "
                    f"this model gives {len(params)} context Params"
                )
        self._formulation = formulation
        self._progress = bool(progress)
        self._solver_options = dict(solver_options or {})
        self._learner = learner
        self._links = {"nominal": None, "built_for": None}  # a dict: Pyomo would adopt a bare component attribute
        self._saved_context = None
        self._activation = {}  # activate's options, re-applied after a refit

    # ------------------------------------------------------------------
    # Basic properties
    # ------------------------------------------------------------------
    @property
    def decision_names(self):
        """tuple of str: names of the decisions, in the order of ``u``."""
        self._check_built()
        return self._decision_names

    @property
    def context_names(self):
        """tuple of str: names of the context Params, in the order of ``x0``."""
        self._check_built()
        return self._context_names

    @property
    def n_decisions(self):
        """int: length ``d`` of the decision vector."""
        return len(self.decision_names)

    @property
    def n_context(self):
        """int: length ``k`` of the context vector."""
        return len(self.context_names)

    @property
    def learner(self):
        """PreferenceLearner: the fitted learner (None before ``fit``)."""
        return self._learner

    @property
    def is_fitted(self):
        """bool: whether ``fit`` (or ``load``) has given a learned objective."""
        return self._learner is not None

    def _variables(self):
        return [self.decision[i] for i in range(self.n_decisions)]

    def _params(self):
        return [self.context_param[i] for i in range(self.n_context)] if self.n_context else []

    def decision_values(self):
        """Current values of the decisions, shape ``(d,)`` (NaN where unset)."""
        return np.array([np.nan if v.value is None else v.value for v in self._variables()])

    def context_values(self):
        """Current values of the context Params, shape ``(k,)``."""
        return np.array([pyo.value(p) for p in self._params()], dtype=float)

    # ------------------------------------------------------------------
    # Validation helpers
    # ------------------------------------------------------------------
    def _check_context(self, context):
        """Return ``context`` as a float vector of length ``k`` (a number
        stands for the one value of a single context Param)."""
        if context is None:
            return self.context_values()
        if self.n_context == 1 and isinstance(context, numbers.Real) and not isinstance(context, bool):
            context = [context]
        order = f"one per context Param, in the order {list(self.context_names)}"
        values = _float_array(context, f"{self.name}: a context must hold numbers ({order}); "
                                       f"got {context!r}")
        if self.n_context == 0 and values.size:
            raise ContextError(
                f"{self.name}: this component has no context Params; leave the context "
                f"out (None); got {context!r}"
            )
        if values.ndim != 1 or len(values) != self.n_context:
            raise ContextError(
                f"{self.name}: a context is a sequence of {self.n_context} floats "
                f"({order}); got {context!r}"
            )
        if not np.all(np.isfinite(values)):
            raise ContextError(f"{self.name}: context holds NaN or inf: {context!r}")
        self._check_domains(values.reshape(1, -1))
        return values

    def _refuse_other_decisions(self, data, what):
        """PairsError unless the Pairs or Candidates ``data`` name this
        component's decisions and (where they name them) context Params."""
        if tuple(data.names) != self.decision_names:
            raise PairsError(
                f"{self.name}: these {what} are decisions of another component (their "
                f"decision names differ: {_first_difference(data.names, self.decision_names)})"
            )
        if data.context_names and tuple(data.context_names) != self.context_names:
            raise PairsError(
                f"{self.name}: these {what} were taken at contexts of other Params, or in "
                "another order (their context names differ: "
                f"{_first_difference(data.context_names, self.context_names)})"
            )

    def _check_contexts(self, contexts):
        """Return ``contexts`` as an array of shape ``(m, k)``."""
        if contexts is None:
            return self.context_values().reshape(1, -1)
        array = _float_array(contexts, f"{self.name}: contexts must hold numbers; got {contexts!r}")
        if self.n_context == 0 and array.size == 0:
            return np.zeros((max(len(array), 1), 0))
        if array.ndim == 1 and self.n_context == 1:
            array = array.reshape(-1, 1)
        if array.ndim != 2 or array.shape[1] != self.n_context or len(array) == 0:
            raise ContextError(
                f"{self.name}: contexts must be a 2-D array with one row per "
                f"context and {self.n_context} columns; got shape {array.shape}"
            )
        if not np.all(np.isfinite(array)):
            raise ContextError(f"{self.name}: contexts hold NaN or inf")
        self._check_domains(array)
        return array

    def _set_context(self, values):
        """Set the context Params to the numbers ``values`` (an integral
        number as an ``int`` where the Param's domain holds integers)."""
        for param, value in zip(self._params(), values):
            param.set_value(_param_value(param, value))

    def _raw_context(self):
        """The context Params' values as they are (ints stay ints), to restore."""
        return [param.value for param in self._params()]

    def _restore_context(self, raw):
        for param, value in zip(self._params(), raw):
            param.set_value(value)

    def _check_domains(self, contexts):
        """ContextError unless every row of ``contexts`` ``(m, k)`` lies in the
        context Params' domains (checked before any Param is changed)."""
        for param, column in zip(self._params(), np.asarray(contexts).T):
            domain = param.parent_component().domain
            for value in column:
                if _param_value(param, value) not in domain:
                    raise ContextError(
                        f"{self.name}: context value {float(value)!r} is not in the "
                        f"domain {domain.name} of the context Param {param.name!r}"
                    )

    def _find_nominal(self):
        """The one active objective of the model outside this block."""
        if self._links["nominal"] is not None and self._is_learned_active():
            return self._links["nominal"]
        found = [
            obj
            for obj in self.model().component_data_objects(pyo.Objective, active=True, descend_into=True)
            if not self._owns(obj)
        ]
        if not found:
            raise ModelError(
                f"{self.name}: the model has no active objective; the nominal "
                "objective J is needed to sample decisions and is restored by deactivate()"
            )
        if len(found) > 1:
            raise ModelError(
                f"{self.name}: the model has {len(found)} active objectives "
                f"({', '.join(o.name for o in found)}); keep exactly one active"
            )
        owner = _owning_preference_objective(found[0])
        if owner is not None:
            raise ModelError(
                f"{self.name}: the model's active objective {found[0].name!r} is the "
                f"learned objective of {owner.name!r}, not a nominal one; call "
                f"{owner.name}.deactivate() first"
            )
        return found[0]

    def _owns(self, component):
        return any(block is self for block in _ancestors(component))

    def _check_built(self):
        if "_links" not in self.__dict__:
            raise ModelError(
                "this PreferenceObjective is not on a model yet: add it to the "
                "model first (m.pref = PreferenceObjective(...) or m.pref = "
                "PreferenceObjective.load(path)), then call its methods through m.pref"
            )

    def _check_fitted(self):
        self._check_built()
        if self._learner is None:
            raise NotFittedError(
                f"{self.name}: no learned objective yet; call fit(pairs) (or "
                "PreferenceObjective.load(path)) before activate() or cost()"
            )

    # ------------------------------------------------------------------
    # Stage 1: sampling
    # ------------------------------------------------------------------
    def sample(self, contexts=None, per_context=20, seed=0, bias_weight=1.0,
               bias_width=1.0, time_limit=30.0, progress=None, around=None, n_jobs=1):
        """Sample feasible decisions by nominal and biased solves (stage 1 of the method).

        Args:
            contexts: array ``(m, k)``, one context per row (``None``: the
                Params' current values; a model without context may pass
                ``None``).
            per_context: solves per context (the nominal one included).
            seed: seed of the random bias targets.
            bias_weight: ``lambda``, see :mod:`pyomo_prefobj.sampling`.
            bias_width: ``w``, relative to each decision's scale; a binary or
                integer decision can move only when it is above 0.5 (its
                target then may round to another value).
            time_limit: seconds per solve; a solve stopped by it keeps its
                best feasible solution.
            progress: show a progress bar (default: the component's setting).
            around: array ``(m, d)``, one decision per context, to draw the
                bias targets around instead of the nominal optimum ``u*``
                (for example the learned objective's decisions, to sample
                near them, as :meth:`ask_in_rounds` does).
                The nominal decision is still solved and kept; the scales
                ``s`` are the same as without it.
            n_jobs: contexts whose biased solves run side by side, in
                threads (SCIP solves without Python's lock); -1: one per
                core. The candidates are the same for every ``n_jobs``
                (each context has a SCIP model of its own and the targets
                are drawn in the same order); with a ``time_limit`` that
                stops solves, a busier machine may stop them elsewhere.

        Returns:
            Candidates: distinct feasible decisions, each with its context
            and nominal cost; the model's variable and Param values are
            left as they were. A warning says at how many contexts the
            biased solves gave only the nominal decision.

        Raises:
            ModelError: the model has no (or several) active objectives, or
                the nominal objective is unbounded at a context.
            SolverUnavailableError: SCIP cannot be used.
            NoFeasibleCandidateError: no context gave a feasible solution.
        """
        self._check_built()
        contexts = self._check_contexts(contexts)
        per_context = oracles.check_count(per_context, f"{self.name}: per_context", ModelError)
        for name, value in (("bias_weight", bias_weight), ("bias_width", bias_width)):
            if not oracles.is_number(value) or value < 0:
                raise ModelError(f"{self.name}: {name} must be a finite number >= 0; got {value!r}")
        sampling.check_time_limit(time_limit, self.name)
        _check_seed(seed, self.name)
        threads = sampling.check_n_jobs(n_jobs, self.name)
        if around is not None:
            around = _float_array(around, f"{self.name}: around must hold numbers; got {around!r}")
            if around.shape != (len(contexts), self.n_decisions):
                raise ModelError(
                    f"{self.name}: around must have one decision per context, shape "
                    f"({len(contexts)}, {self.n_decisions}); got shape {around.shape}"
                )
            if not np.all(np.isfinite(around)):
                raise ModelError(f"{self.name}: around holds NaN or inf")
        show = self._progress if progress is None else progress
        nominal = self._find_nominal()
        model = self.model()
        saved_vars = [(v, v.value) for v in model.component_data_objects(pyo.Var, descend_into=True)]
        for var, value in saved_vars:
            if var.fixed and value is None:
                raise ModelError(f"{self.name}: variable {var.name!r} is fixed but has no value; "
                                 "give it one")
        saved_context = self._raw_context()
        rng = np.random.default_rng(seed)
        variables = self._variables()
        integer = np.array([v.is_integer() or v.is_binary() for v in variables])
        session = ScipSession(
            model, time_limit=time_limit, options=self._solver_options, skip=self._owns
        )
        sign = 1.0 if nominal.sense == pyo.minimize else -1.0
        rows, optima = [], []
        bar = progress_bar(total=len(contexts) * per_context, enabled=show, desc="sampling")
        try:
            for g, context in enumerate(contexts):
                self._set_context(context)
                session.rebuild()
                objective = sign * session.expression(nominal.expr, f"objective {nominal.name!r}")
                try:
                    found = session.minimize(objective)
                except ModelError as exc:
                    where = f" at context {context.tolist()}" if len(context) else ""
                    raise ModelError(
                        f"{self.name}:{where} the nominal objective "
                        f"{nominal.name!r} is unbounded over the model's constraints; bound "
                        "the decisions or add the missing constraints"
                    ) from exc
                if found is None:
                    warn_user(
                        f"{self.name}: context {context.tolist()} is infeasible or "
                        "failed to solve; skipped",
                    )
                    optima.append(None)
                    bar.update(per_context)
                    continue
                u = self._read(variables, integer)
                optima.append((u, pyo.value(nominal.expr)))
                rows.append((g, u, optima[-1][1]))
                bar.update(1)
            feasible = [o for o in optima if o is not None]
            if not feasible:
                raise NoFeasibleCandidateError(
                    f"{self.name}: no context gave a feasible solution "
                    f"({len(contexts)} tried); check the model and the contexts"
                )
            scales = sampling.decision_scales(variables, np.array([u for u, _ in feasible]))
            reference = float(np.mean([abs(cost) for _, cost in feasible])) or 1.0

            def prepared():
                # One SCIP model per context, translated at that context here;
                # the targets drawn in context order, however the solves run.
                for g, optimum in enumerate(optima):
                    if optimum is None or per_context == 1:
                        continue
                    self._set_context(contexts[g])
                    context_session = copy.copy(session)
                    context_session.rebuild()
                    objective = sampling.bias_objective(
                        context_session, variables, nominal, scales, reference, bias_weight
                    )
                    centre = optimum[0] if around is None else around[g]
                    targets = [centre + scales * rng.uniform(-bias_width, bias_width, len(scales))
                               for _ in range(per_context - 1)]
                    yield g, context_session, objective, targets

            for g, context_session, solutions in sampling.solve_contexts(
                    prepared(), threads, bar.update):
                self._set_context(contexts[g])
                for values in solutions:
                    if values is not None:
                        context_session.load(values)
                        rows.append((g, self._read(variables, integer), pyo.value(nominal.expr)))
        finally:
            bar.close()
            self._restore_context(saved_context)
            for var, old in saved_vars:
                var.set_value(old, skip_validation=True)
        candidates = self._candidates(rows, contexts)
        alone = sum(1 for members in candidates.groups() if len(members) < 2)
        if per_context > 1 and alone:
            warn_user(
                f"{self.name}: at {alone} of {len(candidates.groups())} contexts the "
                "biased solves returned only the nominal decision, so there is "
                f"nothing to compare there; {oracles.SAMPLE_MORE}",
            )
        return candidates

    @staticmethod
    def _read(variables, integer):
        u = np.array([0.0 if v.value is None else float(v.value) for v in variables])
        u[integer] = np.round(u[integer])
        return u

    def _candidates(self, rows, contexts):
        seen, keep = set(), []
        for g, u, cost in rows:
            key = (g, tuple(np.round(u, 6).tolist()))
            if key not in seen:
                seen.add(key)
                keep.append((g, u, cost))
        keep.sort(key=lambda row: row[0])
        dropped = len(rows) - len(keep)
        if dropped:
            logger.info("%s: dropped %d duplicate candidates", self.name, dropped)
        groups = np.array([g for g, _, _ in keep])
        return Candidates(
            u=np.array([u for _, u, _ in keep]),
            context=contexts[groups],
            nominal_cost=np.array([c for _, _, c in keep]),
            group=groups,
            names=self.decision_names,
            context_names=self.context_names,
        )

    # ------------------------------------------------------------------
    # Stages 2-3: preferences
    # ------------------------------------------------------------------
    def ask(self, candidates, n_pairs, oracle, seed=None, progress=None, rater=""):
        """Ask ``oracle`` about ``n_pairs`` same-context candidate pairs.

        See :func:`pyomo_prefobj.oracles.ask`; returns :class:`Pairs`.
        """
        self._check_built()
        _check_seed(seed, self.name)
        if isinstance(candidates, Candidates):
            self._refuse_other_decisions(candidates, "candidates")
        show = self._progress if progress is None else progress
        return oracles.ask(candidates, n_pairs, oracle, seed=seed, progress=show, rater=rater)

    def ask_in_rounds(self, candidates, n_pairs, oracle, rounds=3, initial=None, per_context=9,
                      bias_width=0.2, bias_weight=1000.0, activation=None, solver=None,
                      solve_options=None, fit_options=None, sample_options=None, seed=None,
                      progress=None, rater=""):
        """Ask in rounds, the later questions about decisions near the learned optimum.

        ``initial`` random pairs of ``candidates`` first; then, ``rounds``
        times: fit, solve the model with the learned objective at each
        context of ``candidates`` (``u_r``), sample ``per_context`` decisions
        around each ``u_r`` (``sample(around=...)``), and ask random pairs of
        those (``u_r`` among them) at the same context; a last fit on every
        answer. See :mod:`pyomo_prefobj.rounds`.

        Args:
            candidates: :class:`Candidates` (from :meth:`sample`).
            n_pairs: questions in all, the rounds' included.
            oracle: ``oracle(a, b)``, as for :meth:`ask`.
            rounds: rounds of local questions (0: :meth:`ask` and
                :meth:`fit`).
            initial: random questions first (default ``n_pairs // 2``, and
                ``n_pairs`` with ``rounds=0``); the rest is split evenly over
                the rounds.
            per_context: solves per context and round in the local sampling
                (the nominal one included); ``u_r`` is added to them.
            bias_width, bias_weight: the local sampling's ``w`` and
                ``lambda`` (see :meth:`sample`): narrow targets, held to
                strongly, keep the new decisions near ``u_r``.
            activation: keyword arguments of :meth:`activate` for the solves
                (e.g. ``{"span_penalty": 0.03}``).
            solver: a Pyomo solver object; each solve is
                ``solver.solve(model, **solve_options)`` and must load the
                solution (default: :class:`~pyomo_prefobj.PersistentScip`
                with ``solver_options=SCIP_OPTIONS``).
            solve_options: keyword arguments of ``solver.solve``.
            fit_options: keyword arguments of :meth:`fit` (``seed``,
                ``loss``, ``min_epochs``, ...), the same for every fit.
            sample_options: further keyword arguments of :meth:`sample`
                (``time_limit``, ``n_jobs``: the local sampling of a round
                in threads).
            seed: seed of the questions and the local sampling.
            progress: show a progress bar of the rounds (default: the
                component's setting).
            rater: name stored with every answer.

        Returns:
            RoundsResult: ``pairs`` (every answer), ``candidates`` (the
            initial and every local candidate), ``reports`` (one
            :class:`FitReport` per fit) and ``decisions`` (each round's
            ``u_r``). The component holds the last fit, on every answer; the
            model's variable values are left as they were. An oracle's
            :class:`StopAsking` ends the rounds with the answers so far (and
            a last fit on them), as does a round where no solve of the
            learned objective gives a solution (with a warning naming the
            solver's error): the answers are not lost with it.

        Raises:
            ModelError: bad counts or options (unknown ``activation``
                and ``sample_options`` keys and their values included), or
                the learned objective is active (deactivate it first);
                checked before the first question.
            LearningError: unknown or out-of-range ``fit_options``, also
                checked before the first question.
            PairsError: ``candidates`` are not this component's.
        """
        self._check_built()
        _check_seed(seed, self.name)
        return rounds_module.ask_in_rounds(
            self, candidates, n_pairs, oracle, rounds=rounds, initial=initial,
            per_context=per_context, bias_width=bias_width, bias_weight=bias_weight,
            activation=activation, solver=solver, solve_options=solve_options,
            fit_options=fit_options, sample_options=sample_options, seed=seed,
            progress=progress, rater=rater,
        )

    # ------------------------------------------------------------------
    # Stage 4: learning
    # ------------------------------------------------------------------
    def fit(self, pairs, n_components=None, seed=0, candidates=None, warm_start=False, **options):
        """Fit the learned objective to ``pairs`` (stage 4 of the method).

        Args:
            pairs: :class:`Pairs`, preferred decision first.
            n_components: PCA coordinates ``r`` (``None``: ``min(30, allowed)``).
            seed: seed of the split, initial weights and batches.
            candidates: a :class:`Candidates` set whose decisions give the
                PCA basis (default: the decisions in ``pairs``).
            warm_start: continue from the current fit (same basis, its
                weights as the start), e.g. when new answers arrive.
            **options: further :class:`PreferenceLearner` hyperparameters
                (``loss``, ``margin``, ``l2``, ``max_epochs``, ``min_epochs``,
                ``device``, ...).

        Returns:
            FitReport: losses, epochs and held-out pair accuracy.
        """
        self._check_built()
        if not isinstance(pairs, Pairs):
            raise PairsError(f"{self.name}: fit needs a Pairs dataset; got {type(pairs).__name__}")
        if pairs.n_decisions != self.n_decisions:
            raise PairsError(
                f"{self.name}: the pairs hold decisions of length {pairs.n_decisions}; "
                f"this component has {self.n_decisions} decisions"
            )
        if pairs.n_context != self.n_context:
            raise PairsError(
                f"{self.name}: the pairs hold contexts of length {pairs.n_context}; "
                f"this component has {self.n_context} context Params"
            )
        if candidates is not None and not isinstance(candidates, Candidates):
            raise PairsError(
                f"{self.name}: fit's candidates must be a Candidates set (from sample); "
                f"got {type(candidates).__name__}"
            )
        if pairs.names:  # pairs built from bare arrays carry no names
            self._refuse_other_decisions(pairs, "pairs")
        if candidates is not None:
            self._refuse_other_decisions(candidates, "candidates")
        options.setdefault("progress", self._progress)
        learner = learner_from_options(self.name, n_components, seed, **options)
        if warm_start and self._learner is None:
            raise NotFittedError(f"{self.name}: warm_start=True needs an earlier fit")
        if options.get("nominal_weight") is True and self._find_nominal().sense == pyo.maximize:
            # The learned weight prices J as a cost: a maximized J enters negated.
            pairs = dataclasses.replace(
                pairs, preferred_cost=-pairs.preferred_cost, other_cost=-pairs.other_cost
            )
        learner.fit(
            pairs,
            decisions=None if candidates is None else candidates.u,
            init=self._learner if warm_start else None,
        )
        self._learner = learner
        if self._is_learned_active():
            self.activate(self.context_values(), **self._activation)
        return learner.report_

    # ------------------------------------------------------------------
    # Stage 5: reintegration
    # ------------------------------------------------------------------
    def cost(self, context=None):
        """The learned cost at ``context`` in decision space.

        Returns:
            QuadraticCost: ``H`` ``(d, d)``, ``q`` ``(d,)``, constant; its
            ``value(u)`` equals the learned quadratic's value at ``u``. The
            activated objective adds to it the learned share of the nominal
            cost (``fit(nominal_weight=True)``; per unit of ``J``:
            ``learner.nominal_weights(context)``) and whatever
            ``tie_break`` / ``span_penalty`` ask for.
        """
        self._check_fitted()
        return self._learner.cost(self._check_context(context))

    def _is_learned_active(self):
        learned = self.component("learned")
        return learned is not None and learned.active and self.active

    def activate(self, context=None, formulation=None, trust_region=None, tie_break=None,
                 span_penalty=None):
        """Make the learned objective at ``context`` the model's objective.

        The nominal objective is deactivated and remembered; the context
        Params take the values of ``context`` (``None``: their current
        values). Calling it again changes the context; the rows that depend
        on the fit only (the PCA coordinates ``z = P (u - mu)``, the span
        penalty's rows) stay the same Pyomo components, so a persistent
        solver only updates the context's rows and objective.

        Args:
            context: context values, length ``k`` (``None``: current values;
                a number where there is one context Param).
            formulation: ``"compact"`` or ``"dense"`` (default: the
                component's).
            trust_region: keep the PCA coordinates ``z = P (u - mu)`` of the
                solution within the range of the decisions the objective was
                fitted on, widened by this fraction of that range on each
                side; ``None`` (the paper's setting, default) leaves ``z``
                free. The learned quadratic is only meaningful where it saw
                data: unbounded, the solver may extrapolate along a direction
                of small curvature to decisions no one was asked about.
            tie_break: add ``tie_break * J(u) / |J(mu)|`` to the learned
                objective (``J`` the nominal objective, ``mu`` the mean
                fitted decision); ``None`` (default, the paper's) adds
                nothing. The learned cost is flat off the PCA span of the
                sampled decisions, so there the solver's choice is
                arbitrary; a small weight (e.g. 1e-3) lets the nominal
                objective decide those directions without overriding any
                learned preference.
            span_penalty: add ``span_penalty * kappa * ||v||_1 / s_r``, where
                ``v = (u - mu) - W z`` is the part of ``u - mu`` off the PCA
                span the objective was fitted on (``W`` maps ``z`` back to
                decisions), ``kappa`` the mean curvature of the learned
                quadratic at this context (mean eigenvalue of ``Hz``) and
                ``s_r`` the standard deviation of the fitted decisions along
                the last kept PCA direction; ``None`` (default, the paper's)
                adds nothing. The learned cost cannot see decisions move off
                that span; the penalty keeps the solution near it. It is
                linear (``2 d`` non-negative variables, ``d`` rows of
                ``r + 2`` terms), so the problem stays a convex MIQP of the
                same kind. ``0.03`` is a reasonable start.

        Raises:
            NotFittedError: before ``fit``.
            ContextError: ``context`` has the wrong length, lies outside a
                context Param's domain, or makes the learned cost overflow.
            ModelError: no single active nominal objective.

        Warns where a context value lies more than ``EXTRAPOLATION_LIMIT``
        (4) standard deviations from the mean of the fitted contexts.
        """
        if self.component("decision") is None:
            if self.parent_block() is None:
                self._check_built()
            return super().activate()  # Pyomo's own, while the block is built
        self._check_fitted()
        values = self._check_context(context)
        formulation, options = self._check_activation(formulation, trust_region, tie_break,
                                                      span_penalty)
        was_active = self._is_learned_active()
        nominal = self._find_nominal()
        factor, linear, learned_weight = self._learner.terms(values.reshape(1, -1))
        # H = S S' must be finite too: S of 1e300 is, its square is not.
        hessian = np.einsum("nij,nkj->nik", factor, factor)
        if not all(np.all(np.isfinite(a)) for a in (hessian, linear, learned_weight)):
            raise ContextError(
                f"{self.name}: the learned cost is not finite at context {values.tolist()}; "
                "it lies far outside the contexts the objective was fitted on"
            )
        self._warn_if_extrapolated(values)
        saved_context = self._saved_context if was_active else self._raw_context()
        try:
            self._prepare_learned_block(formulation, trust_region, span_penalty)
            self._push(formulation, factor[0], linear[0], values)
            if trust_region is not None:
                self._bound_coordinates(float(trust_region))
            if learned_weight[0]:
                self._add_nominal_share(nominal, float(learned_weight[0]))
            if tie_break:
                self._add_tie_break(nominal, float(tie_break))
            if span_penalty:
                self._add_span_penalty(float(span_penalty), factor[0])
            self._set_start_values(factor[0])
            self._set_context(values)
            super().activate()
            nominal.deactivate()
        except Exception:
            # Whatever failed, the nominal objective stays (or comes back).
            if self.component("learned") is not None:
                self._delete(self, self.learned)
            self._links["built_for"] = None
            self._restore_context(saved_context)
            nominal.activate()
            self._links["nominal"] = None
            raise
        self._links["nominal"] = nominal
        self._saved_context = saved_context
        self._formulation = formulation
        self._activation = options

    def _check_activation(self, formulation=None, trust_region=None, tie_break=None,
                          span_penalty=None):
        """ModelError unless these are usable ``activate`` options; returns
        the formulation to use and the other options as a dict."""
        formulation = self._formulation if formulation is None else formulation
        if formulation not in FORMULATIONS:
            raise ModelError(f"{self.name}: formulation must be one of {FORMULATIONS}; got {formulation!r}")
        options = {"trust_region": trust_region, "tie_break": tie_break,
                   "span_penalty": span_penalty}
        for name, option in options.items():
            if option is not None and (not oracles.is_number(option) or option < 0):
                raise ModelError(f"{self.name}: {name} must be a number >= 0 or None; got {option!r}")
        return formulation, options

    def _warn_if_extrapolated(self, values):
        """Warn where ``values`` lie far from the contexts of the fitted pairs."""
        learner = self._learner
        if not len(values):
            return
        deviation = np.abs(values - learner.context_mean_) / learner.context_scale_
        k = int(np.argmax(deviation))
        if deviation[k] > EXTRAPOLATION_LIMIT:
            warn_user(
                f"{self.name}: context value {float(values[k])!r} of {self.context_names[k]!r} "
                f"lies {deviation[k]:.3g} standard deviations from the mean of the contexts "
                "the objective was fitted on; the learned cost is extrapolated there"
            )

    def deactivate(self):
        """Bring the nominal objective back and switch the learned one off.

        The context Params get back the values they had before ``activate``.
        """
        if self._is_learned_active():
            self.learned.deactivate()
            self._links["nominal"].activate()
            self._restore_context(self._saved_context)
            self._links["nominal"] = None
        super().deactivate()

    def _prepare_learned_block(self, formulation, trust_region, span_penalty):
        """Empty ``self.learned`` for a new activation, keeping what does not
        depend on the context.

        The coordinate rows ``z = P (u - mu)`` (``r`` rows of up to ``d``
        terms) and the span penalty's rows depend on the fit only, so a
        repeated ``activate`` of the same fit keeps them (a persistent
        solver then sees only the context's rows and objective change);
        everything else is rebuilt.
        """
        learned = self.component("learned")
        if learned is None or self._links.get("built_for") is not self._learner:
            if learned is not None:
                self._delete(self, learned)
            self.learned = pyo.Block()
            self._links["built_for"] = self._learner
            return
        keep = set()
        if formulation == "compact" or trust_region is not None or span_penalty:
            keep |= {"z", "z_definition"}
        if span_penalty:
            keep |= {"span_above", "span_below", "span_residual"}
        for component in list(learned.component_objects(descend_into=False)):
            if component.local_name not in keep:
                self._delete(learned, component)
        if learned.component("z") is not None:
            for z in learned.z.values():
                z.setlb(None)
                z.setub(None)
        learned.activate()

    def _delete(self, block, component):
        """Delete ``component`` of ``block``, and the model's stored solver
        results about it.

        A solve through Pyomo's classic interfaces (``SolverFactory('scip')
        .solve(m)``) keeps the solution and its symbol map in
        ``m.solutions``, with a reference to every variable and row it
        solved; a reference to a component no longer in the model makes
        ``m.clone()`` fail. Only the entries of the deleted component go;
        what the user's own components were solved with stays.
        """
        gone = {id(component)}
        if component.ctype is pyo.Block:
            gone.update(id(data) for data in component.component_data_objects(descend_into=True))
        elif component.is_indexed():
            gone.update(id(data) for data in component.values())
        solutions = getattr(self.model(), "solutions", None)
        for solution in getattr(solutions, "solutions", ()):
            for entries in getattr(solution, "_entry", {}).values():
                for key in gone.intersection(entries):
                    del entries[key]
        for symbols in getattr(solutions, "symbol_map", {}).values():
            for key in gone.intersection(symbols.byObject):
                symbols.bySymbol.pop(symbols.byObject.pop(key), None)
            for alias in [a for a, data in symbols.aliases.items() if id(data) in gone]:
                del symbols.aliases[alias]
        block.del_component(component)

    def _add_coordinates(self, block):
        """Add ``z = P (u - mu)`` (``r`` variables and equalities) to ``block``
        unless it has them already."""
        if block.component("z") is not None:
            return
        learner, u = self._learner, self._variables()
        projection = learner.projection_
        shift = projection @ learner.mean_
        block.z = pyo.Var(range(len(projection)))
        _add_rows(block, "z_definition", range(len(projection)), lambda j: block.z[j]
                  == sum(float(projection[j, i]) * u[i] for i in range(len(u)) if projection[j, i] != 0.0)
                  - float(shift[j]))

    def _add_tie_break(self, nominal, weight):
        """Add ``weight * J / |J(mu)|`` to the learned objective."""
        variables = self._variables()
        saved = [v.value for v in variables]
        try:
            for var, value in zip(variables, self._learner.mean_):
                var.set_value(float(value), skip_validation=True)
            scale = abs(pyo.value(nominal.expr, exception=False) or 0.0) or 1.0
        finally:
            for var, value in zip(variables, saved):
                var.set_value(value, skip_validation=True)
        self._add_nominal_share(nominal, weight / scale)

    def _add_nominal_share(self, nominal, coefficient):
        """Add ``coefficient * J`` (as a cost to minimize) to the learned objective."""
        sign = 1.0 if nominal.sense == pyo.minimize else -1.0
        objective = self.learned.objective
        objective.set_value(objective.expr + (sign * coefficient) * nominal.expr)

    def _add_span_penalty(self, weight, factor):
        """Add ``weight * kappa * ||(u - mu) - W z||_1 / s_r`` to the objective."""
        block, learner, u = self.learned, self._learner, self._variables()
        self._add_coordinates(block)  # the dense form has none yet
        projection = learner.projection_
        std, back = _span_basis(projection)
        r = len(projection)
        kappa = float(np.sum(factor ** 2)) / r  # trace(S S') / r
        rate = weight * kappa / float(std[-1])
        d = len(u)
        if block.component("span_residual") is None:  # kept from the last activate
            block.span_above = pyo.Var(range(d), bounds=(0, None))
            block.span_below = pyo.Var(range(d), bounds=(0, None))
            _add_rows(block, "span_residual", range(d), lambda i: u[i]
                      - sum(float(back[i, j]) * block.z[j] for j in range(r) if back[i, j] != 0.0)
                      - block.span_above[i] + block.span_below[i] == float(learner.mean_[i]))
        objective = block.objective
        objective.set_value(
            objective.expr + rate * sum(block.span_above[i] + block.span_below[i] for i in range(d))
        )

    def _set_start_values(self, factor):
        """Give the learned block's variables the values the current decision
        implies, so that the model's values are one complete feasible
        solution a solver can start from (``PersistentScip`` with
        ``warmstart_discrete_vars=True``). Nothing happens while a decision
        variable has no value."""
        values = [var.value for var in self._variables()]
        block = self.learned
        if any(value is None for value in values) or block.component("z") is None:
            return
        learner = self._learner
        offset = np.asarray(values, dtype=float) - learner.mean_
        # Within the trust region's bounds, if any: rounding may put a
        # decision on their edge a hair outside. What follows derives from
        # this z.
        bounds = [block.z[j].bounds for j in range(len(learner.projection_))]
        z = np.clip(learner.projection_ @ offset,
                    [-np.inf if lower is None else lower for lower, _ in bounds],
                    [np.inf if upper is None else upper for _, upper in bounds])
        for j, value in enumerate(z):
            block.z[j].set_value(float(value))
        if block.component("w") is not None:
            w = (_scale(factor) * factor).T @ z
            for k, value in enumerate(w):
                block.w[k].set_value(float(value))
            block.e.set_value(float(w @ w))
        if block.component("span_residual") is not None:
            residual = offset - _span_basis(learner.projection_)[1] @ z
            for i, value in enumerate(residual):
                block.span_above[i].set_value(max(float(value), 0.0))
                block.span_below[i].set_value(max(-float(value), 0.0))

    def _bound_coordinates(self, widen):
        """Bound ``z = P (u - mu)`` to the fitted decisions' range, widened."""
        block, learner = self.learned, self._learner
        low, high = learner.z_range_
        span = high - low
        low, high = low - widen * span, high + widen * span
        self._add_coordinates(block)  # the dense form has none yet
        for j in range(len(low)):
            block.z[j].setlb(float(low[j]))
            block.z[j].setub(float(high[j]))

    def _push(self, formulation, factor, linear, context):
        """Write the learned objective at one context into ``self.learned``.

        Coefficients are numbers, not mutable Params: Pyomo's direct SCIP
        interfaces turn a mutable Param into a fixed variable, which would
        make every ``S z`` product bilinear for the solver.
        """
        block, learner, u = self.learned, self._learner, self._variables()
        d = self.n_decisions
        if formulation == "compact":
            r = len(linear)
            c = _scale(factor)
            scaled = c * factor
            self._add_coordinates(block)
            block.w = pyo.Var(range(r))
            _add_rows(block, "w_definition", range(r),
                      lambda k: block.w[k] == _summed(float(scaled[j, k]) * block.z[j] for j in range(r)))
            # One epigraph row for the whole quadratic: SCIP closed the gap about
            # twice as fast as with one row per coordinate on the COVID-19 model.
            block.e = pyo.Var(bounds=(0, None))
            block.epigraph = pyo.Constraint(
                expr=block.e >= _summed((block.w[k] ** 2 for k in range(r)), SumExpression))
            block.objective = pyo.Objective(
                expr=(0.5 / c ** 2) * block.e + _summed(float(linear[j]) * block.z[j] for j in range(r))
            )
        else:
            cost = learner.cost(context)
            H, q = cost.hessian, cost.linear
            block.objective = pyo.Objective(
                expr=sum(0.5 * float(H[i, i]) * u[i] ** 2 for i in range(d))
                + sum(float(H[i, j]) * u[i] * u[j] for i in range(d) for j in range(i + 1, d))
                + sum(float(q[i]) * u[i] for i in range(d))
                + cost.constant
            )

    # ------------------------------------------------------------------
    # Persistence
    # ------------------------------------------------------------------
    def save(self, path):
        """Save the learned objective to ``path`` (an ``.npz`` file, no pickle).

        The file holds a JSON header (format name and version, decision and
        context names, formulation, learner hyperparameters) and the learned
        arrays; :func:`load_preference_objective` reads it back.
        """
        self._check_fitted()
        header = {
            "format": MODEL_FORMAT,
            "version": MODEL_VERSION,
            "decisions": list(self.decision_names),
            "context": list(self.context_names),
            "formulation": self._formulation,
            "learner": self._learner.get_params(),
        }
        arrays = self._learner.learned_arrays()
        np.savez(path, header=np.array(json.dumps(header)), **arrays)


def _scale(factor):
    """``c = 1 / max |S|``: the compact form uses ``w = c S' z`` (same argmin,
    an LP SCIP solves without numerical trouble)."""
    largest = float(np.abs(factor).max())
    return 1.0 / largest if largest > 0 else 1.0


def _span_basis(projection):
    """The standard deviations of the PCA directions and ``W`` (shape
    ``(d, r)``), with ``u - mu = W z`` on the span of ``P`` (``projection``,
    whose rows are the directions divided by their standard deviations)."""
    std = 1.0 / np.linalg.norm(projection, axis=1)
    return std, projection.T * std ** 2


def _ancestors(component):
    """The blocks that hold ``component``, innermost first."""
    block = component.parent_block()
    while block is not None:
        yield block
        block = block.parent_block()


def _check_saved_order(meta, decision_names, context_names):
    """Refuse the saved names given again in another order.

    Other names are allowed (``load(path, decisions=...)`` attaches a fit to
    another model's variables), but the same names in another order would
    silently permute the learned objective.
    """
    for what, saved, given, error in (("decisions", meta["decisions"], decision_names, DecisionError),
                                      ("context", meta["context"], context_names, ContextError)):
        saved, given = tuple(saved), tuple(given)
        if given != saved and sorted(given) == sorted(saved):
            raise error(
                f"the {what} given are the saved ones in another order "
                f"({_first_difference(given, saved)}); give them in the saved order "
                f"{list(saved)}, or leave {what}= out to use the saved names"
            )


def _owning_preference_objective(component):
    """The PreferenceObjective block that holds ``component``, or ``None``."""
    return next((b for b in _ancestors(component) if isinstance(b, PreferenceObjectiveData)), None)


def load_preference_objective(path, decisions=None, context=None, progress=True,
                              solver_options=None):
    """Read a learned objective saved by ``save``; also ``PreferenceObjective.load``.

    Returns an unconstructed :class:`PreferenceObjective` to add to a model:
    ``m.pref = PreferenceObjective.load(path)``. By default the decision and
    context components are found on that model by their saved names; pass
    ``decisions`` / ``context`` to use other ones. ``progress`` and
    ``solver_options`` are the constructor's.

    Raises:
        FileFormatError: the file is missing, corrupted, not a saved
            objective, or of another format version.
        DecisionError, ContextError: (when the block is added to a model)
            the ``decisions`` / ``context`` given are not as many as the
            saved ones, or are the saved ones in another order.
    """
    arrays = read_npz(path, "a saved PreferenceObjective")
    try:
        header = json.loads(str(arrays.pop("header")))
    except (KeyError, ValueError) as exc:
        raise FileFormatError(f"{path} is not a saved PreferenceObjective (no valid header)") from exc
    if header.get("format") != MODEL_FORMAT:
        raise FileFormatError(f"{path} is not a saved PreferenceObjective (format {header.get('format')!r})")
    if header.get("version") != MODEL_VERSION:
        raise FileFormatError(
            f"{path} has format version {header.get('version')!r}; this "
            f"pyomo_prefobj reads version {MODEL_VERSION}"
        )
    try:
        learner = PreferenceLearner.from_arrays(header["learner"], arrays)
    except Exception as exc:
        raise FileFormatError(f"{path}: the learned arrays are corrupted: {exc}") from exc
    return PreferenceObjective(
        decisions=decisions,
        context=context if context is not None else (),
        progress=progress,
        solver_options=solver_options,
        _saved=(header, learner),
    )


PreferenceObjective.load = staticmethod(load_preference_objective)  # noqa: F821


def _keyword_arguments_only(self, *args, **kwargs):
    """``PreferenceObjective(x, ...)``: Pyomo would read ``x`` as an index set."""
    raise DecisionError(
        "PreferenceObjective takes keyword arguments only, e.g. "
        "PreferenceObjective(decisions=[m.x, m.y], context=[m.demand]); got "
        f"{len(args)} positional argument(s) (an indexed PreferenceObjective is not supported)"
    )


# Positional arguments make Pyomo build the indexed variant; refuse it before
# it is added to the model, so a failed assignment leaves nothing behind.
PreferenceObjective._indexed_custom_block.__init__ = _keyword_arguments_only  # noqa: F821

_scalar_init = PreferenceObjective._scalar_custom_block.__init__  # noqa: F821


# Keywords the block takes: build's, and Pyomo's own name and doc.
_KEYWORDS = frozenset(inspect.signature(PreferenceObjectiveData.build).parameters) - {"self", "args"}
_PYOMO_KEYWORDS = frozenset({"name", "doc"})


def _checked_init(self, *args, decisions=None, context=(), **kwargs):
    """Check the arguments before Pyomo adds the block: an assignment that
    would replace a component of the same name fails before deleting it."""
    unknown = sorted(set(kwargs) - _KEYWORDS - _PYOMO_KEYWORDS)
    if unknown:
        known = sorted(k for k in _KEYWORDS | _PYOMO_KEYWORDS if not k.startswith("_"))
        raise ArgumentError(
            f"PreferenceObjective got unknown keyword argument(s) {unknown}; it takes {known}"
        )
    _check_arguments(decisions, context)
    _scalar_init(self, *args, decisions=decisions, context=context, **kwargs)


PreferenceObjective._scalar_custom_block.__init__ = _checked_init  # noqa: F821

PreferenceObjective.__doc__ = (  # noqa: F821
    """A learned objective for a Pyomo model (a Pyomo Block component).

    ``m.pref = PreferenceObjective(decisions=[m.x, m.y], context=[m.demand])``
    adds it to ``m``. The methods live on the component's data class,
    :class:`PreferenceObjectiveData` (``help(m.pref)`` or
    ``help(pyomo_prefobj.PreferenceObjectiveData)``): ``sample``, ``ask``,
    ``fit``, ``activate``, ``deactivate``, ``cost``, ``save``, and
    ``PreferenceObjective.load`` to read a saved one back.

    Keyword Args:
        decisions: Var components or VarData the objective is a function
            of, in this order.
        context: mutable Param components or ParamData holding the context
            (may be empty).
        formulation: ``"compact"`` (default) or ``"dense"``.
        progress: show progress bars on long work (default True).
        solver_options: SCIP parameters for the component's own solves.
        name, doc: Pyomo's own.

    Raises:
        ArgumentError: an unknown keyword argument.
        DecisionError, ContextError: unusable decisions or context Params.
    """
)
