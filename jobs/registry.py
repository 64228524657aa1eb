"""What each kind of job does: the runner looks a run's kind up here and imports no job itself.

Each feature registers its kinds when the app is built (`imports.init_app` registers the user import, the
datasource keep-alive registers itself), so jobs/ stays below the features that use it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from jobs.models import TaskRun

Handler = Callable[[TaskRun], object]
FailureDescriber = Callable[[Exception], tuple[str, str]]
Release = Callable[[int], None]
Forget = Callable[[TaskRun], bool]
TickHook = Callable[[], None]


def _unexpected(exc: Exception) -> tuple[str, str]:
    return TaskRun.FAILED, f"Unexpected error ({type(exc).__name__}): {exc}"[:2000]


def _nothing_to_release(run_id: int) -> None:
    return None


def _keep(run: TaskRun) -> bool:
    return False


@dataclass(frozen=True)
class JobKind:
    """A kind of job: its handler, how its failures read in the run history, and what a finished run lets go."""

    kind: str
    handler: Handler
    describe_failure: FailureDescriber = _unexpected
    release: Release = _nothing_to_release  # called with the run id when the run ends, however it ends
    resumable: bool = False  # a run that died part-way is resumed by the next one (said in its error)
    forget: Forget = _keep  # True for a finished run that leaves no row and no audit (a live round with no change)


_kinds: dict[str, JobKind] = {}
_tick_hooks: dict[str, TickHook] = {}


class UnknownJobKind(LookupError):
    """A run of a kind nobody registered (the feature's init_app did not run in this process)."""


def register(kind: str, handler: Handler, *, describe_failure: FailureDescriber = _unexpected,
             release: Release = _nothing_to_release, resumable: bool = False, forget: Forget = _keep) -> None:
    """Register (or replace: every app built in the process registers again) the handler of `kind`."""
    _kinds[kind] = JobKind(kind, handler, describe_failure, release, resumable, forget)


def on_tick(name: str, hook: TickHook) -> None:
    """Call `hook()` at every scheduler tick (once a minute in every consumer; it must be safe to run twice)."""
    _tick_hooks[name] = hook


def tick_hooks() -> list[tuple[str, TickHook]]:
    return sorted(_tick_hooks.items())


def job_kind(kind: str) -> JobKind:
    try:
        return _kinds[kind]
    except KeyError:
        raise UnknownJobKind(f"No handler is registered for jobs of kind {kind!r}.") from None


def registered_kinds() -> list[str]:
    return sorted(_kinds)
