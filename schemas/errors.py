"""The project's own error: what a user can fix, said in one line; commands exit cleanly on it, no traceback."""

from __future__ import annotations


class WdtkError(Exception):
    """A mistake in input, options or environment that the user can fix; str() is one complete line.

    Logic raises it (or a subclass); `wdtk`'s command group prints `Error: <message>` and exits 1.
    """
