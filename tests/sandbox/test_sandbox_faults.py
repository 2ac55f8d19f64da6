"""Every fault knob observed over real HTTP, its determinism under a seed, and its scoping."""

from __future__ import annotations

import time

import httpx
import pytest

from autotalk_prefect.sandbox import FaultConfig, SandboxConfig, SandboxHandle, run_sandbox


def _statuses(api: httpx.Client, n: int) -> list[int]:
    return [api.get("/self").status_code for _ in range(n)]


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_error_rate_answers_the_chosen_status(
    sb: SandboxHandle, api: httpx.Client, status: int
) -> None:
    sb.set_faults(FaultConfig(error_rate=1.0, error_statuses=(status,)))
    response = api.get("/self")
    assert response.status_code == status
    body = response.json()
    assert body["error"] and body["requestId"] == response.headers["x-request-id"]
    assert "retry-after" not in response.headers


def test_503_may_carry_retry_after(sb: SandboxHandle, api: httpx.Client) -> None:
    sb.set_faults(
        FaultConfig(
            error_rate=1.0, error_statuses=(503,), retry_after_on_503=True, retry_after_seconds=1.5
        )
    )
    response = api.get("/self")
    assert (response.status_code, response.headers["retry-after"]) == (503, "1.5")


def test_429_fraction_with_retry_after(sb: SandboxHandle, api: httpx.Client) -> None:
    sb.set_faults(FaultConfig(rate_429=1.0, retry_after_seconds=2))
    response = api.post(f"/contacts/{sb.contact_ids()[0]}/send_message", json={"message": "x"})
    assert response.status_code == 429 and response.headers["retry-after"] == "2"
    assert response.json()["error"] == "rate_limited"
    assert sb.sent_messages() == [], "a refused request is not applied"


def test_fractions_are_deterministic_under_a_seed(sb: SandboxHandle, api: httpx.Client) -> None:
    faults = FaultConfig(error_rate=0.3, rate_429=0.2, seed=42)
    sb.set_faults(faults)
    first = _statuses(api, 40)
    sb.set_faults(faults)
    assert _statuses(api, 40) == first
    assert 200 in first and 429 in first and any(s >= 500 for s in first)
    sb.set_faults(FaultConfig(error_rate=0.3, rate_429=0.2, seed=43))
    assert _statuses(api, 40) != first
    injected = sb.stats()["faults"]
    assert injected.get("429", 0) >= 1


def test_latency_delays_the_answer(sb: SandboxHandle, api: httpx.Client) -> None:
    sb.set_faults(FaultConfig(latency_ms=250))
    started = time.monotonic()
    assert api.get("/self").status_code == 200
    assert time.monotonic() - started >= 0.25  # a lower bound only: a slow machine cannot fail it
    assert sb.stats()["faults"]["latency"] == 1


def test_drop_after_processing_applies_then_closes(sb: SandboxHandle, api: httpx.Client) -> None:
    contact = sb.contact_ids()[0]
    sb.set_faults(FaultConfig(drop_after_processing=1.0))
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        api.post(f"/contacts/{contact}/send_message", json={"message": "lost answer"})
    assert [m["message"] for m in sb.sent_messages()] == ["lost answer"], "applied"
    created_before = len(sb.contact_ids())
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        api.post("/dynadata/type/clients/create", json={"name": "N", "phone": "+15550009999"})
    assert len(sb.contact_ids()) == created_before + 1
    sb.clear_faults()
    assert api.get("/self").status_code == 200, "the client recovers on a new connection"
    assert sb.stats()["faults"]["drop"] == 2


def test_methods_and_path_pattern_scope_the_faults(sb: SandboxHandle, api: httpx.Client) -> None:
    sb.set_faults(FaultConfig(error_rate=1.0, methods=("post",), path_pattern="send_message$"))
    contact = sb.contact_ids()[0]
    assert api.get("/self").status_code == 200
    assert api.post("/conversations", json={"contactId": contact}).status_code == 201
    response = api.post(f"/contacts/{contact}/send_message", json={"message": "x"})
    assert response.status_code >= 500


def test_admin_paths_are_never_faulted(sb: SandboxHandle, api: httpx.Client) -> None:
    sb.set_faults(FaultConfig(error_rate=1.0, drop_after_processing=1.0, latency_ms=0))
    assert httpx.get(f"{sb.root_url}/_sandbox/stats").status_code == 200
    assert httpx.get(f"{sb.root_url}/_sandbox/faults").json()["error_rate"] == 1.0


def test_faults_at_start_and_per_key_rate_limit() -> None:
    config = SandboxConfig(
        api_key="sk-a",
        extra_api_keys=("sk-b",),
        contacts=2,
        faults=FaultConfig(rate_limit_rps=1),
    )
    with run_sandbox(config=config) as sandbox, httpx.Client(base_url=sandbox.base_url) as client:
        started = time.monotonic()
        statuses = [
            client.get("/self", headers={"x-api-key": "sk-a"}).status_code for _ in range(8)
        ]
        elapsed = time.monotonic() - started
        other_key = client.get("/self", headers={"x-api-key": "sk-b"})
        limited = client.get("/self", headers={"x-api-key": "sk-a"})
    # a token bucket of 1/s with a burst of 1 lets through at most 1 + elapsed seconds' worth
    assert statuses.count(200) <= 1 + int(elapsed) + 1
    assert statuses[0] == 200 and 429 in statuses
    assert other_key.status_code == 200, "the limit is per key"
    if limited.status_code == 429:
        assert 0 < float(limited.headers["retry-after"]) <= 1
    stats = sandbox.stats()
    assert stats["faults"]["rate_limit"] == statuses.count(429) + (limited.status_code == 429)
    per_key = stats["keys"]
    assert len(per_key) == 2 and "sk-a" not in str(stats)
    assert sum(k["requests"] for k in per_key.values()) == 10


def test_fault_config_rejects_bad_values() -> None:
    for bad in (
        {"error_rate": 1.5},
        {"error_statuses": (404,)},
        {"rate_limit_rps": 0},
        {"latency_ms": -1},
        {"path_pattern": "("},
    ):
        with pytest.raises(ValueError):
            FaultConfig(**bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown fault setting"):
        FaultConfig.from_dict({"erorr_rate": 0.5})
