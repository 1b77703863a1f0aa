"""Lead conversion as Copper documents it (POST /leads/{id}/convert).

The body is `{"details": {"person": {...}, "company": {...}, "opportunity": {...}}}`:

* person: name, contact_type_id, assignee_id (defaults: the lead's name and owner);
* company: `id` or `name`, mutually exclusive; a known id or an existing name is joined, a new
  name creates a company, "" creates none. Absent, the lead's company name is used the same way.
  `exact_match: true` matches the name exactly; by default a case-insensitive match is used
  (Copper's "fuzzy matching" of candidates is not modelled);
* opportunity: name, pipeline_id, pipeline_stage_id (default: the pipeline's first stage),
  monetary_value, assignee_id; absent, no opportunity is created.

The answer is `{"person": {...}, "company": {...} | null, "opportunity": {...} | null}`. The
lead gets converted_timestamp (it leaves default lead searches; `include_converted_leads: true`
still returns it) and webhooks hear it deleted, as Copper removes a converted lead.
"""

from __future__ import annotations

from .account import InvalidInput, NotFound, SandboxAccount

PERSON_FIELDS = ("name", "contact_type_id", "assignee_id")
COMPANY_FIELDS = ("id", "name", "exact_match")
OPPORTUNITY_FIELDS = ("name", "pipeline_id", "pipeline_stage_id", "monetary_value", "assignee_id")


def convert_lead(account: SandboxAccount, lead_id: int, body: dict) -> dict:
    """Convert a lead: a person, maybe a company and an opportunity; the lead marked converted."""
    details = body.get("details") or {}
    if not isinstance(details, dict):
        raise InvalidInput("Invalid input: details must be an object")
    person_in = _part(details, "person", PERSON_FIELDS) or {}
    company_in = _part(details, "company", COMPANY_FIELDS)
    opportunity_in = _part(details, "opportunity", OPPORTUNITY_FIELDS)
    with account.lock:
        lead = account.get("leads", lead_id)
        if lead.get("converted_timestamp") is not None:
            raise InvalidInput(f"Invalid input: lead {lead_id} has already been converted")
        pipeline, stage = _pipeline_stage(account, opportunity_in)  # validate before writing
        company = _company(account, lead, company_in)
        person = account.create("people", _person_fields(account, lead, person_in, company))
        opportunity, mark = None, {}
        if opportunity_in is not None:
            fields = _opportunity_fields(lead, opportunity_in, pipeline, stage, person, company)
            converted = {"lead_id": lead_id, "converted_timestamp": person["date_created"]}
            fields["leads_converted_from"] = [converted]
            opportunity = account.create("opportunities", fields)
            value = opportunity.get("monetary_value")
            mark = {
                "converted_opportunity_id": opportunity["id"],
                "converted_value": value,
                "converted_unit": None if value is None else "USD",
            }
        account.convert_lead(lead_id, mark)
        return {"person": person, "company": company, "opportunity": opportunity}


def _part(details: dict, name: str, valid: tuple[str, ...]) -> dict | None:
    part = details.get(name)
    if part is None:
        return None
    if not isinstance(part, dict):
        raise InvalidInput(f"Invalid input: details.{name} must be an object")
    unknown = set(part) - set(valid)
    if unknown:
        raise InvalidInput(
            f"Invalid input: unknown field(s) {', '.join(sorted(unknown))} in details.{name}; "
            f"valid fields are {', '.join(valid)}"
        )
    return part


def _company(account: SandboxAccount, lead: dict, wanted: dict | None) -> dict | None:
    """The company the new person joins (found or created), or None."""
    wanted = wanted if wanted is not None else {"name": lead.get("company_name") or ""}
    if "id" in wanted and "name" in wanted:
        raise InvalidInput("Invalid input: company id and name are mutually exclusive")
    if "id" in wanted:
        try:
            return account.get("companies", int(wanted["id"]))
        except NotFound:
            raise InvalidInput(f"Invalid input: company {wanted['id']} not found") from None
    name = (wanted.get("name") or "").strip()
    if not name:
        return None
    exact = bool(wanted.get("exact_match"))
    for company in account.tables["companies"].records.values():
        other = company.get("name") or ""
        if other == name or (not exact and other.strip().lower() == name.lower()):
            return account.get("companies", company["id"])
    return account.create(
        "companies",
        {
            "name": name,
            "address": None,
            "assignee_id": lead.get("assignee_id"),
            "contact_type_id": _default_contact_type(account),
            "details": None,
            "email_domain": _email_domain(lead),
            "phone_numbers": [],
            "primary_contact_id": None,
            "socials": [],
            "websites": [],
            "interaction_count": 0,
        },
    )


def _person_fields(account: SandboxAccount, lead: dict, wanted: dict, company: dict | None) -> dict:
    name = wanted.get("name") or lead.get("name") or ""
    first, _, last = name.partition(" ")
    email = lead.get("email")
    return {
        "name": name,
        "prefix": lead.get("prefix"),
        "first_name": first or None,
        "middle_name": None,
        "last_name": last or None,
        "suffix": lead.get("suffix"),
        "address": lead.get("address"),
        "assignee_id": wanted.get("assignee_id", lead.get("assignee_id")),
        "company_id": company["id"] if company else None,
        "company_name": company["name"] if company else None,
        "contact_type_id": wanted.get("contact_type_id") or _default_contact_type(account),
        "details": lead.get("details"),
        "emails": [email] if email else [],
        "phone_numbers": lead.get("phone_numbers") or [],
        "socials": lead.get("socials") or [],
        "tags": lead.get("tags") or [],
        "title": lead.get("title"),
        "websites": lead.get("websites") or [],
        "custom_fields": lead.get("custom_fields") or [],  # values of shared definitions carry
        "interaction_count": 0,
        "date_last_contacted": None,
    }


def _pipeline_stage(account: SandboxAccount, wanted: dict | None) -> tuple[dict, dict]:
    if wanted is None:
        return {}, {}
    pipeline_id = wanted.get("pipeline_id")
    pipelines = account.pipelines
    pipeline = (
        pipelines[0]
        if pipeline_id is None
        else next((p for p in pipelines if p["id"] == pipeline_id), None)
    )
    if pipeline is None:
        raise InvalidInput(f"Invalid input: pipeline {pipeline_id} not found")
    stage_id = wanted.get("pipeline_stage_id")
    stages = pipeline["stages"]
    stage = (
        stages[0] if stage_id is None else next((s for s in stages if s["id"] == stage_id), None)
    )
    if stage is None:
        raise InvalidInput(
            f"Invalid input: stage {stage_id} is not a stage of pipeline {pipeline['id']}"
        )
    return pipeline, stage


def _opportunity_fields(
    lead: dict,
    wanted: dict,
    pipeline: dict,
    stage: dict,
    person: dict,
    company: dict | None,
) -> dict:
    return {
        "name": wanted.get("name") or lead.get("name"),
        "assignee_id": wanted.get("assignee_id", lead.get("assignee_id")),
        "close_date": None,
        "company_id": company["id"] if company else None,
        "company_name": company["name"] if company else None,
        "customer_source_id": lead.get("customer_source_id"),
        "details": "",
        "loss_reason_id": None,
        "monetary_value": wanted.get("monetary_value", lead.get("monetary_value")),
        "pipeline_id": pipeline["id"],
        "pipeline_is_revenue": pipeline.get("is_revenue", False),
        "pipeline_stage_id": stage["id"],
        "pipeline_type": pipeline.get("type", "opportunity"),
        "primary_contact_id": person["id"],
        "priority": "None",
        "status": "Open",
        "interaction_count": 0,
        "win_probability": stage.get("win_probability", 0),
        "date_stage_changed": person["date_created"],
        "date_last_contacted": None,
        "date_lead_created": lead.get("date_created"),
    }


def _default_contact_type(account: SandboxAccount) -> int | None:
    types = account.contact_types
    named = next((t["id"] for t in types if t["name"] == "Uncategorized"), None)
    return named if named is not None else (types[0]["id"] if types else None)


def _email_domain(lead: dict) -> str | None:
    email = (lead.get("email") or {}).get("email") or ""
    return email.partition("@")[2] or None
