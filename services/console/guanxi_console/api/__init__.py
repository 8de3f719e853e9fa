"""The console's pages (thin), one module per screen: read the request, call one handler, render a
template in the viewer's language. Every state-changing request is a POST carrying the CSRF token.
``ROUTERS`` is what the composition root mounts (the fixed paths before the ones with parameters)."""

from __future__ import annotations

from . import complaints, customer_forms, customers, public, queue, search, signin
from .common import DepsDep, PagesDep, SignInNeeded
from .signin import STATIC_DIR

ROUTERS = [signin.router, queue.router, search.router, complaints.router, customer_forms.router, customers.router,
           public.router]

__all__ = ["ROUTERS", "STATIC_DIR", "DepsDep", "PagesDep", "SignInNeeded"]
