"""Guanxi complaints service: cases, deadlines on working days, escalation, crisis watch."""
