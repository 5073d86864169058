"""SQL building blocks shared by every source mapping (DuckDB macros and small helpers).

Each source maps its records to the event schema with one SQL SELECT; these macros hold the
normalisations they share (Salesforce 15 -> 18 char ids, IP validation, both ELF timestamp
styles), so they are vectorised and defined once.
"""

from __future__ import annotations

import warnings

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from crmguard.sources.countries import macro_sql as _country_macro

_SF_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"


def _sf_suffix_char(chunk: int) -> str:
    bits = " + ".join(
        f"(CASE WHEN ascii(substr(x, {chunk * 5 + i + 1}, 1)) BETWEEN 65 AND 90 THEN {1 << i} ELSE 0 END)"
        for i in range(5)
    )
    return f"substr('{_SF_ALPHABET}', 1 + {bits}, 1)"


MACROS: tuple[str, ...] = (
    # Empty strings and whitespace mean "no value" in every log format we read.
    "CREATE OR REPLACE MACRO blank_null(x) AS NULLIF(trim(CAST(x AS VARCHAR)), '')",
    # Salesforce ids come as 15-char (case-sensitive) or 18-char (with a checksum suffix);
    # one identity must have one id, so 15-char ids get their documented suffix.
    # The lambdas bind their argument once: a macro argument repeated N times is planned (and
    # may be evaluated) N times, and the mappings pass expressions, not columns.
    "CREATE OR REPLACE MACRO sf_id18(arg) AS list_transform([arg], lambda x: CASE "
    "WHEN regexp_full_match(x, '[a-zA-Z0-9]{18}') THEN x "
    "WHEN regexp_full_match(x, '[a-zA-Z0-9]{15}') THEN x || "
    + " || ".join(_sf_suffix_char(c) for c in range(3))
    + " ELSE blank_null(x) END)[1]",
    # A record id only when the value is one (15 or 18 alphanumerics), as 18 chars; collectors and
    # hand-edited samples put other strings in id columns (URI_ID_DERIVED 's4heK3WbH-lcJIL3-n').
    # The lambda binds x once: sf_id18 repeats its argument ~20 times, and mappings pass a
    # coalesce of several fields here, which would make every file's query slow to plan.
    "CREATE OR REPLACE MACRO sf_id_or_null(x) AS list_transform([trim(x)], lambda v: CASE "
    "WHEN regexp_full_match(v, '[a-zA-Z0-9]{15}|[a-zA-Z0-9]{18}') THEN sf_id18(v) END)[1]",
    # Only a real IPv4 / IPv6 literal is an IP; 'Salesforce.com IP', 'w.x.y.z', 'null' are not.
    "CREATE OR REPLACE MACRO ip_or_null(arg) AS list_transform([trim(arg)], lambda x: CASE "
    "WHEN regexp_full_match(x, '((25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\\.){3}"
    "(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])') THEN x "
    "WHEN regexp_full_match(x, '[0-9A-Fa-f]{0,4}(:[0-9A-Fa-f]{0,4}){2,7}(%[0-9A-Za-z]+)?') "
    "AND strpos(x, ':::') = 0 THEN lower(x) "
    "ELSE NULL END)[1]",
    # ELF TIMESTAMP (20250401123456.789), ISO 8601 with or without zone, and
    # 'YYYY-MM-DD HH:MM:SS.fff'; anything else, or outside 1990..2100, is impossible (NULL).
    # The dash test first: a failed strptime costs ten times a LIKE, and most stamps are ISO.
    "CREATE OR REPLACE MACRO parse_ts_any(arg) AS list_transform([trim(arg)], lambda x: CASE "
    "WHEN x LIKE '____-__-__%' THEN CASE "
    "WHEN regexp_full_match(x, '\\d{4}-\\d{2}-\\d{2}[T ][0-9:.]+(Z|[+-]\\d{2}:?\\d{2})?') "
    "THEN try_cast(x AS TIMESTAMPTZ) END "
    "ELSE CAST(try_strptime(x, ['%Y%m%d%H%M%S.%g', '%Y%m%d%H%M%S']) AS TIMESTAMPTZ) END)[1]",
    # No subquery here: it would turn every mapping into a join and stop DuckDB streaming.
    "CREATE OR REPLACE MACRO parse_ts(x) AS list_transform([parse_ts_any(x)], lambda t: CASE "
    "WHEN t >= TIMESTAMPTZ '1990-01-01 00:00:00+00' AND t < TIMESTAMPTZ '2100-01-01 00:00:00+00' THEN t END)[1]",
    "CREATE OR REPLACE MACRO to_int(x) AS try_cast(try_cast(blank_null(x) AS DOUBLE) AS BIGINT)",
    "CREATE OR REPLACE MACRO to_bool(x) AS CASE lower(blank_null(x)) WHEN 'true' THEN true "
    "WHEN '1' THEN true WHEN 'false' THEN false WHEN '0' THEN false END",
    # Country names (Okta) and codes (Salesforce) -> ISO 3166-1 alpha-2, so sources compare.
    *(statement for statement in _country_macro() if not statement.startswith("SET ")),
)

SESSION: tuple[str, ...] = (
    "SET timezone = 'UTC'",
    "SET preserve_insertion_order = false",
    # The country table of country_iso is a session variable.
    *(statement for statement in _country_macro() if statement.startswith("SET ")),
)
"""Per-connection settings and variables the macros and mappings rely on: a cursor does not inherit
them (see :func:`session_cursor`)."""


def connect(threads: int | None = None, memory_limit: str | None = None, temp_dir: str | None = None) -> duckdb.DuckDBPyConnection:
    """Open an in-memory DuckDB connection in UTC with crmguard's macros defined.

    Takes optional thread count, memory limit (e.g. ``"1GB"``) and spill directory; returns the
    connection.
    """
    con = duckdb.connect(":memory:")
    # The macros first: they create the country table the session's variable is read from.
    for macro in MACROS:
        con.execute(macro)
    _session(con)
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    if memory_limit:
        con.execute(f"SET memory_limit = '{memory_limit}'")
    if temp_dir:
        con.execute(f"SET temp_directory = '{sql_str(temp_dir)}'")
    return con


def _session(con: duckdb.DuckDBPyConnection) -> None:
    """Apply crmguard's :data:`SESSION` settings to ``con``."""
    for statement in SESSION:
        con.execute(statement)


def session_cursor(con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    """A new cursor of ``con``'s database, usable from another thread, with crmguard's
    :data:`SESSION` settings (UTC, the country table). It sees the database's tables and macros, not
    ``con``'s temporary objects or registered Arrow tables."""
    cursor = con.cursor()
    _session(cursor)
    return cursor


ARROW_COPY_WARNING = "Arrow output on a DB-API result"
"""Start of DuckDB's advice against Arrow output from ``execute``, which :func:`arrow_table` means
to use. It is ignored process-wide rather than around each call: ``warnings.catch_warnings`` is not
thread-safe, and mappings run on several threads at once (pytest's configuration ignores it too)."""
warnings.filterwarnings("ignore", message=ARROW_COPY_WARNING, category=UserWarning)


def arrow_table(con: duckdb.DuckDBPyConnection, query: str) -> pa.Table:
    """Run ``query`` on ``con`` once and return every row as an Arrow table.

    ``con.sql(query).to_arrow_table()`` binds the query twice (to describe the relation, then to
    run it); for a source mapping's SELECT, whose expressions are large, that second bind costs more
    than the extra copy of the rows the DB-API path makes (about 15% of a 20,000-record batch), so
    DuckDB's advice to prefer the relation is silenced (see :data:`ARROW_COPY_WARNING`).
    """
    return con.execute(query).to_arrow_table()


SCAN_BATCH_ROWS = 2048
"""Rows per record batch of the Arrow tables crmguard hands to DuckDB (see :func:`scannable`)."""
SCAN_BATCH_BYTES = 2 << 20
"""Bytes of text per record batch above which :func:`scannable` cuts batches of fewer rows."""


def scannable(table: pa.Table, text: str | None = None) -> pa.Table:
    """Return ``table`` cut (without copying) into record batches of :data:`SCAN_BATCH_ROWS` rows,
    or, given the name of a string or binary ``text`` column, also into batches of about
    :data:`SCAN_BATCH_BYTES` of it (see :func:`byte_slices`).

    DuckDB splits a scan among its threads by record batch (and a table of its own by row group,
    122,880 rows): a batch of 20,000 records in one piece is mapped, deduplicated and written by
    one thread however many the machine has. A scan's vector holds at most one batch: RTEM records
    of 10 kB each map in about half the time in vectors of 2 MB than of 2,048 records.
    """
    parts = [table] if text is None else byte_slices(table, text, SCAN_BATCH_BYTES)
    batches = [b for part in parts for b in part.to_batches(max_chunksize=SCAN_BATCH_ROWS)]
    return pa.Table.from_batches(batches, table.schema)


def byte_slices(table: pa.Table, text: str, budget: int) -> list[pa.Table]:
    """Cut ``table`` (without copying) into consecutive slices holding about ``budget`` bytes of
    its string or binary column ``text`` each: a slice starts at the first row whose value starts
    past the next multiple of ``budget``, so a longer value gets a slice of its own. An empty
    table is one empty slice."""
    if not table.num_rows:
        return [table]
    lengths = pc.fill_null(pc.binary_length(table.column(text)), 0).to_numpy()
    bucket = (np.cumsum(lengths) - lengths) // budget
    starts = np.flatnonzero(np.r_[True, bucket[1:] != bucket[:-1]])
    ends = np.r_[starts[1:], table.num_rows]
    return [table.slice(start, end - start) for start, end in zip(starts.tolist(), ends.tolist(), strict=True)]


def sql_str(text: str) -> str:
    """Escape ``text`` for use inside a single-quoted SQL literal (without the quotes)."""
    return text.replace("'", "''")


def ident(name: str) -> str:
    """Quote ``name`` as a SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def json_path(path: str) -> str:
    """Return a JSONPath literal for a dotted ``path`` whose keys may hold any character."""
    parts = path.split(".")
    return "'$" + "".join('."' + sql_str(p).replace('"', '\\"') + '"' for p in parts) + "'"


def sql_list(items: list[str]) -> str:
    """Render ``items`` as a SQL list of string literals: ``['a', 'b']``."""
    return "[" + ", ".join(f"'{sql_str(i)}'" for i in items) + "]"
