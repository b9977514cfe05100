"""The chat client against a fake OpenAI-compatible server on 127.0.0.1 (tests/fx_llm.py)."""

from __future__ import annotations

import dataclasses

import hashlib

import pytest

from deadzone_build.errors import ScrapeError
from deadzone_build.sources.agent.endpoint import (SYSTEM_PROMPT, Endpoint, EndpointFailed, EndpointSettings,
                                                   request_body)
from deadzone_build.sources.agent.route import (DETERMINISTIC, ENDPOINT, PROMPT_VERSION, Route, RouteConfigError,
                                                route_from_env)
from deadzone_build.sources.fetch import FetchSettings
from fx_llm import MODEL, serve_llm

# Changing the prompt changes every answer: bump PROMPT_VERSION in route.py and record the new digest.
PROMPT_DIGESTS = {"1": "6b6c5c2e4396eba750575c8d098eb981f1ad9cb5b079114e72f09e93f014de1c"}
# A read timeout that a loaded CI runner never hits on a normal answer; SLOW only for the hanging fake.
QUICK = EndpointSettings(connect_timeout=2.0, read_timeout=10.0, retries=2, backoff_base=0.0, deadline=60.0)
SLOW = dataclasses.replace(QUICK, read_timeout=0.4, deadline=30.0)
SECTION = "# Title\n\nText’s here.\n\n```python\nprint(1)\n```\n"


def endpoint_for(server, settings: EndpointSettings = QUICK, api_key: str | None = None) -> Endpoint:
    return Endpoint(Route(ENDPOINT, endpoint=server.endpoint, model=MODEL, api_key=api_key), settings,
                    sleep=lambda seconds: None)


def test_prompt_text_matches_its_version() -> None:
    assert hashlib.sha256(SYSTEM_PROMPT.encode()).hexdigest() == PROMPT_DIGESTS[PROMPT_VERSION]


def test_request_follows_deadzones_contract(fake_llm) -> None:
    with endpoint_for(fake_llm) as endpoint:
        answer = endpoint.chat(request_body(MODEL, SECTION))
    assert answer == SECTION.replace("’", "'")
    ping, chat = fake_llm.requests
    assert (ping.method, ping.path) == ("GET", "/v1/models")
    assert (chat.method, chat.path) == ("POST", "/v1/chat/completions")
    assert chat.body == {"model": MODEL, "temperature": 0, "stream": False, "reasoning_effort": "minimal",
                         "chat_template_kwargs": {"enable_thinking": False},
                         "messages": [{"role": "system", "content": SYSTEM_PROMPT},
                                      {"role": "user", "content": SECTION}]}
    assert "authorization" not in chat.headers and chat.headers["content-type"] == "application/json"


def test_api_key_is_sent_as_bearer_and_never_shown(fake_llm) -> None:
    fake_llm.api_key = "sk-secret-123"
    with endpoint_for(fake_llm, api_key="sk-secret-123") as endpoint:
        endpoint.chat(request_body(MODEL, SECTION))
        assert "sk-secret" not in repr(endpoint) and "sk-secret" not in repr(endpoint.route)
    assert all(r.headers["authorization"] == "Bearer sk-secret-123" for r in fake_llm.requests)


def test_wrong_key_fails_at_the_ping_naming_the_variable(fake_llm) -> None:
    fake_llm.api_key = "sk-right"
    with endpoint_for(fake_llm, api_key="sk-wrong") as endpoint:
        with pytest.raises(ScrapeError, match="HTTP 401.*DEADZONE_AGENT_ENDPOINT_API_KEY") as info:
            endpoint.chat(request_body(MODEL, SECTION))
    assert "sk-wrong" not in str(info.value)
    assert fake_llm.chats() == []


def test_endpoint_down_at_start_up_fails_at_the_ping_with_one_attempt() -> None:
    with serve_llm() as server:
        pass  # stopped: its port now refuses connections
    attempts = []
    with Endpoint(Route(ENDPOINT, endpoint=server.endpoint, model=MODEL), QUICK,
                  sleep=lambda seconds: attempts.append(seconds)) as endpoint:
        with pytest.raises(ScrapeError, match=r"does not answer \(ConnectError.*check DEADZONE_AGENT_ENDPOINT"):
            endpoint.chat(request_body(MODEL, SECTION))
    assert attempts == []  # no retry loop, no backoff: a dead endpoint fails at once


def test_endpoint_url_without_the_api_base_fails_at_the_ping(fake_llm) -> None:
    route = Route(ENDPOINT, endpoint=fake_llm.endpoint.removesuffix("/v1"), model=MODEL)
    with Endpoint(route, QUICK) as endpoint:
        with pytest.raises(ScrapeError, match=r"/models answered HTTP 404.*the API base"):
            endpoint.ping()


def test_a_slow_answer_times_out_and_is_retried_then_given_up(fake_llm) -> None:
    fake_llm.mode = "slow"
    with endpoint_for(fake_llm, SLOW) as endpoint:
        with pytest.raises(EndpointFailed, match=r"no answer within 0.4 s.*3 attempts"):
            endpoint.chat(request_body(MODEL, SECTION))
    assert len(fake_llm.chats()) == 3


def test_a_500_is_retried_and_the_next_answer_used(fake_llm) -> None:
    fake_llm.queue("500", "malformed")
    with endpoint_for(fake_llm) as endpoint:
        assert endpoint.chat(request_body(MODEL, SECTION)) == SECTION.replace("’", "'")
    assert len(fake_llm.chats()) == 3


def test_persistent_500_and_malformed_json_give_up_with_the_reason(fake_llm) -> None:
    for mode, reason in (("500", "HTTP 500, 3 attempts"), ("malformed", "malformed answer")):
        fake_llm.mode = mode
        with endpoint_for(fake_llm) as endpoint:
            with pytest.raises(EndpointFailed, match=reason):
                endpoint.chat(request_body(MODEL, SECTION))


def test_deadline_bounds_all_attempts(fake_llm) -> None:
    fake_llm.mode = "500"
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += 10.0  # each backoff "takes" 10 s of the 25 s deadline

    settings = EndpointSettings(read_timeout=1.0, retries=9, backoff_base=1.0, deadline=25.0)
    endpoint = Endpoint(Route(ENDPOINT, endpoint=fake_llm.endpoint, model=MODEL), settings, sleep=sleep,
                        clock=lambda: now[0])
    with endpoint, pytest.raises(EndpointFailed, match="deadline of 25 s passed after 3 attempts"):
        endpoint.chat(request_body(MODEL, SECTION))
    assert len(fake_llm.chats()) == 3


def test_route_from_environment() -> None:
    assert route_from_env({}).name == DETERMINISTIC
    r = route_from_env({"DEADZONE_AGENT_ENDPOINT": "http://h:1/v1/", "DEADZONE_AGENT_ENDPOINT_MODEL": "m",
                        "DEADZONE_AGENT_ENDPOINT_API_KEY": "k"})
    assert (r.name, r.endpoint, r.model, r.api_key) == (ENDPOINT, "http://h:1/v1", "m", "k")
    assert "k" not in r.key_inputs().values() and r.key_inputs()["model"] == "m"
    with pytest.raises(RouteConfigError, match="DEADZONE_AGENT_ENDPOINT_MODEL is not"):
        route_from_env({"DEADZONE_AGENT_ENDPOINT": "http://h:1/v1"})


def test_timeout_setting_from_environment() -> None:
    fetch = FetchSettings(retries=1, backoff_base=0.1)
    settings = EndpointSettings.from_env(fetch, {"DEADZONE_AGENT_TIMEOUT": "7.5"})
    assert (settings.read_timeout, settings.deadline, settings.retries) == (7.5, 30.0, 1)
    assert EndpointSettings.from_env(fetch, {}).read_timeout == 120.0
    for bad in ("0", "soon", "-3"):
        with pytest.raises(ScrapeError, match="DEADZONE_AGENT_TIMEOUT"):
            EndpointSettings.from_env(fetch, {"DEADZONE_AGENT_TIMEOUT": bad})


def test_retry_after_of_a_429_is_honoured(fake_llm) -> None:
    waits: list[float] = []
    fake_llm.queue("429")
    endpoint = Endpoint(Route(ENDPOINT, endpoint=fake_llm.endpoint, model=MODEL), QUICK, sleep=waits.append)
    with endpoint:
        assert endpoint.chat(request_body(MODEL, SECTION)) == SECTION.replace("’", "'")
    assert waits == [7.0] and len(fake_llm.chats()) == 2
