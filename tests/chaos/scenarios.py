"""The chaos scenarios of issue 7, each a function of a ``Profile`` (fast or full). Does I/O.

Every scenario starts a ``ChaosSystem`` (real receiver, workers and pollers as processes, a
real Redis, the fake Asana), drives a load while injecting its fault, waits (bounded) until
the system settles, and returns a ``Row``: the ``verdict`` of the stream against the fake's
world (see tests.chaos.verdict for lost and doubled) plus what the fault did (``notes``).

``FAST`` fits CI (about two minutes for all of them); ``FULL`` uses the issue's numbers
(Redis stopped 30 s, Asana answering after 5-15 s with some timeouts) and is selected with
``HOOKS_CHAOS_FULL=1``.
"""

from __future__ import annotations

import json
import os
import random
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from asana_hooks import keys
from asana_hooks.dev.fake_asana import FakeAsana
from asana_hooks.events import normal_timestamp
from tests.chaos.harness import ChaosSystem, Child, Load
from tests.chaos.verdict import Verdict
from workers.poller.store import PollStore

ASANA_CLIENT_TIMEOUT_SECONDS = 30.0
"""AsanaClient's read timeout: an answer slower than this is a timeout for us."""


@dataclass(frozen=True)
class Profile:
    name: str
    worker_kills: int = 20
    kill_every: float = 0.6
    redis_restarts: int = 3
    redis_outage: float = 5.0
    receiver_restarts: int = 4
    slow_latency: tuple[float, float] = (1.0, 3.0)
    slow_timeouts: float = 0.0
    """Share of the slow scenario's time during which answers take longer than the client
    waits (a timeout, then RQ's retry)."""
    slow_seconds: float = 6.0
    flaky_500: float = 0.1
    flaky_429: float = 0.1
    load_seconds: float = 6.0
    poll_lock_ttl_ms: int | None = 5000
    """Pollers with this lock TTL; None runs the real ``asana-hooks poll`` (120 s TTL)."""
    settle_timeout: float = 60.0
    strict_settle: bool = False
    """Wait for delivery jobs' RQ retries too before comparing (a job retried after a failed
    attempt waits out its Retry interval)."""


FAST = Profile("fast")
FULL = Profile(
    "full",
    worker_kills=40,
    kill_every=2.0,
    redis_restarts=5,
    redis_outage=30.0,
    receiver_restarts=10,
    slow_latency=(5.0, 15.0),
    slow_timeouts=0.1,
    slow_seconds=40.0,
    flaky_500=0.2,
    flaky_429=0.2,
    load_seconds=30.0,
    poll_lock_ttl_ms=None,
    settle_timeout=300.0,
    strict_settle=True,
)


def selected_profile() -> Profile:
    return FULL if os.environ.get("HOOKS_CHAOS_FULL", "") not in ("", "0") else FAST


@dataclass
class Row:
    scenario: str
    verdict: Verdict
    seconds: float
    notes: dict[str, object] = field(default_factory=dict)

    def problems(self, limit: int = 5) -> str:
        lost = list(self.verdict.lost.items())[:limit]
        doubled = list(self.verdict.doubled.items())[:limit]
        return f"lost={lost} doubled={doubled} notes={self.notes}"


Body = Callable[[ChaosSystem, Profile, dict[str, object]], Verdict]


def run(name: str, profile: Profile, work_dir: Path, body: Body, **system_options: object) -> Row:
    began = time.monotonic()
    notes: dict[str, object] = {}
    options: dict[str, object] = {"poll_lock_ttl_ms": profile.poll_lock_ttl_ms, **system_options}
    with ChaosSystem(work_dir / name, **options) as system:  # type: ignore[arg-type]
        verdict = body(system, profile, notes)
        if system.pending:
            notes["unsettled"] = system.pending
        if system.restarts:
            notes["restarts"] = system.restarts
            notes["crashes"] = system.crashes[:3]
    return Row(name, verdict, time.monotonic() - began, notes)


# Scenarios -----------------------------------------------------------------------------------


def worker_kills(system: ChaosSystem, profile: Profile, notes: dict[str, object]) -> Verdict:
    """SIGKILL a worker (a busy one when there is) every ``kill_every`` s; three run."""
    system.fake.knobs.api_latency = 0.05  # flush jobs last long enough to be caught busy
    load = Load(system)
    load.create(20)
    load.run(per_second=15)
    kills = busy = scheduler_kills = 0
    chooser = random.Random(11)
    with system.connection() as connection:
        while kills < profile.worker_kills:
            time.sleep(profile.kill_every)
            deadline = time.monotonic() + 1.0
            victims: list[Child] = []
            while not victims and time.monotonic() < deadline:
                victims = system.busy_workers(connection)
                time.sleep(0.005)
            if victims:
                busy += 1
            else:
                victims = [c for c in system.role("worker") if c.alive()]
            victim = chooser.choice(victims)
            scheduler_kills += victim is system.scheduler_worker(connection)
            victim.signal(signal.SIGKILL)
            victim.wait(5)
            victim.start(system.env)
            kills += 1
            system.keep_alive()
    load.stop()
    load.delete_some(0.1)
    system.fake.knobs.api_latency = 0.0
    notes.update(
        kills=kills,
        mid_job=busy,
        of_scheduler=scheduler_kills,
        ops=load.ops,
        load_errors=len(load.errors),
    )
    return system.settle(timeout=profile.settle_timeout, strict=profile.strict_settle)


def redis_restart(system: ChaosSystem, profile: Profile, notes: dict[str, object]) -> Verdict:
    """Stop Redis (SIGTERM, AOF kept) and start it again, repeatedly, while deliveries flow."""
    load = Load(system)
    load.create(10)
    load.run(per_second=15)
    for _ in range(profile.redis_restarts):
        _wait_for_accepted(system.fake, more=10, timeout=20)  # deliveries flow again first
        system.redis_server.stop()
        system.redis_server.start()
    time.sleep(1.0)
    load.stop()
    load.delete_some(0.1)
    notes.update(restarts_of_redis=profile.redis_restarts, ops=load.ops, **_answers(system.fake))
    return system.settle(timeout=profile.settle_timeout, strict=profile.strict_settle)


def redis_killed(system: ChaosSystem, profile: Profile, notes: dict[str, object]) -> Verdict:
    """SIGKILL Redis (a crash, not a shutdown) under load and start it again on the same files:
    what was answered 2xx must be in its append-only file, in both durability modes."""
    load = Load(system)
    load.create(10)
    load.run(per_second=15)
    for _ in range(profile.redis_restarts):
        _wait_for_accepted(system.fake, more=10, timeout=20)
        system.redis_server.kill()
        system.redis_server.start()
    time.sleep(1.0)
    load.stop()
    load.delete_some(0.1)
    notes.update(kills_of_redis=profile.redis_restarts, ops=load.ops, **_answers(system.fake))
    verdict = system.settle(timeout=profile.settle_timeout, strict=profile.strict_settle)
    notes["acked_events_seen_only_by_poller"] = _acked_only_via_poller(system)
    return verdict


def redis_outage(system: ChaosSystem, profile: Profile, notes: dict[str, object]) -> Verdict:
    """Redis stopped ``redis_outage`` s under load: 503s, Asana retries, nothing lost."""
    load = Load(system)
    load.create(10)
    load.run(per_second=10)
    time.sleep(1.0)
    system.redis_server.stop()
    down_at = time.monotonic()
    time.sleep(profile.redis_outage)
    answered = _answers(system.fake)
    system.redis_server.start()
    notes["down_s"] = round(time.monotonic() - down_at, 1)
    time.sleep(1.0)
    load.stop()
    load.delete_some(0.1)
    notes.update(ops=load.ops, **answered)
    return system.settle(
        timeout=profile.settle_timeout + profile.redis_outage, strict=profile.strict_settle
    )


def receiver_restart(system: ChaosSystem, profile: Profile, notes: dict[str, object]) -> Verdict:
    """SIGTERM the receiver (uvicorn finishes in-flight requests) and start it again."""
    load = Load(system)
    load.create(10)
    load.run(per_second=25)
    for _ in range(profile.receiver_restarts):
        time.sleep(1.5)
        system.restart_receiver(graceful=True)
    time.sleep(1.0)
    load.stop()
    load.delete_some(0.1)
    notes.update(restarts_of_receiver=profile.receiver_restarts, ops=load.ops)
    notes.update(_answers(system.fake))
    return system.settle(timeout=profile.settle_timeout, strict=profile.strict_settle)


def slow_api(system: ChaosSystem, profile: Profile, notes: dict[str, object]) -> Verdict:
    """Asana answers after ``slow_latency`` s, sometimes after longer than the client waits."""
    stop = threading.Event()
    low, high = profile.slow_latency
    jitter = random.Random(5)
    spikes = 0

    def vary() -> None:
        nonlocal spikes
        while not stop.wait(0.25):
            if jitter.random() < profile.slow_timeouts:
                spikes += 1
                system.fake.knobs.api_latency = ASANA_CLIENT_TIMEOUT_SECONDS + 2
            else:
                system.fake.knobs.api_latency = jitter.uniform(low, high)

    thread = threading.Thread(target=vary, daemon=True)
    thread.start()
    load = Load(system)
    load.create(10)
    load.run(per_second=8)
    time.sleep(profile.slow_seconds)
    load.stop()
    load.delete_some(0.1)
    verdict = system.settle(timeout=profile.settle_timeout + 3 * high, strict=profile.strict_settle)
    stop.set()
    thread.join(5)
    system.fake.knobs.api_latency = 0.0
    calls = system.fake.calls
    notes.update(
        ops=load.ops,
        api_calls=len(calls),
        slowest_answer_s=round(max((c.ended_at - c.started_at for c in calls), default=0), 1),
        spikes=spikes,
    )
    return verdict


def flaky_api(system: ChaosSystem, profile: Profile, notes: dict[str, object]) -> Verdict:
    """Asana answers some requests with 500 and some with 429 (Retry-After)."""
    system.fake.knobs.chaos_500_rate = profile.flaky_500
    system.fake.knobs.chaos_429_rate = profile.flaky_429
    load = Load(system)
    load.create(10)
    load.run(per_second=15)
    time.sleep(profile.load_seconds)
    load.stop()
    load.delete_some(0.1)
    verdict = system.settle(timeout=profile.settle_timeout, strict=profile.strict_settle)
    system.fake.knobs.chaos_500_rate = system.fake.knobs.chaos_429_rate = 0.0
    statuses = [c.status for c in system.fake.calls]
    notes.update(ops=load.ops, api_500=statuses.count(500), api_429=statuses.count(429))
    return verdict


def poller_killed_in_resync(
    system: ChaosSystem, profile: Profile, notes: dict[str, object]
) -> Verdict:
    """Changes no webhook delivers and the sync token expired: the poller resyncs, is killed
    in the middle of the crawl, and another poller finishes it."""
    store = _stop_the_poller_and_webhooks(system)
    load = Load(system)
    load.create(250)
    for _ in range(100):
        load.step()
    system.fake.wait_idle(10)
    system.fake.expire_sync_tokens()
    system.fake.knobs.api_latency = 0.3
    second = system.add_poller()
    killed_in = ""
    if _wait(lambda: store.raw(system.project).get("resync_state") == "running", 20):
        time.sleep(0.5)
        killed_in = str(store.raw(system.project).get("resync_state"))
        second.held_down = True
        second.signal(signal.SIGKILL)
        second.wait(5)
    system.fake.knobs.api_latency = 0.0
    system.add_poller()
    timeout = profile.settle_timeout + (130 if profile.poll_lock_ttl_ms is None else 0)
    verdict = system.settle(timeout=timeout, extra_events=1, strict=profile.strict_settle)
    state = store.raw(system.project)
    notes.update(
        killed_while=killed_in or "never saw the resync",
        resync_state=state.get("resync_state"),
        resync_items=state.get("resync_items"),
        ops=load.ops,
    )
    system.fake.knobs.drop_rate = 0.0
    return verdict


def two_pollers(system: ChaosSystem, profile: Profile, notes: dict[str, object]) -> Verdict:
    """Two pollers started together while 30% of deliveries are dropped."""
    for _ in range(2):
        system.add_poller(start=False)
    for poller in system.role("poller"):
        poller.start(system.env)
    store = PollStore(system.connection())
    # Both pollers are past their first pass before anything is dropped.
    _wait(lambda: store.record(system.project).last_good_poll_at is not None, 20)
    system.fake.knobs.drop_rate = 0.3
    load = Load(system)
    load.create(10)
    load.run(per_second=15)
    time.sleep(profile.load_seconds)
    load.stop()
    load.delete_some(0.1)
    verdict = system.settle(timeout=profile.settle_timeout, strict=profile.strict_settle)
    system.fake.knobs.drop_rate = 0.0
    notes.update(ops=load.ops, dropped=len(system.fake.dropped))
    return verdict


def comments_in_resync_gap(
    system: ChaosSystem, profile: Profile, notes: dict[str, object]
) -> Verdict:
    """Comments made while no webhook delivers and the sync token expired: the resync finds
    the commented tasks (``modified_since``) and then their new stories."""
    store = _stop_the_poller_and_webhooks(system)
    load = Load(system)
    tasks = load.create(3)
    stories = [system.fake.world.add_comment(t, f"gap comment {t}", by=system.user) for t in tasks]
    system.fake.wait_idle(10)
    system.fake.expire_sync_tokens()
    system.add_poller()
    _wait(lambda: store.raw(system.project).get("resync_state") == "done", 20)
    verdict = system.settle(timeout=8, extra_events=1, strict=profile.strict_settle)
    notes.update(stories=len(stories), lost_stories=len(set(stories) & set(verdict.lost)))
    return verdict


SCENARIOS: dict[str, tuple[Body, dict[str, object]]] = {
    "worker SIGKILL x N": (worker_kills, {"workers": 3}),
    "redis restart": (redis_restart, {"workers": 2}),
    "redis stopped": (redis_outage, {"workers": 2}),
    "redis SIGKILL": (redis_killed, {"workers": 2}),
    "redis SIGKILL, fsync": (
        redis_killed,
        {"workers": 2, "extra_env": {"HOOKS_DURABILITY": "fsync"}},
    ),
    "receiver restart": (receiver_restart, {"workers": 2}),
    "slow asana api": (slow_api, {"workers": 3}),
    "flaky asana api": (flaky_api, {"workers": 2}),
    "poller killed in resync": (poller_killed_in_resync, {"workers": 2}),
    "two pollers": (two_pollers, {"workers": 2, "pollers": 0}),
    "comments in a 412 gap": (comments_in_resync_gap, {"workers": 1}),
}


def run_named(name: str, profile: Profile, work_dir: Path) -> Row:
    body, options = SCENARIOS[name]
    return run(name, profile, work_dir, body, **options)


def _wait_for_accepted(fake: FakeAsana, *, more: int, timeout: float) -> bool:
    """Wait until the receiver has answered 200 to ``more`` event deliveries than now."""

    def accepted() -> int:
        return sum(
            1 for r in fake.deliveries if r.status == 200 and not (r.heartbeat or r.handshake)
        )

    target = accepted() + more
    return _wait(lambda: accepted() >= target, timeout)


def _acked_only_via_poller(system: ChaosSystem) -> int:
    """Events of deliveries the receiver answered 200 whose change no entry credits to a
    webhook: had Redis lost an acknowledged delivery, the poller alone would have found it.
    (The poller can still win a race with a delivery in flight, so this is a note.)"""
    with system.connection() as connection:
        entries = [
            json.loads(fields[b"change"]) for _id, fields in connection.xrange(keys.CHANGES_STREAM)
        ]
    webhook_spans: dict[str, list[tuple[str, str]]] = {}
    for entry in entries:
        if "webhook" in entry["sources"]:
            span = (entry["first_event_at"], entry["last_event_at"])
            webhook_spans.setdefault(entry["resource"]["gid"], []).append(span)
    # A delivery refused first (503 while Redis was down) and acknowledged on a later try may
    # well have been found by the poller in between: only first tries count.
    refused_once = {r.body for r in system.fake.deliveries if r.status != 200}
    missing = 0
    for record in system.fake.deliveries:
        if record.status != 200 or record.heartbeat or record.handshake:
            continue
        if record.body in refused_once:
            continue
        for event in record.events:
            at = normal_timestamp(event.get("created_at")) or ""
            spans = webhook_spans.get(event["resource"]["gid"], [])
            missing += not any(first <= at <= last for first, last in spans)
    return missing


def _answers(fake: FakeAsana) -> dict[str, object]:
    """How the receiver answered the fake's event deliveries (status, or no answer)."""
    counts: dict[str, int] = {}
    for record in fake.deliveries:
        if record.handshake or record.heartbeat:
            continue
        key = str(record.status) if record.status else "no_answer"
        counts[key] = counts.get(key, 0) + 1
    return {"answers": dict(sorted(counts.items()))}


def _stop_the_poller_and_webhooks(system: ChaosSystem) -> PollStore:
    """Once the poller holds a sync token, stop it and drop every delivery from now on: what
    happens next reaches us only through a resync."""
    store = PollStore(system.connection())
    poller = system.role("poller")[0]
    _wait(lambda: store.record(system.project).last_good_poll_at is not None, 20)
    poller.held_down = True
    poller.signal(signal.SIGTERM)
    poller.wait(20)
    system.fake.knobs.drop_rate = 1.0
    return store


def _wait(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


CHAOS_LINE = "chaos_row"
"""The name under which a test's ``user_properties`` carry its table line."""


def table(lines: list[str], *, profile: str) -> str:
    """The summary table: scenario, changes expected, emitted, lost, doubled, and more."""
    header = (
        f"{'scenario':<26}{'expected':>9}{'emitted':>9}{'lost':>6}{'doubled':>8}"
        f"{'entries':>9}{'ev.short':>9}{'seconds':>9}  notes"
    )
    return "\n".join([f"chaos ({profile})", header, "-" * len(header), *lines])


def table_line(row: Row) -> str:
    """One row of ``table``: a string, so it travels from a test process to the report."""
    v = row.verdict
    notes = ", ".join(f"{k}={v}" for k, v in row.notes.items() if k != "crashes")
    return (
        f"{row.scenario:<26}{v.expected:>9}{v.emitted:>9}{len(v.lost):>6}"
        f"{len(v.doubled):>8}{v.entries:>9}{v.events_short:>9}{row.seconds:>9.1f}  {notes}"
    )
