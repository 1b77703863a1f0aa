"""How fast the sandbox serves: server CPU per 200-record page, and pages/s over real HTTP.

    .venv/bin/python benchmarks/sandbox_throughput.py [--records 1000000]

Prints a table of figures. The sandbox must never be the bottleneck of a benchmark.
"""

from __future__ import annotations

import argparse
import os
import random
import threading
import time

import httpx

from copper_sandbox import SandboxAccount, serve_in_subprocess


def cpu_ms_per_page(account: SandboxAccount, bodies: list[dict]) -> float:
    started = time.process_time()
    for body in bodies:
        account.search("people", body)
    return (time.process_time() - started) * 1000 / len(bodies)


def http_pages_per_second(records: int, threads: int, seconds: float) -> tuple[float, float]:
    args = ["--count", f"people={records}", "--rate-limit", "0", "--scale", "0.01"]
    with serve_in_subprocess(*args) as running:
        headers = {
            "X-PW-AccessToken": running.api_key,
            "X-PW-UserEmail": running.user_email,
            "X-PW-Application": "developer_api",
        }
        pages = [0] * threads
        deadline = time.monotonic() + seconds
        max_page = min(records // 200, 500)

        def pull(slot: int) -> None:
            rng = random.Random(slot)
            with httpx.Client(base_url=running.base_url, headers=headers, timeout=60) as client:
                while time.monotonic() < deadline:
                    body = {
                        "page_size": 200,
                        "page_number": rng.randint(1, max_page),
                        "sort_by": "date_modified",
                    }
                    client.post("/people/search", json=body).raise_for_status()
                    pages[slot] += 1

        workers = [threading.Thread(target=pull, args=(i,)) for i in range(threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        rate = sum(pages) / seconds
        return rate, rate * 200


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()

    started = time.monotonic()
    account = SandboxAccount.generate(seed=0, scale=0.01, counts={"people": args.records})
    build = time.monotonic() - started
    stamps = sorted(r["date_modified"] for r in account.tables["people"].records.values())
    rng = random.Random(0)
    plain = [
        {"page_size": 200, "page_number": rng.randint(1, 500), "sort_by": "date_modified"}
        for _ in range(2000)
    ]
    windowed = []
    for _ in range(2000):
        lo = stamps[rng.randrange(len(stamps) - 1000)]
        windowed.append(
            {
                "page_size": 200,
                "page_number": rng.randint(1, 5),
                "sort_by": "date_modified",
                "minimum_modified_date": lo,
                "maximum_modified_date": stamps[-1],
            }
        )
    rows = [
        ("records in the entity", f"{args.records:,}"),
        ("account generation + indexing, s", f"{build:.1f}"),
        (
            "server CPU per 200-record page, ms (sorted walk)",
            f"{cpu_ms_per_page(account, plain):.3f}",
        ),
        (
            "server CPU per 200-record page, ms (modified window)",
            f"{cpu_ms_per_page(account, windowed):.3f}",
        ),
    ]
    del account
    rate, records = http_pages_per_second(args.records, threads=4, seconds=args.seconds)
    rows += [
        ("HTTP pages/s (4 client threads, loopback)", f"{rate:,.0f}"),
        ("HTTP records/s", f"{records:,.0f}"),
        ("cores", str(os.cpu_count())),
    ]
    width = max(len(k) for k, _ in rows)
    print(f"{'figure':<{width}}  value")
    for key, value in rows:
        print(f"{key:<{width}}  {value}")


if __name__ == "__main__":
    main()
