"""schemathesis against the served OpenAPI document: no 5xx, no response off its schema."""

from __future__ import annotations

from collections import Counter

import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from portal.state import Portal
from tests.portal.support import LiveServer, SimDevice


def test_generated_requests_get_documented_answers(
    portal: Portal, live: LiveServer, device: SimDevice, operator_token: str
) -> None:
    schema = schemathesis.openapi.from_url(f"{live.url}/openapi.json")
    headers = {"Authorization": f"Bearer {operator_token}"}
    # Half the cases name the enrolled device, so they get past the 404.
    cases = st.one_of(
        schema.as_strategy(), schema.as_strategy(path_parameters={"device_id": device.device_id})
    )
    seen: Counter[tuple[str, int]] = Counter()

    @settings(
        max_examples=400 if portal.settings.is_sqlite else 150,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=cases)
    def check(case: schemathesis.Case) -> None:
        response = case.call_and_validate(
            base_url=live.url,
            headers=headers,
            checks=[not_a_server_error, response_schema_conformance],
        )
        seen[(case.operation.label, response.status_code)] += 1

    check()
    operations = {label for label, _ in seen}
    assert "POST /api/v1/devices/{device_id}/records" in operations
    assert any(status < 300 for _, status in seen)
