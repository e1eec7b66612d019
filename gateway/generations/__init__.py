"""`GET /api/v1/generation`: one generation's ledger record, as OpenRouter shows it."""
