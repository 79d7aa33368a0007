"""Trial kinds: Ray-free adapters (worker-side runners, driver-side records) and their registry."""
