"""Read-only catalog API: models and their endpoints in OpenRouter's shapes."""
