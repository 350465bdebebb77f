"""Edge security: CORS (``security/cors``)."""
