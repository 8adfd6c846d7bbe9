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
    /// This schedule's finished Jobs not reported yet, oldest first, with their run records.
    pub finished: Vec<FinishedRun>,
    pub config: PlanConfig,
    /// What is wrong with the sync Job's pod settings (`spec.job` over the operator's defaults);
    /// empty when a Job can be built.
    pub job_problems: Vec<String>,
}

/// A finished Job and what it ran.
#[derive(Clone, Debug)]
pub struct FinishedRun {
    pub job: String,
    pub run: RunRecord,
    /// The connection the Job ran for (whose settings decide the email), if it still exists.
    pub connection: Option<RosterConnection>,
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
    Ok(Observed {
        schedule: sched.clone(),
        connection,
        jobs,
        finished,
        config: PlanConfig {
            email_repeat_interval: ctx.email_repeat_interval,
        },
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
    let run = runs::outcome(&mut conn, job, &key, &sched.name_any()).await?;
    Ok(FinishedRun {
        job: job.name_any(),
        run,
        connection,
    })
}
