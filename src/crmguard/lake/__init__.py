"""The Parquet lake of normalised events and its quarantine."""

from crmguard.lake.store import CommitCounts, Lake, Merge

__all__ = ["CommitCounts", "Lake", "Merge"]
