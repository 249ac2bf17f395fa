"""Observability: JSON logs (structlog) and Prometheus metrics.

May import settings, domain and the kernel; nothing above it.
"""
