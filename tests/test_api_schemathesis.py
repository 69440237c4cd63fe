"""Property-based check of every GET route against the API's own OpenAPI document.

schemathesis reads ``/api/v1/openapi.json`` from the app itself (WSGI, no network),
generates requests from the parameter table and checks that none answers 5xx and that
every response matches the documented schema (status, content type and body), so the
document and the handlers cannot drift apart unnoticed. Runs on the hand-made store.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance
from test_api_store import NOW, api_store, build_store  # noqa: F401

from api import ApiConfig, create_app
from api.params import ROUTES


@pytest.fixture(scope="module")
def app(api_store):  # noqa: F811
    return create_app(ApiConfig(store=str(api_store)), clock=lambda: NOW)


#: Every GET route, from the same table the document is built from.
GET_PATHS = [r.path for r in ROUTES if r.method == "get"]


@pytest.fixture(scope="module")
def api_schema(app):
    return schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)


@pytest.mark.parametrize("path", GET_PATHS)
def test_get_route_conforms(api_schema, path):
    operation = api_schema[path]["GET"]

    # the documented examples too, so the 200 paths are exercised, not only the 400s
    strategy = st.one_of(operation.as_strategy(), *operation.get_strategies_from_examples())

    @given(case=strategy)
    @settings(max_examples=150, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    def check(case):
        case.call_and_validate(checks=[not_a_server_error, response_schema_conformance])

    check()
