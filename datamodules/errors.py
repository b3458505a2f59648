"""The error a data source raises when it cannot be used at all (as opposed to one bad item in it)."""

from __future__ import annotations


class DataSourceError(ValueError):
    """A data source that cannot be used; the message names the file (and row) and the fix."""
