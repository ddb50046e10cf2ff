"""Errors the investigator can act on.

Every error carries a message that names the file (and line where there is one) and a hint that
says what to do. The CLI prints them as one line and exits non-zero; the library never prints.
"""

from __future__ import annotations

from pathlib import Path


class ForensicsError(Exception):
    """Base class: something the user can fix. `exit_code` is what the CLI returns."""

    exit_code = 1

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        path: str | Path | None = None,
        line: int | None = None,
        column: int | None = None,
    ) -> None:
        self.message = message
        self.hint = hint
        self.path = str(path) if path is not None else None
        self.line = line
        self.column = column
        super().__init__(self.render())

    def render(self) -> str:
        where = ""
        if self.path is not None:
            where = self.path if self.line is None else f"{self.path}:{self.line}"
            if self.line is not None and self.column is not None:
                where += f":{self.column}"
            where += ": "
        text = f"{where}{self.message}"
        if self.hint:
            text += f" ({self.hint})"
        return text


class CaseFileError(ForensicsError):
    """The case file is missing, not TOML, or has a wrong, missing or unknown key."""


class InputError(ForensicsError):
    """An input path is missing, unreadable, empty, not a log, or compressed wrongly."""


class FormatError(ForensicsError):
    """A format name or layout string is unknown or cannot be compiled."""


class DetectionError(ForensicsError):
    """The format of a file could not be told from its first lines."""


class QueryError(ForensicsError):
    """A named query is unknown or its parameters are missing or wrong."""


class EnrichmentError(ForensicsError):
    """An IP database or published list cannot be read."""


class QueryCancelled(QueryError):
    """The investigator pressed Ctrl-C while a query ran: DuckDB stopped it and nothing changed."""

    exit_code = 130


class CaseStateError(ForensicsError):
    """The case database and the case file disagree in a way only the investigator can settle: a
    source was removed from the case file, or a loaded file was replaced by different content."""


class OutputError(ForensicsError):
    """The output folder cannot be used: it is a file, cannot be written, or lies among the logs."""


class ResourceError(ForensicsError):
    """The machine ran short while analysing a case: DuckDB ran out of the memory it may use, or
    the disk filled up. Nothing is half-written (each output replaces the last whole), so the same
    command can run again once there is room."""


class Interrupted(ForensicsError):
    """The run was stopped (Ctrl-C or SIGTERM). Every file is either wholly in the case or not at
    all, so running the same command again finishes the case."""

    exit_code = 130
