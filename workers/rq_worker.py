"""``asana-hooks worker``: one RQ worker process on our one queue. I/O edge (RQ, Redis).

Choices, all for RQ 3.0:

- ``SimpleWorker`` (jobs run in the worker process, no fork per job): our jobs are short
  Redis scripts and one HTTP call, and forking per job would cost more than the job. A crash
  therefore takes the job with it; that is what Retry + maintenance recover.
- One queue per process: RQ's crash-safe dequeue (BLMOVE into an intermediate list) is used
  only when a worker listens to exactly one queue.
- A heartbeat thread renews the running job's execution every few seconds, so its entry in
  the started registry may expire after EXECUTION_TTL_SECONDS (RQ's default for a
  SimpleWorker is the job timeout + 60 s). A SIGKILLed worker's job is then found by the next
  maintenance run of any worker (every MAINTENANCE_INTERVAL_SECONDS; an idle worker wakes at
  least every WORKER_TTL_SECONDS - 15) and, as every job carries a Retry, runs again: well
  within a minute.
- ``with_scheduler=True``: the scheduler that enqueues flushes (and retries with an
  interval) runs beside the worker; one per queue is active, another takes over when its lock
  expires, or at its next maintenance when the holder was on this host and has exited
  (``workers.schedulerlock``).
- When RQ's loop ends without a stop being asked for (Redis gone in the middle of a job),
  ``main`` starts a new worker once Redis answers again.
- Our maintenance also sweeps batches whose flush went missing (a crash between opening a
  batch and scheduling its flush): any batch overdue by SWEEP_AFTER_SECONDS gets a flush now.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from types import FrameType
from typing import Any

import redis
from rq import Queue, SimpleWorker
from rq.executions import Execution
from rq.job import Job
from rq.registry import StartedJobRegistry
from rq.results import Result
from rq.serializers import JSONSerializer
from rq.worker import WorkerStatus

from asana_hooks import keys
from asana_hooks.queueing import UNREAD_RESULT_TTL_SECONDS
from asana_hooks.redis_conn import connect, unreachable_message
from asana_hooks.settings import Settings
from workers import runtime
from workers.schedulerlock import release_if_holder_died
from workers.scheduling import flush_now

log = logging.getLogger(__name__)

EXECUTION_TTL_SECONDS = 10
"""A running job's started-registry entry lives this long unless its worker renews it."""

HEARTBEAT_SECONDS = 3.0
"""How often a running job's execution is renewed."""

MAINTENANCE_INTERVAL_SECONDS = 5
"""How often a worker cleans RQ's registries (re-queues a dead worker's jobs) and sweeps."""

WORKER_TTL_SECONDS = 20
"""Worker key TTL; an idle worker blocks at most this minus 15 s, then runs maintenance."""

SWEEP_AFTER_SECONDS = 30
"""A batch overdue this long has lost its flush job: enqueue one."""

SWEEP_LIMIT = 1

RESTART_PAUSES_SECONDS = (1.0, 30.0)
"""After RQ's loop ends unasked: the first pause before a new worker, and the longest."""

RESTART_RESET_SECONDS = 60.0
"""A worker that ran this long before its loop ended starts the pauses over."""

PUBSUB_WAKE_SECONDS = 1.0
"""How long the thread that hears RQ's worker commands waits for a message before it looks
whether it should stop. RQ uses 60 s, and since redis-py 8.2 stopping that thread waits for
it: every worker teardown (SIGTERM, the end of a burst) then took up to a minute."""

RQ_LOG_LEVEL = "WARNING"
"""RQ logs every job at INFO; at thousands of jobs a second that is noise, not news."""


class HooksWorker(SimpleWorker):
    """A SimpleWorker whose running job is heartbeated, so a crash is noticed quickly.

    One long-lived thread renews whichever job runs now (a thread per job would cost a
    thread switch per job, which at thousands of jobs a second is most of the work).
    """

    stop_requested = False
    """Set by SIGTERM/SIGINT: when RQ's loop ends, main() knows it was asked to."""

    def request_stop(self, signum: int, frame: FrameType | None) -> None:
        self.stop_requested = True
        super().request_stop(signum, frame)  # type: ignore[no-untyped-call]

    def get_heartbeat_ttl(self, job: Job, working_time: float = 0.0) -> int:
        return EXECUTION_TTL_SECONDS

    def subscribe(self) -> None:
        """RQ's own, with a thread that can be stopped within PUBSUB_WAKE_SECONDS."""
        self.pubsub = self.connection.pubsub()
        self.pubsub.subscribe(**{self.pubsub_channel_name: self.handle_payload})
        self.pubsub_thread = self.pubsub.run_in_thread(  # type: ignore[assignment]
            sleep_time=PUBSUB_WAKE_SECONDS,
            daemon=True,
            exception_handler=self._pubsub_exception_handler,
        )

    def execute_job(self, job: Job, queue: Queue) -> None:
        execution = self.prepare_execution(job)
        self._running = (job, execution)
        self._ensure_beating()
        try:
            self.perform_job(job, queue, execution)
        finally:
            self._running = None
        self.set_state(WorkerStatus.IDLE)

    def handle_job_success(
        self, job: Job, queue: Queue, started_job_registry: StartedJobRegistry, execution: Execution
    ) -> None:
        super().handle_job_success(job, queue, started_job_registry, execution)
        if job.result_ttl != UNREAD_RESULT_TTL_SECONDS:
            return
        # RQ lets a finished delivery or flush job expire after a second, but Redis reclaims
        # an expired key only when it meets it, and among many small keys it lets up to a
        # tenth of them wait: most of Redis's memory once, job records of 2-3 KB each.
        try:
            self.connection.unlink(job.key, Result.get_key(job.id))  # type: ignore[no-untyped-call]
        except redis.RedisError:
            log.warning("worker.unlink_failed job=%s (it expires anyway)", job.id)

    _running: tuple[Job, Execution] | None = None
    _beating: threading.Thread | None = None

    def _ensure_beating(self) -> None:
        if self._beating is None or not self._beating.is_alive():
            self._beating = threading.Thread(target=self._beat, name="job-heartbeat", daemon=True)
            self._beating.start()

    def _beat(self) -> None:
        while True:
            time.sleep(HEARTBEAT_SECONDS)
            running = self._running
            if running is None:
                continue
            job, execution = running
            try:
                self.maintain_heartbeats(job, execution)
            except redis.RedisError:
                log.warning("worker.heartbeat_failed job=%s", job.id, exc_info=True)

    def run_maintenance_tasks(self) -> None:
        try:
            release_if_holder_died(self.connection, keys.QUEUE)
        except redis.RedisError:
            log.warning("worker.scheduler_check_failed", exc_info=True)
        super().run_maintenance_tasks()  # type: ignore[no-untyped-call]
        try:
            sweep_lost_batches()
        except redis.RedisError:
            log.warning("worker.sweep_failed", exc_info=True)


def sweep_lost_batches() -> int:
    """Enqueue a flush for every batch long overdue (its own flush job went missing)."""
    current = runtime.current()
    lost = current.batcher.due(limit=SWEEP_LIMIT, overdue_ms=SWEEP_AFTER_SECONDS * 1000)
    if lost:
        flush_now(current.queue, "rescue of overdue batches")
        log.warning("worker.swept_lost_batches count=%d", len(lost))
    return len(lost)


def build_worker(settings: Settings, **options: Any) -> HooksWorker:
    """A worker on keys.QUEUE with our timings; installs ``settings`` for the jobs."""
    runtime.install(settings)
    connection = redis.Redis.from_url(settings.redis_url)
    queue = Queue(keys.QUEUE, connection=connection, serializer=JSONSerializer)
    return HooksWorker(
        [queue],
        connection=connection,
        serializer=JSONSerializer,
        maintenance_interval=MAINTENANCE_INTERVAL_SECONDS,
        worker_ttl=WORKER_TTL_SECONDS,
        **options,
    )


def main(settings: Settings, *, burst: bool = False) -> None:
    """Run until stopped (SIGTERM/SIGINT finish the current job), or until idle with burst.

    RQ waits out a Redis outage while it waits for work, but an error in the bookkeeping
    around a job (Redis gone in the middle of one) ends its loop. Unless a stop was asked
    for, a new worker starts once Redis answers again; the interrupted job comes back
    through its Retry, as after a crash.
    """
    pause = RESTART_PAUSES_SECONDS[0]
    while True:
        worker = build_worker(settings)
        log.info("worker.start name=%s queue=%s burst=%s", worker.name, keys.QUEUE, burst)
        began = time.monotonic()
        try:
            worker.work(burst=burst, with_scheduler=True, logging_level=RQ_LOG_LEVEL)
        except redis.RedisError as error:  # RQ's teardown needs Redis too
            log.warning("worker.teardown_failed name=%s error=%s", worker.name, error)
            if worker.pubsub_thread is not None:
                worker.pubsub_thread.stop()  # the part of RQ's teardown it did not reach
        if burst or worker.stop_requested:
            return
        if time.monotonic() - began > RESTART_RESET_SECONDS:
            pause = RESTART_PAUSES_SECONDS[0]
        log.error(
            "worker.loop_ended name=%s: RQ logged why above; a new worker starts when Redis "
            "answers (next try in %.0f s)",
            worker.name,
            pause,
        )
        _wait_for_redis(settings.redis_url, first_pause=pause)
        pause = min(pause * 2, RESTART_PAUSES_SECONDS[1])


def _wait_for_redis(url: str, *, first_pause: float) -> None:
    """Sleep, then ping every second until Redis answers (saying so once a minute);
    SIGTERM/SIGINT end the process meanwhile."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # RQ's handlers belong to the old worker
    signal.signal(signal.SIGINT, signal.default_int_handler)
    time.sleep(first_pause)
    connection = connect(url)
    said_at = float("-inf")
    while True:
        try:
            connection.ping()
            return
        except redis.RedisError:
            if time.monotonic() - said_at >= 60:
                log.warning("worker.waiting %s", unreachable_message(url))
                said_at = time.monotonic()
            time.sleep(1.0)
