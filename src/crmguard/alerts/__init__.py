"""Alert state: SQLite store with dedup."""
