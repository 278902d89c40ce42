"""A process that resumes one flow and is killed (SIGKILL) at a chosen point.

Run by tests/crash/test_crash.py as ``python -m tests.crash.child``. After every
save the store acknowledged, it prints ``ack <version>`` and flushes, so the parent
knows which transitions were acknowledged before the kill.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import sys
import threading
import time
from typing import Any, cast

import httpx

import flow
from flow.record import FlowRecord


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


class KillingStore:
    """A store opened from its URL that kills the process around the Nth save."""

    def __init__(self, url: str, point: str, nth: int) -> None:
        self.store = flow.open_store(url)
        self.point, self.nth, self.saves = point, nth, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    def save(self, record: FlowRecord) -> None:
        self.saves += 1
        if self.point == "before_commit" and self.saves == self.nth:
            die()
        self.store.save(record)
        print(f"ack {record.version}", flush=True)
        if self.point == "after_commit" and self.saves == self.nth:
            die()


class KillingTransport(httpx.HTTPTransport):
    """Kills the process just before the request leaves, or just after the answer."""

    def __init__(self, point: str) -> None:
        super().__init__()
        self.point = point

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if self.point == "before_http":
            die()
        response = super().handle_request(request)
        response.read()
        if self.point == "after_http":
            die()
        return response


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--store", required=True)
    parser.add_argument("--callback", required=True)
    parser.add_argument("--point", required=True)
    parser.add_argument("--nth", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    if args.point == "random":
        delay = random.Random(args.seed).uniform(0.0, 0.03)
        threading.Timer(delay, die).start()
    store = cast(flow.Store, KillingStore(args.store, args.point, args.nth))
    http = httpx.Client(transport=KillingTransport(args.point))
    with flow.Driver(store, http=http) as driver:
        outcome = driver.resume(args.callback)
    print(f"done {outcome.state}", flush=True)
    time.sleep(0.05)  # give a random timer no chance to fire during exit
    sys.exit(0)


if __name__ == "__main__":
    main()
