"""Quality of service: rate limits (``qos/ratelimit/router``)."""
