"""The central role: the fleet poller, fleet-wide endpoints, event ingest
and the dashboard (:mod:`busd.central.role` composes them)."""
