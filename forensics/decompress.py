"""Reading compressed evidence that may be damaged: every byte that can be decompressed is kept,
and what could not be read is said (a note per problem, `truncated` when the stream ends early).

Each format is first read the fast way. When that fails, the file is read again by a reader
that resynchronises where the format allows it, and the bytes already delivered are skipped:
- gzip (RFC 1952): members are parsed by hand and inflated raw, so a bad CRC loses nothing (it is
  noted) and damaged deflate data is skipped up to the next member header (pigz, bgzip and
  rotated-and-concatenated logs have many members; a single-member file keeps what came before
  the damage);
- bzip2: the stream is cut into its blocks at their bit-aligned block magic, as bzip2recover
  does, and each block is decompressed on its own; a damaged block is skipped;
- xz: read incrementally; a truncated file keeps everything decoded, a damaged one keeps what
  came before the damage (xz blocks are not resynchronised);
- zstd: frames are walked by their headers to tell a complete file from a truncated one; after
  damage, later frames are decompressed on their own.

Every read of the file goes through `Hasher`, which hashes each byte once, in file order, so the
SHA-256 of the evidence comes from the same reads that decompress it. Output comes in blocks of
at most OUT_MAX bytes, however well the input compresses (a gzip bomb stays a stream).
"""

from __future__ import annotations

import bz2
import hashlib
import io
import lzma
import os
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

OUT_MAX = 8 << 20
_PIECE = 1 << 16


@dataclass
class DamageLog:
    """What went wrong while decompressing; copied into the file's ReadState."""

    truncated: bool = False
    notes: list[str] = field(default_factory=list)


class Hasher:
    """SHA-256 of a file's bytes as they are read, each byte once, in order."""

    def __init__(self) -> None:
        self.sha = hashlib.sha256()
        self.upto = 0

    def feed(self, offset: int, data: bytes | memoryview) -> None:
        end = offset + len(data)
        if end <= self.upto:
            return
        if offset > self.upto:
            # Reads always start at 0 and go forward; a gap would make the hash wrong.
            raise AssertionError(f"hash gap at byte {self.upto}")
        self.sha.update(data[self.upto - offset :])
        self.upto = end

    def finish(self, path: Path) -> tuple[str, int]:
        """Hash the bytes no reader needed (trailing bytes after a damaged stream), so the
        digest always covers the whole file as far as it could be read."""
        with open(path, "rb") as fh:
            fh.seek(self.upto)
            while block := fh.read(4 << 20):
                self.feed(self.upto, block)
        return self.sha.hexdigest(), self.upto


class HashingFile(io.RawIOBase):
    """A read-only file, read from its start, whose bytes are hashed as they are read."""

    def __init__(self, path: Path, hasher: Hasher) -> None:
        self.fh = open(path, "rb")  # closed in close()
        self.hasher = hasher
        self.pos = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        n = self.fh.readinto(b)
        if n:
            self.hasher.feed(self.pos, memoryview(b)[:n])
            self.pos += n
        return n or 0

    def close(self) -> None:
        self.fh.close()
        super().close()


class _Source:
    """Forward reads of a file with a look-ahead buffer."""

    def __init__(self, path: Path, hasher: Hasher) -> None:
        self.fh = HashingFile(path, hasher)
        self.buf = b""
        self.offset = 0  # file offset of buf[0]
        self.eof = False

    def fill(self, n: int) -> bool:
        while len(self.buf) < n and not self.eof:
            more = self.fh.read(max(n - len(self.buf), 1 << 20))
            if not more:
                self.eof = True
            else:
                self.buf += more
        return len(self.buf) >= n

    def take(self, n: int) -> bytes:
        out, self.buf = self.buf[:n], self.buf[n:]
        self.offset += len(out)
        return out

    def piece(self, n: int = _PIECE) -> bytes:
        self.fill(1)
        return self.take(n)

    def unread(self, data: bytes) -> None:
        self.buf = data + self.buf
        self.offset -= len(data)

    def seek_to(self, pattern: bytes) -> bool:
        """Drop bytes until `pattern` starts the buffer; False (all dropped) at end of file."""
        while True:
            i = self.buf.find(pattern)
            if i >= 0:
                self.take(i)
                return True
            self.take(max(0, len(self.buf) - len(pattern) + 1))
            if not self.fill(len(self.buf) + 1):
                self.take(len(self.buf))
                return False

    def rest_is_zero(self) -> bool:
        while self.fill(1):
            if self.buf.strip(b"\x00"):
                return False
            self.take(len(self.buf))
        return True

    def close(self) -> None:
        self.fh.close()


# A gap in the output: bytes that could not be read were skipped at this point.
GAP = b""


def after_delivered(recovered: Iterator[bytes | None], delivered: int, last: int) -> Iterator[bytes]:
    """The output of a recovering reader, minus the `delivered` bytes the fast reader already
    gave. `None` items mark a gap (skipped damaged data): the fast reader cannot have gone past
    the first one, and a line cut by the gap is ended there, so that the next good line keeps
    its own line."""
    skip = delivered
    for got in recovered:
        if got is None:
            skip = 0
            if last not in (-1, 0x0A):
                last = 0x0A
                yield b"\n"
            continue
        item = got
        if skip:
            if skip >= len(item):
                skip -= len(item)
                continue
            item = item[skip:]
            skip = 0
        if item:
            last = item[-1]
            yield item


def _inflate(d: Any, data: bytes) -> Iterator[bytes]:
    """Every output byte of `data`, in blocks of at most OUT_MAX."""
    while True:
        out = d.decompress(data, OUT_MAX)
        if out:
            yield out
        data = d.unconsumed_tail
        if d.eof or (not data and len(out) < OUT_MAX):
            return


def _inflate_until_error(d: Any, data: bytes) -> tuple[list[bytes], zlib.error | None]:
    """Output of `data` up to the first byte zlib refuses (zlib drops the output of a call that
    fails, so the failing piece is replayed in smaller steps from a copy of the state)."""
    saved = d.copy()
    try:
        return list(_inflate(d, data)), None
    except zlib.error as exc:
        err = exc
    out: list[bytes] = []
    d = saved
    step = 1024
    pos = 0
    while pos < len(data):
        before = d.copy()
        try:
            out.extend(_inflate(d, data[pos : pos + step]))
            pos += step
        except zlib.error:
            if step == 1:
                break
            d = before
            step = 1
    return out, err


def _gzip_header(src: _Source) -> bool | None:
    """Consume one member header; None at end of input, False when none is there."""
    if not src.fill(10):
        return None if not src.buf else False
    head = src.buf
    if head[:3] != b"\x1f\x8b\x08":
        return False
    flags = head[3]
    pos = 10
    if flags & 4:
        if not src.fill(pos + 2):
            return False
        pos += 2 + int.from_bytes(src.buf[pos : pos + 2], "little")
    for bit in (8, 16):  # FNAME, FCOMMENT: zero-terminated
        if flags & bit:
            while (end := src.buf.find(b"\x00", pos)) < 0:
                if len(src.buf) > pos + (1 << 16) or not src.fill(len(src.buf) + 1):
                    return False
            pos = end + 1
    if flags & 2:
        pos += 2
    if not src.fill(pos):
        return False
    src.take(pos)
    return True


def gzip_recovered(path: Path, hasher: Hasher, log: DamageLog) -> Iterator[bytes | None]:
    """Every readable byte of a damaged gzip file, member by member (see the module doc)."""
    src = _Source(path, hasher)
    try:
        member = 0
        while True:
            start = src.offset
            header = _gzip_header(src)
            if header is None:
                return
            if not header:
                if member and src.rest_is_zero():
                    return  # zero padding after the last member, which gzip(1) ignores too
                src.take(1)
                if src.seek_to(b"\x1f\x8b\x08"):
                    log.notes.append(
                        f"gzip: {src.offset - start} bytes at byte {start} are not gzip data: skipped "
                        f"to the next gzip member at byte {src.offset}"
                    )
                    yield None
                    continue
                what = "not gzip data" if member == 0 else "after the last gzip member"
                log.notes.append(f"gzip: {src.offset - start} bytes at byte {start} {what}: ignored")
                return
            member += 1
            d = zlib.decompressobj(-15)
            crc = size = 0
            damaged = False
            while not d.eof:
                piece_at = src.offset
                piece = src.piece()
                if not piece:
                    log.truncated = True
                    log.notes.append(
                        f"gzip stream ends early (truncated file, at byte {src.offset}): kept what was readable"
                    )
                    tail = d.flush()
                    if tail:
                        yield tail
                    return
                outs, err = _inflate_until_error(d, piece)
                for out in outs:
                    crc = zlib.crc32(out, crc)
                    size += len(out)
                    yield out
                if err is not None:
                    src.unread(piece[1:])
                    if src.seek_to(b"\x1f\x8b\x08"):
                        log.notes.append(
                            f"gzip data is damaged near byte {piece_at} ({err}): skipped {src.offset - piece_at} "
                            f"bytes to the next gzip member at byte {src.offset}"
                        )
                        yield None
                    else:
                        log.truncated = True
                        log.notes.append(
                            f"gzip data is damaged near byte {piece_at} ({err}): the remaining "
                            f"{src.offset - piece_at} bytes could not be read"
                        )
                        return
                    damaged = True
                    break
            if damaged:
                continue
            src.unread(d.unused_data)
            if not src.fill(8):
                log.truncated = True
                log.notes.append(f"gzip member {member} ends without its CRC and length: the file is cut short")
                src.take(len(src.buf))
                return
            trailer = src.take(8)
            size_ok = int.from_bytes(trailer[4:], "little") == size & 0xFFFFFFFF
            if int.from_bytes(trailer[:4], "little") != crc or not size_ok:
                log.notes.append(
                    f"gzip member {member}: the CRC or length check failed: its lines are kept, "
                    "but some bytes in them may be wrong"
                )
    finally:
        src.close()


# -- bzip2 ----------------------------------------------------------------------------------------
_BLOCK_MAGIC = 0x314159265359
_EOS_MAGIC = 0x177245385090


def _bit_patterns(magic: int) -> list[tuple[int, bytes]]:
    """For each bit shift 0-7: the whole bytes a 48-bit magic at that shift always contains."""
    out = []
    for shift in range(8):
        window = (magic << (64 - 48 - shift)).to_bytes(8, "big")
        first = 0 if shift == 0 else 1
        last = (shift + 48) // 8  # exclusive
        out.append((shift, window[first:last]))
    return out


def _find_magics(path: Path, magic: int) -> list[int]:
    """Bit offsets of a 48-bit magic anywhere in the file (bzip2 blocks are not byte-aligned)."""
    found: set[int] = set()
    patterns = _bit_patterns(magic)
    size = os.path.getsize(path)
    with open(path, "rb") as fh:
        base = 0
        while base < size:
            fh.seek(base)
            data = fh.read((4 << 20) + 16)
            for shift, pat in patterns:
                first = 0 if shift == 0 else 1
                i = data.find(pat)
                while i >= 0:
                    byte = i - first
                    if byte >= 0 and byte * 8 + shift + 48 <= len(data) * 8:
                        window = int.from_bytes(data[byte : byte + 8].ljust(8, b"\x00"), "big")
                        if (window >> (64 - 48 - shift)) & ((1 << 48) - 1) == magic:
                            found.add((base + byte) * 8 + shift)
                    i = data.find(pat, i + 1)
            base += 4 << 20
    return sorted(found)


def _bits(path: Path, start: int, end: int) -> tuple[int, int]:
    """The bits [start, end) of a file (bit 0 is the high bit of byte 0) as an integer, and how
    many there are."""
    first = start // 8
    with open(path, "rb") as fh:
        fh.seek(first)
        data = fh.read((end + 7) // 8 - first)
    value = int.from_bytes(data, "big") >> (first * 8 + len(data) * 8 - end)
    n = end - start
    return value & ((1 << n) - 1), n


def bzip2_blocks_recovered(path: Path, hasher: Hasher, log: DamageLog) -> Iterator[bytes | None]:
    """Every block of a damaged bzip2 file that decompresses on its own, in order."""
    hasher.finish(path)  # hash the file in order before the reads out of order
    size_bits = os.path.getsize(path) * 8
    blocks = _find_magics(path, _BLOCK_MAGIC)
    ends = sorted(set(blocks) | set(_find_magics(path, _EOS_MAGIC)))
    for start in blocks:
        later = [e for e in ends if e > start]
        end = later[0] if later else size_bits
        bits, n = _bits(path, start, end)
        crc = (bits >> (n - 80)) & 0xFFFFFFFF if n >= 80 else 0
        stream = (bits << 80) | (_EOS_MAGIC << 32) | crc
        total = n + 80
        pad = (-total) % 8
        data = b"BZh9" + (stream << pad).to_bytes((total + pad) // 8, "big")
        try:
            out = bz2.decompress(data)
        except (OSError, ValueError, EOFError) as exc:
            if not later:
                log.truncated = True
                log.notes.append(
                    f"bzip2 stream ends inside a block (truncated file): the last {(end - start) // 8} "
                    "bytes could not be read"
                )
            else:
                log.notes.append(
                    f"bzip2 block at byte {start // 8} is damaged ({exc}): skipped its {(end - start) // 8} bytes"
                )
            yield None
            continue
        for i in range(0, len(out), OUT_MAX):
            yield out[i : i + OUT_MAX]


def bzip2_stream(path: Path, hasher: Hasher, log: DamageLog) -> Iterator[bytes]:
    delivered = 0
    last = -1
    try:
        with HashingFile(path, hasher) as fh:
            d = bz2.BZ2Decompressor()
            data = b""
            while True:
                if d.eof:
                    data = d.unused_data + fh.read(_PIECE)
                    if not data:
                        return
                    if not data.startswith(b"BZh"):
                        rest = data + fh.read()
                        if rest.strip(b"\x00"):
                            log.notes.append(f"{len(rest)} bytes after the last bzip2 stream ignored")
                        return
                    d = bz2.BZ2Decompressor()
                elif d.needs_input:
                    data = fh.read(_PIECE)
                    if not data:
                        break
                else:
                    data = b""
                out = d.decompress(data, OUT_MAX)
                if out:
                    delivered += len(out)
                    last = out[-1]
                    yield out
        log.truncated = True
        log.notes.append("bzip2 stream ends inside a block (truncated file): kept every complete block")
        return
    except (OSError, EOFError, ValueError):
        pass
    yield from after_delivered(bzip2_blocks_recovered(path, hasher, log), delivered, last)


# -- xz -------------------------------------------------------------------------------------------
def xz_stream(path: Path, hasher: Hasher, log: DamageLog) -> Iterator[bytes]:
    with HashingFile(path, hasher) as fh:
        d = lzma.LZMADecompressor()
        at = 0
        while True:
            if d.eof:
                data = d.unused_data + fh.read(_PIECE)
                if not data.strip(b"\x00"):
                    return  # end, or stream padding
                d = lzma.LZMADecompressor()
            elif d.needs_input:
                at = fh.pos
                data = fh.read(_PIECE)
                if not data:
                    log.truncated = True
                    log.notes.append("xz stream ends early (truncated file): kept what was readable")
                    return
            else:
                data = b""
            try:
                out = d.decompress(data, OUT_MAX)
            except lzma.LZMAError as exc:
                log.truncated = True
                log.notes.append(
                    f"xz data is damaged near byte {at} ({exc}): kept what was readable before it; "
                    f"the remaining {os.path.getsize(path) - at} bytes could not be read"
                )
                return
            if out:
                yield out


# -- zstd -----------------------------------------------------------------------------------------
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def zstd_frames(path: Path) -> tuple[list[tuple[int, int]], str | None]:
    """The (start, end) byte ranges of the frames, found from their headers without
    decompressing, and what is wrong after the last complete one (None when nothing)."""
    frames: list[tuple[int, int]] = []
    size = os.path.getsize(path)
    with open(path, "rb") as fh:
        pos = 0
        while pos < size:
            fh.seek(pos)
            head = fh.read(18)
            magic = int.from_bytes(head[:4], "little")
            if 0x184D2A50 <= magic <= 0x184D2A5F and len(head) >= 8:  # skippable frame
                end = pos + 8 + int.from_bytes(head[4:8], "little")
                if end > size:
                    return frames, "the file ends inside a skippable frame (truncated file)"
                pos = end
                continue
            if head[:4] != _ZSTD_MAGIC or len(head) < 5:
                rest = size - pos
                return frames, f"{rest} bytes after the last complete zstd frame are not a zstd frame"
            fhd = head[4]
            single = (fhd >> 5) & 1
            fcs = [1 if single else 0, 2, 4, 8][fhd >> 6]
            header = 5 + (0 if single else 1) + [0, 1, 2, 4][fhd & 3] + fcs
            checksum = 4 if fhd & 4 else 0
            p = pos + header
            while True:
                fh.seek(p)
                b = fh.read(3)
                if len(b) < 3:
                    return frames, "zstd stream ends inside a frame (truncated file)"
                h = int.from_bytes(b, "little")
                kind, bsize = (h >> 1) & 3, h >> 3
                if kind == 3:
                    return frames, f"zstd block header at byte {p} is not valid"
                p += 3 + (1 if kind == 1 else bsize)
                if h & 1:
                    break
            p += checksum
            if p > size:
                return frames, "zstd stream ends inside a frame (truncated file)"
            frames.append((pos, p))
            pos = p
    return frames, None


def _zstd_read(fh: Any) -> Iterator[bytes]:
    """Decompressed output of every frame, in blocks of at most OUT_MAX bytes."""
    import zstandard

    reader = zstandard.ZstdDecompressor().stream_reader(fh, read_size=_PIECE, read_across_frames=True, closefd=False)
    while out := reader.read(OUT_MAX):
        yield out


def zstd_stream(path: Path, hasher: Hasher, log: DamageLog) -> Iterator[bytes]:
    import zstandard

    delivered = 0
    last = -1
    failed: Exception | None = None
    try:
        with HashingFile(path, hasher) as fh:
            for out in _zstd_read(fh):
                if out:
                    delivered += len(out)
                    last = out[-1]
                    yield out
    except zstandard.ZstdError as exc:
        failed = exc
    frames, problem = zstd_frames(path)
    if failed is None:
        if problem:
            log.truncated = "truncated" in problem
            log.notes.append(f"{problem}: kept what was readable")
        return

    def per_frame() -> Iterator[bytes | None]:
        hasher.finish(path)  # hash the file in order before the reads out of order
        covered = 0
        for start, end in frames:
            covered = end
            with open(path, "rb") as fh:
                fh.seek(start)
                limited = io.BytesIO(fh.read(end - start))
            try:
                yield from _zstd_read(limited)
            except zstandard.ZstdError as exc:
                log.notes.append(f"zstd frame at byte {start} is damaged ({exc}): skipped its {end - start} bytes")
                yield None
        if problem:
            log.truncated = True
            log.notes.append(f"{problem}; the bytes from {covered} on could not be read")

    if not frames:
        log.truncated = True
        log.notes.append(f"zstd data is damaged ({failed}): kept what was readable before it")
        return
    yield from after_delivered(per_frame(), delivered, last)
