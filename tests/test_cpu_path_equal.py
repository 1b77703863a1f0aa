"""The Arrow path (the default), with its tables built in this process or in worker processes,
and the dict path (`arrow_tables=False`, every record through dlt's normalizer) make the same
warehouse: every table, column (name, order, type, nullability) and value, after a full load
and after an incremental load that changes, adds and deletes records and their child rows;
untidy records among them (they take the dict path inside the Arrow one)."""

from __future__ import annotations

import json
import logging
import random
from collections import Counter
from pathlib import Path
from typing import Any

from dlt.common.normalizers.json.helpers import get_nested_row_hash

from copper import ClientStats
from copper.settings import ENTITIES
from copper_sandbox import SandboxAccount

from .warehouse import Loader

DLT_TABLES = {"_dlt_loads", "_dlt_version", "_dlt_pipeline_state"}
ID_COLUMNS = ("_dlt_id", "_dlt_parent_id", "_dlt_root_id", "_dlt_load_id")
ENTITY_NAMES = {e.name for e in ENTITIES}
# when a deletion was found: the moment each run looked, not a fact of the account
DETECTION_TIMES = {"_copper_deleted_at", "detected_at"}


def test_arrow_and_dict_paths_make_the_same_warehouse(serve, tmp_path, caplog):
    account = SandboxAccount.generate(seed=31, scale=0.15)
    _untidy(account, random.Random(1), "first")
    with serve(account) as running:
        paths = {
            "dicts": Loader(tmp_path / "dicts", running, name="dicts"),
            "arrow": Loader(tmp_path / "arrow", running, name="arrow"),
            "workers": Loader(tmp_path / "workers", running, name="workers"),
        }
        stats = {"arrow": ClientStats(), "workers": ClientStats()}
        options = {
            "dicts": {"arrow_tables": False},
            "arrow": {"arrow_processes": 0, "stats": stats["arrow"]},
            "workers": {"arrow_processes": 2, "stats": stats["workers"]},  # from the start
        }
        warned = {}
        for name, loader in paths.items():
            caplog.clear()
            with caplog.at_level(logging.INFO, logger="copper"):
                loader.run(**options[name])
            warned[name] = _warnings(caplog)
        # the workers built the rows of every record, and their custom-field warnings were
        # logged once each
        entity_records = sum(stats["workers"].entity(e).extracted for e in ENTITY_NAMES)
        assert stats["workers"].built_by_workers == entity_records > 0
        assert stats["workers"].worker_cpu_seconds > 0
        assert stats["arrow"].built_by_workers == 0
        assert warned["workers"] == warned["arrow"] != []
        # nothing left of the files that went between the processes, once dlt took them
        spool = Path(paths["workers"].pipeline.working_dir)
        assert not list(spool.glob("copper-arrow-*/*"))
        for name in ("arrow", "workers"):
            tables = _from_arrow(paths[name])
            assert {"activities", "people", "people__emails", "people__tags"} <= tables
        assert not _from_arrow(paths["dicts"])
        first = {name: _warehouse(loader) for name, loader in paths.items()}
        _assert_same(first["dicts"], first["arrow"])
        _assert_same(first["dicts"], first["workers"])
        _assert_dlt_ids_as_dlt_makes_them(paths["arrow"])
        _assert_dlt_ids_as_dlt_makes_them(paths["workers"])

        rng = random.Random(2)
        account.clock.advance(60)
        for entity in ("people", "companies", "leads", "opportunities", "projects", "tasks"):
            for record_id in account.touch_random(entity, 15, rng):
                record = account.get(entity, record_id)
                changes: dict[str, Any] = {"tags": record.get("tags", [])[:1]}
                if record.get("emails"):
                    changes["emails"] = record["emails"][1:]  # a child row goes
                if record.get("phone_numbers"):
                    changes["phone_numbers"] = [
                        *record["phone_numbers"],
                        record["phone_numbers"][0],
                    ]
                account.update(entity, record_id, changes)
            account.delete_random(entity, 3, rng)
        _untidy(account, rng, "second")
        for name, loader in paths.items():
            loader.run(reconcile_every_hours=0, **options[name])
        second = {name: _warehouse(loader) for name, loader in paths.items()}
    _assert_same(second["dicts"], second["arrow"])
    _assert_same(second["dicts"], second["workers"])
    _assert_dlt_ids_as_dlt_makes_them(paths["arrow"])
    _assert_dlt_ids_as_dlt_makes_them(paths["workers"])
    assert second["arrow"] != first["arrow"]  # the second load changed something


def _warnings(caplog) -> list[str]:
    """The run's custom-field warnings, sorted."""
    return sorted(m for r in caplog.records if (m := r.getMessage()).startswith("custom field"))


def _untidy(account: SandboxAccount, rng: random.Random, tag: str) -> None:
    """Records dlt's normalizer treats in its own ways: coerced, variant, flattened, decoded."""
    people = account.snapshot("people")
    picks = rng.sample(people, 8)
    edits: list[dict[str, Any]] = [
        {"interaction_count": "12"},  # text in a bigint column: coerced
        {f"legacy_{tag}": True},  # a field the source does not know: a new column
        {"date_last_contacted": "2024-01-01T00:00:00Z"},  # an ISO timestamp: coerced
        {"emails": [{"email": f"{tag}@x.example", "category": "work", "verified": True}]},
        {"socials": [{"url": f"https://{tag}.example", "category": 5}]},  # a number
        {"title": "\uf026" + "12.5"},  # dlt's typed marker for a decimal
        {"address": {"street": "1 Main St", "geo": {"lat": 1.5, "lng": 2}}},  # a deeper dict
        {"date_created": 1_700_000_000_000_000_000},  # nanoseconds: a variant column
    ]
    for person, edit in zip(picks, edits, strict=True):
        account.update("people", person["id"], edit)
    opportunity = rng.choice(account.snapshot("opportunities"))
    account.update("opportunities", opportunity["id"], {"monetary_value": 1e20})
    lead = rng.choice(account.snapshot("leads"))
    account.update("leads", lead["id"], {"monetary_value": 0.1, "socials": [{"url": None}]})


def _warehouse(loader: Loader) -> dict[str, Any]:
    """Every table: its columns (order, type, nullability) and its rows, with dlt's ids
    replaced by what they stand for (a row's content or key; a child row's parent and index;
    a load's position), so two warehouses with different random ids compare."""
    schema = loader.pipeline.default_schema
    tables: dict[str, Any] = {}
    names = [r["table_name"] for r in loader.query(
        "select table_name from information_schema.tables where table_schema = 'copper'"
    )]  # fmt: skip
    loads = sorted(r["load_id"] for r in loader.query("select load_id from {dataset}._dlt_loads"))
    canonical: dict[str, str] = {}  # _dlt_id -> what it stands for
    # parents first: a child's canonical id is made from its parent's
    order = sorted((n for n in names if n not in DLT_TABLES), key=lambda n: n.count("__"))
    for table in order:
        columns = loader.query(
            "select column_name, data_type, is_nullable from information_schema.columns "
            f"where table_schema = 'copper' and table_name = '{table}' order by ordinal_position"
        )
        rows = loader.rows(table)
        out = []
        for row in rows:
            key = {k: _plain(v) for k, v in row.items() if k not in ID_COLUMNS}
            key.update({k: row[k] is not None for k in DETECTION_TIMES & row.keys()})
            if "_dlt_parent_id" in row:
                key["_parent"] = canonical[row["_dlt_parent_id"]]
                if "_dlt_root_id" in row:
                    key["_root"] = canonical[row["_dlt_root_id"]]
                ident = json.dumps([table, key["_parent"], row["_dlt_list_idx"]])
            elif table in ENTITY_NAMES:
                ident = json.dumps([table, row["id"]])
            else:
                ident = json.dumps([table, key], sort_keys=True, default=str)
            if "_dlt_id" in row:
                canonical[row["_dlt_id"]] = ident
            if "_dlt_load_id" in row:
                key["_load"] = loads.index(row["_dlt_load_id"])
            out.append(json.dumps(key, sort_keys=True, default=repr))
        tables[table] = {
            "columns": [tuple(c.values()) for c in columns],
            "parent": schema.tables[table].get("parent"),
            "rows": Counter(out),
        }
    return tables


def _plain(value: Any) -> Any:
    """A value with its Python type, comparable as JSON."""
    return [type(value).__name__, repr(value)]


def _assert_same(dicts: dict[str, Any], arrow: dict[str, Any]) -> None:
    assert sorted(arrow) == sorted(dicts)
    for table in dicts:
        a, d = arrow[table], dicts[table]
        # columns the untidy records add come in the order dlt's normalize workers happen to
        # meet them, on either path: their order is left out, not their names and types
        assert sorted(a["columns"]) == sorted(d["columns"]), table
        assert _settled(a["columns"]) == _settled(d["columns"]), table
        assert a["parent"] == d["parent"], table
        if a["rows"] != d["rows"]:
            only_arrow = list((a["rows"] - d["rows"]).elements())[:3]
            only_dicts = list((d["rows"] - a["rows"]).elements())[:3]
            raise AssertionError(f"{table}: only arrow {only_arrow}; only dicts {only_dicts}")


def _from_arrow(loader: Loader) -> set[str]:
    """Tables the last run extracted Arrow tables for (parquet files at extract)."""
    info = loader.pipeline.last_trace.last_extract_info
    files = [job for m in info.metrics.values() for step in m for job in step["job_metrics"]]
    return {job.split(".")[0] for job in files if job.endswith(".parquet")}


def _settled(columns: list[tuple]) -> list[tuple]:
    return [c for c in columns if not any(u in c[0] for u in ("legacy_", "__geo", "__v_"))]


def _assert_dlt_ids_as_dlt_makes_them(loader: Loader) -> None:
    """Child rows of an entity: the root id is the parent's, the row id dlt's hash of both."""
    for table in loader.pipeline.default_schema.tables:
        root = table.split("__")[0]
        if root not in ENTITY_NAMES or table == root:
            continue
        rows = loader.rows(table)
        parents = {r["_dlt_id"] for r in loader.rows(root)}
        for row in rows:
            assert row["_dlt_root_id"] == row["_dlt_parent_id"] in parents, table
            expected = get_nested_row_hash(row["_dlt_parent_id"], table, row["_dlt_list_idx"])
            assert row["_dlt_id"] == expected, table
