"""The bus's health report: pure check evaluators (``checks``), the
periodic role serving ``/health`` (``service``) and the central's clock
as seen in its Date headers (``clockref``).

Importing this package imports nothing: ``busd.roles`` imports the
modules it needs.
"""

__all__: list[str] = []
