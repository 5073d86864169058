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
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from crmguard.errors import SourceParseError
from crmguard.schema import COLUMNS, EVENT_SCHEMA, duckdb_type
from crmguard.sources import JSON_FORMATS
from crmguard.sources.inputs import Opened
from crmguard.sources.mapping import csv_field, json_field, select_list
from crmguard.sources.salesforce import audit_trail, elf
from crmguard.sources.sql import ident, sql_str

NDJSON_BLOCK = 8 << 20
UNRECOGNISED = "unrecognised record: not an Okta System Log event, Salesforce ELF row, RTEM event or SetupAuditTrail record"


@dataclass
class Staged:
    """What one file put into staging: ``read`` records seen (valid or not)."""

    read: int
    sources: set[str]


def create_staging(con: duckdb.DuckDBPyConnection) -> None:
    """Create (or empty) the ``staged`` and ``qstaged`` temp tables on ``con``."""
    cols = [f"{c.name} {duckdb_type(c)}" for c in COLUMNS if c.name not in ("raw", "log_file", "event_id")]
    cols += ["_time_raw VARCHAR", "_time_field VARCHAR", "raw VARCHAR", "log_file VARCHAR", "_line BIGINT", "_record BIGINT"]
    con.execute(f"CREATE OR REPLACE TEMP TABLE staged ({', '.join(cols)})")
    con.execute(
        "CREATE OR REPLACE TEMP TABLE qstaged (file VARCHAR, line BIGINT, record BIGINT, source VARCHAR, "
        "field VARCHAR, reason VARCHAR, content VARCHAR)"
    )


def stage(con: duckdb.DuckDBPyConnection, opened: Opened) -> Staged:
    """Parse ``opened`` into the staging tables of ``con`` (see :func:`create_staging`).

    Returns the number of records read and the sources seen. Raises ``SourceParseError`` when
    the whole file cannot be read (not a log format crmguard knows, unreadable JSON document).
    """
    name = str(opened.original)
    if opened.kind == "csv":
        staged = _stage_csv(con, opened, name)
    elif opened.kind == "ndjson":
        staged = _stage_ndjson(con, opened, name)
    else:
        staged = _stage_json_document(con, opened, name)
    if opened.truncated is not None:
        con.execute(
            "INSERT INTO qstaged VALUES (?, ?, NULL, NULL, NULL, ?, ?)",
            [name, opened.truncated_line, "gzip stream truncated: this partial line and anything after it are lost",
             opened.truncated],
        )
        staged.read += 1
    return staged


# --- CSV ---------------------------------------------------------------------------------------

def _csv_header(opened: Opened, name: str) -> list[str]:
    enc = "utf-8-sig" if opened.encoding == "utf-8" else opened.encoding
    with open(opened.path, encoding=enc, errors="replace", newline="") as fh:
        first_line = fh.readline()
    if not first_line.strip():
        return []
    header = next(csv.reader(io.StringIO(first_line)))
    header = [h.strip() for h in header]
    # Duplicate names would collide as SQL columns; keep both, suffixing the later one.
    seen: dict[str, int] = {}
    unique = []
    for h in header:
        seen[h] = seen.get(h, 0) + 1
        unique.append(h if seen[h] == 1 else f"{h}_{seen[h]}")
    return unique


def _stage_csv(con: duckdb.DuckDBPyConnection, opened: Opened, name: str) -> Staged:
    header = _csv_header(opened, name)
    if not header:
        return Staged(0, set())
    upper = {h.upper() for h in header}
    if "EVENT_TYPE" in upper and "EVENT_TYPE" in header:
        mapping = elf.MAPPING
    elif all(c.upper() in upper for c in audit_trail.CSV_COLUMNS):
        mapping = audit_trail.MAPPING
    else:
        shown = ", ".join(header[:6]) + (" ..." if len(header) > 6 else "")
        raise SourceParseError(
            f"not a Salesforce or Okta log: the CSV header has no EVENT_TYPE column (found: {shown})",
            file=name, line=1, field="EVENT_TYPE",
        )
    columns = "{" + ", ".join(f"'{sql_str(h)}': 'VARCHAR'" for h in header) + "}"
    reader = (
        f"read_csv('{sql_str(str(opened.path))}', header=true, auto_detect=false, delim=',', quote='\"', "
        f"escape='\"', columns={columns}, store_rejects=true, rejects_table='rej', rejects_scan='rej_scan', "
        f"encoding='{opened.encoding}', strict_mode=true, null_padding=false)"
    )
    con.execute(
        f"INSERT INTO staged SELECT {select_list(mapping.build(csv_field(header)))}, "
        f"to_json(src)::VARCHAR AS raw, '{sql_str(name)}' AS log_file, NULL AS _line, "
        f"row_number() OVER () AS _record FROM {reader} AS src"
    )
    parsed = con.execute(f"SELECT count(*) FROM staged WHERE log_file = '{sql_str(name)}'").fetchone()[0]
    # One quarantine row per rejected line, naming its first faulty column and every problem.
    con.execute(
        f"""INSERT INTO qstaged
        SELECT '{sql_str(name)}', line, NULL, '{mapping.source}',
               arg_min(column_name, column_idx) FILTER (WHERE column_name IS NOT NULL),
               string_agg(DISTINCT error_type, ', ') || ': ' || replace(arg_min(error_message, column_idx),
                 'This file is not utf-8 encoded.', 'The file is not UTF-8: re-run with --encoding latin-1 (or its encoding).'),
               any_value(csv_line)
        FROM rej GROUP BY line"""
    )
    rejected_lines = np.array([r[0] for r in con.execute("SELECT DISTINCT line FROM rej ORDER BY 1").fetchall()], dtype=np.int64)
    con.execute("DROP TABLE IF EXISTS rej; DROP TABLE IF EXISTS rej_scan")
    _number_lines(con, name, parsed, rejected_lines)
    return Staged(parsed + len(rejected_lines), {mapping.source})


def _number_lines(con: duckdb.DuckDBPyConnection, name: str, parsed: int, rejected: np.ndarray) -> None:
    """Give the CSV rows that will be quarantined (no valid time) their physical line number.

    DuckDB's reader numbers only rejected lines; parsed rows come in file order, so the k-th
    parsed row sits on the k-th line (after the header) that was not rejected. Files with quoted
    multi-line values would shift this; ELF values have no line breaks.
    """
    bad = con.execute(
        f"SELECT _record FROM staged WHERE log_file = '{sql_str(name)}' AND time IS NULL"
    ).fetchnumpy()["_record"]
    if len(bad) == 0:
        return
    lines = np.arange(2, parsed + len(rejected) + 2, dtype=np.int64)
    lines = lines[~np.isin(lines, rejected)]
    numbered = pa.table({"r": pa.array(bad, pa.int64()), "l": pa.array(lines[np.asarray(bad, dtype=np.int64) - 1])})
    con.register("numbered", numbered)
    con.execute(
        f"UPDATE staged SET _line = numbered.l, _record = NULL FROM numbered "
        f"WHERE staged._record = numbered.r AND staged.log_file = '{sql_str(name)}'"
    )
    con.unregister("numbered")


# --- JSON --------------------------------------------------------------------------------------

def _ndjson_batches(opened: Opened, name: str) -> Iterator[pa.Table]:
    """Yield tables (_line int64, text binary) of the non-empty lines of an NDJSON file."""
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


def _stage_ndjson(con: duckdb.DuckDBPyConnection, opened: Opened, name: str) -> Staged:
    total = Staged(0, set())
    for table in _ndjson_batches(opened, name):
        con.register("jb_arrow", table)
        con.execute(
            "CREATE OR REPLACE TEMP TABLE jb AS SELECT _line, 0 AS _base, "
            "CASE WHEN _split_error THEN NULL ELSE TRY(decode(text)) END AS txt, text AS _bytes "
            "FROM jb_arrow WHERE _split_error OR length(trim(TRY(decode(text)))) > 0 OR TRY(decode(text)) IS NULL"
        )
        con.unregister("jb_arrow")
        part = _stage_json_records(con, name)
        total.read += part.read
        total.sources |= part.sources
    return total


def _stage_json_document(con: duckdb.DuckDBPyConnection, opened: Opened, name: str) -> Staged:
    fmt = "array" if opened.kind == "json_array" else "unstructured"
    try:
        con.execute(
            f"""CREATE OR REPLACE TEMP TABLE jb AS
            SELECT NULL::BIGINT AS _line, row_number() OVER () - 1 AS _base, json::VARCHAR AS txt, NULL::BLOB AS _bytes
            FROM read_json_objects('{sql_str(str(opened.path))}', format='{fmt}')"""
        )
    except duckdb.Error as exc:
        if opened.kind == "json_document":
            # Not one JSON document: read it line by line so good lines are kept and bad ones named.
            return _stage_ndjson(con, opened, name)
        raise SourceParseError(f"unreadable JSON array: {str(exc).splitlines()[0]}", file=name) from exc
    return _stage_json_records(con, name)


def _stage_json_records(con: duckdb.DuckDBPyConnection, name: str) -> Staged:
    """Map the records of temp table ``jb`` into staging.

    ``jb`` has one row per line (NDJSON: ``_line`` set, ``_base`` 0) or per JSON document / array
    element (``_line`` NULL, ``_base`` its 0-based index), with its text ``txt`` (NULL when not
    UTF-8) and original ``_bytes``. A record's number is ``_base`` + its index in a SOQL response's
    ``records`` (1 otherwise).
    """
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
    read, kinds = con.execute("SELECT count(*), list(DISTINCT kind) FILTER (WHERE kind IS NOT NULL) FROM jk").fetchone()
    for module in JSON_FORMATS:
        if module.SOURCE not in (kinds or []):
            continue
        select = select_list(module.MAPPING.build(json_field("root")))
        con.execute(
            f"INSERT INTO staged SELECT {select}, json(txt)::VARCHAR AS raw, '{sql_str(name)}', _line, _record "
            f"FROM (SELECT *, {module.JSON_ROOT} AS root FROM jk WHERE kind = '{module.SOURCE}')"
        )
    con.execute(
        f"""INSERT INTO qstaged SELECT '{sql_str(name)}', _line, _record, NULL, NULL,
               coalesce(err, '{UNRECOGNISED}'), coalesce(txt, CAST(_bytes AS VARCHAR))
        FROM jk WHERE kind IS NULL"""
    )
    return Staged(read, set(kinds or []))


def read_file(path: Path, batch_rows: int = 100_000) -> Iterator[pa.RecordBatch]:
    """Yield the valid events of one file as record batches in the event schema (see
    :func:`crmguard.sources.read`)."""
    import tempfile

    from crmguard.sources.inputs import open_input
    from crmguard.sources.sql import connect

    with tempfile.TemporaryDirectory(prefix="crmguard-") as tmp:
        con = connect()
        create_staging(con)
        stage(con, open_input(path, Path(tmp)))
        names = ", ".join(ident(c.name) for c in COLUMNS if c.name != "event_id")
        rel = con.sql(
            f"SELECT md5(source || chr(30) || raw) AS event_id, {names} FROM staged WHERE time IS NOT NULL"
        ).select(*[ident(c) for c in EVENT_SCHEMA.names])
        reader = rel.to_arrow_reader(batch_rows)
        for batch in reader:
            yield batch.cast(EVENT_SCHEMA) if batch.schema != EVENT_SCHEMA else batch
