"""The ledger: generation events, their queue and the writer that lands them in the database."""
