"""The use case's tests run against the live API and executors of tests/web (its fixtures, imported here)."""

from tests.web.conftest import api, api_settings, executors  # noqa: F401
