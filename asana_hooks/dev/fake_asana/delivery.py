"""The webhook sender: batching, signing, retries, heartbeats, deletion. Does network I/O.

Runs its own asyncio loop in a background thread, with one worker task per webhook.
Deliveries to one webhook go out one at a time and in order: a failing delivery stays at
the head (retried with scaled exponential backoff) and blocks the rest, as Asana pauses
delivery. 200/204 is success; 410 deletes the webhook; anything else, a timeout or a
connection error is a failure. 24 h (scaled) after the first failure in a streak without a
success, the webhook is deleted. Heartbeats (empty ``events``) go out shortly after
creation, on demand and every 8 h (scaled). All shared state lives under the fake's lock;
the lock is never held while sending.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx

from .event import Event
from .records import DeliveryRecord, Knobs
from .signing import encode_body, sign
from .timing import Timing
from .util import iso_now
from .webhooks import Delivery, Webhook
from .world import World

__all__ = ["MAX_EVENTS_PER_DELIVERY", "DeliveryEngine"]

MAX_EVENTS_PER_DELIVERY = 100
USER_AGENT = "asana-hooks-fake-asana/1.0"
Recorder = Callable[[DeliveryRecord], None]


class DeliveryEngine:
    def __init__(
        self,
        world: World,
        timing: Timing,
        knobs: Knobs,
        record: Recorder,
        record_dropped: Recorder,
    ) -> None:
        self.lock = world.lock
        self.world = world
        self.timing = timing
        self.knobs = knobs
        self._record = record
        self._record_dropped = record_dropped
        self.webhooks: dict[str, Webhook] = {}
        self._wakes: dict[str, asyncio.Event] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._client: httpx.AsyncClient | None = None
        self._stopping = False

    # ------------------------------------------------------------ lifecycle
    def start(self) -> None:
        self._thread = threading.Thread(target=self._thread_main, name="fake-asana-delivery")
        self._thread.daemon = True
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("delivery engine did not start")

    def _thread_main(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with httpx.AsyncClient(trust_env=False, follow_redirects=False) as client:
            self._client = client
            with self.lock:
                pending = list(self.webhooks.values())
            for webhook in pending:
                self._spawn(webhook)
            self._ready.set()
            await self._stop.wait()
            tasks = list(self._tasks.values())
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def stop(self) -> None:
        self._stopping = True
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(stop.set)
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _spawn(self, webhook: Webhook) -> None:
        if self._stopping or webhook.gid in self._tasks or webhook.deleted:
            return
        self._tasks[webhook.gid] = asyncio.get_running_loop().create_task(self._worker(webhook))

    def _wake(self, gid: str) -> None:
        wake, loop = self._wakes.get(gid), self._loop
        if wake is not None and loop is not None and not self._stopping:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(wake.set)

    # ------------------------------------------------------- registry (any thread)
    def add(self, webhook: Webhook) -> None:
        """Register a freshly handshaken webhook and queue its first heartbeat."""
        now = time.monotonic()
        with self.lock:
            webhook.next_heartbeat_at = now + self.timing.heartbeat_interval
            first = Delivery(events=[], heartbeat=True)
            first.not_before = now + self.timing.first_heartbeat_delay
            webhook.queue.append(first)
            self.webhooks[webhook.gid] = webhook
            self._wakes[webhook.gid] = asyncio.Event()
        loop = self._loop
        if loop is not None and not self._stopping:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._spawn, webhook)

    def remove(self, gid: str) -> Webhook | None:
        with self.lock:
            webhook = self.webhooks.pop(gid, None)
            if webhook is None:
                return None
            webhook.deleted = True
            webhook.active = False
            webhook.buffer.clear()
            webhook.queue.clear()
            webhook.current = None
        self._wake(gid)
        return webhook

    def route(self, event: Event, targets: frozenset[str]) -> None:
        """World listener: buffer the event for every webhook that should receive it."""
        now = time.monotonic()
        woken: list[str] = []
        with self.lock:
            rendered: dict[str, Any] | None = None
            for webhook in self.webhooks.values():
                if webhook.resource_gid not in targets or not webhook.wants(event):
                    continue
                rendered = rendered or event.webhook_json()
                if not webhook.buffer:
                    webhook.buffer_since = now
                    woken.append(webhook.gid)
                webhook.buffer.append(rendered)
        for gid in woken:
            self._wake(gid)

    def heartbeat(self, gid: str | None = None) -> list[str]:
        """Queue a heartbeat for one webhook or all; returns the gids."""
        with self.lock:
            chosen = [w for w in self.webhooks.values() if gid is None or w.gid == gid]
            for webhook in chosen:
                webhook.queue.append(Delivery(events=[], heartbeat=True))
        for webhook in chosen:
            self._wake(webhook.gid)
        return [w.gid for w in chosen]

    def is_idle(self) -> bool:
        with self.lock:
            return all(w.idle for w in self.webhooks.values())

    # ------------------------------------------------------------- the worker
    async def _worker(self, webhook: Webhook) -> None:
        wake = self._wakes[webhook.gid]
        while not webhook.deleted and not self._stopping:
            delivery, wait = self._next_step(webhook)
            if delivery is not None:
                await self._attempt(webhook, delivery)
                continue
            if webhook.deleted:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), timeout=wait)
            wake.clear()
        self._tasks.pop(webhook.gid, None)
        self._wakes.pop(webhook.gid, None)

    def _next_step(self, webhook: Webhook) -> tuple[Delivery | None, float | None]:
        """Under the lock: housekeeping, then either a delivery to send now or how long to wait."""
        now = time.monotonic()
        with self.lock:
            if webhook.deleted:
                return None, None
            if self._due_for_deletion(webhook, now):
                self.remove(webhook.gid)
                return None, None
            if now >= webhook.next_heartbeat_at:
                webhook.queue.append(Delivery(events=[], heartbeat=True))
                webhook.next_heartbeat_at = now + self.timing.heartbeat_interval
            since = webhook.buffer_since
            if webhook.buffer and since is not None and now >= since + self.timing.batch_window:
                self._flush_buffer(webhook)
            if webhook.current is None and webhook.queue:
                index = random.randrange(len(webhook.queue)) if self.knobs.reorder else 0
                webhook.current = webhook.queue[index]
                del webhook.queue[index]
            deadlines = [webhook.next_heartbeat_at]
            if webhook.current is not None:
                if now >= webhook.current.not_before:
                    webhook.sending = True
                    return webhook.current, None
                deadlines.append(webhook.current.not_before)
            if webhook.buffer_since is not None and webhook.buffer:
                deadlines.append(webhook.buffer_since + self.timing.batch_window)
            if webhook.deletion_deadline is not None:
                deadlines.append(webhook.deletion_deadline)
            resource_deadline = self._resource_deadline(webhook)
            if resource_deadline is not None:
                deadlines.append(resource_deadline)
            return None, max(0.0, min(deadlines) - now)

    def _resource_deadline(self, webhook: Webhook) -> float | None:
        entity = self.world.objects.get(webhook.resource_gid)
        if entity is None or entity.deleted_at is None:
            return None
        return entity.deleted_at + self.timing.deleted_resource_webhook_ttl

    def _due_for_deletion(self, webhook: Webhook, now: float) -> bool:
        if webhook.deletion_deadline is not None and now >= webhook.deletion_deadline:
            return True
        resource_deadline = self._resource_deadline(webhook)
        return resource_deadline is not None and now >= resource_deadline

    def _flush_buffer(self, webhook: Webhook) -> None:
        events, webhook.buffer, webhook.buffer_since = webhook.buffer, [], None
        for start in range(0, len(events), MAX_EVENTS_PER_DELIVERY):
            chunk = events[start : start + MAX_EVENTS_PER_DELIVERY]
            if self.knobs.reorder:
                random.shuffle(chunk)
            webhook.queue.append(Delivery(events=chunk))

    async def _attempt(self, webhook: Webhook, delivery: Delivery) -> None:
        try:
            if self.knobs.delivery_delay > 0:
                await asyncio.sleep(self.knobs.delivery_delay)
            if not delivery.body:
                delivery.body = encode_body(delivery.events)
            signature = sign(webhook.secret, delivery.body)
            first = delivery.attempts == 0
            delivery.attempts += 1
            if first and not delivery.heartbeat and random.random() < self.knobs.drop_rate:
                self._record_dropped(self._new_record(webhook, delivery, signature))
                with self.lock:
                    if webhook.current is delivery:
                        webhook.current = None
                return
            record = await self._send(webhook, delivery, signature)
            status = record.status
            if status in (200, 204):
                self._on_success(webhook, delivery)
                for _ in range(max(0, self.knobs.duplicate_deliveries)):
                    await self._send(webhook, delivery, signature, duplicate=True)
            elif status == 410:
                self.remove(webhook.gid)
            else:
                self._on_failure(webhook, delivery, record)
        finally:
            with self.lock:
                webhook.sending = False

    def _new_record(self, webhook: Webhook, delivery: Delivery, signature: str) -> DeliveryRecord:
        return DeliveryRecord(
            webhook_gid=webhook.gid,
            target=webhook.target,
            events=delivery.events,
            body=delivery.body,
            signature=signature,
            at=time.monotonic(),
            heartbeat=delivery.heartbeat,
        )

    async def _send(
        self, webhook: Webhook, delivery: Delivery, signature: str, *, duplicate: bool = False
    ) -> DeliveryRecord:
        record = self._new_record(webhook, delivery, signature)
        record.duplicate = duplicate
        headers = {
            "Content-Type": "application/json",
            "X-Hook-Signature": signature,
            "User-Agent": USER_AGENT,
        }
        client = self._client
        assert client is not None  # noqa: S101 - set before any worker runs
        try:
            response = await client.post(
                webhook.target,
                content=delivery.body,
                headers=headers,
                timeout=self.knobs.delivery_timeout,
            )
            record.status = response.status_code
            if response.status_code not in (200, 204):
                snippet = response.text[:500]
                record.error = f"{response.status_code} {response.reason_phrase}\n\n{snippet}"
        except httpx.TimeoutException:
            record.error = f"Timed out after {self.knobs.delivery_timeout:g} seconds"
        except (httpx.HTTPError, httpx.InvalidURL, OSError) as exc:
            record.error = f"Could not connect: {type(exc).__name__}: {exc}"
        record.latency = time.monotonic() - record.at
        self._record(record)
        return record

    def _on_success(self, webhook: Webhook, delivery: Delivery) -> None:
        with self.lock:
            webhook.last_success_at = iso_now()
            webhook.delivery_retry_count = 0
            webhook.next_attempt_after = None
            webhook.failure_deletion_timestamp = None
            webhook.deletion_deadline = None
            if webhook.current is delivery:
                webhook.current = None

    def _on_failure(self, webhook: Webhook, delivery: Delivery, record: DeliveryRecord) -> None:
        now = time.monotonic()
        with self.lock:
            if webhook.deleted:
                return
            webhook.last_failure_at = iso_now()
            webhook.last_failure_content = record.error
            if webhook.deletion_deadline is None:
                webhook.deletion_deadline = now + self.timing.failure_deletion
                webhook.failure_deletion_timestamp = iso_now(self.timing.failure_deletion)
            webhook.delivery_retry_count += 1
            delay = self.timing.backoff(webhook.delivery_retry_count)
            delivery.not_before = now + delay
            webhook.next_attempt_after = iso_now(delay)
