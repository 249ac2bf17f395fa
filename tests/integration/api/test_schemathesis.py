"""schemathesis over the whole OpenAPI document, authenticated, in-process (ASGI), on SQLite.

Every operation gets generated requests, valid and invalid, and every check schemathesis has
runs on every answer: never a 5xx; status code, content type, headers and body as documented;
valid requests accepted and invalid ones refused; auth not ignored; ``Allow`` naming exactly the
documented methods. Half of the generated path ids are swapped for ids that exist, so the
success answers are checked too; generated valid requests follow the rules JSON Schema cannot
state (``schemathesis_rules``, which also tells "deleted resource still available" that
``DELETE .../retry-config`` is a reset). No check is excluded. A second test walks the
document's OpenAPI links as a state machine with valid requests (create a webhook, then use its
id; publish an event, then read it and its deliveries), each scenario from the seeded rows.

The runtime lives in the app's lifespan, so it opens on the event loop schemathesis drives the
app with, and closes when the module is done. ``HOOKLINE_SCHEMATHESIS_EXAMPLES`` raises the
number of examples per operation (and of state-machine runs) for a longer hunt by hand.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, closing
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.config import SchemathesisConfig
from schemathesis.python.asgi import shutdown_lifespans

from hookline.api.app import build_app
from hookline.api.openapi import openapi_document
from hookline.clock import SystemClock
from hookline.runtime import open_runtime
from hookline.settings import Settings
from hookline.storage.models import Delivery
from tests.fixtures.db import sqlite_url_for
from tests.integration.api.conftest import make_settings
from tests.integration.api.helpers import TOKEN, FakeDns, OfflineSender
from tests.integration.api.schemathesis_rules import apply_unstated_rules, keep_failure

MAX_EXAMPLES = int(os.environ.get("HOOKLINE_SCHEMATHESIS_EXAMPLES", "20"))
"""Examples per operation (and state-machine runs); 20 keeps the module well under a minute."""
MAX_STATEFUL_STEPS = 8
AUTH = {"Authorization": f"Bearer {TOKEN}"}

SEEDED: dict[str, list[str]] = {}
"""Ids of resources that exist, by path parameter name."""
DATABASE: dict[str, Path] = {}


def _settings(folder: Path) -> Settings:
    # The default payload limit: generated payloads stay far below it, so a valid publish is
    # never a 413 (whose limit is the operator's setting, not something the schema can say).
    # Every network allowed: whether a URL's host is a blocked address is the operator's
    # setting too (ALLOWED_NETWORKS), so a generated valid URL is never refused for it; names
    # resolve through a FakeDns (none does), never through real DNS.
    return make_settings(
        sqlite_url_for(folder / "hookline.db"),
        folder / "data",
        MAX_PAYLOAD_BYTES=256 * 1024,
        ALLOWED_NETWORKS="0.0.0.0/0,::/0",
    )


async def _seed(folder: Path) -> None:
    """Two webhooks, an event delivered to both, one of the deliveries a dead letter."""
    async with open_runtime(_settings(folder), clock=SystemClock(), resolver=FakeDns()) as runtime:
        webhooks = [
            await runtime.endpoints.create(url=f"https://example.com/{n}") for n in range(2)
        ]
        result = await runtime.events.publish(event_type="seed", payload={"n": 1})
        async with runtime.sessions.begin() as session:
            dead = await session.get(Delivery, result.deliveries[0].id)
            assert dead is not None
            dead.state = "failed"
            dead.completed_at = runtime.clock.now()
    _copy_database(folder / "hookline.db", folder / "seeded.db")
    SEEDED["webhook_id"] = [w.id for w in webhooks]
    SEEDED["event_id"] = [result.event.id]
    SEEDED["delivery_id"] = [d.id for d in result.deliveries]


def _copy_database(source: Path, target: Path) -> None:
    """Copy a SQLite database with its own backup API (consistent, WAL included, safe while
    the app holds connections to ``target``)."""
    with closing(sqlite3.connect(source)) as src, closing(sqlite3.connect(target)) as dst:
        src.backup(dst)


def _app_with_runtime_in_lifespan() -> FastAPI:
    """The API whose runtime opens, on the seeded database, when its lifespan starts."""
    app = build_app(max_body_size=1024 * 1024)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings = _settings(DATABASE["folder"])
        # Generated webhooks may name public addresses: test sends and probes go nowhere.
        async with open_runtime(
            settings, clock=SystemClock(), resolver=FakeDns(), sender=OfflineSender()
        ) as runtime:
            app.state.runtime = runtime
            yield

    app.router.lifespan_context = lifespan
    return app


# The document comes from the app itself; nothing runs until the first request starts the
# lifespan (inside the test, after the fixture below has seeded the database).
schema = schemathesis.openapi.from_dict(openapi_document())
schema.app = _app_with_runtime_in_lifespan()
schema.hook("map_case")(apply_unstated_rules)
schema.hook("filter_failure")(keep_failure)

# The state machine sends valid requests only: a link fills in values from an earlier answer
# (and the token is added to every call), which can turn a generated invalid request into a
# valid one that is then rightly accepted. Invalid requests are the test above's job.
linked_schema = schemathesis.openapi.from_dict(
    openapi_document(),
    config=SchemathesisConfig.from_dict({"generation": {"mode": "positive"}}),
)
linked_schema.app = schema.app
linked_schema.hook("map_case")(apply_unstated_rules)
linked_schema.hook("filter_failure")(keep_failure)


@schema.hook
def flatmap_path_parameters(
    context: schemathesis.HookContext, path_parameters: dict[str, Any] | None
) -> st.SearchStrategy[dict[str, Any] | None]:
    """Half of the time, aim at resources that exist (never for DELETE, so the seeded
    webhooks survive for the operations after it)."""
    operation = context.operation
    if not path_parameters or operation is None or operation.method.upper() == "DELETE":
        return st.just(path_parameters)
    known = {name: SEEDED[name] for name in path_parameters if SEEDED.get(name)}
    if not known:
        return st.just(path_parameters)
    existing = st.fixed_dictionaries({name: st.sampled_from(ids) for name, ids in known.items()})
    return st.one_of(st.just(path_parameters), existing.map(lambda k: {**path_parameters, **k}))


@pytest.fixture(scope="module", autouse=True)
def _seeded_database(
    tmp_path_factory: pytest.TempPathFactory, migrated_sqlite_template: Path
) -> Iterator[None]:
    folder = tmp_path_factory.mktemp("schemathesis")
    shutil.copyfile(migrated_sqlite_template, folder / "hookline.db")
    asyncio.run(_seed(folder))
    DATABASE["folder"] = folder
    yield
    shutdown_lifespans()  # closes the runtime the app's lifespan opened


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_no_operation_answers_5xx_or_off_schema(case: schemathesis.Case) -> None:
    case.call_and_validate(headers=AUTH)


class _LinkedCalls(linked_schema.as_state_machine()):  # type: ignore[misc]
    """Sequences of calls along the document's links, each answer checked like above."""

    def setup(self) -> None:
        # Every scenario starts from the seeded rows: which calls a scenario can make depends on
        # the answers it gets, so what earlier scenarios deleted or created must not leak in
        # (Hypothesis replays a scenario and needs the same answers).
        folder = DATABASE["folder"]
        _copy_database(folder / "seeded.db", folder / "hookline.db")

    def get_call_kwargs(self, case: schemathesis.Case) -> dict[str, Any]:
        return {"headers": AUTH}


TestLinkedCallsConformToTheSchema = _LinkedCalls.TestCase
TestLinkedCallsConformToTheSchema.settings = settings(
    max_examples=MAX_EXAMPLES,
    stateful_step_count=MAX_STATEFUL_STEPS,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
