"""Scoring runs: load inputs in bulk → pure rules → write results in bulk, publish atomically.

A run goes pending → running → succeeded | failed. The per-agreement stage runs over chunks of
agreements (one task each, any worker); the program-wide stage ranks, applies hysteresis,
flags and payouts, and publishes the whole run in one transaction. Pages read only the last
published run, so they see the previous results or the new ones, never a mixture.

Closed months (DOMAIN.md § Closing months, rules version 2): with C the last closed month, a
run computes only the months after C (`open_from` = C + 1) and carries in the frozen results
of C − 1 and C and the hysteresis walk at the end of C; readers see the frozen rows of the
months before `open_from` beside the run's own (`Scorecard.objects.of_run`).
"""

import datetime as dt
import hashlib
import json
import logging
import time
from dataclasses import dataclass
from functools import partial

import numpy as np
import pandas as pd
from django.conf import settings
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.db.models import CharField, F, Max, Min, Value
from django.db.models.functions import Cast, Concat, Greatest
from django.utils import timezone

from partnerships.models import (
    Agreement,
    AgreementKPI,
    IncentivePlan,
    KPIDefinition,
    MetricObservation,
    MonthAction,
    MonthEvent,
    ProgramSettings,
)
from partnerships.months import last_closed_month, month_after, month_before
from partnerships.queue import TaskQueueUnavailable, task_publish
from partnerships.services import lock_observation_writes

from . import alerts, rules
from .bulk import frame_insert, frame_update, query_frame
from .models import KPIScore, Scorecard, ScoringChunk, ScoringRun

logger = logging.getLogger(__name__)

SCORE_FIELDS = ["financial", "strategic", "operational", "relationship", "overall"]

STAGE_QUEUED = "queued"
STAGE_PLANNING = "planning"
STAGE_SCORING = "scoring agreements"
STAGE_PUBLISHING = "ranking and publishing"
# A task records its start, then takes its row lock: for this long a started part that holds
# no lock may still be about to take it rather than be dead.
START_GRACE = dt.timedelta(seconds=3)


class ScoringAlreadyRunning(Exception):
    """A run is pending or running; the database refused a second one."""

    def __init__(self, active: ScoringRun | None):
        self.active = active
        detail = ""
        if active:
            detail = f" (run {active.pk}, {active.status}, {active.stage or 'queued'})"
        super().__init__(f"A scoring run is already in progress{detail}; try again when it ends.")


@dataclass(frozen=True)
class RunSummary:
    run_id: int
    status: str
    months: int
    first_period: str
    last_period: str
    agreements: int
    scorecards: int
    tier_changes: int
    seconds: float  # from the request to the published results
    cleanup_seconds: float  # removing the previous run's results afterwards
    fingerprint: str
    error: str = ""


def _now() -> dt.datetime:
    return timezone.now()


def scoring_runs_expire_stale(*, now: dt.datetime | None = None) -> int:
    """Mark failed every active run whose heartbeat is older than SCORING_STALE_AFTER_SECONDS."""
    now = now or _now()
    limit = now - dt.timedelta(seconds=settings.SCORING_STALE_AFTER_SECONDS)
    stale = ScoringRun.objects.filter(active=True, heartbeat_at__lt=limit)
    count = 0
    for run in stale:
        count += ScoringRun.objects.filter(pk=run.pk, active=True, heartbeat_at__lt=limit).update(
            status=ScoringRun.Status.FAILED,
            active=None,
            finished_at=now,
            error=(
                f"Stopped reporting progress at stage '{run.stage or 'queued'}' "
                f"(last heartbeat {run.heartbeat_at:%Y-%m-%d %H:%M:%S %Z}); its worker probably "
                "stopped. The previous results are still shown."
            ),
        )
    if count:
        logger.warning("Marked %d stale scoring run(s) failed", count)
    return count


def scoring_run_request(
    *, trigger: str, user=None, scheduled_for: dt.date | None = None, attempt: int = 1
) -> ScoringRun:
    """Create a pending run, or raise ScoringAlreadyRunning when the database holds one."""
    scoring_runs_expire_stale()
    now = _now()
    try:
        with transaction.atomic():
            return ScoringRun.objects.create(
                trigger=trigger,
                triggered_by=user,
                scheduled_for=scheduled_for,
                attempt=attempt,
                rules_version=rules.RULES_VERSION,
                stage=STAGE_QUEUED,
                heartbeat_at=now,
                # The caller queues the run's task next (scoring.tasks.scoring_enqueue).
                dispatches=1,
            )
    except IntegrityError:
        same_night = scheduled_for and ScoringRun.objects.filter(
            scheduled_for=scheduled_for, attempt=attempt
        ).first()
        raise ScoringAlreadyRunning(
            same_night or ScoringRun.objects.filter(active=True).first()
        ) from None


def scoring_run_unqueued(*, run_id: int, error: str) -> bool:
    """Undo a run whose task the queue refused; False when a worker took it all the same.

    A nightly run is kept as failed (the supervisor tries the night again); any other is
    deleted, so that nothing was started.
    """
    _fresh_connection()
    runs = ScoringRun.objects.filter(pk=run_id, status=ScoringRun.Status.PENDING)
    if runs.filter(trigger=ScoringRun.Trigger.SCHEDULE).exists():
        return scoring_run_fail(run_id=run_id, error=error, status=ScoringRun.Status.PENDING)
    deleted, _ = runs.delete()
    return bool(deleted)


def scoring_run_claim(*, run_id: int) -> bool:
    """Move a pending run to running; False when another delivery already claimed it."""
    now = _now()
    claimed = ScoringRun.objects.filter(pk=run_id, status=ScoringRun.Status.PENDING).update(
        status=ScoringRun.Status.RUNNING, started_at=now, heartbeat_at=now, stage=STAGE_PLANNING,
        progress=1,
    )
    return claimed == 1


def _fresh_connection() -> None:
    # After PostgreSQL dropped the connection every statement on it fails, the one recording
    # the failure too. Inside a caller's transaction there is nothing to reopen.
    if not connection.in_atomic_block:
        connection.close()


def scoring_run_fail(*, run_id: int, error: str, status: str | None = None) -> bool:
    """Mark an active run failed (only if still `status`, when given); its staged rows are
    never shown and are cleaned up later."""
    _fresh_connection()
    runs = ScoringRun.objects.filter(pk=run_id, active=True)
    if status:
        runs = runs.filter(status=status)
    return bool(runs.update(
        status=ScoringRun.Status.FAILED, active=None, finished_at=_now(), error=error[:5000]
    ))


def scoring_task_error(*, run_id: int, error: str, index: int | None = None) -> None:
    """Record why a task of an active run (a chunk's, or the run's own) ended without finishing.

    The supervisor decides next: the task queued again, or the run failed with this reason.
    """
    _fresh_connection()
    if index is None:
        ScoringRun.objects.filter(pk=run_id, active=True).update(error=error[:5000])
    else:
        ScoringChunk.objects.filter(run_id=run_id, index=index, done=False).update(
            error=error[:5000]
        )


def _program_periods() -> list[str]:
    bounds = MetricObservation.objects.aggregate(first=Min("date"), last=Max("date"))
    if bounds["first"] is None:
        return []
    return [
        str(period)
        for period in pd.period_range(bounds["first"], bounds["last"], freq="M")
    ]


def _computed_periods(*, periods: list[str], open_from: str) -> list[str]:
    """The months a run computes: those from `open_from` on (every month when it is blank)."""
    return [period for period in periods if not open_from or period >= open_from]


def _rules_version(*, open_from: str) -> int:
    """A run computing from `open_from` carries the closed months' state when it is set."""
    closed = rules.ClosedState(last_closed=month_before(open_from)) if open_from else None
    return rules.rules_version(closed=closed)


def _default_chunk_size(*, periods: list[str], computed: list[str]) -> int:
    """Agreements per chunk: about the work of SCORING_CHUNK_SIZE agreements over every month,
    so a run of a few open months takes more agreements per chunk, and fewer round trips."""
    return settings.SCORING_CHUNK_SIZE * max(1, len(periods) // max(len(computed), 1))


def _settings_snapshot() -> dict:
    program = ProgramSettings.current()
    return {
        "policy": program.tier_policy,
        "strategic_threshold": float(program.strategic_threshold),
        "growth_threshold": float(program.growth_threshold),
        "hysteresis": int(program.hysteresis),
    }


def scoring_run_plan(*, run_id: int, chunk_size: int | None = None) -> list[int]:
    """Fix the months, settings and agreement chunks of a running run; return chunk indexes.

    The months shown run from the program's first month to its last; the months computed start
    after the last closed month (`open_from`), whose frozen results the run carries in.
    """
    periods = _program_periods()
    last_closed = last_closed_month()
    open_from = month_after(last_closed) if last_closed else ""
    chunk_size = chunk_size or _default_chunk_size(
        periods=periods, computed=_computed_periods(periods=periods, open_from=open_from))
    agreement_ids = list(Agreement.objects.order_by("id").values_list("id", flat=True))
    chunks = [
        agreement_ids[start : start + chunk_size]
        for start in range(0, len(agreement_ids), chunk_size)
    ]
    with transaction.atomic():
        run = ScoringRun.objects.select_for_update().get(pk=run_id)
        if run.status != ScoringRun.Status.RUNNING:
            return []
        run.chunks.all().delete()
        now = _now()
        # The caller queues every chunk next.
        ScoringChunk.objects.bulk_create(
            ScoringChunk(run=run, index=index, agreement_ids=ids, sends=1, sent_at=now)
            for index, ids in enumerate(chunks)
        )
        run.settings_snapshot = _settings_snapshot()
        run.open_from = open_from
        run.rules_version = _rules_version(open_from=open_from)
        run.first_period = periods[0] if periods else ""
        run.last_period = periods[-1] if periods else ""
        run.months = len(periods)
        run.agreements = len(agreement_ids)
        run.chunks_total = len(chunks)
        run.chunks_done = 0
        run.stage = STAGE_SCORING
        run.progress = 5
        run.heartbeat_at = now
        run.save()
    return list(range(len(chunks)))


def _in_clause(ids: list[int]) -> tuple[str, list[int]]:
    return ", ".join(["%s"] * len(ids)), list(ids)


def _postgresql_observations(
    *, agreement_ids: list[int], first: dt.date, last: dt.date
) -> pd.DataFrame:
    """The chunk's observations as packed binary columns: one row instead of millions.

    Each column is aggregated into one bytea of big-endian fixed-width values in the same row
    order, which numpy reads without parsing; doubles keep their exact bits.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT string_agg(int8send(agreement_id), ''::bytea), "
            "string_agg(int8send(kpi_id), ''::bytea), "
            "string_agg(boolsend(side = 'host'), ''::bytea), "
            "string_agg(int4send(date - DATE '1970-01-01'), ''::bytea), "
            "string_agg(float8send(value), ''::bytea), "
            "string_agg(int8send(id), ''::bytea) "
            f"FROM {MetricObservation._meta.db_table} "
            "WHERE agreement_id = ANY(%s) AND date >= %s AND date <= %s",
            [list(agreement_ids), first, last],
        )
        packed = [bytes(column or b"") for column in cursor.fetchone()]
    agreement, kpi, host, day, value, recorded = (
        np.frombuffer(data, dtype=dtype)
        for data, dtype in zip(packed, (">i8", ">i8", "?", ">i4", ">f8", ">i8"), strict=True)
    )
    return pd.DataFrame({
        "agreement_id": agreement.astype("int64"),
        "kpi_id": kpi.astype("int64"),
        "side": pd.Series(np.where(host, "host", "partner"), dtype=object),
        "date": pd.to_datetime(day.astype("int64"), unit="D"),
        "value": value.astype("float64"),
        "recorded_order": recorded.astype("int64"),
    })


def load_chunk_inputs(*, agreement_ids: list[int], periods: list[str]) -> dict[str, pd.DataFrame]:
    """Read the agreements, their KPIs and their observations in the run's months, in bulk."""
    placeholders, params = _in_clause(agreement_ids)
    weights = ["weight_financial", "weight_strategic", "weight_operational",
               "weight_relationship"]
    agreements = query_frame(
        sql=f"SELECT id, {', '.join(weights)} FROM {Agreement._meta.db_table} "
        f"WHERE id IN ({placeholders}) ORDER BY id",
        params=params,
        columns=["agreement_id", *weights],
        dtypes={"agreement_id": "int64", **dict.fromkeys(weights, "float64")},
    )
    agreement_kpis = query_frame(
        sql=f"SELECT ak.agreement_id, ak.kpi_id, k.category, k.aggregation, k.source, ak.target, "
        f"ak.floor, ak.weight FROM {AgreementKPI._meta.db_table} ak "
        f"JOIN {KPIDefinition._meta.db_table} k ON k.id = ak.kpi_id "
        f"WHERE ak.agreement_id IN ({placeholders}) ORDER BY ak.agreement_id, ak.kpi_id",
        params=params,
        columns=["agreement_id", "kpi_id", "category", "aggregation", "source", "target",
                 "floor", "weight"],
        dtypes={"agreement_id": "int64", "kpi_id": "int64", "category": object,
                "aggregation": object, "source": object, "target": "float64",
                "floor": "float64", "weight": "float64"},
    )
    observation_columns = ["agreement_id", "kpi_id", "side", "date", "value", "recorded_order"]
    observation_dtypes = {"agreement_id": "int64", "kpi_id": "int64", "side": object,
                          "date": object, "value": "float64", "recorded_order": "int64"}
    if periods and connection.vendor == "postgresql":
        observations = _postgresql_observations(
            agreement_ids=agreement_ids, first=pd.Period(periods[0], freq="M").start_time.date(),
            last=pd.Period(periods[-1], freq="M").end_time.date(),
        )
    elif periods:
        first = pd.Period(periods[0], freq="M").start_time.date()
        last = pd.Period(periods[-1], freq="M").end_time.date()
        observations = query_frame(
            sql=f"SELECT agreement_id, kpi_id, side, date, value, id "
            f"FROM {MetricObservation._meta.db_table} "
            f"WHERE agreement_id IN ({placeholders}) AND date >= %s AND date <= %s",
            params=[*params, first, last],
            columns=observation_columns,
            dtypes=observation_dtypes,
        )
    else:
        observations = pd.DataFrame(
            {name: pd.Series(dtype=dtype) for name, dtype in observation_dtypes.items()}
        )
    observations["date"] = pd.to_datetime(observations["date"])
    return {"agreements": agreements, "agreement_kpis": agreement_kpis,
            "observations": observations}


FROZEN_COLUMNS = ["agreement_id", "period", "overall", "complete", "tier", "streak"]


def _frozen_last_two(*, last_closed: str, agreement_ids: list[int] | None) -> pd.DataFrame:
    """Each agreement's last two frozen scorecards up to `last_closed`, latest first."""
    table = Scorecard._meta.db_table
    fields = ("agreement_id, period, overall, has_scorecard AND NOT incomplete AS complete, "
              "tier, streak")
    if connection.vendor == "postgresql":
        # Two index lookups per agreement (the frozen rows' unique index on agreement and
        # month), however many months are closed.
        chosen = ("unnest(%s::bigint[])" if agreement_ids is not None
                  else f"(SELECT id FROM {Agreement._meta.db_table})")
        sql = (f"SELECT latest.* FROM {chosen} AS chosen(id) CROSS JOIN LATERAL "
               f"(SELECT {fields} FROM {table} WHERE frozen AND agreement_id = chosen.id "
               "AND period <= %s ORDER BY period DESC LIMIT 2) latest")
        params = [[*agreement_ids], last_closed] if agreement_ids is not None else [last_closed]
    else:
        only = ""
        params = [last_closed]
        if agreement_ids is not None:
            placeholders, ids = _in_clause(agreement_ids or [0])
            only, params = f" AND agreement_id IN ({placeholders})", [last_closed, *ids]
        sql = (f"SELECT {', '.join(FROZEN_COLUMNS)} FROM (SELECT {fields}, row_number() OVER "
               "(PARTITION BY agreement_id ORDER BY period DESC) AS recency "
               f"FROM {table} WHERE frozen AND period <= %s{only}) ranked WHERE recency <= 2")
    frame = query_frame(
        sql=sql, params=params, columns=FROZEN_COLUMNS,
        dtypes={"agreement_id": "int64", "period": object, "overall": "float64",
                "complete": bool, "tier": object, "streak": "int64"},
    )
    return frame.sort_values(["agreement_id", "period"], ascending=[True, False],
                             ignore_index=True)


def closed_state(
    *, open_from: str, agreement_ids: list[int] | None = None
) -> rules.ClosedState | None:
    """What the closed months before `open_from` carry into a run (rules.ClosedState), read in
    one query from the frozen scorecards (of `agreement_ids` only, when given); None when
    nothing is closed.

    Per agreement, its last two frozen rows up to C = the month before `open_from`: C − 1 and C
    feed the rolling score and the at-risk test, C the walk's tier and streak. An agreement
    whose last frozen row is before C (months closed past the last month the runs had) keeps
    that tier with a streak of 0, since the months after it had no candidate.
    """
    if not open_from:
        return None
    last_closed = month_before(open_from)
    frame = _frozen_last_two(last_closed=last_closed, agreement_ids=agreement_ids)
    months = frame.loc[frame["period"] >= month_before(last_closed),
                       ["agreement_id", "period", "overall", "complete"]]
    latest = frame.drop_duplicates("agreement_id")
    tier = latest["tier"].where(latest["tier"].notna() & (latest["tier"] != ""), None)
    walk = pd.DataFrame({
        "agreement_id": latest["agreement_id"].to_numpy(),
        "tier": tier.astype(object).to_numpy(),
        "streak": np.where(latest["period"] == last_closed, latest["streak"], 0),
    })
    return rules.ClosedState(last_closed=last_closed, months=months.reset_index(drop=True),
                             walk=walk)


def _agreement_digests(inputs: dict[str, pd.DataFrame]) -> dict[str, str]:
    """Per agreement, a digest of its weights, KPIs and observations that ignores row order.

    Each row is hashed to 64 bits and an agreement's row hashes are added modulo 2**64: rows
    are unique (natural keys), so the sum identifies the set whatever order it was read in.
    """
    agreement_ids = inputs["agreements"]["agreement_id"].to_numpy()
    observations = inputs["observations"][["agreement_id", "kpi_id", "side", "date", "value"]]
    observations = observations.assign(side=(observations["side"] == "host").astype("int8"))
    parts = [inputs["agreements"], inputs["agreement_kpis"], observations]
    totals = np.zeros((len(agreement_ids), len(parts)), dtype=np.uint64)
    counts = np.zeros((len(agreement_ids), len(parts)), dtype=np.int64)
    for index, frame in enumerate(parts):
        if frame.empty:
            continue
        row_hashes = pd.util.hash_pandas_object(frame, index=False).to_numpy()
        owners = np.searchsorted(agreement_ids, frame["agreement_id"].to_numpy())
        np.add.at(totals[:, index], owners, row_hashes)
        counts[:, index] = np.bincount(owners, minlength=len(agreement_ids))
    return {
        str(aid): "".join(f"{total:016x}" for total in totals[row])
        + "-" + "-".join(str(count) for count in counts[row])
        for row, aid in enumerate(agreement_ids)
    }


SCORECARD_COLUMNS = ["agreement_id", "period", "has_scorecard", *SCORE_FIELDS, "coverage",
                     "rolling", "incomplete", "at_risk", "candidate_tier", "tier", "payout"]


def _insert_scorecards(*, run: ScoringRun, scorecards: pd.DataFrame) -> None:
    frame = scorecards.copy()
    if "tier" not in frame:
        # Staged by a chunk: the program-wide stage fills these in when it publishes.
        frame["at_risk"], frame["candidate_tier"], frame["tier"], frame["payout"] = (
            False, "", "", float("nan")
        )
    for column in ("candidate_tier", "tier"):
        frame[column] = frame[column].fillna("").astype(object)
    frame = frame[SCORECARD_COLUMNS]
    frame.insert(0, "run_id", run.pk)
    frame_insert(table=Scorecard._meta.db_table, frame=frame)


def _insert_kpi_scores(*, run: ScoringRun, kpi_scores: pd.DataFrame) -> None:
    frame = kpi_scores[list(rules.KPI_SCORE_COLUMNS)].copy()
    frame.insert(0, "run_id", run.pk)
    frame_insert(table=KPIScore._meta.db_table, frame=frame)


def scoring_chunk_execute(*, run_id: int, index: int) -> bool:
    """Score one chunk of agreements and stage its rows under the run; False when skipped.

    Safe to run twice: a chunk already done is skipped, and a chunk re-run after a crash
    replaces whatever it had staged.
    """
    if not ScoringRun.objects.filter(pk=run_id, status=ScoringRun.Status.RUNNING).exists():
        logger.info("Chunk %s of run %s skipped: the run is not running", index, run_id)
        return False
    now = _now()
    with transaction.atomic():
        # Committed before the work, so that the supervisor can tell a started chunk that lost
        # its worker (not done, row not locked) from one still waiting in the queue. A second
        # delivery waits here while the first holds the row, then finds it done.
        started = ScoringChunk.objects.filter(run_id=run_id, index=index, done=False).update(
            attempts=F("attempts") + 1, started_at=now
        )
        if started:
            ScoringRun.objects.filter(pk=run_id, status=ScoringRun.Status.RUNNING).update(
                heartbeat_at=now
            )
    if not started:
        return False
    with transaction.atomic():
        run = ScoringRun.objects.get(pk=run_id)
        # The row lock makes a duplicate delivery of this chunk wait here, then skip; held
        # until the commit, it also tells the supervisor that this chunk is being worked on.
        chunk = ScoringChunk.objects.select_for_update().get(run_id=run_id, index=index)
        if chunk.done or run.status != ScoringRun.Status.RUNNING:
            return False
        if connection.vendor == "postgresql":
            # Staged rows are derived and invisible until publication: a crash that loses this
            # commit only means the chunk is scored again, so it need not wait for the disk.
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL synchronous_commit = off")
        periods = _computed_periods(periods=run.periods, open_from=run.open_from)
        inputs = load_chunk_inputs(agreement_ids=chunk.agreement_ids, periods=periods)
        kpi_scores, scorecards = rules.score_agreements(
            observations=inputs["observations"],
            agreement_kpis=inputs["agreement_kpis"],
            agreements=inputs["agreements"],
            periods=periods,
            closed=closed_state(open_from=run.open_from, agreement_ids=chunk.agreement_ids),
        )
        KPIScore.objects.filter(run=run, agreement_id__in=chunk.agreement_ids).delete()
        Scorecard.objects.filter(run=run, agreement_id__in=chunk.agreement_ids).delete()
        _insert_kpi_scores(run=run, kpi_scores=kpi_scores)
        _insert_scorecards(run=run, scorecards=scorecards)
        if settings.SCORING_CHUNK_WORK_MS:
            time.sleep(settings.SCORING_CHUNK_WORK_MS / 1000)
        chunk.done = True
        chunk.error = ""
        chunk.digests = _agreement_digests(inputs)
        chunk.save(update_fields=["done", "error", "digests"])
        # Progress in the same commit as the chunk: nothing after the commit can lose it.
        done = F("chunks_done") + 1
        ScoringRun.objects.filter(pk=run_id).update(
            chunks_done=done,
            heartbeat_at=_now(),
            progress=5 + 85 * done / Greatest(F("chunks_total"), 1),
            stage=Concat(
                Value(f"{STAGE_SCORING} ("), Cast(done, CharField()), Value("/"),
                Cast(F("chunks_total"), CharField()), Value(")"), output_field=CharField(),
            ),
        )
    if settings.SCORING_CHUNK_PAUSE_MS:
        time.sleep(settings.SCORING_CHUNK_PAUSE_MS / 1000)
    return True


def scoring_run_staged(*, run_id: int) -> bool:
    """Whether every chunk of a running run is staged, so that the run can be published."""
    def check() -> bool:
        return (
            ScoringRun.objects.filter(pk=run_id, status=ScoringRun.Status.RUNNING).exists()
            and not ScoringChunk.objects.filter(run_id=run_id, done=False).exists()
        )

    try:
        return check()
    except DatabaseError:
        # Asked after a chunk's commit: a dropped connection must not cost the staged chunk.
        if connection.in_atomic_block:
            raise
        _fresh_connection()
        return check()


def _program_inputs() -> tuple[pd.DataFrame, pd.DataFrame, str]:
    stages = pd.DataFrame.from_records(
        list(Agreement.objects.order_by("id").values_list("id", "stage")),
        columns=["agreement_id", "stage"],
    ).astype({"agreement_id": "int64", "stage": object})
    plans = pd.DataFrame.from_records(
        [
            (aid, float(base), float(baseline), float(m_t), float(m_g), float(m_s))
            for aid, base, baseline, m_t, m_g, m_s in IncentivePlan.objects.order_by(
                "agreement_id"
            ).values_list(
                "agreement_id", "base_amount", "baseline_score", "multiplier_transactional",
                "multiplier_growth", "multiplier_strategic",
            )
        ],
        columns=["agreement_id", "base_amount", "baseline", "multiplier_transactional",
                 "multiplier_growth", "multiplier_strategic"],
    ).astype({"agreement_id": "int64"})
    definitions = list(
        KPIDefinition.objects.order_by("id").values_list(
            "id", "category", "aggregation", "source"
        )
    )
    program_digest = hashlib.sha256(
        json.dumps(
            {"stages": stages.to_numpy().tolist(), "plans": plans.to_numpy().tolist(),
             "kpis": definitions},
            default=str,
        ).encode()
    ).hexdigest()
    return stages, plans, program_digest


def _closed_months_digest(*, open_from: str) -> dict:
    """The closed state a run computing from `open_from` starts from: how far the months before
    it are closed now, and the last close of each (which froze the rows it shows)."""
    last_closed = last_closed_month()
    through = min(last_closed, month_before(open_from)) if last_closed else ""
    closes = (
        MonthEvent.objects.filter(action=MonthAction.CLOSED, month__lt=open_from)
        .order_by("month").values("month").annotate(last=Max("id"))
        .values_list("month", "last")
    )
    return {"closed_through": through, "last_closes": [list(close) for close in closes]}


def inputs_fingerprint(*, open_from: str, first_period: str, last_period: str,
                       settings_snapshot: dict, program_digest: str,
                       digests: dict[str, str]) -> str:
    """The fingerprint of a run computing the months from `open_from` (every month when blank):
    sha256 of the rules version, settings, the months computed, the program digest, each
    agreement's digest of those months in agreement order and, with closed months, the closed
    state it started from (_closed_months_digest, read now)."""
    composition = {
        "rules_version": _rules_version(open_from=open_from),
        "settings": settings_snapshot,
        "periods": [open_from or first_period, last_period],
        "program": program_digest,
        "agreements": [digests[key] for key in sorted(digests, key=int)],
    }
    if open_from:
        # Without closed months the composition is version 1's: its fingerprints stay valid.
        composition["closed"] = _closed_months_digest(open_from=open_from)
    return hashlib.sha256(json.dumps(composition, sort_keys=True).encode()).hexdigest()


def scoring_inputs_fingerprint(*, chunk_size: int | None = None) -> str:
    """The inputs now, composed as the published run's fingerprint is (the months from its
    `open_from`, the closed state before it): equal to that fingerprint while its results are
    current. Closing a month from the run keeps it current (writes into the month are refused);
    reopening a month before its `open_from` does not."""
    current = ScoringRun.objects.current()
    open_from = current.open_from if current else ""
    periods = _program_periods()
    computed = _computed_periods(periods=periods, open_from=open_from)
    chunk_size = chunk_size or _default_chunk_size(periods=periods, computed=computed)
    agreement_ids = list(Agreement.objects.order_by("id").values_list("id", flat=True))
    digests: dict[str, str] = {}
    for start in range(0, len(agreement_ids), chunk_size):
        inputs = load_chunk_inputs(agreement_ids=agreement_ids[start:start + chunk_size],
                                   periods=computed)
        digests.update(_agreement_digests(inputs))
    return inputs_fingerprint(
        open_from=open_from, first_period=periods[0] if periods else "",
        last_period=periods[-1] if periods else "", settings_snapshot=_settings_snapshot(),
        program_digest=_program_inputs()[2], digests=digests,
    )


def _staged_scorecards(run: ScoringRun) -> pd.DataFrame:
    columns = ["agreement_id", "period", "has_scorecard", *SCORE_FIELDS, "coverage", "rolling",
               "incomplete"]
    frame = query_frame(
        sql=f"SELECT {', '.join(columns)} FROM {Scorecard._meta.db_table} WHERE run_id = %s "
        f"ORDER BY agreement_id, period",
        params=[run.pk],
        columns=columns,
        dtypes={"agreement_id": "int64", "period": object, "has_scorecard": bool,
                "incomplete": bool, "coverage": "float64", "rolling": "float64",
                **dict.fromkeys(SCORE_FIELDS, "float64")},
    )
    frame["complete"] = frame["has_scorecard"] & ~frame["incomplete"]
    return frame


def _closed_months_moved(run: ScoringRun) -> str:
    """Why the run cannot publish when months were closed or reopened since it was planned
    (call under the observation write lock, which closing takes); "" when they were not."""
    planned = month_before(run.open_from) if run.open_from else None
    now = last_closed_month()
    if now == planned:
        return ""
    return (
        f"The closed months changed while this run was scoring (closed up to "
        f"{planned or 'no month'} when it started, up to {now or 'no month'} now): its results "
        "were not published. The previous results are still shown; start scoring again."
    )


def _assign_tiers(*, run: ScoringRun, stages: pd.DataFrame, plans: pd.DataFrame,
                  closed: rules.ClosedState | None) -> pd.DataFrame:
    """Rules 7–9 and the payouts over the run's staged months, written onto its rows."""
    snapshot = run.settings_snapshot
    tiers = rules.assign_tiers(
        scorecards=_staged_scorecards(run),
        stages=stages,
        policy=snapshot["policy"],
        strategic_threshold=snapshot["strategic_threshold"],
        growth_threshold=snapshot["growth_threshold"],
        hysteresis=snapshot["hysteresis"],
        incentives=plans,
        closed=closed,
    )
    tier_columns = tiers[["agreement_id", "period", "candidate_tier", "tier", "streak",
                          "at_risk", "payout"]].copy()
    for column in ("candidate_tier", "tier"):
        tier_columns[column] = tier_columns[column].fillna("").astype(object)
    tier_columns["streak"] = tier_columns["streak"].astype("int16")
    frame_update(table=Scorecard._meta.db_table, frame=tier_columns,
                 keys=["agreement_id", "period"], scope={"run_id": run.pk})
    return tiers


def _shown_counts(*, run: ScoringRun, tiers: pd.DataFrame,
                  closed: rules.ClosedState | None) -> tuple[int, int]:
    """Scorecards and tier changes over every month readers see of the run: its own months,
    and the frozen months before them (counted in SQL, with the change from C's tier)."""
    scorecards = int(tiers["has_scorecard"].sum())
    if closed is None:
        return scorecards, rules.tier_changes(tiers=tiers)
    table = Scorecard._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            # A walk never loses its tier, so consecutive rows compare as consecutive tiers.
            "SELECT count(*) FILTER (WHERE has_scorecard), count(*) FILTER (WHERE previous <> '' "
            "AND tier <> '' AND tier <> previous) FROM (SELECT has_scorecard, tier, lag(tier) OVER "
            f"(PARTITION BY agreement_id ORDER BY period) AS previous FROM {table} WHERE frozen "
            "AND period < %s) frozen_rows",
            [run.open_from],
        )
        frozen_scorecards, frozen_changes = cursor.fetchone()
    walk = closed.walk.assign(period=closed.last_closed)[["agreement_id", "period", "tier"]]
    joined = pd.concat([walk, tiers[["agreement_id", "period", "tier"]]], ignore_index=True)
    return scorecards + frozen_scorecards, frozen_changes + rules.tier_changes(tiers=joined)


def scoring_run_publish(*, run_id: int) -> ScoringRun | None:
    """Rank, apply hysteresis, flag and pay out over the staged rows; publish in one commit."""
    # Committed before the work: the supervisor counts the starts, and the run's row lock held
    # until the commit below tells it that publishing is under way. A second delivery waits
    # for that lock here, then finds the run no longer running.
    started = ScoringRun.objects.filter(pk=run_id, status=ScoringRun.Status.RUNNING).update(
        stage=STAGE_PUBLISHING, progress=92, heartbeat_at=_now(),
        publish_attempts=F("publish_attempts") + 1,
    )
    if not started:
        logger.info("Publish of run %s skipped: the run is not running", run_id)
        return None
    with transaction.atomic():
        run = ScoringRun.objects.select_for_update().get(pk=run_id)
        if run.status != ScoringRun.Status.RUNNING:
            logger.info("Publish of run %s skipped: run is %s", run_id, run.status)
            return None
        chunks = list(run.chunks.order_by("index"))
        missing = [chunk.index for chunk in chunks if not chunk.done]
        if missing:
            raise RuntimeError(f"chunks {missing} of run {run_id} are not done")
        # Closing takes this lock too: no month closes or reopens until this run is published,
        # and a run planned before a close must not publish rows of a month closed since.
        lock_observation_writes()
        moved = _closed_months_moved(run)
        if moved:
            scoring_run_fail(run_id=run.pk, error=moved)
            logger.warning("Scoring run %s failed: %s", run.pk, moved)
            return None
        # The run published until now: its results are kept until this commit.
        previous = ScoringRun.objects.current()
        stages, plans, program_digest = _program_inputs()
        closed = closed_state(open_from=run.open_from)
        tiers = _assign_tiers(run=run, stages=stages, plans=plans, closed=closed)
        digests: dict[str, str] = {}
        for chunk in chunks:
            digests.update(chunk.digests)
        fingerprint = inputs_fingerprint(
            open_from=run.open_from, first_period=run.first_period, last_period=run.last_period,
            settings_snapshot=run.settings_snapshot, program_digest=program_digest,
            digests=digests,
        )
        now = _now()
        run.status = ScoringRun.Status.SUCCEEDED
        run.active = None
        run.fingerprint = fingerprint
        run.scorecards, run.tier_changes = _shown_counts(run=run, tiers=tiers, closed=closed)
        run.stage = "done"
        run.error = ""
        run.progress = 100
        run.finished_at = now
        run.published_at = now
        run.heartbeat_at = now
        run.save()
        # Read before the commit, while the previous run's results still exist (the cleanup
        # removes them); told by a task once the new results are visible.
        moves = alerts.score_moves(previous=previous, run=run)
        if moves:
            transaction.on_commit(partial(_score_alerts_queue, run_id=run.pk, moves=moves))
    return run


def _score_alerts_queue(*, run_id: int, moves: list[dict]) -> None:
    from .tasks import mail_score_alerts  # the tasks module imports this one

    try:
        task_publish(mail_score_alerts.si(run_id, moves))
    except TaskQueueUnavailable:
        logger.error("E-mail alerts of run %s not sent: the task queue is unavailable", run_id)


@dataclass(frozen=True)
class Requeue:
    """A task of a run to queue again: "run" (claim and plan), "chunk" (with its index) or
    "publish"."""

    task: str
    run_id: int
    index: int | None = None


def _attempts_failed(*, run: ScoringRun, what: str, attempts: int, error: str) -> list[Requeue]:
    reason = error or "its worker stopped (killed, or its connection was lost)"
    scoring_run_fail(run_id=run.pk, error=(
        f"{what} did not finish after {attempts} attempt{'s' if attempts != 1 else ''}: "
        f"{reason}. The previous results are still shown."
    ))
    logger.warning("Scoring run %s failed: %s did not finish", run.pk, what)
    return []


def scoring_run_supervise(
    *, run_id: int, now: dt.datetime | None = None, task_ended: bool = False,
    chunk: int | None = None,
) -> list[Requeue]:
    """Find the lost tasks of an active run: mark them to be queued again, or fail the run.

    `task_ended`: one of the run's tasks (chunk `chunk`, or the run's own when None) has just
    ended without finishing its part, so it is lost now rather than after a quiet period.
    """
    now = now or _now()
    lost_after = dt.timedelta(seconds=settings.SCORING_LOST_AFTER_SECONDS)
    limit = settings.SCORING_TASK_ATTEMPTS
    with transaction.atomic():
        # Whoever holds the run's row (a claim, planning, publishing, a chunk committing) is
        # alive: look again on the next pass. Nothing here waits for a lock.
        run = (ScoringRun.objects.select_for_update(skip_locked=True)
               .filter(pk=run_id, active=True).first())
        if run is None:
            return []
        last_sign = max(moment for moment in (run.created_at, run.heartbeat_at, run.requeued_at)
                        if moment)
        quiet = last_sign < now - lost_after
        own_task_ended = task_ended and chunk is None

        if run.status == ScoringRun.Status.PENDING or run.stage == STAGE_PLANNING:
            if not (quiet or own_task_ended):
                return []
            if run.dispatches >= limit:
                if run.status == ScoringRun.Status.PENDING and not own_task_ended:
                    # Queued often enough: no worker takes it, and the stale rule ends it.
                    return []
                return _attempts_failed(run=run, what="Planning the run", attempts=run.dispatches,
                                        error=run.error)
            # Planning starts over from the queue: back to pending, so that one delivery claims it.
            ScoringRun.objects.filter(pk=run.pk).update(
                status=ScoringRun.Status.PENDING, stage=STAGE_QUEUED, started_at=None,
                dispatches=F("dispatches") + 1, requeued_at=now,
            )
            return [Requeue("run", run.pk)]

        waiting = list(run.chunks.select_for_update(skip_locked=True)
                       .filter(done=False).order_by("index"))
        running = run.chunks.filter(done=False).count() - len(waiting)
        if not waiting and not running:
            # Every chunk is staged: publish, unless publishing is queued or under way.
            if run.stage == STAGE_PUBLISHING:
                # Started (counted) and its lock is gone: its worker stopped.
                if not own_task_ended and run.heartbeat_at > now - START_GRACE:
                    return []
                if run.publish_attempts >= limit:
                    return _attempts_failed(run=run, what="Publishing the run",
                                            attempts=run.publish_attempts, error=run.error)
            elif not (quiet or task_ended):
                return []
            ScoringRun.objects.filter(pk=run.pk).update(requeued_at=now)
            return [Requeue("publish", run.pk)]

        requeue = []
        for part in waiting:
            started = part.started_at is not None and (
                part.sent_at is None or part.started_at >= part.sent_at
            )
            this_one_ended = task_ended and chunk == part.index
            if started:
                # Not done and not locked: its task died, unless it is just taking its lock.
                if not this_one_ended and part.started_at > now - START_GRACE:
                    continue
                if part.attempts >= limit:
                    return _attempts_failed(
                        run=run, what=f"Chunk {part.index + 1} of {run.chunks_total}",
                        attempts=part.attempts, error=part.error,
                    )
                requeue.append(part)
            elif (
                # Nothing of the run is running and nothing happened for a while: the queue lost
                # its tasks (a restarted broker, a killed worker's reserved messages). Queued
                # often enough, they wait for a worker, and the stale rule ends the run. (A task
                # reported ended for a chunk queued since was an earlier delivery: no sign.)
                not running and quiet
                and (part.sent_at is None or part.sent_at < now - lost_after)
                and part.sends < limit
            ):
                requeue.append(part)
        if not requeue:
            return []
        ScoringChunk.objects.filter(pk__in=[part.pk for part in requeue]).update(
            sends=F("sends") + 1, sent_at=now
        )
        ScoringRun.objects.filter(pk=run.pk).update(requeued_at=now)
        return [Requeue("chunk", run.pk, part.index) for part in requeue]


def scoring_runs_supervise(*, now: dt.datetime | None = None) -> list[Requeue]:
    """Supervise every active run (scoring_run_supervise), then expire the stale ones."""
    requeue = []
    for run_id in ScoringRun.objects.filter(active=True).values_list("pk", flat=True):
        requeue += scoring_run_supervise(run_id=run_id, now=now)
    scoring_runs_expire_stale(now=now)
    return requeue


def scoring_nightly_retry_due(*, now: dt.datetime | None = None) -> tuple[dt.date, int] | None:
    """The night and attempt to try again when the last run was a failed nightly one."""
    now = now or _now()
    last = ScoringRun.objects.order_by("-created_at", "-id").first()
    if (
        last is None
        or last.trigger != ScoringRun.Trigger.SCHEDULE
        or last.status != ScoringRun.Status.FAILED
        or last.attempt >= settings.SCORING_NIGHTLY_ATTEMPTS
        or last.scheduled_for is None
        # That night only: not a night long past, after the scheduler was down for days.
        or last.scheduled_for < timezone.localdate(now) - dt.timedelta(days=1)
    ):
        return None
    retry_after = dt.timedelta(seconds=settings.SCORING_NIGHTLY_RETRY_AFTER_SECONDS)
    if last.finished_at and last.finished_at > now - retry_after:
        return None
    return last.scheduled_for, last.attempt + 1


def scoring_results_cleanup() -> int:
    """Delete the results of finished runs other than the published one; return rows deleted.

    Only finished runs: a run requested while this runs must keep the chunks it just planned.
    Frozen rows (closed months) are kept, whichever run wrote them.
    """
    current = ScoringRun.objects.current()
    # Plain DELETEs: results have no dependants, and these tables hold millions of rows.
    finished = (
        f"SELECT id FROM {ScoringRun._meta.db_table} WHERE active IS NULL AND id <> %s"
    )
    deleted = 0
    with connection.cursor() as cursor:
        for model in (KPIScore, Scorecard, ScoringChunk):
            kept = "" if model is ScoringChunk else " AND NOT frozen"
            cursor.execute(
                f"DELETE FROM {model._meta.db_table} WHERE run_id IN ({finished}){kept}",
                [current.pk if current else 0],
            )
            deleted += cursor.rowcount if model is not ScoringChunk else 0
        if connection.vendor == "postgresql":
            # A run writes its results by COPY: fresh planner statistics now, rather than
            # whenever autovacuum gets to them, keep the pages' index lookups on plan.
            cursor.execute(
                f"ANALYZE {Scorecard._meta.db_table}, {KPIScore._meta.db_table}"
            )
    return deleted


def scoring_run_execute(*, run_id: int, chunk_size: int | None = None) -> ScoringRun | None:
    """Run a claimed-or-pending run to the end in this process, chunk after chunk."""
    if not scoring_run_claim(run_id=run_id):
        logger.info("Run %s was already claimed; not running it twice", run_id)
        return None
    try:
        for index in scoring_run_plan(run_id=run_id, chunk_size=chunk_size):
            scoring_chunk_execute(run_id=run_id, index=index)
        return scoring_run_publish(run_id=run_id)
    except Exception as exc:
        scoring_run_fail(run_id=run_id, error=f"{type(exc).__name__}: {exc}")
        raise


def scoring_run_inline(
    *, trigger: str = ScoringRun.Trigger.COMMAND, user=None, chunk_size: int | None = None
) -> RunSummary:
    """Request and execute a whole run in this process; used by the `score` command."""
    started = time.perf_counter()
    run = scoring_run_request(trigger=trigger, user=user)
    scoring_run_execute(run_id=run.id, chunk_size=chunk_size)
    published = time.perf_counter()
    scoring_results_cleanup()
    run.refresh_from_db()
    return RunSummary(
        run_id=run.id, status=run.status, months=run.months, first_period=run.first_period,
        last_period=run.last_period, agreements=run.agreements, scorecards=run.scorecards,
        tier_changes=run.tier_changes, seconds=published - started,
        cleanup_seconds=time.perf_counter() - published, fingerprint=run.fingerprint,
        error=run.error,
    )
