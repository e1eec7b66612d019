"""The ops dashboard: static page and script served by the gateway, reading the stats API."""
