"""Observability: JSON logging, Prometheus metrics, OpenTelemetry tracing, alerts.

May import settings, domain and the kernel; nothing above it.
"""
