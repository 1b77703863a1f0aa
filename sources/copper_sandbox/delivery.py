"""Webhook delivery: record changes batched per subscription, POSTed over HTTPS from threads.

As Copper documents it: a notification names 1 to 30 ids; it is fired at most once and never
retried, whatever the receiver answers. Changes one subscription hears within
`webhook_batch_seconds` of the first (with the same updated_attributes) share a notification.
Lossy on purpose: a seeded `webhook_drop_rate` share is dropped, and a failed delivery
(connection error, timeout, non-2xx) is lost too. A mutation only appends to a buffer: delivery
never blocks it, and no delivery error reaches the sandbox.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import random
import ssl
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx
import orjson

from .account import Change, SandboxAccount
from .chaos import SandboxConfig
from .webhooks import computed_attributes, get_subscription, subscribers

log = logging.getLogger(__name__)
MAX_IDS = 30  # Copper: "up to 30 IDs in a single notification"
WORKERS = 4  # concurrent deliveries: one slow receiver does not hold up the others
LOG_SIZE = 1000


@dataclass
class _Batch:
    subscription_id: int
    event: str
    attributes: dict | None
    due: float
    ids: list[int] = field(default_factory=list)


class Notifier:
    """Hears an account's changes and delivers its webhook notifications."""

    def __init__(self, account: SandboxAccount, config: SandboxConfig) -> None:
        self.account = account
        self.config = config
        self._cond = threading.Condition()
        self._pending: dict[tuple, _Batch] = {}
        self._ready: list[_Batch] = []
        self._outbox: queue.Queue = queue.Queue()
        self._threads: list[threading.Thread] = []
        self._closed = False
        self._rng = random.Random(f"webhooks:{config.seed}")
        self._counts: Counter[str] = Counter()
        self._log: deque[dict] = deque(maxlen=LOG_SIZE)
        self._clients: dict[str | None, httpx.Client] = {}
        self._lock = threading.Lock()  # counters, log, clients
        self.start()

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        """Listen to the account (again); threads start with the first notification."""
        with self._cond:
            self._closed = False
        with self.account.lock:
            if self.on_change not in self.account.listeners:
                self.account.listeners.append(self.on_change)

    def close(self) -> None:
        """Stop listening and delivering; undelivered notifications are lost."""
        with self.account.lock:
            if self.on_change in self.account.listeners:
                self.account.listeners.remove(self.on_change)
        with self._cond:
            self._closed = True
            self._pending.clear()
            self._ready.clear()
            threads, self._threads = self._threads, []
            outbox, self._outbox = self._outbox, queue.Queue()
            self._cond.notify_all()
        with contextlib.suppress(queue.Empty):  # undelivered: lost
            while True:
                outbox.get_nowait()
        for _ in threads:
            outbox.put(None)
        for thread in threads:
            thread.join(timeout=2)
        with self._lock:
            clients, self._clients = self._clients, {}
        for client in clients.values():
            client.close()

    # -- hearing changes (under the account's lock: only buffers) ----------------------------
    def on_change(self, change: Change) -> None:
        subscriptions = subscribers(self.account, change.entity, change.event)
        if not subscriptions:
            return
        attrs = change.updated_attributes
        attrs_key = b"" if attrs is None else orjson.dumps(attrs, option=orjson.OPT_SORT_KEYS)
        due = time.monotonic() + max(0.0, self.config.webhook_batch_seconds)
        with self._cond:
            if self._closed:
                return
            for subscription in subscriptions:
                key = (subscription["id"], change.event, attrs_key)
                for record_id in change.ids:
                    batch = self._pending.setdefault(
                        key, _Batch(subscription["id"], change.event, attrs, due)
                    )
                    if record_id not in batch.ids:
                        batch.ids.append(record_id)
                    if len(batch.ids) >= MAX_IDS:
                        self._ready.append(self._pending.pop(key))
            self._start_threads()
            self._cond.notify_all()

    def _start_threads(self) -> None:
        if self._threads:
            return
        targets = [self._dispatch_loop] + [self._send_loop] * WORKERS
        for k, target in enumerate(targets):
            name = "copper-webhooks-dispatch" if k == 0 else f"copper-webhooks-send-{k}"
            thread = threading.Thread(target=target, args=(self._outbox,), name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    # -- dispatching due batches -------------------------------------------------------------
    def _dispatch_loop(self, outbox: queue.Queue) -> None:
        while True:
            with self._cond:
                while True:
                    if self._closed or outbox is not self._outbox:
                        return
                    now = time.monotonic()
                    for key, batch in list(self._pending.items()):
                        if batch.due <= now:
                            self._ready.append(self._pending.pop(key))
                    if self._ready:
                        batches, self._ready = self._ready, []
                        break
                    due = min((b.due for b in self._pending.values()), default=None)
                    self._cond.wait(None if due is None else max(0.0, due - now))
            for batch in batches:
                try:
                    self._dispatch(batch, outbox)
                except Exception:
                    log.exception("webhook dispatch failed")

    def _dispatch(self, batch: _Batch, outbox: queue.Queue) -> None:
        try:
            subscription = dict(get_subscription(self.account, batch.subscription_id))
        except KeyError:
            self._note(batch, None, "cancelled")  # unsubscribed meanwhile: delivery stopped
            return
        payload = {
            **subscription["secret"],
            "ids": list(batch.ids),
            "type": subscription["type"],
            "event": batch.event,
            "subscription_id": subscription["id"],
            "timestamp": self._timestamp(),
        }
        if batch.event == "update":
            attrs = batch.attributes or {}
            if subscription.get("custom_field_computed_values"):
                attrs = computed_attributes(self.account, attrs)
            payload["updated_attributes"] = attrs
        if self._rng.random() < self.config.webhook_drop_rate:
            self._note(batch, payload, "dropped")
            return
        outbox.put((subscription, payload, batch))

    def _timestamp(self) -> str:
        """ISO 8601 with milliseconds on the account's clock, like "2021-12-13T19:18:22.084Z"."""
        moment = datetime.fromtimestamp(time.time() + self.account.clock.offset, UTC)
        return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")

    # -- sending -----------------------------------------------------------------------------
    def _send_loop(self, outbox: queue.Queue) -> None:
        while (item := outbox.get()) is not None:
            if outbox is not self._outbox:
                continue  # closed: what is left is lost
            subscription, payload, batch = item
            try:
                response = self._client().post(
                    subscription["target"],
                    content=orjson.dumps(payload),
                    headers={"Content-Type": "application/json", **subscription["headers"]},
                    timeout=self.config.webhook_timeout,
                )
                outcome = "sent" if response.is_success else "failed"
                self._note(batch, payload, outcome, response.status_code)
            except Exception as exc:  # at most once: never retried
                self._note(batch, payload, "failed", error=f"{type(exc).__name__}: {exc}")

    def _client(self) -> httpx.Client:
        ca_file = self.config.webhook_ca_file
        with self._lock:
            client = self._clients.get(ca_file)
            if client is None:
                context = ssl.create_default_context()
                if ca_file:
                    context.load_verify_locations(ca_file)
                client = httpx.Client(verify=context, trust_env=False, follow_redirects=False)
                self._clients[ca_file] = client
            return client

    # -- what happened -----------------------------------------------------------------------
    def _note(
        self,
        batch: _Batch,
        payload: dict | None,
        outcome: str,
        status: int | None = None,
        error: str | None = None,
    ) -> None:
        entry = {
            "subscription_id": batch.subscription_id,
            "event": batch.event,
            "ids": list(batch.ids),
            "outcome": outcome,
            "status": status,
            "error": error,
            "timestamp": (payload or {}).get("timestamp"),
        }
        with self._lock:
            self._counts[outcome] += 1
            self._log.append(entry)

    def stats(self) -> dict:
        """Notifications sent, dropped (drop rate), failed (delivery), cancelled, pending."""
        with self._cond:
            pending = len(self._pending) + len(self._ready) + self._outbox.qsize()
        with self._lock:
            counts = {k: self._counts.get(k, 0) for k in ("sent", "dropped", "failed")}
            return counts | {"cancelled": self._counts.get("cancelled", 0), "pending": pending}

    def notifications(self) -> list[dict]:
        """The last notifications (up to 1000) and what became of each."""
        with self._lock:
            return list(self._log)

    def reset_stats(self) -> None:
        with self._lock:
            self._counts.clear()
            self._log.clear()
