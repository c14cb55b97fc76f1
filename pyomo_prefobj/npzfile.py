"""Versioned ``.npz`` files holding plain arrays only (no pickle on load)."""

import zipfile

import numpy as np

from .errors import FileFormatError


def save_arrays(path, kind, version, **arrays):
    """Write ``arrays`` to ``path`` with a format name and version."""
    np.savez(path, format=np.array(kind), version=np.array(version), **arrays)


def load_arrays(path, kind, version, what):
    """Read a file written by :func:`save_arrays` as a dict of arrays.

    Args:
        path: the file.
        kind: the format name expected.
        version: the format version this package reads.
        what: what the file holds, for messages ("pairs", "candidates").

    Raises:
        FileFormatError: missing, corrupted, another format or version.
    """
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
        found_kind, found_version = str(arrays.pop("format")), int(arrays.pop("version"))
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise FileFormatError(f"cannot read {what} from {path}: {exc}") from exc
    if found_kind != kind:
        raise FileFormatError(f"{path} is not a {what} file (format {found_kind!r})")
    if found_version != version:
        raise FileFormatError(
            f"{path} has {what} format version {found_version}; this "
            f"pyomo_prefobj reads version {version}"
        )
    return arrays
