"""IP enrichment from offline data files: anonymizer networks (TOR exits, VPN, hosting), ASN,
AS organisation and country, looked up in DuckDB SQL.

- :func:`update` downloads public lists into the intel folder (``<home>/intel``) as
  ``anonymizers.csv``, ``asn.csv`` and ``manifest.json`` (formats in :mod:`.formats`,
  docs/intel.md).
- :func:`load` reads that folder into an :class:`IntelDB`, whose ``enrich_sql(con, "events")``
  adds ``is_anonymizer``, ``anonymizer_kind``, ``src_asn``, ``src_isp`` and ``src_country`` to
  events, and ``lookup(ips)`` answers for a few addresses.
- :func:`register_macros` defines the IP macros, among them ``cidr_match(ip, cidr)`` for Sigma's
  ``cidr`` modifier.
"""

from crmguard.intel.db import ENRICHED_COLUMNS, IntelDB, load
from crmguard.intel.formats import (
    ANONYMIZERS_FILE,
    ANONYMIZING_KINDS,
    ASN_FILE,
    KINDS,
    MANIFEST_FILE,
    IntelError,
    Problem,
    intel_folder,
)
from crmguard.intel.macros import register_macros
from crmguard.intel.updater import DEFAULT_SOURCES, Fetcher, Source, UpdateReport, update, urllib_fetch

__all__ = [
    "ANONYMIZERS_FILE",
    "ANONYMIZING_KINDS",
    "ASN_FILE",
    "DEFAULT_SOURCES",
    "ENRICHED_COLUMNS",
    "KINDS",
    "MANIFEST_FILE",
    "Fetcher",
    "IntelDB",
    "IntelError",
    "Problem",
    "Source",
    "UpdateReport",
    "intel_folder",
    "load",
    "register_macros",
    "update",
    "urllib_fetch",
]
