"""Settings: the tap's public contract, and their validation before any request.

The JSON schema below is what `--about` prints and what Meltano shows; the SDK checks
types and ranges against it. `load_settings` then checks what a JSON schema cannot say
(a key for every project, one variant filter, parseable dates) so that a bad setting fails
before the first request with a message that names the setting.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import re
import typing as t
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from singer_sdk import typing as th
from singer_sdk.exceptions import ConfigValidationError

from tap_polyai.redaction import REDACTOR

REGIONS = ("us-1", "uk-1", "euw-1")
# The Agents API (`conversation_details`) lives on other hosts than the Conversations API.
AGENTS_API_HOSTS = {
    "us-1": "https://api.us.poly.ai",
    "uk-1": "https://api.uk.poly.ai",
    "euw-1": "https://api.eu.poly.ai",
}
DEFAULT_DETAILS_SETTLE_MINUTES = 30
MAX_DETAILS_SETTLE_MINUTES = 1440
API_VERSIONS = ("v3", "v2")
CLIENT_ENVS = ("live", "sandbox", "pre-release")
ON_SCHEMA_MISMATCH = ("warn", "fail")
MAX_PAGE_SIZE = 1000
# Maxima of the numeric settings: beyond them a value is a mistake, and some would overflow
# date arithmetic or socket timeouts (a traceback instead of a message naming the setting).
MAX_LOOKBACK_MINUTES = 365 * 24 * 60  # a year
MAX_HOURS = 366 * 24
MAX_BUFFER_MB = 65536
MAX_RETRIES = 100
MAX_TIMEOUT_SECONDS = 3600

_PROJECT = th.ObjectType(
    th.Property("account_id", th.StringType, required=True, description="Workspace ID (ws-…)."),
    th.Property("project_id", th.StringType, required=True, description="Agent ID (PROJECT-…)."),
    th.Property(
        "api_key",
        th.StringType,
        secret=True,
        description="Key for this project; overrides the top-level `api_key`.",
    ),
    th.Property(
        "agents_api_key",
        th.StringType,
        secret=True,
        description=(
            "Key for this project's `conversation_details` requests (Agents API); overrides "
            "the top-level `agents_api_key`. Default: this project's API key."
        ),
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
            "Projects to extract, each `{account_id, project_id, api_key?, agents_api_key?}`. "
            "Each project is "
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
        description=(
            "Base URL override; wins over `region` (proxies, the bundled emulator). "
            "`http(s)://host[:port][/prefix]`; a trailing version segment such as `/v3` is "
            "dropped (the tap adds `api_version` itself)."
        ),
    ),
    th.Property(
        "allow_insecure_http",
        th.BooleanType,
        default=False,
        description=(
            "Allow an `http://` `api_url` to a host that is not loopback (the key then travels "
            "in clear text; a warning says so). Plain http to 127.0.0.1/localhost is always "
            "allowed (the emulator). See docs/security.md."
        ),
    ),
    th.Property(
        "agents_api_url",
        th.StringType,
        description=(
            "Base URL of PolyAI's Agents API, which serves `conversation_details` "
            "(`GET /v1/agents/{project_id}/conversations/{id}`). Default from `region`: "
            "us-1 `https://api.us.poly.ai`, uk-1 `https://api.uk.poly.ai`, euw-1 "
            "`https://api.eu.poly.ai`; when `api_url` is set, the same base as `api_url` "
            "(proxies, the bundled emulator). Other hosts: `https://api.studio.poly.ai`."
        ),
    ),
    th.Property(
        "agents_api_key",
        th.StringType,
        secret=True,
        description=(
            "Key for `conversation_details` requests, for every project without its own "
            "`agents_api_key`. Default: each project's API key (`api_key`)."
        ),
    ),
    th.Property(
        "details_settle_minutes",
        th.IntegerType(minimum=0, maximum=MAX_DETAILS_SETTLE_MINUTES),
        default=DEFAULT_DETAILS_SETTLE_MINUTES,
        description=(
            "`conversation_details` loads a conversation's detail only once it finished at "
            "least this long ago (PolyAI computes the summary and PolyScore after the call "
            "ends); until then the conversation holds the bookmark like an in-progress call. "
            "0..1440."
        ),
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
        description=(
            "ISO8601 lower bound on `started_at` for the first run (no state). Without a "
            "time zone it is read as UTC."
        ),
    ),
    th.Property(
        "end_date",
        th.DateTimeType,
        description=(
            "Optional ISO8601 upper bound (exclusive; UTC when no time zone is given). Default: "
            "the moment the sync started, frozen for the whole run."
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
        th.IntegerType(minimum=0, maximum=MAX_LOOKBACK_MINUTES),
        default=60,
        description=(
            "Each run re-reads this far before the bookmark, to catch conversations that "
            "arrive in the API late (ingestion delay)."
        ),
    ),
    th.Property(
        "window_hours",
        th.IntegerType(minimum=1, maximum=MAX_HOURS),
        default=24,
        description=(
            "Size of the first `start_time`/`end_time` slice. Later windows are sized to the "
            "data (a few pages each: longer through quiet time, shorter through busy time; the "
            "same data and settings give the same windows). A "
            "STATE checkpoint is written after each finished window, so an interrupted sync "
            "resumes there."
        ),
    ),
    th.Property(
        "in_progress_hold_hours",
        th.IntegerType(minimum=0, maximum=MAX_HOURS),
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
        default=8,
        description=(
            "Most requests waiting on the API at once, shared by every project. A 429 pauses "
            "every worker for its `Retry-After` and halves the number; it grows back by one "
            "after a run of successes. Records and checkpoints still come out in window order."
        ),
    ),
    th.Property(
        "max_buffer_mb",
        th.IntegerType(minimum=1, maximum=MAX_BUFFER_MB),
        default=64,
        description=(
            "Memory (MB, estimated) for conversations fetched ahead of the one being written, "
            "shared by every worker and project. The window being written may exceed it, so a "
            "single huge page still progresses."
        ),
    ),
    th.Property(
        "max_retries",
        th.IntegerType(minimum=0, maximum=MAX_RETRIES),
        default=6,
        description="Retries of one request on 429, 5xx, timeouts and broken bodies.",
    ),
    th.Property(
        "retry_base_seconds",
        th.NumberType(minimum=0, maximum=60),
        default=1.0,
        description=("First backoff delay; doubles per retry (with jitter), capped at 60 s."),
    ),
    th.Property(
        "request_timeout_seconds",
        th.NumberType(minimum=1, maximum=MAX_TIMEOUT_SECONDS),
        default=300,
        description=("Connect/read timeout of one request (a read timeout is between bytes)."),
    ),
    th.Property(
        "delete_stale_turns",
        th.BooleanType,
        default=False,
        description=(
            "When a re-read finished conversation has fewer turns than `num_turns` (PolyAI hid "
            "its transcript later), write a tombstone `conversation_turns` row (turn fields "
            "null, `_sdc_deleted_at` set) for each missing turn index, so the target deletes "
            "the stale rows (target-duckdb `hard_delete`) or marks them (target-postgres "
            "`add_record_metadata`). Off by default: a project whose transcripts were never "
            "visible would get a tombstone per turn on every read."
        ),
    ),
    th.Property(
        "on_schema_mismatch",
        th.StringType,
        default="warn",
        allowed_values=list(ON_SCHEMA_MISMATCH),
        description=(
            "A value that fits no declared type: `warn` delivers the conversation with that "
            "field null and a warning naming the conversation and field path (a fractional "
            "number where an integer is declared widens the column instead); `fail` stops "
            'the sync. Lossless coercions (`"0.53"` to 0.53) and new fields happen in both '
            "modes; see docs/streams.md, Schema drift."
        ),
    ),
).to_dict()


def _secret_names(schema: t.Mapping[str, t.Any]) -> t.Iterator[str]:
    for name, prop in (schema.get("properties") or {}).items():
        if prop.get("secret") or prop.get("writeOnly"):
            yield name
        for nested in (prop, prop.get("items") or {}):
            if isinstance(nested, t.Mapping) and nested.get("properties"):
                yield from _secret_names(nested)


# Every setting the schema marks secret, at any depth (`api_key`, `projects[].api_key`).
SECRET_SETTINGS = frozenset(_secret_names(CONFIG_SCHEMA))


@dataclass(frozen=True)
class Project:
    """One PolyAI project to extract. `context` is what the SDK sees and logs: no key in it."""

    account_id: str
    project_id: str
    api_key: str = field(repr=False)
    # The key for the Agents API (`conversation_details`); "" means `api_key`.
    agents_key: str = field(default="", repr=False)

    @property
    def agents_api_key(self) -> str:
        return self.agents_key or self.api_key

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
    max_buffer_bytes: int
    max_retries: int
    retry_base_seconds: float
    request_timeout_seconds: float
    on_schema_mismatch: str = "warn"
    delete_stale_turns: bool = False
    # The Agents API base (`conversation_details`), and how long a finished call settles.
    agents_base_url: str = ""
    details_settle: dt.timedelta = dt.timedelta(minutes=DEFAULT_DETAILS_SETTLE_MINUTES)
    # What the tap should log once at start: (level, message), e.g. an unknown setting.
    notices: tuple[tuple[int, str], ...] = field(default=())


_FRACTION = re.compile(r"\.(\d+)")


def _fromisoformat(value: str) -> dt.datetime:
    text = value.strip().replace("Z", "+00:00").replace("z", "+00:00")
    # Python 3.10's fromisoformat takes only 3 or 6 fraction digits: pad or cut to 6.
    text = _FRACTION.sub(lambda m: "." + (m.group(1) + "000000")[:6], text, count=1)
    return dt.datetime.fromisoformat(text)


def parse_datetime(value: str) -> dt.datetime:
    """Parse ISO8601; naive values are taken as UTC (PolyAI's timestamps are UTC)."""
    parsed = _fromisoformat(value)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.timezone.utc)
    return parsed.astimezone(dt.timezone.utc)


def _date_setting(
    config: t.Mapping[str, t.Any], name: str, errors: list[str], notices: list[tuple[int, str]]
) -> dt.datetime | None:
    raw = config.get(name)
    if raw in (None, ""):
        return None
    try:
        parsed = parse_datetime(str(raw))
    except ValueError:
        errors.append(f"Setting '{name}' is not an ISO8601 date-time: {raw!r}.")
        return None
    if _fromisoformat(str(raw)).tzinfo is None:
        notices.append(
            (
                logging.INFO,
                f"Setting '{name}' has no time zone: read as UTC "
                f"({parsed.strftime('%Y-%m-%dT%H:%M:%SZ')}).",
            )
        )
    return parsed


# Keys the SDK itself reads (stream maps, flattening, batches): known, never warned about.
SDK_BUILTIN_SETTINGS = frozenset(
    {
        "stream_maps",
        "stream_map_config",
        "faker_config",
        "flattening_enabled",
        "flattening_max_depth",
        "flattening_max_key_length",
        "flattening_separator",
        "batch_config",
    }
)


def _unknown_settings(config: t.Mapping[str, t.Any], notices: list[tuple[int, str]]) -> None:
    """Warn about keys nobody reads (a typo such as `page_sise` would otherwise do nothing).

    Not an error: Meltano and wrappers sometimes pass keys of their own. Keys starting with
    `_` are tooling's private keys by convention and are ignored silently.
    """
    known = set(CONFIG_SCHEMA["properties"]) | SDK_BUILTIN_SETTINGS
    for key in sorted(config):
        if key in known or key.startswith("_"):
            continue
        import difflib  # only for an unknown key

        close = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.6)
        hint = f"; did you mean '{close[0]}'?" if close else "."
        notices.append((logging.WARNING, f"Unknown setting '{key}' is ignored{hint}"))


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 or `localhost`: http to these never leaves the machine."""
    name = host.strip("[]").lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


_VERSION_SEGMENT = re.compile(r"v\d+")


def _url_problem(text: str, name: str = "api_url") -> str | None:
    """What is wrong with `text` (setting `name`) as a base URL, or None."""
    parts = urlsplit(text)
    shown = repr(text) if "@" not in text else "(a URL with credentials, not shown)"
    problem = None
    if parts.scheme.lower() not in ("http", "https"):
        problem = (
            f"must start with 'https://' or 'http://' (got {shown}), e.g. "
            "https://api.uk-1.platform.polyai.app or http://127.0.0.1:8765"
        )
    elif not parts.hostname:
        problem = f"has no host: {shown}"
    elif parts.username or parts.password:
        problem = f"must not carry credentials: use '{name.replace('_url', '_key')}'"
    elif parts.query or parts.fragment:
        problem = f"must not have a query string or fragment: {shown}"
    else:
        try:
            port = parts.port
        except ValueError:
            port = 0
        if port == 0:
            problem = f"has an invalid port: {shown}"
    return None if problem is None else f"Setting '{name}' {problem}."


def _plain_http_allowed(
    name: str,
    scheme: str,
    host: str | None,
    *,
    config: t.Mapping[str, t.Any],
    errors: list[str],
    notices: list[tuple[int, str]],
) -> bool:
    """Plain http carries the key in clear text: only to loopback, or with allow_insecure_http."""
    host = host or ""
    if scheme.lower() != "http" or is_loopback(host):
        return True
    if config.get("allow_insecure_http") is not True:
        errors.append(
            f"Setting '{name}' uses plain http to {host}, which is not a loopback host: the "
            "API key would travel in clear text. Use https, or set 'allow_insecure_http' to "
            "true if the network path is trusted."
        )
        return False
    notices.append(
        (
            logging.WARNING,
            f"Setting 'allow_insecure_http' is true: the API key goes to {host} over plain "
            "http, readable by anyone on the network path.",
        )
    )
    return True


def _base_url(
    config: t.Mapping[str, t.Any], errors: list[str], notices: list[tuple[int, str]]
) -> str:
    """`region`'s host, or `api_url` checked: scheme, host, no query; `/v3` at the end dropped.

    A path before the version (a proxy's prefix such as `/polyai`) is kept: the tap appends
    `/{api_version}/{account_id}/{project_id}/conversations` to it.
    """
    raw = config.get("api_url")
    if raw in (None, ""):
        return f"https://api.{config.get('region') or 'us-1'}.platform.polyai.app"
    text = str(raw).strip()
    if (problem := _url_problem(text)) is not None:
        errors.append(problem)
        return ""
    parts = urlsplit(text)
    segments = [s for s in parts.path.split("/") if s]
    if not _plain_http_allowed(
        "api_url", parts.scheme, parts.hostname, config=config, errors=errors, notices=notices
    ):
        return ""
    version = segments.pop() if segments and _VERSION_SEGMENT.fullmatch(segments[-1]) else None
    base = f"{parts.scheme.lower()}://{parts.netloc}" + "".join(f"/{s}" for s in segments)
    if version is not None:
        api_version = config.get("api_version") or "v3"
        if version != api_version:
            errors.append(
                f"Setting 'api_url' ends in '/{version}' but 'api_version' is '{api_version}': "
                "leave the version out of 'api_url' and set 'api_version'."
            )
            return ""
        notices.append(
            (
                logging.WARNING,
                f"Setting 'api_url' ends in '/{version}': the tap adds the API version itself "
                f"('api_version'), so it uses {base}.",
            )
        )
    return base


def _agents_base_url(
    config: t.Mapping[str, t.Any], base_url: str, errors: list[str], notices: list[tuple[int, str]]
) -> str:
    """`agents_api_url` checked; else `api_url`'s base (proxies, the emulator); else `region`'s.

    A trailing `/v1` is dropped (the tap adds `/v1/agents/...` itself), as `/v3` on `api_url`.
    """
    raw = config.get("agents_api_url")
    if raw in (None, ""):
        if config.get("api_url") not in (None, ""):
            return base_url
        return AGENTS_API_HOSTS.get(config.get("region") or "us-1", AGENTS_API_HOSTS["us-1"])
    text = str(raw).strip()
    if (problem := _url_problem(text, "agents_api_url")) is not None:
        errors.append(problem)
        return ""
    parts = urlsplit(text)
    if not _plain_http_allowed(
        "agents_api_url",
        parts.scheme,
        parts.hostname,
        config=config,
        errors=errors,
        notices=notices,
    ):
        return ""
    segments = [s for s in parts.path.split("/") if s]
    if segments and segments[-1] == "v1":
        segments.pop()
        notices.append(
            (
                logging.WARNING,
                "Setting 'agents_api_url' ends in '/v1': the tap adds it itself.",
            )
        )
    return f"{parts.scheme.lower()}://{parts.netloc}" + "".join(f"/{s}" for s in segments)


PLACEHOLDER_PREFIX = "change-me"
_CONFIG_REFERENCE = re.compile(r"""config\s*(?:\[\s*|\.get\(\s*)(['"])(?P<key>[^'"]+)\1""")


def _map_expressions(value: t.Any) -> t.Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, t.Mapping):
        for item in value.values():
            yield from _map_expressions(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _map_expressions(item)


def _stream_map_config(config: t.Mapping[str, t.Any], errors: list[str]) -> None:
    """Every `config['x']` a stream map reads must be set, and not to a placeholder.

    A stream map that hashes phone numbers with `config['salt']` must not run with no salt or
    with the shipped placeholder: the hashes would be reversible by anyone who has the repo.
    """
    referenced = sorted(
        {
            match["key"]
            for expression in _map_expressions(config.get("stream_maps") or {})
            for match in _CONFIG_REFERENCE.finditer(expression)
        }
    )
    values = config.get("stream_map_config") or {}
    for key in referenced:
        value = values.get(key) if isinstance(values, t.Mapping) else None
        where = f"Setting 'stream_map_config.{key}'"
        if value is None or (isinstance(value, str) and not value.strip()):
            errors.append(
                f"{where} is missing or empty, and 'stream_maps' use config['{key}']: set it "
                "(a secret such as a salt belongs in the environment, not in meltano.yml)."
            )
        elif isinstance(value, str) and value.strip().lower().startswith(PLACEHOLDER_PREFIX):
            errors.append(
                f"{where} is still the placeholder {value!r}, and 'stream_maps' use "
                f"config['{key}']: set a secret value in the environment."
            )


def _projects(config: t.Mapping[str, t.Any], errors: list[str]) -> tuple[Project, ...]:
    default_key = config.get("api_key") or ""
    default_agents_key = config.get("agents_api_key") or ""
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
        agents_key = entry.get("agents_api_key") or default_agents_key
        projects.append(Project(account_id, project_id, key, agents_key))
    return tuple(projects)


def load_settings(config: t.Mapping[str, t.Any]) -> Settings:
    """Validate the raw config; raise ConfigValidationError naming every bad setting."""
    errors: list[str] = []
    notices: list[tuple[int, str]] = []
    REDACTOR.add_config(config, SECRET_SETTINGS)  # before any message could show one
    projects = _projects(config, errors)
    start_date = _date_setting(config, "start_date", errors, notices)
    if start_date is None and "start_date" not in "".join(errors):
        errors.append("Setting 'start_date' is required (ISO8601), e.g. 2026-01-01T00:00:00Z.")
    end_date = _date_setting(config, "end_date", errors, notices)
    if start_date and end_date and end_date <= start_date:
        errors.append("Setting 'end_date' must be later than 'start_date'.")
    # Types, ranges and allowed values (region, api_version, client_env, page_size) are the
    # JSON schema's job: the SDK checks them against CONFIG_SCHEMA before this runs.
    base_url = _base_url(config, errors, notices)
    agents_base_url = _agents_base_url(config, base_url, errors, notices)
    _stream_map_config(config, errors)
    _unknown_settings(config, notices)
    if config.get("variant_id") and config.get("variant_name"):
        errors.append("Settings 'variant_id' and 'variant_name' exclude each other: set one.")
    if errors:
        raise ConfigValidationError("Config validation failed", errors=errors)
    assert start_date is not None
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
        max_concurrency=int(config.get("max_concurrency", 8)),
        max_buffer_bytes=int(config.get("max_buffer_mb", 64)) << 20,
        max_retries=int(config.get("max_retries", 6)),
        retry_base_seconds=float(config.get("retry_base_seconds", 1.0)),
        request_timeout_seconds=float(config.get("request_timeout_seconds", 300)),
        on_schema_mismatch=config.get("on_schema_mismatch") or "warn",
        delete_stale_turns=bool(config.get("delete_stale_turns", False)),
        agents_base_url=agents_base_url,
        details_settle=dt.timedelta(
            minutes=config.get("details_settle_minutes", DEFAULT_DETAILS_SETTLE_MINUTES)
        ),
        notices=tuple(notices),
    )
