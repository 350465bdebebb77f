"""busgw: an API gateway for vehicle fleets, on Twisted.

This module holds the version only; it never imports the reactor.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
