"""Builders for API traffic of one client (an integration, an admin tool, an attacker): logins,
REST and SOAP calls, Bulk API 2.0 query jobs, with every log row they leave (ELF Login, RestApi,
API, BulkApi2, ApiTotalUsage; RTEM LoginEvent, ApiEvent, BulkApiResultEvent).

The client is fixed for a call group (:class:`Client`); per-call values are arrays, so the same
code serves a nightly sync of hundreds of thousands of rows and a handful of attacker requests.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from crmguard.simulate import formats, geo, ids
from crmguard.simulate.background import API, Events, lognormal_ints, windows
from crmguard.simulate.columns import const, doubles, join, lit, tokens
from crmguard.simulate.org import API_VERSION


@dataclass(frozen=True)
class Client:
    """Who calls and from where: Salesforce user, source IP (``client_ip`` is what ELF shows in
    CLIENT_IP, e.g. ``Salesforce.com IP`` for Salesforce-hosted connectors), user agent, connected
    app and session keys."""

    user15: str
    user18: str
    username: str
    ip: str
    city: geo.City
    agent: str
    app_name: str = "N/A"
    app_id15: str = ""
    app_id18: str = ""
    client_name: str = ""
    session_key: str = ""
    login_key: str = ""
    history: str = ""
    client_ip: str = ""
    login_url: str = "login.salesforce.com"

    @property
    def elf_ip(self) -> str:
        """The ELF ``CLIENT_IP`` value."""
        return self.client_ip or self.ip


def login(out: Events, rng: np.random.Generator, ts: np.ndarray, c: Client, *, login_type: str, sub_type: str,
          uri: str, rtem_type: str, rtem_sub_type: str, status: pa.Array | str = "LOGIN_NO_ERROR",
          rtem_status: pa.Array | str = "Success", api_type: str = "", api_version: str = "9998.0",
          use_token: str = "", browser: str = "Unknown", platform: str = "Unknown") -> None:
    """Login rows (ELF Login + RTEM LoginEvent) for the client at times ``ts``."""
    n = len(ts)
    if n == 0:
        return
    out.add("elf/Login", {
        "ts": ts, "USER_ID": c.user15, "USER_ID_DERIVED": c.user18, "LOGIN_KEY": c.login_key, "USER_TYPE": "Standard",
        "RUN_TIME": lognormal_ints(rng, 150, 0.5, n), "CPU_TIME": lognormal_ints(rng, 30, 0.5, n),
        "DB_TOTAL_TIME": lognormal_ints(rng, 90_000_000, 0.6, n), "URI": uri, "LOGIN_TYPE": login_type,
        "BROWSER_TYPE": c.agent, "API_TYPE": api_type, "API_VERSION": api_version, "USER_NAME": c.username,
        "TLS_PROTOCOL": "TLSv1.3", "CIPHER_SUITE": "TLS_AES_256_GCM_SHA384", "USE_API_TOKEN": use_token,
        "LOGIN_URL": c.login_url, "COUNTRY_CODE": c.city.country, "LOGIN_SUB_TYPE": sub_type,
        "CLIENT_IP": c.elf_ip, "LOGIN_STATUS": status, "SOURCE_IP": c.ip,
    })
    out.add("rtem/LoginEvent", {
        "ts": ts, "UserId": c.user18, "Username": c.username, "LoginKey": c.login_key, "LoginHistoryId": c.history,
        "SourceIp": c.ip, "Status": rtem_status, "Application": c.app_name, "Browser": browser, "Platform": platform,
        "LoginType": rtem_type, "LoginSubType": rtem_sub_type, "LoginUrl": c.login_url, "City": c.city.name,
        "Country": geo.COUNTRY_NAMES[c.city.country], "CountryIso": c.city.country, "PostalCode": c.city.postal,
        "Subdivision": c.city.state, "LoginLatitude": repr(c.city.lat), "LoginLongitude": repr(c.city.lon),
        "ApiType": "SOAP Partner" if api_type == "P" else "N/A",
    })


def rest(out: Events, rng: np.random.Generator, ts: np.ndarray, c: Client, *, method: pa.Array | str,
         uri: pa.Array | str, entity: pa.Array | str, rows: np.ndarray, status: pa.Array | str | np.ndarray = "200",
         resource: pa.Array | str = "/query", family: str = "REST") -> dict:
    """REST calls (ELF RestApi + ApiTotalUsage). Returns the RestApi batch."""
    n = len(ts)
    if n == 0:
        return {}
    batch = {
        "ts": ts, "USER_ID": c.user15, "USER_ID_DERIVED": c.user18, "SESSION_KEY": c.session_key,
        "LOGIN_KEY": c.login_key, "USER_TYPE": "Standard", "REQUEST_STATUS": "",
        "REQUEST_ID": ids.request_ids(rng, n), "RUN_TIME": lognormal_ints(rng, 250, 0.8, n),
        "CPU_TIME": lognormal_ints(rng, 60, 0.8, n), "DB_TOTAL_TIME": lognormal_ints(rng, 60_000_000, 1.0, n),
        "URI": uri, "ENTITY_NAME": entity, "METHOD": method, "MEDIA_TYPE": "application/json", "STATUS_CODE": status,
        "USER_AGENT": c.agent, "ROWS_PROCESSED": np.asarray(rows, np.int64),
        "NUMBER_FIELDS": rng.integers(4, 30, n), "DB_BLOCKS": lognormal_ints(rng, 500, 1.0, n),
        "DB_CPU_TIME": lognormal_ints(rng, 20, 0.8, n), "REQUEST_SIZE": rng.integers(0, 600, n),
        "RESPONSE_SIZE": np.asarray(rows, np.int64) * rng.integers(250, 450, n) + 300,
        "CONNECTED_APP_ID": c.app_id15, "CLIENT_IP": c.elf_ip,
    }
    out.add("elf/RestApi", batch)
    out.add("elf/ApiTotalUsage", {
        "ts": ts, "USER_ID": c.user15, "USER_ID_DERIVED": c.user18, "REQUEST_ID": batch["REQUEST_ID"],
        "API_FAMILY": family, "API_VERSION": API_VERSION, "API_RESOURCE": resource, "CLIENT_NAME": c.client_name,
        "CLIENT_IP": c.elf_ip, "CONNECTED_APP_ID": c.app_id15, "ENTITY_NAME": entity, "HTTP_METHOD": method,
        "STATUS_CODE": status, "COUNTS_AGAINST_API_LIMIT": "1", "URI": uri,
    })
    return batch


def soap(out: Events, rng: np.random.Generator, ts: np.ndarray, c: Client, *, method: pa.Array | str,
         entity: pa.Array | str, rows: np.ndarray) -> dict:
    """SOAP API calls (ELF API + ApiTotalUsage). Returns the API batch."""
    n = len(ts)
    if n == 0:
        return {}
    rows = np.asarray(rows, np.int64)
    batch = {
        "ts": ts, "USER_ID": c.user15, "USER_ID_DERIVED": c.user18, "SESSION_KEY": c.session_key,
        "LOGIN_KEY": c.login_key, "USER_TYPE": "Standard", "REQUEST_ID": ids.request_ids(rng, n),
        "RUN_TIME": lognormal_ints(rng, 400, 0.8, n), "CPU_TIME": lognormal_ints(rng, 150, 0.8, n),
        "DB_TOTAL_TIME": lognormal_ints(rng, 200_000_000, 0.8, n), "URI": "Api", "API_TYPE": "P",
        "API_VERSION": API_VERSION, "CLIENT_NAME": c.client_name, "METHOD_NAME": method, "ENTITY_NAME": entity,
        "ROWS_PROCESSED": rows, "REQUEST_SIZE": rng.integers(300, 900, n), "RESPONSE_SIZE": rows * rng.integers(250, 450, n) + 500,
        "EXCEPTION_MESSAGE": "", "DB_BLOCKS": lognormal_ints(rng, 5000, 1.0, n), "DB_CPU_TIME": lognormal_ints(rng, 100, 0.8, n),
        "CLIENT_IP": c.elf_ip,
    }
    out.add("elf/API", batch)
    out.add("elf/ApiTotalUsage", {
        "ts": ts, "USER_ID": c.user15, "USER_ID_DERIVED": c.user18, "REQUEST_ID": batch["REQUEST_ID"],
        "API_FAMILY": "SOAP", "API_VERSION": API_VERSION, "API_RESOURCE": method, "CLIENT_NAME": c.client_name,
        "CLIENT_IP": c.elf_ip, "CONNECTED_APP_ID": c.app_id15, "ENTITY_NAME": entity, "HTTP_METHOD": "POST",
        "STATUS_CODE": "200", "COUNTS_AGAINST_API_LIMIT": "1", "URI": f"/services/Soap/u/{API_VERSION}",
    })
    return batch


def api_event(out: Events, rng: np.random.Generator, ts: np.ndarray, c: Client, *, api_type: str,
              operation: pa.Array | str, entity: pa.Array | str, query: pa.Array | str,
              records: pa.Array | formats.Deferred, rows: np.ndarray) -> None:
    """RTEM ApiEvent rows for queries (``records`` from :func:`formats.api_records`)."""
    n = len(ts)
    if n == 0:
        return
    out.add("rtem/ApiEvent", {
        "ts": ts + 2, "UserId": c.user18, "Username": c.username, "SessionKey": c.session_key, "LoginKey": c.login_key,
        "LoginHistoryId": c.history, "SourceIp": c.ip, "ApiType": api_type, "ApiVersion": API_VERSION,
        "Application": c.app_name, "Client": c.client_name, "ConnectedAppId": c.app_id18,
        "ElapsedTime": lognormal_ints(rng, 300, 0.9, n), "Operation": operation, "QueriedEntities": entity,
        "Query": query, "Records": records, "RowsProcessed": doubles(np.asarray(rows, np.int64)), "UserAgent": c.agent,
    })


def paged_rows(total: int, page: int) -> np.ndarray:
    """Row counts of the pages of a ``total``-row result read ``page`` rows at a time."""
    pages = max(1, -(-total // page))
    rows = np.full(pages, page, np.int64)
    rows[-1] = total - page * (pages - 1)
    return rows


def bulk_create(out: Events, rng: np.random.Generator, t0: int, c: Client, *, job_id15: str, entity: str,
                polls: int, family: str = "Bulk API 2.0") -> int:
    """Create a Bulk API 2.0 query job (POST) and poll its status; returns the time of the last call."""
    gaps = rng.integers(1500, 6000, 1 + polls)
    ts = t0 + np.cumsum(gaps) - gaps[0]
    base = f"{API}/jobs/query"
    rest(out, rng, ts, c, method=pa.array(["POST"] + ["GET"] * polls), uri=pa.array([base] + [f"{base}/{job_id15}"] * polls),
         entity=entity, rows=np.zeros(1 + polls, np.int64), resource="/jobs/query", family=family)
    return int(ts[-1])


def bulk_pages(out: Events, rng: np.random.Generator, ts: np.ndarray, c: Client, *, job_id15: str, entity: str,
               query: str, rows: np.ndarray, page: int, family: str = "Bulk API 2.0", operation: str = "query") -> None:
    """Download result pages of a Bulk API 2.0 query job at times ``ts`` (``rows`` per page):
    RestApi/ApiTotalUsage per GET, plus ELF BulkApi2 and RTEM BulkApiResultEvent per page."""
    k = len(ts)
    if k == 0:
        return
    base = f"{API}/jobs/query/{job_id15}/results?maxRecords={page}"
    locators = tokens(rng, k, 12)
    uris = pc.if_else(pa.array(np.arange(k) == 0), lit(base), join(base, "&locator=", locators))
    rows = np.asarray(rows, np.int64)
    rest(out, rng, ts, c, method="GET", uri=uris, entity=entity, rows=rows, resource="/jobs/query", family=family)
    out.add("elf/BulkApi2", {
        "ts": ts + 1, "USER_ID": c.user15, "USER_ID_DERIVED": c.user18, "SESSION_KEY": c.session_key,
        "LOGIN_KEY": c.login_key, "USER_TYPE": "Standard", "REQUEST_STATUS": "", "URI": uris,
        "RUN_TIME": lognormal_ints(rng, 2000, 0.6, k), "CPU_TIME": lognormal_ints(rng, 400, 0.6, k),
        "DB_TOTAL_TIME": lognormal_ints(rng, 900_000_000, 0.6, k), "JOB_ID": job_id15, "ENTITY_TYPE": entity,
        "OPERATION_TYPE": operation, "ROWS_PROCESSED": rows, "NUMBER_FAILURES": "0", "MESSAGE": "",
        "RESPONSE_SIZE": rows * rng.integers(250, 400, k), "CLIENT_IP": c.elf_ip,
    })
    out.add("rtem/BulkApiResultEvent", {
        "ts": ts + 2, "UserId": c.user18, "Username": c.username, "SessionKey": c.session_key,
        "LoginKey": c.login_key, "LoginHistoryId": c.history, "SourceIp": c.ip, "Query": query,
    })


def bulk_delete(out: Events, rng: np.random.Generator, ts: int, c: Client, *, job_id15: str, entity: str,
                family: str = "Bulk API 2.0") -> None:
    """Delete a Bulk API 2.0 query job (DELETE ``/jobs/query/<id>``, status 204)."""
    rest(out, rng, np.array([ts]), c, method="DELETE", uri=f"{API}/jobs/query/{job_id15}", entity=entity,
         rows=np.zeros(1, np.int64), status="204", resource="/jobs/query", family=family)


def bulk_query(out: Events, rng: np.random.Generator, t0: int, c: Client, *, job_id15: str, entity: str, query: str,
               total: int, page: int, gap_ms: tuple[int, int] = (1500, 6000), delete: bool = False,
               family: str = "Bulk API 2.0", operation: str = "query") -> int:
    """A whole Bulk API 2.0 query job (``query``, or ``queryAll`` to include deleted records):
    create, polls, every result page ``gap_ms`` apart, and optionally a DELETE of the job.
    Returns the time of the last call."""
    t = bulk_create(out, rng, t0, c, job_id15=job_id15, entity=entity, polls=int(rng.integers(1, 5)), family=family)
    pages = paged_rows(total, page)
    gaps = rng.integers(gap_ms[0], gap_ms[1], len(pages))
    ts = t + np.cumsum(gaps)
    bulk_pages(out, rng, ts, c, job_id15=job_id15, entity=entity, query=query, rows=pages, page=page, family=family,
               operation=operation)
    t = int(ts[-1])
    if delete:
        t += int(rng.integers(gap_ms[0], gap_ms[1]))
        bulk_delete(out, rng, t, c, job_id15=job_id15, entity=entity, family=family)
    return t


def query_pages(out: Events, rng: np.random.Generator, t0: int, c: Client, *, entity: str, query: str,
                indices: np.ndarray, ids_of: Callable[[np.ndarray], pa.Array], page: int, gap_ms: tuple[int, int],
                api: str = "REST", soql_type: str = "REST") -> int:
    """A query read page by page (REST ``/query`` then ``/query/<locator>-<offset>``, or SOAP
    ``query``/``queryMore``), logging every page and an ApiEvent listing the ids it returned.

    ``indices`` are the records returned, ``ids_of`` maps record indices to ids; the ApiEvent
    ``Records`` are built only when the day is written. Returns the time of the last page.
    """
    total = len(indices)
    pages = paged_rows(total, page) if total else np.array([0], np.int64)
    k = len(pages)
    gaps = rng.integers(gap_ms[0], gap_ms[1], k)
    ts = t0 + np.cumsum(gaps) - gaps[0]
    first = np.arange(k) == 0
    offsets = np.concatenate([[0], np.cumsum(pages)[:-1]])
    if api == "REST":
        locator = "01g" + tokens(rng, 1, 12)[0].as_py()
        uri = pc.if_else(pa.array(first), lit(f"{API}/query"),
                         join(f"{API}/query/{locator}-", pa.array(offsets).cast(pa.string())))
        rest(out, rng, ts, c, method="GET", uri=uri, entity=entity, rows=pages, resource="/query")
    else:
        soap(out, rng, ts, c, method=pc.if_else(pa.array(first), lit("query"), lit("queryMore")),
             entity=entity, rows=pages)
    operation = pc.if_else(pa.array(first), lit("Query"), lit("QueryMore"))
    done = np.arange(k) == k - 1

    def records(rows: np.ndarray) -> pa.Array:
        counts = pages[rows]
        if not total:
            return const('{\\"totalSize\\":0,\\"done\\":true,\\"records\\":[]}', len(rows))
        flat = indices[windows(offsets[rows], counts, total)]
        return formats.api_records(entity, ids_of(flat), counts, done[rows])

    api_event(out, rng, ts, c, api_type=soql_type, operation=operation, entity=entity, query=query,
              records=formats.Deferred(records, np.arange(k)), rows=pages)
    return int(ts[-1])
