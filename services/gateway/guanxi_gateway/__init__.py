"""Guanxi gateway service: the HTTP front door: authentication, roles, rate limits, routing."""
