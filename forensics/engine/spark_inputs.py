"""Log files named by a URI (s3://, s3a://, hdfs://, abfss://, gs://, file:...), read through
Spark's own file system layer, so a cluster reads the logs where they are.

- Listing, on the driver: the Hadoop FileSystem of the session's configuration (EMRFS for s3://
  on EMR, hadoop-aws for s3a://, ...) lists a source's files: a glob gives the files it matches,
  a folder every file below it (names starting with "." left out, as a local folder listing
  does). Nothing is read yet.
- Reading, in Spark tasks: Spark's `binaryFile` source gives each file's bytes to a task, which
  writes them to a copy on the executor's local disk (SPARK_LOCAL_DIRS) and reads the copy with
  the same code as a local file: decompression, line counting, rejects, and the SHA-256 and size
  of the bytes read, which the case records with the URI. binaryFile holds a whole file in the
  task's memory, so a file larger than `spark.sql.sources.binaryFile.maxLength` (2 GiB - 1 by
  default) is refused when it is listed, with its name.
- Examining, in Spark tasks, before anything is loaded: each file's SHA-256 (for duplicates), its
  compression and its first lines' verdicts (text or binary, the format they read as), so that
  the driver plans a URI source exactly as forensics.ingest.plan_files plans a local one.

Spark's file index leaves out names ending in `._COPYING_` (a copy in progress) and, before Spark
4.3 (which can be told not to), names starting with "_" or ".": a listed file that Spark does not
hand over stops the run with its name, so that no file is silently left out of the case.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from forensics import errors
from forensics.casefile import Case, SourceSpec
from forensics.errors import ForensicsError, InputError
from forensics.formats import get_format
from forensics.inputs import is_uri

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from forensics.ingest import FileHead

# The most bytes Spark's binaryFile source reads from one file (its own default: a Java array).
BINARY_FILE_MAX = 2**31 - 1


@dataclass
class ListedFile:
    uri: str
    size: int
    mtime_ms: int


def _first_line(exc: BaseException) -> str:
    """The first line of a Java exception's message as py4j gives it (the Java class and text)."""
    java = getattr(exc, "java_exception", None)
    text = str(java.toString()) if java is not None else str(exc)
    return text.strip().splitlines()[0] if text.strip() else type(exc).__name__


def list_source(spark: SparkSession, pattern: str) -> list[ListedFile]:
    """The files a URI source names, listed by the Hadoop FileSystem of Spark's configuration,
    sorted by URI. A glob (`*`, `?`, `[...]`, `{a,b}`, Hadoop's syntax) gives the files it
    matches; a folder, every file below it."""
    from py4j.protocol import Py4JJavaError
    from pyspark.errors import PySparkException

    jvm = spark.sparkContext._jvm
    conf = spark.sparkContext._jsc.hadoopConfiguration()  # type: ignore[union-attr]
    globbed = any(ch in pattern for ch in "*?[{")
    hint = ("check the URI and the cluster's access to it; on EMR s3:// is read by EMRFS, elsewhere use s3a:// "
            "with hadoop-aws on Spark's classpath (see the README, On a cluster)")
    try:
        path = jvm.org.apache.hadoop.fs.Path(pattern)  # type: ignore[union-attr]
        fs = path.getFileSystem(conf)
        statuses = fs.globStatus(path)
        found: list[ListedFile] = []
        folders = []
        for status in statuses or []:
            if status.isFile():
                found.append(ListedFile(status.getPath().toString(), status.getLen(), status.getModificationTime()))
            elif not globbed:
                folders.append(status.getPath())
        # Folder by folder with listStatus: listFiles would look up every file's block locations
        # (2,000 files: 17 s against 0.9 s).
        while folders:
            for status in fs.listStatus(folders.pop()):
                if status.isDirectory():
                    folders.append(status.getPath())
                elif not status.getPath().getName().startswith("."):
                    found.append(ListedFile(status.getPath().toString(), status.getLen(), status.getModificationTime()))
    except (Py4JJavaError, PySparkException) as exc:  # no file system for the scheme, no access, no host
        raise InputError(f"Spark's file system layer cannot list this source: {_first_line(exc)}",
                         hint=hint, path=pattern) from None
    if not found:
        raise InputError(
            "the pattern matches no file" if globbed else "no such file, or a folder that holds no file",
            hint="check the URI; a glob is read with Hadoop's syntax (*, ?, [abc], {a,b}) and does not "
            "descend into folders", path=pattern,
        )
    limit = int(spark.conf.get("spark.sql.sources.binaryFile.maxLength", str(BINARY_FILE_MAX)) or BINARY_FILE_MAX)
    for f in found:
        if f.size > limit:
            raise InputError(
                f"the file is {f.size:,} bytes; Spark reads a file named by a URI whole into one task's memory "
                f"(its binaryFile source), at most {limit:,} bytes",
                hint="split the file or compress it (gzip), or put the logs where every node sees them as a "
                "local path (a mounted volume) and name that path",
                path=f.uri,
            )
    return sorted(found, key=lambda f: f.uri)


def binary_files(spark: SparkSession, sources: list[tuple[str, list[str]]]) -> DataFrame:
    """`path` and `content` of the given files (each source's pattern with the URIs wanted from
    it), read by Spark's binaryFile source: Spark packs small files into one task, a large file
    has a task of its own. Spark's own filter of "hidden" names (`_` or `.` first) is turned off
    (`ignoredPathSegmentRegex`, Spark 4.3 and later; older versions ignore the option and leave
    those files out, which stops the run with their names)."""
    from pyspark.sql import functions as F

    frames = [
        spark.read.format("binaryFile").option("recursiveFileLookup", "true")
        .option("ignoredPathSegmentRegex", "").load(pattern)
        .select("path", "content").where(F.col("path").isin(uris))
        for pattern, uris in sources if uris
    ]
    frame = frames[0]
    for other in frames[1:]:
        frame = frame.unionByName(other)
    return frame


@contextlib.contextmanager
def local_copy(content: pa.Scalar) -> Iterator[Path]:
    """A file's bytes (a binaryFile `content` value) as a file on the executor's local disk, for
    the project's readers; removed afterwards."""
    folder = os.environ.get("SPARK_LOCAL_DIRS", "").split(",")[0] or None
    with tempfile.TemporaryDirectory(prefix="forensics-", dir=folder) as tmp:
        copy = Path(tmp) / "log"
        with copy.open("wb") as fh:
            buffer = content.as_buffer()
            if buffer is not None:
                fh.write(memoryview(buffer))
        yield copy


def rows_of(batch: pa.RecordBatch) -> Iterator[tuple[str, pa.Scalar]]:
    """(URI, content) of each row of a binaryFile batch, the bytes left in Arrow's buffer."""
    paths = batch.column("path")
    contents = batch.column("content")
    for i in range(batch.num_rows):
        yield paths[i].as_py(), contents[i]


# --- examining ---------------------------------------------------------------------------------

_EXAMINED = "`path` STRING, `examined` STRING"


def _examine_task(specs: dict[str, SourceSpec]) -> Any:
    def task(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        from forensics.ingest import examine_head

        for batch in batches:
            paths, results = [], []
            for uri, content in rows_of(batch):
                buffer = content.as_buffer()
                data = memoryview(buffer) if buffer is not None else b""
                facts: dict[str, Any] = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
                if len(data):
                    spec = specs[uri]
                    try:
                        with local_copy(content) as copy:
                            head = examine_head(spec, copy, uri, len(data), 0)
                            facts.update(compression=head.compression, binary=head.binary,
                                         has_content=head.has_content)
                            if head.has_content and not head.binary:
                                try:
                                    fmt, detected = head.resolve()
                                    facts.update(format=fmt.name, detected=detected)
                                except ForensicsError as exc:
                                    facts["format_error"] = error_json(exc)
                    except ForensicsError as exc:
                        facts["failure"] = error_json(exc)
                paths.append(uri)
                results.append(json.dumps(facts))
            yield pa.RecordBatch.from_pydict({"path": paths, "examined": results},
                                             schema=pa.schema([("path", pa.string()), ("examined", pa.string())]))
    return task


def error_json(exc: ForensicsError) -> dict[str, Any]:
    return {"kind": type(exc).__name__, "message": exc.message, "hint": exc.hint, "line": exc.line}


def raise_error(error: dict[str, Any], where: str) -> None:
    """Raise an error a Spark task met, as its own type, naming the file by its URI or path
    (the task read a copy)."""
    kind = getattr(errors, str(error.get("kind")), InputError)
    if not (isinstance(kind, type) and issubclass(kind, ForensicsError)):
        kind = InputError
    raise kind(error["message"], hint=error.get("hint"), path=where, line=error.get("line"))


def examine_sources(spark: SparkSession, case: Case) -> dict[int, Iterator[FileHead]]:
    """The heads of the files of the case's URI sources (by the source's index), examined in
    Spark tasks. Each source's heads come as plan_files reaches them, so that an error is raised
    at the file a local plan would raise it at."""
    listed = {i: list_source(spark, spec.path) for i, spec in enumerate(case.sources) if is_uri(spec.path)}
    if not listed:
        return {}
    specs: dict[str, SourceSpec] = {}
    for i, files in listed.items():
        for f in files:
            specs.setdefault(f.uri, case.sources[i])
    # Spark's file sources hand over no file of 0 bytes: an empty file is known from its listing.
    examined: dict[str, dict[str, Any]] = {
        f.uri: {"size": 0, "sha256": hashlib.sha256(b"").hexdigest()}
        for files in listed.values() for f in files if f.size == 0
    }
    wanted = [(case.sources[i].path, [f.uri for f in files if f.size]) for i, files in listed.items()]
    if any(uris for _, uris in wanted):
        frame = binary_files(spark, wanted)
        # One short row per file, like the file plan the driver holds anyway: collected at once
        # (an iterator would run a job per partition).
        rows = frame.mapInArrow(_examine_task(specs), _EXAMINED).toArrow()
        examined.update(
            (uri, json.loads(text))
            for uri, text in zip(rows.column("path").to_pylist(), rows.column("examined").to_pylist(), strict=True)
        )
    return {i: _heads(case.sources[i], files, examined) for i, files in listed.items()}


def _heads(spec: SourceSpec, files: list[ListedFile], examined: dict[str, dict[str, Any]]) -> Iterator[FileHead]:
    from forensics.ingest import FileHead

    for f in files:
        facts = examined.get(f.uri)
        if facts is None:
            raise InputError(
                "Spark's binaryFile reader did not hand over this file (it leaves out names ending in "
                "._COPYING_, and before Spark 4.3 names starting with \"_\"), or it went away after it was listed",
                hint="rename the file, or narrow the source's path so it does not match it",
                path=f.uri,
            )
        if "failure" in facts:
            raise_error(facts["failure"], f.uri)
        yield FileHead(
            Path(f.uri), f.uri, facts["size"], f.mtime_ms * 1_000_000, facts.get("compression", "none"),
            facts.get("binary", False), facts.get("has_content", False),
            _resolver(spec, facts, f.uri), uri=f.uri, sha256=facts["sha256"],
        )


def _resolver(spec: SourceSpec, facts: dict[str, Any], uri: str) -> Any:
    def resolve() -> tuple[Any, bool]:
        if "format_error" in facts:
            raise_error(facts["format_error"], uri)
        return get_format(facts.get("format") or spec.format), bool(facts.get("detected", False))
    return resolve
