"""`forensics detect`: the format of each file and a few parsed rows, to check before loading."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path
from typing import Any

from forensics.casefile import SourceSpec
from forensics.errors import ForensicsError, InputError
from forensics.ingest import resolve_format
from forensics.inputs import check_readable, head_lines, looks_binary, sniff_compression
from forensics.readers import make_reader

COMPRESSION_NAMES = {"none": "not compressed"}
# How much of each file `forensics detect` reads.
HEAD_LINES = 200
HEAD_BYTES = 1 << 20


@dataclass
class FileDetection:
    path: str
    summary: str
    rows: list[str]
    error: ForensicsError | None = None


def _cell(value: Any) -> str:
    """A parsed value as the investigator reads it: a missing one is '-', never Python's None."""
    return "-" if value is None or value == "" else str(value)


def detect_files(files: list[Path], fmt: str = "auto", rows: int = 3) -> Iterator[FileDetection]:
    """One result per file, in order; a file that cannot be read gives its error and the others are
    still looked at, so one bad file does not hide what the good ones are."""
    for path in files:
        try:
            yield _detect_one(path, fmt, rows)
        except ForensicsError as exc:
            yield FileDetection(str(path), "", [], error=exc)
        except Exception as exc:
            # A bug, not bad input: still say which file it happened on.
            raise RuntimeError(f"{path}: {type(exc).__name__}: {exc}") from exc


def _detect_one(path: Path, fmt: str, rows: int) -> FileDetection:
    if not path.exists():
        raise InputError("no such file", hint="check the path", path=path)
    if path.is_dir():
        raise InputError("this is a folder", hint="give log files, e.g. logs/*.gz", path=path)
    check_readable(path)
    if path.stat().st_size == 0:
        return FileDetection(str(path), "empty file", [])
    compression = sniff_compression(path)
    raw = head_lines(path, compression, max_lines=HEAD_LINES, max_bytes=HEAD_BYTES)
    if looks_binary(raw):
        raise InputError("this is a binary file, not a text log", path=path)
    lines = [b.decode("utf-8", "backslashreplace") for b in raw]
    spec = SourceSpec(path=str(path), format=fmt)
    found, detected = resolve_format(spec, path, lines)
    # Times without a zone are read as if UTC here only to show them; they are shown without a Z,
    # as logged, because their zone is the source's `timezone` in the case file.
    zone_less = found.timezone == "source"
    reader = make_reader(found, "UTC")
    whole = len(raw) < HEAD_LINES and sum(len(b) + 1 for b in raw) < HEAD_BYTES
    if whole or not hasattr(reader, "finish"):
        res = reader.read_lines(1, lines)
    else:
        # Only the head of a longer file: a JSON document still open where the head ends
        # continues in the file, and is not reported as cut short.
        res = reader.read_chunk(1, "".join(f"{ln}\n" for ln in lines).encode())
    parsed = res.requests
    how = "detected" if detected else "as named"
    summary = (
        f"{found.name} ({how}; {COMPRESSION_NAMES.get(compression, compression)}; "
        f"{parsed.height} of the first {len(lines)} lines read"
        + (f", {res.rejects.height} rejected" if res.rejects.height else "")
        + ")"
        + ("; its times carry no zone: set timezone on the source in the case file" if zone_less else "")
    )
    shown = []
    for r in parsed.head(rows).iter_rows(named=True):
        ts = r["ts"]
        if ts is None:
            when = "-"
        elif zone_less:
            when = ts.astimezone(UTC).replace(tzinfo=None).isoformat()
        else:
            when = ts.astimezone(UTC).isoformat().replace("+00:00", "Z")
        size = r["body_bytes"] if r["body_bytes"] is not None else r["total_bytes"]
        shown.append(
            f"line {r['line_no']}: {when} {_cell(r['client_addr'])} {_cell(r['method'])} "
            f"{_cell(r['path'])} {_cell(r['status'])} {_cell(size)}"
        )
    for ln, why in res.rejects.select("line_no", "reason").head(rows).rows():
        shown.append(f"line {ln}: rejected: {why}")
    shown.extend(f"note: {note}" for note in getattr(reader, "notes", []))
    return FileDetection(str(path), summary, shown)
