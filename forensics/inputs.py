"""Finding, hashing and reading input files: plain or compressed, line by line in large chunks.

Evidence is opened read-only and never modified. Line numbers count lines of the decompressed
stream from 1; a last line without a newline still counts.
"""

from __future__ import annotations

import bz2
import glob
import hashlib
import lzma
import os
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from forensics.errors import InputError

CHUNK_BYTES = 8 << 20

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


def expand_source_path(pattern: str, base: Path) -> list[Path]:
    """A file, a directory (every file below it) or a glob, relative to `base`."""
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


@dataclass
class ReadState:
    """What happened while reading one file; filled in as the chunks are consumed."""

    lines: int = 0
    truncated: bool = False
    note: str | None = None
    notes: list[str] = field(default_factory=list)


class _RecoveringGzip:
    """zlib-based gzip reader for damaged files: yields every byte that can be decompressed,
    across concatenated members, and records where the stream broke."""

    def __init__(self, path: Path, state: ReadState) -> None:
        self.path = path
        self.state = state

    def __iter__(self) -> Iterator[bytes]:
        with open(self.path, "rb") as fh:
            d = zlib.decompressobj(wbits=47)
            while True:
                block = fh.read(1 << 20)
                if not block:
                    if not d.eof:
                        self.state.truncated = True
                        self.state.notes.append(
                            "gzip stream ends early (truncated file): kept what was readable"
                        )
                    tail = d.flush()
                    if tail:
                        yield tail
                    return
                data = block
                while data:
                    try:
                        out = d.decompress(data)
                    except zlib.error as exc:
                        self.state.truncated = True
                        self.state.notes.append(
                            f"gzip data is damaged ({exc}): kept what was readable before it"
                        )
                        return
                    if out:
                        yield out
                    if d.eof:
                        data = d.unused_data
                        d = zlib.decompressobj(wbits=47)
                        if data and not data.startswith(b"\x1f\x8b"):
                            # Trailing garbage after the last member: gzip(1) ignores it too.
                            self.state.notes.append("bytes after the last gzip member ignored")
                            return
                    else:
                        data = b""


def _open_stream(path: Path, compression: str) -> IO[bytes]:
    if compression == "gzip":
        try:
            from isal import igzip_threaded

            return igzip_threaded.open(path, "rb")  # type: ignore[no-any-return]
        except ImportError:  # pragma: no cover - isal is a dependency; stdlib as a fallback
            import gzip

            return gzip.open(path, "rb")  # type: ignore[return-value]
    if compression == "bzip2":
        return bz2.open(path, "rb")
    if compression == "xz":
        return lzma.open(path, "rb")
    if compression == "zstd":
        import zstandard

        return zstandard.ZstdDecompressor().stream_reader(  # type: ignore[return-value]
            open(path, "rb"), read_across_frames=True, closefd=True
        )
    return open(path, "rb")


def _raw_blocks(path: Path, compression: str, state: ReadState) -> Iterator[bytes]:
    delivered = 0
    try:
        with _open_stream(path, compression) as fh:
            while block := fh.read(CHUNK_BYTES):
                delivered += len(block)
                yield block
        return
    except (EOFError, OSError, zlib.error, lzma.LZMAError, ValueError) as exc:
        err = exc
    if compression != "gzip":
        state.truncated = True
        state.notes.append(f"{compression} stream is damaged or ends early ({err}): kept what was readable")
        return
    # Re-read with the recovering reader and skip what was already delivered.
    skip = delivered
    for block in _RecoveringGzip(path, state):
        if skip >= len(block):
            skip -= len(block)
            continue
        if skip:
            yield block[skip:]
            skip = 0
            continue
        yield block


def read_chunks(path: Path, compression: str, state: ReadState) -> Iterator[tuple[int, bytes]]:
    """Yield (first line number, bytes) chunks that end on a line boundary.

    Every chunk but possibly the last ends with b"\\n"; the last one may lack it when the file
    does not end in a newline. Line counting is done here, once.
    """
    pending = b""
    next_line = 1
    for block in _raw_blocks(path, compression, state):
        data = pending + block if pending else block
        cut = data.rfind(b"\n")
        if cut < 0:
            pending = data
            continue
        chunk, pending = data[: cut + 1], data[cut + 1 :]
        n = chunk.count(b"\n")
        yield next_line, chunk
        next_line += n
    if pending:
        yield next_line, pending
        next_line += 1
    state.lines = next_line - 1
    if state.notes:
        state.note = "; ".join(state.notes)


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
    row = 1
    try:
        for batch in pf.iter_batches(batch_size=PARQUET_BATCH_ROWS if limit is None else limit):
            lines = [json.dumps(r, default=str, ensure_ascii=False) for r in batch.to_pylist()]
            yield row, lines
            row += len(lines)
            if limit is not None:
                break
    except OSError as exc:
        state.truncated = True
        state.notes.append(f"Parquet data is damaged ({exc}): kept the rows read before it")
    state.lines = row - 1
    if state.notes:
        state.note = "; ".join(state.notes)


def head_lines(path: Path, compression: str, max_lines: int = 200, max_bytes: int = 1 << 20) -> list[bytes]:
    """The first lines of a file, decompressed, for detection and checks."""
    state = ReadState()
    if compression == "parquet":
        return [ln.encode() for _, batch in parquet_records(path, state, limit=max_lines) for ln in batch]
    out: list[bytes] = []
    size = 0
    for _, chunk in read_chunks(path, compression, state):
        for line in chunk.split(b"\n"):
            out.append(line)
            size += len(line)
            if len(out) >= max_lines or size >= max_bytes:
                return out
        break
    if out and out[-1] == b"":
        out.pop()
    return out


def looks_binary(lines: list[bytes]) -> bool:
    """True when the start of a file is not text: NUL bytes or mostly non-printable bytes."""
    sample = b"\n".join(lines)[:65536]
    if not sample:
        return False
    if b"\x00" in sample:
        return True
    printable = sum(1 for b in sample if b >= 0x20 or b in (9, 10, 13))
    return printable / len(sample) < 0.85


def check_readable(path: Path) -> None:
    if not os.access(path, os.R_OK):
        raise InputError("the file cannot be read (permission denied)", hint="check its permissions", path=path)
