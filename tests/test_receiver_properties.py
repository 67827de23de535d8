"""Property: whatever a client sends, the receiver never answers 5xx while Redis is up."""

from __future__ import annotations

import json
import os
import socket
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest
import redis
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from asana_hooks import keys
from asana_hooks.queueing import Delivery, make_queue
from asana_hooks.registry import Registry
from asana_hooks.secretbox import SecretBox
from asana_hooks.settings import Settings
from receiver.app import create_app
from receiver.signatures import sign
from tests.helpers import serve_in_thread

SECRET = "s3cret" * 8
STATUSES: Counter[int] = Counter()
"""Answers seen, printed after the module's tests (with -s) for the README's fuzz figures."""
EXAMPLES = int(os.environ.get("HOOKS_FUZZ_EXAMPLES", "300"))
"""300 in the suite; HOOKS_FUZZ_EXAMPLES=10000 for a fuzzing campaign (README, Threat model)."""
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)
event_like = st.fixed_dictionaries(
    {},
    optional={
        "action": st.sampled_from(["changed", "added", "removed", "deleted", "", 3]) | json_values,
        "created_at": st.sampled_from(["2026-11-23T10:00:00.123Z", "yesterday", ""]) | json_values,
        "resource": st.fixed_dictionaries(
            {}, optional={"gid": st.text(max_size=70) | json_values, "resource_type": json_values}
        )
        | json_values,
        "user": json_values,
        "parent": json_values,
        "change": json_values,
    },
)


deeply_nested = st.builds(
    lambda depth, brackets: brackets[0] * depth + b"0" + brackets[1] * depth,
    st.integers(1, 3000),  # past any parser's recursion limit
    st.sampled_from([(b"[", b"]"), (b'{"events": [', b"]}"), (b'{"a": ', b"}")]),
)
bodies = st.one_of(
    st.binary(max_size=300),
    json_values.map(lambda value: json.dumps(value).encode()),
    st.lists(event_like, max_size=5).map(lambda events: json.dumps({"events": events}).encode()),
    st.integers(min_value=2**64, max_value=2**4000).map(
        lambda n: b'{"events": [{"action": "changed", "created_at": %d}]}' % n
    ),
    deeply_nested,
)
header_values = st.text(
    alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=80
).map(str.strip)


@pytest.fixture(scope="module")
def receiver(redis_server: object) -> Iterator[tuple[httpx.Client, redis.Redis]]:
    from asana_hooks.dev.redis_server import EmbeddedRedis
    from asana_hooks.secretbox import generate_key

    assert isinstance(redis_server, EmbeddedRedis)
    key = generate_key()
    settings_ = Settings.from_environ({"REDIS_URL": redis_server.url, "HOOKS_ENCRYPTION_KEY": key})
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    registry = Registry(client, SecretBox(settings_.encryption_keys))
    registry.begin(target_id="fuzz", resource_gid="1", target_url="https://x/fuzz", filters=[])
    with serve_in_thread(create_app(settings_)) as url:
        httpx.post(f"{url}/hooks/asana/fuzz", headers={"X-Hook-Secret": SECRET})
        registry.confirm("fuzz", webhook_gid="77", asana_secret=SECRET)
        with httpx.Client(base_url=url, timeout=10) as http:
            yield http, client
    client.flushall()
    client.close()
    print(f"\nreceiver fuzz: {sum(STATUSES.values())} requests, answers {dict(STATUSES)}")


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    body=bodies,
    signed=st.booleans(),
    target=st.sampled_from(["fuzz", "nobody", "a" * 65, "%2e%2e", "fuzz%00"]),
    extra=st.dictionaries(
        st.sampled_from(["X-Hook-Secret", "X-Hook-Signature", "Content-Type", "Content-Encoding"]),
        header_values,
        max_size=2,
    ),
    short_by=st.one_of(st.none(), st.integers(min_value=1, max_value=64)),
)
def test_never_5xx_and_nothing_unverified_is_enqueued(
    receiver: tuple[httpx.Client, redis.Redis],
    body: bytes,
    signed: bool,
    target: str,
    extra: dict[str, str],
    short_by: int | None,
) -> None:
    """Any body, any headers, a Content-Length that lies: a 2xx or a 4xx; a job only for a
    signed, well-formed delivery."""
    http, client = receiver
    headers = dict(extra)
    if signed:
        headers["X-Hook-Signature"] = sign(body, SECRET)
    queued_before = client.llen("rq:queue:" + keys.QUEUE)
    path = f"/hooks/asana/{target}"
    if short_by is not None and len(body) > short_by:
        status = _post_declaring(http, path, body, headers, len(body) - short_by)
    else:
        short_by = None
        answer = http.post(path, content=body, headers=headers)
        status = answer.status_code
    STATUSES[status] += 1
    assert status < 500, f"{status} for {body[:80]!r} short_by={short_by}"
    queued_after = client.llen("rq:queue:" + keys.QUEUE)
    if queued_after > queued_before:
        assert status == 200
        assert short_by is None
        assert target == "fuzz"
        assert "X-Hook-Secret" not in headers
        assert headers.get("X-Hook-Signature") == sign(body, SECRET)


@settings(
    max_examples=EXAMPLES // 3,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(events=st.lists(event_like | json_values, min_size=1, max_size=5))
def test_a_signed_events_list_is_never_refused(
    receiver: tuple[httpx.Client, redis.Redis], events: list[object]
) -> None:
    """Whatever the events hold, a signed ``{"events": [...]}`` is 200 and its job carries
    them as they came (the job reads them or keeps them aside: tests/test_quarantine.py).
    A 4xx would have Asana retry the body for a day, then delete the webhook."""
    http, client = receiver
    try:
        body = json.dumps({"events": events}, allow_nan=False).encode()
    except ValueError:
        assume(False)  # Infinity is not JSON; Asana sends JSON
    queue = make_queue(client)
    before = set(queue.job_ids)
    headers = {"X-Hook-Signature": sign(body, SECRET)}
    answer = http.post("/hooks/asana/fuzz", content=body, headers=headers)
    assert answer.status_code == 200, answer.text
    [job_id] = set(queue.job_ids) - before
    job = queue.fetch_job(job_id)
    assert job is not None
    assert list(Delivery.from_job(job.kwargs).events) == events


def _post_declaring(
    http: httpx.Client, path: str, body: bytes, headers: dict[str, str], declared: int
) -> int:
    """POST ``body`` over a raw socket with a Content-Length smaller than the body (the rest
    arrives as the start of a next request); the status of the first answer."""
    url = http.base_url
    head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    request = (
        f"POST {path} HTTP/1.1\r\nHost: {url.host}\r\nContent-Length: {declared}\r\n{head}\r\n"
    ).encode() + body
    with socket.create_connection((url.host, url.port or 80), timeout=10) as raw:
        raw.sendall(request)
        answer = b""
        while b"\r\n" not in answer:
            chunk = raw.recv(4096)
            if not chunk:
                break
            answer += chunk
    return int(answer.split(b" ", 2)[1])
