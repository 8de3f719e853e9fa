"""Event payload contracts, one module per owning domain.

``inbound`` holds the public integration contract (docs/events.md) (written by order and call-centre
systems and by the gateway). Each service's module holds the payloads it publishes, so consumers
in other services validate against the same model. Payloads only gain optional fields within a
``dataversion``; unknown fields are ignored on read.
"""
