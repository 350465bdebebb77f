"""The bus role: health report, event outbox to the central, inbound data."""
