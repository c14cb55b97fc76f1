"""Tests for the PySCIPOpt-backed ``scip`` executable."""

import os
import shlex
import stat
import subprocess
import sys

import pytest

pyo = pytest.importorskip("pyomo.environ")
pytest.importorskip("pyscipopt")

from pyomo.common import Executable  # noqa: E402
from pyomo.solvers.plugins.solvers.SCIPAMPL import SCIPAMPL  # noqa: E402

from pyomo_prefobj import scip_shell  # noqa: E402

posix_only = pytest.mark.skipif(
    os.name != "posix", reason="uses /bin/sh wrapper scripts"
)

# Directory from which ``pyomo_prefobj`` is importable (repo root when the
# package is not installed).
PKG_ROOT = os.path.dirname(
    os.path.dirname(os.path.abspath(scip_shell.__file__))
)

# Optimal objective of the MIQP in ``test_pyomo_solves_miqp``, by hand:
# with b = 1 (x <= 4) and n = 2, the point (x, y) = (3.5, 2.5) violates
# x + y <= 4 and projects onto (2.5, 1.5): 1 + 1 + 0.6**2 + 1.5 = 3.86.
# The runner-up (b = 1, n = 1) gives 4.56; see ``_enumerate_miqp``.
MIQP_OPTIMUM = 3.86
TOL = 1e-5


def _write_script(folder, body):
    """Write an executable ``/bin/sh`` script named ``scip`` into folder."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "scip"
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP)
    return path


def _write_wrapper(folder):
    """Write a ``scip`` wrapper that runs this package's shell module."""
    return _write_script(
        folder,
        "PYTHONPATH=%s${PYTHONPATH:+:$PYTHONPATH} exec %s -m "
        'pyomo_prefobj.scip_shell "$@"'
        % (shlex.quote(PKG_ROOT), shlex.quote(sys.executable)),
    )


def _prepend_path(*folders):
    """Return PATH with folders put in front."""
    return os.pathsep.join([str(f) for f in folders] + [os.environ["PATH"]])


def _enumerate_miqp():
    """Solve the test MIQP exactly by enumerating b and n.

    For fixed (b, n) the problem is the projection of (3.5, 2.5) onto the
    box [0, 1 + 3b] x [0, 4] intersected with x + y <= 6 - n: clip to the
    box; if that violates the half-space, the half-space is active and the
    optimum is the clipped minimiser along the line x + y = 6 - n.
    """

    def clip(value, low, high):
        return min(max(value, low), high)

    best = None
    for b in (0, 1):
        for n in range(5):
            x_hi, y_hi, rhs = 1.0 + 3.0 * b, 4.0, 6.0 - n
            x, y = clip(3.5, 0.0, x_hi), clip(2.5, 0.0, y_hi)
            if x + y > rhs:
                low, high = max(0.0, rhs - y_hi), min(x_hi, rhs)
                x = clip((3.5 + rhs - 2.5) / 2, low, high)
                y = rhs - x
            value = (x - 3.5) ** 2 + (y - 2.5) ** 2 + (n - 2.6) ** 2 + 1.5 * b
            if best is None or value < best[0]:
                best = (value, x, y, b, n)
    return best


@pytest.fixture
def scip_on_path(tmp_path, monkeypatch):
    """Put a ``scip`` wrapper first on PATH and make Pyomo look again."""
    wrapper = _write_wrapper(tmp_path / "bin")
    monkeypatch.setenv("PATH", _prepend_path(wrapper.parent))
    # Test the bundled library even if a real SCIP is installed.
    monkeypatch.setenv(scip_shell.BUNDLED_ENV, "1")
    # Without the environment on PATH, importing the package registered its
    # console script as Pyomo's scip; a scip on PATH must be found instead.
    executable = Executable("scip")
    registered = executable._path_override
    executable.set_path(None)
    yield wrapper
    monkeypatch.undo()
    executable.set_path(registered)
    for key in list(SCIPAMPL._known_versions):
        if key and str(key).startswith(str(tmp_path)):
            del SCIPAMPL._known_versions[key]


def test_library_path_exists():
    assert os.path.exists(scip_shell.library_path())


def test_version(capfd, monkeypatch):
    monkeypatch.setenv(scip_shell.BUNDLED_ENV, "1")  # never exec in pytest
    assert scip_shell.main(["--version"]) == 0
    out, _ = capfd.readouterr()
    assert out.startswith("SCIP version ")


def test_missing_library(capfd, monkeypatch):
    monkeypatch.setenv(scip_shell.BUNDLED_ENV, "1")
    monkeypatch.setattr(scip_shell, "_pyscipopt_dir", lambda: None)
    monkeypatch.setattr(scip_shell.ctypes.util, "find_library", lambda _: None)
    with pytest.raises(FileNotFoundError):
        scip_shell.library_path()
    assert scip_shell.main(["--version"]) == 1
    assert "cannot find the SCIP library" in capfd.readouterr().err


def test_enumeration_matches_hand_computation():
    value, x, y, b, n = _enumerate_miqp()
    assert value == pytest.approx(MIQP_OPTIMUM, abs=1e-12)
    assert (x, y, b, n) == pytest.approx((2.5, 1.5, 1, 2))


@posix_only
def test_pyomo_solves_miqp(scip_on_path):
    opt = pyo.SolverFactory("scip")
    assert opt.available()
    assert opt.executable() == str(scip_on_path)
    assert opt.version()[:1] >= (8,)

    m = pyo.ConcreteModel()
    m.x = pyo.Var(bounds=(0, 4))
    m.y = pyo.Var(bounds=(0, 4))
    m.b = pyo.Var(domain=pyo.Binary)
    m.n = pyo.Var(domain=pyo.Integers, bounds=(0, 4))
    m.obj = pyo.Objective(
        expr=(m.x - 3.5) ** 2
        + (m.y - 2.5) ** 2
        + (m.n - 2.6) ** 2
        + 1.5 * m.b
    )
    m.budget = pyo.Constraint(expr=m.x + m.y + m.n <= 6)
    m.switch = pyo.Constraint(expr=m.x <= 1 + 3 * m.b)

    # An option makes Pyomo write scip.set and run SCIP from another cwd.
    opt.options["limits/time"] = 60
    results = opt.solve(m)

    condition = results.solver.termination_condition
    assert condition == pyo.TerminationCondition.optimal
    assert pyo.value(m.obj) == pytest.approx(MIQP_OPTIMUM, abs=TOL)
    assert pyo.value(m.obj) == pytest.approx(_enumerate_miqp()[0], abs=TOL)
    assert round(pyo.value(m.b)) == 1
    assert round(pyo.value(m.n)) == 2
    assert pyo.value(m.x) == pytest.approx(2.5, abs=1e-4)
    assert pyo.value(m.y) == pytest.approx(1.5, abs=1e-4)


def _run_module(path_dirs, extra_env=None):
    """Run ``python -m pyomo_prefobj.scip_shell --version`` in a subprocess."""
    env = dict(os.environ)
    env.pop(scip_shell.BUNDLED_ENV, None)
    env["PATH"] = _prepend_path(*path_dirs)
    env["PYTHONPATH"] = PKG_ROOT
    env.update(extra_env or {})
    return subprocess.run(
        [sys.executable, "-m", "pyomo_prefobj.scip_shell", "--version"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        universal_newlines=True,
        timeout=60,
    )


@posix_only
@pytest.mark.parametrize("own_first", [False, True])
def test_delegates_to_real_scip(tmp_path, own_first):
    fake = _write_script(
        tmp_path / "real",
        'echo "FAKE-SCIP $* guard=$%s"' % scip_shell.BUNDLED_ENV,
    )
    own = _write_wrapper(tmp_path / "own")
    dirs = [own.parent, fake.parent]
    if not own_first:
        dirs.reverse()
    proc = _run_module(dirs)
    assert proc.returncode == 0, proc.stdout
    assert proc.stdout.strip() == "FAKE-SCIP --version guard=1"


@posix_only
def test_bundled_env_disables_delegation(tmp_path):
    fake = _write_script(tmp_path / "real", "echo FAKE-SCIP")
    proc = _run_module([fake.parent], {scip_shell.BUNDLED_ENV: "1"})
    assert proc.returncode == 0, proc.stdout
    assert proc.stdout.startswith("SCIP version ")


@posix_only
def test_own_wrapper_is_not_delegated_to(tmp_path, monkeypatch):
    """Only our own wrapper on PATH: no exec loop, the library runs."""
    own = _write_wrapper(tmp_path / "own")
    monkeypatch.setenv("PATH", _prepend_path(own.parent))
    monkeypatch.delenv(scip_shell.BUNDLED_ENV, raising=False)
    other = scip_shell._other_scip()
    if other is not None:
        pytest.skip("another scip is installed on PATH: %s" % other)
    proc = subprocess.run(
        [str(own), "--version"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        universal_newlines=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout
    assert proc.stdout.startswith("SCIP version ")
