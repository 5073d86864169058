"""Parse a batch of input files of one kind into DuckDB staging tables: ``staged`` (events in the
event schema, plus the columns needed to explain a rejected timestamp) and ``qstaged`` (records set
aside, with file, line or record number, field and reason).

CSV is read by DuckDB's parallel CSV reader, every file of a batch with the same header in one
``read_csv`` (which reports rejected lines with their file, number and column); NDJSON is read line
by line by pyarrow's streaming reader into Arrow batches, the lines of several files mapped
together; JSON arrays and SOQL responses by DuckDB's JSON reader. Every mapping then runs as one
SQL SELECT per chunk, whatever the number of files in it: planning that SELECT costs more than
parsing a small file.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from crmguard.errors import CrmguardError, SourceParseError
from crmguard.schema import COLUMNS, EVENT_SCHEMA, duckdb_type
from crmguard.sources import FORMAT_SQL, JSON_FORMATS
from crmguard.sources.inputs import Opened
from crmguard.sources.mapping import (
    SourceMapping,
    csv_field,
    csv_source,
    json_select,
    select_list,
    split_lets,
    with_lets,
)
from crmguard.sources.salesforce import audit_trail, elf
from crmguard.sources.sql import arrow_table, byte_slices, ident, scannable, session_cursor, sql_list, sql_str

NDJSON_BLOCK = 8 << 20
JSON_CHUNK_BYTES = 64 << 20
"""NDJSON lines (of one file or several) are mapped once this many bytes are read: bounds memory."""
MAP_SLICE_BYTES = 12 << 20
"""Most bytes of JSON text one mapping query reads; a format's records beyond it are mapped in
several queries, two at a time. DuckDB's JSON functions hold what they parse until their query
ends: RTEM events listing hundreds of records took about 40 times their text, so a 64 MB chunk of
them passed the ingest connection's 1 GB limit."""
MAP_WORKERS = 2
"""Mapping queries run at the same time (see :func:`_side_by_side`)."""
UNRECOGNISED = "unrecognised record: not an Okta System Log event, Salesforce ELF row, RTEM event or SetupAuditTrail record"


CHUNK_ROWS = 262_144
"""Rows per chunk handed to the lake: bounds memory whatever the file size."""


STAGED_COLUMNS: tuple[str, ...] = (
    "event_id VARCHAR",
    *(f"{c.name} {duckdb_type(c)}" for c in COLUMNS if c.name not in ("raw", "log_file", "event_id")),
    "_time_raw VARCHAR", "_time_field VARCHAR", "raw VARCHAR", "log_file VARCHAR", "_line BIGINT", "_record BIGINT",
    "_file BIGINT",
)
"""Columns of a staged chunk: the event schema (``event_id`` = md5 of source and raw record), plus
where the record was (``_line``, ``_record``, ``_file`` its file's index in the batch) and the raw
time text to explain a rejection."""


def with_event_id(source: str, select: str) -> str:
    """Wrap ``select`` (staged columns less ``event_id``, with ``raw``) to prepend the event id."""
    return f"SELECT md5('{source}' || chr(30) || raw) AS event_id, * FROM ({select})"


def create_staging(con: duckdb.DuckDBPyConnection) -> None:
    """Create (or empty) the ``qstaged`` table of records set aside, on ``con``."""
    con.execute(
        "CREATE OR REPLACE TABLE qstaged (file VARCHAR, line BIGINT, record BIGINT, source VARCHAR, "
        "field VARCHAR, reason VARCHAR, content VARCHAR)"
    )


class FileStager:
    """Parses a batch of opened files, all of one kind, into the staging tables of ``con``, a chunk
    at a time.

    Iterate :meth:`chunks`: each step yields the next chunk of records (of one file or several) as
    an Arrow table with :data:`STAGED_COLUMNS` (the caller commits it to the lake); records set
    aside so far are in ``qstaged``. Then call :meth:`finish`, which adds what is only known at the
    end (CSV rejects, line numbers, a truncated gzip tail). After :meth:`finish`, ``read`` (records
    per file name), ``sources`` (per file name) and ``errors`` (file name -> the
    ``SourceParseError`` that stopped the whole file being read; the other files go on) are
    complete. A file reads the same alone or in a batch.
    """

    def __init__(self, con: duckdb.DuckDBPyConnection, files: Sequence[Opened]) -> None:
        if len({o.kind for o in files}) > 1:
            raise ValueError("a batch holds files of one kind")
        self.con = con
        self.files = list(files)
        self.names = [str(o.original) for o in self.files]
        self.read: dict[str, int] = dict.fromkeys(self.names, 0)
        self.sources: dict[str, set[str]] = {n: set() for n in self.names}
        self.errors: dict[str, SourceParseError] = {}
        self._rejected: dict[str, np.ndarray] = {}

    def chunks(self) -> Iterator[pa.Table]:
        """Yield the batch's records chunk by chunk (see the class doc)."""
        kind = self.files[0].kind if self.files else None
        if kind == "csv":
            yield from self._csv_chunks()
        elif kind == "ndjson":
            yield from self._ndjson_chunks(range(len(self.files)))
        elif kind == "json_array":
            yield from self._array_chunks()
        else:
            for i in range(len(self.files)):
                yield from self._document_chunks(i)

    def finish(self) -> None:
        """Record CSV rejects and truncated-gzip tails in ``qstaged`` and number CSV lines."""
        if self.files and self.files[0].kind == "csv":
            self._number_lines()
        for opened, name in zip(self.files, self.names, strict=True):
            if opened.truncated is not None and name not in self.errors:
                self.con.execute(
                    "INSERT INTO qstaged VALUES (?, ?, NULL, NULL, NULL, ?, ?)",
                    [name, opened.truncated_line,
                     "gzip stream truncated: this partial line and anything after it are lost", opened.truncated],
                )
                self.read[name] += 1

    def _names_sql(self) -> str:
        """SQL list of the batch's file names: ``{names}[_file + 1]`` is a record's ``log_file``."""
        return sql_list(self.names)

    # --- JSON ----------------------------------------------------------------------------------

    def _ndjson_chunks(self, indexes: Sequence[int]) -> Iterator[pa.Table]:
        """Map the lines of the files at ``indexes``, several files per chunk when they are small."""
        pending: list[pa.Table] = []
        size = 0
        for i in indexes:
            for table in _ndjson_batches(self.files[i]):
                pending.append(table.append_column("_file", pa.repeat(pa.scalar(i, pa.int64()), table.num_rows)))
                size += table.column("text").nbytes
                if size >= JSON_CHUNK_BYTES:
                    yield self._stage_lines(pending)
                    pending, size = [], 0
        if pending:
            yield self._stage_lines(pending)

    def _stage_lines(self, tables: list[pa.Table]) -> pa.Table:
        lines = pa.concat_tables(tables)
        # A byte search of the lines' data buffers (a slice's buffer may hold more than the slice: a
        # false alarm only plans the SOQL unpacking for nothing).
        data = [chunk.buffers()[2] for chunk in lines.column("text").chunks]
        has_records = any(b'"records"' in buf.to_pybytes() for buf in data if buf is not None)
        self.con.register("jb_arrow", scannable(lines, "text"))
        try:
            # The original bytes are kept only where they are not text (they are quarantined as such).
            # Decoded once; a line of blanks (no non-space character) is no record.
            return self._stage_json_records(
                "(SELECT _file, _line, 0 AS _base, txt, CASE WHEN txt IS NULL THEN text END AS _bytes FROM "
                "(SELECT *, CASE WHEN NOT _split_error THEN TRY(decode(text)) END AS txt FROM jb_arrow) "
                "WHERE _split_error OR txt IS NULL OR regexp_matches(txt, '\\S'))",
                has_records,
            )
        finally:
            self.con.unregister("jb_arrow")

    def _array_chunks(self) -> Iterator[pa.Table]:
        """Read every JSON array of the batch in one statement (one scan per file, so each file's
        elements keep their own numbering); when one is unreadable, read them one by one."""
        if len(self.files) > 1:
            scans = " UNION ALL ".join(
                f"SELECT {i}::BIGINT AS _file, NULL::BIGINT AS _line, row_number() OVER () - 1 AS _base, "
                f"json::VARCHAR AS txt, NULL::BLOB AS _bytes "
                f"FROM read_json_objects('{sql_str(str(o.path))}', format='array')"
                for i, o in enumerate(self.files)
            )
            try:
                self.con.execute(f"CREATE OR REPLACE TEMP TABLE jb AS {scans}")
            except duckdb.Error:
                pass  # One file is unreadable: read them one by one, so the others are kept.
            else:
                yield self._stage_json_records("jb")
                return
        for i in range(len(self.files)):
            yield from self._document_chunks(i)

    def _document_chunks(self, i: int) -> Iterator[pa.Table]:
        opened = self.files[i]
        fmt = "array" if opened.kind == "json_array" else "unstructured"
        try:
            self.con.execute(
                f"""CREATE OR REPLACE TEMP TABLE jb AS
                SELECT {i}::BIGINT AS _file, NULL::BIGINT AS _line, row_number() OVER () - 1 AS _base,
                       json::VARCHAR AS txt, NULL::BLOB AS _bytes
                FROM read_json_objects('{sql_str(str(opened.path))}', format='{fmt}')"""
            )
        except duckdb.Error as exc:
            if opened.kind == "json_document":
                # Not one JSON document: read it line by line so good lines are kept and bad ones named.
                yield from self._ndjson_chunks([i])
                return
            self.errors[self.names[i]] = SourceParseError(
                f"unreadable JSON array: {str(exc).splitlines()[0]}", file=self.names[i]
            )
            return
        yield self._stage_json_records("jb")

    def _stage_json_records(self, jb: str, has_records: bool | None = None) -> pa.Table:
        """Map the records of relation ``jb`` (a table name or a subquery); return them as a staged chunk.

        ``jb`` has one row per line (NDJSON: ``_line`` set, ``_base`` 0) or per JSON document / array
        element (``_line`` NULL, ``_base`` its 0-based index), with its file's index ``_file``, its
        text ``txt`` (NULL when not UTF-8) and original ``_bytes``. A record's number is ``_base`` +
        its index in a SOQL response's ``records`` (1 otherwise). Raw JSON is minified so one event
        has one id whatever the container. ``has_records``: whether any text may name a ``records``
        key (None: find out with a scan of ``jb``).
        """
        con = self.con
        # A SOQL query response ({"totalSize", "done", "records": [...]}) holds its events in records.
        # Unpacking costs a JSON parse and an unnest per record, so it is planned only when some text
        # names a "records" key (a substring test, far cheaper than parsing).
        soql = """txt LIKE '%"records"%' AND json_valid(txt) AND json_type(txt, '$.records') = 'ARRAY'"""
        if has_records is None:
            [(has_records,)] = con.execute(f"SELECT coalesce(bool_or({soql}), false) FROM {jb}").fetchall()
        records = (
            f"""SELECT _file, _line, unnest(l) AS txt, _base + unnest(range(1, len(l) + 1)) AS _record, _bytes
                FROM (SELECT _file, _line, _base, _bytes,
                      CASE WHEN {soql} THEN CAST(json_extract(txt, '$.records') AS VARCHAR[]) ELSE [txt] END AS l
                      FROM {jb})"""
            if has_records else f"SELECT _file, _line, txt, _base + 1 AS _record, _bytes FROM {jb}"
        )
        # Only jk is materialised, with one copy of each record's text: records can be large. Valid
        # JSON is an object exactly when its first non-blank character is a brace (no second parse).
        # It is kept as Arrow; the mapping cuts it into slices that run on every thread.
        jk = arrow_table(
            con,
            f"""SELECT _file, _line, _record, txt, _bytes, err, {FORMAT_SQL} AS kind
            FROM (SELECT *, CASE WHEN err IS NULL THEN txt END AS rec
            FROM (SELECT *, CASE WHEN txt IS NULL THEN 'invalid UTF-8: the line is not UTF-8 text (re-run with --encoding)'
                                 WHEN NOT json_valid(txt) THEN 'invalid JSON'
                                 WHEN NOT regexp_matches(txt, '^\\s*\\{{') THEN 'not a JSON object' END AS err
                  FROM ({records})))"""
        )
        # Registered for the quarantine of unrecognised records; the mapping scans its own slices.
        con.register("jk", jk)
        try:
            return self._map_json_records(jk)
        finally:
            con.unregister("jk")

    def _map_json_records(self, jk: pa.Table) -> pa.Table:
        """Map the records of ``jk`` (registered as such; see :meth:`_stage_json_records`) to a
        staged chunk."""
        con, names = self.con, self._names_sql()
        # Counted with Arrow: a DuckDB query costs more to plan than a batch's records to count.
        per_file = jk.select(["_file", "kind"]).group_by(["_file", "kind"], use_threads=False).aggregate([([], "count_all")])
        kinds: dict[str, int] = {}
        for i, kind, read in zip(*(per_file.column(c).to_pylist() for c in ("_file", "kind", "count_all")), strict=True):
            name = self.names[i]
            self.read[name] += read
            if kind is not None:
                self.sources[name].add(kind)
                kinds[kind] = kinds.get(kind, 0) + read
        tasks: list[tuple[str, pa.Table]] = []
        for m in JSON_FORMATS:
            if m.SOURCE in kinds:
                fields, select = json_select(m.MAPPING, "root")
                records = fields(f"(SELECT *, {m.JSON_ROOT} AS root FROM (SELECT *, txt AS rec FROM part))")
                query = with_event_id(m.SOURCE,
                    f"SELECT {select}, json(txt)::VARCHAR AS raw, {names}[_file + 1] AS log_file, _line, _record, _file "
                    f"FROM {records}")
                # Records of one format only (one log file, usually) are mapped as they are: a filter copies their text.
                mine = jk if kinds[m.SOURCE] == jk.num_rows else jk.filter(pc.equal(jk.column("kind"), m.SOURCE))
                tasks += [(query, part) for part in byte_slices(mine, "txt", MAP_SLICE_BYTES)]
        chunk = pa.concat_tables(_side_by_side(con, tasks)) if tasks else _empty_chunk(con)
        if jk.column("kind").null_count:
            con.execute(
                f"""INSERT INTO qstaged SELECT {names}[_file + 1], _line, _record, NULL, NULL,
                       coalesce(err, '{UNRECOGNISED}'), coalesce(txt, CAST(_bytes AS VARCHAR))
                FROM jk WHERE kind IS NULL"""
            )
        return chunk

    # --- CSV -----------------------------------------------------------------------------------

    def _csv_chunks(self) -> Iterator[pa.Table]:
        """Read the files with the same header in one ``read_csv`` each (a batch is planned by
        header, so normally one); empty files hold nothing, files that are no known log fail."""
        by_header: dict[tuple[str, ...], list[int]] = {}
        for i, opened in enumerate(self.files):
            header = _csv_header(opened)
            if not header:
                continue
            try:
                _csv_mapping(header, self.names[i])
            except SourceParseError as exc:
                self.errors[self.names[i]] = exc
                continue
            by_header.setdefault(tuple(header), []).append(i)
        for header, indexes in by_header.items():
            yield from self._csv_read(list(header), indexes)

    def _csv_read(self, header: list[str], indexes: list[int]) -> Iterator[pa.Table]:
        mapping = _csv_mapping(header, self.names[indexes[0]])
        encoding = self.files[indexes[0]].encoding
        for i in indexes:
            self.sources[self.names[i]].add(mapping.source)
        # The reader's file_index is the position in this list; _file the position in the batch.
        files = [self.files[i] for i in indexes]
        to_batch = "[" + ", ".join(str(i) for i in indexes) + "]"
        columns = "{" + ", ".join(f"'{sql_str(h)}': 'VARCHAR'" for h in header) + "}"
        reader = (
            f"read_csv({sql_list([str(o.path) for o in files])}, header=true, auto_detect=false, delim=',', "
            f"quote='\"', escape='\"', columns={columns}, store_rejects=true, rejects_table='rej', "
            f"rejects_scan='rej_scan', encoding='{encoding}', strict_mode=true, null_padding=false)"
        )
        names = self._names_sql()
        cursor = self.con.cursor()
        # Batches must arrive in file order: a row's ordinal in its file gives its line number if
        # quarantined, and the earliest copy of a duplicated event is the one stored. DuckDB turns
        # a mapping's `x IN (...)` into a join, whose output is not in order: keep them as tests.
        cursor.execute("SET preserve_insertion_order = true")
        cursor.execute("SET disabled_optimizers = 'in_clause'")
        cursor.execute("SET enable_progress_bar = false")
        lets, exprs = split_lets(mapping.build(csv_field(header)))
        try:
            stream = cursor.sql(with_event_id(mapping.source,
                f"SELECT {select_list(exprs)}, "
                f"__raw AS raw, {names}[{to_batch}[__file + 1] + 1] AS log_file, NULL::BIGINT AS _line, "
                f"{to_batch}[__file + 1] AS _file FROM {with_lets(csv_source(header, reader), lets)} AS src"
            )).to_arrow_reader(CHUNK_ROWS)
        finally:
            # The setting is database-wide: the stream above was planned in order; the lake's writes
            # that follow need not be (order-preserving COPY is about twice as slow), nor the next
            # batch on a reused connection.
            self.con.execute("SET preserve_insertion_order = false")
            self.con.execute("SET disabled_optimizers = ''")
        seen = np.zeros(len(self.files), dtype=np.int64)
        # The reader hands over pieces of a few thousand rows; the lake commits a chunk at a time.
        for table in _rechunk(stream, CHUNK_ROWS):
            file_of = table.column("_file").to_numpy()
            ordinals = _ordinals(file_of, seen)
            for i, n in zip(*np.unique(file_of, return_counts=True), strict=True):
                self.read[self.names[i]] += int(n)
            yield table.add_column(table.schema.get_field_index("_file"), "_record", pa.array(ordinals))
        # One quarantine row per rejected line, naming its first faulty column and every problem.
        rejects = cursor.sql(
            f"""SELECT {names}[{to_batch}[file_id::BIGINT + 1] + 1] AS file, line, NULL::BIGINT AS record,
                   '{mapping.source}' AS source,
                   arg_min(column_name, column_idx) FILTER (WHERE column_name IS NOT NULL) AS field,
                   string_agg(DISTINCT error_type, ', ') || ': ' || replace(arg_min(error_message, column_idx),
                     'This file is not utf-8 encoded.', 'The file is not UTF-8: re-run with --encoding latin-1 (or its encoding).')
                     AS reason,
                   any_value(csv_line) AS content
            FROM rej GROUP BY file_id, line ORDER BY file_id, line"""
        ).to_arrow_table()
        cursor.close()
        self.con.register("rejects", rejects)
        self.con.execute("INSERT INTO qstaged SELECT * FROM rejects")
        self.con.unregister("rejects")
        lines_of = rejects.group_by("file").aggregate([("line", "list")])
        for name, lines in zip(lines_of.column("file").to_pylist(), lines_of.column("line_list").to_pylist(), strict=True):
            self._rejected[name] = np.asarray(lines, dtype=np.int64)
            self.read[name] += len(lines)

    def _number_lines(self) -> None:
        """Give quarantined CSV rows (bad time) their physical line number.

        DuckDB's reader numbers only rejected lines; parsed rows come in file order, so the k-th
        parsed row sits on the k-th line after the header that was not rejected. (Quoted
        multi-line values would shift this; ELF values hold no line breaks.)
        """
        bad = self.con.sql(
            f"SELECT file, list(record) AS records FROM qstaged "
            f"WHERE file IN (SELECT unnest({self._names_sql()})) AND line IS NULL AND record IS NOT NULL GROUP BY file"
        ).to_arrow_table()
        if bad.num_rows == 0:
            return
        files, records, lines = [], [], []
        for name, recs in zip(bad.column("file").to_pylist(), bad.column("records").to_pylist(), strict=True):
            r = np.asarray(recs, dtype=np.int64)
            rejected = self._rejected.get(name, np.zeros(0, dtype=np.int64))
            numbers = np.arange(2, int(r.max()) + len(rejected) + 2, dtype=np.int64)
            numbers = numbers[~np.isin(numbers, rejected)]
            files += [name] * len(r)
            records.append(r)
            lines.append(numbers[r - 1])
        self.con.register("numbered", pa.table({"f": files, "r": np.concatenate(records), "l": np.concatenate(lines)}))
        self.con.execute(
            "UPDATE qstaged SET line = numbered.l, record = NULL FROM numbered "
            "WHERE qstaged.record = numbered.r AND qstaged.line IS NULL AND qstaged.file = numbered.f"
        )
        self.con.unregister("numbered")


def _rechunk(batches: Iterator[pa.RecordBatch], rows: int) -> Iterator[pa.Table]:
    """Gather consecutive record ``batches`` into tables of at least ``rows`` rows (the last may be
    smaller), in order."""
    pending: list[pa.RecordBatch] = []
    count = 0
    for batch in batches:
        pending.append(batch)
        count += batch.num_rows
        if count >= rows:
            yield pa.Table.from_batches(pending)
            pending, count = [], 0
    if pending:
        yield pa.Table.from_batches(pending)


def _ordinals(file_of: np.ndarray, seen: np.ndarray) -> np.ndarray:
    """1-based position of each row in its own file, given the rows of a batch in file order
    (``file_of[k]`` is row k's file) and ``seen[f]``, rows of file f before this batch (updated)."""
    order = np.argsort(file_of, kind="stable")
    sorted_files = file_of[order]
    starts = np.flatnonzero(np.r_[True, sorted_files[1:] != sorted_files[:-1]])
    run_lengths = np.diff(np.r_[starts, len(sorted_files)])
    rank = np.arange(len(sorted_files)) - np.repeat(starts, run_lengths)
    ordinals = np.empty(len(file_of), dtype=np.int64)
    ordinals[order] = seen[sorted_files] + rank + 1
    seen += np.bincount(file_of, minlength=len(seen))
    return ordinals

def _ndjson_batches(opened: Opened) -> Iterator[pa.Table]:
    """Yield tables (_line int64, text binary, _split_error bool) of an NDJSON file's lines."""
    skipped: list[tuple[int, bytes]] = []

    def on_invalid(row: pacsv.InvalidRow) -> str:
        skipped.append((row.number or -1, (row.text or "").encode()))
        return "skip"

    reader = pacsv.open_csv(
        opened.path,
        read_options=pacsv.ReadOptions(column_names=["text"], block_size=NDJSON_BLOCK, use_threads=False,
                                       encoding=opened.encoding if opened.encoding != "utf-8" else "utf8"),
        parse_options=pacsv.ParseOptions(delimiter="\x01", quote_char=False, escape_char=False,
                                         newlines_in_values=False, ignore_empty_lines=False,
                                         invalid_row_handler=on_invalid),
        convert_options=pacsv.ConvertOptions(column_types={"text": pa.binary()}, strings_can_be_null=False,
                                             quoted_strings_can_be_null=False),
    )
    next_line = 1
    for batch in reader:
        n = batch.num_rows
        lines = np.arange(next_line, next_line + n + len(skipped), dtype=np.int64)
        if skipped:
            # Rows pyarrow could not split (a raw \x01 byte) are set aside with their own number.
            bad = np.array([s[0] for s in skipped], dtype=np.int64)
            lines = lines[~np.isin(lines, bad)][:n]
            yield pa.table({"_line": pa.array(bad), "text": pa.array([s[1] for s in skipped], pa.binary()),
                            "_split_error": pa.array([True] * len(bad))})
            skipped.clear()
        next_line = int(lines[-1]) + 1 if n else next_line
        yield pa.table({"_line": pa.array(lines), "text": batch.column(0),
                        "_split_error": pa.nulls(n, pa.bool_()).fill_null(False)})


class StagedFiles:
    """Files a :class:`FileStager` has already parsed, held in memory until they are committed:
    what the watcher parses while the next batch fills (see :func:`crmguard.ingest.stage_file`).

    It has a stager's interface (``names``, ``read``, ``sources``, ``errors``, :meth:`chunks`,
    :meth:`finish`), so a batch commits it as it commits files read on the spot. Several combine
    (:meth:`combine`) into one chunk: one lake file per partition for a batch however often it was
    parsed ahead.
    """

    def __init__(self, con: duckdb.DuckDBPyConnection, stagers: list[FileStager], chunk: pa.Table | None,
                 quarantined: pa.Table | None, failed: dict[str, CrmguardError] | None = None) -> None:
        self.con = con
        self._stagers = stagers
        self._chunk = chunk
        self._quarantined = quarantined
        self._failed = failed or {}

    @classmethod
    def of(cls, stager: FileStager) -> StagedFiles:
        """Run ``stager``'s parse and keep what it staged: its chunks, and the rows it set aside so
        far (taken out of its connection's ``qstaged``, which must hold no other file's). What
        only the commit tells (line numbers of rows set aside then) is added by :meth:`finish`."""
        chunks = [c for c in stager.chunks() if c.num_rows]
        quarantined = arrow_table(stager.con, "SELECT * FROM qstaged")
        stager.con.execute("DELETE FROM qstaged")
        return cls(stager.con, [stager], pa.concat_tables(chunks) if chunks else None,
                   quarantined if quarantined.num_rows else None)

    @classmethod
    def failed(cls, con: duckdb.DuckDBPyConnection, name: str, error: CrmguardError) -> StagedFiles:
        """A file that could not be parsed at all: it holds nothing and fails with ``error``."""
        return cls(con, [], None, None, {name: error})

    @classmethod
    def combine(cls, parts: Sequence[StagedFiles]) -> StagedFiles:
        """One :class:`StagedFiles` holding ``parts`` in order (each part's ``_file`` shifted past
        the files of the parts before it, so duplicates keep crediting the earliest file)."""
        chunks, quarantined = [], [p._quarantined for p in parts if p._quarantined is not None]
        shift = 0
        for part in parts:
            if part._chunk is not None:
                chunk = part._chunk
                n = chunk.schema.get_field_index("_file")
                chunk = chunk.set_column(n, "_file", pc.add(chunk.column(n), pa.scalar(shift, pa.int64())))
                # Readers spell UTC differently (CSV "UTC", JSON "Etc/UTC"): same values, one schema.
                chunks.append(chunk.cast(chunks[0].schema) if chunks and chunk.schema != chunks[0].schema else chunk)
            shift += sum(len(s.names) for s in part._stagers)
        return cls(parts[0].con, [s for p in parts for s in p._stagers], pa.concat_tables(chunks) if chunks else None,
                   pa.concat_tables(quarantined) if quarantined else None,
                   {k: v for p in parts for k, v in p._failed.items()})

    @property
    def names(self) -> list[str]:
        """The files, in order."""
        return [n for s in self._stagers for n in s.names] + list(self._failed)

    @property
    def read(self) -> dict[str, int]:
        """Records read per file (complete after :meth:`finish`)."""
        return {**{k: v for s in self._stagers for k, v in s.read.items()}, **dict.fromkeys(self._failed, 0)}

    @property
    def sources(self) -> dict[str, set[str]]:
        """Sources seen per file."""
        return {**{k: v for s in self._stagers for k, v in s.sources.items()}, **{k: set() for k in self._failed}}

    @property
    def errors(self) -> dict[str, CrmguardError]:
        """File name -> the error that stopped it being read."""
        return {**{k: v for s in self._stagers for k, v in s.errors.items()}, **self._failed}

    def chunks(self) -> Iterator[pa.Table]:
        """Yield the staged records, as one chunk."""
        if self._chunk is not None:
            yield self._chunk

    def finish(self) -> None:
        """After the chunk is committed: put the rows set aside back into ``qstaged`` and let each
        stager add what it knows at the end (see :meth:`FileStager.finish`)."""
        if self._quarantined is not None:
            self.con.register("_quarantined", self._quarantined)
            try:
                self.con.execute("INSERT INTO qstaged SELECT * FROM _quarantined")
            finally:
                self.con.unregister("_quarantined")
        for stager in self._stagers:
            stager.finish()


def _side_by_side(con: duckdb.DuckDBPyConnection, tasks: list[tuple[str, pa.Table]]) -> list[pa.Table]:
    """Run each query of ``tasks`` over its Arrow table (registered as ``part``), :data:`MAP_WORKERS`
    at a time, each on its own cursor of ``con``'s database; return their results in order.

    A source mapping's SELECT takes 15-35 ms to plan, on one thread, and a batch of JSON records
    usually holds all four formats: planned side by side they take half the time on two cores.
    """
    def run(task: tuple[str, pa.Table]) -> pa.Table:
        query, part = task
        cursor = session_cursor(con)
        try:
            cursor.register("part", scannable(part, "txt"))
            return arrow_table(cursor, query)
        finally:
            cursor.close()

    if len(tasks) == 1:
        return [run(tasks[0])]
    with ThreadPoolExecutor(max_workers=MAP_WORKERS, thread_name_prefix="map") as pool:
        return list(pool.map(run, tasks))


def _empty_chunk(con: duckdb.DuckDBPyConnection) -> pa.Table:
    cols = ", ".join(f"NULL::{c.split(' ', 1)[1]} AS {c.split(' ', 1)[0]}" for c in STAGED_COLUMNS)
    return con.sql(f"SELECT {cols} WHERE false").to_arrow_table()


def _csv_header(opened: Opened) -> list[str]:
    enc = "utf-8-sig" if opened.encoding == "utf-8" else opened.encoding
    with open(opened.path, encoding=enc, errors="replace", newline="") as fh:
        first_line = fh.readline()
    if not first_line.strip():
        return []
    header = [h.strip() for h in next(csv.reader(io.StringIO(first_line)))]
    # Duplicate names would collide as SQL columns; keep both, suffixing the later one.
    seen: dict[str, int] = {}
    unique = []
    for h in header:
        seen[h] = seen.get(h, 0) + 1
        unique.append(h if seen[h] == 1 else f"{h}_{seen[h]}")
    return unique


def _csv_mapping(header: list[str], name: str) -> SourceMapping:
    upper = {h.upper() for h in header}
    if "EVENT_TYPE" in header:
        return elf.MAPPING
    if all(c.upper() in upper for c in audit_trail.CSV_COLUMNS):
        return audit_trail.MAPPING
    shown = ", ".join(header[:6]) + (" ..." if len(header) > 6 else "")
    raise SourceParseError(
        f"not a Salesforce or Okta log: the CSV header has no EVENT_TYPE column (found: {shown})",
        file=name, line=1, field="EVENT_TYPE",
    )


def read_file(path: Path, batch_rows: int = 100_000) -> Iterator[pa.RecordBatch]:
    """Yield the valid events of one file as record batches in the event schema (see
    :func:`crmguard.sources.read`). Raises ``SourceParseError`` when the file cannot be read."""
    import tempfile

    from crmguard.sources.inputs import open_input
    from crmguard.sources.sql import connect

    names = ", ".join(ident(c.name) for c in COLUMNS)
    with tempfile.TemporaryDirectory(prefix="crmguard-") as tmp:
        con = connect()
        create_staging(con)
        stager = FileStager(con, [open_input(path, Path(tmp))])
        for chunk in stager.chunks():
            con.register("chunk", chunk)
            table = con.sql(f"SELECT {names} FROM chunk WHERE time IS NOT NULL").to_arrow_table()
            con.unregister("chunk")
            yield from table.cast(EVENT_SCHEMA).to_batches(batch_rows)
        for error in stager.errors.values():
            raise error
