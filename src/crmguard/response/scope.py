"""Scoping: which customer records an incident's actors received, which fields, and who they belong to.

One DuckDB pass over the lake's Salesforce events of the incident's users (and, when the incident
has any, only from its source IPs) inside its breach window, joined with the CRM customer export.

**Exact** where the logs carry record ids:

- Real-Time Event Monitoring ``ApiEvent.Records`` (``records[*].Id``) for SOQL queries;
- ``ReportEvent`` / ``ListViewEvent`` ``Records`` (``rows[*].datacells[*]``) for reports and list views;
- a single ``record_id`` (record page views in ELF ``URI``, one-record queries).

Ids are sorted into objects by their key prefix (003 Contact, 001 Account, 00Q Lead, 500 Case,
005 User); other ids (report, job, list-view ids) are not customer data.

**Estimated** where the logs give only an object and a row count, each with its reason:

- Bulk API 2.0 query jobs (ELF ``BulkApi2`` pages, or REST ``/jobs/query/<id>/results`` pages);
- REST/SOAP queries seen only in Event Log Files (no ``ApiEvent`` for the session);
- ``ApiEvent`` queries whose ``Records`` list is missing or shorter than the rows returned;
- reports seen only in ELF ``Report`` (no ``ReportEvent`` for the session).

Files written into the incident's folder: ``affected_customers.parquet`` / ``.csv`` (one row per
customer, PII: the notification step reads it), ``exposed_records.parquet`` (object and id of every
record seen exactly, no PII) and ``scope.json`` (counts only).

For each object the number of records is bracketed: lower = max(exact ids, the largest single
job/query), upper = exact ids + every estimated row (at most the object's population, for
customer objects the export's size). Customers are person accounts (a Contact and an Account);
the export is keyed by Contact Id, so Contact ids map exactly, Account ids only when the export
has an ``AccountId`` column; otherwise they count towards the bracket. When the upper bound exceeds
the exact set, every other customer of the export is listed as a candidate (``exact = false``).

Fields come from the SOQL select list, the report/list-view column headers, or — when the log
names none (bulk jobs without a logged query, record page views) — every personal-data field of
the object, flagged as estimated. Salesforce names map to the export's columns
(:data:`FIELD_COLUMNS`) and to data categories for the regulator (:data:`FIELD_CATEGORIES`).

Spend tiers rank the whole export by ``TotalSpend`` (ties by Id): ``top-1%`` is the 1% highest
spenders (rounded up), ``top-10%`` the rest of the highest 10%, ``other`` everyone else.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pycountry

from crmguard.errors import ResponseError
from crmguard.lake import Lake
from crmguard.response.incidents import Incident, iso, parse_time
from crmguard.sources.sql import sql_list, sql_str

KEY_PREFIXES = {"003": "Contact", "001": "Account", "00Q": "Lead", "500": "Case", "005": "User"}
CUSTOMER_OBJECTS = ("Contact", "Account")
SPEND_TIERS = (("top-1%", 0.01), ("top-10%", 0.10))
"""Tier name and share of the export (highest spenders first); everyone else is ``other``."""

EXPORT_COLUMNS = ("FirstName", "LastName", "Email", "Phone", "MailingStreet", "MailingCity", "MailingPostalCode",
                  "MailingCountry", "Brand", "Language", "TotalSpend")
_ADDRESS = ["MailingStreet", "MailingCity", "MailingPostalCode", "MailingCountry"]
FIELD_COLUMNS: dict[str, list[str]] = {
    "firstname": ["FirstName"], "first_name": ["FirstName"], "lastname": ["LastName"], "last_name": ["LastName"],
    "name": ["FirstName", "LastName"], "full_name": ["FirstName", "LastName"],
    "email": ["Email"], "personemail": ["Email"], "suppliedemail": ["Email"],
    "phone": ["Phone"], "phone1": ["Phone"], "mobilephone": ["Phone"], "personmobilephone": ["Phone"],
    "suppliedphone": ["Phone"], "mobile_phone": ["Phone"],
    "mailingstreet": ["MailingStreet"], "billingstreet": ["MailingStreet"], "street": ["MailingStreet"],
    "mailingcity": ["MailingCity"], "billingcity": ["MailingCity"], "city": ["MailingCity"],
    "mailingpostalcode": ["MailingPostalCode"], "billingpostalcode": ["MailingPostalCode"], "postalcode": ["MailingPostalCode"],
    "mailingcountry": ["MailingCountry"], "billingcountry": ["MailingCountry"], "country": ["MailingCountry"],
    "mailing_address": _ADDRESS, "mailingaddress": _ADDRESS, "billingaddress": _ADDRESS, "address": _ADDRESS,
    "total_spend__c": ["TotalSpend"], "brand__c": ["Brand"], "preferred_language__c": ["Language"],
    "language__c": ["Language"],
}
"""Salesforce field (lower case, without its ``Object.`` prefix) -> the export columns it reveals."""

FIELD_CATEGORIES: dict[str, str] = {
    **{k: "identity (name)" for k in ("firstname", "first_name", "lastname", "last_name", "name", "full_name")},
    **{k: "contact details (e-mail address)" for k in ("email", "personemail", "suppliedemail")},
    **{k: "contact details (phone number)" for k in ("phone", "phone1", "mobilephone", "personmobilephone",
                                                       "suppliedphone", "mobile_phone")},
    **{k: "postal address" for k in ("mailingstreet", "billingstreet", "street", "mailingcity", "billingcity", "city",
                                     "mailingpostalcode", "billingpostalcode", "postalcode", "mailingcountry",
                                     "billingcountry", "country", "mailing_address", "mailingaddress",
                                     "billingaddress", "address")},
    "birthdate": "date of birth", "total_spend__c": "purchase history (lifetime spend)",
    "brand__c": "customer relationship (brand)", "preferred_language__c": "language preference",
    "language__c": "language preference", "subject": "customer-service case contents (free text)",
    "description": "customer-service case contents (free text)", "company": "employer",
    "username": "staff account data", "title": "staff account data", "lastlogindate": "staff account data",
}
"""Salesforce field (lower case) -> GDPR data category named in the regulator report."""

OBJECT_FIELDS: dict[str, list[str]] = {
    "Contact": ["FirstName", "LastName", "Email", "Phone", "MobilePhone", "MailingStreet", "MailingCity",
                "MailingPostalCode", "MailingCountry", "Birthdate", "Brand__c", "Total_Spend__c"],
    "Account": ["Name", "PersonEmail", "PersonMobilePhone", "BillingStreet", "BillingCity", "BillingPostalCode",
                "BillingCountry", "Total_Spend__c"],
    "Lead": ["FirstName", "LastName", "Email", "Phone", "Company", "City", "Country"],
    "Case": ["Subject", "Description", "SuppliedEmail", "SuppliedPhone"],
    "User": ["Username", "Email", "Name", "Title"],
}
"""Every personal-data field of an object: assumed exposed when the log does not list the fields."""

AFFECTED_SCHEMA = pa.schema([
    ("incident_id", pa.string()), ("customer_id", pa.string()), ("first_name", pa.string()),
    ("last_name", pa.string()), ("email", pa.string()), ("phone", pa.string()), ("country", pa.string()),
    ("language", pa.string()), ("brand", pa.string()), ("total_spend", pa.float64()), ("spend_tier", pa.string()),
    ("fields_exposed", pa.list_(pa.string())), ("exact", pa.bool_()),
])
"""Columns of ``affected_customers.parquet`` (the contract notify reads)."""

ESTIMATE_REASONS = {
    "bulk": "Bulk API query job: the logs give row counts per result page, not record ids",
    "query": "REST/SOAP query seen only in Event Log Files (row counts; no ApiEvent with record ids for the session)",
    "api_records": "ApiEvent query whose Records list is missing or shorter than the rows returned",
    "report": "report seen only in the ELF Report log (row count; no ReportEvent listing the rows)",
    "account_ids": "Account record ids: the customer export has no AccountId column to map them to customers",
}


@dataclass
class ScopeResult:
    """What :func:`scope_incident` found: counts (no PII) and the paths of the files it wrote."""

    summary: dict[str, Any]
    parquet: Path
    csv: Path
    summary_path: Path
    tables: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


def scope_incident(incident: Incident, lake: Lake, customers_csv: Path, folder: Path,
                   now: dt.datetime | None = None) -> ScopeResult:
    """Scope ``incident`` over ``lake`` against the CRM export ``customers_csv``; write
    ``affected_customers.parquet`` / ``.csv`` and ``scope.json`` into ``folder``. Returns the
    summary (counts by object, field, brand, country, spend tier; the customer bracket; estimate
    reasons) and the paths."""
    if not customers_csv.is_file():
        raise ResponseError("customer export not found", file=str(customers_csv))
    if not incident.breach_start or not incident.breach_end:
        raise ResponseError(f"incident {incident.id} has no breach window (no events of its actors were found when it "
                            "was opened); open it with --since/--until around the activity")
    if not incident.observables.users:
        raise ResponseError(f"incident {incident.id} has no users to scope; add one with crmguard incident observe "
                            f"{incident.id} --user NAME")
    con = lake.connect()
    try:
        _load_customers(con, customers_csv)
        _select_activity(con, incident)
        _exact_ids(con)
        _estimates(con)
        objects = _objects(con)
        customers = _customers(con, incident.id)
        tables = _tables(con, objects)
        folder.mkdir(parents=True, exist_ok=True)
        parquet, csv_path = folder / "affected_customers.parquet", folder / "affected_customers.csv"
        _write(con, parquet, csv_path)
        con.execute(f"COPY (SELECT DISTINCT object, id AS record_id FROM exact_ids ORDER BY object, record_id) "
                    f"TO '{sql_str(str(folder / 'exposed_records.parquet'))}' (FORMAT parquet)")
        summary = _summary(con, incident, customers_csv, objects, customers, tables, now)
    except duckdb.Error as exc:
        raise ResponseError(f"scoping failed: {str(exc).splitlines()[0]}", file=str(customers_csv)) from exc
    finally:
        con.close()
    summary_path = folder / "scope.json"
    summary_path.write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return ScopeResult(summary, parquet, csv_path, summary_path, tables)


def _country_codes(names: list[str]) -> pa.Table:
    codes = []
    for name in names:
        try:
            codes.append(pycountry.countries.lookup(name.strip()).alpha_2)
        except LookupError:
            codes.append(name.strip() or None)
    return pa.table({"name": pa.array(names, pa.string()), "code": pa.array(codes, pa.string())})


def _load_customers(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    con.execute(f"CREATE OR REPLACE TEMP TABLE export_raw AS SELECT * FROM read_csv('{sql_str(str(path))}', "
                "header = true, all_varchar = true)")
    columns = {c for (c,) in con.execute("SELECT column_name FROM (DESCRIBE export_raw)").fetchall()}
    missing = [c for c in ("Id", *EXPORT_COLUMNS) if c not in columns]
    if missing:
        raise ResponseError(f"customer export lacks columns {', '.join(missing)}", file=str(path))
    # A few distinct country names: normalised in Python with pycountry, joined back in SQL.
    names = [n for (n,) in con.execute("SELECT DISTINCT MailingCountry FROM export_raw WHERE MailingCountry IS NOT NULL").fetchall()]
    con.register("country_names", _country_codes(names))
    account = "sf_id18(AccountId)" if "AccountId" in columns else "NULL::VARCHAR"
    tiers = " ".join(f"WHEN rnk <= ceil(n * {share}) THEN '{name}'" for name, share in SPEND_TIERS)
    con.execute(f"""CREATE OR REPLACE TEMP TABLE export AS
        SELECT *, CASE {tiers} ELSE 'other' END AS spend_tier FROM (
            SELECT sf_id18(e.Id) AS customer_id, {account} AS account_id, e.FirstName AS first_name,
                   e.LastName AS last_name, e.Email AS email, e.Phone AS phone, coalesce(c.code, e.MailingCountry) AS country,
                   lower(e.Language) AS language, e.Brand AS brand, try_cast(e.TotalSpend AS DOUBLE) AS total_spend,
                   row_number() OVER (ORDER BY try_cast(e.TotalSpend AS DOUBLE) DESC NULLS LAST, e.Id) AS rnk,
                   count(*) OVER () AS n
            FROM export_raw e LEFT JOIN country_names c ON c.name = e.MailingCountry)""")
    con.unregister("country_names")
    con.execute("DROP TABLE export_raw")


def _select_activity(con: duckdb.DuckDBPyConnection, inc: Incident) -> None:
    users = inc.observables.users
    start, end = parse_time(inc.breach_start), parse_time(inc.breach_end)
    ips = f"AND src_ip IN (SELECT unnest({sql_list(inc.observables.ips)}))" if inc.observables.ips else ""
    con.execute(f"""CREATE OR REPLACE TEMP TABLE acts AS
        SELECT event_id, time, event_type, action, lower(operation) AS operation, object, record_id, query, rows, uri,
               coalesce(session_id, '') AS session_id,
               CASE WHEN json_valid(raw) THEN json_extract_string(raw, '$.Records') END AS records_json,
               CASE WHEN json_valid(raw) THEN json_extract_string(raw, '$.ColumnHeaders') END AS headers
        FROM events
        WHERE time >= TIMESTAMPTZ '{start.isoformat()}' AND time <= TIMESTAMPTZ '{end.isoformat()}'
          AND source IN ('salesforce_elf', 'salesforce_rtem') AND coalesce(outcome, 'unknown') <> 'failure'
          AND (username IN (SELECT unnest({sql_list(users)})) OR user_id IN (SELECT unnest({sql_list(users)}))
               OR user_id IN (SELECT DISTINCT user_id FROM events WHERE username IN (SELECT unnest({sql_list(users)}))
                              AND user_id IS NOT NULL))
          {ips}""")  # type: ignore[union-attr]
    field_rows = [(k, c) for k, cols in FIELD_COLUMNS.items() for c in cols]
    con.register("field_map_src", pa.table({"key": [k for k, _ in field_rows], "col": [c for _, c in field_rows]}))
    con.execute("CREATE OR REPLACE TEMP TABLE field_map AS SELECT * FROM field_map_src")
    con.unregister("field_map_src")
    defaults = [(o, f) for o, fs in OBJECT_FIELDS.items() for f in fs]
    con.register("object_fields_src", pa.table({"object": [o for o, _ in defaults], "field": [f for _, f in defaults]}))
    con.execute("CREATE OR REPLACE TEMP TABLE object_fields AS SELECT object, list(field ORDER BY field) AS fields "
                "FROM object_fields_src GROUP BY object")
    con.unregister("object_fields_src")
    # The fields each event returned: the SOQL select list, else the report / list-view headers
    # (``Contact.Total_Spend__c`` -> ``Total_Spend__c``); NULL when the log names none.
    con.execute(r"""CREATE OR REPLACE TEMP TABLE act_fields AS
        SELECT event_id, CASE
            WHEN sel IS NOT NULL THEN list_filter(list_transform(string_split(sel, ','), lambda x: trim(x)), lambda x: x <> '')
            WHEN headers IS NOT NULL AND trim(headers, '[] ') <> '' THEN
                list_transform(string_split(trim(headers, '[] '), ','), lambda x: regexp_replace(trim(x), '^.*\.', ''))
            END AS fields
        FROM (SELECT *, nullif(regexp_extract(query, '(?is)^\s*select\s+(.+?)\s+from\s', 1), '') AS sel FROM acts)""")


def _exact_ids(con: duckdb.DuckDBPyConnection) -> None:
    prefixes = ", ".join(f"'{p}': '{o}'" for p, o in KEY_PREFIXES.items())
    con.execute(f"""CREATE OR REPLACE TEMP TABLE exact_ids AS
        SELECT DISTINCT event_id, sf_id18(id) AS id, MAP {{{prefixes}}}[left(id, 3)] AS object
        FROM (
            SELECT event_id, unnest(list_concat(
                coalesce(CASE WHEN json_valid(records_json) THEN json_extract_string(records_json, '$.records[*].Id') END, []),
                coalesce(CASE WHEN json_valid(records_json) THEN json_extract_string(records_json, '$.rows[*].datacells[*]') END, []),
                CASE WHEN record_id IS NOT NULL THEN [record_id] ELSE [] END)) AS id
            FROM acts)
        WHERE regexp_full_match(id, '[a-zA-Z0-9]{{15}}|[a-zA-Z0-9]{{18}}') AND left(id, 3) IN (SELECT unnest(map_keys(MAP {{{prefixes}}})))""")
    # Each exact record with the Salesforce fields it exposed (the object's personal fields when
    # the event named none: a record page view, a list of ids without headers).
    con.execute("""CREATE OR REPLACE TEMP TABLE exact_fields AS
        SELECT x.id, x.object, unnest(coalesce(f.fields, d.fields)) AS field, f.fields IS NULL AS field_estimated
        FROM exact_ids x JOIN act_fields f USING (event_id) LEFT JOIN object_fields d ON d.object = x.object""")


def _estimates(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(r"""CREATE OR REPLACE TEMP TABLE id_counts AS
        SELECT event_id, count(*) AS n FROM exact_ids GROUP BY event_id""")
    con.execute(r"""CREATE OR REPLACE TEMP TABLE estimates AS
        WITH bulk_sessions AS (SELECT DISTINCT session_id FROM acts WHERE event_type = 'BulkApi2'),
             api_sessions AS (SELECT DISTINCT session_id FROM acts WHERE event_type = 'ApiEvent'),
             report_sessions AS (SELECT DISTINCT session_id FROM acts WHERE event_type = 'ReportEvent')
        SELECT 'bulk' AS kind, object, record_id AS ref, sum(rows) AS rows, any_value(session_id) AS session_id
        FROM acts WHERE event_type = 'BulkApi2' AND operation IN ('query', 'queryall') AND rows > 0
        GROUP BY object, record_id
        UNION ALL
        SELECT 'bulk', object, regexp_extract(uri, '/jobs/query/([A-Za-z0-9]+)/results', 1), sum(rows), any_value(session_id)
        FROM acts WHERE event_type = 'RestApi' AND regexp_matches(uri, '/jobs/query/[A-Za-z0-9]+/results') AND rows > 0
          AND session_id NOT IN (SELECT session_id FROM bulk_sessions)
        GROUP BY 2, 3
        UNION ALL
        SELECT 'query', object, session_id, sum(rows), session_id
        FROM acts WHERE ((event_type = 'RestApi' AND uri LIKE '%/query%' AND uri NOT LIKE '%/jobs/%')
                         OR (event_type = 'API' AND operation IN ('query', 'querymore', 'queryall')))
          AND rows > 0 AND session_id NOT IN (SELECT session_id FROM api_sessions)
        GROUP BY object, session_id
        UNION ALL
        SELECT 'api_records', a.object, a.event_id, a.rows - coalesce(c.n, 0), a.session_id
        FROM acts a LEFT JOIN id_counts c USING (event_id)
        WHERE a.event_type = 'ApiEvent' AND a.action IN ('query', 'query_more') AND a.rows > coalesce(c.n, 0)
          AND NOT regexp_matches(coalesce(a.query, ''), '(?i)^\s*select\s+count\(\s*\)')
        UNION ALL
        SELECT 'report', object, record_id, max(rows), any_value(session_id)
        FROM acts WHERE event_type = 'Report' AND rows > 0 AND session_id NOT IN (SELECT session_id FROM report_sessions)
        GROUP BY object, record_id""")
    # Fields of a bulk job: the select list of a BulkApiResultEvent query on the same object in the
    # same session; otherwise every personal field of the object.
    con.execute(r"""CREATE OR REPLACE TEMP TABLE estimate_fields AS
        WITH bulk_queries AS (
            SELECT a.session_id, regexp_extract(a.query, '(?i)\sfrom\s+(\w+)', 1) AS object, any_value(f.fields) AS fields
            FROM acts a JOIN act_fields f USING (event_id)
            WHERE a.event_type = 'BulkApiResultEvent' AND f.fields IS NOT NULL GROUP BY 1, 2)
        SELECT e.kind, e.object, unnest(coalesce(q.fields, d.fields)) AS field, q.fields IS NULL AS field_estimated
        FROM (SELECT DISTINCT kind, object, session_id FROM estimates) e
        LEFT JOIN bulk_queries q ON e.kind = 'bulk' AND q.session_id = e.session_id AND lower(q.object) = lower(e.object)
        LEFT JOIN object_fields d ON d.object = e.object""")


def _objects(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    n = con.execute("SELECT count(*) FROM export").fetchall()[0][0]
    rows = con.execute("""
        WITH ex AS (SELECT object, count(DISTINCT id) AS exact FROM exact_ids GROUP BY object),
             es AS (SELECT object, max(rows) AS largest, sum(rows) AS estimated, list(DISTINCT kind ORDER BY kind) AS kinds
                    FROM estimates GROUP BY object)
        SELECT coalesce(ex.object, es.object) AS object, coalesce(ex.exact, 0) AS exact,
               coalesce(es.largest, 0) AS largest, coalesce(es.estimated, 0) AS estimated, coalesce(es.kinds, []) AS kinds
        FROM ex FULL JOIN es ON ex.object = es.object ORDER BY 1""").fetchall()
    out = []
    for obj, exact, largest, estimated, kinds in rows:
        upper = exact + estimated
        if obj in CUSTOMER_OBJECTS:
            upper = min(upper, n)
        out.append({"object": obj, "records_exact": int(exact), "records_lower": int(max(exact, largest)),
                    "records_upper": int(max(upper, exact)), "exact": not estimated,
                    "estimate_reasons": [ESTIMATE_REASONS[k] for k in kinds]})
    return out


def _customers(con: duckdb.DuckDBPyConnection, incident_id: str) -> dict[str, Any]:
    # Exact: the Contact id (or, with an AccountId column, the Account id) was seen in the logs.
    con.execute("""CREATE OR REPLACE TEMP TABLE exposed_exact AS
        WITH f AS (
            SELECT x.id, list(DISTINCT m.col) FILTER (WHERE m.col IS NOT NULL) AS cols
            FROM exact_fields x LEFT JOIN field_map m ON m.key = lower(x.field)
            WHERE x.object IN ('Contact', 'Account') GROUP BY x.id)
        -- Two equi-joins, not one join ON a OR b (which DuckDB runs as a nested loop).
        SELECT customer_id, list_distinct(flatten(list(coalesce(cols, [])))) AS fields FROM (
            SELECT e.customer_id, f.cols FROM export e JOIN f ON f.id = e.customer_id
            UNION ALL
            SELECT e.customer_id, f.cols FROM export e JOIN f ON f.id = e.account_id)
        GROUP BY customer_id""")
    n, exact = con.execute("SELECT (SELECT count(*) FROM export), (SELECT count(*) FROM exposed_exact)").fetchall()[0]
    unmapped = con.execute("""SELECT count(DISTINCT id) FROM exact_ids WHERE object = 'Account'
        AND id NOT IN (SELECT account_id FROM export WHERE account_id IS NOT NULL)""").fetchall()[0][0]
    largest, estimated = con.execute("""SELECT coalesce(max(rows), 0), coalesce(sum(rows), 0) FROM estimates
        WHERE object IN ('Contact', 'Account')""").fetchall()[0]
    lower = max(exact, unmapped, largest)
    upper = min(n, exact + unmapped + estimated)
    reasons = sorted({ESTIMATE_REASONS[k] for (k,) in con.execute(
        "SELECT DISTINCT kind FROM estimates WHERE object IN ('Contact', 'Account')").fetchall()}
        | ({ESTIMATE_REASONS["account_ids"]} if unmapped else set()))
    # Candidates: when the logs cannot say who, every other customer may be among them, exposed
    # through the fields the estimated reads (and unmapped Account reads) returned.
    con.execute("""CREATE OR REPLACE TEMP TABLE candidate_fields AS
        SELECT list(DISTINCT m.col ORDER BY m.col) FILTER (WHERE m.col IS NOT NULL) AS cols FROM (
            SELECT field FROM estimate_fields WHERE object IN ('Contact', 'Account')
            UNION ALL
            SELECT x.field FROM exact_fields x WHERE x.object = 'Account'
              AND x.id NOT IN (SELECT account_id FROM export WHERE account_id IS NOT NULL)) f
        LEFT JOIN field_map m ON m.key = lower(f.field)""")
    candidates = upper > exact
    con.execute(f"""CREATE OR REPLACE TEMP TABLE affected AS
        SELECT '{sql_str(incident_id)}' AS incident_id, e.customer_id, e.first_name, e.last_name, e.email, e.phone,
               e.country, e.language, e.brand, e.total_spend, e.spend_tier,
               list_sort(coalesce(x.fields, (SELECT cols FROM candidate_fields), [])) AS fields_exposed,
               x.customer_id IS NOT NULL AS exact
        FROM export e LEFT JOIN exposed_exact x USING (customer_id)
        WHERE x.customer_id IS NOT NULL OR {str(candidates).lower()}
        ORDER BY NOT exact, e.rnk""")
    return {"export_customers": int(n), "exact": int(exact), "lower": int(lower), "upper": int(upper),
            "candidates": int(n - exact) if candidates else 0, "unmapped_account_ids": int(unmapped),
            "is_estimate": bool(upper > exact), "estimate_reasons": reasons}


def _tables(con: duckdb.DuckDBPyConnection, objects: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    def rows(sql: str) -> list[dict[str, Any]]:
        return con.sql(sql).to_arrow_table().to_pylist()

    tables = {"objects": objects}
    for dim in ("brand", "country", "spend_tier"):
        tables[dim] = rows(f"""SELECT coalesce({dim}, '(none)') AS {dim}, count(*) FILTER (WHERE exact) AS exact,
            count(*) FILTER (WHERE NOT exact) AS candidates FROM affected GROUP BY 1 ORDER BY exact DESC, candidates DESC, 1""")
    cats = [(k, v) for k, v in FIELD_CATEGORIES.items()]
    con.register("category_src", pa.table({"key": [k for k, _ in cats], "category": [v for _, v in cats]}))
    tables["fields"] = rows("""
        WITH f AS (
            SELECT object, field, count(DISTINCT id) AS records_exact, bool_and(field_estimated) AS field_estimated,
                   false AS via_estimate FROM exact_fields GROUP BY object, field
            UNION ALL
            SELECT object, field, 0, bool_and(field_estimated), true FROM estimate_fields GROUP BY object, field)
        SELECT f.object, f.field, sum(records_exact)::BIGINT AS records_exact, bool_or(via_estimate) AS via_estimate,
               bool_and(field_estimated) AS field_estimated,
               coalesce(any_value(c.category), CASE WHEN f.object = 'User' THEN 'staff account data' END, 'other') AS category,
               any_value(m.cols) AS export_columns
        FROM f LEFT JOIN category_src c ON c.key = lower(f.field)
        LEFT JOIN (SELECT key, list(col ORDER BY col) AS cols FROM field_map GROUP BY key) m ON m.key = lower(f.field)
        WHERE lower(f.field) <> 'id'
        GROUP BY f.object, f.field ORDER BY f.object, f.field""")
    con.unregister("category_src")
    tables["customer_fields"] = rows("""SELECT col AS column, count(*) FILTER (WHERE exact) AS exact,
        count(*) FILTER (WHERE NOT exact) AS candidates
        FROM (SELECT unnest(fields_exposed) AS col, exact FROM affected) GROUP BY col ORDER BY exact DESC, col""")
    return tables


def _write(con: duckdb.DuckDBPyConnection, parquet: Path, csv_path: Path) -> None:
    for path, fmt, select in (
        (parquet, "FORMAT parquet", "*"),
        # CSV has no lists: fields_exposed is joined with ';'.
        (csv_path, "FORMAT csv, HEADER true", "* REPLACE (array_to_string(fields_exposed, ';') AS fields_exposed)"),
    ):
        tmp = path.with_name(path.name + ".tmp")
        con.execute(f"COPY (SELECT {select} FROM affected) TO '{sql_str(str(tmp))}' ({fmt})")
        tmp.replace(path)


def _summary(con: duckdb.DuckDBPyConnection, inc: Incident, customers_csv: Path, objects: list[dict[str, Any]],
             customers: dict[str, Any], tables: dict[str, list[dict[str, Any]]], now: dt.datetime | None) -> dict[str, Any]:
    events = con.execute("SELECT event_type, count(*) FROM acts GROUP BY 1 ORDER BY 1").fetchall()
    digest = hashlib.sha256(customers_csv.read_bytes()).hexdigest()
    return {
        "incident_id": inc.id,
        "scoped_at": iso(now or dt.datetime.now(dt.UTC)),
        "window": {"start": inc.breach_start, "end": inc.breach_end},
        "filters": {"users": inc.observables.users, "ips": inc.observables.ips},
        "events": {str(k): int(v) for k, v in events},
        "customers_export": {"path": str(customers_csv), "sha256": digest},
        "customers": customers,
        "records": {"exact": sum(o["records_exact"] for o in objects), "lower": sum(o["records_lower"] for o in objects),
                    "upper": sum(o["records_upper"] for o in objects)},
        "spend_tiers": {name: f"the {share:.0%} highest TotalSpend of the export" for name, share in SPEND_TIERS},
        "tables": tables,
    }
