"""Identifiers as Salesforce and Okta write them.

A Salesforce id is a 3-character key prefix (``003`` Contact, ``001`` Account, ``005`` User ...),
a 2-character pod, a reserved ``0`` and a 9-digit base-62 counter: 15 case-sensitive characters.
The 18-character form appends a checksum of three characters, each encoding which of five
characters are upper case; both forms are computed here, vectorised.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from crmguard.simulate.columns import ALNUM, base62, from_matrix, tokens

_SUFFIX = np.frombuffer(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ012345", np.uint8)
_WEIGHTS = np.array([1, 2, 4, 8, 16], np.int64)

KEY_PREFIX = {
    "Account": "001",
    "Contact": "003",
    "User": "005",
    "Lead": "00Q",
    "Case": "500",
    "Report": "00O",
    "Organization": "00D",
    "Profile": "00e",
    "PermissionSet": "0PS",
    "ConnectedApplication": "0H4",
    "OauthToken": "0CQ",
    "BulkJob": "750",
    "QueryLocator": "01g",
    "LoginHistory": "0Ya",
    "LoginGeo": "04F",
    "SamlSsoConfig": "0LE",
    "ListView": "00B",
    "SetupAuditTrail": "0Ym",
}


def checksum(mat15: np.ndarray) -> np.ndarray:
    """The 3 checksum characters (uint8 matrix ``(n, 3)``) of 15-character ids given as bytes."""
    upper = ((mat15 >= ord("A")) & (mat15 <= ord("Z"))).astype(np.int64).reshape(-1, 3, 5)
    return _SUFFIX[upper @ _WEIGHTS]


def id_matrix(prefix: str, pod: str, counters: np.ndarray) -> np.ndarray:
    """18-character ids (uint8 matrix ``(n, 18)``; the first 15 columns are the 15-character id)
    for ``counters`` under key ``prefix`` on ``pod``."""
    counters = np.asarray(counters, dtype=np.int64)
    mat = np.empty((len(counters), 18), np.uint8)
    mat[:, 0:3] = np.frombuffer(prefix.encode(), np.uint8)
    mat[:, 3:5] = np.frombuffer(pod.encode(), np.uint8)
    mat[:, 5] = ord("0")
    mat[:, 6:15] = base62(counters, 9)
    mat[:, 15:18] = checksum(mat[:, :15])
    return mat


def strings(mat: np.ndarray, width: int = 18) -> pa.StringArray:
    """String array of the first ``width`` (15 or 18) characters of an id matrix."""
    return from_matrix(mat[:, :width])


def to18(id15: str) -> str:
    """The 18-character form of one 15-character Salesforce id."""
    mat = np.frombuffer(id15.encode(), np.uint8).reshape(1, 15)
    return id15 + checksum(mat).tobytes().decode()


def new_id(prefix: str, pod: str, counter: int) -> tuple[str, str]:
    """One (15-char, 18-char) Salesforce id."""
    raw = id_matrix(prefix, pod, np.array([counter]))[0].tobytes().decode()
    return raw[:15], raw


def to18_column(arr: pa.Array) -> pa.StringArray:
    """Vectorised :func:`to18`: 15-character ids become 18, empty values stay empty."""
    values = arr.to_numpy(zero_copy_only=False).astype("S18")
    lengths = np.char.str_len(values)
    mat = np.frombuffer(values.tobytes(), np.uint8).reshape(-1, 18).copy()
    fifteen = lengths == 15
    if fifteen.any():
        mat[fifteen, 15:18] = checksum(mat[fifteen, :15])
    out_len = np.where(fifteen, 18, lengths)
    return from_matrix(mat, out_len)


def okta_ids(rng: np.random.Generator, n: int, prefix: str = "00u") -> pa.StringArray:
    """Okta object ids: ``prefix`` followed by 17 random alphanumerics (20 characters)."""
    mat = np.empty((n, 20), np.uint8)
    mat[:, :3] = np.frombuffer(prefix.encode(), np.uint8)
    mat[:, 3:] = ALNUM[rng.integers(0, len(ALNUM), (n, 17))]
    return from_matrix(mat)


_KEY_ALPHABET = np.frombuffer(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/", np.uint8)
_REQ_ALPHABET = np.frombuffer(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-", np.uint8)


def session_keys(rng: np.random.Generator, n: int) -> pa.StringArray:
    """Salesforce ``SESSION_KEY`` / ``LOGIN_KEY`` values: 16 base-64 characters."""
    return tokens(rng, n, 16, _KEY_ALPHABET)


def request_ids(rng: np.random.Generator, n: int) -> pa.StringArray:
    """Salesforce ``REQUEST_ID`` values: 22 URL-safe base-64 characters."""
    return tokens(rng, n, 22, _REQ_ALPHABET)


def okta_session_ids(rng: np.random.Generator, n: int) -> pa.StringArray:
    """Okta ``externalSessionId`` values (``102`` + 22 characters)."""
    mat = np.empty((n, 25), np.uint8)
    mat[:, :3] = np.frombuffer(b"102", np.uint8)
    mat[:, 3:] = _REQ_ALPHABET[rng.integers(0, len(_REQ_ALPHABET), (n, 22))]
    return from_matrix(mat)


def okta_request_ids(rng: np.random.Generator, n: int) -> pa.StringArray:
    """Okta ``transaction.id`` / ``debugData.requestId`` values (27 characters)."""
    return tokens(rng, n, 27, _REQ_ALPHABET)
