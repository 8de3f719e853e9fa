"""The customer service over HTTP: ``ROUTERS`` (``routes``) and the request bodies they validate (``schemas``)."""

from __future__ import annotations

from .routes import ROUTERS, DepsDep

__all__ = ["ROUTERS", "DepsDep"]
