"""Turning event batches into the exact bytes each product writes.

A *batch* is a dict: ``"ts"`` holds epoch milliseconds (numpy int64) and every other key a column
named after the vendor field (ELF column, RTEM field, or the Okta parts below), given as an Arrow
string array, numpy integers, a list of Python strings or one string for every row. Background
traffic and attack campaigns both produce batches, so they share one formatter per format:

- ELF: :func:`elf_table` fills the derived columns (timestamps, 18-character user id, org id,
  request id) and orders columns exactly as ``ELF_FIELDS``.
- RTEM: :func:`rtem_lines` renders SOQL-record JSON objects (``attributes`` first, then fields in
  alphabetical order, as a ``SELECT`` of every field returns them), one per line.
- Okta: :func:`okta_lines` renders System Log events from pre-rendered JSON fragments (actor,
  client, security context ...) that the fragment helpers below build once per user or IP.

JSON is assembled by concatenation without escaping; every dictionary feeding it is checked with
:func:`~crmguard.simulate.columns.check_json_safe`, and values built here never hold quotes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from crmguard.simulate import clock, geo, ids
from crmguard.simulate.columns import as_strings, const, join, lit, uuids
from crmguard.sources.salesforce.elf_fields import ELF_FIELDS

Batch = dict[str, Any]
_API = "60.0"

ELF_TYPES = ("Login", "Logout", "LoginAs", "API", "RestApi", "ApiTotalUsage", "BulkApi2", "Report", "ReportExport", "URI")
"""ELF event types the simulator writes (each one file per day)."""

RTEM_OBJECTS = ("LoginEvent", "ApiEvent", "BulkApiResultEvent", "ReportEvent", "ListViewEvent", "LoginAsEvent")
"""RTEM objects the simulator writes (each one NDJSON file per day)."""


@dataclass(frozen=True)
class Deferred:
    """A column computed only when its batch is written: ``build(rows)`` returns the values of
    logical rows ``rows``. Campaigns plan every event up front; deferring bulky values (the record
    ids an exfiltration returned) keeps those plans small however large the customer base."""

    build: Callable[[np.ndarray], pa.Array]
    rows: np.ndarray

    def take(self, selection: np.ndarray) -> Deferred:
        """The deferred values of a subset of rows."""
        return Deferred(self.build, self.rows[selection])

    def resolve(self) -> pa.Array:
        """Compute the values."""
        return self.build(self.rows)


def resolve(batch: Batch) -> Batch:
    """``batch`` with every :class:`Deferred` column computed."""
    return {k: v.resolve() if isinstance(v, Deferred) else v for k, v in batch.items()}


def size(batch: Batch) -> int:
    """Number of rows in ``batch``."""
    return len(batch["ts"])


def concat(batches: list[Batch]) -> Batch:
    """Stack batches of one kind into one (missing columns become empty strings)."""
    batches = [b for b in batches if size(b)]
    if not batches:
        return {"ts": np.zeros(0, np.int64)}
    if len(batches) == 1:
        return batches[0]
    keys: list[str] = []
    for b in batches:
        keys += [k for k in b if k not in keys]
    out: Batch = {"ts": np.concatenate([np.asarray(b["ts"], np.int64) for b in batches])}
    for k in keys:
        if k == "ts":
            continue
        parts = [as_strings(b[k], size(b)) if k in b else const("", size(b)) for b in batches]
        out[k] = pa.concat_arrays([p.cast(pa.string()) for p in parts])
    return out


def _order(batch: Batch) -> np.ndarray | None:
    """Permutation putting ``batch`` in time order, or None when it already is."""
    ts = np.asarray(batch["ts"], np.int64)
    if len(ts) < 2 or bool(np.all(ts[1:] >= ts[:-1])):
        return None
    return np.argsort(ts, kind="stable")


def _sorted(values: pa.Array, order: np.ndarray | None) -> pa.Array:
    return values if order is None else values.take(pa.array(order))


def _sorted_ts(ts: np.ndarray, order: np.ndarray | None) -> np.ndarray:
    return ts if order is None else ts[order]


# --- ELF -----------------------------------------------------------------------------------------

def elf_table(event_type: str, batch: Batch, org_id15: str, rng: np.random.Generator) -> tuple[np.ndarray, pa.Table]:
    """Render a batch as an ELF table for ``event_type``: columns exactly ``ELF_FIELDS[event_type]``,
    all strings, rows in time order. ``USER_ID`` must be given (15 characters). Returns (sorted
    timestamps, table)."""
    n = size(batch)
    ts = np.asarray(batch["ts"], np.int64)
    order = _order(batch)
    cols = []
    for name in ELF_FIELDS[event_type]:
        if name in batch:
            col = as_strings(batch[name], n)
            if name in ("REQUEST_ID", "USER_ID_DERIVED"):
                col = _fill_empty(col, partial(_derived, name, batch, n, rng))
        elif name == "EVENT_TYPE":
            col = const(event_type, n)
        elif name == "TIMESTAMP":
            col = clock.elf_timestamp(ts)
        elif name == "TIMESTAMP_DERIVED":
            col = clock.iso_z(ts)
        elif name == "ORGANIZATION_ID":
            col = const(org_id15, n)
        elif name in ("REQUEST_ID", "USER_ID_DERIVED"):
            col = _derived(name, batch, n, rng)
        else:
            col = const("", n)
        cols.append(_sorted(col, order))
    return _sorted_ts(ts, order), pa.table(cols, names=list(ELF_FIELDS[event_type]))


def _derived(name: str, batch: Batch, n: int, rng: np.random.Generator) -> pa.Array:
    if name == "REQUEST_ID":
        return ids.request_ids(rng, n)
    return ids.to18_column(as_strings(batch["USER_ID"], n))


def _fill_empty(col: pa.Array, make: Callable[[], pa.Array]) -> pa.Array:
    """``col`` with its empty values (rows of batches that did not give the column) computed."""
    empty = pc.equal(col, lit(""))
    if not pc.any(empty).as_py():
        return col
    return pc.if_else(empty, make(), col)


# --- RTEM ----------------------------------------------------------------------------------------

# Field kinds: s = string (required or defaulted), z = string, null when empty, n = number,
# b = boolean, x = always null.
_RTEM_COMMON = {"EvaluationTime": "n", "PolicyId": "x", "PolicyOutcome": "x", "RelatedEventIdentifier": "x"}
RTEM_FIELDS: dict[str, dict[str, str]] = {
    "LoginEvent": {
        "AdditionalInfo": "s", "ApiType": "s", "ApiVersion": "s", "Application": "s", "AuthMethodReference": "z",
        "AuthServiceId": "z", "Browser": "s", "CipherSuite": "s", "City": "z", "ClientVersion": "s", "Country": "z",
        "CountryIso": "z", "CreatedDate": "s", "EventDate": "s", "EventIdentifier": "s", "ForwardedForIp": "z",
        "HttpMethod": "s", "Id": "s", "LoginGeoId": "z", "LoginHistoryId": "s", "LoginKey": "s", "LoginLatitude": "n",
        "LoginLongitude": "n", "LoginSubType": "z", "LoginType": "s", "LoginUrl": "s", "Platform": "s",
        "PostalCode": "z", "SessionKey": "z", "SessionLevel": "s", "SourceIp": "s", "Status": "s",
        "Subdivision": "z", "TlsProtocol": "s", "UserId": "s", "UserType": "s", "Username": "s",
    },
    "ApiEvent": {
        "AdditionalInfo": "s", "ApiType": "s", "ApiVersion": "n", "Application": "s", "Client": "z",
        "ConnectedAppId": "z", "CreatedDate": "s", "ElapsedTime": "n", "EventDate": "s", "EventIdentifier": "s",
        "Id": "s", "LoginHistoryId": "z", "LoginKey": "s", "Operation": "s", "Platform": "s",
        "QueriedEntities": "s", "Query": "s", "Records": "s", "RowsProcessed": "n", "SessionKey": "z",
        "SessionLevel": "s", "SourceIp": "s", "UserAgent": "z", "UserId": "s", "Username": "s",
    },
    "BulkApiResultEvent": {
        "CreatedDate": "s", "EventDate": "s", "EventIdentifier": "s", "Id": "s", "LoginHistoryId": "z",
        "LoginKey": "s", "Query": "s", "SessionKey": "z", "SessionLevel": "s", "SourceIp": "s", "UserId": "s",
        "Username": "s",
    },
    "ReportEvent": {
        "ColumnHeaders": "s", "CreatedDate": "s", "DashboardId": "x", "DashboardName": "x", "Description": "z",
        "DisplayedFieldEntities": "z", "EventDate": "s", "EventIdentifier": "s", "EventSource": "s",
        "ExecutionIdentifier": "s", "ExportFileFormat": "z", "Format": "s", "GroupedColumnHeaders": "z", "Id": "s",
        "IsScheduled": "b", "LoginHistoryId": "z", "LoginKey": "s", "Name": "s", "NumberOfColumns": "n",
        "Operation": "s", "OwnerId": "s", "QueriedEntities": "s", "Records": "s", "ReportId": "s",
        "RowsProcessed": "n", "Scope": "s", "Sequence": "n", "SessionKey": "z", "SessionLevel": "s", "SourceIp": "s",
        "UserId": "s", "Username": "s",
    },
    "ListViewEvent": {
        "AppName": "s", "ColumnHeaders": "s", "CreatedDate": "s", "DeveloperName": "z", "EventDate": "s",
        "EventIdentifier": "s", "EventSource": "s", "ExecutionIdentifier": "s", "FilterCriteria": "z", "Id": "s",
        "ListViewId": "z", "LoginHistoryId": "z", "LoginKey": "s", "Name": "z", "NumberOfColumns": "n",
        "OrderBy": "s", "OwnerId": "s", "QueriedEntities": "s", "Records": "s", "RowsProcessed": "n", "Scope": "s",
        "Sequence": "n", "SessionKey": "z", "SessionLevel": "s", "SourceIp": "s", "UserId": "s", "Username": "s",
    },
    "LoginAsEvent": {
        "Application": "s", "Browser": "s", "CreatedDate": "s", "DelegatedOrganizationId": "s",
        "DelegatedUsername": "s", "EventDate": "s", "EventIdentifier": "s", "Id": "s", "LoginAsCategory": "s",
        "LoginHistoryId": "z", "LoginKey": "s", "LoginType": "s", "Platform": "s", "SessionKey": "z",
        "SessionLevel": "s", "SourceIp": "s", "TargetUrl": "z", "UserId": "s", "UserType": "s", "Username": "s",
    },
}
for _obj, _fields in RTEM_FIELDS.items():
    if _obj != "LoginAsEvent":  # LoginAsEvent has no transaction-security policy fields
        _fields.update(_RTEM_COMMON)

RTEM_DEFAULTS = {
    "AdditionalInfo": "{}", "ApiType": "N/A", "ApiVersion": "N/A", "ClientVersion": "N/A", "EvaluationTime": "0.0",
    "HttpMethod": "POST", "Id": "000000000000000AAA", "SessionLevel": "STANDARD", "UserType": "Standard",
    "Platform": "Unknown", "Application": "N/A", "EventSource": "Lightning", "IsScheduled": "false", "Sequence": "1",
    "Scope": "organization", "AppName": "one:one", "LoginAsCategory": "OrgAdmin", "LoginType": "Login As",
    "TlsProtocol": "TLS 1.3", "CipherSuite": "TLS_AES_256_GCM_SHA384",
}


def rtem_lines(obj: str, batch: Batch, rng: np.random.Generator) -> tuple[np.ndarray, pa.StringArray]:
    """Render a batch as RTEM ``obj`` records, one JSON object per line (each ending in a newline),
    sorted by time. Returns (sorted timestamps, lines). ``EventDate``, ``CreatedDate`` (a few
    seconds later), ``EventIdentifier`` and ``Id`` are filled unless given."""
    n = size(batch)
    ts = np.asarray(batch["ts"], np.int64)
    order = _order(batch)
    fields = RTEM_FIELDS[obj]
    auto = {
        "EventDate": lambda: clock.iso_sf(ts),
        "CreatedDate": lambda: clock.iso_sf(ts + rng.integers(900, 9000, n)),
        "EventIdentifier": lambda: uuids(rng, n),
    }
    parts: list[pa.Array | str] = [
        f'{{"attributes":{{"type":"{obj}","url":"/services/data/v{_API}/sobjects/{obj}/000000000000000AAA"}}'
    ]
    for name in sorted(fields):
        kind = fields[name]
        key = f',"{name}":'
        if kind == "x" or (kind in "zn" and name not in batch and name not in RTEM_DEFAULTS):
            _lit(parts, key + "null")
            continue
        if name in batch:
            col = as_strings(batch[name], n)
        elif name in auto:
            col = auto[name]()
        elif name in RTEM_DEFAULTS:
            col = None
            value = RTEM_DEFAULTS[name]
            _lit(parts, key + (value if kind in "nb" else f'"{value}"'))
            continue
        else:
            raise ValueError(f"{obj}.{name} needs a value")
        if kind in "nb":
            _lit(parts, key)
            parts.append(pc.if_else(pc.equal(col, lit("")), lit(RTEM_DEFAULTS.get(name, "null")), col))
        elif kind == "z":
            _lit(parts, key)
            parts.append(pc.if_else(pc.equal(col, lit("")), lit("null"), join('"', col, '"')))
        else:
            _lit(parts, key + '"')
            parts.append(pc.if_else(pc.equal(col, lit("")), lit(RTEM_DEFAULTS[name]), col) if name in RTEM_DEFAULTS else col)
            _lit(parts, '"')
    _lit(parts, "}\n")
    return _sorted_ts(ts, order), _sorted(join(*parts), order)


def _lit(parts: list[pa.Array | str], text: str) -> None:
    if parts and isinstance(parts[-1], str):
        parts[-1] += text
    else:
        parts.append(text)


# --- Okta ----------------------------------------------------------------------------------------

OKTA_EVENTS: dict[str, tuple[str, str, str]] = {
    "user.session.start": ("User login to Okta", "core.user_auth.login_success", "INFO"),
    "user.session.end": ("User logout from Okta", "core.user_auth.logout_success", "INFO"),
    "user.authentication.sso": ("User single sign on to app", "app.auth.sso", "INFO"),
    "user.authentication.auth_via_mfa": ("Authentication of user via MFA", "core.user.factor.attempt_success", "INFO"),
    "user.mfa.factor.activate": ("Activate factor for user", "core.user.factor.activate", "INFO"),
    "user.mfa.factor.deactivate": ("Reset factor for user", "core.user.factor.deactivate", "NOTICE"),
    "user.mfa.factor.reset_all": ("Reset all factors for user", "core.user.factor.reset_all", "INFO"),
    "user.account.reset_password": ("Fired when the user's Okta password is reset", "core.user.config.password_reset",
                                    "INFO"),
    "user.account.lock": ("Max sign in attempts exceeded", "core.user_auth.account_locked", "WARN"),
    "policy.evaluate_sign_on": ("Evaluation of sign-on policy", "", "INFO"),
    "app.oauth2.as.token.grant.access_token": ("OAuth2 access token is granted", "", "INFO"),
    "security.threat.detected": ("Request from suspicious actor", "", "WARN"),
}


def okta_lines(batch: Batch, rng: np.random.Generator) -> tuple[np.ndarray, pa.StringArray]:
    """Render a batch as Okta System Log events (JSON objects without separators), sorted by time.

    Batch columns: ``eventType``, ``actor``, ``client``, ``authenticationContext``,
    ``securityContext``, ``ipChain``, ``target`` and ``debugData`` (JSON fragments),
    ``result`` and ``reason`` (outcome; empty reason is null), ``transaction`` (id); optional
    ``uuid``, ``displayMessage``, ``legacyEventType``, ``severity``.
    """
    n = size(batch)
    ts = np.asarray(batch["ts"], np.int64)
    order = _order(batch)
    et = as_strings(batch["eventType"], n)
    types = list(OKTA_EVENTS)
    known = pc.index_in(et, value_set=pa.array(types))
    if known.null_count:
        raise ValueError(f"unknown Okta eventType in {set(pc.filter(et, pc.is_null(known)).to_pylist())}")

    def lookup(k: int) -> pa.Array:
        return pa.array([OKTA_EVENTS[t][k] for t in types]).take(known)

    result = as_strings(batch["result"], n)
    ok = pc.is_in(result, value_set=pa.array(["SUCCESS", "ALLOW"]))
    severity = as_strings(batch["severity"], n) if "severity" in batch else pc.if_else(ok, lookup(2), lit("WARN"))
    legacy = as_strings(batch["legacyEventType"], n) if "legacyEventType" in batch else lookup(1)
    reason = as_strings(batch.get("reason", ""), n)
    lines = join(
        '{"actor":', as_strings(batch["actor"], n),
        ',"authenticationContext":', as_strings(batch["authenticationContext"], n),
        ',"client":', as_strings(batch["client"], n),
        ',"debugContext":{"debugData":', as_strings(batch["debugData"], n),
        '},"displayMessage":"', as_strings(batch["displayMessage"], n) if "displayMessage" in batch else lookup(0),
        '","eventType":"', et,
        '","legacyEventType":', pc.if_else(pc.equal(legacy, lit("")), lit("null"), join('"', legacy, '"')),
        ',"outcome":{"reason":', pc.if_else(pc.equal(reason, lit("")), lit("null"), join('"', reason, '"')),
        ',"result":"', result,
        '"},"published":"', clock.iso_z(ts),
        '","request":{"ipChain":[', as_strings(batch["ipChain"], n),
        ']},"securityContext":', as_strings(batch["securityContext"], n),
        ',"severity":"', severity,
        '","target":', as_strings(batch["target"], n),
        ',"transaction":{"detail":{},"id":"', as_strings(batch["transaction"], n),
        '","type":"WEB"},"uuid":"', as_strings(batch["uuid"], n) if "uuid" in batch else uuids(rng, n, version=1),
        '","version":"0"}',
    )
    return _sorted_ts(ts, order), _sorted(lines, order)


def okta_actor(okta_id: str, login: str, name: str, kind: str = "User") -> str:
    """Okta ``actor`` object for a user (or another principal ``kind``)."""
    return (f'{{"alternateId":"{login}","detailEntry":null,"displayName":"{name}","id":"{okta_id}",'
            f'"type":"{kind}"}}')


def okta_geo(city: geo.City) -> str:
    """Okta ``geographicalContext`` object of ``city``."""
    return (f'{{"city":"{city.name}","country":"{geo.COUNTRY_NAMES[city.country]}","geolocation":'
            f'{{"lat":{city.lat},"lon":{city.lon}}},"postalCode":"{city.postal}","state":"{city.state}"}}')


def okta_client(raw_agent: str, browser: str, os_name: str, device: str, ip: str, city: geo.City) -> str:
    """Okta ``client`` object: device, geolocation, IP and user agent."""
    return (f'{{"device":"{device}","geographicalContext":{okta_geo(city)},"id":null,"ipAddress":"{ip}",'
            f'"userAgent":{{"browser":"{browser}","os":"{os_name}","rawUserAgent":"{raw_agent}"}},"zone":"null"}}')


def okta_security(network: geo.Network, is_proxy: bool) -> str:
    """Okta ``securityContext`` object for an IP in ``network``."""
    return (f'{{"asNumber":{network.asn},"asOrg":"{network.as_org.lower()}","domain":"{network.domain}",'
            f'"isProxy":{"true" if is_proxy else "false"},"isp":"{network.isp.lower()}"}}')


def okta_ip_chain(ip: str, city: geo.City) -> str:
    """One element of Okta ``request.ipChain``."""
    return f'{{"geographicalContext":{okta_geo(city)},"ip":"{ip}","source":null,"version":"V4"}}'


def okta_target(okta_id: str, alternate: str, name: str, kind: str, detail: str = "null") -> str:
    """One element of an Okta ``target`` list."""
    return f'{{"alternateId":"{alternate}","detailEntry":{detail},"displayName":"{name}","id":"{okta_id}","type":"{kind}"}}'


def okta_policy_target(policy_id: str, rule_id: str) -> str:
    """Okta ``target`` list of a sign-on policy evaluation (the policy and its rule)."""
    policy = okta_target(policy_id, "unknown", "Default Policy", "PolicyEntity", '{"policyType":"OktaSignOn"}')
    rule = okta_target(rule_id, policy_id, "Default Rule", "PolicyRule")
    return f"[{policy},{rule}]"


def okta_sso_target(app_id: str, user_target: str) -> str:
    """Okta ``target`` list of an SSO to Salesforce: the app instance and the app user."""
    return f"[{okta_target(app_id, 'Salesforce', 'Salesforce', 'AppInstance')},{user_target}]"


def okta_auth_context(session_ids: pa.Array, credential: pa.Array | str, n: int) -> pa.StringArray:
    """Okta ``authenticationContext`` objects; ``credential`` is the pre-rendered
    ``"credentialProvider":...,"credentialType":...`` pair."""
    return join(
        '{"authenticationProvider":', _provider(credential, n), ',"authenticationStep":0,', as_strings(credential, n),
        ',"externalSessionId":"', as_strings(session_ids, n), '","interface":null,"issuer":null}',
    )


def _provider(credential: pa.Array | str, n: int) -> pa.Array:
    cred = as_strings(credential, n)
    return pc.if_else(pc.match_substring(cred, "OKTA_CREDENTIAL_PROVIDER"), lit('"OKTA_AUTHENTICATION_PROVIDER"'),
                      pc.if_else(pc.match_substring(cred, "OTP"), lit('"FACTOR_PROVIDER"'), lit("null")))


CRED_PASSWORD = '"credentialProvider":"OKTA_CREDENTIAL_PROVIDER","credentialType":"PASSWORD"'
CRED_PUSH = '"credentialProvider":"OKTA_CREDENTIAL_PROVIDER","credentialType":"OTP"'
CRED_NONE = '"credentialProvider":null,"credentialType":null'
CRED_ASSERTION = '"credentialProvider":null,"credentialType":"ASSERTION"'

NEGATIVE_BEHAVIORS = ("{New Geo-Location=NEGATIVE, New Device=NEGATIVE, New IP=NEGATIVE, New State=NEGATIVE, "
                      "New Country=NEGATIVE, Velocity=NEGATIVE, New City=NEGATIVE}")


def behaviors(new_geo: bool, new_device: bool, new_ip: bool, velocity: bool = False) -> str:
    """Okta ``debugData.behaviors`` text (a Java map rendered as a string)."""
    def v(flag: bool) -> str:
        return "POSITIVE" if flag else "NEGATIVE"
    return (f"{{New Geo-Location={v(new_geo)}, New Device={v(new_device)}, New IP={v(new_ip)}, "
            f"New State={v(new_geo)}, New Country={v(new_geo)}, Velocity={v(velocity)}, New City={v(new_geo)}}}")


def debug_data(request_ids: pa.Array, uris: pa.Array | str, extra: pa.Array | str, n: int) -> pa.StringArray:
    """Okta ``debugData`` objects: request id, URI and pre-rendered extra members (``,"k":"v"``...)."""
    uri = as_strings(uris, n)
    return join('{"requestId":"', as_strings(request_ids, n), '","requestUri":"', uri, '","url":"', uri, '?"',
                as_strings(extra, n), "}")


def risk_extra(level: str, reasons: str, behavior: str, threat: bool = False) -> str:
    """Pre-rendered debugData members carrying Okta's risk and behaviour signals."""
    return (f',"behaviors":"{behavior}","logOnlySecurityData":"{{\\"risk\\":{{\\"reasons\\":\\"{reasons}\\",'
            f'\\"level\\":\\"{level}\\"}},\\"behaviors\\":{{}}}}","threatSuspected":"{"true" if threat else "false"}"')


# --- Records (ids returned, as RTEM serialises them) ---------------------------------------------

def api_records(entity: str | pa.Array, record_ids: pa.Array, counts: np.ndarray, done: np.ndarray) -> pa.StringArray:
    """ApiEvent ``Records`` JSON strings (already escaped for embedding in a JSON string):
    ``{"totalSize":k,"done":..,"records":[{"attributes":{"type":E},"Id":..},...]}`` for consecutive
    groups of ``counts[i]`` ids; ``entity`` is one object name or one per id."""
    item = join('{\\"attributes\\":{\\"type\\":\\"', entity, '\\"},\\"Id\\":\\"', record_ids, '\\"}')
    joined = _group_join(item, counts)
    done_txt = pa.array(np.where(done, "true", "false"))
    return join('{\\"totalSize\\":', pa.array(counts.astype(np.int64)).cast(pa.string()), ',\\"done\\":', done_txt,
                ',\\"records\\":[', joined, "]}")


def report_records(record_ids: pa.Array, counts: np.ndarray) -> pa.StringArray:
    """ReportEvent / ListViewEvent ``Records`` JSON strings (escaped):
    ``{"totalSize":k,"rows":[{"datacells":[id]},...]}`` for consecutive groups of ``counts[i]`` ids."""
    item = join('{\\"datacells\\":[\\"', record_ids, '\\"]}')
    joined = _group_join(item, counts)
    return join('{\\"totalSize\\":', pa.array(counts.astype(np.int64)).cast(pa.string()), ',\\"rows\\":[', joined, "]}")


def _group_join(items: pa.Array, counts: np.ndarray) -> pa.Array:
    offsets = np.zeros(len(counts) + 1, np.int32)
    np.cumsum(counts, out=offsets[1:])
    lists = pa.ListArray.from_arrays(pa.array(offsets), items)
    return pc.binary_join(lists, lit(","))
