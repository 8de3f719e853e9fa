"""Guanxi customer service: profiles, segments, consent, PII vault, contact log, care schedule."""
