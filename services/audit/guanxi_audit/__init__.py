"""Guanxi audit service: append-only, hash-chained record of every event and PII access."""
