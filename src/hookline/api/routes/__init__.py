"""One router per resource: webhooks, events, deliveries, dead letters, operations."""
