"""The ledger's database schema (SQLAlchemy models) and its exact, portable column types."""
