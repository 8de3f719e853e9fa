"""Guanxi surveys service: post-purchase and post-resolution surveys, CSAT, NPS, reports."""
