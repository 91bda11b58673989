"""Schemathesis hooks for the execution API (loaded by scripts/fuzz_api.py through SCHEMATHESIS_HOOKS).

schemathesis.toml lets `positive_data_acceptance` take a 422 from a domain rule: a well-formed
request that a rule refuses (a measurement that is not a number, an Idempotency-Key reused for a
different action, a tool not in the crib) is the rule answering, not the schema failing. This
check keeps the other half of that check strict: a schema-valid request must never be refused as
malformed or invalid (`request_malformed`, `request_invalid`, `idempotency_key_missing`,
`body_too_large`), nor as a number the store cannot hold (`value_out_of_range`), nor with a
400/413/422 that names no rule at all. It reports as ST202, like the
built-in check it completes.
"""

from __future__ import annotations

from typing import Any

import schemathesis
from schemathesis.openapi.checks import RejectedPositiveData

try:  # skip the coverage phase's request-shape probes, as the built-in check does
    from schemathesis.specs.openapi.checks import is_unexpected_http_status_case
except ImportError:  # pragma: no cover - a schemathesis without it

    def is_unexpected_http_status_case(case: Any) -> bool:
        return False


# What the server answers when a request does not fit its schema, or a number its store.
SCHEMA_RULES = frozenset(
    {
        "request_malformed",
        "request_invalid",
        "idempotency_key_missing",
        "body_too_large",
        "value_out_of_range",
    }
)


ACCEPTED = ["2xx", "3xx", "401", "403", "404", "409", "429", "422 from a domain rule"]


@schemathesis.check
def schema_valid_request_not_refused_as_invalid(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: schemathesis.Case
) -> bool | None:
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive or is_unexpected_http_status_case(case):
        return None
    if response.status_code not in (400, 413, 422):
        return None
    try:
        rule = response.json().get("rule")
    except (ValueError, AttributeError):
        rule = None
    if isinstance(rule, str) and rule not in SCHEMA_RULES:
        return None  # a domain rule said no to a well-formed request
    raise RejectedPositiveData(
        operation=case.operation.label,
        message=f"Valid data should have been accepted, but was refused as `{rule}`",
        status_code=response.status_code,
        allowed_statuses=ACCEPTED,
    )
