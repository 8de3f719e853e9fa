"""Guanxi notifications service: templates, channels, consent, caps, quiet hours, delivery log."""
