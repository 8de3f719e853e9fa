"""Guanxi console: web pages for staff and customers over the gateway's public API."""
