"""`tap-polyai --test`: a pre-flight check of each project's key and access, before a long run.

Why not the SDK's `--test`: it runs the real sync until each stream has one record. From an
early `start_date` that walks every empty window first (2,517 requests before the first record
from 2020), and the SDK logs `An unhandled error occurred` when it cuts the sync short. Here
each project gets one request over its whole configured range with `limit=1`: it proves the
host answers, the key is accepted for that project and region, and the filters are valid.
Retriable answers (429, 5xx, network) get a couple of quick retries; nothing is written to
stdout, so `--test` never feeds a target.

When `conversation_details` is selected (a `--catalog` that selects it), each project's Agents
API host and key are checked too: one detail request, for the conversation the first request
found (or, in an empty range, for an id that cannot exist: PolyAI's `CONVERSATIONS_NOT_FOUND`
then proves the host knows the agent and took the key).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import logging
import time

import requests

from tap_polyai.client import AGENTS_URL_SETTING, PolyAIClient
from tap_polyai.errors import (
    PolyAIError,
    RetriableError,
    RetriesExhaustedError,
    classify_detail_response,
    classify_response,
    describe_transport_error,
)
from tap_polyai.settings import Project, Settings
from tap_polyai.transport import KeyedSession, KeyGuardRefused
from tap_polyai.windows import Window

MAX_ATTEMPTS = 3  # at most; fewer when 'max_retries' is lower
NO_SUCH_CONVERSATION = "CA-tap-polyai-preflight"
NOT_FOUND_CODE = "CONVERSATIONS_NOT_FOUND"


def check_projects(
    settings: Settings, logger: logging.Logger, now: dt.datetime, *, details: bool = False
) -> bool:
    """Check every project (not only up to the first failure); True if all passed."""
    one = dataclasses.replace(settings, page_size=1, include_latency=False)
    client = PolyAIClient(one, logger)
    end = min(settings.end_date or now, now)
    window = Window(settings.start_date, max(end, settings.start_date))
    failed = 0
    agents = KeyedSession(settings.agents_base_url, AGENTS_URL_SETTING) if details else None
    with KeyedSession(settings.base_url) as session:
        for project in settings.projects:
            try:
                found = _probe(session, client, one, project, window)
                if details:
                    assert agents is not None
                    _probe_detail(agents, client, one, project, found)
            except PolyAIError as exc:
                failed += 1
                logger.error("Pre-flight FAILED: %s", exc)
                continue
            if details:
                logger.info(
                    "Pre-flight OK: project %s: Agents API key accepted by %s "
                    "(conversation_details).",
                    project.label,
                    settings.agents_base_url,
                )
            what = "at least one conversation" if found else "no conversation yet"
            logger.info(
                "Pre-flight OK: project %s: key accepted by %s; %s in [%s, %s).",
                project.label,
                settings.base_url,
                what,
                window.start_param,
                window.end_param,
            )
    if agents is not None:
        agents.close()
    total = len(settings.projects)
    if failed:
        logger.error("Pre-flight check failed for %d of %d project(s).", failed, total)
        return False
    logger.info("Pre-flight check passed for %d project(s).", total)
    return True


def _probe(
    session: KeyedSession,
    client: PolyAIClient,
    settings: Settings,
    project: Project,
    window: Window,
) -> str | None:
    """One request (a few on retriable answers); the id of a conversation in the range."""
    attempts = 1 + min(settings.max_retries, MAX_ATTEMPTS - 1)
    for attempt in range(1, attempts + 1):
        try:
            response = session.get(
                client.url(project),
                params=client.window_params(window),
                headers={"x-api-key": project.api_key, "Accept": "application/json"},
                timeout=settings.request_timeout_seconds,
            )
            classify_response(response, project)
            try:
                conversations = response.json().get("conversations") or []
            except (ValueError, AttributeError):
                msg = f"Project {project.label}: the answer from {settings.base_url} is not JSON"
                raise PolyAIError(msg) from None
            first = conversations[0] if conversations else None
            return str(first.get("id")) if isinstance(first, dict) else None
        except KeyGuardRefused as exc:
            raise PolyAIError(f"Project {project.label}: {exc}") from None
        except (RetriableError, requests.RequestException) as exc:
            reason = str(exc) if isinstance(exc, RetriableError) else describe_transport_error(exc)
            if attempt == attempts:
                raise RetriesExhaustedError(
                    f"Project {project.label}: {reason} (after {attempt} attempt(s))"
                ) from None
            time.sleep(settings.retry_base_seconds * 2 ** (attempt - 1))
    raise AssertionError("unreachable")  # pragma: no cover


def _probe_detail(
    session: KeyedSession,
    client: PolyAIClient,
    settings: Settings,
    project: Project,
    conversation_id: str | None,
) -> None:
    """One detail request to the Agents API; raises PolyAIError naming the host and setting."""
    attempts = 1 + min(settings.max_retries, MAX_ATTEMPTS - 1)
    wanted = conversation_id or NO_SUCH_CONVERSATION
    for attempt in range(1, attempts + 1):
        try:
            response = session.get(
                client.detail_url(project, wanted),
                headers={"x-api-key": project.agents_api_key, "Accept": "application/json"},
                timeout=settings.request_timeout_seconds,
            )
            if conversation_id is None and response.status_code == 404:
                with contextlib.suppress(ValueError, AttributeError):
                    if response.json().get("error_code") == NOT_FOUND_CODE:
                        return  # the host knows the agent and took the key
            classify_detail_response(response, project, wanted)
            return
        except KeyGuardRefused as exc:
            raise PolyAIError(f"Project {project.label}: {exc}") from None
        except (RetriableError, requests.RequestException) as exc:
            reason = str(exc) if isinstance(exc, RetriableError) else describe_transport_error(exc)
            if attempt == attempts:
                raise RetriesExhaustedError(
                    f"Project {project.label}: conversation_details: {reason} "
                    f"(after {attempt} attempt(s); 'agents_api_url')"
                ) from None
            time.sleep(settings.retry_base_seconds * 2 ** (attempt - 1))
