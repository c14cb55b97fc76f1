"""The README's Quickstart runs as written and shows a gain."""

import os
import re

import numpy as np
import pyomo.environ as pyo

from pyomo_prefobj import PreferenceObjective

README = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")


def quickstart_code():
    with open(README) as handle:
        text = handle.read()
    section = text[text.index("## Quickstart"):]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match, "README's Quickstart has no python block"
    return match.group(1)


def test_quickstart_runs_and_the_learned_decision_suits_the_user_better(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # it saves pref.npz in the working directory
    namespace = {"__name__": "quickstart"}
    exec(compile(quickstart_code(), README, "exec"), namespace)
    user_cost, learned, nominal = namespace["user_cost"], namespace["learned"], namespace["nominal"]
    assert user_cost(learned, 0.5) < 0.5 * user_cost(nominal, 0.5)
    m = namespace["m"]
    # the nominal decision compared with is the one solved at x0 = 0.5, feasible there
    assert pyo.value(m.x0) == 0.5
    for row in m.component_data_objects(pyo.Constraint, active=True):
        body = pyo.value(row.body)
        assert not row.has_lb() or body >= pyo.value(row.lower) - 1e-6, row.name
        assert not row.has_ub() or body <= pyo.value(row.upper) + 1e-6, row.name
    # deactivated at the end: the nominal objective is the model's only one
    assert list(m.component_data_objects(pyo.Objective, active=True)) == [m.cost]
    fitted = m.pref.cost([0.5])
    m.del_component(m.pref)
    m.pref = PreferenceObjective.load(str(tmp_path / "pref.npz"))  # the reload it names
    np.testing.assert_allclose(m.pref.cost([0.5]).H, fitted.H)
    np.testing.assert_allclose(m.pref.cost([0.5]).q, fitted.q)
