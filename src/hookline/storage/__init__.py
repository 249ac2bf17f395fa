"""Storage: the database is the source of truth for every endpoint, event, delivery and attempt.

Owns the SQLAlchemy 2 models (``models``), their column types (``types``), engines and sessions
(``db``), and the Alembic migrations that ship inside the package (``migrations/``, driven by
``migrate``). Repositories will live here too: SQL stays in this layer.

May import: the kernel (``hookline.errors``, ``clock``, ``ids``), ``hookline.settings`` (only the
root-``alembic.ini`` fallback in ``migrations/env.py`` does) and SQLAlchemy/Alembic. Never
``queue``, ``sender``, ``service`` or anything above; ``queue.sql_queue`` is the one sibling that
imports ``storage.models``. Nothing here builds an engine at import time.
"""
