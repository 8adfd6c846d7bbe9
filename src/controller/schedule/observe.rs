//! What one SyncSchedule reconcile reads.
use std::sync::Arc;

use k8s_openapi::api::batch::v1::Job;
use kube::api::ListParams;
use kube::{Api, ResourceExt};

use super::model::PlanConfig;
use super::plan::owned_by;
use crate::api::{RosterConnection, SyncSchedule};
use crate::controller::Context;
use crate::controller::error::{Error, Result};
use crate::controller::job::{self, MANAGED_BY, MANAGED_BY_LABEL, REPORTED_ANNOTATION};
use crate::controller::runs;
use crate::run::{ConnectionKey, RunRecord};
use crate::store::StoreError;

/// Everything the plan decides from.
#[derive(Clone, Debug)]
pub struct Observed {
    pub schedule: SyncSchedule,
    /// The connection the schedule names, if it exists.
    pub connection: Option<RosterConnection>,
    /// Every rostersync Job in the namespace (a run of another schedule of the same connection
    /// blocks this one too).
    pub jobs: Vec<Job>,
    /// This schedule's finished runs not reported yet, oldest first, with their run records:
    /// finished Jobs not marked reported, then runs found unreported in `sync_runs` whose Job is
    /// gone (see [`crate::controller::runs::unreported_action`]).
    pub finished: Vec<FinishedRun>,
    /// When a run still `Running` without its Job is to be recorded lost (look again then).
    pub lost_check_at: Option<jiff::Timestamp>,
    pub config: PlanConfig,
    /// What is wrong with the sync Job's pod settings (`spec.job` over the operator's defaults);
    /// empty when a Job can be built.
    pub job_problems: Vec<String>,
    /// The cluster's cap on concurrent sync Jobs as seen now (see [`super::admission`]).
    pub cap: super::admission::CapView,
}

/// A finished Job and what it ran.
#[derive(Clone, Debug)]
pub struct FinishedRun {
    pub job: String,
    pub run: RunRecord,
    /// The connection the Job ran for (whose settings decide the email), if it still exists.
    pub connection: Option<RosterConnection>,
    /// Found in `sync_runs` with its Job gone: there is no Job to mark reported.
    pub job_gone: bool,
}

pub async fn observe(sched: &SyncSchedule, ctx: &Arc<Context>) -> Result<Observed> {
    let ns = sched.namespace().ok_or(Error::MissingField("namespace"))?;
    let connections = Api::<RosterConnection>::namespaced(ctx.client.clone(), &ns);
    let connection = connections
        .get_opt(&sched.spec.connection_ref.name)
        .await
        .map_err(Error::kube("reading the RosterConnection"))?;
    let jobs = Api::<Job>::namespaced(ctx.client.clone(), &ns)
        .list(&ListParams::default().labels(&format!("{MANAGED_BY_LABEL}={MANAGED_BY}")))
        .await
        .map_err(Error::kube("listing sync Jobs"))?
        .items;
    let mut unreported: Vec<&Job> = jobs
        .iter()
        .filter(|j| owned_by(j, sched))
        .filter(|j| runs::is_finished(j) && !j.annotations().contains_key(REPORTED_ANNOTATION))
        .collect();
    unreported.sort_by_key(|j| runs::finished_at(j));
    let mut finished = Vec::with_capacity(unreported.len());
    for job in unreported {
        finished.push(settle(ctx, sched, &ns, connection.as_ref(), job).await?);
    }
    let lost_check_at =
        from_database(ctx, sched, &ns, connection.as_ref(), &jobs, &mut finished).await?;
    ctx.sync_slots.prime(&ctx.client).await?;
    let cap = ctx.sync_slots.observe(
        &ns,
        &jobs,
        &format!("{ns}/{}", sched.name_any()),
        ctx.clock.now(),
    );
    Ok(Observed {
        schedule: sched.clone(),
        connection,
        jobs,
        finished,
        lost_check_at,
        config: PlanConfig {
            email_repeat_interval: ctx.email_repeat_interval,
            failures_before_not_ready: ctx.failures_before_not_ready,
            slot_jitter_seconds: ctx.sync_slots.jitter_seconds(),
        },
        cap,
        job_problems: job::template_problems(&sched.spec.job.pod, &ctx.job_config.defaults),
    })
}

/// The record of a finished Job (a Failed one is written first if its pod died without one),
/// and the connection it ran for.
async fn settle(
    ctx: &Context,
    sched: &SyncSchedule,
    ns: &str,
    current: Option<&RosterConnection>,
    job: &Job,
) -> Result<FinishedRun> {
    let conn_name = crate::controller::names::connection_of(job).unwrap_or_default();
    // The Job's own connection, should the schedule's reference have changed since.
    let connection = match current {
        Some(c) if c.name_any() == conn_name => Some(c.clone()),
        _ if conn_name.is_empty() => None,
        _ => Api::<RosterConnection>::namespaced(ctx.client.clone(), ns)
            .get_opt(&conn_name)
            .await
            .map_err(Error::kube("reading the run's RosterConnection"))?,
    };
    let key = ConnectionKey::new(ns, &conn_name)
        .or_else(|_| ConnectionKey::new(ns, &sched.spec.connection_ref.name))
        .map_err(|e| Error::InvalidObject(e.to_string()))?;
    let mut conn = ctx
        .db
        .acquire()
        .await
        .map_err(StoreError::query("connecting to read a run"))?;
    // It may record a Failed run for a pod that died: a write.
    ctx.acting.check()?;
    let run = runs::outcome(&mut conn, job, &key, &sched.name_any()).await?;
    Ok(FinishedRun {
        job: job.name_any(),
        run,
        connection,
        job_gone: false,
    })
}

/// Adds to `finished` this schedule's runs that nobody reported and whose Job is gone (deleted,
/// or removed by `ttlSecondsAfterFinished` while the controller was down), recording a run still
/// `Running` as Failed (`JobLost`) once the grace period passed. Returns when to look again for a
/// run within its grace period.
async fn from_database(
    ctx: &Context,
    sched: &SyncSchedule,
    ns: &str,
    connection: Option<&RosterConnection>,
    jobs: &[Job],
    finished: &mut Vec<FinishedRun>,
) -> Result<Option<jiff::Timestamp>> {
    let key = ConnectionKey::new(ns, &sched.spec.connection_ref.name)
        .map_err(|e| Error::InvalidObject(e.to_string()))?;
    let name = sched.name_any();
    let now = ctx.clock.now();
    let since = now
        .checked_sub(runs::REPORT_LOOKBACK)
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    let rows = crate::store::runs::unreported(&ctx.db, &key, &name, since).await?;
    // Only this schedule's runs: the run id is the one its Job name, this schedule's uid and
    // namespace give (not a run of a schedule deleted and created again under the same name).
    let uid = sched.uid().unwrap_or_default();
    let connection = connection.filter(|c| c.name_any() == key.name()).cloned();
    let mut wake: Option<jiff::Timestamp> = None;
    for row in rows {
        let job_name = row.job.clone().unwrap_or_default();
        if row.run_id != job::run_id(&job_name, &uid, ns)
            || finished.iter().any(|f| f.run.run_id == row.run_id)
        {
            continue;
        }
        let exists = jobs.iter().any(|j| j.name_any() == job_name);
        let run = match runs::unreported_action(&row, exists, now, ctx.lost_run_grace) {
            runs::Unreported::FromJob => continue,
            runs::Unreported::WaitUntil(t) => {
                wake = Some(wake.map_or(t, |w| w.min(t)));
                continue;
            }
            runs::Unreported::Report => row,
            runs::Unreported::RecordLost => {
                let mut tx = ctx
                    .db
                    .begin()
                    .await
                    .map_err(StoreError::query("starting a transaction"))?;
                let run = runs::record_job_lost(&mut tx, &row, &name, ctx.lost_run_grace).await?;
                ctx.acting.check()?;
                tx.commit()
                    .await
                    .map_err(StoreError::query("recording a run whose Job is gone"))?;
                tracing::warn!(schedule = %name, run = %run.run_id, job = %job_name, "a run's Job is gone and the run recorded no outcome: recorded Failed (JobLost)");
                run
            }
        };
        finished.push(FinishedRun {
            job: job_name,
            run,
            connection: connection.clone(),
            job_gone: true,
        });
    }
    finished.sort_by_key(|f| f.run.finished_at);
    Ok(wake)
}
