"""Settings: the tap's public contract, and their validation before any request.

The JSON schema below is what `--about` prints and what Meltano shows; the SDK checks
types and ranges against it. `load_settings` then checks what a JSON schema cannot say
(a key for every project, one variant filter, parseable dates) so that a bad setting fails
before the first request with a message that names the setting.
"""

from __future__ import annotations

import datetime as dt
import typing as t
from dataclasses import dataclass

from singer_sdk import typing as th
from singer_sdk.exceptions import ConfigValidationError

REGIONS = ("us-1", "uk-1", "euw-1")
API_VERSIONS = ("v3", "v2")
CLIENT_ENVS = ("live", "sandbox", "pre-release")
MAX_PAGE_SIZE = 1000

_PROJECT = th.ObjectType(
    th.Property("account_id", th.StringType, required=True, description="Workspace ID (ws-…)."),
    th.Property("project_id", th.StringType, required=True, description="Agent ID (PROJECT-…)."),
    th.Property(
        "api_key",
        th.StringType,
        secret=True,
        description="Key for this project; overrides the top-level `api_key`.",
    ),
)

CONFIG_SCHEMA = th.PropertiesList(
    th.Property(
        "api_key",
        th.StringType,
        secret=True,
        description=(
            "PolyAI API key, sent as `x-api-key`. Required unless every entry of `projects` "
            "has its own. v3 keys are scoped to one project and one region."
        ),
    ),
    th.Property("account_id", th.StringType, description="Single-project shorthand: Workspace ID."),
    th.Property("project_id", th.StringType, description="Single-project shorthand: Agent ID."),
    th.Property(
        "projects",
        th.ArrayType(_PROJECT),
        description=(
            "Projects to extract, each `{account_id, project_id, api_key?}`. Each project is "
            "its own state partition with its own bookmark."
        ),
    ),
    th.Property(
        "region",
        th.StringType,
        default="us-1",
        allowed_values=list(REGIONS),
        description="API region; selects `https://api.{region}.platform.polyai.app`.",
    ),
    th.Property(
        "api_url",
        th.StringType,
        description="Base URL override; wins over `region` (proxies, the bundled emulator).",
    ),
    th.Property(
        "api_version",
        th.StringType,
        default="v3",
        allowed_values=list(API_VERSIONS),
        description="API version. v2 has the same schema; without a cursor it pages by offset.",
    ),
    th.Property(
        "client_env",
        th.StringType,
        default="live",
        allowed_values=list(CLIENT_ENVS),
        description="Which deployment environment's conversations to read.",
    ),
    th.Property(
        "start_date",
        th.DateTimeType,
        required=True,
        description="ISO8601 lower bound on `started_at` for the first run (no state).",
    ),
    th.Property(
        "end_date",
        th.DateTimeType,
        description=(
            "Optional ISO8601 upper bound (exclusive). Default: the moment the sync started, "
            "frozen for the whole run."
        ),
    ),
    th.Property(
        "page_size",
        th.IntegerType(minimum=1, maximum=MAX_PAGE_SIZE),
        default=250,
        description="Conversations per request (`limit`), 1..1000.",
    ),
    th.Property(
        "include_latency",
        th.BooleanType,
        default=True,
        description="Ask for per-turn agent `latency`.",
    ),
    th.Property(
        "channels",
        th.ArrayType(th.StringType),
        description="Only these channels (e.g. `VOICE-SIP`, `WEBCHAT`, `CHAT`).",
    ),
    th.Property(
        "variant_id", th.StringType, description="Only this variant (not with variant_name)."
    ),
    th.Property(
        "variant_name", th.StringType, description="Only this variant (not with variant_id)."
    ),
    th.Property(
        "lookback_minutes",
        th.IntegerType(minimum=0),
        default=60,
        description=(
            "Each run re-reads this far before the bookmark, to catch conversations that "
            "arrive in the API late (ingestion delay)."
        ),
    ),
    th.Property(
        "window_hours",
        th.IntegerType(minimum=1),
        default=24,
        description=(
            "Size of each `start_time`/`end_time` slice. A STATE checkpoint is written after "
            "each finished window, so an interrupted sync resumes there."
        ),
    ),
    th.Property(
        "in_progress_hold_hours",
        th.IntegerType(minimum=0),
        default=24,
        description=(
            "An in-progress conversation holds the bookmark at its `started_at` so a later run "
            "reads it again once finished. Conversations in progress for longer than this stop "
            "holding it (a warning names them), so one stuck conversation cannot pin every "
            "later run to re-read from the same point."
        ),
    ),
    th.Property(
        "max_concurrency",
        th.IntegerType(minimum=1, maximum=16),
        default=2,
        description=(
            "Windows of one project fetched at once. Records and checkpoints still come out in "
            "window order; a 429 pauses every worker."
        ),
    ),
    th.Property(
        "max_retries",
        th.IntegerType(minimum=0),
        default=6,
        description="Retries of one request on 429, 5xx, timeouts and broken bodies.",
    ),
    th.Property(
        "retry_base_seconds",
        th.NumberType(minimum=0),
        default=1.0,
        description="First backoff delay; doubles per retry (with jitter), capped at 60 s.",
    ),
    th.Property(
        "request_timeout_seconds",
        th.NumberType(minimum=1),
        default=300,
        description="Connect/read timeout of one request (a read timeout is between bytes).",
    ),
).to_dict()


@dataclass(frozen=True)
class Project:
    """One PolyAI project to extract. `context` is what the SDK sees and logs: no key in it."""

    account_id: str
    project_id: str
    api_key: str

    @property
    def context(self) -> dict[str, str]:
        return {"account_id": self.account_id, "project_id": self.project_id}

    @property
    def label(self) -> str:
        return f"{self.account_id}/{self.project_id}"


@dataclass(frozen=True)
class Settings:
    """Validated settings; the rest of the tap reads these, never the raw config."""

    projects: tuple[Project, ...]
    base_url: str
    api_version: str
    client_env: str
    start_date: dt.datetime
    end_date: dt.datetime | None
    page_size: int
    include_latency: bool
    channels: tuple[str, ...]
    variant_id: str | None
    variant_name: str | None
    lookback: dt.timedelta
    window: dt.timedelta
    in_progress_hold: dt.timedelta
    max_concurrency: int
    max_retries: int
    retry_base_seconds: float
    request_timeout_seconds: float


def parse_datetime(value: str) -> dt.datetime:
    """Parse ISO8601; naive values are taken as UTC (PolyAI's timestamps are UTC)."""
    parsed = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.timezone.utc)
    return parsed.astimezone(dt.timezone.utc)


def _date_setting(
    config: t.Mapping[str, t.Any], name: str, errors: list[str]
) -> dt.datetime | None:
    raw = config.get(name)
    if raw in (None, ""):
        return None
    try:
        return parse_datetime(str(raw))
    except ValueError:
        errors.append(f"Setting '{name}' is not an ISO8601 date-time: {raw!r}.")
        return None


def _projects(config: t.Mapping[str, t.Any], errors: list[str]) -> tuple[Project, ...]:
    default_key = config.get("api_key") or ""
    entries: list[t.Mapping[str, t.Any]] = list(config.get("projects") or [])
    if config.get("account_id") or config.get("project_id"):
        if not (config.get("account_id") and config.get("project_id")):
            errors.append("Settings 'account_id' and 'project_id' must be given together.")
        else:
            entries.insert(
                0, {"account_id": config["account_id"], "project_id": config["project_id"]}
            )
    if not entries:
        errors.append("No project configured: set 'account_id' and 'project_id', or 'projects'.")
    projects: list[Project] = []
    seen: set[tuple[str, str]] = set()
    for i, entry in enumerate(entries):
        account_id, project_id = entry.get("account_id"), entry.get("project_id")
        if not account_id or not project_id:
            errors.append(f"Setting 'projects[{i}]' needs both 'account_id' and 'project_id'.")
            continue
        if (account_id, project_id) in seen:
            continue
        seen.add((account_id, project_id))
        key = entry.get("api_key") or default_key
        if not key:
            errors.append(
                f"Setting 'api_key' is missing for project {account_id}/{project_id}: set "
                "'api_key', or 'api_key' on that entry of 'projects'."
            )
            continue
        projects.append(Project(account_id, project_id, key))
    return tuple(projects)


def load_settings(config: t.Mapping[str, t.Any]) -> Settings:
    """Validate the raw config; raise ConfigValidationError naming every bad setting."""
    errors: list[str] = []
    projects = _projects(config, errors)
    start_date = _date_setting(config, "start_date", errors)
    if start_date is None and "start_date" not in "".join(errors):
        errors.append("Setting 'start_date' is required (ISO8601), e.g. 2026-01-01T00:00:00Z.")
    end_date = _date_setting(config, "end_date", errors)
    if start_date and end_date and end_date <= start_date:
        errors.append("Setting 'end_date' must be later than 'start_date'.")
    # Types, ranges and allowed values (region, api_version, client_env, page_size) are the
    # JSON schema's job: the SDK checks them against CONFIG_SCHEMA before this runs.
    region = config.get("region") or "us-1"
    if config.get("variant_id") and config.get("variant_name"):
        errors.append("Settings 'variant_id' and 'variant_name' exclude each other: set one.")
    if errors:
        raise ConfigValidationError("Config validation failed", errors=errors)
    assert start_date is not None
    base_url = (config.get("api_url") or f"https://api.{region}.platform.polyai.app").rstrip("/")
    return Settings(
        projects=projects,
        base_url=base_url,
        api_version=config.get("api_version") or "v3",
        client_env=config.get("client_env") or "live",
        start_date=start_date,
        end_date=end_date,
        page_size=int(config.get("page_size", 250)),
        include_latency=bool(config.get("include_latency", True)),
        channels=tuple(config.get("channels") or ()),
        variant_id=config.get("variant_id") or None,
        variant_name=config.get("variant_name") or None,
        lookback=dt.timedelta(minutes=config.get("lookback_minutes", 60)),
        window=dt.timedelta(hours=config.get("window_hours", 24)),
        in_progress_hold=dt.timedelta(hours=config.get("in_progress_hold_hours", 24)),
        max_concurrency=int(config.get("max_concurrency", 2)),
        max_retries=int(config.get("max_retries", 6)),
        retry_base_seconds=float(config.get("retry_base_seconds", 1.0)),
        request_timeout_seconds=float(config.get("request_timeout_seconds", 300)),
    )
