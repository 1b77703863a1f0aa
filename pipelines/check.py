"""`copper-pipeline check`: credentials and configuration, validated with one cheap request."""

from __future__ import annotations

from contextlib import suppress

import dlt
import pendulum

from copper import CopperClient
from copper.client import Credentials
from copper.extract import saved_cursor
from copper.settings import BASE_URL, ENTITIES, ENTITY_BY_NAME, REFERENCES

from .runner import RunError, RunOptions, explained, make_pipeline


def copper_setting(name: str, default: object = None) -> object:
    """A `sources.copper.*` value resolved the dlt way (env vars, .dlt/*.toml)."""
    value = dlt.secrets.get(f"sources.copper.{name}")
    if value is None:
        value = dlt.config.get(f"sources.copper.{name}")
    return default if value is None else value


def configured_client() -> tuple[CopperClient, Credentials]:
    """A client with the source's credentials (`sources.copper.api_key`, `user_email` or
    `access_token`, `base_url`), for one-off commands: few retries, short backoff."""
    try:
        credentials = Credentials(
            api_key=copper_setting("api_key"),  # type: ignore[arg-type]
            user_email=copper_setting("user_email"),  # type: ignore[arg-type]
            access_token=copper_setting("access_token"),  # type: ignore[arg-type]
        )
    except ValueError as exc:
        raise RunError(f"missing configuration: {exc}") from None
    base_url = str(copper_setting("base_url", BASE_URL))
    return CopperClient(credentials, base_url, max_attempts=3, max_backoff=2), credentials


def check(options: RunOptions) -> str:
    """GET /account with the configured credentials; describe what a run would load."""
    options.validate()
    base_url = str(copper_setting("base_url", BASE_URL))
    with explained(options):
        client, credentials = configured_client()
        try:
            account = client.get("/account", context="check")
        finally:
            client.close()
    who = (
        "an OAuth access token"
        if credentials.access_token
        else f"the API key of {credentials.user_email}"
    )
    entities = options.entities or [e.name for e in ENTITIES]
    where = (
        f"DuckDB file {options.duckdb_path}"
        if options.destination == "duckdb"
        else "Postgres (DESTINATION__POSTGRES__CREDENTIALS)"
    )
    lines = [
        f"OK: Copper account {account.get('name')!r} (id {account.get('id')}) at {base_url},",
        f"    reached with {who}.",
        f"Would load into {where}, dataset {options.dataset!r}:",
        f"    entities (merged on id): {', '.join(entities)}",
        f"    reference tables (replaced): {', '.join(r.name for r in REFERENCES)}",
        f"    first load from: {options.start_date or 'the beginning'}",
    ]
    lines += _cursors(options, entities)
    return "\n".join(lines)


def _cursors(options: RunOptions, entities: list[str]) -> list[str]:
    """Where the next incremental run resumes, from the local pipeline state."""
    with suppress(Exception):
        state = make_pipeline(options).state.get("sources", {}).get("copper", {})
        resources = state.get("resources", {})
        out = []
        for name in entities:
            state = resources.get(name, {})
            cursor = saved_cursor(state, ENTITY_BY_NAME[name])
            if cursor is not None:
                field = ENTITY_BY_NAME[name].cursor
                at = pendulum.from_timestamp(cursor).to_iso8601_string()
                out.append(f"    {name}: resumes from {field} >= {at}")
        if out:
            return ["Incremental state:", *out]
    return ["Incremental state: none yet (the next run is a full load)"]
