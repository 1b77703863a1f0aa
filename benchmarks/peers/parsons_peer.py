"""Peer "Parsons": the `parsons.Copper` connector, pointed at the sandbox through its `uri`
attribute (parsons/copper/copper.py sets `self.uri = COPPER_URI` in `__init__`).

Run by `benchmarks/run.py` with the Python of its own venv (benchmarks/.venvs/parsons); it
imports nothing from this project. Prints one JSON line on stdout:
{"seconds": float, "entities": {entity: [ids]}, "notes": [str]}.

Parsons sleeps 1 s after every page "to avoid hitting rate limits". The benchmark compresses
Copper's time by k (window 60/k s, latency 1/k s), so that sleep is compressed by k too
(`--k`); with `--real-sleep` it sleeps the full second. Nothing else of Parsons is changed.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import time
import types

# the public getters of parsons.Copper for Copper's seven searchable entities
GETTERS = {
    "people": "get_people",
    "companies": "get_companies",
    "opportunities": "get_opportunities",
    "activities": "get_activities",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--user-email", required=True)
    parser.add_argument("--k", type=float, default=1.0)
    parser.add_argument("--real-sleep", action="store_true")
    parser.add_argument("--workdir", default="")
    args = parser.parse_args()

    import parsons
    import parsons.copper.copper as parsons_copper

    if not args.real_sleep and args.k != 1:
        k = args.k
        parsons_copper.time = types.SimpleNamespace(sleep=lambda s: time.sleep(s / k))

    copper = parsons.Copper(user_email=args.user_email, api_key=args.api_key)
    copper.uri = args.base_url.rstrip("/")
    version = importlib.metadata.version("parsons")
    sleep = "1 s" if args.real_sleep or args.k == 1 else f"1/{args.k:g} s"
    notes = [f"parsons {version}, uri attribute overwritten, sleep after each page {sleep}"]
    entities: dict[str, list] = {}
    started = time.monotonic()
    for entity, getter in GETTERS.items():
        tables = getattr(copper, getter)()
        main_table = next((t["tbl"] for t in tables if t["name"] == entity), None)
        ids = list(main_table["id"]) if main_table is not None else []
        bad = [i for i in ids if not isinstance(i, int)]
        if bad:
            notes.append(f"{entity}: {len(bad)} rows without an integer id (error bodies kept)")
        entities[entity] = [i for i in ids if isinstance(i, int)]
    try:
        custom = copper.get_custom_fields()
        n = next((t["tbl"].num_rows for t in custom if t["name"] == "custom_fields"), 0)
        notes.append(f"get_custom_fields: {n} definitions")
    except Exception as exc:  # a failing extra getter is a finding, not a crash
        notes.append(f"get_custom_fields failed: {type(exc).__name__}: {exc}")
    seconds = time.monotonic() - started
    print(json.dumps({"seconds": seconds, "entities": entities, "notes": notes}), flush=True)


if __name__ == "__main__":
    main()
