"""``SCHEMATHESIS_HOOKS`` module for a schemathesis CLI run against a running server.

    SCHEMATHESIS_HOOKS=tests.integration.api.schemathesis_cli_hooks \
        .venv/bin/schemathesis run http://127.0.0.1:8000/openapi.json --checks all \
        -H "Authorization: Bearer $TOKEN"

It applies the same unstated request rules and failure filter as the pytest suite
(``schemathesis_rules``).
"""

import schemathesis

from tests.integration.api.schemathesis_rules import apply_unstated_rules, keep_failure

schemathesis.hook("map_case")(apply_unstated_rules)
schemathesis.hook("filter_failure")(keep_failure)
