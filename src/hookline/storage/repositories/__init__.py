"""Repositories: the SQL behind each service, one module per aggregate.

Each function takes an ``AsyncSession`` (the service owns the transaction) and keyword-only
arguments; none commits.
"""
