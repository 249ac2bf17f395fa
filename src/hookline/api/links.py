"""OpenAPI links: which operation's answer gives the id another operation takes.

They document how the API hangs together (a created webhook's ``id`` is the ``webhook_id`` of
its other operations) and let stateful clients and test tools chain calls.
"""

from __future__ import annotations

from typing import Any


def links(parameter: str, pointer: str, *operation_ids: str) -> dict[str, Any]:
    """A ``links`` entry per operation in ``operation_ids``, each passing the value at JSON
    ``pointer`` of this answer's body as ``parameter``."""
    return {
        operation_id: {
            "operationId": operation_id,
            "parameters": {parameter: f"$response.body#{pointer}"},
        }
        for operation_id in operation_ids
    }


WEBHOOK_OPERATIONS = (
    "get_webhook",
    "update_webhook",
    "get_retry_config",
    "set_retry_config",
    "reset_retry_config",
    "get_retry_schedule",
    "disable_webhook",
    "enable_webhook",
    "get_secret",
    "rotate_secret",
    "get_stats",
    "list_deliveries",
    "list_dead_letters",
    "delete_webhook",
)
"""Every operation that takes a ``webhook_id`` (in the path, or as a list filter)."""
DELIVERY_OPERATIONS = ("get_delivery", "retry_delivery")
"""Every operation that takes a ``delivery_id``."""
