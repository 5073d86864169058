"""Secret scanning of exposed record text: access keys, passwords and tokens customers or staff
pasted into CRM records (a Case Description with "mot de passe : ...", an API key in a comment).

The scan is a few DuckDB statements: the text columns are unpivoted into (record, field, value)
cells, one pass of all patterns as a single alternation keeps the cells that may hold a secret, and
every pattern then runs as ``regexp_extract_all`` over those cells. A secret never leaves DuckDB in
clear: findings carry a masked preview (a public prefix such as ``AKIA`` or ``sk_live_`` at most,
and the length) and, except for passwords (guessable from a short hash), a 12-hex SHA-256
fingerprint to tell two findings of the same secret apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from crmguard.errors import ResponseError
from crmguard.sources.sql import sql_str


@dataclass(frozen=True)
class Pattern:
    """One kind of secret: an RE2 pattern whose group 1 is the secret, and how many leading
    characters are a public prefix safe to show (-1: the whole match is a marker, not a secret)."""

    kind: str
    regex: str
    keep: int


PATTERNS = (
    Pattern("private_key", r"(-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----)", -1),
    Pattern("aws_access_key", r"\b((?:AKIA|ASIA)[0-9A-Z]{16})\b", 4),
    Pattern("aws_secret_key", r"(?i)aws_?secret_?access_?key\W{0,3}[=:]\s*[\"']?([A-Za-z0-9/+=]{40})", 0),
    Pattern("stripe_key", r"\b((?:sk|rk)_live_[0-9A-Za-z]{16,})", 8),
    Pattern("github_token", r"\b(gh[pousr]_[A-Za-z0-9]{36,})", 4),
    Pattern("slack_token", r"\b(xox[abprs]-[A-Za-z0-9-]{10,})", 5),
    Pattern("salesforce_session", r"\b(00D[A-Za-z0-9]{12,15}![A-Za-z0-9._]{40,})", 3),
    Pattern("jwt", r"\b(eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,})", 3),
    Pattern("bearer_token", r"(?i)\bbearer\s+([A-Za-z0-9._~+/=-]{20,})", 0),
    Pattern("password", r"(?i)\b(?:password|passwd|pwd|passwort|kennwort|mot de passe|contrase(?:n|ñ)a|senha)\s*[=:]\s*[\"']?([^\s\"',;]{4,})", 0),
)
"""Most specific first: a secret matched by two patterns is reported under the first."""

FINDINGS_SCHEMA = pa.schema([
    ("source", pa.string()), ("object", pa.string()), ("record_id", pa.string()), ("field", pa.string()),
    ("kind", pa.string()), ("preview", pa.string()), ("fingerprint", pa.string()), ("exposed", pa.bool_()),
])

KEY_PREFIXES = {"003": "Contact", "001": "Account", "00Q": "Lead", "500": "Case", "005": "User", "00T": "Task",
                "00U": "Event", "02s": "EmailMessage", "0D5": "FeedItem"}


def _read(con: duckdb.DuckDBPyConnection, path: Path, name: str) -> list[str]:
    """Load ``path`` (CSV, JSON / JSON lines, or Parquet) as table ``name``; return its columns."""
    p = sql_str(str(path))
    suffix = path.suffix.lower()
    reader = (f"read_parquet('{p}')" if suffix == ".parquet" else
              f"read_json_auto('{p}')" if suffix in (".json", ".jsonl", ".ndjson") else
              f"read_csv('{p}', all_varchar = true, header = true)")
    try:
        con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT * FROM {reader}")
    except duckdb.Error as exc:
        raise ResponseError(f"cannot read the records file: {str(exc).splitlines()[0]}", file=str(path)) from exc
    cols = {r[0]: r[1] for r in con.execute(f"DESCRIBE {name}").fetchall()}
    if "records" in cols and cols["records"].startswith("STRUCT") and cols["records"].endswith("[]"):
        # A saved REST query answer ({"totalSize", "done", "records": [...]}): one row per record.
        con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT unnest(records, recursive := true) FROM {name}")
        cols = {r[0]: r[1] for r in con.execute(f"DESCRIBE {name}").fetchall()}
    return list(cols)


def scan_files(records: list[Path], customers: Path | None = None, exposed_records: Path | None = None) -> pa.Table:
    """Scan ``records`` files (CSV/JSON/Parquet of exported records: an ``Id`` column and text
    columns) and the affected-customers file ``customers`` (scope's ``affected_customers.parquet``)
    for secrets. ``exposed_records`` (scope's ``exposed_records.parquet``), when given, marks which
    records the logs show as exposed. Returns findings in :data:`FINDINGS_SCHEMA`, masked."""
    con = duckdb.connect()
    try:
        con.execute("CREATE TEMP TABLE cells (source VARCHAR, record_id VARCHAR, field VARCHAR, value VARCHAR)")
        sources = [(p, "Id") for p in records] + ([(customers, "customer_id")] if customers else [])
        for i, (path, id_col) in enumerate(sources):
            cols = _read(con, path, f"src{i}")
            key = next((c for c in cols if c.lower() == id_col.lower()), None)
            if key is None:
                raise ResponseError(f"no {id_col} column (columns: {', '.join(cols)})", file=str(path))
            text = [c for c in cols if c != key]
            if not text:
                continue
            select = ", ".join(f'CAST("{c}" AS VARCHAR) AS "{c}"' for c in text)
            on = ", ".join(f'"{c}"' for c in text)
            con.execute(f"""INSERT INTO cells SELECT '{sql_str(path.name)}', record_id, field, value FROM (
                UNPIVOT (SELECT CAST("{key}" AS VARCHAR) AS record_id, {select} FROM src{i})
                ON {on} INTO NAME field VALUE value)""")
        exposed_sql = "NULL::BOOLEAN"
        if exposed_records is not None and exposed_records.is_file():
            con.execute(f"CREATE TEMP TABLE exposed AS SELECT DISTINCT left(record_id, 15) AS id15 "
                        f"FROM read_parquet('{sql_str(str(exposed_records))}')")
            exposed_sql = "left(record_id, 15) IN (SELECT id15 FROM exposed)"
        if customers:
            # Every row of the affected-customers file was exposed (or is a candidate): scope decided.
            exposed_sql = f"CASE WHEN source = '{sql_str(customers.name)}' THEN true ELSE {exposed_sql} END"
        # One pass of all patterns as one alternation picks the few cells worth the per-pattern passes.
        anything = "|".join(f"(?i:{p.regex[4:]})" if p.regex.startswith("(?i)") else f"(?:{p.regex})" for p in PATTERNS)
        con.execute(f"CREATE TEMP TABLE hits AS SELECT * FROM cells WHERE regexp_matches(value, '{sql_str(anything)}')")
        matches = " UNION ALL ".join(
            f"SELECT source, record_id, field, '{p.kind}' AS kind, {n} AS priority, {p.keep} AS keep, "
            f"unnest(regexp_extract_all(value, '{sql_str(p.regex)}', 1)) AS secret "
            f"FROM hits WHERE regexp_matches(value, '{sql_str(p.regex)}')"
            for n, p in enumerate(PATTERNS))
        prefixes = ", ".join(f"'{k}': '{v}'" for k, v in KEY_PREFIXES.items())
        table = con.sql(f"""
            SELECT source,
                   CASE WHEN source = '{sql_str(customers.name) if customers else ''}' THEN 'Customer'
                        ELSE coalesce(MAP {{{prefixes}}}[left(record_id, 3)], 'record') END AS object,
                   record_id, field, kind,
                   CASE WHEN keep < 0 THEN secret
                        WHEN keep > 0 AND length(secret) >= keep + 12 THEN left(secret, keep) || '…(' || length(secret) || ' chars)'
                        ELSE '…(' || length(secret) || ' chars)' END AS preview,
                   CASE WHEN kind = 'password' OR keep < 0 THEN NULL ELSE left(sha256(secret), 12) END AS fingerprint,
                   {exposed_sql} AS exposed
            FROM ({matches})
            QUALIFY row_number() OVER (PARTITION BY source, record_id, field, secret ORDER BY priority) = 1
            ORDER BY source, record_id, field, kind""").to_arrow_table()
        return table.cast(FINDINGS_SCHEMA)
    finally:
        con.close()


def findings_list(table: pa.Table) -> list[dict[str, Any]]:
    """Findings as dicts (they hold masked previews only), for the journal and the rotation list."""
    return table.to_pylist()
