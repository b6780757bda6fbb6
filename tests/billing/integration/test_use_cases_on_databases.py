"""The billing use cases on the real repository, SQLite and PostgreSQL: the same suite as
``tests/billing/unit/test_use_cases.py`` (``use_case_suite``) with the SQL unit of work."""

from tests.billing.use_case_suite import *  # noqa: F403
