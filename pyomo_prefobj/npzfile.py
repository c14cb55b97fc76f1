"""Versioned ``.npz`` files holding plain arrays only (no pickle on load)."""

import os
import zipfile

import numpy as np

from .errors import FileFormatError


def save_arrays(path, kind, version, **arrays):
    """Write ``arrays`` to ``path`` with a format name and version."""
    np.savez(path, format=np.array(kind), version=np.array(version), **arrays)


def read_npz(path, what):
    """Every array of the ``.npz`` file ``path``, as a dict (no pickle).

    Raises:
        FileFormatError: ``path`` is missing, not an ``.npz`` archive, or
            corrupted; the message names ``what`` the file should hold.
    """
    if not hasattr(path, "read") and not os.path.exists(path) and os.path.exists(f"{os.fspath(path)}.npz"):
        path = f"{os.fspath(path)}.npz"  # saved under this name: numpy adds the suffix
    try:
        if hasattr(path, "read"):  # an open file
            start = path.tell()
            archive = zipfile.is_zipfile(path)
            path.seek(start)
        else:
            with open(path, "rb") as handle:  # a missing file: OSError
                archive = zipfile.is_zipfile(handle)
        if not archive:
            # np.load would read it as a pickle and suggest allow_pickle=True.
            raise ValueError("not an .npz archive")
        with np.load(path, allow_pickle=False) as data:
            return {key: data[key] for key in data.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise FileFormatError(f"cannot read {what} from {path}: {exc}") from exc


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
    arrays = read_npz(path, what)
    if "format" not in arrays or "version" not in arrays:
        raise FileFormatError(f"{path} is not a {what} file (it names no format and version)")
    try:
        found_kind, found_version = str(arrays.pop("format")), int(arrays.pop("version"))
    except (ValueError, TypeError) as exc:  # a version that is not a number
        raise FileFormatError(f"cannot read {what} from {path}: {exc}") from exc
    if found_kind != kind:
        raise FileFormatError(f"{path} is not a {what} file (format {found_kind!r})")
    if found_version != version:
        raise FileFormatError(
            f"{path} has {what} format version {found_version}; this "
            f"pyomo_prefobj reads version {version}"
        )
    return arrays
