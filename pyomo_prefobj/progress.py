"""Progress bars that can be switched off."""

from tqdm.auto import tqdm


class _Silent:
    """Stand-in for a disabled bar created with ``total=``."""

    def update(self, n=1):
        """Do nothing."""

    def close(self):
        """Do nothing."""


def progress_bar(iterable=None, enabled=True, **kwargs):
    """A tqdm bar when ``enabled``; otherwise ``iterable`` (or a silent bar)."""
    if enabled:
        return tqdm(iterable, leave=False, **kwargs)
    return iterable if iterable is not None else _Silent()
