"""Errors raised at the library's edges.

``MerError`` carries a message meant for a person: it names the file, row,
key or value at fault and what was expected. The CLI prints it without a
traceback; the dashboard shows it in an error box.
"""
from __future__ import annotations


class MerError(Exception):
    """A user-facing error with a specific, actionable message."""


class ConfigError(MerError, ValueError):
    """An experiment config key or value is invalid."""


class DatasetError(MerError, ValueError):
    """A dataset on disk or a sample table is malformed."""


class ProtocolError(MerError, ValueError):
    """A protocol cannot be applied to a table (e.g. LOSO with one subject)."""


class UnknownNameError(MerError, KeyError):
    """A registry lookup failed; the message lists the valid names."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""
