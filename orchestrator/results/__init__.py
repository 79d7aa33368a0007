"""A sweep's results: summaries, tables and figures."""
