"""Country names and codes -> ISO 3166-1 alpha-2 (``country_iso`` macro and its Python twin)."""

from __future__ import annotations

from collections.abc import Iterator

import duckdb
import pycountry
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crmguard.sources.countries import ALIASES, country_key, lookup, to_alpha2
from crmguard.sources.sql import connect


@pytest.fixture(scope="module")
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    connection = connect()
    yield connection
    connection.close()


def iso(con: duckdb.DuckDBPyConnection, values: list[str | None]) -> list[str | None]:
    """``country_iso`` of each value, in order, evaluated by DuckDB in one query."""
    rows = con.execute(
        "SELECT country_iso(v) FROM unnest(?::VARCHAR[]) WITH ORDINALITY AS t(v, i) ORDER BY i", [values]
    ).fetchall()
    return [r[0] for r in rows]


@pytest.mark.parametrize(
    ("name", "code"),
    [
        # What Okta's geographicalContext writes (GeoIP English names) ...
        ("United States", "US"), ("France", "FR"), ("United Kingdom", "GB"), ("South Korea", "KR"),
        ("Russia", "RU"), ("Vietnam", "VN"), ("Hong Kong", "HK"), ("Taiwan", "TW"), ("Iran", "IR"),
        ("Czechia", "CZ"), ("Ivory Coast", "CI"), ("Macau", "MO"), ("Turkey", "TR"), ("Kosovo", "XK"),
        ("Hashemite Kingdom of Jordan", "JO"), ("Republic of Lithuania", "LT"), ("DR Congo", "CD"),
        ("Congo Republic", "CG"), ("Bonaire, Sint Eustatius, and Saba", "BQ"), ("Åland", "AX"),
        # ... ISO names, official and common names ...
        ("Russian Federation", "RU"), ("Viet Nam", "VN"), ("Korea, Republic of", "KR"),
        ("French Republic", "FR"), ("Côte d'Ivoire", "CI"), ("Türkiye", "TR"), ("Curaçao", "CW"),
        # ... codes, and the spellings people type.
        ("FR", "FR"), ("fr", "FR"), ("FRA", "FR"), ("usa", "US"), ("  united states  ", "US"),
        ("UNITED STATES", "US"), ("Cote d\u2019Ivoire", "CI"), ("Sao Tome and Principe", "ST"),
    ],
)
def test_names_and_codes_become_alpha2(con: duckdb.DuckDBPyConnection, name: str, code: str) -> None:
    assert iso(con, [name]) == [code]
    assert to_alpha2(name) == code


@pytest.mark.parametrize("value", ["Country", "Europe", "Narnia", "Untied States", "Anonymous Proxy"])
def test_unknown_names_stay_as_given(con: duckdb.DuckDBPyConnection, value: str) -> None:
    assert iso(con, [value, f" {value} "]) == [value, value]


def test_null_and_blank_are_null(con: duckdb.DuckDBPyConnection) -> None:
    assert iso(con, [None, "", "   "]) == [None, None, None]


def test_every_iso_country_and_alias_is_known(con: duckdb.DuckDBPyConnection) -> None:
    names = [getattr(c, a) for c in pycountry.countries for a in ("alpha_2", "alpha_3", "name", "official_name",
                                                                    "common_name") if getattr(c, a, None)]
    expected = [lookup()[country_key(n)] for n in names]
    assert iso(con, names) == expected
    assert iso(con, list(ALIASES)) == list(ALIASES.values())
    # An alias never overrides what ISO says a name means.
    assert {country_key(a) for a in ALIASES}.isdisjoint(
        {country_key(getattr(c, a)) for c in pycountry.countries for a in ("name", "official_name", "common_name")
         if getattr(c, a, None)}
    )
    assert {v for v in lookup().values()} <= {c.alpha_2 for c in pycountry.countries} | {"XK"}


# Characters unassigned in Python's Unicode database (DuckDB's is newer), the dotted capital I (whose
# lower case DuckDB and Python spell differently) and NUL (DuckDB's strip_accents ends the string there
# when it has accents) are left out: no country name holds them.
TEXT = st.characters(exclude_categories=("Cs", "Cn"), exclude_characters="\u0130\x00")


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.none(), st.text(TEXT, max_size=30),
                          st.sampled_from(sorted({c.name for c in pycountry.countries}))), max_size=20))
def test_sql_macro_agrees_with_python(con: duckdb.DuckDBPyConnection, values: list[str | None]) -> None:
    # The macro keys with DuckDB's lower/strip_accents/trim and the table with Python's: they must agree,
    # for country names and for arbitrary text alike (idempotent too: a code maps to itself).
    assert iso(con, values) == [to_alpha2(v) for v in values]
    codes = iso(con, values)
    assert iso(con, codes) == [to_alpha2(c) for c in codes]
