"""Loaded intel and the SQL that enriches events with it.

``load(folder)`` reads ``anonymizers.csv`` and ``asn.csv`` once, turning each CIDR into its first
address as a 128-bit number and its count of host bits (see :mod:`crmguard.intel.macros`).
``IntelDB.install(con)`` copies them into any DuckDB connection as the temp tables
``intel_anonymizers`` and ``intel_asn``; ``IntelDB.enrich_sql(con, "events")`` returns a SELECT
adding ``is_anonymizer``, ``anonymizer_kind``, ``src_asn``, ``src_isp`` and ``src_country`` to
every event.

How the lookup runs: each *distinct* ``src_ip`` is looked up once (events are many, distinct
addresses few), then the answers are joined back to the events by address text. An address is
matched by longest-prefix match as equi-joins: for every prefix length present in a table (a few
dozen), the address with its host bits cleared is joined on (host bits, network start). DuckDB
always runs that as a hash join. A range join (``num BETWEEN lo AND hi``) was tried first: with
the distinct-address side estimated small, DuckDB planned a nested loop join, which took 13
minutes for 55k addresses against 6M networks; the hash join takes seconds.

When several networks contain an address, the most telling anonymizer kind wins (tor, vpn,
proxy, hosting), then the most specific network.
"""

from __future__ import annotations

import csv
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from crmguard.intel.formats import (
    ANONYMIZERS_FILE,
    ANONYMIZING_KINDS,
    ASN_FILE,
    HEADERS,
    KINDS,
    IntelError,
    Problem,
    read_manifest,
)
from crmguard.intel.macros import V4_HI, V4_LO, register_macros
from crmguard.intel.parsers import MAX_PROBLEMS

ENRICHED_COLUMNS: tuple[tuple[str, str], ...] = (
    ("is_anonymizer", "BOOLEAN"),
    ("anonymizer_kind", "VARCHAR"),
    ("src_asn", "BIGINT"),
    ("src_isp", "VARCHAR"),
    ("src_country", "VARCHAR"),
)
"""Columns :meth:`IntelDB.enrich_sql` fills (name, DuckDB type); a value already in the event wins."""

_U128 = "UHUGEINT"
_LOW64 = f"CAST({2**64 - 1} AS {_U128})"
_SPLIT = f"CAST(lo >> CAST(64 AS {_U128}) AS UBIGINT) AS lo_hi, CAST(lo & {_LOW64} AS UBIGINT) AS lo_lo"
_JOIN = f"(CAST(lo_hi AS {_U128}) << CAST(64 AS {_U128})) | CAST(lo_lo AS {_U128}) AS lo"


@dataclass
class IntelDB:
    """Intel loaded from ``folder``: the networks of both files as Arrow tables (first address
    split in two UBIGINT halves, as Arrow has no 128-bit integer; host bits; whether it is an
    IPv4 network), rows loaded per file, the ``problems`` found (rows set aside), and the
    folder's ``manifest``."""

    folder: Path
    manifest: dict[str, Any]
    anonymizers: pa.Table
    asn: pa.Table
    rows: dict[str, int]
    problems: list[Problem] = field(default_factory=list)
    bad_rows: int = 0
    _token: str = field(default_factory=lambda: uuid.uuid4().hex, repr=False)
    _con: duckdb.DuckDBPyConnection | None = field(default=None, repr=False)

    @property
    def empty(self) -> bool:
        """True when neither file gave any row (never updated, or emptied)."""
        return not any(self.rows.values())

    def install(self, con: duckdb.DuckDBPyConnection) -> None:
        """Define the IP macros and the temp tables ``intel_anonymizers`` (lo, bits, v4, kind,
        source, network, rank) and ``intel_asn`` (lo, bits, v4, asn, as_org, country, network)
        in ``con``: ``lo`` is the network's first address (``ip_num``), ``bits`` its host bits,
        ``v4`` whether it is an IPv4 network. Does nothing when already installed there; another
        IntelDB installed later in the same connection replaces these tables."""
        register_macros(con)
        installed = con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE temporary AND table_name = 'intel_info'"
        ).fetchall()[0][0]
        if installed and con.execute("SELECT token FROM intel_info").fetchall() == [(self._token,)]:
            return
        for name, table in (("intel_anonymizers", self.anonymizers), ("intel_asn", self.asn)):
            view = f"_{name}_arrow"
            con.register(view, table)
            try:
                con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT {_JOIN}, * EXCLUDE (lo_hi, lo_lo) FROM {view}")
            finally:
                con.unregister(view)
        con.execute("CREATE OR REPLACE TEMP TABLE intel_info AS SELECT ? AS token, ? AS folder", [self._token, str(self.folder)])

    def enrich_sql(self, con: duckdb.DuckDBPyConnection, relation: str = "events", ip_column: str = "src_ip") -> str:
        """Return a SELECT over ``relation`` (a table or view name, or a parenthesised subquery,
        in ``con``) giving every row of it with :data:`ENRICHED_COLUMNS` looked up from
        ``ip_column``. A column the relation already has keeps its non-NULL values (a source that
        states the ASN or proxy flag itself wins); missing columns are appended. Installs the
        intel tables in ``con`` first.

        ``is_anonymizer`` is true for tor, vpn and proxy networks, false for an address on no list
        (or only on a hosting list), and NULL when the address is not an IP or no anonymizer list
        is loaded.
        """
        self.install(con)
        present = {row[0].lower() for row in con.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()}
        replaced: list[str] = []
        added: list[str] = []
        for name, sql_type in ENRICHED_COLUMNS:
            value = f"CAST(intel.{name} AS {sql_type})"
            if name in present:
                replaced.append(f"coalesce(e.{name}, {value}) AS {name}")
            else:
                added.append(f"{value} AS {name}")
        select = "e.*" + (f" REPLACE ({', '.join(replaced)})" if replaced else "") + "".join(f", {a}" for a in added)
        return (
            f"WITH {self._attributes_ctes(relation, ip_column)}\n"
            f"SELECT {select} FROM {relation} e LEFT JOIN intel_attributes intel ON intel.ip = e.{ip_column}"
        )

    def lookup(self, ips: Sequence[str | None]) -> list[dict[str, Any]]:
        """Look up each of ``ips`` (any strings) and return one dict per input, in order: ``ip``,
        the :data:`ENRICHED_COLUMNS`, and which entries matched (``anonymizer_source``,
        ``anonymizer_network``, ``asn_network``). Everything is None for a string that is not an
        IP address. Runs the same SQL as :meth:`enrich_sql`."""
        con = self._connection()
        con.register("intel_lookup_input", pa.table({"pos": pa.array(range(len(ips)), pa.int64()),
                                                     "ip": pa.array(list(ips), pa.string())}))
        try:
            table = con.sql(
                f"WITH {self._attributes_ctes('intel_lookup_input', 'ip')}\n"
                "SELECT q.ip, a.* EXCLUDE (ip) FROM intel_lookup_input q "
                "LEFT JOIN intel_attributes a ON a.ip = q.ip ORDER BY q.pos"
            ).to_arrow_table()
        finally:
            con.unregister("intel_lookup_input")
        return table.to_pylist()

    def _connection(self) -> duckdb.DuckDBPyConnection:
        if self._con is None:
            self._con = _private_connection()
            self.install(self._con)
        return self._con

    def _attributes_ctes(self, relation: str, ip_column: str) -> str:
        """CTEs ending in ``intel_attributes`` (ip, enriched columns, matched entries): one row
        per distinct non-NULL ``ip_column`` of ``relation``."""
        known = "false" if self.anonymizers.num_rows else "NULL"
        anonymizing = ", ".join(f"'{k}'" for k in ANONYMIZING_KINDS)
        return f"""intel_ips AS (
    SELECT ip, ip_num(ip) AS num FROM (SELECT DISTINCT {ip_column} AS ip FROM {relation} WHERE {ip_column} IS NOT NULL)
), intel_anonymizer_hits AS (
    {_prefix_match("intel_anonymizers", "a.kind, a.source, a.network", "a.rank, a.bits, a.network, a.source")}
), intel_asn_hits AS (
    {_prefix_match("intel_asn", "a.asn, a.as_org, a.country, a.network", "a.bits, a.asn")}
), intel_attributes AS (
    SELECT i.ip,
           CASE WHEN i.num IS NULL THEN NULL WHEN h.kind IS NOT NULL THEN h.kind IN ({anonymizing}) ELSE {known} END
               AS is_anonymizer,
           h.kind AS anonymizer_kind, s.asn AS src_asn, s.as_org AS src_isp, s.country AS src_country,
           h.source AS anonymizer_source, h.network AS anonymizer_network, s.network AS asn_network
    FROM intel_ips i LEFT JOIN intel_anonymizer_hits h ON h.ip = i.ip LEFT JOIN intel_asn_hits s ON s.ip = i.ip
)"""


def _prefix_match(table: str, columns: str, order: str) -> str:
    """SELECT of (ip, ``columns``) for the best entry of ``table`` (by ``order``) containing each
    address of ``intel_ips``: one equi-join per host-bit count present in the table. An IPv4
    address only matches IPv4 networks (never an IPv6 one such as ``::/0``), so it is only
    probed with up to 32 host bits."""
    start = f"CASE WHEN b.bits >= 128 THEN CAST(0 AS {_U128}) ELSE (i.num >> CAST(b.bits AS {_U128})) << CAST(b.bits AS {_U128}) END"
    return f"""SELECT p.ip, {columns} FROM (
        SELECT i.ip, ip_is_v4(i.num) AS v4, b.bits, {start} AS lo
        FROM intel_ips i CROSS JOIN (SELECT DISTINCT bits FROM {table}) b
        WHERE i.num IS NOT NULL AND (b.bits <= 32 OR NOT ip_is_v4(i.num))
    ) p JOIN {table} a ON a.bits = p.bits AND a.lo = p.lo
    WHERE a.v4 OR NOT p.v4
    QUALIFY row_number() OVER (PARTITION BY p.ip ORDER BY {order}) = 1"""


def load(folder: str | Path) -> IntelDB:
    """Load the intel files of ``folder`` (a missing folder or file loads as empty).

    Rows whose CIDR is not a network, whose kind is unknown or whose ASN is not an integer are
    set aside as :class:`Problem` s (file, line, reason) and counted in ``bad_rows``; the rest
    load. Raises :class:`IntelError` when a file exists but cannot be read as CSV, or the manifest
    is not JSON.
    """
    folder = Path(folder)
    manifest = read_manifest(folder)
    con = _private_connection()
    try:
        register_macros(con)
        tables: dict[str, pa.Table] = {}
        rows: dict[str, int] = {}
        problems: list[Problem] = []
        bad_rows = 0
        for name, valid, columns in (
            (ANONYMIZERS_FILE, _ANONYMIZER_VALID, _ANONYMIZER_COLUMNS),
            (ASN_FILE, _ASN_VALID, _ASN_COLUMNS),
        ):
            tables[name], bad, found = _load_file(con, folder / name, valid, columns)
            rows[name] = tables[name].num_rows
            bad_rows += bad
            problems += found
    finally:
        con.close()
    return IntelDB(folder, manifest, tables[ANONYMIZERS_FILE], tables[ASN_FILE], rows, problems, bad_rows)


_KIND_LIST = ", ".join(f"'{k}'" for k in KINDS)
_ANONYMIZER_VALID = f"trim(kind) IN ({_KIND_LIST})"
_ANONYMIZER_COLUMNS = (
    "trim(kind) AS kind, coalesce(trim(source), '') AS source, trim(cidr) AS network, "
    f"CAST(list_position([{_KIND_LIST}], trim(kind)) AS INTEGER) AS rank"
)
_ASN_VALID = "try_cast(trim(asn) AS BIGINT) BETWEEN 0 AND 4294967295"
_ASN_COLUMNS = (
    "CAST(trim(asn) AS BIGINT) AS asn, nullif(trim(as_org), '') AS as_org, "
    "nullif(upper(trim(country)), '') AS country, trim(cidr) AS network"
)


def _load_file(con: duckdb.DuckDBPyConnection, path: Path, valid: str, columns: str) -> tuple[pa.Table, int, list[Problem]]:
    """Read one intel CSV into an Arrow table of ranges; returns (table, bad row count, problems)."""
    header = HEADERS[path.name]
    if path.exists():
        types = "{" + ", ".join(f"'{c}': 'VARCHAR'" for c in header) + "}"
        source = (
            f"read_csv('{_sql_str(str(path))}', header=true, auto_detect=false, columns={types}, "
            "null_padding=true, strict_mode=false, quote='\"', escape='\"')"
        )
    else:
        source = "(SELECT " + ", ".join(f"NULL::VARCHAR AS {c}" for c in header) + " WHERE false)"
    try:
        con.execute(f"CREATE OR REPLACE TEMP TABLE parsed AS SELECT *, cidr_range(cidr) AS r FROM {source}")
    except duckdb.Error as exc:
        raise IntelError(f"unreadable intel file: {str(exc).splitlines()[0]}", file=str(path)) from exc
    ok = f"r IS NOT NULL AND {valid}"
    v4 = f"r.lo >= CAST({V4_LO} AS {_U128}) AND r.hi <= CAST({V4_HI} AS {_U128})"
    table = con.sql(
        f"SELECT {_SPLIT}, bits, v4, {columns} FROM "
        f"(SELECT r.lo AS lo, cidr_host_bits(trim(cidr)) AS bits, {v4} AS v4, * FROM parsed WHERE {ok})"
    ).to_arrow_table()
    bad = con.execute(f"SELECT count(*) FROM parsed WHERE NOT coalesce({ok}, false)").fetchall()[0][0]
    problems = _locate_problems(con, path, ok, header) if bad else []
    con.execute("DROP TABLE parsed")
    return table, bad, problems


def _locate_problems(con: duckdb.DuckDBPyConnection, path: Path, ok: str, header: tuple[str, ...]) -> list[Problem]:
    """Line numbers of the first bad rows: DuckDB found which values are bad, a plain CSV pass
    finds where they are (only run when there are bad rows)."""
    bad_rows = con.execute(
        f"SELECT DISTINCT {', '.join(header)}, r IS NULL AS bad_cidr FROM parsed WHERE NOT coalesce({ok}, false) "
        f"LIMIT {MAX_PROBLEMS}"
    ).fetchall()
    reasons = {
        tuple("" if v is None else v for v in row[:-1]): ("not a CIDR network" if row[-1] else _bad_value(path.name))
        for row in bad_rows
    }
    problems: list[Problem] = []
    with open(path, newline="", encoding="utf-8", errors="replace") as fh:
        reader = csv.reader(fh)
        next(reader, None)
        for record in reader:
            key = tuple((record + [""] * len(header))[: len(header)])
            if key in reasons:
                problems.append(Problem(str(path), reader.line_num, reasons[key], ",".join(record)))
                if len(problems) >= MAX_PROBLEMS:
                    break
    return problems


def _bad_value(name: str) -> str:
    return f"kind is not one of {', '.join(KINDS)}" if name == ANONYMIZERS_FILE else "asn is not an integer"


def _private_connection() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(":memory:")
    con.execute("SET enable_progress_bar = false")  # loading a big asn.csv would draw one on stderr
    return con


def _sql_str(text: str) -> str:
    return text.replace("'", "''")
