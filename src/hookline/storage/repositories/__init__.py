"""Repositories: the SQL behind each service, one module per aggregate.

Each function takes an ``AsyncSession`` or, for the ingest writer's statements, an
``AsyncConnection`` (either way the service owns the transaction) and keyword-only arguments;
none commits.
"""
