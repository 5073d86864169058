"""``IntelDB.enrich_sql`` on DuckDB over Parquet events: the SQL path fills the enrichment columns,
values a source already gave win, and the lake's ``events`` view can be enriched as is."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from crmguard.intel import ENRICHED_COLUMNS, IntelDB
from crmguard.lake import Lake
from crmguard.schema import COLUMN_NAMES, EVENT_SCHEMA
from crmguard.sources.sql import connect

T0 = dt.datetime(2025, 3, 4, 8, 0, tzinfo=dt.UTC)
TOR_EXIT = "185.220.101.1"


def event(event_id: str, **values: Any) -> dict[str, Any]:
    return {"time": T0, "event_id": event_id, "source": "salesforce_elf", **values}


EVENTS = [
    # Salesforce gives only the address: everything comes from the intel
    event("sf-tor", src_ip=TOR_EXIT),
    event("sf-tor-again", src_ip=TOR_EXIT),
    event("sf-vpn-v6", src_ip="2001:db8:100::5"),
    event("sf-plain", src_ip="1.0.0.7"),
    event("sf-nowhere", src_ip="8.8.8.8"),
    event("sf-no-ip", src_ip=None),
    # Okta states ASN, ISP, country and proxy flag itself: those win; the kind is still added
    event("okta-tor", source="okta", src_ip=TOR_EXIT, src_asn=60729, src_isp="Stiftung Erneuerbare Freiheit",
          src_country="Germany", is_anonymizer=False),
    # partly stated: the missing ones are filled
    event("okta-partial", source="okta", src_ip="198.51.100.8", src_country="Netherlands"),
]


@pytest.fixture
def con(tmp_path: Path) -> duckdb.DuckDBPyConnection:
    """A crmguard connection with a view ``ev`` over a Parquet file of :data:`EVENTS`."""
    path = tmp_path / "events.parquet"
    rows = [{name: e.get(name) for name in COLUMN_NAMES} for e in EVENTS]
    pq.write_table(pa.Table.from_pylist(rows, schema=EVENT_SCHEMA), path)
    con = connect()
    con.execute(f"CREATE VIEW ev AS SELECT * FROM read_parquet('{path}')")
    return con


def enriched(con: duckdb.DuckDBPyConnection, db: IntelDB, relation: str = "ev") -> dict[str, dict[str, Any]]:
    table = con.sql(db.enrich_sql(con, relation)).to_arrow_table()
    return {row["event_id"]: row for row in table.to_pylist()}


def pick(row: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(row[name] for name, _ in ENRICHED_COLUMNS)


def test_enrichment_fills_columns_from_intel_and_keeps_stated_values(con, db: IntelDB) -> None:
    rows = enriched(con, db)
    assert len(rows) == len(EVENTS)
    assert pick(rows["sf-tor"]) == (True, "tor", 205100, "F3NETZE", "DE")
    assert pick(rows["sf-tor-again"]) == pick(rows["sf-tor"])
    assert pick(rows["sf-vpn-v6"]) == (True, "vpn", 64502, "V6NET", "DE")
    assert pick(rows["sf-plain"]) == (False, None, 13335, "CLOUDFLARENET", "US")
    assert pick(rows["sf-nowhere"]) == (False, None, None, None, None)
    assert pick(rows["sf-no-ip"]) == (None, None, None, None, None)
    assert pick(rows["okta-tor"]) == (False, "tor", 60729, "Stiftung Erneuerbare Freiheit", "Germany")
    assert pick(rows["okta-partial"]) == (True, "vpn", 64500, "VPN-A, Inc.", "Netherlands")


def test_enriched_rows_keep_every_column_in_order_and_add_anonymizer_kind_last(con, db: IntelDB) -> None:
    result = con.sql(db.enrich_sql(con, "ev"))
    assert result.columns == [*COLUMN_NAMES, "anonymizer_kind"]
    types = dict(zip(result.columns, (str(t) for t in result.types), strict=True))
    assert (types["src_asn"], types["is_anonymizer"], types["src_country"]) == ("BIGINT", "BOOLEAN", "VARCHAR")
    row = next(r for r in result.to_arrow_table().to_pylist() if r["event_id"] == "sf-tor")
    assert row["time"] == T0 and row["source"] == "salesforce_elf"


def test_an_existing_anonymizer_kind_column_wins_too(con, db: IntelDB) -> None:
    con.execute("CREATE VIEW ev2 AS SELECT * EXCLUDE (is_anonymizer), NULL::BOOLEAN AS is_anonymizer, "
                "CASE WHEN event_id = 'sf-tor' THEN 'proxy' END AS anonymizer_kind FROM ev")
    rows = enriched(con, db, "ev2")
    assert (rows["sf-tor"]["anonymizer_kind"], rows["sf-tor-again"]["anonymizer_kind"]) == ("proxy", "tor")
    assert rows["okta-tor"]["is_anonymizer"] is True  # the view dropped Okta's value


def test_a_subquery_relation_and_a_second_call_on_the_same_connection(con, db: IntelDB) -> None:
    sql = db.enrich_sql(con, "(SELECT event_id, src_ip FROM ev WHERE source = 'okta')")
    assert sorted(r[0] for r in con.execute(f"SELECT event_id FROM ({sql})").fetchall()) == ["okta-partial", "okta-tor"]
    tables = con.execute("SELECT count(*) FROM intel_anonymizers").fetchall()
    db.install(con)  # already installed: nothing reloaded
    assert con.execute("SELECT count(*) FROM intel_anonymizers").fetchall() == tables


def test_the_lake_events_view_is_enriched_as_is(tmp_path: Path, db: IntelDB) -> None:
    lake = Lake(tmp_path / "lake")
    empty = lake.connect()
    assert empty.sql(db.enrich_sql(empty, "events")).fetchall() == []
    partition = lake.events_dir / "source=salesforce_elf" / "date=2025-03-04"
    partition.mkdir(parents=True)
    rows = [{name: e.get(name) for name in COLUMN_NAMES} for e in EVENTS if e["source"] == "salesforce_elf"]
    pq.write_table(pa.Table.from_pylist(rows, schema=EVENT_SCHEMA), partition / "part-test.parquet")
    con = lake.connect()
    con.execute(f"CREATE OR REPLACE TEMP VIEW events_enriched AS {db.enrich_sql(con, 'events')}")
    flagged = con.execute("SELECT event_id FROM events_enriched WHERE is_anonymizer ORDER BY event_id").fetchall()
    assert flagged == [("sf-tor",), ("sf-tor-again",), ("sf-vpn-v6",)]


def test_networks_are_found_by_hash_joins_not_a_nested_loop(con, db: IntelDB) -> None:
    # A range join (num BETWEEN lo AND hi) was planned as a nested loop join when the distinct-address
    # side looked small: 13 minutes for 1M events against 6M networks. The equi-join per prefix
    # length always hashes. (Checks EXPLAIN text; update the strings if DuckDB renames operators.)
    plan = con.execute(f"EXPLAIN {db.enrich_sql(con, 'ev')}").fetchall()[0][1]
    assert "lo = lo" in plan
    assert "lo <= num" not in plan and "IE Join" not in plan and "Nested Loop Join" not in plan


def test_rules_can_use_cidr_match_next_to_the_enriched_columns(con, db: IntelDB) -> None:
    sql = db.enrich_sql(con, "ev")
    hits = con.execute(
        f"SELECT event_id FROM ({sql}) WHERE cidr_match(src_ip, '185.220.0.0/16') AND anonymizer_kind = 'tor' "
        "ORDER BY event_id"
    ).fetchall()
    assert hits == [("okta-tor",), ("sf-tor",), ("sf-tor-again",)]
