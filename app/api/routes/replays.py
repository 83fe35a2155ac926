"""Replays: ``POST /v1/webhooks/{id}/replay`` starts one; ``/v1/replays/{id}`` follows or
cancels it. The API stores the job row and publishes its job message; a replayer role runs it
(``app.replay``)."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Annotated, Protocol

from fastapi import APIRouter, Depends, Path, Request, status

from app.api.auth import AuthenticatedRoute
from app.api.deps import PrincipalDep, ProducerDep, SettingsDep, TopicsDep, WebhookDep
from app.api.errors import ApiError, Unavailable, echo, error_responses
from app.api.publish import REPORT_MARGIN_S
from app.api.schemas import ReplayPublic, ReplayRequest
from app.errors import HandOffError, NotFound
from app.events import format_timestamp
from app.replay.jobs import Replay, ReplayMode, ReplayStatus, job_message, new_replay_id

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1", tags=["replays"], route_class=AuthenticatedRoute)


class ReplayRepo(Protocol):
    async def create(self, replay: Replay) -> None: ...
    async def get(self, replay_id: str) -> Replay | None: ...
    async def request_cancel(self, replay_id: str) -> None: ...
    async def set_status(
        self, replay_id: str, status: ReplayStatus, error: str | None = None
    ) -> None: ...


def get_replays(request: Request) -> ReplayRepo:
    replays: ReplayRepo = request.app.state.store.replays
    return replays


ReplaysDep = Annotated[ReplayRepo, Depends(get_replays)]
ReplayIdPath = Annotated[str, Path(alias="id", min_length=1, description="The replay id.")]


@router.post(
    "/webhooks/{id}/replay",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=ReplayPublic,
    responses=error_responses(401, 404, 409, 422, 503),
    summary="Replay or backfill events to a webhook",
    description="Re-reads the events topic between `since` and `until` (Kafka timestamps) and "
    "delivers the events matching this webhook (its account, types and filter) to it alone, "
    "including events from before it existed. Runs at a bounded rate; follow it with "
    "`GET /v1/replays/{id}`.",
)
async def start_replay(
    *,
    webhook: WebhookDep,
    body: ReplayRequest,
    settings: SettingsDep,
    replays: ReplaysDep,
    producer: ProducerDep,
    topics: TopicsDep,
) -> ReplayPublic:
    if not webhook.active:
        # Its attempts would only be cancelled: "webhook paused" (app.worker.deliver).
        raise ApiError(409, "the webhook is paused; activate it before replaying to it")
    now = datetime.now(UTC)
    since = _utc(body.since, "since")
    until = min(_utc(body.until, "until"), now) if body.until is not None else now
    if since > now:
        raise ApiError(422, "since is in the future", field="since")
    if since >= until:
        raise ApiError(422, "since must be before until", field="since")
    replay = Replay(
        id=new_replay_id(),
        account_id=webhook.account_id,
        webhook_id=webhook.id,
        mode=ReplayMode(body.mode),
        since=_ms(since),
        until=_ms(until),
        status=ReplayStatus.QUEUED,
        created_at=_ms(now),
        updated_at=_ms(now),
    )
    await replays.create(replay)
    key, value = job_message(replay)
    timeout = settings.api.enqueue_timeout.total_seconds() + REPORT_MARGIN_S
    try:
        await asyncio.wait_for(producer.send(topics.replays, value, key=key), timeout)
    except (HandOffError, TimeoutError):
        await replays.set_status(replay.id, ReplayStatus.FAILED, "not enqueued: Kafka refused")
        raise Unavailable("Kafka did not take the replay job; nothing was replayed") from None
    log.info(
        "replay queued (%s)",
        replay.mode.value,
        extra={"replay_id": replay.id, "webhook_id": webhook.id},
    )
    return _public(replay)


@router.get(
    "/replays/{id}",
    response_model=ReplayPublic,
    responses=error_responses(401, 404, 422, 503),
    summary="Get a replay and its progress",
)
async def get_replay(
    replay_id: ReplayIdPath, replays: ReplaysDep, principal: PrincipalDep
) -> ReplayPublic:
    return _public(await _load(replays, replay_id, principal.account_id))


@router.post(
    "/replays/{id}/cancel",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=ReplayPublic,
    responses=error_responses(401, 404, 409, 422, 503),
    summary="Cancel a replay",
    description="The replay stops after its current batch (attempts already enqueued are "
    "delivered); its status becomes `cancelled`. 409 once it has finished.",
)
async def cancel_replay(
    replay_id: ReplayIdPath, replays: ReplaysDep, principal: PrincipalDep
) -> ReplayPublic:
    replay = await _load(replays, replay_id, principal.account_id)
    if replay.status.finished:
        raise ApiError(409, f"the replay is {replay.status.value} already")
    await replays.request_cancel(replay.id)
    return _public(await _load(replays, replay_id, principal.account_id))


@router.delete(
    "/replays/{id}",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=ReplayPublic,
    responses=error_responses(401, 404, 409, 422, 503),
    summary="Cancel a replay (same as POST /v1/replays/{id}/cancel)",
)
async def delete_replay(
    replay_id: ReplayIdPath, replays: ReplaysDep, principal: PrincipalDep
) -> ReplayPublic:
    return await cancel_replay(replay_id, replays, principal)


async def _load(replays: ReplayRepo, replay_id: str, account_id: str) -> Replay:
    """The account's replay; another account's is the same 404 as an unknown one."""
    replay = await replays.get(replay_id) if replay_id.startswith("rpl_") else None
    if replay is None or replay.account_id != account_id:
        raise NotFound(f"no replay {echo(replay_id)}")
    return replay


def _utc(moment: datetime, field: str) -> datetime:
    if moment.tzinfo is None:
        raise ApiError(422, "needs a time zone (Z or an offset)", field=field)
    return moment.astimezone(UTC)


def _ms(moment: datetime) -> datetime:
    # Millisecond precision, as Cassandra keeps it (the answer then equals a later read).
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def _public(replay: Replay) -> ReplayPublic:
    return ReplayPublic(
        id=replay.id,
        webhook_id=replay.webhook_id,
        mode=replay.mode.value,
        status=replay.status.value,
        since=format_timestamp(replay.since),
        until=format_timestamp(replay.until),
        scanned=replay.counts.scanned,
        matched=replay.counts.matched,
        enqueued=replay.counts.enqueued,
        skipped=replay.counts.skipped,
        progress=round(replay.progress, 4),
        cancel_requested=replay.cancel_requested,
        earliest_available=format_timestamp(replay.earliest) if replay.earliest else None,
        error=replay.error,
        created_at=format_timestamp(replay.created_at),
        updated_at=format_timestamp(replay.updated_at),
        finished_at=format_timestamp(replay.finished_at) if replay.finished_at else None,
    )
