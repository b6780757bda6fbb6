"""The billing use cases on the Fake* ports (no database): the suite in ``use_case_suite``."""

from tests.billing.use_case_suite import *  # noqa: F403
