"""No thread fails silently: an exception at any stage a fetch worker runs ends the run promptly
with that error, against the emulator through the real HTTP client."""

from __future__ import annotations

import threading
import typing as t

import pytest
from conftest import make_emulator, tap_config

from tap_polyai.client import PolyAIClient
from tap_polyai.fetcher import STAGES, Fetcher
from tap_polyai.settings import load_settings
from tap_polyai.streams import _id_and_start
from tap_polyai.windows import WindowPlanner

WAIT = 30  # seconds before a hang counts as one (a deadlock guard, not a sleep)


class Injected(Exception):
    """The failure a test injects into a worker."""


def drain(fetcher: Fetcher[t.Any, t.Any], project: t.Any) -> BaseException | None:
    """Consume every window as the writer does, in a thread; return what it raised."""
    outcome: list[BaseException | None] = []

    def write() -> None:
        try:
            for _, records in fetcher.windows(project):
                for _ in records:
                    pass
        except BaseException as exc:  # noqa: BLE001 - the test inspects it
            outcome.append(exc)
        else:
            outcome.append(None)

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    writer.join(WAIT)
    assert not writer.is_alive(), "the writer hangs: a worker failed silently"
    return outcome[0]


def run_fetcher(
    on_stage: t.Callable[[str], None] | None = None, planner_class: type = WindowPlanner
) -> BaseException | None:
    with make_emulator() as emulator:
        settings = load_settings(tap_config(emulator, window_hours=6, max_concurrency=2))
        client = PolyAIClient(settings, _logger())
        project = settings.projects[0]
        fetcher: Fetcher[t.Any, t.Any] = Fetcher(
            client.conversations,
            _id_and_start,
            workers=2,
            budget_bytes=1 << 20,
            on_stage=on_stage,
        )
        planner = planner_class(
            settings.start_date, settings.end_date, settings.window, settings.page_size
        )
        fetcher.add(project, planner)
        try:
            return drain(fetcher, project)
        finally:
            fetcher.close()


def _logger() -> t.Any:
    import logging

    return logging.getLogger("test-worker-failures")


def test_without_a_failure_every_window_is_written() -> None:
    stages: set[str] = set()
    assert run_fetcher(stages.add) is None
    assert stages == set(STAGES), "every stage is reached, so each injection below is real"


@pytest.mark.parametrize("stage", STAGES)
@pytest.mark.parametrize("nth", [1, 2])
def test_a_failure_at_any_stage_ends_the_run_with_that_error(stage: str, nth: int) -> None:
    calls = 0
    lock = threading.Lock()

    def fail(at: str) -> None:
        nonlocal calls
        if at == stage:
            with lock:
                calls += 1
                if calls == nth:
                    raise Injected(f"injected at {stage} #{nth}")

    error = run_fetcher(fail)
    assert isinstance(error, Injected)
    assert str(error) == f"injected at {stage} #{nth}"


class _FailingPlanner(WindowPlanner):
    """Date arithmetic that overflows on the third window (as a huge setting once did)."""

    planned = 0

    def next_window(self) -> t.Any:
        self.planned += 1
        if self.planned == 3:
            raise OverflowError("date value out of range")
        return super().next_window()


def test_a_failure_while_planning_a_window_is_not_silent() -> None:
    error = run_fetcher(planner_class=_FailingPlanner)
    assert isinstance(error, OverflowError)
