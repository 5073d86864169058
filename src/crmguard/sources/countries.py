"""Country names and codes -> ISO 3166-1 alpha-2, as one DuckDB macro (``country_iso``).

Salesforce logs state the sign-in country as an ISO code (``COUNTRY_CODE``, ``CountryIso``); Okta's
``client.geographicalContext.country`` states it as an English name ("United States", "South
Korea"). Rules compare countries across sources, so every source stores alpha-2 codes.

The lookup is built once from ``pycountry`` (names, official names, common names, alpha-2 and
alpha-3 codes) plus :data:`ALIASES`, the short names GeoIP databases (and so Okta) use that ISO
does not list ("Russia", "Ivory Coast", "Macau" ...). Keys are compared without case, accents or
surrounding blanks. A value that is none of these — a misspelling, a region such as "Europe", a
name for a territory ISO does not code — is kept as given rather than dropped, so the evidence
stays readable and a rule can still compare it with itself.
"""

from __future__ import annotations

import unicodedata
from functools import cache

import pycountry

ALIASES: dict[str, str] = {
    # English short names used by GeoIP databases (MaxMind GeoLite2, which Okta's geolocation
    # follows) and by people, where ISO's name differs.
    "Russia": "RU", "Macedonia": "MK", "Brunei": "BN", "Cape Verde": "CV", "Ivory Coast": "CI",
    "DR Congo": "CD", "Democratic Republic of the Congo": "CD", "Congo Republic": "CG",
    "Palestine": "PS", "Palestinian Territory": "PS", "Micronesia": "FM", "Vatican City": "VA",
    "Vatican": "VA", "Turkey": "TR", "Swaziland": "SZ", "Macau": "MO", "Burma": "MM",
    "St Kitts and Nevis": "KN", "St Vincent and Grenadines": "VC", "St Lucia": "LC", "St Martin": "MF",
    "Saint Martin": "MF", "St Barthelemy": "BL", "St Pierre and Miquelon": "PM", "Saint Helena": "SH",
    "St Helena": "SH", "East Timor": "TL", "U.S. Virgin Islands": "VI", "Aland": "AX", "Sint Maarten": "SX",
    "Falkland Islands": "FK", "Bonaire, Sint Eustatius, and Saba": "BQ", "U.S. Minor Outlying Islands": "UM",
    "Pitcairn Islands": "PN", "Cocos [Keeling] Islands": "CC", "Republic of Korea": "KR", "Korea": "KR",
    "UK": "GB", "Great Britain": "GB", "The Netherlands": "NL", "Holland": "NL",
    # Not ISO 3166-1, but the code every GeoIP database and Okta use for Kosovo.
    "Kosovo": "XK",
}


# DuckDB's trim() removes Unicode space separators (category Zs) and nothing else (not tabs or
# line breaks); the Python twin must trim the same characters to agree with the macro.
_SPACES = "".join(ch for ch in map(chr, range(0x3001)) if unicodedata.category(ch) == "Zs")


def country_key(name: str) -> str:
    """The lookup key of a country ``name`` or code: lower case, accents and spaces at the ends
    removed (as DuckDB's ``trim`` does), typographic apostrophes made plain. Must agree with :data:`KEY_SQL`."""
    decomposed = unicodedata.normalize("NFD", name.strip(_SPACES).replace("\u2019", "'"))
    # DuckDB's strip_accents drops every mark (categories Mn, Mc, Me), not only combining ones.
    return "".join(ch for ch in decomposed if not unicodedata.category(ch).startswith("M")).lower()


KEY_SQL = "lower(strip_accents(replace(trim(x), '\u2019', '''')))"
"""The same key as :func:`country_key`, in DuckDB SQL over argument ``x``."""


@cache
def lookup() -> dict[str, str]:
    """Return every known country key (see :func:`country_key`) -> ISO 3166-1 alpha-2 code."""
    table: dict[str, str] = {}
    for country in pycountry.countries:
        for attr in ("alpha_2", "alpha_3", "name", "official_name", "common_name"):
            value = getattr(country, attr, None)
            if value:
                table.setdefault(country_key(value), country.alpha_2)
    for name, code in ALIASES.items():
        table.setdefault(country_key(name), code)
    return table


def to_alpha2(name: str | None) -> str | None:
    """Python twin of the ``country_iso`` macro: the alpha-2 code of ``name``, else ``name`` without
    spaces at the ends (None and empty stay None)."""
    if name is None or not name.strip(_SPACES):
        return None
    return lookup().get(country_key(name), name.strip(_SPACES))


def macro_sql() -> list[str]:
    """Return the statements defining the ``country_iso(x)`` macro: alpha-2 code of a country name or
    code, the trimmed value itself when unknown, NULL for NULL or blank.

    The table is a MAP held in a session variable rather than a joined table (a join would turn every
    source mapping into a join and stop DuckDB streaming the records through it) or a literal in the
    macro (planning a thousand-entry literal at every use costs tens of milliseconds per query). The
    variable is built from a table of the database, which every cursor sees: setting it on a new
    cursor takes a few milliseconds, where parsing the literal took 20-30.
    """
    entries = ", ".join(f"('{_lit(k)}', '{v}')" for k, v in sorted(lookup().items()))
    return [
        f"CREATE OR REPLACE TABLE crmguard_country_names AS SELECT * FROM (VALUES {entries}) t(name, code)",
        "SET VARIABLE crmguard_countries = "
        "(SELECT map(list(name ORDER BY name), list(code ORDER BY name)) FROM crmguard_country_names)",
        "CREATE OR REPLACE MACRO country_iso(x) AS CASE WHEN NULLIF(trim(x), '') IS NOT NULL THEN "
        f"coalesce(map_extract_value(getvariable('crmguard_countries'), {KEY_SQL}), trim(x)) END",
    ]


def _lit(text: str) -> str:
    return text.replace("'", "''")
