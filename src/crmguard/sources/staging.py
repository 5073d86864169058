"""Parse one input file into DuckDB staging tables: ``staged`` (events in the event schema, plus
the columns needed to explain a rejected timestamp) and ``qstaged`` (records set aside, with file,
line or record number, field and reason).

CSV is read by DuckDB's parallel CSV reader (which reports rejected lines with their number and
column); NDJSON is read line by line by pyarrow's streaming reader into Arrow batches; JSON arrays
and SOQL responses by DuckDB's JSON reader. Every mapping then runs as one SQL SELECT per batch.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from crmguard.errors import SourceParseError
from crmguard.schema import COLUMNS, EVENT_SCHEMA, duckdb_type
from crmguard.sources import JSON_FORMATS
from crmguard.sources.inputs import Opened
from crmguard.sources.mapping import SourceMapping, csv_field, csv_source, json_select, select_list
from crmguard.sources.salesforce import audit_trail, elf
from crmguard.sources.sql import ident, sql_str

NDJSON_BLOCK = 8 << 20
UNRECOGNISED = "unrecognised record: not an Okta System Log event, Salesforce ELF row, RTEM event or SetupAuditTrail record"


CHUNK_ROWS = 262_144
"""Rows per chunk handed to the lake: bounds memory whatever the file size."""


STAGED_COLUMNS: tuple[str, ...] = (
    "event_id VARCHAR",
    *(f"{c.name} {duckdb_type(c)}" for c in COLUMNS if c.name not in ("raw", "log_file", "event_id")),
    "_time_raw VARCHAR", "_time_field VARCHAR", "raw VARCHAR", "log_file VARCHAR", "_line BIGINT", "_record BIGINT",
)
"""Columns of a staged chunk: the event schema (``event_id`` = md5 of source and raw record), plus
where the record was (``_line``, ``_record``) and the raw time text to explain a rejection."""


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
    """Parses one opened file into the staging tables of ``con``, a chunk at a time.

    Iterate :meth:`chunks`: each step yields the next chunk of records as an Arrow table with
    :data:`STAGED_COLUMNS` (the caller commits it to the lake); records set aside so far are in
    ``qstaged``. Then call
    :meth:`finish`, which adds what is only known at the end (CSV rejects, line numbers, a
    truncated gzip tail). ``read`` and ``sources`` are complete after :meth:`finish`.
    """

    def __init__(self, con: duckdb.DuckDBPyConnection, opened: Opened) -> None:
        self.con = con
        self.opened = opened
        self.name = str(opened.original)
        self.read = 0
        self.sources: set[str] = set()
        self._rejected = np.zeros(0, dtype=np.int64)

    def chunks(self) -> Iterator[pa.Table]:
        """Yield the file's records chunk by chunk (see the class doc). Raises ``SourceParseError`` when
        the whole file cannot be read."""
        if self.opened.kind == "csv":
            yield from self._csv_chunks()
        elif self.opened.kind == "ndjson":
            yield from self._ndjson_chunks()
        else:
            yield from self._document_chunks()

    def finish(self) -> None:
        """Record CSV rejects and the truncated-gzip tail in ``qstaged`` and number CSV lines."""
        if len(self._rejected) or self.opened.kind == "csv":
            self._number_lines()
        if self.opened.truncated is not None:
            self.con.execute(
                "INSERT INTO qstaged VALUES (?, ?, NULL, NULL, NULL, ?, ?)",
                [self.name, self.opened.truncated_line,
                 "gzip stream truncated: this partial line and anything after it are lost", self.opened.truncated],
            )
            self.read += 1

    # --- JSON ----------------------------------------------------------------------------------

    def _ndjson_chunks(self) -> Iterator[pa.Table]:
        for table in _ndjson_batches(self.opened):
            self.con.register("jb_arrow", table)
            self.con.execute(
                "CREATE OR REPLACE TEMP TABLE jb AS SELECT _line, 0 AS _base, "
                "CASE WHEN _split_error THEN NULL ELSE TRY(decode(text)) END AS txt, text AS _bytes "
                "FROM jb_arrow WHERE _split_error OR length(trim(TRY(decode(text)))) > 0 OR TRY(decode(text)) IS NULL"
            )
            self.con.unregister("jb_arrow")
            yield self._stage_json_records()

    def _document_chunks(self) -> Iterator[pa.Table]:
        fmt = "array" if self.opened.kind == "json_array" else "unstructured"
        try:
            self.con.execute(
                f"""CREATE OR REPLACE TEMP TABLE jb AS
                SELECT NULL::BIGINT AS _line, row_number() OVER () - 1 AS _base, json::VARCHAR AS txt, NULL::BLOB AS _bytes
                FROM read_json_objects('{sql_str(str(self.opened.path))}', format='{fmt}')"""
            )
        except duckdb.Error as exc:
            if self.opened.kind == "json_document":
                # Not one JSON document: read it line by line so good lines are kept and bad ones named.
                yield from self._ndjson_chunks()
                return
            raise SourceParseError(f"unreadable JSON array: {str(exc).splitlines()[0]}", file=self.name) from exc
        yield self._stage_json_records()

    def _stage_json_records(self) -> pa.Table:
        """Map the records of temp table ``jb``; return them as a staged chunk.

        ``jb`` has one row per line (NDJSON: ``_line`` set, ``_base`` 0) or per JSON document / array
        element (``_line`` NULL, ``_base`` its 0-based index), with its text ``txt`` (NULL when not
        UTF-8) and original ``_bytes``. A record's number is ``_base`` + its index in a SOQL response's
        ``records`` (1 otherwise). Raw JSON is minified so one event has one id whatever the container.
        """
        con, name = self.con, sql_str(self.name)
        shapes = " ".join(f"WHEN {m.JSON_SHAPE} THEN '{m.SOURCE}'" for m in JSON_FORMATS)
        # A SOQL query response ({"totalSize", "done", "records": [...]}) holds its events in records.
        con.execute(
            """CREATE OR REPLACE TEMP TABLE jx AS
            SELECT _line, unnest(l) AS txt, _base + unnest(range(1, len(l) + 1)) AS _record, _bytes
            FROM (SELECT _line, _base, _bytes,
                         CASE WHEN txt IS NOT NULL AND json_valid(txt) AND json_type(txt, '$.records') = 'ARRAY'
                              THEN CAST(json_extract(txt, '$.records') AS VARCHAR[]) ELSE [txt] END AS l
                  FROM jb)"""
        )
        con.execute(
            f"""CREATE OR REPLACE TEMP TABLE jk AS
            SELECT _line, _record, txt, _bytes, err, CASE {shapes} END AS kind, rec
            FROM (SELECT *, CASE WHEN err IS NULL THEN txt END AS rec
                  FROM (SELECT *, CASE WHEN txt IS NULL THEN 'invalid UTF-8: the line is not UTF-8 text (re-run with --encoding)'
                                       WHEN NOT json_valid(txt) THEN 'invalid JSON'
                                       WHEN json_type(txt) <> 'OBJECT' THEN 'not a JSON object' END AS err FROM jx))"""
        )
        read, kinds = con.execute("SELECT count(*), list(DISTINCT kind) FILTER (WHERE kind IS NOT NULL) FROM jk").fetchall()[0]
        kinds = kinds or []
        selects = []
        for m in JSON_FORMATS:
            if m.SOURCE in kinds:
                extraction, select = json_select(m.MAPPING, "root")
                selects.append(with_event_id(m.SOURCE,
                    f"SELECT {select}, json(txt)::VARCHAR AS raw, '{name}' AS log_file, _line, _record "
                    f"FROM (SELECT *, {extraction} FROM (SELECT *, {m.JSON_ROOT} AS root FROM jk WHERE kind = '{m.SOURCE}'))"))
        chunk = con.sql(" UNION ALL ".join(selects)).to_arrow_table() if selects else _empty_chunk(con)
        con.execute(
            f"""INSERT INTO qstaged SELECT '{name}', _line, _record, NULL, NULL,
                   coalesce(err, '{UNRECOGNISED}'), coalesce(txt, CAST(_bytes AS VARCHAR))
            FROM jk WHERE kind IS NULL"""
        )
        self.read += read
        self.sources |= set(kinds)
        return chunk

    # --- CSV -----------------------------------------------------------------------------------

    def _csv_chunks(self) -> Iterator[pa.Table]:
        header = _csv_header(self.opened)
        if not header:
            return
        mapping = _csv_mapping(header, self.name)
        self.sources.add(mapping.source)
        columns = "{" + ", ".join(f"'{sql_str(h)}': 'VARCHAR'" for h in header) + "}"
        reader = (
            f"read_csv('{sql_str(str(self.opened.path))}', header=true, auto_detect=false, delim=',', quote='\"', "
            f"escape='\"', columns={columns}, store_rejects=true, rejects_table='rej', rejects_scan='rej_scan', "
            f"encoding='{self.opened.encoding}', strict_mode=true, null_padding=false)"
        )
        cursor = self.con.cursor()
        # Batches must arrive in file order: a row's ordinal gives its line number if quarantined.
        cursor.execute("SET preserve_insertion_order = true")
        stream = cursor.sql(with_event_id(mapping.source,
            f"SELECT {select_list(mapping.build(csv_field(header)))}, "
            f"__raw AS raw, '{sql_str(self.name)}' AS log_file, NULL::BIGINT AS _line "
            f"FROM {csv_source(header, reader)} AS src"
        )).to_arrow_reader(CHUNK_ROWS)
        # The setting is database-wide: the stream above was planned in order; the lake's writes
        # that follow need not be (order-preserving COPY is about twice as slow).
        self.con.execute("SET preserve_insertion_order = false")
        for batch in stream:
            ordinals = pa.array(np.arange(self.read + 1, self.read + batch.num_rows + 1, dtype=np.int64))
            self.read += batch.num_rows
            yield pa.Table.from_batches([batch]).append_column("_record", ordinals)
        # One quarantine row per rejected line, naming its first faulty column and every problem.
        rejects = cursor.sql(
            f"""SELECT '{sql_str(self.name)}' AS file, line, NULL::BIGINT AS record, '{mapping.source}' AS source,
                   arg_min(column_name, column_idx) FILTER (WHERE column_name IS NOT NULL) AS field,
                   string_agg(DISTINCT error_type, ', ') || ': ' || replace(arg_min(error_message, column_idx),
                     'This file is not utf-8 encoded.', 'The file is not UTF-8: re-run with --encoding latin-1 (or its encoding).')
                     AS reason,
                   any_value(csv_line) AS content
            FROM rej GROUP BY line ORDER BY line"""
        ).to_arrow_table()
        cursor.close()
        self.con.register("rejects", rejects)
        self.con.execute("INSERT INTO qstaged SELECT * FROM rejects")
        self.con.unregister("rejects")
        self._rejected = rejects.column("line").to_numpy()
        self.read += rejects.num_rows

    def _number_lines(self) -> None:
        """Give quarantined CSV rows (bad time) their physical line number.

        DuckDB's reader numbers only rejected lines; parsed rows come in file order, so the k-th
        parsed row sits on the k-th line after the header that was not rejected. (Quoted
        multi-line values would shift this; ELF values hold no line breaks.)
        """
        name = sql_str(self.name)
        bad = self.con.execute(
            f"SELECT record FROM qstaged WHERE file = '{name}' AND line IS NULL AND record IS NOT NULL"
        ).fetchnumpy()["record"]
        if len(bad) == 0:
            return
        bad = np.asarray(bad, dtype=np.int64)
        limit = int(bad.max()) + len(self._rejected) + 2
        lines = np.arange(2, limit, dtype=np.int64)
        lines = lines[~np.isin(lines, self._rejected)]
        self.con.register("numbered", pa.table({"r": bad, "l": lines[bad - 1]}))
        self.con.execute(
            f"UPDATE qstaged SET line = numbered.l, record = NULL FROM numbered "
            f"WHERE qstaged.record = numbered.r AND qstaged.line IS NULL AND qstaged.file = '{name}'"
        )
        self.con.unregister("numbered")

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
    :func:`crmguard.sources.read`)."""
    import tempfile

    from crmguard.sources.inputs import open_input
    from crmguard.sources.sql import connect

    names = ", ".join(ident(c.name) for c in COLUMNS)
    with tempfile.TemporaryDirectory(prefix="crmguard-") as tmp:
        con = connect()
        create_staging(con)
        stager = FileStager(con, open_input(path, Path(tmp)))
        for chunk in stager.chunks():
            con.register("chunk", chunk)
            table = con.sql(f"SELECT {names} FROM chunk WHERE time IS NOT NULL").to_arrow_table()
            con.unregister("chunk")
            yield from table.cast(EVENT_SCHEMA).to_batches(batch_rows)
