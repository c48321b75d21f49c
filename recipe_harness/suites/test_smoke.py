"""Smoke: the deployed recipe answers the OpenAI API correctly, one test per (recipe, check).

Each recipe is deployed once for all its smoke tests (``--target local`` by default: the real
Dynamo frontend and mocker processes in the recipe's topology). Ids: ``<recipe-id>::smoke-<check>``.
"""

import pytest

pytestmark = pytest.mark.smoke


def test_smoke_models(deployed, smoke_check):
    """/v1/models lists the served model."""
    smoke_check("models")


def test_smoke_chat(deployed, smoke_check):
    """A chat completion returns content and usage."""
    smoke_check("chat")


def test_smoke_completions(deployed, smoke_check):
    """A text completion returns text and usage."""
    smoke_check("completions")


def test_smoke_stream(deployed, smoke_check):
    """Streaming returns well-formed SSE chunks, usage, and ends with [DONE]."""
    smoke_check("stream")


def test_smoke_max_tokens(deployed, smoke_check):
    """max_tokens is honoured."""
    smoke_check("max-tokens")


def test_smoke_concurrency(deployed, smoke_check):
    """Concurrent requests all succeed."""
    smoke_check("concurrency")


def test_smoke_bad_request(deployed, smoke_check):
    """Unknown model, malformed JSON and missing fields get a 4xx with an error body."""
    smoke_check("bad-request")


def test_smoke_disagg(deployed, smoke_check):
    """Disaggregated recipes: both prefill and decode workers served requests."""
    smoke_check("disagg")


def test_smoke_kv_routing(deployed, smoke_check):
    """KV-router recipes: a repeated prefix is routed to the same worker."""
    smoke_check("kv-routing")
