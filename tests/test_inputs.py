"""Reading inputs: hashes from the same reads, damaged compression keeps every readable line,
long lines are streamed past, BOM and NUL padding are removed with a note."""

from __future__ import annotations

import bz2
import gzip
import hashlib
import lzma
import zlib
from unittest import mock

import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from forensics import inputs
from forensics.inputs import ReadState, head_lines, looks_binary, read_chunks, sniff_compression


def log_lines(n: int, start: int = 0) -> bytes:
    return b"".join(b"line %08d %s\n" % (i, b"x" * (i % 37)) for i in range(start, start + n))


def read_all(path, **kw) -> tuple[list[bytes], ReadState]:
    state = ReadState()
    out: list[bytes] = []
    for _, chunk, _ in read_chunks(path, sniff_compression(path), state, **kw):
        out.extend(chunk.splitlines())
    return out, state


def check_hash(path, state: ReadState) -> None:
    data = path.read_bytes()
    assert state.sha256 == hashlib.sha256(data).hexdigest()
    assert state.bytes_read == len(data)


@pytest.mark.parametrize("compress", [lambda b: b, gzip.compress, bz2.compress, lzma.compress,
                                      lambda b: zstandard.ZstdCompressor().compress(b)],
                         ids=["plain", "gzip", "bzip2", "xz", "zstd"])
def test_clean_files_hash_as_they_are_read(tmp_path, compress):
    path = tmp_path / "a.log"
    path.write_bytes(compress(log_lines(5000)))
    lines, state = read_all(path)
    assert len(lines) == state.lines == 5000
    assert not state.truncated and state.note is None and state.last_line_complete
    check_hash(path, state)


def test_last_line_without_newline_is_counted_and_said(tmp_path):
    path = tmp_path / "a.log"
    path.write_bytes(b"one\ntwo")
    lines, state = read_all(path)
    assert lines == [b"one", b"two"] and state.lines == 2 and not state.last_line_complete
    path.write_bytes(b"")
    lines, state = read_all(path)
    assert lines == [] and state.lines == 0 and state.last_line_complete


def test_gzip_with_only_a_bad_crc_keeps_every_line(tmp_path):
    data = log_lines(20000)
    raw = bytearray(gzip.compress(data))
    raw[-8] ^= 0xFF  # the CRC32 of the trailer
    path = tmp_path / "a.log.gz"
    path.write_bytes(bytes(raw))
    lines, state = read_all(path)
    assert b"\n".join(lines) + b"\n" == data
    assert not state.truncated and "CRC" in (state.note or "")
    check_hash(path, state)


def test_truncated_gzip_keeps_what_was_readable(tmp_path):
    data = log_lines(20000)
    full = gzip.compress(data)
    path = tmp_path / "a.log.gz"
    path.write_bytes(full[: len(full) // 2])
    lines, state = read_all(path)
    assert len(lines) > 5000 and data.startswith(b"\n".join(lines[:-1]))
    assert state.truncated and "truncated" in (state.note or "")
    check_hash(path, state)


def test_gzip_damaged_member_is_skipped_to_the_next_member(tmp_path):
    members = [gzip.compress(log_lines(3000, k * 3000)) for k in range(3)]
    middle = bytearray(members[1])
    for i in range(200, 260):
        middle[i] ^= 0x5A
    path = tmp_path / "a.log.gz"
    path.write_bytes(members[0] + bytes(middle) + members[2])
    lines, state = read_all(path)
    assert lines[:3000] == log_lines(3000).splitlines()
    assert lines[-3000:] == log_lines(3000, 6000).splitlines()
    assert "skipped" in (state.note or "") and "bytes to the next gzip member" in (state.note or "")
    check_hash(path, state)


def test_gzip_trailing_garbage_is_noted(tmp_path):
    data = log_lines(100)
    path = tmp_path / "a.log.gz"
    path.write_bytes(gzip.compress(data) + b"garbage after the end")
    lines, state = read_all(path)
    assert b"\n".join(lines) + b"\n" == data and "ignored" in (state.note or "")
    check_hash(path, state)


def _bz2_blocks(data: bytes) -> bytes:
    return bz2.compress(data, compresslevel=1)  # 100 kB blocks: several blocks from little data


def test_truncated_bzip2_keeps_every_complete_block(tmp_path):
    data = log_lines(30000)  # 990 kB: 6 blocks of about 165 kB (runs are shortened before blocking)
    full = _bz2_blocks(data)
    path = tmp_path / "a.log.bz2"
    path.write_bytes(full[: len(full) - 2000])
    lines, state = read_all(path)
    got = b"\n".join(lines)
    assert data.startswith(got) and len(got) >= len(data) - 170_000
    assert state.truncated and "bzip2" in (state.note or "")
    check_hash(path, state)


def test_bzip2_damaged_middle_block_is_skipped_and_the_rest_kept(tmp_path):
    data = log_lines(30000)
    raw = bytearray(_bz2_blocks(data))
    mid = len(raw) // 2
    for i in range(mid, mid + 50):
        raw[i] ^= 0xA5
    path = tmp_path / "a.log.bz2"
    path.write_bytes(bytes(raw))
    lines, state = read_all(path)
    want = data.splitlines()
    assert lines[:5000] == want[:5000] and lines[-5000:] == want[-5000:]
    assert len(want) - 5500 < len(lines) < len(want)
    assert "damaged" in (state.note or "") and "skipped" in (state.note or "")
    check_hash(path, state)


def test_truncated_xz_keeps_what_was_read(tmp_path):
    data = log_lines(30000)
    full = lzma.compress(data)
    path = tmp_path / "a.log.xz"
    path.write_bytes(full[: len(full) * 2 // 3])
    lines, state = read_all(path)
    assert len(lines) > 10000 and data.startswith(b"\n".join(lines[:-1]))
    assert state.truncated and "xz" in (state.note or "")
    check_hash(path, state)


def test_truncated_zstd_records_the_truncation(tmp_path):
    data = log_lines(30000)
    full = zstandard.ZstdCompressor().compress(data)
    path = tmp_path / "a.log.zst"
    path.write_bytes(full[: len(full) // 2])
    lines, state = read_all(path)
    assert lines and data.startswith(b"\n".join(lines[:-1]))
    assert state.truncated and "truncated" in (state.note or "")
    check_hash(path, state)


def test_zstd_damaged_frame_is_skipped_and_later_frames_kept(tmp_path):
    frames = [zstandard.ZstdCompressor(write_checksum=True).compress(log_lines(3000, k * 3000)) for k in range(3)]
    middle = bytearray(frames[1])
    for i in range(20, len(middle) - 10):
        middle[i] ^= 0x33
    path = tmp_path / "a.log.zst"
    path.write_bytes(frames[0] + bytes(middle) + frames[2])
    lines, state = read_all(path)
    assert lines[:3000] == log_lines(3000).splitlines()
    assert lines[-3000:] == log_lines(3000, 6000).splitlines()
    assert "zstd frame" in (state.note or "") and "skipped" in (state.note or "")
    check_hash(path, state)


def test_long_lines_are_streamed_past_with_length_and_head(tmp_path):
    path = tmp_path / "a.log"
    body = b"a\n" + b"B" * 50_000 + b"\nc\n" + b"D" * 30_000
    path.write_bytes(body)
    state = ReadState()
    got = []
    for start, chunk, n_lines in read_chunks(path, "none", state, max_line_bytes=10_000):
        assert n_lines == len(chunk.splitlines())
        got.extend((start + i, ln) for i, ln in enumerate(chunk.splitlines()))
    assert got == [(1, b"a"), (3, b"c")]
    assert [(x.line_no, x.length, x.head[:3]) for x in state.long_lines] == [(2, 50_000, b"BBB"), (4, 30_000, b"DDD")]
    assert state.lines == 4 and not state.last_line_complete


def test_long_line_inside_a_chunk_keeps_the_numbering(tmp_path):
    path = tmp_path / "a.log"
    path.write_bytes(log_lines(50) + b"Z" * 3000 + b"\n" + log_lines(50, 50))
    state = ReadState()
    numbered = []
    for start, chunk, n_lines in read_chunks(path, "none", state, max_line_bytes=2000):
        assert n_lines == len(chunk.splitlines())
        numbered.extend((start + i, ln) for i, ln in enumerate(chunk.splitlines()))
    assert [n for n, _ in numbered] == [*range(1, 51), *range(52, 102)]
    assert numbered[50][1] == b"line 00000050 " + b"x" * 13
    assert [x.line_no for x in state.long_lines] == [51]


def test_bom_and_nul_padding_are_removed_with_a_note(tmp_path):
    path = tmp_path / "a.log"
    path.write_bytes(b"\xef\xbb\xbffirst\nsecond\n" + b"\x00" * 5000 + b"third\n\x00\x00\nfo\x00urth\n")
    lines, state = read_all(path)
    assert lines == [b"first", b"second", b"third", b"", b"fo\x00urth"]
    assert "byte order mark" in (state.note or "") and "5002 NUL bytes" in (state.note or "")
    assert "first at line 3" in (state.note or "")


def test_binary_is_judged_by_proportion_not_by_one_nul(tmp_path):
    assert not looks_binary([b"192.0.2.1 - - [x] \"GET / HTTP/1.1\" 200 1", b"\x00" * 4000 + b"next"])
    assert looks_binary([bytes(range(256)) * 40])
    assert not looks_binary([b"\x00" * 100_000])


def test_detection_reads_a_bounded_prefix(tmp_path):
    path = tmp_path / "a.log.gz"
    path.write_bytes(gzip.compress(b"A" * (40 << 20) + b"\nok\n"))
    assert head_lines(path, "gzip") == [b"ok"]
    path.write_bytes(gzip.compress(b"A" * (80 << 20) + b"\nok\n"))
    assert head_lines(path, "gzip") == []


def test_a_gzip_bomb_streams(tmp_path):
    path = tmp_path / "bomb.gz"
    co = zlib.compressobj(9, zlib.DEFLATED, 31)
    path.write_bytes(co.compress(b"\x00" * (64 << 20)) + co.compress(b"ok\n") + co.flush())
    lines, state = read_all(path)
    assert lines == [b"ok"] and state.lines == 1


@given(st.lists(st.binary(max_size=80), max_size=6))
@settings(max_examples=300, deadline=None)
def test_binary_verdict_counts_characters_whatever_the_encoding(lines: list[bytes]) -> None:
    """ASCII samples are judged without decoding; the verdict must be the one the character
    count gives (bytes that are neither printable nor UTF-8, as a share of the characters)."""
    for sample_lines in (lines, [bytes(b & 0x7F for b in line) for line in lines]):
        sample = b"\n".join(sample_lines)[:65536].replace(b"\x00", b"")
        text = sample.decode("utf-8", "replace")
        bad = sum(1 for ch in text if ch in "\ufffd\x7f" or (ord(ch) < 0x20 and ch not in "\t\n\r"))
        expected = bool(text) and 1 - bad / len(text) < 0.85
        assert looks_binary(sample_lines) == expected


@pytest.mark.parametrize("uri", ["s3://bucket/logs/*.gz", "s3a://bucket/logs/", "hdfs://nn:8020/logs",
                                 "abfss://c@acct.dfs.core.windows.net/logs", "gs://b/l", "file:///srv/logs/*.gz"])
def test_a_local_run_refuses_a_uri_and_says_what_to_do(write_case, tmp_path, uri):
    from forensics.casefile import load_case
    from forensics.errors import InputError
    from forensics.ingest import ingest

    case = load_case(write_case([{"path": uri, "format": "combined"}]))
    with pytest.raises(InputError) as caught:
        ingest(case, tmp_path / "out")
    assert caught.value.path == uri
    assert "--engine spark" in str(caught.value.hint) and "copy the logs" in str(caught.value.hint)


def test_a_windows_drive_or_a_relative_name_with_a_colon_is_not_a_uri():
    from forensics.inputs import is_uri

    assert not is_uri("C:/logs/*.gz") and not is_uri("logs/a:b.log") and not is_uri("logs")
    assert is_uri("file:/srv/logs") and is_uri("s3://b/k")


@settings(max_examples=150, deadline=None)
@given(
    lines=st.lists(st.binary(max_size=40).filter(lambda b: b"\n" not in b and b"\x00" not in b), max_size=25),
    last_newline=st.booleans(),
    block=st.integers(min_value=1, max_value=64),
)
def test_chunks_cut_at_line_ends_whatever_the_block_size(tmp_path_factory, lines, last_newline, block):
    """Whatever size the decompressed blocks come in, the chunks hold every byte once, in order,
    each ends at a line end (the file's last may not), and their first line numbers and line
    counts add up."""
    body = b"\n".join(lines) + (b"\n" if last_newline and lines else b"")
    if body.startswith(b"\xef\xbb\xbf"):
        body = b"x" + body
    path = tmp_path_factory.mktemp("blocks") / "a.log"
    path.write_bytes(body)
    state = ReadState()
    with mock.patch.object(inputs, "CHUNK_BYTES", block):
        chunks = list(read_chunks(path, "none", state))
    assert b"".join(c.data for c in chunks) == body
    assert all(c.data.endswith(b"\n") for c in chunks[:-1])
    line = 1
    for c in chunks:
        assert c.first_line == line
        assert c.lines == c.data.count(b"\n") + (0 if c.data.endswith(b"\n") else 1)
        line += c.lines
    assert state.lines == line - 1 == body.count(b"\n") + (0 if body.endswith(b"\n") or not body else 1)
