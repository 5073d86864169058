"""Detection engine: Sigma rules compiled to DuckDB SQL, correlations, and a reference evaluator."""
