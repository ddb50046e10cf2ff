"""Finding, hashing and reading input files: plain or compressed, line by line in large chunks.

Evidence is opened read-only and never modified. Line numbers count lines of the decompressed
stream from 1; a last line without a newline still counts.
"""

from __future__ import annotations

import glob
import hashlib
import os
import re
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from forensics.decompress import (
    DamageLog,
    Hasher,
    HashingFile,
    after_delivered,
    bzip2_stream,
    gzip_recovered,
    xz_stream,
    zstd_stream,
)
from forensics.errors import InputError

CHUNK_BYTES = 8 << 20
# Gzip files larger than this are decompressed in a thread of their own.
THREADED_GZIP_BYTES = 1 << 20

_MAGIC = {
    b"PAR1": "parquet",
    b"\x1f\x8b": "gzip",
    b"BZh": "bzip2",
    b"\xfd7zXZ\x00": "xz",
    b"\x28\xb5\x2f\xfd": "zstd",
}


def sniff_compression(path: Path) -> str:
    with open(path, "rb") as fh:
        head = fh.read(6)
    for magic, name in _MAGIC.items():
        if head.startswith(magic):
            return name
    return "none"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(4 << 20):
            h.update(block)
    return h.hexdigest()


# A URI names its file system by a scheme (s3://bucket/logs/, hdfs://nn/logs/, file:///logs/);
# a Windows drive letter (C:\\logs) is not one.
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+:/")


def is_uri(path: str) -> bool:
    """Whether a source path is a URI (s3://, s3a://, hdfs://, abfss://, gs://, file:...), which
    only the Spark engine reads, through Spark's own file system layer."""
    return bool(_URI.match(path))


def expand_source_path(pattern: str, base: Path) -> list[Path]:
    """A file, a directory (every file below it) or a glob, relative to `base`."""
    if is_uri(pattern):
        raise InputError(
            "this source is a URI, which a local run cannot read (it reads files on this machine)",
            hint="run with --engine spark, which reads it through Spark's file system layer, "
            "or copy the logs to this machine and name their local path",
            path=pattern,
        )
    p = Path(pattern).expanduser()
    if not p.is_absolute():
        p = base / p
    if any(ch in pattern for ch in "*?["):
        found = [Path(x) for x in glob.glob(str(p), recursive=True)]
        files = sorted(f for f in found if f.is_file())
        if not files:
            raise InputError(
                f"the pattern {pattern!r} matches no file",
                hint=f"check the path; it is read relative to {base}",
                path=p,
            )
        return files
    if p.is_dir():
        files = sorted(
            f for f in p.rglob("*") if f.is_file() and not f.name.startswith(".")
        )
        if not files:
            raise InputError("the directory holds no file", hint="check the path", path=p)
        return files
    if not p.exists():
        raise InputError(
            "no such file or directory",
            hint=f"check the path; it is read relative to {base}",
            path=p,
        )
    return [p]


# A line longer than this is not held in memory: it is rejected as "line too long", with its
# length and first bytes, and reading goes on after it. Web servers cap request lines and headers
# at a few kB, so 1 MiB leaves room for any real access-log line.
MAX_LINE_BYTES = 1 << 20
LONG_LINE_HEAD = 200
_BOM = b"\xef\xbb\xbf"
# NUL bytes at the start of a line: the zero-filled blocks a file system leaves after an unclean
# shutdown, glued to the first line written after the restart.
_LEADING_NULS = re.compile(rb"(?:^|(?<=\n))\x00+")


@dataclass
class LongLine:
    """A line over the length limit: its number, length in bytes and first bytes."""

    line_no: int
    length: int
    head: bytes


@dataclass
class ReadState:
    """What happened while reading one file; filled in as the chunks are consumed.

    `sha256` and `bytes_read` cover the raw (still compressed) bytes of the file, hashed by the
    same reads that decompress them, each byte once; when reading ends they cover the file up to
    the end reached (bytes after a damaged stream included). `last_line_complete` is True when
    the decompressed stream ended with a newline or was empty. `long_lines` are lines over the
    limit, which no chunk holds: the consumer turns them into rejects and clears the list.
    """

    lines: int = 0
    truncated: bool = False
    note: str | None = None
    notes: list[str] = field(default_factory=list)
    sha256: str = ""
    bytes_read: int = 0
    last_line_complete: bool = True
    long_lines: list[LongLine] = field(default_factory=list)


def _raw_blocks(path: Path, compression: str, state: ReadState, hasher: Hasher) -> Iterator[bytes]:
    """The decompressed bytes of a file, in blocks, keeping all that can be read (see
    forensics.decompress) and noting in `state` what could not."""
    log = DamageLog()
    try:
        if compression == "gzip":
            yield from _gzip_blocks(path, hasher, log)
        elif compression == "bzip2":
            yield from bzip2_stream(path, hasher, log)
        elif compression == "xz":
            yield from xz_stream(path, hasher, log)
        elif compression == "zstd":
            yield from zstd_stream(path, hasher, log)
        else:
            with HashingFile(path, hasher) as fh:
                while block := fh.read(CHUNK_BYTES):
                    yield block
    finally:
        state.truncated = state.truncated or log.truncated
        state.notes.extend(log.notes)


def _gzip_blocks(path: Path, hasher: Hasher, log: DamageLog) -> Iterator[bytes]:
    delivered = 0
    last = -1
    try:
        from isal import igzip_threaded

        # A decompressing thread pays off on large files only: starting one costs about a
        # millisecond, as much as reading a small file whole.
        threads = 1 if path.stat().st_size > THREADED_GZIP_BYTES else 0
        with HashingFile(path, hasher) as raw, igzip_threaded.open(raw, "rb", threads=threads) as fh:
            while block := fh.read(CHUNK_BYTES):
                delivered += len(block)
                last = block[-1]
                yield block
        return
    except Exception:  # any decoding failure: read again with the recovering reader
        pass
    yield from after_delivered(gzip_recovered(path, hasher, log), delivered, last)


class Chunk(NamedTuple):
    """Lines of a file: the number of the first, the bytes (ending on a line boundary) and how
    many lines they hold (a last line without a newline counts). Counting a chunk's newlines
    costs as much as a tenth of reading it, so it is done once, here, and handed on."""

    first_line: int
    data: bytes
    lines: int


def count_lines(data: bytes) -> int:
    """Lines in `data`: its newlines, and one more when it does not end with one."""
    return data.count(b"\n") + (0 if not data or data.endswith(b"\n") else 1)


def _long_line_spans(chunk: bytes, limit: int) -> list[tuple[int, int]]:
    """(start, end) of the lines of `chunk` longer than `limit` bytes (end: the index of their
    newline, or the chunk's end). Such a line holds a whole newline-free window of about
    limit/2 bytes, so only windows are searched (memchr-fast) and lines measured where one is."""
    n = len(chunk)
    if n <= limit:
        return []
    step = max(1, (limit + 1) // 2)
    spans: list[tuple[int, int]] = []
    pos = 0
    while pos < n:
        wend = min(pos + step, n)
        if chunk.find(b"\n", pos, wend) >= 0:
            pos = wend
            continue
        start = chunk.rfind(b"\n", 0, pos) + 1
        end = chunk.find(b"\n", wend)
        end = n if end < 0 else end
        if end - start > limit:
            spans.append((start, end))
        pos = end + 1
    return spans


def read_chunks(
    path: Path,
    compression: str,
    state: ReadState,
    *,
    max_line_bytes: int = MAX_LINE_BYTES,
    stop_after: int | None = None,
) -> Generator[Chunk]:
    """Yield the file's lines as Chunks that end on a line boundary.

    Every chunk but possibly the last ends with b"\\n"; the last one may lack it when the file
    does not end in a newline. Line counting is done here, once. A UTF-8 byte order mark at the
    start and NUL bytes at the start of a line (zero-filled blocks after an unclean shutdown)
    are removed, with a note. Lines longer than `max_line_bytes` are in no chunk: they are
    streamed past, keeping their length and first bytes in `state.long_lines`, so a chunk's
    lines are numbered from its first line number but may skip those numbers.
    `stop_after`: stop after that many decompressed bytes (detection reads a bounded prefix).
    """
    hasher = Hasher()
    pending = b""
    next_line = 1
    long: LongLine | None = None  # a line over the limit being streamed past
    seen = 0
    first = True
    at_line_start = True
    nuls = 0
    nul_line = 0
    last_byte = 0x0A
    for raw_block in _raw_blocks(path, compression, state, hasher):
        block = raw_block
        if first:
            first = False
            if block.startswith(_BOM):
                block = block[len(_BOM) :]
                state.notes.append("UTF-8 byte order mark at the start of the file removed")
        if not block:
            continue
        last_byte = block[-1]
        seen += len(block)
        if b"\x00" in block:
            block, removed, first_hit = _strip_leading_nuls(block, at_line_start)
            if removed:
                nuls += removed
                nul_line = nul_line or next_line + first_hit
        if block:
            at_line_start = block.endswith(b"\n")
        if long is not None:
            nl = block.find(b"\n")
            if nl < 0:
                long.length += len(block)
            else:
                long.length += nl
                state.long_lines.append(long)
                long = None
                next_line += 1
                block = block[nl + 1 :]
        if long is None and block:
            # `pending` (the start of a line) holds no line feed, so the chunk ends at the
            # block's last one; it is put together in one copy (a block is megabytes: joining
            # first and cutting after copied it twice).
            cut = block.rfind(b"\n")
            if cut < 0:
                chunk, pending = b"", pending + block
            else:
                if pending:
                    chunk = b"".join((pending, memoryview(block)[: cut + 1]))
                else:
                    chunk = block if cut + 1 == len(block) else block[: cut + 1]
                pending = block[cut + 1 :]
            n = chunk.count(b"\n")
            if len(pending) > max_line_bytes:
                long = LongLine(next_line + n, len(pending), pending[:LONG_LINE_HEAD])
                pending = b""
            if chunk:
                yield from _cut_long_lines(next_line, chunk, n, max_line_bytes, state)
                next_line += n
        if stop_after is not None and seen >= stop_after:
            break
    else:
        if long is not None:
            state.long_lines.append(long)
            next_line += 1
        if pending:
            yield from _cut_long_lines(next_line, pending, 1, max_line_bytes, state)
            next_line += 1
        state.sha256, state.bytes_read = hasher.finish(path)
    state.last_line_complete = last_byte == 0x0A
    state.lines = next_line - 1
    if nuls:
        state.notes.append(
            f"{nuls} NUL bytes (zero-filled blocks, as after an unclean shutdown) removed from the "
            f"start of lines, first at line {nul_line}"
        )
    if state.notes:
        state.note = "; ".join(state.notes)


def _strip_leading_nuls(block: bytes, at_line_start: bool) -> tuple[bytes, int, int]:
    """The block without NUL runs at line starts, how many bytes went, and the block-relative
    index of the first line they were on."""
    hits: list[int] = []

    def one(m: re.Match[bytes]) -> bytes:
        if m.start() == 0 and not at_line_start:
            return m.group(0)
        hits.append(block.count(b"\n", 0, m.start()))
        return b""

    out = _LEADING_NULS.sub(one, block)
    return out, len(block) - len(out), hits[0] if hits else 0


def _cut_long_lines(
    start_line: int, chunk: bytes, n_lines: int, limit: int, state: ReadState
) -> Iterator[Chunk]:
    """The chunk (of `n_lines` lines) without its lines over the limit, which go to
    state.long_lines."""
    spans = _long_line_spans(chunk, limit)
    if not spans:
        yield Chunk(start_line, chunk, n_lines)
        return
    pos = 0
    line = start_line
    for s, e in spans:
        if s > pos:
            n = chunk.count(b"\n", pos, s)
            yield Chunk(line, chunk[pos:s], n)
            line += n
        state.long_lines.append(LongLine(line, e - s, chunk[s : s + LONG_LINE_HEAD]))
        line += 1
        pos = e + 1
    if pos < len(chunk):
        rest = chunk[pos:]
        yield Chunk(line, rest, count_lines(rest))


PARQUET_BATCH_ROWS = 50_000


def parquet_records(path: Path, state: ReadState, limit: int | None = None) -> Iterator[tuple[int, list[str]]]:
    """Rows of a Parquet file as JSON text, in batches: (number of the first row, lines).

    Parquet logs (CloudFront standard logs v2) are read by the JSON family's field maps; the
    provenance "line" of a row is its row number in the file, counting from 1.
    """
    import json

    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except Exception as exc:
        raise InputError(
            f"not a readable Parquet file ({exc})", hint="check the file was copied whole", path=path
        ) from None
    import pyarrow as pa

    row = 1
    try:
        for batch in pf.iter_batches(batch_size=PARQUET_BATCH_ROWS if limit is None else limit):
            columns = [_parquet_values(col) for col in batch.columns]
            names = batch.schema.names
            lines = [
                json.dumps(dict(zip(names, values, strict=True)), default=str, ensure_ascii=False)
                for values in zip(*columns, strict=True)
            ]
            yield row, lines
            row += len(lines)
            if limit is not None:
                break
    except (OSError, ValueError, pa.ArrowException) as exc:
        state.truncated = True
        state.notes.append(f"Parquet data is damaged ({exc}): kept the rows read before it")
    state.lines = row - 1
    if limit is None:
        state.sha256, state.bytes_read = Hasher().finish(path)
    if state.notes:
        state.note = "; ".join(state.notes)


def _parquet_values(col: Any) -> list[Any]:
    """A column's values as Python objects; a column Python cannot hold (a date past the year
    9999) as Arrow's own text for each value, so that no value stops the read."""
    import pyarrow as pa

    try:
        return list(col.to_pylist())
    except (ValueError, OverflowError, pa.ArrowException):
        pass
    try:
        return list(col.cast(pa.string()).to_pylist())
    except (ValueError, OverflowError, pa.ArrowException):
        return [f"<{col.type} value that cannot be read>"] * len(col)


HEAD_SCAN_BYTES = 64 << 20


def head_lines(
    path: Path,
    compression: str,
    max_lines: int = 200,
    max_bytes: int = 1 << 20,
    max_line_bytes: int = MAX_LINE_BYTES,
) -> list[bytes]:
    """The first lines of a file, decompressed, for detection and checks. Reads a bounded
    prefix (HEAD_SCAN_BYTES of decompressed data at most); lines over the length limit are left
    out, as reading rejects them."""
    state = ReadState()
    if compression == "parquet":
        return [ln.encode() for _, batch in parquet_records(path, state, limit=max_lines) for ln in batch]
    out: list[bytes] = []
    size = 0
    chunks = read_chunks(path, compression, state, max_line_bytes=max_line_bytes, stop_after=HEAD_SCAN_BYTES)
    try:
        for chunk in chunks:
            lines = chunk.data.split(b"\n")
            if lines[-1] == b"":
                lines.pop()
            for line in lines:
                out.append(line)
                size += len(line)
                if len(out) >= max_lines or size >= max_bytes:
                    return out
    finally:
        chunks.close()
    return out


# Share of bytes that must be text (printable, tab, CR, LF, or part of UTF-8) for a file to read
# as a log. NUL padding (zero-filled blocks after an unclean shutdown) is left out of the count.
TEXT_SHARE = 0.85
_NOT_TEXT = re.compile("[\x01-\x08\x0b\x0c\x0e-\x1f\x7f\ufffd]")
_NOT_TEXT_ASCII = bytes([*range(0x01, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F])


def looks_binary(lines: list[bytes]) -> bool:
    """True when the start of a file is not text: mostly bytes that are neither printable nor
    UTF-8, judged by proportion, never by one byte."""
    sample = b"\n".join(lines)[:65536].replace(b"\x00", b"")
    if not sample:
        return False
    if sample.isascii():
        # The same count without decoding: in ASCII each byte is one character.
        bad = len(sample) - len(sample.translate(None, _NOT_TEXT_ASCII))
        return 1 - bad / len(sample) < TEXT_SHARE
    text = sample.decode("utf-8", "replace")
    bad = len(_NOT_TEXT.findall(text))
    return 1 - bad / len(text) < TEXT_SHARE


def check_readable(path: Path) -> None:
    if not os.access(path, os.R_OK):
        raise InputError("the file cannot be read (permission denied)", hint="check its permissions", path=path)
