"""A ``scip`` executable backed by the SCIP library shipped with PySCIPOpt.

Pyomo's ``SolverFactory('scip')`` is a shell-command interface: it looks for
an executable named ``scip`` on ``PATH``, runs ``scip --version`` to learn the
version and then ``scip <problem-without-.nl> -AMPL``, expecting SCIP to write
``<problem>.sol`` next to the ``.nl`` file.  Options reach SCIP through a
``scip.set`` file in the working directory and the ``scip_options``
environment variable.

The PySCIPOpt wheel ships no such executable, but its ``libscip`` exports
``SCIPrunShell``, the function behind SCIP's own ``main``.  :func:`main`
(installed as the ``scip`` console script) calls it through :mod:`ctypes`
with the given arguments, so the full SCIP shell -- including the AMPL
``.nl`` reader -- becomes available wherever PySCIPOpt is installed.

A real SCIP installation always wins: if another executable named ``scip``
is found on ``PATH`` (one that is not this console script or a wrapper around
this module), :func:`main` replaces the current process with it via
:func:`os.execv`.  Set the environment variable ``PYOMO_PREFOBJ_SCIP_BUNDLED``
to a non-empty value to always use PySCIPOpt's library instead; the variable
is also set before delegating, which guards against delegation loops.
"""

import ctypes
import ctypes.util
import glob
import importlib.machinery
import importlib.util
import logging
import os
import sys

logger = logging.getLogger(__name__)

#: Environment variable that disables delegation to another ``scip``.
BUNDLED_ENV = "PYOMO_PREFOBJ_SCIP_BUNDLED"

_SCIP_OKAY = 1
_LIB_PATTERNS = ("libscip*.so*", "libscip*.dylib", "libscip*.dll", "scip*.dll")
_MARKER = b"pyomo_prefobj.scip_shell"


class _DlInfo(ctypes.Structure):
    _fields_ = [
        ("dli_fname", ctypes.c_char_p),
        ("dli_fbase", ctypes.c_void_p),
        ("dli_sname", ctypes.c_char_p),
        ("dli_saddr", ctypes.c_void_p),
    ]


def _pyscipopt_dir():
    """Return the ``pyscipopt`` package directory, without importing it."""
    try:
        spec = importlib.util.find_spec("pyscipopt")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return list(spec.submodule_search_locations)[0]


def _bundled_library(pkg_dir):
    """Return the libscip vendored into the PySCIPOpt wheel, if any."""
    # auditwheel: pyscipopt.libs/; delocate: pyscipopt/.dylibs/;
    # delvewheel: pyscipopt.libs/ or the package directory itself.
    parent = os.path.dirname(pkg_dir)
    for folder in (
        os.path.join(parent, "pyscipopt.libs"),
        os.path.join(pkg_dir, ".dylibs"),
        pkg_dir,
    ):
        for pattern in _LIB_PATTERNS:
            found = sorted(glob.glob(os.path.join(folder, pattern)))
            if found:
                return found[0]
    return None


def _linked_library(pkg_dir):
    """Return the libscip that the ``pyscipopt.scip`` extension links to.

    Loads the extension module with :mod:`ctypes` (which also loads its
    dependencies) and asks ``dladdr`` which file provides ``SCIPrunShell``.
    POSIX only; returns None elsewhere or on failure.
    """
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        ext = os.path.join(pkg_dir, "scip" + suffix)
        if not os.path.isfile(ext):
            continue
        try:
            func = ctypes.CDLL(ext).SCIPrunShell
            dladdr = ctypes.CDLL(None).dladdr
            info = _DlInfo()
            dladdr.argtypes = [ctypes.c_void_p, ctypes.POINTER(_DlInfo)]
            if dladdr(ctypes.cast(func, ctypes.c_void_p), ctypes.byref(info)):
                return os.fsdecode(info.dli_fname)
        except (OSError, AttributeError, TypeError):
            logger.debug("cannot inspect %s", ext, exc_info=True)
    return None


def library_path():
    """Locate the SCIP shared library to run the shell from.

    Tries, in order: the libscip bundled in the PySCIPOpt wheel, the libscip
    that a PySCIPOpt built against a system SCIP is linked to, and
    ``ctypes.util.find_library('scip')``.

    Returns:
        str: Path (or, for ``find_library``, loadable name) of libscip.

    Raises:
        FileNotFoundError: If no SCIP library can be found.
    """
    pkg_dir = _pyscipopt_dir()
    found = None
    if pkg_dir is not None:
        found = _bundled_library(pkg_dir) or _linked_library(pkg_dir)
    found = found or ctypes.util.find_library("scip")
    if not found:
        raise FileNotFoundError(
            "cannot find the SCIP library: install PySCIPOpt "
            "(pip install pyscipopt) or put libscip on the library path"
        )
    return found


def _is_self(path):
    """Return True if ``path`` is this console script or a wrapper of it."""
    own = os.path.realpath(sys.argv[0]) if sys.argv and sys.argv[0] else None
    if own and os.path.realpath(path) == own:
        return True
    try:
        with open(path, "rb") as handle:
            return _MARKER in handle.read(4096)
    except OSError:
        return False


def _other_scip():
    """Return the first ``scip`` on PATH that is not this program, or None."""
    names = ["scip"]
    if os.name == "nt":
        exts = os.environ.get("PATHEXT", ".EXE").split(os.pathsep)
        names = ["scip" + ext.lower() for ext in exts if ext]
    for folder in os.environ.get("PATH", "").split(os.pathsep):
        for name in names:
            candidate = os.path.join(folder or os.curdir, name)
            if (
                os.path.isfile(candidate)
                and os.access(candidate, os.X_OK)
                and not _is_self(candidate)
            ):
                return candidate
    return None


def _run_shell(args):
    """Run ``SCIPrunShell`` from libscip in this process.

    Args:
        args: Command-line arguments, without the program name.

    Returns:
        int: The ``SCIP_RETCODE`` returned by ``SCIPrunShell``.
    """
    path = library_path()
    if os.name == "nt" and os.path.isabs(path):
        os.add_dll_directory(os.path.dirname(path))
    run_shell = ctypes.CDLL(path).SCIPrunShell
    run_shell.restype = ctypes.c_int
    run_shell.argtypes = [
        ctypes.c_int,
        ctypes.POINTER(ctypes.c_char_p),
        ctypes.c_char_p,
    ]
    argv = [b"scip"] + [os.fsencode(arg) for arg in args]
    c_argv = (ctypes.c_char_p * (len(argv) + 1))(*argv, None)
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        return run_shell(len(argv), c_argv, b"scip.set")
    finally:
        try:  # Push out C stdio buffers before Python writes anything else.
            ctypes.CDLL(None).fflush(None)
        except (OSError, AttributeError, TypeError):
            pass


def main(argv=None):
    """Run the SCIP shell, like SCIP's own ``scip`` executable.

    Delegates to another ``scip`` on ``PATH`` if there is one (see the
    module docstring); otherwise calls ``SCIPrunShell`` from libscip.

    Args:
        argv: Arguments without the program name; defaults to
            ``sys.argv[1:]``.

    Returns:
        int: 0 if SCIP returned ``SCIP_OKAY``, 1 otherwise.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    if not os.environ.get(BUNDLED_ENV):
        other = _other_scip()
        if other is not None:
            logger.debug("delegating to %s", other)
            os.environ[BUNDLED_ENV] = "1"
            sys.stdout.flush()
            sys.stderr.flush()
            os.execv(other, [other] + args)
    try:
        retcode = _run_shell(args)
    except (OSError, AttributeError) as err:
        print("scip: %s" % err, file=sys.stderr)
        return 1
    return 0 if retcode == _SCIP_OKAY else 1


if __name__ == "__main__":
    sys.exit(main())
