"""Seeded, deterministic generator of a simulated Copper CRM account (Developer API v1 shapes).

`generate_account` returns the account's reference data (users, pipelines, custom field
definitions, ...) and Copper-shaped records for every entity. The same arguments always give
identical data: every random draw comes from `random.Random` instances seeded from `seed`.
"""

from __future__ import annotations

import gc
import hashlib
import random
import unicodedata
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

ENTITIES = ("people", "companies", "leads", "opportunities", "projects", "tasks", "activities")
DEFAULT_COUNTS: dict[str, int] = {
    "companies": 500,
    "people": 2000,
    "leads": 800,
    "opportunities": 600,
    "projects": 100,
    "tasks": 1500,
    "activities": 6000,
}
# Copper's singular resource type for each entity (used by available_on, parent, related_resource).
SINGULAR: dict[str, str] = {
    "people": "person",
    "companies": "company",
    "leads": "lead",
    "opportunities": "opportunity",
    "projects": "project",
    "tasks": "task",
    "activities": "activity",
}

DAY = 86_400
HISTORY = 3 * 365 * DAY  # records are created within [now - HISTORY, now]
DELETED_OPTION_ID = 999_999_999  # an option id that no definition lists (a deleted option)

# entity -> (first id, stride); each id is first + i * stride + jitter, jitter in [0, stride).
_ID_LAYOUT: dict[str, tuple[int, int]] = {
    "people": (27_000_000, 7),
    "companies": (9_600_000, 11),
    "leads": (8_800_000, 13),
    "opportunities": (2_800_000, 17),
    "projects": (144_000, 23),
    "tasks": (3_700_000, 19),
    "activities": (3_064_000_000, 5),
}

_BULK_SHARE = 0.13  # draw share aimed at bulk-edit seconds (some fall back: created after them)
_CF_POOL_BITS = 12  # custom field values are drawn from per-definition pools of 2**12 values
_CF_NULL_SHARE = 0.4

# ---------------------------------------------------------------------------------------------
# Word pools
# ---------------------------------------------------------------------------------------------


def _words(text: str) -> tuple[str, ...]:
    """Split a whitespace-separated word list."""
    return tuple(text.split())


_FIRST_NAMES = _words(
    "James Mary Robert Patricia John Jennifer Michael Linda David Elizabeth William Barbara "
    "Richard Susan Joseph Jessica Thomas Sarah Christopher Karen Charles Lisa Daniel Nancy "
    "Matthew Betty Anthony Sandra Mark Margaret Donald Ashley Steven Kimberly Andrew Emily Paul "
    "Donna Joshua Michelle Kenneth Carol Kevin Amanda Brian Melissa George Deborah Timothy "
    "Stephanie Ronald Rebecca Jason Sharon Edward Laura Jeffrey Cynthia Ryan Dorothy Jacob Amy "
    "Gary Kathleen Nicholas Angela Eric Shirley Jonathan Emma Stephen Brenda Larry Pamela Justin "
    "Nicole Scott Anna Brandon Samantha Benjamin Katherine Samuel Christine Gregory Rachel "
    "Patrick Carolyn Frank Janet Raymond Maria Jack Olivia Dennis Heather Tyler Catherine Aaron "
    "Diane Jose Julie Adam Victoria Nathan Joyce Henry Lauren Zachary Kelly Douglas Christina "
    "Peter Ruth Kyle Noah Ethan Judith Jeremy Evelyn Walter Hannah Christian Andrea Keith Megan "
    "Aiko Mateo Priya Wei Sofia Lars Inès Kwame Yuki Omar Fatima Raj Elena Luca Zoë Hiroshi "
    "Amara Diego Nadia Sven Chloé José Björn Anaïs Dmitri Leilani Thandiwe Mei Rafael Ingrid"
)
_LAST_NAMES = (
    *_words(
        "Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Hernandez "
        "Lopez Gonzalez Wilson Anderson Thomas Taylor Moore Jackson Martin Lee Perez Thompson "
        "White Harris Sanchez Clark Ramirez Lewis Robinson Walker Young Allen King Wright "
        "Scott Torres Nguyen Hill Flores Green Adams Nelson Baker Hall Rivera Campbell "
        "Mitchell Carter Roberts Gomez Phillips Evans Turner Diaz Parker Cruz Edwards Collins "
        "Reyes Stewart Morris Morales Murphy Cook Rogers Gutierrez Ortiz Morgan Cooper "
        "Peterson Bailey Reed Kelly Howard Ramos Kim Cox Ward Richardson Watson Brooks Chavez "
        "Wood James Bennett Gray Mendoza Ruiz Hughes Price Alvarez Castillo Sanders Patel "
        "Myers Long Ross Foster Jimenez Schrute Halpert Beesly Bernard Müller Schmidt Tanaka "
        "Sato Okafor Kowalski Novak Haddad Ivanova Rossi Dubois Larsen O'Brien D'Angelo "
        "García Núñez Smith-Jones Chen Wang Singh Kaur Suzuki Yamamoto"
    ),
    "Van der Berg",
    "de la Cruz",
    "St. Clair",
    "MacDonald",
)
_COMPANY_HEADS = _words(
    "Acme Globex Initech Umbrella Stark Wayne Hooli Vandelay Dunder Sterling Pied Blue Summit "
    "Pioneer Cobalt Apex Nimbus Quantum Silver Granite Harbor Maple Northwind Contoso Fabrikam "
    "Tailspin Litware Proseware Woodgrove Lucerne Aperture Cyberdyne Soylent Massive Gringotts "
    "Oceanic Tyrell Wonka Prestige Bluth Monarch Virtucon Sirius Helix Orion Redwood Evergreen"
)
_COMPANY_MIDS = _words(
    "Analytics Logistics Systems Foods Health Energy Labs Media Robotics Capital Design Networks "
    "Paper Software Dynamics Solutions Partners Consulting Manufacturing Supply Biotech Holdings"
)
_COMPANY_TAILS = ("Inc.", "LLC", "Ltd", "Group", "Co.", "GmbH", "Corp.", "", "", "")
_FREE_MAIL = ("gmail.com", "yahoo.com", "outlook.com", "hotmail.com", "icloud.com", "proton.me")
_STREETS = (
    "Main Street",
    "West Main Street",
    "Oak Ave",
    "Market St",
    "Howard St Ste 600",
    "Broadway",
    "Elm Street",
    "2nd Ave",
    "Pine Rd",
    "Maple Drive",
    "Sunset Blvd",
    "Lake Shore Dr",
    "Mission St",
    "Park Ave",
    "Cedar Lane",
    "Industrial Pkwy, Unit 4",
    "Commerce Way",
    "River Road",
)
# (city, state, postal code or US 3-digit prefix, country); countries spelled as real accounts do.
_CITIES = (
    ("San Francisco", "CA", "941", "US"),
    ("Scranton", "PA", "185", ""),
    ("Savannah", "Georgia", "314", "United States"),
    ("New York", "NY", "100", "United States"),
    ("Austin", "TX", "787", "US"),
    ("Chicago", "IL", "606", "United States"),
    ("Seattle", "WA", "981", "US"),
    ("Boston", "MA", "021", "United States"),
    ("Denver", "CO", "802", "US"),
    ("Atlanta", "GA", "303", "United States"),
    ("Portland", "OR", "972", "US"),
    ("Miami", "FL", "331", "United States"),
    ("Toronto", "ON", "M5V 3L9", "Canada"),
    ("London", "", "EC1A 1BB", "United Kingdom"),
    ("Berlin", "", "10115", "Germany"),
    ("Sydney", "NSW", "2000", "Australia"),
    ("Montréal", "QC", "H2X 1Y4", "Canada"),
    ("São Paulo", "SP", "01310-100", "Brazil"),
)
_AREA_CODES = (415, 212, 312, 206, 617, 303, 404, 503, 305, 512, 570, 912, 646, 650, 718, 773)
_TITLES = (
    "CEO",
    "CTO",
    "CFO",
    "VP Sales",
    "Account Executive",
    "Office Manager",
    "Regional Manager",
    "Assistant to the Regional Manager",
    "Procurement Lead",
    "Head of Operations",
    "Software Engineer",
    "Marketing Director",
    "Buyer",
    "Sales Representative",
    "Customer Success Manager",
    "Founder & CEO",
)
_TAGS = (
    "vip",
    "newsletter",
    "trade show 2024",
    "partner",
    "churn risk",
    "webinar",
    "referral",
    "priority",
    "enterprise",
    "smb",
    "follow-up",
    "imported",
    "Q4 push",
    "décor",
)
_DETAILS = (
    "Met at the regional trade show.",
    "Interested in the enterprise plan; needs approval from finance.",
    "Prefers email over phone.",
    "Referred by an existing customer.",
    "Long-time customer, renewal every January.",
    "Keywords: paper, office supplies, printers",
    "Notes:\n- budget confirmed\n- decision in Q3",
    "Café owner, wants a call after 3pm ☕",
    "Evaluating two competitors, price sensitive.",
    "Key account - handle with care!",
    'Asked about the "Pro" tier & volume discounts.',
    "This is a demo description",
)
_NOTES = (
    "Left voicemail",
    "Discussed pricing options",
    "Sent follow-up email with brochure",
    "Customer asked for a demo next week",
    "Great call, very interested",
    "Needs approval from finance",
    "Meeting notes: reviewed roadmap and timeline",
    "Intro call",
    "Confirmed requirements; sending proposal",
    "No answer",
    "Re: Quote for next quarter",
    "Lunch meeting downtown 🍝",
    "This is the updated description of this note",
)
_PRODUCTS = (
    "New Copy Machines",
    "Annual Support Contract",
    "Enterprise License",
    "Paper Supply Renewal",
    "Pilot Program",
    "Consulting Retainer",
    "Platform Upgrade",
    "Hardware Refresh",
    "Training Package",
    "Data Migration",
    "Printer Fleet Lease",
    "Cloud Storage Add-on",
)
_PROJECTS = (
    "Customize Your New CRM",
    "Onboarding",
    "Website Redesign",
    "Rollout",
    "Data Migration",
    "Implementation",
    "Staff Training",
    "Integration Setup",
    "Launch Campaign",
    "Annual Review",
)
_TASKS = (
    "Follow up",
    "Send proposal",
    "Schedule demo",
    "Call back",
    "Prepare contract",
    "Review requirements",
    "Send invoice",
    "Check in",
    "Update account notes",
    "Book meeting",
    "My First Task",
)
_PHONE_CATEGORIES = ("mobile", "mobile", "work", "work", "work", "home", "other")

# ---------------------------------------------------------------------------------------------
# Reference data (fixed ids, shaped like the Copper docs)
# ---------------------------------------------------------------------------------------------

_LEAD_STATUSES = (
    (208231, "New", 1, True),
    (208232, "Open", 2, False),
    (208233, "Unqualified", 3, False),
    (208234, "Junk", 4, False),
)
_CUSTOMER_SOURCES = ("Email", "Cold Call", "Advertising", "Referral", "Website", "Trade Show")
_LOSS_REASONS = ("Price", "Competitor", "Timing", "No Budget", "Not a Fit")
_CONTACT_TYPES = ("Potential Customer", "Current Customer", "Uncategorized", "Other")
_PIPELINES = (
    (
        213214,
        "Sales",
        False,
        (
            ("Qualified", 5),
            ("Follow-up", 10),
            ("Presentation", 20),
            ("Contract Sent", 40),
            ("Negotiation", 80),
        ),
    ),
    (
        213215,
        "Business Development",
        True,
        (("First Meeting", 10), ("Partner Meeting", 25), ("Negotiation", 50), ("Term Sheet", 75)),
    ),
    (213216, "Renewals", True, (("Renewal Due", 30), ("Quote Sent", 60), ("Verbal Commit", 90))),
)
_FIRST_STAGE_ID = 987790
# (id, name, count_as_interaction)
_USER_ACTIVITY_TYPES = (
    (0, "Note", False),
    (190711, "Phone Call", True),
    (190712, "Meeting", True),
    (190713, "Email", True),
    (190714, "To Do", False),
)
_SYSTEM_ACTIVITY_TYPES = (
    (1, "Property Changed", False),
    (3, "Pipeline Stage Changed", False),
    (4, "Status Changed", False),
    (6, "Email Sent", True),
)
PIPELINE_STAGE_CHANGED_TYPE_ID = 3
STATUS_CHANGED_TYPE_ID = 4

# (name, data_type, available_on, is_filterable, option names)
_CUSTOM_FIELDS: tuple[tuple[str, str, tuple[str, ...], bool, tuple[str, ...]], ...] = (
    (
        "Industry",
        "Dropdown",
        ("company", "person", "lead"),
        True,
        ("Software", "Manufacturing", "Healthcare", "Financial Services", "Retail", "Education"),
    ),
    (
        "Region",
        "MultiSelect",
        ("company", "opportunity", "person"),
        True,
        ("North America", "EMEA", "APAC", "LATAM"),
    ),
    ("Contract Start", "Date", ("opportunity", "company"), True, ()),
    ("Renewal Date", "Date", ("opportunity",), True, ()),
    ("VIP", "Checkbox", ("person", "company"), True, ()),
    ("Deal Score", "Float", ("opportunity", "lead"), True, ()),
    ("Discount", "Percentage", ("opportunity",), True, ()),
    ("ARR", "Currency", ("company", "opportunity"), True, ()),
    ("LinkedIn URL", "URL", ("person", "lead"), False, ()),
    ("Notes Summary", "Text", ("project", "task", "opportunity"), False, ()),
    ("Account Code", "String", ("company",), False, ()),
    ("Referred By", "Connect", ("opportunity", "person"), False, ()),
    ("Deal Size", "Currency", ("opportunity",), True, ()),
    ("Deal-Size", "Float", ("opportunity",), True, ()),
    ("Project Phase", "Dropdown", ("project",), True, ("Discovery", "Build", "Launch", "Closed")),
    ("Effort Hours", "Float", ("task",), True, ()),
)
_CF_FIRST_ID, _CF_ID_STEP = 100764, 2717
_OPTION_FIRST_ID, _OPTION_ID_STEP = 167776, 13


@dataclass
class AccountData:
    """A whole simulated Copper account: reference data plus records per entity."""

    account: dict[str, Any]
    users: list[dict[str, Any]]
    pipelines: list[dict[str, Any]]
    pipeline_stages: list[dict[str, Any]]
    custom_field_definitions: list[dict[str, Any]]
    lead_statuses: list[dict[str, Any]]
    customer_sources: list[dict[str, Any]]
    loss_reasons: list[dict[str, Any]]
    contact_types: list[dict[str, Any]]
    activity_types: dict[str, list[dict[str, Any]]]
    records: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    next_ids: dict[str, int] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------


def _rng(seed: int, label: str) -> random.Random:
    """An independent random stream for `label`, derived from `seed` (stable across runs)."""
    digest = hashlib.sha256(f"copper-sandbox:{seed}:{label}".encode()).digest()
    return random.Random(int.from_bytes(digest[:16], "big"))


def _slug(text: str) -> str:
    """Lower-case ASCII letters only ("O'Brien" -> "obrien", "Inès" -> "ines")."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return "".join(ch for ch in ascii_text.lower() if ch.isalpha())


def _weighted(pairs: Sequence[tuple[Any, int]]) -> list[Any]:
    """Expand (value, weight) pairs into a list to index uniformly."""
    return [value for value, weight in pairs for _ in range(weight)]


def _ymd(ts: int) -> str:
    """Unix seconds -> "YYYY-MM-DD" (UTC)."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d")


class _CloseDates:
    """Unix seconds -> Copper's "M/D/YYYY" close date, cached per day."""

    def __init__(self) -> None:
        self._cache: dict[int, str] = {}

    def __call__(self, ts: int) -> str:
        day = ts // DAY
        text = self._cache.get(day)
        if text is None:
            d = datetime.fromtimestamp(day * DAY, UTC)
            text = self._cache[day] = f"{d.month}/{d.day}/{d.year}"
        return text


def _ids(rng: random.Random, entity: str, n: int) -> list[int]:
    """Unique, increasing, non-sequential-looking ids for `n` records of `entity`."""
    base, stride = _ID_LAYOUT[entity]
    rnd = rng.random
    return [base + i * stride + int(rnd() * stride) for i in range(n)]


def _timeline(
    rng: random.Random, n: int, now: int, burst_n: int, burst_at: int, unmodified: float = 0.25
) -> tuple[list[int], list[int]]:
    """Sorted date_created values and matching date_modified values for `n` records.

    `burst_n` records (spread among the others) get date_modified == `burst_at`. Of the rest,
    ~10% share one of a few bulk-edit seconds, `unmodified` of the others were never modified
    and the rest were edited later, recent edits being more likely.
    """
    rnd = rng.random
    start = now - HISTORY
    span = HISTORY
    # Encode a burst flag in the low bit so one integer sort keeps flags with their times.
    keys = [(start + int(span * rnd() ** 0.7)) << 1 for _ in range(n - burst_n)]
    if burst_n:
        bspan = burst_at - start
        keys += [((start + int(bspan * rnd() ** 0.8)) << 1) | 1 for _ in range(burst_n)]
    keys.sort()

    n_bulk = 3 + int(rnd() * 3)
    bulk_seconds = [now - int(2 * DAY + rnd() * 300 * DAY) for _ in range(n_bulk)]
    weights = (6, 3, 2, 1, 1)[:n_bulk]
    bulk_pool = _weighted(list(zip(bulk_seconds, weights, strict=True)))
    n_pool = len(bulk_pool)
    latest_bulk = max(bulk_seconds)

    created: list[int] = []
    modified: list[int] = []
    add_created = created.append
    add_modified = modified.append
    for key in keys:
        c = key >> 1
        add_created(c)
        if key & 1:
            add_modified(burst_at)
            continue
        r = rnd()
        if r < _BULK_SHARE:
            t = bulk_pool[int(r / _BULK_SHARE * n_pool)]
            if t >= c:
                add_modified(t)
                continue
            if latest_bulk >= c:
                add_modified(latest_bulk)
                continue
        if rnd() < unmodified:
            add_modified(c)
        else:
            add_modified(c + int((now - c) * rnd() ** 0.3))
    return created, modified


# ---------------------------------------------------------------------------------------------
# Reference data builders
# ---------------------------------------------------------------------------------------------


def _users(rng: random.Random, n: int, domain: str) -> list[dict[str, Any]]:
    """Users: "Sandbox Admin" first, then people from the name pools; groups Sales/Support."""
    sales = {"id": 1001, "name": "Sales"}
    support = {"id": 1002, "name": "Support"}
    users = [
        {
            "id": 137658,
            "name": "Sandbox Admin",
            "email": f"admin@{domain}",
            "groups": [dict(sales), dict(support)],
        }
    ]
    seen = {users[0]["email"]}
    for k in range(1, n):
        first = rng.choice(_FIRST_NAMES)
        last = rng.choice(_LAST_NAMES)
        email = f"{_slug(first)}.{_slug(last)}@{domain}"
        if email in seen:
            email = f"{_slug(first)}.{_slug(last)}{k}@{domain}"
        seen.add(email)
        group = sales if rng.random() < 0.7 else support
        users.append(
            {
                "id": 137658 + k * 21600 + rng.randrange(1000),
                "name": f"{first} {last}",
                "email": email,
                "groups": [dict(group)],
            }
        )
    return users


def _custom_field_definitions() -> tuple[list[dict[str, Any]], int, int]:
    """Definitions covering every Copper data type; returns (defs, next def id, next option id)."""
    defs: list[dict[str, Any]] = []
    option_id = _OPTION_FIRST_ID
    def_id = _CF_FIRST_ID
    for name, data_type, available_on, filterable, option_names in _CUSTOM_FIELDS:
        d: dict[str, Any] = {
            "id": def_id,
            "name": name,
            "canonical_name": None,
            "data_type": data_type,
            "available_on": list(available_on),
            "is_filterable": filterable,
        }
        if data_type in ("Dropdown", "MultiSelect"):
            options = []
            for rank, option_name in enumerate(option_names):
                options.append({"id": option_id, "name": option_name, "rank": rank})
                option_id += _OPTION_ID_STEP
            d["options"] = options
        if data_type == "Currency":
            d["currency"] = "USD"
        defs.append(d)
        def_id += _CF_ID_STEP
    return defs, def_id, option_id


def _cf_value(
    rng: random.Random, d: dict[str, Any], now: int, people_ids: list[int], untidy: bool
) -> Any:
    """One custom field value for definition `d`; `untidy` gives a type-mismatched value."""
    rnd = rng.random
    data_type = d["data_type"]
    if data_type == "Dropdown":
        if untidy:
            return DELETED_OPTION_ID
        return rng.choice(d["options"])["id"]
    if data_type == "MultiSelect":
        ids = [o["id"] for o in d["options"]]
        if untidy:
            return rng.choice(ids)  # a bare int instead of a list
        picked = set(rng.sample(ids, 1 + int(rnd() * min(3, len(ids)))))
        return tuple(i for i in ids if i in picked)
    if data_type == "Date":
        ts = (now - HISTORY + int(rnd() * (HISTORY + 365 * DAY))) // DAY * DAY
        return _ymd(ts) if untidy else ts
    if data_type == "Checkbox":
        value = rnd() < 0.3
        return int(value) if untidy else value
    if data_type in ("Float", "Percentage", "Currency"):
        if data_type == "Percentage":
            number: float = int(rnd() * 40) if rnd() < 0.7 else round(rnd() * 40, 1)
        elif data_type == "Currency":
            number = int(1000 + rnd() * 500_000) // 100 * 100
            if rnd() < 0.2:
                number += 0.5
        else:
            number = round(rnd() * 100, 2) if rnd() < 0.8 else int(rnd() * 100)
        return f"{number:.2f}" if untidy else number
    if data_type == "Connect":
        if not people_ids:
            return None
        if untidy:
            return rng.choice(people_ids)  # a bare id instead of a list
        return tuple(rng.choice(people_ids) for _ in range(1 + int(rnd() * 2)))
    # String, Text, URL: untidy ones arrive as bare numbers.
    if untidy:
        return int(rnd() * 100_000)
    if data_type == "URL":
        return f"https://www.linkedin.com/in/{_slug(rng.choice(_LAST_NAMES))}-{int(rnd() * 9999)}"
    if data_type == "String":
        return f"AC-{10000 + int(rnd() * 90000)}"
    return rng.choice(_DETAILS)


def _cf_pools(
    rng: random.Random, defs: list[dict[str, Any]], now: int, people_ids: list[int], untidy: float
) -> dict[int, list[Any]]:
    """Per definition, a shuffled pool of values: ~40% None, `untidy` of the rest mismatched."""
    size = 1 << _CF_POOL_BITS
    n_null = round(size * _CF_NULL_SHARE)
    n_bad = round((size - n_null) * untidy)
    n_good = size - n_null - n_bad
    pools: dict[int, list[Any]] = {}
    for d in defs:
        pool: list[Any] = [None] * n_null
        pool += [_cf_value(rng, d, now, people_ids, False) for _ in range(n_good)]
        pool += [_cf_value(rng, d, now, people_ids, True) for _ in range(n_bad)]
        rng.shuffle(pool)
        pools[d["id"]] = pool
    return pools


class _CustomFields:
    """Builds a record's `custom_fields` list from one random integer (12 bits per field)."""

    def __init__(self, defs: list[dict[str, Any]], pools: dict[int, list[Any]], kind: str):
        mask = (1 << _CF_POOL_BITS) - 1
        self.specs = [
            (d["id"], pools[d["id"]], k * _CF_POOL_BITS, mask)
            for k, d in enumerate(d for d in defs if kind in d["available_on"])
        ]
        self.bits = _CF_POOL_BITS * len(self.specs)

    def build(self, bits: int) -> list[dict[str, Any]]:
        """The custom_fields list for the random integer `bits`."""
        out = []
        for def_id, pool, shift, mask in self.specs:
            value = pool[(bits >> shift) & mask]
            if value.__class__ is tuple:
                value = list(value)
            out.append({"custom_field_definition_id": def_id, "value": value})
        return out


# ---------------------------------------------------------------------------------------------
# Shared generation context
# ---------------------------------------------------------------------------------------------


@dataclass
class _Ctx:
    """Pools and cross-entity state shared by the record generators."""

    now: int
    ids: dict[str, list[int]]
    created: dict[str, list[int]]
    modified: dict[str, list[int]]
    assignees: list[int | None]
    user_ids: list[int]
    contact_type_ids: list[int]
    source_ids: list[int | None]
    loss_reason_ids: list[int]
    cf: dict[str, _CustomFields]
    addresses: list[tuple[str, str, str, str, str]]
    phones: list[str]
    tag_sets: list[tuple[str, ...]]
    details: list[str | None]
    first_names: list[str]
    first_slugs: list[str]
    last_names: list[str]
    last_slugs: list[str]
    company_names: list[tuple[str, str]]
    company_name_of: list[str] = field(default_factory=list)
    company_domain_of: list[str | None] = field(default_factory=list)
    first_person_of: list[int | None] = field(default_factory=list)
    opp_pipeline: list[int] = field(default_factory=list)
    opp_stage: list[int] = field(default_factory=list)
    opp_status: list[str] = field(default_factory=list)


def _pools(rng: random.Random, ctx_kwargs: dict[str, Any]) -> None:
    """Account-specific pools (addresses, phones, tag sets, company names)."""
    rnd = rng.random
    addresses = []
    for _ in range(4096):
        city, state, postal, country = rng.choice(_CITIES)
        if len(postal) == 3:  # a US 3-digit prefix: complete the ZIP code
            postal += str(int(rnd() * 100)).zfill(2)
        street = f"{1 + int(rnd() * 9899)} {rng.choice(_STREETS)}"
        addresses.append((street, city, state, postal, country))
    ctx_kwargs["addresses"] = addresses
    phones = []
    for _ in range(8192):
        area = rng.choice(_AREA_CODES)
        mid = 200 + int(rnd() * 800)
        end = int(rnd() * 10000)
        style = int(rnd() * 5)
        if style == 0:
            phones.append(f"({area}) {mid}-{end:04d}")
        elif style == 1:
            phones.append(f"{area}{mid}{end:04d}")
        elif style == 2:
            phones.append(f"+1 {area} {mid} {end:04d}")
        else:
            phones.append(f"{area}-{mid}-{end:04d}")
    ctx_kwargs["phones"] = phones
    tag_sets: list[tuple[str, ...]] = [()] * 60
    for _ in range(40):
        tag_sets.append(tuple(rng.sample(_TAGS, 1 + int(rnd() * 3))))
    ctx_kwargs["tag_sets"] = tag_sets
    ctx_kwargs["details"] = [None] * 24 + list(_DETAILS)
    ctx_kwargs["first_names"] = list(_FIRST_NAMES)
    ctx_kwargs["first_slugs"] = [_slug(n) for n in _FIRST_NAMES]
    ctx_kwargs["last_names"] = list(_LAST_NAMES)
    ctx_kwargs["last_slugs"] = [_slug(n) for n in _LAST_NAMES]
    names = []
    for head in _COMPANY_HEADS:
        for mid in _COMPANY_MIDS:
            domain = f"{_slug(head)}{_slug(mid)}.com"
            for tail in _COMPANY_TAILS:
                names.append((f"{head} {mid} {tail}".rstrip(), domain))
    rng.shuffle(names)
    ctx_kwargs["company_names"] = names


def _address(parts: tuple[str, str, str, str, str]) -> dict[str, Any]:
    """A Copper address dict from an (street, city, state, postal_code, country) tuple."""
    street, city, state, postal_code, country = parts
    return {
        "street": street,
        "city": city,
        "state": state,
        "postal_code": postal_code,
        "country": country,
    }


# ---------------------------------------------------------------------------------------------
# Record generators
# ---------------------------------------------------------------------------------------------


def _gen_companies(rng: random.Random, ctx: _Ctx) -> list[dict[str, Any]]:
    """Company records; fills ctx.company_name_of / company_domain_of / first_person_of."""
    rnd, getbits = rng.random, rng.getrandbits
    ids, created, modified = (
        ctx.ids["companies"],
        ctx.created["companies"],
        ctx.modified["companies"],
    )
    names, n_names = ctx.company_names, len(ctx.company_names)
    assignees, n_assignees = ctx.assignees, len(ctx.assignees)
    ctypes, n_ctypes = ctx.contact_type_ids, len(ctx.contact_type_ids)
    details, n_details = ctx.details, len(ctx.details)
    phones, n_phones = ctx.phones, len(ctx.phones)
    tag_sets, n_tag_sets = ctx.tag_sets, len(ctx.tag_sets)
    addresses, n_addresses = ctx.addresses, len(ctx.addresses)
    cf = ctx.cf["company"]
    cf_bits, cf_build = cf.bits, cf.build
    out = []
    for i in range(len(ids)):
        name, domain = names[int(rnd() * n_names)]
        if rnd() < 0.1:
            domain = None
        ctx.company_name_of.append(name)
        ctx.company_domain_of.append(domain)
        ctx.first_person_of.append(None)
        r = rnd()
        ic = 0 if r < 0.3 else int((r - 0.3) ** 3 * 300) + 1
        out.append(
            {
                "id": ids[i],
                "name": name,
                "address": None if rnd() < 0.2 else _address(addresses[int(rnd() * n_addresses)]),
                "assignee_id": assignees[int(rnd() * n_assignees)],
                "contact_type_id": None if rnd() < 0.05 else ctypes[int(rnd() * n_ctypes)],
                "details": details[int(rnd() * n_details)],
                "email_domain": domain,
                "phone_numbers": []
                if rnd() < 0.15
                else [{"number": phones[int(rnd() * n_phones)], "category": "work"}],
                "primary_contact_id": None,
                "socials": []
                if domain is None or rnd() < 0.7
                else [
                    {
                        "url": f"https://www.linkedin.com/company/{domain[:-4]}",
                        "category": "linkedin",
                    }
                ],
                "tags": list(tag_sets[int(rnd() * n_tag_sets)]),
                "websites": []
                if domain is None or rnd() < 0.25
                else [{"url": f"http://{domain}", "category": "work"}],
                "custom_fields": cf_build(getbits(cf_bits)),
                "interaction_count": ic,
                "date_created": created[i],
                "date_modified": modified[i],
            }
        )
    return out


def _gen_people(rng: random.Random, ctx: _Ctx) -> list[dict[str, Any]]:
    """Person records (emails unique across people); notes each company's first person."""
    rnd, getbits = rng.random, rng.getrandbits
    now = ctx.now
    ids, created, modified = ctx.ids["people"], ctx.created["people"], ctx.modified["people"]
    first_names, first_slugs, n_first = ctx.first_names, ctx.first_slugs, len(ctx.first_names)
    last_names, last_slugs, n_last = ctx.last_names, ctx.last_slugs, len(ctx.last_names)
    company_ids, n_companies = ctx.ids["companies"], len(ctx.ids["companies"])
    company_name_of, company_domain_of = ctx.company_name_of, ctx.company_domain_of
    first_person_of = ctx.first_person_of
    assignees, n_assignees = ctx.assignees, len(ctx.assignees)
    ctypes, n_ctypes = ctx.contact_type_ids, len(ctx.contact_type_ids)
    details, n_details = ctx.details, len(ctx.details)
    phones, n_phones = ctx.phones, len(ctx.phones)
    tag_sets, n_tag_sets = ctx.tag_sets, len(ctx.tag_sets)
    titles = [None] * 7 + list(_TITLES)
    n_titles = len(titles)
    addresses, n_addresses = ctx.addresses, len(ctx.addresses)
    free_mail, n_free = _FREE_MAIL, len(_FREE_MAIL)
    phone_cats, n_phone_cats = _PHONE_CATEGORIES, len(_PHONE_CATEGORIES)
    cf = ctx.cf["person"]
    cf_bits, cf_build = cf.bits, cf.build
    out = []
    append = out.append
    for i in range(len(ids)):
        fi = int(rnd() * n_first)
        li = int(rnd() * n_last)
        first, last = first_names[fi], last_names[li]
        fs, ls = first_slugs[fi], last_slugs[li]
        pid = ids[i]
        c = created[i]
        if n_companies and rnd() < 0.85:
            ci = int(n_companies * rnd() ** 1.6)
            company_id, company_name = company_ids[ci], company_name_of[ci]
            domain = company_domain_of[ci] or free_mail[int(rnd() * n_free)]
            if first_person_of[ci] is None:
                first_person_of[ci] = pid
        else:
            company_id = company_name = None
            domain = free_mail[int(rnd() * n_free)]
        # The digits at the end are the record index, so emails never collide across people.
        r = rnd()
        if r < 0.07:
            emails = []
        else:
            local = f"{fs}.{ls}{i}" if i & 1 else f"{fs[0]}.{ls}{i}"
            emails = [{"email": f"{local}@{domain}", "category": "work"}]
            if r > 0.85:
                personal = f"{fs}_{ls}{i}@{free_mail[int(rnd() * n_free)]}"
                emails.append({"email": personal, "category": "personal"})
        r = rnd()
        if r < 0.15:
            phone_numbers = []
        else:
            phone_numbers = [
                {
                    "number": phones[int(rnd() * n_phones)],
                    "category": phone_cats[int(rnd() * n_phone_cats)],
                }
            ]
            if r > 0.85:
                phone_numbers.append({"number": phones[int(rnd() * n_phones)], "category": "work"})
        r = rnd()
        ic = 0 if r < 0.35 else int((r - 0.35) ** 3 * 200) + 1
        append(
            {
                "id": pid,
                "name": f"{first} {last}",
                "prefix": None,
                "first_name": first,
                "middle_name": None,
                "last_name": last,
                "suffix": None,
                "address": None if rnd() < 0.2 else _address(addresses[int(rnd() * n_addresses)]),
                "assignee_id": assignees[int(rnd() * n_assignees)],
                "company_id": company_id,
                "company_name": company_name,
                "contact_type_id": ctypes[int(rnd() * n_ctypes)],
                "details": details[int(rnd() * n_details)],
                "emails": emails,
                "phone_numbers": phone_numbers,
                "socials": []
                if rnd() < 0.8
                else [
                    {"url": f"https://www.linkedin.com/in/{fs}-{ls}-{i}", "category": "linkedin"}
                ],
                "tags": list(tag_sets[int(rnd() * n_tag_sets)]),
                "title": titles[int(rnd() * n_titles)],
                "websites": []
                if rnd() < 0.9
                else [{"url": f"https://{fs}{ls}.com", "category": "personal"}],
                "custom_fields": cf_build(getbits(cf_bits)),
                "date_created": c,
                "date_modified": modified[i],
                "interaction_count": ic,
                "date_last_contacted": c + int((now - c) * rnd() ** 0.5) if ic else None,
            }
        )
    return out


def _gen_opportunities(rng: random.Random, ctx: _Ctx) -> list[dict[str, Any]]:
    """Opportunity records; fills ctx.opp_pipeline / opp_stage / opp_status for activities."""
    rnd, getbits = rng.random, rng.getrandbits
    now = ctx.now
    close_date = _CloseDates()
    ids = ctx.ids["opportunities"]
    created, modified = ctx.created["opportunities"], ctx.modified["opportunities"]
    company_ids, n_companies = ctx.ids["companies"], len(ctx.ids["companies"])
    company_name_of, first_person_of = ctx.company_name_of, ctx.first_person_of
    people_ids, n_people = ctx.ids["people"], len(ctx.ids["people"])
    assignees, n_assignees = ctx.assignees, len(ctx.assignees)
    sources, n_sources = ctx.source_ids, len(ctx.source_ids)
    loss_reasons, n_loss = ctx.loss_reason_ids, len(ctx.loss_reason_ids)
    details, n_details = ctx.details, len(ctx.details)
    tag_sets, n_tag_sets = ctx.tag_sets, len(ctx.tag_sets)
    pipelines = [
        (pid, is_rev, [(_stage_id(p, k), prob) for k, (_, prob) in enumerate(stages)])
        for p, (pid, _, is_rev, stages) in enumerate(_PIPELINES)
    ]
    pipe_pool = _weighted([(0, 7), (1, 2), (2, 1)])
    statuses = _weighted([("Open", 12), ("Won", 4), ("Lost", 3), ("Abandoned", 1)])
    priorities = _weighted([("None", 5), ("Low", 2), ("Medium", 2), ("High", 1)])
    cf = ctx.cf["opportunity"]
    cf_bits, cf_build = cf.bits, cf.build
    out = []
    for i in range(len(ids)):
        c, m = created[i], modified[i]
        p = pipe_pool[int(rnd() * len(pipe_pool))]
        pipeline_id, is_revenue, stages = pipelines[p]
        status = statuses[int(rnd() * len(statuses))]
        n_stages = len(stages)
        if status == "Open":
            si = int(n_stages * rnd() ** 1.3)
            win_probability = stages[si][1]
            close = None if rnd() < 0.15 else close_date(m + int(rnd() * 120 * DAY))
        else:
            si = n_stages - 1 if status == "Won" else int(rnd() * n_stages)
            win_probability = 100 if status == "Won" else 0
            close = None if rnd() < 0.05 else close_date(c + int((m - c) * rnd()))
        ctx.opp_pipeline.append(p)
        ctx.opp_stage.append(si)
        ctx.opp_status.append(status)
        company_id = company_name = primary_contact_id = None
        if n_companies and rnd() < 0.85:
            ci = int(n_companies * rnd() ** 1.3)
            company_id, company_name = company_ids[ci], company_name_of[ci]
            if rnd() < 0.7:
                primary_contact_id = first_person_of[ci]
        if primary_contact_id is None and n_people and rnd() < 0.4:
            primary_contact_id = people_ids[int(rnd() * n_people)]
        r = rnd()
        if r < 0.1:
            value: float | None = None
        elif r < 0.9:
            value = int(500 + rnd() ** 2 * 250_000) // 50 * 50
        else:
            value = round(500 + rnd() * 20_000, 2)
        r = rnd()
        ic = 0 if r < 0.3 else int((r - 0.3) ** 3 * 150) + 1
        out.append(
            {
                "id": ids[i],
                "name": f"{int(rnd() * 20) + 1} {_PRODUCTS[int(rnd() * len(_PRODUCTS))]}"
                if company_name is None or rnd() < 0.4
                else f"{company_name} - {_PRODUCTS[int(rnd() * len(_PRODUCTS))]}",
                "assignee_id": assignees[int(rnd() * n_assignees)],
                "close_date": close,
                "company_id": company_id,
                "company_name": company_name,
                "customer_source_id": sources[int(rnd() * n_sources)],
                "details": details[int(rnd() * n_details)],
                "loss_reason_id": loss_reasons[int(rnd() * n_loss)] if status == "Lost" else None,
                "monetary_value": value,
                "pipeline_id": pipeline_id,
                "pipeline_is_revenue": is_revenue,
                "pipeline_stage_id": stages[si][0],
                "pipeline_type": "opportunity",
                "primary_contact_id": primary_contact_id,
                "priority": priorities[int(rnd() * len(priorities))],
                "status": status,
                "tags": list(tag_sets[int(rnd() * n_tag_sets)]),
                "interaction_count": ic,
                "win_probability": win_probability,
                "date_stage_changed": c + int((m - c) * rnd()),
                "date_last_contacted": c + int((now - c) * rnd() ** 0.5) if ic else None,
                "leads_converted_from": [],
                "date_lead_created": None,
                "custom_fields": cf_build(getbits(cf_bits)),
                "date_created": c,
                "date_modified": m,
            }
        )
    return out


def _stage_id(pipeline_index: int, stage_index: int) -> int:
    """Stable, unique id of a pipeline stage."""
    offset = sum(len(p[3]) for p in _PIPELINES[:pipeline_index])
    return _FIRST_STAGE_ID + offset + stage_index


def _gen_leads(rng: random.Random, ctx: _Ctx) -> list[dict[str, Any]]:
    """Lead records; ~10% converted (converted_timestamp set, maybe an opportunity id)."""
    rnd, getbits = rng.random, rng.getrandbits
    ids, created, modified = ctx.ids["leads"], ctx.created["leads"], ctx.modified["leads"]
    first_names, first_slugs, n_first = ctx.first_names, ctx.first_slugs, len(ctx.first_names)
    last_names, last_slugs, n_last = ctx.last_names, ctx.last_slugs, len(ctx.last_names)
    company_names, n_company_names = ctx.company_names, len(ctx.company_names)
    opp_ids, n_opps = ctx.ids["opportunities"], len(ctx.ids["opportunities"])
    assignees, n_assignees = ctx.assignees, len(ctx.assignees)
    sources, n_sources = ctx.source_ids, len(ctx.source_ids)
    details, n_details = ctx.details, len(ctx.details)
    phones, n_phones = ctx.phones, len(ctx.phones)
    tag_sets, n_tag_sets = ctx.tag_sets, len(ctx.tag_sets)
    titles = [None] * 7 + list(_TITLES)
    statuses = _weighted([(s, w) for s, w in zip(_LEAD_STATUSES, (7, 7, 4, 2), strict=True)])
    addresses, n_addresses = ctx.addresses, len(ctx.addresses)
    cf = ctx.cf["lead"]
    cf_bits, cf_build = cf.bits, cf.build
    out = []
    for i in range(len(ids)):
        c, m = created[i], modified[i]
        fi, li = int(rnd() * n_first), int(rnd() * n_last)
        first, last = first_names[fi], last_names[li]
        if rnd() < 0.75:
            company_name, domain = company_names[int(rnd() * n_company_names)]
        else:
            company_name, domain = None, _FREE_MAIL[int(rnd() * len(_FREE_MAIL))]
        status_id, status_name, _, _ = statuses[int(rnd() * len(statuses))]
        converted_ts = converted_opp = None
        if rnd() < 0.1:
            converted_ts = c + int((m - c) * rnd())
            if n_opps and rnd() < 0.85:
                converted_opp = opp_ids[int(rnd() * n_opps)]
        r = rnd()
        if r < 0.4:
            value: float | None = None
        else:
            value = int(100 + rnd() ** 2 * 50_000) // 10 * 10
        r = rnd()
        ic = 0 if r < 0.5 else int((r - 0.5) ** 2 * 40) + 1
        out.append(
            {
                "id": ids[i],
                "name": f"{first} {last}",
                "prefix": None,
                "first_name": first,
                "last_name": last,
                "middle_name": None,
                "suffix": None,
                "address": None if rnd() < 0.5 else _address(addresses[int(rnd() * n_addresses)]),
                "assignee_id": assignees[int(rnd() * n_assignees)],
                "company_name": company_name,
                "customer_source_id": sources[int(rnd() * n_sources)],
                "details": details[int(rnd() * n_details)],
                "email": None
                if rnd() < 0.1
                else {
                    "email": f"{first_slugs[fi]}.{last_slugs[li]}{i}@{domain}",
                    "category": "work",
                },
                "monetary_value": value,
                "socials": []
                if rnd() < 0.9
                else [{"url": f"facebook.com/{first_slugs[fi]}_{i}", "category": "facebook"}],
                "status": status_name,
                "status_id": status_id,
                "tags": list(tag_sets[int(rnd() * n_tag_sets)]),
                "title": titles[int(rnd() * len(titles))],
                "websites": []
                if company_name is None or rnd() < 0.7
                else [{"url": f"www.{domain}", "category": "work"}],
                "phone_numbers": []
                if rnd() < 0.3
                else [{"number": phones[int(rnd() * n_phones)], "category": "mobile"}],
                "custom_fields": cf_build(getbits(cf_bits)),
                "interaction_count": ic,
                "converted_unit": None,
                "converted_value": None,
                "converted_opportunity_id": converted_opp,
                "converted_timestamp": converted_ts,
                "date_created": c,
                "date_modified": m,
            }
        )
    return out


def _related_pool(ctx: _Ctx, weights: Sequence[tuple[str, int]]) -> list[tuple[str, list[int]]]:
    """Weighted (type, ids) choices over the entities that have records."""
    return _weighted([((SINGULAR[e], ctx.ids[e]), w) for e, w in weights if ctx.ids.get(e)])


def _gen_projects(rng: random.Random, ctx: _Ctx) -> list[dict[str, Any]]:
    """Project records, mostly related to a company, opportunity or person."""
    rnd, getbits = rng.random, rng.getrandbits
    ids, created, modified = ctx.ids["projects"], ctx.created["projects"], ctx.modified["projects"]
    assignees, n_assignees = ctx.assignees, len(ctx.assignees)
    details, n_details = ctx.details, len(ctx.details)
    tag_sets, n_tag_sets = ctx.tag_sets, len(ctx.tag_sets)
    related = _related_pool(ctx, [("companies", 5), ("opportunities", 3), ("people", 2)])
    cf = ctx.cf["project"]
    cf_bits, cf_build = cf.bits, cf.build
    out = []
    for i in range(len(ids)):
        resource = None
        if related and rnd() < 0.7:
            kind, pool = related[int(rnd() * len(related))]
            resource = {"id": pool[int(rnd() * len(pool))], "type": kind}
        name = _PROJECTS[int(rnd() * len(_PROJECTS))]
        if rnd() < 0.5:
            name = f"{name} {2023 + int(rnd() * 4)}"
        out.append(
            {
                "id": ids[i],
                "name": name,
                "related_resource": resource,
                "assignee_id": assignees[int(rnd() * n_assignees)],
                "status": "Open" if rnd() < 0.6 else "Completed",
                "details": details[int(rnd() * n_details)],
                "tags": list(tag_sets[int(rnd() * n_tag_sets)]),
                "custom_fields": cf_build(getbits(cf_bits)),
                "date_created": created[i],
                "date_modified": modified[i],
            }
        )
    return out


def _gen_tasks(rng: random.Random, ctx: _Ctx) -> list[dict[str, Any]]:
    """Task records; completed ones carry completed_date within [created, modified]."""
    rnd, getbits = rng.random, rng.getrandbits
    ids, created, modified = ctx.ids["tasks"], ctx.created["tasks"], ctx.modified["tasks"]
    assignees, n_assignees = ctx.assignees, len(ctx.assignees)
    details, n_details = ctx.details, len(ctx.details)
    tag_sets, n_tag_sets = ctx.tag_sets, len(ctx.tag_sets)
    related = _related_pool(
        ctx,
        [("people", 7), ("companies", 3), ("opportunities", 5), ("projects", 2), ("leads", 3)],
    )
    custom_types = [None] * 12 + [t[0] for t in _USER_ACTIVITY_TYPES[1:]]
    cf = ctx.cf["task"]
    cf_bits, cf_build = cf.bits, cf.build
    out = []
    for i in range(len(ids)):
        c, m = created[i], modified[i]
        resource = None
        if related and rnd() < 0.85:
            kind, pool = related[int(rnd() * len(related))]
            resource = {"id": pool[int(rnd() * len(pool))], "type": kind}
        due = reminder = completed = None
        if rnd() < 0.7:
            due = c + int(DAY + rnd() * 30 * DAY) // 1800 * 1800
            if rnd() < 0.3:
                reminder = due - 3600 * (1 + int(rnd() * 24))
        status = "Completed" if rnd() < 0.4 else "Open"
        if status == "Completed":
            completed = c + int((m - c) * rnd() ** 0.3)
        out.append(
            {
                "id": ids[i],
                "name": _TASKS[int(rnd() * len(_TASKS))],
                "related_resource": resource,
                "assignee_id": assignees[int(rnd() * n_assignees)],
                "due_date": due,
                "reminder_date": reminder,
                "completed_date": completed,
                "priority": "High" if rnd() < 0.2 else "None",
                "status": status,
                "details": details[int(rnd() * n_details)],
                "tags": list(tag_sets[int(rnd() * n_tag_sets)]),
                "custom_fields": cf_build(getbits(cf_bits)),
                "custom_activity_type_id": custom_types[int(rnd() * len(custom_types))],
                "date_created": c,
                "date_modified": m,
            }
        )
    return out


def _gen_activities(rng: random.Random, ctx: _Ctx) -> list[dict[str, Any]]:
    """Activity records: ~70% user activities, ~30% system (stage/status changes)."""
    rnd = rng.random
    now = ctx.now
    ids = ctx.ids["activities"]
    created, modified = ctx.created["activities"], ctx.modified["activities"]
    users, n_users = ctx.user_ids, len(ctx.user_ids)
    parent_weights = [
        ("people", 45),
        ("companies", 12),
        ("leads", 18),
        ("opportunities", 15),
        ("projects", 3),
        ("tasks", 7),
    ]
    parents = _weighted(
        [
            ((SINGULAR[e], ctx.ids[e], ctx.created[e]), w)
            for e, w in parent_weights
            if ctx.ids.get(e)
        ]
    )
    if ids and not parents:
        raise ValueError("activities need at least one record of another entity as parent")
    n_parents = len(parents)
    opp_ids, opp_created = ctx.ids["opportunities"], ctx.created["opportunities"]
    n_opps = len(opp_ids)
    stages = [
        [(_stage_id(p, k), name) for k, (name, _) in enumerate(pipe[3])]
        for p, pipe in enumerate(_PIPELINES)
    ]
    opp_pipeline, opp_stage, opp_status = ctx.opp_pipeline, ctx.opp_stage, ctx.opp_status
    user_types = _weighted([(0, 35), (190711, 20), (190712, 15), (190713, 25), (190714, 5)])
    n_user_types = len(user_types)
    notes, n_notes = _NOTES, len(_NOTES)
    out = []
    append = out.append
    for i in range(len(ids)):
        c = created[i]
        old_value = new_value = None
        if n_opps and rnd() < 0.3:
            k = bisect_right(opp_created, c)
            oi = int(rnd() * (k or n_opps))
            parent = {"id": opp_ids[oi], "type": "opportunity"}
            if rnd() < 0.85:
                type_id = PIPELINE_STAGE_CHANGED_TYPE_ID
                pipe_stages = stages[opp_pipeline[oi]]
                n_stages = len(pipe_stages)
                if rnd() < 0.8:
                    si = min(opp_stage[oi], n_stages - 1)
                    old_i, new_i = (si - 1, si) if si else (0, 1)
                else:
                    old_i = int(rnd() * n_stages)
                    new_i = (old_i + 1 + int(rnd() * (n_stages - 1))) % n_stages
                old_id, old_name = pipe_stages[old_i]
                new_id, new_name = pipe_stages[new_i]
                old_value = {"id": old_id, "name": old_name}
                new_value = {"id": new_id, "name": new_name}
            else:
                type_id = STATUS_CHANGED_TYPE_ID
                status = opp_status[oi]
                if status == "Open":
                    old_value, new_value = {"name": "Lost"}, {"name": "Open"}
                else:
                    old_value, new_value = {"name": "Open"}, {"name": status}
            activity_type = {"id": type_id, "category": "system"}
            details = ""
            activity_date = c
        else:
            kind, pool, pool_created = parents[int(rnd() * n_parents)]
            k = bisect_right(pool_created, c)
            parent = {"id": pool[int(rnd() * (k or len(pool)))], "type": kind}
            if rnd() < 0.028:
                type_id = 190712  # a meeting scheduled up to 60 days ahead
                activity_date = now + 1 + int(rnd() * 60 * DAY)
            else:
                type_id = user_types[int(rnd() * n_user_types)]
                activity_date = c - int(rnd() * rnd() * 2 * DAY)
            activity_type = {"id": type_id, "category": "user"}
            details = notes[int(rnd() * n_notes)]
        append(
            {
                "id": ids[i],
                "parent": parent,
                "type": activity_type,
                "user_id": users[int(rnd() * n_users)],
                "details": details,
                "activity_date": activity_date,
                "old_value": old_value,
                "new_value": new_value,
                "date_created": c,
                "date_modified": modified[i],
            }
        )
    return out


# ---------------------------------------------------------------------------------------------
# Public entry point
# ---------------------------------------------------------------------------------------------


def _counts(
    scale: float, counts: dict[str, int] | None, burst: int, burst_entity: str
) -> dict[str, int]:
    """Per-entity record counts: scaled defaults, then overrides, then room for the burst."""
    if scale < 0:
        raise ValueError("scale must be >= 0")
    if burst < 0:
        raise ValueError("burst must be >= 0")
    if burst and burst_entity not in ENTITIES:
        raise ValueError(f"unknown burst_entity {burst_entity!r}")
    result = {}
    for entity in ENTITIES:
        n = round(DEFAULT_COUNTS[entity] * scale)
        result[entity] = max(1, n) if scale > 0 else n
    for entity, n in (counts or {}).items():
        if entity not in ENTITIES:
            raise ValueError(f"unknown entity {entity!r}")
        if n < 0:
            raise ValueError(f"count for {entity!r} must be >= 0")
        result[entity] = int(n)
    if burst:
        result[burst_entity] = max(result[burst_entity], burst)
    return result


def generate_account(
    seed: int = 0,
    scale: float = 1.0,
    counts: dict[str, int] | None = None,
    burst: int = 0,
    burst_entity: str = "people",
    untidy: float = 0.01,
    now: int = 1_767_225_600,
) -> AccountData:
    """Generate a whole simulated Copper account, deterministically from the arguments.

    `scale` multiplies DEFAULT_COUNTS, `counts` overrides single entities, `burst` records of
    `burst_entity` share one date_modified (now - 1 day), and `untidy` is the share of non-null
    custom field values whose type deliberately mismatches their definition.
    """
    if not 0 <= untidy <= 1:
        raise ValueError("untidy must be within [0, 1]")
    n = _counts(scale, counts, burst, burst_entity)
    burst_at = now - DAY
    gc_was_enabled = gc.isenabled()
    gc.disable()  # millions of fresh containers: cyclic GC passes would only cost time
    try:
        return _generate(seed, scale, n, burst, burst_entity, untidy, now, burst_at)
    finally:
        if gc_was_enabled:
            gc.enable()


def _generate(
    seed: int,
    scale: float,
    n: dict[str, int],
    burst: int,
    burst_entity: str,
    untidy: float,
    now: int,
    burst_at: int,
) -> AccountData:
    """The body of `generate_account`, once arguments are validated."""
    ref = _rng(seed, "reference")
    domain = f"{_slug(ref.choice(_COMPANY_HEADS))}-sandbox.example.com"
    account = {
        "id": 100_000 + ref.randrange(900_000),
        "name": f"{ref.choice(_COMPANY_HEADS)} {ref.choice(_COMPANY_MIDS)} (Sandbox)",
        "primary_timezone": "America/New_York",
        "settings": {"setting_team_permissions_enabled": True, "setting_enable_leads": True},
        "logo": None,
    }
    users = _users(_rng(seed, "users"), max(3, round(20 * scale**0.5)), domain)
    pipelines = []
    pipeline_stages = []
    for p, (pipeline_id, name, is_revenue, stages) in enumerate(_PIPELINES):
        stage_dicts = []
        for k, (stage_name, prob) in enumerate(stages):
            sid = _stage_id(p, k)
            stage_dicts.append({"id": sid, "name": stage_name, "win_probability": prob})
            pipeline_stages.append(
                {"id": sid, "name": stage_name, "pipeline_id": pipeline_id, "win_probability": prob}
            )
        pipelines.append(
            {
                "id": pipeline_id,
                "name": name,
                "stages": stage_dicts,
                "type": "opportunity",
                "is_revenue": is_revenue,
            }
        )
    lead_statuses = [
        {"id": i, "name": s, "order": o, "is_default": d} for i, s, o, d in _LEAD_STATUSES
    ]
    customer_sources = [{"id": 331240 + k, "name": s} for k, s in enumerate(_CUSTOMER_SOURCES)]
    loss_reasons = [{"id": 1_037_490 + k, "name": s} for k, s in enumerate(_LOSS_REASONS)]
    contact_types = [{"id": 451490 + k, "name": s} for k, s in enumerate(_CONTACT_TYPES)]
    activity_types = {
        "user": [
            {
                "id": i,
                "category": "user",
                "name": s,
                "is_disabled": False,
                "count_as_interaction": ci,
            }
            for i, s, ci in _USER_ACTIVITY_TYPES
        ],
        "system": [
            {
                "id": i,
                "category": "system",
                "name": s,
                "is_disabled": False,
                "count_as_interaction": ci,
            }
            for i, s, ci in _SYSTEM_ACTIVITY_TYPES
        ],
    }
    defs, next_def_id, next_option_id = _custom_field_definitions()

    # Ids and timelines first, so every entity can reference any other.
    rngs = {entity: _rng(seed, entity) for entity in ENTITIES}
    ids: dict[str, list[int]] = {}
    created: dict[str, list[int]] = {}
    modified: dict[str, list[int]] = {}
    for entity in ENTITIES:
        entity_burst = burst if entity == burst_entity else 0
        ids[entity] = _ids(rngs[entity], entity, n[entity])
        created[entity], modified[entity] = _timeline(
            rngs[entity],
            n[entity],
            now,
            entity_burst,
            burst_at,
            unmodified=0.7 if entity == "activities" else 0.25,
        )

    user_ids = [u["id"] for u in users]
    assignee_weights = [(uid, max(1, round(20 / (k + 1) ** 0.6))) for k, uid in enumerate(user_ids)]
    assignees: list[int | None] = _weighted(assignee_weights)
    assignees += [None] * (len(assignees) // 4)
    ctx_kwargs: dict[str, Any] = {
        "now": now,
        "ids": ids,
        "created": created,
        "modified": modified,
        "assignees": assignees,
        "user_ids": _weighted(assignee_weights),
        "contact_type_ids": _weighted([(451490, 8), (451491, 5), (451492, 6), (451493, 1)]),
        "source_ids": [None] * 2 + [s["id"] for s in customer_sources],
        "loss_reason_ids": [r["id"] for r in loss_reasons],
    }
    pool_rng = _rng(seed, "pools")
    _pools(pool_rng, ctx_kwargs)
    cf_pools = _cf_pools(pool_rng, defs, now, ids["people"], untidy)
    ctx_kwargs["cf"] = {
        kind: _CustomFields(defs, cf_pools, kind)
        for kind in ("person", "company", "lead", "opportunity", "project", "task")
    }
    ctx = _Ctx(**ctx_kwargs)

    records: dict[str, list[dict[str, Any]]] = {}
    records["companies"] = _gen_companies(rngs["companies"], ctx)
    records["people"] = _gen_people(rngs["people"], ctx)
    link = _rng(seed, "primary_contacts").random
    for company, first_person in zip(records["companies"], ctx.first_person_of, strict=True):
        if first_person is not None and link() < 0.6:
            company["primary_contact_id"] = first_person
    records["opportunities"] = _gen_opportunities(rngs["opportunities"], ctx)
    records["leads"] = _gen_leads(rngs["leads"], ctx)
    records["projects"] = _gen_projects(rngs["projects"], ctx)
    records["tasks"] = _gen_tasks(rngs["tasks"], ctx)
    records["activities"] = _gen_activities(rngs["activities"], ctx)
    records = {entity: records[entity] for entity in ENTITIES}

    next_ids = {
        entity: _ID_LAYOUT[entity][0] + (n[entity] + 1) * _ID_LAYOUT[entity][1]
        for entity in ENTITIES
    }
    next_ids["custom_field_definitions"] = next_def_id
    next_ids["options"] = next_option_id
    return AccountData(
        account=account,
        users=users,
        pipelines=pipelines,
        pipeline_stages=pipeline_stages,
        custom_field_definitions=defs,
        lead_statuses=lead_statuses,
        customer_sources=customer_sources,
        loss_reasons=loss_reasons,
        contact_types=contact_types,
        activity_types=activity_types,
        records=records,
        next_ids=next_ids,
    )
