"""Peer "tap-copper": the Singer tap from PyPI, driven the way its `main()` drives it (discover,
select every stream, `sync(client, config, catalog, state)`), with one difference: the
`Client` instance's `base_url` attribute is set to the sandbox after construction.

Why not the CLI: `Client.__init__` (tap_copper/client.py) hard-codes
`self.base_url = "https://api.copper.com/developer_api/v1"`; the config key `base_url` is read
only by discovery's authorization probe (tap_copper/schema.py). The attribute is public and
every stream builds its URL from `self.client.base_url`, so overwriting it on the instance, as
for Parsons' `uri`, is no edit of the tap's code.

Run by `benchmarks/run.py` with the Python of its own venv (benchmarks/.venvs/tap-copper); the
Singer messages go to a file in --workdir. Prints one JSON line on stdout:
{"seconds": float, "entities": {entity: [ids]}, "notes": [str]}.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time
from pathlib import Path

STREAM_TO_ENTITY = {
    "people": "people",
    "companies": "companies",
    "leads": "leads",
    "opportunities": "opportunities",
    "projects": "projects",
    "tasks": "tasks",
    "activities_search": "activities",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--user-email", required=True)
    parser.add_argument("--k", type=float, default=1.0, help="unused: no knob in the tap")
    parser.add_argument("--page-size", type=int, default=200, help="the tap's page_size config")
    parser.add_argument(
        "--deselect",
        nargs="*",
        default=["pipeline_stages"],
        help="streams left out (pipeline_stages POSTs to /pipeline_stages/search, which Copper "
        "does not have: its 404 ends the whole sync)",
    )
    parser.add_argument("--workdir", required=True)
    args = parser.parse_args()

    from singer import metadata
    from tap_copper.client import Client
    from tap_copper.discover import discover
    from tap_copper.sync import sync

    config = {
        "api_key": args.api_key,
        "user_email": args.user_email,
        "start_date": "2000-01-01T00:00:00Z",
        "base_url": args.base_url,  # honoured by discovery's probe only
        "page_size": args.page_size,
    }
    messages = Path(args.workdir) / "tap_copper.singer.jsonl"
    started = time.monotonic()
    with messages.open("w") as out, contextlib.redirect_stdout(out):
        catalog = discover(config)
        for entry in catalog.streams:
            mdata = metadata.to_map(entry.metadata)
            for breadcrumb in list(mdata):
                selected = entry.tap_stream_id not in args.deselect
                mdata = metadata.write(mdata, breadcrumb, "selected", selected)
            entry.metadata = metadata.to_list(mdata)
        with Client(config) as client:
            client.base_url = args.base_url.rstrip("/")
            sync(client=client, config=config, catalog=catalog, state={})
    seconds = time.monotonic() - started

    entities: dict[str, list[int]] = {e: [] for e in STREAM_TO_ENTITY.values()}
    records = 0
    with messages.open() as lines:
        for line in lines:
            message = json.loads(line)
            if message.get("type") != "RECORD":
                continue
            records += 1
            entity = STREAM_TO_ENTITY.get(message["stream"])
            if entity is not None:
                entities[entity].append(int(message["record"]["id"]))
    notes = [
        f"{records:,} Singer RECORD messages in all streams; page_size {args.page_size}; "
        f"streams deselected: {', '.join(args.deselect) or 'none'}"
    ]
    print(json.dumps({"seconds": seconds, "entities": entities, "notes": notes}), flush=True)


if __name__ == "__main__":
    main()
