"""The console's one way out: the gateway's public ``/api/v1``. ``port`` (the ``Gateway`` protocol the
handlers use, and the ways a call ends), ``http`` (``HttpGateway``, the real client on httpx), ``fake``
(``InMemoryGateway``, the same answers in memory for the fast tests)."""

from __future__ import annotations

from .fake import OLD_COMPLAINT_PARAMETERS, QUEUE_COMPLAINT_PARAMETERS, InMemoryGateway
from .http import HttpGateway
from .port import Gateway, GatewayError, GatewayUnavailable, Params, Unauthenticated

__all__ = ["OLD_COMPLAINT_PARAMETERS", "QUEUE_COMPLAINT_PARAMETERS", "Gateway", "GatewayError", "GatewayUnavailable",
           "HttpGateway", "InMemoryGateway", "Params", "Unauthenticated"]
