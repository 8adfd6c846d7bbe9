//! One sync run, end to end: lock, record, stage, plan, apply in one transaction, record.
use std::future::Future;
use std::time::{Duration, Instant};

use sqlx::{Acquire, Connection, PgConnection, PgPool};

use super::SyncError;
use super::apply::{ApplySettings, active_before, apply};
use super::model::{Counts, ProblemCodes, code};
use super::session::{Session, bounded};
use super::stage::{self, Stager};
use super::{plan, resolve};
use crate::api::{Grade, JourneyPolicySpec, RosterConnectionSpec};
use crate::run::{ConnectionKey, RunRecord, RunResult, Trigger};
use crate::store::SessionLimits;
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
        stager: &mut Stager,
    ) -> impl Future<Output = Result<(), SyncError>> + Send;

    /// What staging has cost the upstream API so far (recorded with the run's outcome).
    fn requests(&self) -> crate::run::CleverRequests {
        crate::run::CleverRequests::default()
    }
}

/// Runs one sync with the default [`SessionLimits`] as the client's bounds; see [`run_sync_with`].
pub async fn run_sync(
    pool: &PgPool,
    req: &SyncRequest,
    source: &impl RosterSource,
) -> Result<RunRecord, SyncError> {
    run_sync_with(pool, req, source, &SessionLimits::default()).await
}

/// Runs one sync. Errors before the run is recorded (invalid config, lock held) are returned;
/// failures after it are recorded as a Failed run and returned as an outcome.
///
/// The client never waits for Postgres longer than `limits.client_timeout` (the pool's session
/// parameters are set where the pool is made, [`crate::store::connect_with`]): the run's session
/// is watched from a second connection, and a session that is gone or unanswered fails the run.
/// After a database error the run's session is ended (never reused) before the outcome is
/// recorded, so the row read back is final: a commit whose acknowledgement was lost is reported
/// as what the row says (the outcome is written in the roster's transaction), never guessed.
pub async fn run_sync_with(
    pool: &PgPool,
    req: &SyncRequest,
    source: &impl RosterSource,
    limits: &SessionLimits,
) -> Result<RunRecord, SyncError> {
    let started = Instant::now();
    let ctx = stage_context(req)?;
    let settings = apply_settings(req);
    let bound = limits.client_timeout;
    // A dedicated connection: the session lock and the TEMP tables die with it.
    let mut conn = bounded(bound, "connecting", async {
        pool.acquire().await.map_err(SyncError::db("connecting"))
    })
    .await?
    .detach();
    // The session's advisory lock on the connection (key: 'rostersync:sync:' || connection).
    let locked = bounded(bound, "taking the lock", async {
        sqlx::query_scalar!(
            r#"SELECT pg_try_advisory_lock(hashtextextended('rostersync:sync:' || $1, 0)) AS "locked!""#,
            req.connection.as_str(),
        )
        .fetch_one(&mut conn)
        .await
        .map_err(SyncError::db("taking the lock"))
    })
    .await?;
    if !locked {
        conn.close().await.ok();
        return Err(SyncError::Locked {
            connection: req.connection.to_string(),
        });
    }
    let session = bounded(bound, "reading the session", Session::of(&mut conn)).await?;
    let run = Run {
        pool,
        req,
        ctx: &ctx,
        settings: &settings,
        session,
        started,
        bound,
    };
    let (result, reusable) = run.locked(&mut conn, source).await;
    if !reusable {
        // Ended after a database error (or unusable): its advisory lock went with it.
        return result;
    }
    // Release explicitly: a closed session's locks are freed only once its backend has exited.
    let unlocked = bounded(bound, "releasing the lock", async {
        sqlx::query_scalar!(
            "SELECT pg_advisory_unlock(hashtextextended('rostersync:sync:' || $1, 0))",
            req.connection.as_str(),
        )
        .fetch_one(&mut conn)
        .await
        .map_err(SyncError::db("releasing the lock"))
    })
    .await;
    if let Err(err) = unlocked {
        tracing::warn!("cannot release the sync lock (it is freed when the session ends): {err}");
        return result;
    }
    tokio::time::timeout(bound, conn.close()).await.ok();
    result
}

/// One locked run: what it needs besides the connection and the source.
struct Run<'a> {
    pool: &'a PgPool,
    req: &'a SyncRequest,
    ctx: &'a StageContext,
    settings: &'a ApplySettings,
    session: Session,
    started: Instant,
    bound: Duration,
}

impl Run<'_> {
    /// Runs (or reports) the run under the lock. Returns the outcome and whether the session can
    /// still be used (false after a database error: it was ended).
    async fn locked(
        &self,
        conn: &mut PgConnection,
        source: &impl RosterSource,
    ) -> (Result<RunRecord, SyncError>, bool) {
        let mut recorded = false;
        let attempt = tokio::select! {
            result = self.attempt(conn, source, &mut recorded) => result,
            lost = self.session.watch(self.pool, self.bound) => Err(lost),
        };
        match attempt {
            Ok(Some(reported)) => (Ok(reported), true),
            Err(err) if !recorded => {
                let reusable = !err.is_session_fault();
                (Err(err), reusable)
            }
            Ok(None) => (self.conclude(None, source.requests()).await, true),
            Err(err) => {
                let reusable = !err.is_session_fault();
                (self.conclude(Some(err), source.requests()).await, reusable)
            }
        }
    }

    /// A finished run is reported (`Some`); otherwise the run is recorded (`recorded` set) and run.
    async fn attempt(
        &self,
        conn: &mut PgConnection,
        source: &impl RosterSource,
        recorded: &mut bool,
    ) -> Result<Option<RunRecord>, SyncError> {
        let req = self.req;
        // Job retries: a run that failed with a retriable error runs again (its next attempt);
        // any other finished run is reported, not run again.
        if let Some(run) = runs::by_id(&mut *conn, &req.connection, &req.run_id).await? {
            if run.is_finished() && !run.runs_again() {
                tracing::info!(run_id = %req.run_id, result = run.result.as_str(), "run already finished; reporting its outcome");
                return Ok(Some(run));
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
        *recorded = true;
        tracing::info!(run_id = %req.run_id, connection = %req.connection, dry_run = req.dry_run, "sync started");
        run_recorded(conn, req, self.ctx, self.settings, source, self.started).await?;
        Ok(None)
    }

    /// Records a failure (conditionally: only a row still `Running`) and returns the run as
    /// stored: the same value history and the controller read.
    async fn conclude(
        &self,
        failure: Option<SyncError>,
        clever: crate::run::CleverRequests,
    ) -> Result<RunRecord, SyncError> {
        let (req, bound) = (self.req, self.bound);
        if let Some(err @ SyncError::FinishedElsewhere { .. }) = failure {
            tracing::error!(run_id = %req.run_id, "{err}");
            return Err(err);
        }
        let mut rec = bounded(bound, "connecting to record the outcome", async {
            self.pool
                .acquire()
                .await
                .map_err(SyncError::db("connecting to record the outcome"))
        })
        .await
        .inspect_err(|e| {
            if let Some(err) = &failure {
                tracing::error!(run_id = %req.run_id, "the run failed ({err:#}) and its outcome cannot be recorded ({e}); the next run of the connection records it as Interrupted");
            }
        })?;
        if let Some(err) = failure {
            let message = format!("{err:#}");
            tracing::warn!(run_id = %req.run_id, reason = err.reason(), "sync failed: {message}");
            if err.is_session_fault() {
                // End the run's session first, and wait for its backend to exit: its transaction
                // (and the COMMIT it may have sent) is then settled, so what is read back below
                // is the truth.
                let gone = bounded(
                    bound + Duration::from_secs(1),
                    "ending the run's session",
                    self.session.end(&mut rec, bound),
                )
                .await?;
                if !gone {
                    return Err(SyncError::SessionLost {
                        detail: format!(
                            "the run's backend {} did not exit within {}s; its outcome is unknown until it does                              (see `rostersync history`)",
                            self.session.pid,
                            bound.as_secs()
                        ),
                    });
                }
            }
            let timings =
                serde_json::json!({ "totalMs": self.started.elapsed().as_millis() as u64 });
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
                clever,
            };
            let updated = bounded(bound, "recording the failure", async {
                Ok(runs::finish(&mut rec, &req.connection, &req.run_id, &finish).await?)
            })
            .await?;
            if !updated {
                // Already finished: by this run's own commit, whose acknowledgement was lost with
                // the connection, or by another party. What is stored stands.
                let run = self.read_back(&mut rec).await?;
                tracing::warn!(
                    run_id = %req.run_id,
                    result = run.result.as_str(),
                    "the run's record was already finished when its failure was to be recorded: \
                     reporting the stored outcome ({}), not the failure ({message})",
                    run.result.as_str()
                );
                return Ok(run);
            }
        }
        self.read_back(&mut rec).await
    }

    async fn read_back(&self, rec: &mut PgConnection) -> Result<RunRecord, SyncError> {
        let run = bounded(self.bound, "reading the run", async {
            Ok(runs::by_id(&mut *rec, &self.req.connection, &self.req.run_id).await?)
        })
        .await?;
        Ok(run.ok_or_else(|| crate::store::StoreError::RunMissing(self.req.run_id.clone()))?)
    }
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
        // Final once the operator's licenses are read (run_recorded).
        new_child_journey: plan::new_child_journey(req.policy.as_ref(), &[]).unwrap_or(None),
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
    let totals = stage::stage_from(conn, req.connection.as_str(), source, ctx).await?;
    let fetched = started.elapsed();
    tracing::info!(?totals, "roster staged");

    // No ANALYZE of the shared roster tables here: autovacuum keeps their statistics, and every
    // statement of a run reads one connection's rows through the (connection, ...) indexes; a
    // first sync's grown tables are analyzed after its commit (below).
    let mut tx = Connection::begin(&mut *conn)
        .await
        .map_err(SyncError::db("starting the transaction"))?;
    rollover_if_due(&mut tx, req).await?;
    let before = active_before(&mut tx, req.connection.as_str()).await?;
    let matched = resolve::resolve(
        &mut tx,
        req.connection.as_str(),
        req.spec.settings.auto_carryover,
        &totals,
    )
    .await?;
    // The operator's licenses (product_licenses) decide which journey new children may get.
    let operator_licensed: Vec<String> =
        sqlx::query_scalar("SELECT product FROM product_licenses ORDER BY product")
            .fetch_all(&mut *tx)
            .await
            .map_err(SyncError::db("reading the licensed products"))?;
    let journey = plan::new_child_journey(req.policy.as_ref(), &operator_licensed);
    let mut settings = settings.clone();
    settings.new_child_journey = journey.clone().unwrap_or(None);
    let settings = &settings;
    if let Err(unlicensed) = journey {
        resolve::journey_problem(&mut tx, &unlicensed).await?;
    }
    let resolved = started.elapsed();

    let mut savepoint = tx
        .begin()
        .await
        .map_err(SyncError::db("starting the apply savepoint"))?;
    let (counts, stale) = apply(&mut savepoint, settings, &totals, &matched, &before).await?;
    let trip = plan::removal_guard(
        &counts,
        &before,
        u8::try_from(req.spec.settings.removal_guard_percent.clamp(0, 100)).unwrap_or(100),
        settings.allow_removal,
    );
    // An approval is bound to the held run it was given for: it lifts the guard only when this
    // plan removes no more than that run reported (plan::approval_lifts_guard).
    let held = match (&trip, req.approve_removals) {
        (Some(_), true) => runs::pending_held(&mut *savepoint, &req.connection)
            .await?
            .map(|run| plan::HeldRemovals {
                run_id: run.run_id,
                counts: run.counts,
            }),
        _ => None,
    };
    let hold = match plan::approval_lifts_guard(
        trip.as_ref(),
        req.approve_removals,
        held.as_ref(),
        &counts,
    ) {
        Ok(()) => {
            if let (Some(trip), Some(held)) = (&trip, &held) {
                tracing::info!(run_id = %req.run_id, held_run = %held.run_id, entity = trip.entity, "removals approved: within what the held run reported");
            }
            None
        }
        Err(None) => trip.as_ref().map(ToString::to_string),
        Err(Some(refused)) => Some(refused.to_string()),
    };
    if req.dry_run || hold.is_some() {
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
    let (result, reason, message) = match (&hold, req.dry_run) {
        (Some(h), dry) => (
            RunResult::Held,
            "RemovalGuard",
            format!("{}{h}", if dry { "dry run: " } else { "" }),
        ),
        (None, true) => (
            RunResult::Succeeded,
            "DryRun",
            "dry run: the counts show what a run would change; nothing was applied".into(),
        ),
        (None, false) => (RunResult::Succeeded, "Synced", counts.describe()),
    };
    let total = started.elapsed();
    let ms = |d: Duration| d.as_millis() as u64;
    // Phases (ms): fetchMs is the whole staging phase (fetching, decoding and COPY into staging,
    // overlapped; stageCopyMs is its database part), resolveMs the planning on staging, applyMs
    // the writes, recordMs the problems and the outcome row up to (not including) the COMMIT.
    let timings = serde_json::json!({
        "fetchMs": ms(fetched),
        "stageCopyMs": ms(totals.copy_time),
        "resolveMs": ms(resolved - fetched),
        "applyMs": ms(applied - resolved),
        "recordMs": ms(total - applied),
        "totalMs": ms(total),
    });
    let finish = Finish {
        result,
        retriable: false,
        counts: &counts,
        problem_codes: &codes,
        reason,
        message: &message,
        timings,
        clever: source.requests(),
    };
    // Only a row still Running is finished: another party's outcome (the controller recording a
    // lost pod) is never overwritten; the roster changes are rolled back instead.
    if !runs::finish(&mut tx, &req.connection, &req.run_id, &finish).await? {
        let stored = runs::by_id(&mut *tx, &req.connection, &req.run_id).await?;
        tx.rollback()
            .await
            .map_err(SyncError::db("rolling the roster back"))?;
        return Err(SyncError::FinishedElsewhere {
            run_id: req.run_id.clone(),
            result: stored.map_or("missing".into(), |r| r.result.as_str().to_string()),
        });
    }
    // The outcome commits with the roster: a COMMIT whose acknowledgement is lost is resolved
    // by reading the row back (Run::conclude).
    let committing = Instant::now();
    tx.commit()
        .await
        .map_err(SyncError::db("committing the run"))?;
    let commit_ms = committing.elapsed().as_millis() as u64;
    tracing::info!(run_id = %req.run_id, result = result.as_str(), commit_ms, "sync finished: {message}");
    // Tables a bulk insert grew (a first sync) get fresh statistics now, after the commit: an
    // ANALYZE in the transaction would hold their statistics lock, which every other district's
    // run needs, until the commit.
    if !req.dry_run && hold.is_none() {
        let grown: Vec<&str> = counts
            .entities()
            .into_iter()
            .filter(|(_, c)| c.created >= GROWN_ROWS)
            .map(|(entity, _)| entity)
            .collect();
        let analyzing = Instant::now();
        refresh_statistics(conn, &grown).await;
        if !grown.is_empty() {
            tracing::info!(run_id = %req.run_id, tables = %grown.join(", "), analyze_ms = analyzing.elapsed().as_millis() as u64, "statistics of grown roster tables refreshed");
        }
    }
    Ok(())
}

/// With `settings.rolloverDate`, the school year's rollover runs once, in the run's transaction
/// (under its lock), before anything is matched: the first run on or after the date archives the
/// ending year's children. A dry run never rolls over (its transaction commits the run's record).
async fn rollover_if_due(conn: &mut PgConnection, req: &SyncRequest) -> Result<(), SyncError> {
    let Some(date) = req.spec.settings.rollover_date.as_deref() else {
        return Ok(());
    };
    if req.dry_run {
        return Ok(());
    }
    let date = plan::parse_cutoff(date).ok_or_else(|| {
        SyncError::Config(format!("rolloverDate {date:?} is not a valid MM-DD date"))
    })?;
    let year = crate::store::rollover::due_school_year(date, req.today);
    let done =
        crate::store::rollover::rollover_in(conn, &req.connection, &year, "rolloverDate", false)
            .await
            .map_err(|e| match e {
                crate::store::rollover::AdminError::Store(e) => SyncError::from(e),
                other => SyncError::Config(format!("the automatic rollover of {year}: {other}")),
            })?;
    if !done.already_done {
        tracing::info!(run_id = %req.run_id, school_year = %year, children = done.children, "school year rolled over (rolloverDate)");
    }
    Ok(())
}

/// Rows a run must create in a table for its statistics to be refreshed after the commit.
const GROWN_ROWS: u64 = 1000;

/// The columns of each roster table that the sync's statements filter and join on: the
/// post-commit `ANALYZE` samples only these (a third of the time of every column at 100k
/// students); autovacuum refreshes the rest.
const KEY_COLUMNS: [(&str, &[&str]); 5] = [
    ("schools", &["connection", "clever_id", "active"]),
    ("classrooms", &["connection", "clever_id", "active"]),
    (
        "educators",
        &[
            "connection",
            "clever_id",
            "active",
            "source",
            "sis_id",
            "email",
        ],
    ),
    (
        "children",
        &[
            "id",
            "connection",
            "clever_id",
            "active",
            "source",
            "archived_school_year",
            "sis_id",
            "dob",
            "school_clever_id",
        ],
    ),
    (
        "enrollments",
        &["child_id", "connection", "classroom_clever_id", "active"],
    ),
];

/// The roster tables among `tables`, each with its key columns ([`KEY_COLUMNS`]): what
/// [`refresh_statistics`] analyzes.
pub fn analyze_key_columns(tables: &[&str]) -> Vec<(&'static str, &'static [&'static str])> {
    KEY_COLUMNS
        .iter()
        .filter(|(t, _)| tables.contains(t))
        .copied()
        .collect()
}

/// `ANALYZE` of roster tables' key columns ([`KEY_COLUMNS`]) outside any transaction, through
/// `rs_analyze_roster_table` (migration `20261130231000`): only a table's owner may analyze it,
/// and a district role (dedicated tenancy) is not the owner. Statistics are a nicety: a table
/// whose statistics lock another district's run holds is skipped (the function's `SKIP_LOCKED`),
/// not waited for, and a failure is only logged.
async fn refresh_statistics(conn: &mut PgConnection, tables: &[&str]) {
    for (table, columns) in analyze_key_columns(tables) {
        let analyzed = sqlx::query("SELECT rs_analyze_roster_table($1, $2)")
            .bind(table)
            .bind(columns)
            .execute(&mut *conn)
            .await;
        if let Err(err) = analyzed {
            tracing::warn!(
                table,
                "roster statistics not refreshed (autovacuum will): {err}"
            );
        }
    }
}
