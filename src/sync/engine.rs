//! One sync run, end to end: lock, record, stage, plan, apply in one transaction, record.
use std::future::Future;
use std::time::Instant;

use sqlx::{Acquire, Connection, PgConnection, PgPool};

use super::SyncError;
use super::apply::{ApplySettings, active_before, apply};
use super::model::{Counts, ProblemCodes, code};
use super::stage::{self, Stager};
use super::{plan, resolve};
use crate::api::{Grade, JourneyPolicySpec, RosterConnectionSpec};
use crate::run::{ConnectionKey, RunRecord, RunResult, Trigger};
use crate::store::runs::{self, Finish, RunStart};

/// Everything a run needs besides the data source.
#[derive(Clone, Debug)]
pub struct SyncRequest {
    /// The RosterConnection: the key of its roster rows.
    pub connection: ConnectionKey,
    pub spec: RosterConnectionSpec,
    pub policy: Option<JourneyPolicySpec>,
    pub run_id: String,
    pub trigger: Trigger,
    pub schedule: Option<String>,
    pub job: Option<String>,
    /// Compute everything, apply nothing (only the history row is written).
    pub dry_run: bool,
    /// Apply removals even above the removal guard (one run).
    pub approve_removals: bool,
    /// "Today" for grade placement from birth dates.
    pub today: jiff::civil::Date,
}

/// What the source needs to filter and normalize records.
#[derive(Clone, Debug)]
pub struct StageContext {
    pub district_id: String,
    pub shared_grades: Vec<Grade>,
    pub include_demographics: bool,
    /// Birth-date cutoff for grade placement when the roster has no grade (None: never derive).
    pub dob_cutoff: Option<(i8, i8)>,
    pub today: jiff::civil::Date,
}

/// A roster source: streams its records, filtered and normalized, into staging.
pub trait RosterSource {
    fn stage(
        &self,
        ctx: &StageContext,
        stager: &mut Stager<'_>,
    ) -> impl Future<Output = Result<(), SyncError>> + Send;
}

/// Runs one sync. Errors before the run is recorded (invalid config, lock held) are returned;
/// failures after it are recorded as a Failed run and returned as an outcome.
pub async fn run_sync(
    pool: &PgPool,
    req: &SyncRequest,
    source: &impl RosterSource,
) -> Result<RunRecord, SyncError> {
    let started = Instant::now();
    let ctx = stage_context(req)?;
    let settings = apply_settings(req);
    // A dedicated connection: the session lock and the TEMP tables die with it.
    let mut conn = pool
        .acquire()
        .await
        .map_err(SyncError::db("connecting"))?
        .detach();
    // The session's advisory lock on the connection (key: 'rostersync:sync:' || connection).
    let locked = sqlx::query_scalar!(
        r#"SELECT pg_try_advisory_lock(hashtextextended('rostersync:sync:' || $1, 0)) AS "locked!""#,
        req.connection.as_str(),
    )
    .fetch_one(&mut conn)
    .await
    .map_err(SyncError::db("taking the lock"))?;
    if !locked {
        conn.close().await.ok();
        return Err(SyncError::Locked {
            connection: req.connection.to_string(),
        });
    }
    let result = run_locked(pool, &mut conn, req, &ctx, &settings, source, started).await;
    // Release explicitly: a closed session's locks are freed only once its backend has exited.
    if let Err(err) = sqlx::query_scalar!(
        "SELECT pg_advisory_unlock(hashtextextended('rostersync:sync:' || $1, 0))",
        req.connection.as_str(),
    )
    .fetch_one(&mut conn)
    .await
    {
        tracing::warn!(
            "cannot release the sync lock (it is freed when the connection closes): {err}"
        );
    }
    conn.close().await.ok();
    result
}

async fn run_locked(
    pool: &PgPool,
    conn: &mut PgConnection,
    req: &SyncRequest,
    ctx: &StageContext,
    settings: &ApplySettings,
    source: &impl RosterSource,
    started: Instant,
) -> Result<RunRecord, SyncError> {
    // Job retries: a run that failed with a retriable error runs again (its next attempt);
    // any other finished run is reported, not run again.
    if let Some(run) = runs::by_id(&mut *conn, &req.connection, &req.run_id).await? {
        if run.is_finished() && !run.runs_again() {
            tracing::info!(run_id = %req.run_id, result = run.result.as_str(), "run already finished; reporting its outcome");
            return Ok(run);
        }
        if run.runs_again() {
            tracing::info!(run_id = %req.run_id, attempt = run.attempts + 1, reason = ?run.reason, "retrying a run that failed with a retriable error");
        }
    }
    let id = RunStart {
        run_id: req.run_id.clone(),
        connection: req.connection.clone(),
        trigger: req.trigger,
        schedule: req.schedule.clone(),
        job: req.job.clone(),
        dry_run: req.dry_run,
    };
    runs::fail_interrupted(&mut *conn, &req.connection, &req.run_id).await?;
    runs::start(&mut *conn, &id).await?;
    tracing::info!(run_id = %req.run_id, connection = %req.connection, dry_run = req.dry_run, "sync started");

    let result = run_recorded(conn, req, ctx, settings, source, started).await;
    match result {
        Ok(()) => {}
        Err(err) => {
            let message = format!("{err:#}");
            tracing::warn!(run_id = %req.run_id, reason = err.reason(), "sync failed: {message}");
            let timings = serde_json::json!({ "totalMs": started.elapsed().as_millis() as u64 });
            let counts = Counts::default();
            let codes = ProblemCodes::new();
            let finish = Finish {
                result: RunResult::Failed,
                retriable: err.is_retriable(),
                counts: &counts,
                problem_codes: &codes,
                reason: err.reason(),
                message: &message,
                timings,
            };
            // The sync connection may be broken (that may be the failure): record via the pool.
            let mut rec = pool
                .acquire()
                .await
                .map_err(SyncError::db("connecting to record the failure"))?;
            runs::finish(&mut rec, &req.connection, &req.run_id, &finish).await?;
        }
    }
    // The record as stored is the outcome: the same value history and the controller read.
    let mut rec = pool
        .acquire()
        .await
        .map_err(SyncError::db("connecting to read the run"))?;
    let run = runs::by_id(&mut *rec, &req.connection, &req.run_id).await?;
    Ok(run.ok_or_else(|| crate::store::StoreError::RunMissing(req.run_id.clone()))?)
}

fn stage_context(req: &SyncRequest) -> Result<StageContext, SyncError> {
    let placement = req.policy.as_ref().map(|p| &p.grade_placement);
    let dob_cutoff = match placement {
        Some(p) if !p.use_demographics => None,
        Some(p) => Some(plan::parse_cutoff(&p.birthdate_cutoff).ok_or_else(|| {
            SyncError::Config(format!(
                "birthdateCutoff {:?} is not a valid MM-DD date",
                p.birthdate_cutoff
            ))
        })?),
        None => plan::parse_cutoff("09-01"),
    };
    if req.spec.sharing.grades.is_empty() {
        return Err(SyncError::Config(
            "sharing.grades is empty: share at least one grade".into(),
        ));
    }
    Ok(StageContext {
        district_id: req.spec.district_id.clone(),
        shared_grades: req.spec.sharing.grades.clone(),
        include_demographics: req.spec.sharing.include_demographics,
        dob_cutoff: dob_cutoff.filter(|_| req.spec.sharing.include_demographics),
        today: req.today,
    })
}

fn apply_settings(req: &SyncRequest) -> ApplySettings {
    let s = &req.spec.settings;
    let levels = req
        .policy
        .as_ref()
        .map(|p| p.grade_placement.levels.clone())
        .unwrap_or_default();
    ApplySettings {
        connection: req.connection.to_string(),
        allow_removal: s.allow_removal,
        removal_mode: s.removal_mode,
        allow_classroom_name_overrides: s.allow_classroom_name_overrides,
        new_child_journey: plan::new_child_journey(req.policy.as_ref()).unwrap_or(None),
        level_grades: levels
            .iter()
            .map(|l| l.grade.as_str().to_string())
            .collect(),
        level_values: levels.iter().map(|l| l.starting_level).collect(),
    }
}

/// The part of a run whose failure is recorded as a Failed run.
async fn run_recorded(
    conn: &mut PgConnection,
    req: &SyncRequest,
    ctx: &StageContext,
    settings: &ApplySettings,
    source: &impl RosterSource,
    started: Instant,
) -> Result<(), SyncError> {
    stage::create_tables(conn).await?;
    let mut stager = Stager::new(conn);
    source.stage(ctx, &mut stager).await?;
    let totals = stager.finish().await?;
    let fetched = started.elapsed();
    tracing::info!(?totals, "roster staged");

    // Fresh statistics for the roster tables (a previous run may have just filled them), taken
    // outside the transaction so its lock is not held until commit. Statistics are a nicety: when
    // another district's run holds the tables' statistics lock, skip them rather than wait.
    sqlx::query!("SET lock_timeout = '2s'")
        .execute(&mut *conn)
        .await
        .map_err(SyncError::db("limiting the statistics lock wait"))?;
    let analyzed = sqlx::query!("ANALYZE schools, classrooms, educators, children, enrollments")
        .execute(&mut *conn)
        .await;
    sqlx::query!("RESET lock_timeout")
        .execute(&mut *conn)
        .await
        .map_err(SyncError::db("restoring the lock timeout"))?;
    if let Err(err) = analyzed {
        tracing::warn!("roster statistics not refreshed (another run holds them): {err}");
    }
    let mut tx = Connection::begin(&mut *conn)
        .await
        .map_err(SyncError::db("starting the transaction"))?;
    let before = active_before(&mut tx, req.connection.as_str()).await?;
    resolve::resolve(
        &mut tx,
        req.connection.as_str(),
        req.spec.settings.auto_carryover,
    )
    .await?;
    if let Err(unlicensed) = plan::new_child_journey(req.policy.as_ref()) {
        resolve::journey_problem(&mut tx, &unlicensed).await?;
    }
    let resolved = started.elapsed();

    let mut savepoint = tx
        .begin()
        .await
        .map_err(SyncError::db("starting the apply savepoint"))?;
    let (counts, stale) = apply(&mut savepoint, settings).await?;
    let trip = if req.approve_removals {
        None
    } else {
        plan::removal_guard(
            &counts,
            &before,
            u8::try_from(req.spec.settings.removal_guard_percent.clamp(0, 100)).unwrap_or(100),
            settings.allow_removal,
        )
    };
    if req.dry_run || trip.is_some() {
        savepoint
            .rollback()
            .await
            .map_err(SyncError::db("rolling the roster back"))?;
    } else {
        savepoint
            .commit()
            .await
            .map_err(SyncError::db("releasing the apply savepoint"))?;
    }
    let applied = started.elapsed();

    for (entity, n) in stale.iter().filter(|(_, n)| *n > 0) {
        sqlx::query("INSERT INTO stg_problems (record_kind, clever_id, code, message) VALUES ($1, NULL, $2, $3)")
            .bind(entity)
            .bind(code::STALE_NOT_REMOVED)
            .bind(format!("{n} {entity} left the roster and were kept because allowRemoval is false"))
            .execute(&mut *tx)
            .await
            .map_err(SyncError::db("recording stale records"))?;
    }
    let codes = runs::record_problems(&mut tx, &req.connection, &req.run_id).await?;
    let (result, reason, message) = match (&trip, req.dry_run) {
        (Some(t), dry) => (
            RunResult::Held,
            "RemovalGuard",
            format!("{}{t}", if dry { "dry run: " } else { "" }),
        ),
        (None, true) => (
            RunResult::Succeeded,
            "DryRun",
            "dry run: the counts show what a run would change; nothing was applied".into(),
        ),
        (None, false) => (RunResult::Succeeded, "Synced", counts.describe()),
    };
    let total = started.elapsed();
    let timings = serde_json::json!({
        "fetchMs": fetched.as_millis() as u64,
        "resolveMs": (resolved - fetched).as_millis() as u64,
        "applyMs": (applied - resolved).as_millis() as u64,
        "totalMs": total.as_millis() as u64,
    });
    let finish = Finish {
        result,
        retriable: false,
        counts: &counts,
        problem_codes: &codes,
        reason,
        message: &message,
        timings,
    };
    runs::finish(&mut tx, &req.connection, &req.run_id, &finish).await?;
    tx.commit()
        .await
        .map_err(SyncError::db("committing the run"))?;
    tracing::info!(run_id = %req.run_id, result = result.as_str(), "sync finished: {message}");
    Ok(())
}
