"""Time zones and the timestamp formats each log uses.

Offsets come from built-in daylight-saving rules (EU, US, none) rather than the system tz
database, so the same seed gives the same bytes on every machine.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa

from crmguard.simulate.columns import DIGITS2, DIGITS3, from_matrix

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
MINUTE_MS = 60_000
EPOCH = dt.date(1970, 1, 1)


def day_start_ms(day: dt.date) -> int:
    """Milliseconds since the epoch at 00:00 UTC of ``day``."""
    return (day - EPOCH).days * DAY_MS


def _nth_sunday(year: int, month: int, n: int) -> dt.date:
    first = dt.date(year, month, 1)
    first_sunday = first + dt.timedelta(days=(6 - first.weekday()) % 7)
    return first_sunday + dt.timedelta(weeks=n - 1)


def _last_sunday(year: int, month: int) -> dt.date:
    nxt = dt.date(year + (month == 12), month % 12 + 1, 1)
    last = nxt - dt.timedelta(days=1)
    return last - dt.timedelta(days=(last.weekday() + 1) % 7)


def utc_offset_minutes(rule: str, standard_minutes: int, day: dt.date) -> int:
    """UTC offset in minutes at local midday of ``day`` for a zone with ``standard_minutes`` offset
    and daylight-saving ``rule`` (``"EU"``, ``"US"`` or ``"none"``)."""
    if rule == "EU":
        summer = _last_sunday(day.year, 3) <= day < _last_sunday(day.year, 10)
    elif rule == "US":
        summer = _nth_sunday(day.year, 3, 2) <= day < _nth_sunday(day.year, 11, 1)
    else:
        summer = False
    return standard_minutes + (60 if summer else 0)


def _date_digits(ms: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    days = (ms // DAY_MS).astype("datetime64[D]")
    years = days.astype("datetime64[Y]").astype(np.int64) + 1970
    months = days.astype("datetime64[M]").astype(np.int64) % 12 + 1
    dom = (days - days.astype("datetime64[M]")).astype(np.int64) + 1
    return years, months, dom, ms % DAY_MS


def _fill(mat: np.ndarray, ms: np.ndarray, layout: dict[str, int]) -> None:
    years, months, dom, of_day = _date_digits(ms)
    mat[:, layout["Y"] : layout["Y"] + 2] = DIGITS2[years // 100]
    mat[:, layout["Y"] + 2 : layout["Y"] + 4] = DIGITS2[years % 100]
    mat[:, layout["m"] : layout["m"] + 2] = DIGITS2[months]
    mat[:, layout["d"] : layout["d"] + 2] = DIGITS2[dom]
    mat[:, layout["H"] : layout["H"] + 2] = DIGITS2[of_day // HOUR_MS]
    mat[:, layout["M"] : layout["M"] + 2] = DIGITS2[of_day // MINUTE_MS % 60]
    mat[:, layout["S"] : layout["S"] + 2] = DIGITS2[of_day // 1000 % 60]
    mat[:, layout["f"] : layout["f"] + 3] = DIGITS3[of_day % 1000]


def _format(ms: np.ndarray, template: bytes, layout: dict[str, int]) -> pa.StringArray:
    ms = np.asarray(ms, dtype=np.int64)
    mat = np.empty((len(ms), len(template)), np.uint8)
    mat[:] = np.frombuffer(template, np.uint8)
    _fill(mat, ms, layout)
    return from_matrix(mat)


_ISO = {"Y": 0, "m": 5, "d": 8, "H": 11, "M": 14, "S": 17, "f": 20}


def elf_timestamp(ms: np.ndarray) -> pa.StringArray:
    """ELF ``TIMESTAMP``: ``YYYYMMDDHHMMSS.fff`` (UTC)."""
    return _format(ms, b"YYYYmmddHHMMSS.fff", {"Y": 0, "m": 4, "d": 6, "H": 8, "M": 10, "S": 12, "f": 15})


def iso_z(ms: np.ndarray) -> pa.StringArray:
    """ISO 8601 with a ``Z``: ``YYYY-MM-DDTHH:MM:SS.fffZ`` (ELF ``TIMESTAMP_DERIVED``, Okta ``published``)."""
    return _format(ms, b"YYYY-mm-ddTHH:MM:SS.fffZ", _ISO)


def iso_sf(ms: np.ndarray) -> pa.StringArray:
    """Salesforce API datetime: ``YYYY-MM-DDTHH:MM:SS.fff+0000`` (RTEM ``EventDate``)."""
    return _format(ms, b"YYYY-mm-ddTHH:MM:SS.fff+0000", _ISO)


def iso_sf_one(ms: int) -> str:
    """:func:`iso_sf` of a single instant."""
    return iso_sf(np.array([ms]))[0].as_py()


def iso_z_one(ms: int) -> str:
    """:func:`iso_z` of a single instant."""
    return iso_z(np.array([ms]))[0].as_py()
