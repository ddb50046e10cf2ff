"""Loading a case's log files into the case database, with provenance and a full accounting.

For every file: lines_read = lines_parsed + lines_rejected + lines_skipped, where rejected lines
are kept in `rejects` with their reason and skipped lines are the format's own non-requests (W3C
directives, blank lines), counted in `skipped_lines`.

A file is loaded all or nothing: its requests, rejects, skipped counts and `sources` row are
committed in one transaction, so an interruption (Ctrl-C, kill, a crash) never leaves rows without
their source, and the next run loads exactly the files that are missing.

Every run compares the case file with the database before it loads anything. A file is identified
by its path (relative to the case file), its content (SHA-256) and the settings that shaped its
rows (format, time zone, fields, role):
- same content and settings: nothing to do;
- same content, other settings: the file is reloaded (old rows removed in the same transaction);
- the old content is a prefix of the new (a live log that grew): only the new lines are loaded,
  numbered on from where the file left off;
- other content: the run stops and says the file was replaced (`replace=True` reloads it);
- a file in the database that the case file no longer names stops the run (`prune=True` removes
  its rows), unless the same bytes appear under a new path (a rename), which is recorded.
Empty files and files whose bytes duplicate another file of the case get a `sources` row too, so
the chain of custody lists every file the case file matched.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import queue
import re
import threading
from collections import Counter, deque
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from forensics import __version__
from forensics.casefile import Case, SourceSpec
from forensics.db import add_request_part, connect, create_tables, empty_table, machine_limits, request_parts
from forensics.detect import detect_lines, score_format
from forensics.errors import CaseStateError, InputError, Interrupted, OutputError
from forensics.formats import FormatDef, get_format
from forensics.inputs import (
    MAX_LINE_BYTES,
    ReadState,
    check_readable,
    count_lines,
    expand_source_path,
    head_lines,
    is_uri,
    looks_binary,
    parquet_records,
    read_chunks,
    sniff_compression,
)
from forensics.readers import decode_lines, empty_rejects, empty_result, long_line_rejects, make_reader
from forensics.readers.w3c import W3CReader
from forensics.schema import (
    INVESTIGATION_TABLES,
    REQUESTS_ALL,
    SCHEMA_VERSION,
    SKIPPED,
    SOURCES,
    empty_requests_frame,
)


@dataclass
class PlannedFile:
    path: Path
    display_path: str
    spec: SourceSpec
    fmt: FormatDef
    detected: bool
    compression: str
    size: int
    mtime_ns: int
    sha256: str = ""
    empty: bool = False
    max_line_bytes: int = MAX_LINE_BYTES
    # False when the format named in the case file was not checked against this file's first
    # lines at planning; reading then checks it (see _check_named_format).
    format_checked: bool = True
    # The file's URI when a source names one (s3://, hdfs://, file://...): read by the Spark
    # engine through Spark's file system layer; `path` is then where a task puts its copy.
    uri: str | None = None

    @property
    def settings(self) -> str:
        """The settings that shaped this file's rows, as canonical JSON (part of its identity)."""
        return _settings_json(
            self.spec.format, self.fmt.name, self.spec.timezone, self.spec.fields, self.spec.role, self.max_line_bytes
        )


@functools.lru_cache(maxsize=256)
def _settings_json(
    fmt: str, format_used: str, timezone: str | None, fields: str | None, role: str, max_line_bytes: int
) -> str:
    # Cached: the files of a source share their settings, and a case may have 50,000 files.
    return json.dumps(
        {
            "format": fmt,
            "format_used": format_used,
            "timezone": timezone,
            "fields": fields,
            "role": role,
            "max_line_bytes": max_line_bytes,
        },
        sort_keys=True,
    )


@dataclass
class LoadedSource:
    """A `sources` row as the database holds it."""

    source_id: int
    path: str
    status: str
    duplicate_of: int | None
    settings: str
    sha256: str
    size_bytes: int
    compression: str
    lines_read: int
    lines_parsed: int
    lines_rejected: int
    lines_skipped: int
    requests: int
    first_ts: datetime | None
    last_ts: datetime | None
    truncated: bool
    note: str | None
    last_line_complete: bool | None


# What a run does with a planned file.
NEW, RELOAD, REPLACE, APPEND = "new", "reload", "replace", "append"


@dataclass
class FileResult:
    source_id: int
    planned: PlannedFile
    action: str = NEW
    reason: str = ""
    start_line: int = 1  # lines before it are already in the case (a grown file)
    base: LoadedSource | None = None  # the row a grown file adds to
    lines_read: int = 0
    lines_parsed: int = 0
    lines_rejected: int = 0
    requests: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    first_ts: datetime | None = None
    last_ts: datetime | None = None
    truncated: bool = False
    note: str | None = None
    last_line_complete: bool = True
    sha256: str = ""
    size: int = 0
    reject_examples: list[tuple[int, str]] = field(default_factory=list)

    @property
    def lines_skipped(self) -> int:
        return sum(self.skipped.values())


@dataclass
class CustodyRow:
    """An empty or duplicate file: recorded in `sources`, nothing to read."""

    source_id: int
    planned: PlannedFile
    status: str
    duplicate_of: int | None = None
    duplicate_path: str | None = None


@dataclass
class IngestReport:
    database: Path
    manifest: Path
    loaded: list[FileResult]
    already_loaded: list[str]
    warnings: list[str]
    custody: list[CustodyRow] = field(default_factory=list)
    pruned: list[str] = field(default_factory=list)
    renamed: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def changed(self) -> bool:
        return bool(self.loaded or self.custody or self.pruned or self.renamed)

    @property
    def totals(self) -> dict[str, int]:
        return {
            "files": len(self.loaded),
            "lines_read": sum(r.lines_read - r.start_line + 1 for r in self.loaded),
            "lines_parsed": sum(r.lines_parsed for r in self.loaded),
            "requests": sum(r.requests for r in self.loaded),
            "lines_rejected": sum(r.lines_rejected for r in self.loaded),
            "lines_skipped": sum(r.lines_skipped for r in self.loaded),
        }


# progress(event, info): events "plan" (files, bytes), "file_start", "chunk" (lines, bytes),
# "file_done". The CLI draws a bar from them; the library never prints.
Progress = Callable[[str, dict[str, Any]], None]


def _display(path: Path, base: Path) -> str:
    """The path as stored in the case: relative to the case file's folder, with '/' separators.

    A file outside that folder is named relative to it with '..', never by an absolute path of
    the investigator's machine, so the case folder can be moved and shared.
    """
    return _relative(path.resolve(), base.resolve())


def _relative(real: Path, real_base: Path) -> str:
    """_display for paths already resolved (planning a source of many files resolves its folder
    once, not once a file)."""
    return Path(os.path.relpath(real, real_base)).as_posix()


def resolve_format(spec: SourceSpec, path: Path, lines: list[str]) -> tuple[FormatDef, bool]:
    if spec.format == "auto":
        return detect_lines(lines, str(path)).format, True
    fmt = get_format(spec.format)
    data = [ln for ln in lines if ln.strip()][:50]
    if data and score_format(fmt, data, spec.fields) == 0.0:
        try:
            guess = detect_lines(lines, str(path)).format.name
            hint = f"its first lines look like {guess!r}; fix format in the case file or use \"auto\""
        except Exception:
            hint = "check the format named in the case file, or use format = \"auto\""
        raise InputError(
            f"none of the first {len(data)} lines reads as format {fmt.name!r}", hint=hint, path=path
        )
    return fmt, False


def check_output_folder(case: Case, out_dir: Path) -> None:
    """The output folder must be a folder we can write, and must not lie among the logs: a run
    would otherwise read its own outputs as evidence the next time."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise OutputError("the output folder is an existing file", hint="give a folder with --out", path=out)
    probe = out if out.exists() else next((p for p in out.parents if p.exists()), Path("."))
    if not os.access(probe, os.W_OK | os.X_OK):
        raise OutputError(
            "the output folder cannot be written (permission denied or read-only)",
            hint="choose another --out folder",
            path=out,
        )
    resolved = out.resolve()
    outputs = [resolved / name for name in _OUTPUT_NAMES]
    for spec in case.sources:
        if is_uri(spec.path):
            continue  # read through Spark's file system layer: never a folder of this machine's
        pattern = Path(spec.path).expanduser()
        root = pattern if pattern.is_absolute() else case.base_dir / pattern
        if any(ch in spec.path for ch in "*?["):
            rx = _glob_regex(root.resolve().as_posix())
            hit = next((o for o in outputs if rx.fullmatch(o.as_posix())), None)
        else:
            hit = resolved if root.is_dir() and resolved.is_relative_to(root.resolve()) else None
        if hit is not None:
            raise OutputError(
                f"the output folder lies among the logs of source {spec.path!r}: the next run would "
                "read its own outputs as logs",
                hint="choose an --out folder outside the logs",
                path=out,
            )


# What a run writes into its output folder (and what DuckDB adds beside the database).
_OUTPUT_NAMES = (
    "case.duckdb", "case.duckdb.wal", "manifest.json", "report.html", "downloaders.csv",
    "downloaders.parquet", "downloaders.json", "downloaders.xlsx", "demo-ipdb/demo.mmdb",
    "warehouse/load/record_kind=request/part-00000.snappy.parquet",  # the Spark engine's tables
)


def _glob_regex(pattern: str) -> re.Pattern[str]:
    """A glob as glob.glob(recursive=True) reads it: `**` any folders, `*` and `?` within a name."""
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        elif pattern[i] == "[" and "]" in pattern[i + 1 :]:
            end = pattern.index("]", i + 1)
            body = pattern[i + 1 : end]
            out.append("[" + ("^" + body[1:] if body.startswith("!") else body) + "]")
            i = end + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out))


@dataclass
class FileHead:
    """What planning learns of one input file before loading it: its size, time and compression,
    whether its first lines are text and hold anything, and the format they read as.

    `resolve` gives the file's format from its first lines (forensics.ingest.resolve_format) and
    raises InputError when they do not read as the format the case file names. `uri` is set for
    a file named by a URI (s3://, hdfs://, file://...), which only the Spark engine reads; its
    `path` is then where a Spark task puts the copy it reads."""

    path: Path
    display: str
    size: int
    mtime_ns: int
    compression: str
    binary: bool
    has_content: bool
    resolve: Callable[[], tuple[FormatDef, bool]]
    uri: str | None = None
    sha256: str = ""  # when examining hashed the file already

    @property
    def where(self) -> str | Path:
        """How messages name the file: its URI, else its local path."""
        return self.uri or self.path


def examine_local(spec: SourceSpec, path: Path, display: str) -> FileHead:
    """A local file's head (see FileHead): its first lines are read and decompressed."""
    check_readable(path)
    stat = path.stat()
    if stat.st_size == 0:
        return FileHead(path, display, 0, stat.st_mtime_ns, "none", False, False, lambda: _no_format(spec))
    return examine_head(spec, path, display, stat.st_size, stat.st_mtime_ns)


def examine_head(spec: SourceSpec, path: Path, display: str, size: int, mtime_ns: int) -> FileHead:
    """The head of a non-empty file at `path` (also run by a Spark task on its copy of a URI)."""
    compression = sniff_compression(path)
    raw = head_lines(path, compression)
    binary = compression != "parquet" and looks_binary(raw)
    lines = [b.decode("utf-8", "backslashreplace") for b in raw]
    has_content = any(ln.strip() for ln in lines)
    return FileHead(
        path, display, size, mtime_ns, compression, binary, has_content,
        functools.partial(resolve_format, spec, path, lines) if has_content else lambda: _no_format(spec),
    )


def _no_format(spec: SourceSpec) -> tuple[FormatDef, bool]:
    """The format recorded for a file with nothing to read (empty or blank lines only)."""
    return get_format(spec.format if spec.format != "auto" else "combined"), spec.format == "auto"


def _local_heads(spec: SourceSpec, case_dir: Path, seen: set[Path | str]) -> Iterator[FileHead]:
    """The heads of a local source's files, each file once in a case (`seen`: those planned)."""
    base = case_dir.resolve()  # once a source, not once a file
    for path in expand_source_path(spec.path, case_dir):
        real = path.resolve()
        if real in seen:
            continue
        seen.add(real)
        yield examine_local(spec, path, _relative(real, base))


def plan_files(
    case: Case, listed: dict[int, Iterator[FileHead]] | None = None
) -> tuple[list[PlannedFile], list[str]]:
    """Check every input before anything is loaded, so that a long run does not fail late.

    `listed`: the heads of the files of some sources (by the source's index in the case file),
    examined elsewhere (the Spark engine examines URI sources in Spark tasks); the other sources'
    files are found and examined here."""
    planned: list[PlannedFile] = []
    warnings: list[str] = []
    seen: set[Path | str] = set()
    for index, spec in enumerate(case.sources):
        heads = listed[index] if listed is not None and index in listed else _local_heads(spec, case.base_dir, seen)
        nonempty = 0
        # A named format is checked against the first lines of the source's first file here;
        # the other files are checked as they are read, where the check costs nothing unless
        # the file's first lines gave no request (a source of 50,000 small files would
        # otherwise spend most of its planning on the check).
        format_checked = False
        for head in heads:
            if head.uri is not None:  # local files are each planned once by _local_heads
                if head.uri in seen:
                    continue
                seen.add(head.uri)
            path, display, size, compression = head.path, head.display, head.size, head.compression
            if size == 0:
                warnings.append(f"{display}: empty file (recorded with 0 lines)")
                fmt, detected = _no_format(spec)
                planned.append(
                    PlannedFile(path, display, spec, fmt, detected, "none", 0, head.mtime_ns, head.sha256, empty=True,
                                uri=head.uri)
                )
                continue
            if head.binary:
                raise InputError(
                    "this is a binary file, not a text log",
                    hint="remove it from the folder or narrow the source's path or glob",
                    path=head.where,
                )
            deferred = False
            if head.has_content:
                nonempty += 1
                if spec.format != "auto" and format_checked and compression != "parquet":
                    fmt, detected, deferred = get_format(spec.format), False, True
                else:
                    fmt, detected = head.resolve()
                    format_checked = format_checked or spec.format != "auto"
            else:
                warnings.append(f"{display}: no lines with content (recorded, nothing to read)")
                fmt, detected = _no_format(spec)
            if compression == "parquet" and fmt.family != "json":
                raise InputError(
                    f"a Parquet file cannot be read as format {fmt.name!r}",
                    hint="Parquet logs are read with a JSON-family format, e.g. format = \"cloudfront_v2\"",
                    path=head.where,
                )
            if fmt.timezone == "source" and not spec.timezone:
                raise InputError(
                    f"format {fmt.name!r} writes times without a zone and the source gives none",
                    hint="add timezone = \"<IANA zone of the server>\" to this [[sources]] table",
                    path=head.where,
                )
            planned.append(
                PlannedFile(path, display, spec, fmt, detected, compression, size, head.mtime_ns, head.sha256,
                            format_checked=not deferred, uri=head.uri)
            )
        if nonempty == 0:
            raise InputError(
                f"every file of source {spec.path!r} is empty",
                hint="check that the logs were copied completely",
                path=spec.path,
            )
    return planned, warnings


def sha256_prefix(path: Path, limit: int | None = None, stop: threading.Event | None = None) -> str:
    """SHA-256 of the first `limit` bytes of a file (all of it when None)."""
    h = hashlib.sha256()
    left = limit
    with open(path, "rb") as fh:
        while left is None or left > 0:
            if stop is not None and stop.is_set():
                raise KeyboardInterrupt
            block = fh.read(4 << 20 if left is None else min(4 << 20, left))
            if not block:
                break
            h.update(block)
            if left is not None:
                left -= len(block)
    return h.hexdigest()


def _loaded_sources(con: duckdb.DuckDBPyConnection) -> dict[str, LoadedSource]:
    cols = [f.name for f in LoadedSource.__dataclass_fields__.values()]
    rows = con.execute(f"SELECT {', '.join(cols)} FROM sources ORDER BY source_id").fetchall()
    return {r[1]: LoadedSource(*r) for r in rows}


@dataclass
class LoadPlan:
    load: list[FileResult]
    custody: list[CustodyRow]
    unchanged: list[str]
    prune: list[LoadedSource]
    renamed: list[tuple[LoadedSource, PlannedFile]]


def reconcile(
    planned: list[PlannedFile],
    loaded: dict[str, LoadedSource],
    prune: bool,
    replace: bool,
    stop: threading.Event | None = None,
) -> LoadPlan:
    """Compare the files the case file names with what the database holds; decide per file."""
    plan = LoadPlan([], [], [], [], [])
    in_plan = {pf.display_path for pf in planned}
    missing = {p: s for p, s in loaded.items() if p not in in_plan}
    taken = {s.source_id for s in loaded.values()}
    problems: list[str] = []

    def new_id(index: int) -> int:
        # The file's position in the plan when free, so that a resumed run numbers files as a
        # clean run does; otherwise the next free number.
        sid = index + 1
        if sid in taken:
            sid = max(taken) + 1
        taken.add(sid)
        return sid

    # Which file of a set with equal bytes is read: one already loaded with the same settings if
    # there is one (so a rerun changes nothing), otherwise the first in the case file's order.
    loaded_by_content = {
        (s.sha256, s.settings): s.path for s in loaded.values() if s.status == "loaded"
    }
    first_by_sha: dict[str, PlannedFile] = {}
    for pf in planned:
        if pf.empty:
            continue
        current = first_by_sha.get(pf.sha256)
        if current is None or (
            loaded_by_content.get((pf.sha256, pf.settings)) == pf.display_path
            and loaded_by_content.get((current.sha256, current.settings)) != current.display_path
        ):
            first_by_sha[pf.sha256] = pf

    ids: dict[str, int] = {}
    for index, pf in enumerate(planned):
        old = loaded.get(pf.display_path)
        if old is None:
            renamed_from = next(
                (s for s in missing.values()
                 if s.status == "loaded" and s.sha256 == pf.sha256 and s.settings == pf.settings
                 and first_by_sha.get(pf.sha256) is pf),
                None,
            )
            if renamed_from is not None:
                del missing[renamed_from.path]
                plan.renamed.append((renamed_from, pf))
                ids[pf.display_path] = renamed_from.source_id
                continue
        ids[pf.display_path] = old.source_id if old is not None else new_id(index)

    for pf in planned:
        sid = ids[pf.display_path]
        old = loaded.get(pf.display_path)
        if pf.empty:
            if old is not None and old.status != "empty":
                if not replace:
                    problems.append(f"{pf.display_path}: was loaded with {old.size_bytes:,} bytes and is now empty")
                    continue
                plan.load.append(FileResult(sid, pf, REPLACE, "emptied"))
            elif old is None:
                plan.custody.append(CustodyRow(sid, pf, "empty"))
            else:
                plan.unchanged.append(pf.display_path)
            continue
        first = first_by_sha[pf.sha256]
        if first is not pf:
            dup_of = ids[first.display_path]
            if old is not None and old.status == "duplicate" and old.duplicate_of == dup_of and old.sha256 == pf.sha256:
                plan.unchanged.append(pf.display_path)
            else:
                plan.custody.append(CustodyRow(sid, pf, "duplicate", dup_of, first.display_path))
            continue
        if any(r[0].path == pf.display_path or r[1] is pf for r in plan.renamed):
            continue
        if old is None or old.status != "loaded":
            plan.load.append(FileResult(sid, pf, NEW if old is None else RELOAD, "not yet loaded"))
            continue
        if old.sha256 == pf.sha256:
            if old.settings == pf.settings:
                plan.unchanged.append(pf.display_path)
            else:
                plan.load.append(FileResult(sid, pf, RELOAD, _settings_change(old.settings, pf.settings)))
            continue
        grown = (
            pf.size > old.size_bytes
            and old.settings == pf.settings
            and sha256_prefix(pf.path, old.size_bytes, stop) == old.sha256
        )
        if grown and old.last_line_complete and not old.truncated:
            plan.load.append(
                FileResult(sid, pf, APPEND, f"grew from {old.size_bytes:,} to {pf.size:,} bytes",
                           start_line=old.lines_read + 1, base=old)
            )
        elif grown:
            # Its last line was cut (or the stream truncated) when it was read: that line is
            # read again whole, so the file is reloaded from the start.
            plan.load.append(FileResult(sid, pf, RELOAD, f"grew from {old.size_bytes:,} to {pf.size:,} bytes "
                                        "and its last line was incomplete when loaded"))
        elif replace:
            plan.load.append(FileResult(sid, pf, REPLACE, "replaced by different content"))
        else:
            problems.append(
                f"{pf.display_path}: its content changed since it was loaded (SHA-256 {old.sha256[:12]}… is now "
                f"{pf.sha256[:12]}…) and the old content is not the start of the new"
            )

    removed = list(missing.values())
    if removed and not prune:
        names = ", ".join(s.path for s in removed[:5]) + (f" and {len(removed) - 5} more" if len(removed) > 5 else "")
        problems.insert(
            0,
            f"the case database holds {len(removed)} file(s) the case file no longer names: {names}",
        )
    if problems:
        hints = []
        if removed and not prune:
            hints.append("put the source back in the case file, or run again with --prune to remove its rows")
        if any("content changed" in p or "now empty" in p for p in problems):
            hints.append("if the file was replaced on purpose, run again with --replace to reload it")
        raise CaseStateError("; ".join(problems), hint="; ".join(hints) or None)
    plan.prune = removed
    return plan


def _settings_change(old: str, new: str) -> str:
    try:
        a, b = json.loads(old), json.loads(new)
    except ValueError:
        return "settings changed"
    changed = [f"{k} {a.get(k)!r} -> {b.get(k)!r}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
    return "settings changed: " + ", ".join(changed)


FLUSH_ROWS = 250_000
# A file's rows are also written once their values hold this many bytes (ALB rows, long lines with
# most fields in extra, reach it at about 150,000 rows). Fewer, larger INSERTs cost DuckDB less
# CPU: flushing every few chunks cost S3 a fifth more.
FLUSH_BYTES = 160 << 20


def _frame_bytes(frame: pl.DataFrame) -> int:
    """The bytes of a frame's values: string lengths, and 8 a value otherwise. (Polars'
    estimated_size counts a shared string buffer once per column that points into it.)"""
    strings = [c for c, t in frame.schema.items() if t == pl.String]
    text = frame.select(pl.sum_horizontal(pl.col(c).str.len_bytes().sum() for c in strings)).item() if strings else 0
    return int(text or 0) + 8 * frame.height * (frame.width - len(strings))
# DuckDB stores a table in row groups of 122,880 rows, and an INSERT that ends with a part-filled
# row group leaves it so on disk. Closing the case then checkpoints, which merges part-filled row
# groups by rewriting them: with one after every write, it rewrote most of the table (0.9 s of a
# 4.4 s load of 2,000,000 lines, and a file half as large again). So when its row count calls
# for a write, a large file's rows are written in whole row groups, the rest held for its next
# write; its last write, and writes called for by FLUSH_BYTES (which bounds memory), may end
# part-filled.
ROW_GROUP_ROWS = 122_880
# Small files are committed together (each file whole), so that a case of many small files does
# not pay a commit per file.
GROUP_FILES = 2_000


class _Stopped(Exception):
    """Raised in a reader thread when the run is being interrupted."""


@dataclass
class _Pending:
    frames: dict[str, list[pl.DataFrame]] = field(default_factory=lambda: {"requests": [], "rejects": []})
    rows: int = 0
    bytes: int = 0
    cursor: duckdb.DuckDBPyConnection | None = None
    # The parts of `requests` the file's transaction sees (those that existed when it began).
    parts: dict[str, frozenset[str]] = field(default_factory=dict)


# A new part of `requests` is made for rows whose filled columns are fewer than those of the
# closest part by more than this (a column NULL on every row costs as much to store as one with
# values), as long as the case has fewer than MAX_PARTS parts.
PART_SLACK = 2
MAX_PARTS = 16


def _filled(frames: list[pl.DataFrame]) -> frozenset[str]:
    """The columns that hold a value in some row of the frames."""
    return frozenset(c for f in frames for c in f.columns if f.get_column(c).null_count() < f.height)


def _closest_part(parts: dict[str, frozenset[str]], columns: frozenset[str]) -> str:
    """The part with the fewest columns that has all of `columns` (`requests_all` has every
    column)."""
    fits = [(len(cols), name) for name, cols in parts.items() if cols >= columns]
    return min(fits)[1] if fits else REQUESTS_ALL


class _Writer:
    """One thread that writes parsed rows into DuckDB while the readers parse the next chunks.

    Rows of a file are held until the file is done, then committed together with its `sources`
    and `skipped_lines` rows. A large file opens its own transaction once it has buffered
    FLUSH_ROWS rows (or FLUSH_BYTES) and commits it when done; small files are committed in
    groups. A bounded queue keeps memory flat when parsing is faster than writing.
    """

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        ingested_at: datetime,
        results: dict[int, FileResult],
        depth: int = 4,
    ) -> None:
        self.con = con
        self.ingested_at = ingested_at
        self.results = results
        self.queue: queue.Queue[tuple[str, Any] | None] = queue.Queue(maxsize=depth)
        self.error: BaseException | None = None
        self.pending: dict[int, _Pending] = {}
        # Files done and not yet committed: each entry is one file, or the small files read
        # together (one batch), with their rows.
        self.group: list[tuple[list[FileResult], _Pending]] = []
        self.group_files = 0
        self.group_rows = 0
        self.group_bytes = 0
        self.committed: list[FileResult] = []
        self.parts = request_parts(con)
        self.thread = threading.Thread(target=self._run, name="forensics-writer", daemon=True)
        self.thread.start()

    # -- called from the reader threads -------------------------------------------------------
    def put(self, kind: str, payload: Any) -> None:
        if self.error is not None:
            raise self.error
        self.queue.put((kind, payload))

    # -- the writer thread --------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            item = self.queue.get()
            if item is None:
                return
            if self.error is not None:
                continue
            kind, payload = item
            try:
                if kind == "rows":
                    sid, table, frame = payload
                    self._rows(sid, table, frame)
                elif kind == "done":
                    self._done(payload)
                elif kind == "batch":
                    self._done_batch(*payload)
                elif kind == "abort":
                    self._abort(payload)
                elif kind == "commit_group":
                    self._commit_group()
            except BaseException as exc:  # re-raised in the caller's thread
                self.error = exc

    def _rows(self, sid: int, table: str, frame: pl.DataFrame) -> None:
        p = self.pending.setdefault(sid, _Pending())
        p.frames[table].append(frame)
        p.rows += frame.height
        p.bytes += _frame_bytes(frame)
        if p.rows >= FLUSH_ROWS or p.bytes >= FLUSH_BYTES:
            if p.cursor is None:
                p.parts = self._parts_for(p.frames["requests"])
                p.cursor = self.con.cursor()
                p.cursor.execute("BEGIN TRANSACTION")
                self._before_rows(p.cursor, sid)
            # Rows are held back only when the row count called for the write: held rows then
            # hold fewer bytes than FLUSH_BYTES, so long rows cannot pile up.
            held = self._insert(p.cursor, p.frames, p.parts, whole_row_groups=p.bytes < FLUSH_BYTES)
            p.rows = held.height
            p.bytes = _frame_bytes(held) if held.height else 0

    def _before_rows(self, cur: duckdb.DuckDBPyConnection, sid: int) -> None:
        """In the file's own transaction: remove what a reload replaces."""
        result = self.results.get(sid)
        if result is not None and result.action in (RELOAD, REPLACE):
            _delete_source_rows(cur, sid, keep_source_row=False)

    def _parts_for(self, frames: list[pl.DataFrame]) -> dict[str, frozenset[str]]:
        """Before a transaction begins: the parts of `requests` it will see, with one made for
        these rows' columns when no part fits them closely. (A transaction does not see tables
        made after it began, so parts are made here, each in a transaction of its own.)"""
        columns = _filled(frames)
        closest = self.parts.get(_closest_part(self.parts, columns), frozenset())
        if frames and len(closest) > len(columns) + PART_SLACK and len(self.parts) < MAX_PARTS:
            name = add_request_part(self.con, columns)
            self.parts[name] = columns
        return dict(self.parts)

    def _insert(
        self,
        cur: duckdb.DuckDBPyConnection,
        frames: dict[str, list[pl.DataFrame]],
        visible: dict[str, frozenset[str]],
        whole_row_groups: bool = False,
    ) -> pl.DataFrame:
        """Write the frames' rows, the requests into the closest of the `visible` parts; with
        `whole_row_groups`, the requests past the last whole row group stay in `frames` (and
        are returned) for the file's next write."""
        held = empty_requests_frame()
        for table, parts in frames.items():
            if not parts:
                continue
            batch = pl.concat(parts, rechunk=False, how="vertical_relaxed") if len(parts) > 1 else parts[0]
            parts.clear()
            if table == "requests" and whole_row_groups and batch.height > ROW_GROUP_ROWS:
                whole = batch.height - batch.height % ROW_GROUP_ROWS
                held = batch.slice(whole)
                if held.height:
                    parts.append(held)
                batch = batch.slice(0, whole)
            if table == "requests":
                # Columns the format never fills are left to their NULL default: scanning them
                # from Arrow costs a tenth of the insert.
                batch = batch.select(c for c in batch.columns if batch.get_column(c).null_count() < batch.height)
            # Arrow with string views, which DuckDB scans as they are: the default conversion
            # copies every string into a new buffer (a sixth of the insert's CPU for 1M
            # CloudFront rows, and the batch's strings again in memory).
            ingest_batch = batch.to_arrow(compat_level=pl.CompatLevel.newest())
            del batch
            # DuckDB reads the local variable by its name (a replacement scan). A view made
            # with register() and dropped with unregister() inside the file's transaction
            # keeps its Arrow table alive until the commit: memory grew with the file's size
            # (1 GB for 2M combined lines), where it now stays flat.
            if table == "requests":
                part = _closest_part(visible, frozenset(ingest_batch.column_names))
                cur.execute(f"INSERT INTO {part} BY NAME SELECT * FROM ingest_batch")  # our part names
            else:
                cur.execute("INSERT INTO rejects BY NAME SELECT source_id, line_no, reason, line FROM ingest_batch")
            del ingest_batch
        return held

    def _done(self, result: FileResult) -> None:
        p = self.pending.pop(result.source_id, None) or _Pending()
        if p.cursor is not None:
            self._insert(p.cursor, p.frames, p.parts)
            _write_source_rows(p.cursor, [result], self.ingested_at)
            p.cursor.execute("COMMIT")
            p.cursor.close()
            self.committed.append(result)
            return
        self._add_to_group([result], p)

    def _done_batch(self, results: list[FileResult], requests: pl.DataFrame, rejects: pl.DataFrame) -> None:
        """Small files read together: they join the group together, so that one transaction
        holds each of them whole."""
        p = _Pending()
        if requests.height:
            p.frames["requests"].append(requests)
        if rejects.height:
            p.frames["rejects"].append(rejects)
        self._add_to_group(results, p)

    def _add_to_group(self, results: list[FileResult], p: _Pending) -> None:
        self.group.append((results, p))
        self.group_files += len(results)
        self.group_rows += sum(f.height for parts in p.frames.values() for f in parts)
        self.group_bytes += sum(_frame_bytes(f) for parts in p.frames.values() for f in parts)
        if self.group_rows >= FLUSH_ROWS or self.group_bytes >= FLUSH_BYTES or self.group_files >= GROUP_FILES:
            self._commit_group()

    def _commit_group(self) -> None:
        if not self.group:
            return
        visible = self._parts_for([f for _, p in self.group for f in p.frames["requests"]])
        cur = self.con.cursor()
        cur.execute("BEGIN TRANSACTION")
        try:
            merged: dict[str, list[pl.DataFrame]] = {"requests": [], "rejects": []}
            results = [r for rs, _ in self.group for r in rs]
            for result in results:
                self._before_rows(cur, result.source_id)
            for _, p in self.group:
                for table, parts in p.frames.items():
                    merged[table].extend(parts)
            self._insert(cur, merged, visible)
            _write_source_rows(cur, results, self.ingested_at)
            cur.execute("COMMIT")
        except BaseException:
            cur.execute("ROLLBACK")
            raise
        finally:
            cur.close()
        self.committed.extend(results)
        self.group.clear()
        self.group_files = 0
        self.group_rows = 0
        self.group_bytes = 0

    def _abort(self, sid: int) -> None:
        p = self.pending.pop(sid, None)
        if p is not None and p.cursor is not None:
            p.cursor.execute("ROLLBACK")
            p.cursor.close()

    def close(self, commit: bool = True) -> None:
        """Commit the files that are done (unless commit is False) and roll back any file whose
        reading did not finish."""
        if commit:
            self.queue.put(("commit_group", None))
        self.queue.put(None)
        self.thread.join()
        for p in self.pending.values():
            if p.cursor is not None:
                try:
                    p.cursor.execute("ROLLBACK")
                finally:
                    p.cursor.close()
        self.pending.clear()
        if self.error is not None:
            raise self.error


def _delete_source_rows(cur: duckdb.DuckDBPyConnection, sid: int, keep_source_row: bool) -> None:
    for table in (*request_parts(cur), "rejects", "skipped_lines"):
        cur.execute(f"DELETE FROM {table} WHERE source_id = $1", [sid])  # our table names, never input
    if not keep_source_row:
        cur.execute("DELETE FROM sources WHERE source_id = $1", [sid])


def _source_values(result: FileResult, ingested_at: datetime) -> dict[str, Any]:
    pf = result.planned
    base = result.base
    values: dict[str, Any] = {
        "source_id": result.source_id,
        "path": pf.display_path,
        "status": "loaded",
        "duplicate_of": None,
        "settings": pf.settings,
        "sha256": result.sha256,
        "size_bytes": result.size,
        "compression": pf.compression,
        "format": pf.fmt.name,
        "format_detected": pf.detected,
        "role": pf.spec.role,
        "source_timezone": pf.spec.timezone,
        "lines_read": result.lines_read,
        "lines_parsed": result.lines_parsed + (base.lines_parsed if base else 0),
        "lines_rejected": result.lines_rejected + (base.lines_rejected if base else 0),
        "lines_skipped": result.lines_skipped + (base.lines_skipped if base else 0),
        "first_ts": _earliest(result.first_ts, base.first_ts if base else None),
        "last_ts": _latest(result.last_ts, base.last_ts if base else None),
        "truncated": result.truncated,
        "note": result.note,
        "ingested_at": ingested_at,
        "requests": result.requests + (base.requests if base else 0),
        "last_line_complete": result.last_line_complete,
        "mtime": datetime.fromtimestamp(pf.mtime_ns / 1e9, UTC),
    }
    return values


def _insert_source(cur: duckdb.DuckDBPyConnection, values: dict[str, Any]) -> None:
    cols = SOURCES.column_names
    placeholders = ", ".join(f"${i + 1}" for i in range(len(cols)))
    cur.execute(f"INSERT INTO sources ({', '.join(cols)}) VALUES ({placeholders})", [values.get(c) for c in cols])


def _write_source_rows(cur: duckdb.DuckDBPyConnection, results: list[FileResult], ingested_at: datetime) -> None:
    """The `sources` and `skipped_lines` rows of files read whole, in a few statements for any
    number of files (a statement per file would cost as much as reading a small file)."""
    if not results:
        return
    sids = [r.source_id for r in results]
    skipped = {r.source_id: Counter(r.skipped) for r in results}
    grown = [r.source_id for r in results if r.action == APPEND]
    if grown:
        for sid, kind, n in cur.execute(
            "SELECT source_id, kind, lines FROM skipped_lines WHERE source_id IN (SELECT unnest($1::INTEGER[]))",
            [grown],
        ).fetchall():
            skipped[sid][kind] += n
    for table in ("skipped_lines", "sources"):  # fixed table names, never input
        cur.execute(f"DELETE FROM {table} WHERE source_id IN (SELECT unnest($1::INTEGER[]))", [sids])
    rows = pl.DataFrame([_source_values(r, ingested_at) for r in results], schema=SOURCES.polars_schema())
    kinds = [(sid, kind, n) for sid in sids for kind, n in sorted(skipped[sid].items())]
    counts = pl.DataFrame(kinds, schema=SKIPPED.polars_schema(), orient="row")
    cur.register("source_rows", rows)
    cur.register("skipped_counts", counts)
    try:
        cur.execute("INSERT INTO sources BY NAME SELECT * FROM source_rows")
        cur.execute("INSERT INTO skipped_lines BY NAME SELECT * FROM skipped_counts")
    finally:
        cur.unregister("source_rows")
        cur.unregister("skipped_counts")


def _custody_values(row: CustodyRow, ingested_at: datetime) -> dict[str, Any]:
    pf = row.planned
    note = f"same bytes as {row.duplicate_path}: not loaded twice" if row.status == "duplicate" else "empty file"
    return {
        "source_id": row.source_id, "path": pf.display_path, "status": row.status,
        "duplicate_of": row.duplicate_of, "settings": pf.settings, "sha256": pf.sha256, "size_bytes": pf.size,
        "compression": pf.compression, "format": pf.fmt.name, "format_detected": pf.detected,
        "role": pf.spec.role, "source_timezone": pf.spec.timezone, "lines_read": 0, "lines_parsed": 0,
        "lines_rejected": 0, "lines_skipped": 0, "requests": 0, "truncated": False, "note": note,
        "ingested_at": ingested_at, "last_line_complete": True,
        "mtime": datetime.fromtimestamp(pf.mtime_ns / 1e9, UTC),
    }


def _earliest(a: datetime | None, b: datetime | None) -> datetime | None:
    return min((x for x in (a, b) if x is not None), default=None)


def _latest(a: datetime | None, b: datetime | None) -> datetime | None:
    return max((x for x in (a, b) if x is not None), default=None)


@dataclass(frozen=True)
class _Parsing:
    """Threads shared by the files being read, that parse chunks of a file while its next
    chunks are decompressed; up to `width` chunks of one file are parsed at once."""

    pool: ThreadPoolExecutor
    width: int


@dataclass
class _Chunk:
    requests: pl.DataFrame
    rejects: pl.DataFrame
    skipped: Counter[str]
    lines: int
    ends_line: bool = True  # the chunk ends with a newline (only the file's last may not)
    slow: int = 0  # lines the reader read line by line in Python (its exact path)


def _results(
    reader: Any,
    pf: PlannedFile,
    state: ReadState,
    start_line: int,
    parsing: _Parsing | None = None,
) -> Iterator[_Chunk]:
    """The reader's results chunk by chunk, in line order: text by lines, Parquet by rows
    rendered as JSON.

    Lines over the length limit come as rejects of their own; the reader's finish() reports what
    it still holds at the end (a JSON document cut short). Lines before `start_line` are already
    in the case (a grown file): they are still given to the reader, whose state (a W3C #Fields
    header, an open JSON document) may depend on them, but what it makes of them is dropped.

    With `parsing`, a chunk the reader can hand to a twin of itself (`fork`: its rows do not
    depend on what the reader still has to learn from earlier chunks) is parsed on the pool
    while the next chunk is decompressed and cut, up to `parsing.width` chunks at once; any
    other chunk waits for those to finish and is read by the reader itself, in order. The
    results come back in line order either way. Parsing is the slowest stage of a load; this
    lets one large file use every core.
    """
    if pf.compression == "parquet":
        for first_row, rows in parquet_records(pf.path, state):
            if first_row + len(rows) <= start_line:
                continue
            keep = rows[max(0, start_line - first_row) :]
            res = reader.read_lines(max(first_row, start_line), keep)
            yield _Chunk(res.requests, res.rejects, res.skipped, len(keep), slow=_slow_lines(reader))
        return
    fork = getattr(reader, "fork", None) if parsing is not None and parsing.width > 1 else None
    # (the parse under way, its reader, the chunk's lines, whether it ends with a newline)
    jobs: deque[tuple[Future[Any], Any, int, bool]] = deque()

    def collect() -> _Chunk:
        job, by, n, ends = jobs.popleft()
        res = job.result()
        return _Chunk(res.requests, res.rejects, res.skipped, n, ends, _slow_lines(by))

    limit = pf.max_line_bytes
    try:
        for first_line, data, n_data in read_chunks(pf.path, pf.compression, state, max_line_bytes=limit):
            if first_line + n_data <= start_line:
                # Lines already in the case, read only for the state they leave in the reader.
                reader.read_chunk(first_line, data, n_data)
            else:
                chunk, start, n = data, first_line, n_data
                if first_line < start_line:
                    cut = 0
                    for _ in range(start_line - first_line):
                        cut = data.index(b"\n", cut) + 1
                    reader.read_chunk(first_line, data[:cut], start_line - first_line)
                    chunk, start, n = data[cut:], start_line, n_data - (start_line - first_line)
                twin = fork(chunk) if fork is not None else None
                if twin is not None:
                    assert parsing is not None
                    if len(jobs) >= parsing.width:
                        yield collect()
                    job = parsing.pool.submit(twin.read_chunk, start, chunk, n)
                    jobs.append((job, twin, n, chunk.endswith(b"\n")))
                else:
                    while jobs:
                        yield collect()
                    res = reader.read_chunk(start, chunk, n)
                    yield _Chunk(res.requests, res.rejects, res.skipped, n, chunk.endswith(b"\n"), _slow_lines(reader))
            if state.long_lines:
                while jobs:
                    yield collect()
                yield _from_line(
                    _Chunk(empty_requests_frame(), long_line_rejects(state, limit), Counter(), 0), start_line
                )
        while jobs:
            yield collect()
    finally:
        # Stopped early (Ctrl-C, a failure downstream): the parses under way end on their own.
        for job, *_ in jobs:
            job.cancel()
    if state.long_lines:
        yield _from_line(_Chunk(empty_requests_frame(), long_line_rejects(state, limit), Counter(), 0), start_line)
    res = reader.finish()
    yield _from_line(_Chunk(res.requests, res.rejects, res.skipped, 0, slow=_slow_lines(reader)), start_line)


def _from_line(chunk: _Chunk, start_line: int) -> _Chunk:
    """Only the rows and rejects of lines from `start_line` on."""
    if start_line <= 1:
        return chunk
    keep = pl.col("line_no") >= start_line
    return _Chunk(
        chunk.requests.filter(keep) if chunk.requests.height else chunk.requests,
        chunk.rejects.filter(keep) if chunk.rejects.height else chunk.rejects,
        chunk.skipped,
        chunk.lines,
        chunk.ends_line,
    )


def _read_file(
    writer: _Writer,
    result: FileResult,
    progress: Progress | None,
    stop: threading.Event,
    announce: bool = True,
    parsing: _Parsing | None = None,
) -> None:
    pf = result.planned
    state = ReadState()
    if progress and announce:
        progress("file_start", {"path": pf.display_path, "size": pf.size})
    try:
        _read_into(writer, result, state, stop, progress, parsing)
    except BaseException:
        writer.put("abort", result.source_id)
        raise
    writer.put("done", result)
    if progress:
        progress("file_done", {"path": pf.display_path})


def _read_into(
    writer: _Writer,
    result: FileResult,
    state: ReadState,
    stop: threading.Event,
    progress: Progress | None,
    parsing: _Parsing | None = None,
) -> None:
    pf = result.planned
    result.sha256, result.size = pf.sha256, pf.size
    if pf.empty:
        return
    reader = make_reader(pf.fmt, pf.spec.timezone, pf.spec.fields)
    if hasattr(reader, "source_id"):
        reader.source_id = result.source_id
    first: datetime | None = None
    last: datetime | None = None
    first_request_line: int | None = None
    ends_line = True
    for res in _results(reader, pf, state, result.start_line, parsing):
        if stop.is_set():
            raise _Stopped
        if res.lines:
            ends_line = res.ends_line
        req = res.requests
        if req.height:
            req = req.with_columns(pl.lit(result.source_id, pl.Int32).alias("source_id"))
            writer.put("rows", (result.source_id, "requests", req))
            ts = req.get_column("ts")
            lo, hi = ts.min(), ts.max()
            if isinstance(lo, datetime) and (first is None or lo < first):
                first = lo
            if isinstance(hi, datetime) and (last is None or hi > last):
                last = hi
            if not pf.format_checked and first_request_line is None:
                first_request_line = req.get_column("line_no").min()  # type: ignore[assignment]
        if res.rejects.height:
            rej = res.rejects.with_columns(pl.lit(result.source_id, pl.Int32).alias("source_id"))
            writer.put("rows", (result.source_id, "rejects", rej))
            # The first rejects by line number, as the terminal shows them.
            earliest = res.rejects.select("line_no", "reason").sort("line_no", "reason").head(5).rows()
            result.reject_examples = sorted([*result.reject_examples, *earliest])[:5]
        # Lines, not records: a JSON line can hold several records (one row each). A line with
        # at least one request counts as parsed; a line with only rejects as rejected.
        parsed_lines = req.get_column("line_no").unique() if req.height else pl.Series([], dtype=pl.Int64)
        rejected_lines = (
            res.rejects.get_column("line_no").unique() if res.rejects.height else pl.Series([], dtype=pl.Int64)
        )
        result.lines_parsed += parsed_lines.len()
        result.lines_rejected += int((~rejected_lines.is_in(parsed_lines.implode())).sum())
        result.requests += req.height
        result.skipped.update(res.skipped)
        if progress:
            progress("chunk", {"lines": res.lines, "slow": res.slow})
    result.first_ts, result.last_ts = first, last
    _finish_result(result, state, getattr(reader, "notes", []), ends_line)
    _check_named_format(result, first_request_line)


def _slow_lines(reader: Any) -> int:
    """Lines the reader read line by line in Python (the text and JSON readers' exact paths)
    rather than by a columnar reader since the last call: the progress bar shows their share.
    Reading clears the reader's count."""
    slow = int(getattr(reader, "exact_lines", 0))
    if slow:
        reader.exact_lines = 0
    return slow


def _finish_result(result: FileResult, state: ReadState, reader_notes: list[str], ends_line: bool) -> None:
    """What reading a file whole tells its `sources` row: lines, hash, size, notes; and the
    check that every line read is accounted for."""
    pf = result.planned
    result.lines_read = state.lines
    result.truncated = state.truncated
    result.last_line_complete = state.last_line_complete and ends_line
    notes = [n for n in (state.note, *reader_notes) if n]
    # What was read is what the record describes: the hash and size of the bytes read when the
    # reader computed them, and a note when the file changed while it was read.
    if state.sha256:
        result.sha256, result.size = state.sha256, state.bytes_read
    try:
        now = pf.path.stat()
        changed = now.st_size != pf.size or now.st_mtime_ns != pf.mtime_ns or result.sha256 != pf.sha256
    except OSError:
        changed = True
    if changed:
        notes.append(
            "the file changed while it was read: the SHA-256, size and lines recorded describe the bytes that "
            "were read; run again to load what was added"
        )
    if result.action == APPEND and result.base is not None:
        notes.insert(0, f"lines {result.start_line:,} to {result.lines_read:,} added when the file grew")
        if result.base.note:
            notes.insert(0, result.base.note)
    elif result.action in (RELOAD, REPLACE):
        notes.insert(0, f"reloaded: {result.reason}")
    result.note = "; ".join(dict.fromkeys(notes)) or None
    accounted = result.lines_parsed + result.lines_rejected + result.lines_skipped
    expected = result.lines_read - result.start_line + 1
    if accounted != expected:
        # A bug in a reader, not bad input: stop rather than hand over an incomplete case.
        raise RuntimeError(f"{pf.display_path}: {expected} lines read but {accounted} accounted for")


# The lines of a file's head that planning checks a named format against (head_lines' default).
HEAD_CHECK_LINES = 200


def _check_named_format(result: FileResult, first_request_line: int | None) -> None:
    """The check planning skipped (PlannedFile.format_checked): a file whose first lines gave no
    request but rejects is checked as planning checks a source's first file, so a file of
    another format stops the run with the same message instead of loading as rejects."""
    pf = result.planned
    if pf.format_checked or result.start_line > 1 or result.lines_rejected == 0:
        return
    if first_request_line is not None and first_request_line <= HEAD_CHECK_LINES:
        return
    raw = head_lines(pf.path, pf.compression, max_lines=HEAD_CHECK_LINES, max_line_bytes=pf.max_line_bytes)
    resolve_format(pf.spec, pf.path, [b.decode("utf-8", "backslashreplace") for b in raw])


# Small files (CloudFront writes many an hour) are read in batches: each file is decompressed and
# hashed on its own, then the lines of up to BATCH_FILES files of the same settings are parsed in
# one reader call and numbered back to their own file and line. Each file keeps its own `sources`
# row, hash, line accounting and all-or-nothing: a batch is committed in one transaction. A
# parse costs a fixed overhead per call (some thirty polars queries), more than reading fifty
# lines; batches pay it once.
SMALL_FILE_BYTES = 512 << 10  # files larger than this on disk are read on their own
BATCH_FILES = 500
BATCH_BYTES = 32 << 20  # decompressed bytes a batch holds at most
BATCH_FAMILIES = ("text", "w3c")


def _reading_tasks(load: list[FileResult]) -> list[list[FileResult]]:
    """The files to load as tasks for the reading threads: a large file alone, small files of
    equal settings in batches (at most a commit group, so a group is never cut inside a batch)."""
    size = max(1, min(BATCH_FILES, GROUP_FILES))
    tasks: list[list[FileResult]] = []
    open_batches: dict[Any, list[FileResult]] = {}
    for result in load:
        key = batch_key(result)
        if key is None:
            tasks.append([result])
            continue
        batch = open_batches.get(key)
        if batch is None or len(batch) >= size:
            batch = open_batches[key] = []
            tasks.append(batch)
        batch.append(result)
    return tasks


def batch_key(result: FileResult) -> tuple[str, str | None, str | None, str] | None:
    """Files with equal keys may be read in one batch; None: read on its own."""
    pf = result.planned
    if (
        pf.empty
        or pf.fmt.family not in BATCH_FAMILIES
        or pf.compression == "parquet"
        or pf.size > SMALL_FILE_BYTES
        or result.start_line > 1
    ):
        return None
    return (pf.fmt.name, pf.spec.timezone, pf.spec.fields, pf.settings)


class _NotSmall(Exception):
    """Raised while collecting a file that does not come as one chunk: it is read on its own."""


@dataclass
class _Collected:
    """A small file read whole, before its lines are parsed."""

    result: FileResult
    state: ReadState
    first_line: int
    data: bytes
    n_lines: int
    long_rejects: list[pl.DataFrame]
    ends_line: bool


class _Collector:
    """Stands in for a reader while a small file is read: keeps its one chunk for the batch's
    parse, and gives up (_NotSmall) at a second one."""

    def __init__(self) -> None:
        self.chunk: tuple[int, bytes, int] | None = None

    def read_chunk(self, start_line: int, chunk: bytes, n_lines: int | None = None) -> Any:
        if self.chunk is not None:
            raise _NotSmall
        self.chunk = (start_line, chunk, count_lines(chunk) if n_lines is None else n_lines)
        return empty_result()

    def finish(self) -> Any:
        return empty_result()


def _collect(result: FileResult, stop: threading.Event) -> _Collected | None:
    """Decompress and hash a small file; None when it is not one chunk (read it on its own)."""
    pf = result.planned
    result.sha256, result.size = pf.sha256, pf.size
    state = ReadState()
    collector = _Collector()
    long_rejects: list[pl.DataFrame] = []
    ends_line = True
    try:
        for res in _results(collector, pf, state, 1):
            if stop.is_set():
                raise _Stopped
            if res.lines:
                ends_line = res.ends_line
            if res.rejects.height:
                long_rejects.append(res.rejects)
    except _NotSmall:
        return None
    if collector.chunk is None:
        return None
    first_line, data, n_lines = collector.chunk
    return _Collected(result, state, first_line, data, n_lines, long_rejects, ends_line)


def _read_batch(
    writer: _Writer,
    results: list[FileResult],
    progress: Progress | None,
    stop: threading.Event,
    parsing: _Parsing | None = None,
) -> None:
    """Read small files of the same settings: each collected whole, parsed in batches; a file
    that turns out not to be small is read on its own."""
    batch: list[_Collected] = []
    held = 0
    for result in results:
        if stop.is_set():
            raise _Stopped
        if progress:
            progress("file_start", {"path": result.planned.display_path, "size": result.planned.size})
        item = _collect(result, stop)
        if item is None:
            _read_file(writer, result, progress, stop, announce=False, parsing=parsing)
            continue
        batch.append(item)
        held += len(item.data)
        if held >= BATCH_BYTES:
            _parse_batch(writer, batch, progress)
            batch, held = [], 0
    if batch:
        _parse_batch(writer, batch, progress)


def _parse_batch(writer: _Writer, batch: list[_Collected], progress: Progress | None) -> None:
    """Parse the collected files in one reader call, number every row and reject back to its
    own file and line, account for each file, and hand the files to the writer together."""
    pf0 = batch[0].result.planned
    # The files' lines laid end to end: file k's first line is line starts[k] of the batch.
    starts: list[int] = []
    at = 1
    for item in batch:
        starts.append(at)
        at += item.n_lines
    skipped: list[Counter[str]] = [Counter() for _ in batch]
    notes: list[list[str]] = [[] for _ in batch]
    if pf0.fmt.family == "w3c":
        requests, rejects = _parse_w3c(batch, starts, skipped, notes)
        slow = 0
    else:
        reader = make_reader(pf0.fmt, pf0.spec.timezone, pf0.spec.fields)
        body = b"".join(item.data if item.data.endswith(b"\n") else item.data + b"\n" for item in batch)
        res = reader.read_chunk(1, body, at - 1)
        slow = _slow_lines(reader)
        requests, rejects = res.requests, res.rejects
        blank_total = res.skipped.get("blank", 0)
        if set(res.skipped) - {"blank"}:
            raise RuntimeError(f"the {pf0.fmt.name} reader skipped lines of kinds it never skips: {res.skipped}")
    sids = [item.result.source_id for item in batch]
    first_lines = [item.first_line for item in batch]
    requests = _number_back(requests, starts, first_lines, sids)
    rejects = _number_back(rejects, starts, first_lines, sids)
    longs = [
        r.with_columns(pl.lit(item.result.source_id, pl.Int32).alias("source_id"))
        for item in batch for r in item.long_rejects
    ]
    if longs:
        rejects = pl.concat([rejects, *longs], how="vertical_relaxed")
    per_file = _per_file_counts(requests, rejects)
    failed: list[BaseException] = []
    done: list[FileResult] = []
    blank_counted = 0
    for k, item in enumerate(batch):
        result = item.result
        sid = result.source_id
        n_requests, n_parsed, first_ts, last_ts, first_request_line, n_rejected, examples = per_file.get(
            sid, (0, 0, None, None, None, 0, [])
        )
        result.requests, result.lines_parsed, result.lines_rejected = n_requests, n_parsed, n_rejected
        result.first_ts, result.last_ts = first_ts, last_ts
        result.reject_examples = examples
        if pf0.fmt.family == "w3c":
            result.skipped = skipped[k]
        else:
            # A text line is a row, a reject or a blank line: the blank ones are what is left.
            long_lines = sum(r.height for r in item.long_rejects)
            blank = item.n_lines + long_lines - n_parsed - n_rejected
            blank_counted += blank
            result.skipped = Counter({"blank": blank}) if blank else Counter()
        try:
            _finish_result(result, item.state, notes[k], item.ends_line)
            _check_named_format(result, first_request_line)
        except Exception as exc:
            failed.append(exc)
            continue
        done.append(result)
    if pf0.fmt.family != "w3c" and blank_counted != blank_total:
        raise RuntimeError(f"{blank_total} blank lines read in a batch but {blank_counted} accounted for")
    if len(done) < len(batch):
        keep = pl.col("source_id").is_in([r.source_id for r in done])
        requests, rejects = requests.filter(keep), rejects.filter(keep)
    if done:
        writer.put("batch", (done, requests, rejects))
    if progress:
        progress("chunk", {"lines": sum(item.state.lines for item in batch), "slow": slow})
        for item in batch:
            progress("file_done", {"path": item.result.planned.display_path})
    if failed:
        raise failed[0]


def _parse_w3c(
    batch: list[_Collected], starts: list[int], skipped: list[Counter[str]], notes: list[list[str]]
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """W3C files of a batch: each file's directives read by its own reader (its #Fields, #Date,
    #GMT-Offset), then the data lines of all files that share a field list and directive state
    read in one call."""
    pf0 = batch[0].result.planned
    RunKey = tuple[tuple[str, ...], str | None, str | None, str | None]
    runs: dict[RunKey, tuple[W3CReader, list[int], list[str]]] = {}
    for k, item in enumerate(batch):
        reader = W3CReader(pf0.fmt, pf0.spec.timezone, pf0.spec.fields)
        file_runs, counts = reader.split_runs(starts[k], decode_lines(item.data))
        skipped[k] = counts
        notes[k] = reader.notes
        for fields, nos, lines, gmt_zone, gmt_unusable in file_runs:
            key = (tuple(fields), gmt_zone, gmt_unusable, reader.directive_date)
            if key not in runs:
                runs[key] = (reader, [], [])
            runs[key][1].extend(nos)
            runs[key][2].extend(lines)
    parts = [reader.read_run(list(key[0]), nos, lines, key[1], key[2]) for key, (reader, nos, lines) in runs.items()]
    requests = pl.concat([p[0] for p in parts]) if parts else empty_requests_frame()
    rejects = pl.concat([p[1] for p in parts]) if parts else empty_rejects()
    return requests, rejects


def _number_back(frame: pl.DataFrame, starts: list[int], first_lines: list[int], sids: list[int]) -> pl.DataFrame:
    """Rows numbered by their line in a batch, numbered again by their own file and line."""
    if frame.height == 0:
        return frame.with_columns(pl.lit(0, pl.Int32).alias("source_id"))
    at = pl.Series("start", starts, dtype=pl.Int64)
    k = at.search_sorted(frame.get_column("line_no"), side="right") - 1
    start = at.gather(k)
    line_no = frame.get_column("line_no") - start + pl.Series(first_lines, dtype=pl.Int64).gather(k)
    sid = pl.Series(sids, dtype=pl.Int32).gather(k)
    return frame.with_columns(line_no.alias("line_no"), sid.alias("source_id"))


def _per_file_counts(
    requests: pl.DataFrame, rejects: pl.DataFrame
) -> dict[int, tuple[int, int, Any, Any, int | None, int, list[tuple[int, str]]]]:
    """Per file of a batch: requests, lines parsed, first and last time, first line with a
    request, lines rejected (lines with only rejects) and the first rejects as examples."""
    out: dict[int, tuple[int, int, Any, Any, int | None, int, list[tuple[int, str]]]] = {}
    if requests.height:
        for sid, n, lines, lo, hi, first_line in requests.group_by("source_id").agg(
            pl.len(),
            pl.col("line_no").n_unique().alias("lines"),
            pl.col("ts").min().alias("first"),
            pl.col("ts").max().alias("last"),
            pl.col("line_no").min().alias("first_line"),
        ).iter_rows():
            out[sid] = (n, lines, lo, hi, first_line, 0, [])
    if rejects.height:
        parsed = requests.select("source_id", "line_no").unique()
        only = rejects.select("source_id", "line_no").unique().join(parsed, on=["source_id", "line_no"], how="anti")
        examples = (
            rejects.sort("source_id", "line_no", "reason")
            .group_by("source_id", maintain_order=True)
            .head(5)
            .select("source_id", "line_no", "reason")
        )
        by_sid: dict[int, list[tuple[int, str]]] = {}
        for sid, line_no, reason in examples.iter_rows():
            by_sid.setdefault(sid, []).append((line_no, reason))
        for sid, n in only.group_by("source_id").len().iter_rows():
            base = out.get(sid, (0, 0, None, None, None, 0, []))
            out[sid] = (*base[:5], n, by_sid.get(sid, []))
        for sid, ex in by_sid.items():
            if sid not in out:
                out[sid] = (0, 0, None, None, None, 0, ex)
            else:
                out[sid] = (*out[sid][:6], ex)
    return out


def _open_case_database(out_dir: Path) -> duckdb.DuckDBPyConnection:
    db_path = out_dir / "case.duckdb"
    con = connect(db_path)
    tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    if "case_info" in tables:
        row = con.execute("SELECT value FROM case_info WHERE key = 'schema_version'").fetchone()
        if row is None or row[0] != str(SCHEMA_VERSION):
            con.close()
            raise CaseStateError(
                f"the case database was written by another version of forensics (schema "
                f"{row[0] if row else 'unknown'}, this version writes {SCHEMA_VERSION})",
                hint="write the case into a new folder with --out, or move the old folder away",
                path=db_path,
            )
    # Written blocks are on disk: a bounded buffer pool keeps memory flat on large cases, and
    # row order is carried by (source_id, line_no), not by insertion order. The pool shares the
    # process with the readers' frames (a few hundred MB): 1M ALB rows took the process to
    # 1.1 GB with a pool of 1 GB, 0.95 GB with 512 MB and 0.8 GB with 256 MB, at the same CPU.
    con.execute("SET memory_limit = '256MB'")
    con.execute("SET preserve_insertion_order = false")
    # One DuckDB thread while loading: the readers keep the cores busy, and an INSERT spread
    # over several threads gives each its own part-filled row groups, which then cost more to
    # compress and to merge. The same 2,000,000-line files, 2 threads -> 1: CloudFront 14.3 ->
    # 9.6 CPU-s and case.duckdb 94 -> 45 MB, ALB 29.6 -> 19.2 and 107 -> 53 MB, Cloudflare 13.3
    # -> 10.1 and 75 -> 36 MB; combined, S3 and Caddy unchanged. (The setting ends with this
    # connection: the investigation opens its own, with every thread.)
    con.execute("SET threads = 1")
    # Closing the case checkpoints it, and DuckDB's checkpoint merges a table's part-filled row
    # groups with their neighbours by rewriting them (its vacuum). Each large file, committed in a
    # transaction of its own, ends with one part-filled row group, so with many files the close
    # rewrote much of the table and left the old blocks as free space in the file (8 files of
    # 250,000 lines: 0.7 s of a 4.3 s load, case.duckdb 35 -> 24 MB without). A load that
    # deletes rows (a file reloaded, replaced or pruned) turns it back on (see _ingest), so the
    # deleted rows' space is reclaimed.
    con.execute("SET max_vacuum_tasks = 0")
    create_tables(con)
    if "case_info" not in tables:
        con.execute("INSERT INTO case_info VALUES ('schema_version', $1)", [str(SCHEMA_VERSION)])
    return con


def ingest(
    case: Case,
    out_dir: Path,
    progress: Progress | None = None,
    workers: int = 2,
    prune: bool = False,
    replace: bool = False,
    max_line_bytes: int | None = None,
) -> IngestReport:
    """Bring the case database in line with the case file: load what is missing or changed.

    Lines longer than `max_line_bytes` (default: the case file's `[case] max_line_bytes`, 1 MiB)
    are rejected as too long (their length and first bytes kept), so that no input can hold
    memory without bound.

    Raises Interrupted (after committing every file that was read whole and rolling back the rest)
    on Ctrl-C or SIGTERM, and CaseStateError when the database and the case file disagree in a
    way the investigator must settle.
    """
    started = datetime.now(UTC)
    stop = threading.Event()
    out_dir = Path(out_dir)
    check_output_folder(case, out_dir)
    try:
        planned, warnings = plan_files(case)
        for pf in planned:
            pf.max_line_bytes = max_line_bytes if max_line_bytes is not None else case.max_line_bytes
    except KeyboardInterrupt:
        raise Interrupted("stopped while checking the input files; nothing was loaded",
                          hint="run the same command again") from None
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create the output folder ({exc.strerror})", hint="choose another --out",
                          path=out_dir) from None
    con = _open_case_database(out_dir)
    try:
        with machine_limits(out_dir, "loading the logs"):
            return _ingest(con, case, out_dir, planned, warnings, progress, workers, prune, replace, stop, started)
    finally:
        con.close()


def _ingest(
    con: duckdb.DuckDBPyConnection,
    case: Case,
    out_dir: Path,
    planned: list[PlannedFile],
    warnings: list[str],
    progress: Progress | None,
    workers: int,
    prune: bool,
    replace: bool,
    stop: threading.Event,
    started: datetime,
) -> IngestReport:
    def hash_one(pf: PlannedFile) -> None:
        pf.sha256 = sha256_prefix(pf.path, None, stop)

    try:
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            futures = [pool.submit(hash_one, pf) for pf in planned]
            _wait_all(futures, stop)
        loaded = _loaded_sources(con)
        plan = reconcile(planned, loaded, prune, replace, stop)
    except KeyboardInterrupt:
        raise Interrupted("stopped while hashing the input files; nothing was loaded",
                          hint="run the same command again") from None

    ingested_at = datetime.now(UTC)
    # Rows are deleted where a file is pruned, reloaded or replaced, or a loaded file is now
    # recorded as a duplicate (an empty or duplicate file new to the case has no rows to delete).
    loaded_ids = {s.source_id for s in loaded.values()}
    if (plan.prune or any(r.action in (RELOAD, REPLACE) for r in plan.load)
            or any(row.source_id in loaded_ids for row in plan.custody)):
        con.execute("RESET max_vacuum_tasks")
    changed = bool(plan.load or plan.custody or plan.prune or plan.renamed)
    if changed:
        # Removals, renames and records of empty or duplicate files: one small transaction, and
        # the derived tables are emptied with it, since they describe the old evidence.
        con.execute("BEGIN TRANSACTION")
        for s in plan.prune:
            _delete_source_rows(con, s.source_id, keep_source_row=False)
        for old, pf in plan.renamed:
            con.execute(
                "UPDATE sources SET path = $1, mtime = $2, note = concat_ws('; ', note, $3) WHERE source_id = $4",
                [pf.display_path, datetime.fromtimestamp(pf.mtime_ns / 1e9, UTC),
                 f"renamed from {old.path}", old.source_id],
            )
        for row in plan.custody:
            _delete_source_rows(con, row.source_id, keep_source_row=False)
            _insert_source(con, _custody_values(row, ingested_at))
        # The tables `run` derives from the loaded logs are emptied whenever the loaded logs
        # change, so that no answer outlives the evidence it was computed from.
        for table in INVESTIGATION_TABLES:
            empty_table(con, table)
        con.execute("COMMIT")

    if progress:
        progress("plan", {"files": len(plan.load), "bytes": sum(r.planned.size for r in plan.load)})
    writer = _Writer(con, ingested_at, {r.source_id: r for r in plan.load})
    interrupted = False
    try:
        with (
            ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="forensics-parse") as parse_pool,
            ThreadPoolExecutor(max_workers=max(1, workers)) as pool,
        ):
            parsing = _Parsing(parse_pool, max(1, workers))
            futures = [
                pool.submit(_read_batch, writer, task, progress, stop, parsing) if len(task) > 1
                else pool.submit(_read_file, writer, task[0], progress, stop, True, parsing)
                for task in _reading_tasks(plan.load)
            ]
            try:
                _wait_all(futures, stop)
            except KeyboardInterrupt:
                interrupted = True
                stop.set()
                for f in futures:
                    f.cancel()
                wait(futures)
        errors: list[BaseException] = []
        for f in futures:
            exc = None if f.cancelled() else f.exception()
            if exc is not None and not isinstance(exc, _Stopped):
                errors.append(exc)
    except BaseException:
        stop.set()
        writer.close(commit=True)
        raise
    # Files that were read whole are committed even when another file failed or the run was
    # interrupted: each is complete, and the next run then has less to do.
    try:
        writer.close(commit=True)
    except KeyboardInterrupt:
        interrupted = True
    committed = {r.source_id for r in writer.committed}
    done = [r for r in plan.load if r.source_id in committed]
    if interrupted:
        left = [r.planned.display_path for r in plan.load if r.source_id not in committed]
        _write_case_info(con, case)
        write_manifest(con, out_dir, case)
        raise Interrupted(
            f"stopped: {len(done)} of {len(plan.load)} file(s) to load were loaded whole; "
            f"{len(left)} not loaded ({', '.join(left[:3])}{' ...' if len(left) > 3 else ''}); "
            "no file is in the case in part",
            hint="run the same command again to finish the case",
        )
    if errors:
        raise errors[0]
    _write_case_info(con, case)
    manifest = write_manifest(con, out_dir, case)
    return IngestReport(
        out_dir / "case.duckdb",
        manifest,
        done,
        plan.unchanged,
        warnings,
        custody=plan.custody,
        pruned=[s.path for s in plan.prune],
        renamed=[(old.path, pf.display_path) for old, pf in plan.renamed],
        seconds=(datetime.now(UTC) - started).total_seconds(),
    )


def _wait_all(futures: list[Future[Any]], stop: threading.Event) -> None:
    """Wait for every future, waking often so that Ctrl-C is seen at once; re-raise the first
    error after the others have stopped."""
    pending = set(futures)
    while pending:
        done, pending = wait(pending, timeout=0.2, return_when=FIRST_EXCEPTION)
        for f in done:
            exc = f.exception()
            if exc is not None and not isinstance(exc, _Stopped):
                stop.set()
                for other in pending:
                    other.cancel()
                wait(pending)
                raise exc


def _write_case_info(con: duckdb.DuckDBPyConnection, case: Case) -> None:
    info = {
        "name": case.name,
        "timezone": case.timezone,
        "case_file": case.path.name if case.path else "",
        "case_sha256": case.sha256 or "",
        "tool_version": __version__,
        "schema_version": str(SCHEMA_VERSION),
    }
    con.execute("BEGIN TRANSACTION")
    con.execute("DELETE FROM case_info WHERE key IN (SELECT unnest($1::VARCHAR[]))", [list(info)])
    for k, v in info.items():
        con.execute("INSERT INTO case_info VALUES ($1, $2)", [k, v])
    con.execute("COMMIT")


def _iso(ts: Any) -> str | None:
    if ts is None:
        return None
    return ts.astimezone(UTC).isoformat().replace("+00:00", "Z")


def write_atomic(path: Path, text: str) -> None:
    """Write a file so that a reader (or a crash) sees the old or the new content, never half."""
    tmp = path.with_name(f".{path.name}.partial")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_manifest(
    con: duckdb.DuckDBPyConnection, out_dir: Path, case: Case, extra: dict[str, Any] | None = None
) -> Path:
    """manifest.json: every file the case file matched, with hashes and line accounting, for the
    chain of custody. Written from the database, so it always describes what the case holds;
    `extra` adds the investigation's results (run), which a plain ingest leaves out."""
    rows = con.execute(
        "SELECT source_id, path, status, duplicate_of, sha256, size_bytes, compression, format, format_detected,"
        " role, lines_read, lines_parsed, lines_rejected, lines_skipped, first_ts, last_ts, truncated, note,"
        " requests, settings FROM sources ORDER BY source_id"
    ).fetchall()
    skipped = con.execute("SELECT source_id, kind, lines FROM skipped_lines").fetchall()
    skipped_by: dict[int, dict[str, int]] = {}
    for sid, kind, n in skipped:
        skipped_by.setdefault(sid, {})[kind] = n
    sources = []
    for r in rows:
        sources.append(
            {
                "source_id": r[0], "path": r[1], "status": r[2], "duplicate_of": r[3], "sha256": r[4],
                "size_bytes": r[5], "compression": r[6], "format": r[7], "format_detected": r[8], "role": r[9],
                "lines_read": r[10], "lines_parsed": r[11], "lines_rejected": r[12],
                "lines_skipped": r[13], "skipped": skipped_by.get(r[0], {}),
                "first_ts": _iso(r[14]), "last_ts": _iso(r[15]), "truncated": r[16], "note": r[17],
                "requests": r[18], "settings": json.loads(r[19]) if r[19] else None,
            }
        )
    path = out_dir / "manifest.json"
    manifest = {
        "tool": "forensics",
        "tool_version": __version__,
        "written_at": _iso(datetime.now(UTC)),
        "case": {
            "name": case.name,
            # The case file by name, and its folder once: every other path is relative to it.
            "file": case.path.name if case.path else None,
            "folder": str(case.base_dir.resolve()),
            "sha256": case.sha256,
            "timezone": case.timezone,
        },
        "database": "case.duckdb",
        "sources": sources,
        "totals": {
            "files": len(sources),
            "files_loaded": sum(1 for s in sources if s["status"] == "loaded"),
            "files_empty": sum(1 for s in sources if s["status"] == "empty"),
            "files_duplicate": sum(1 for s in sources if s["status"] == "duplicate"),
            "lines_read": sum(s["lines_read"] for s in sources),
            "lines_parsed": sum(s["lines_parsed"] for s in sources),
            "lines_rejected": sum(s["lines_rejected"] for s in sources),
            "lines_skipped": sum(s["lines_skipped"] for s in sources),
        },
        **(extra or {}),
    }
    write_atomic(path, json.dumps(manifest, indent=2, default=str) + "\n")
    return path
