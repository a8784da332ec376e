"""Errors ooc raises for bad input or state; each message names the file or store and the field."""

from __future__ import annotations

__all__ = ["ConfigError", "InputError", "MetadataError", "OocError", "StoreError"]


class OocError(Exception):
    """Base of the errors a user can act on (the command line prints them without a traceback)."""


class ConfigError(OocError, ValueError):
    """A configuration value is missing or malformed."""


class InputError(OocError, ValueError):
    """An input scan is unusable; the message names the file and what is wrong."""


class MetadataError(OocError, ValueError):
    """Metadata does not follow its schema; the message names the source, field and expectation."""


class StoreError(OocError, RuntimeError):
    """A store cannot be created, resumed or read as asked; the message names the store."""
