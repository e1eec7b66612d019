"""The ops board's read side: stats rollups, the stats API and what it computes."""
