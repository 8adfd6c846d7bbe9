//! Carrying out a SyncSchedule plan.
use std::sync::Arc;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use tracing::info;

use super::model::Plan;
use super::observe::Observed;
use crate::api::SyncSchedule;
use crate::clever::{CleverCredentials, CredentialKeys};
use crate::controller::Context;
use crate::controller::emails;
use crate::controller::error::{Error, Result};
use crate::controller::job::{self, JobInput, REPORTED_ANNOTATION};
use crate::controller::metrics::ScheduleGauges;
use crate::controller::status::{apply_status, apply_status_over, publish};
use crate::store::{StoreError, runs};
use tracing::Instrument as _;

/// Carries out `plan`. Every write is preceded by a check that this replica may still act.
///
/// The order makes each report happen once even across a crash between two steps: Events and
/// the status first (a repeat finds the run final in status and announces nothing again), then
/// the run's `notified` mark with its email in one transaction (at most once), then the Job's
/// reported mark (a Job found again unmarked is reported without a second Event or email).
///
/// Returns `false` (and does nothing else) when the plan starts a run under the cluster's cap and
/// another schedule took the last place since it was observed: reconcile again.
pub async fn apply(ctx: &Arc<Context>, o: &Observed, plan: &Plan) -> Result<bool> {
    let sched = &o.schedule;
    let ns = sched.namespace().ok_or(Error::MissingField("namespace"))?;
    let name = sched.name_any();
    let now = ctx.clock.now();
    let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), &ns);
    let connection = sched.spec.connection_ref.name.as_str();

    let key = format!("{ns}/{name}");
    ctx.sync_slots.set_waiting(&key, plan.waiting, now);
    if let Some(due) = plan.claim {
        let capped = plan
            .starts
            .iter()
            .find(|r| matches!(r, job::RunRequest::Slot { slot, .. } if *slot == due));
        if let Some(request) = capped
            && !ctx
                .sync_slots
                .claim(&key, due, &ns, &job::job_name(&name, request), now)
        {
            return Ok(false);
        }
    }
    if !plan.starts.is_empty() {
        let keys = credential_keys(ctx, o, &ns).await?;
        for request in &plan.starts {
            let job_name = job::job_name(&name, request);
            let run_id = job::run_id(&job_name, &sched.uid().unwrap_or_default(), &ns);
            // The run's span: the same run_id, connection and trigger as the Job's own span.
            let span = tracing::info_span!(
                "run",
                run_id = %run_id,
                connection = %format!("{ns}/{connection}"),
                trigger = request.trigger().as_str(),
            );
            async {
                if let Err(err) = create_job(ctx, o, &jobs, request, keys).await {
                    ctx.sync_slots.release(&ns, &job_name);
                    return Err(err);
                }
                ctx.sync_slots.reserve(&ns, &job_name, now);
                info!(schedule = %name, job = %job_name, "sync started");
                Ok::<(), Error>(())
            }
            .instrument(span)
            .await?;
        }
    }
    for email in &plan.emails {
        ctx.acting.check()?;
        emails::enqueue_alone(&ctx.db, &email.settings, &email.notice, now).await?;
    }
    for (result, seconds, clever) in &plan.finished_metrics {
        ctx.metrics
            .sync_finished(&ns, connection, result.as_str(), *seconds, *clever);
    }
    for note in &plan.events {
        publish(
            &ctx.recorder,
            &ctx.acting,
            sched,
            note.warning,
            note.reason,
            note.action,
            note.message.clone(),
        )
        .await;
    }
    if plan.write_status {
        let api: Api<SyncSchedule> = Api::namespaced(ctx.client.clone(), &ns);
        // A plan that only refreshes the status brings no news of its own: it may come from a
        // cached schedule that has not seen this controller's last status write yet (a Job's
        // reported mark can arrive before the schedule's own update), and must not put an older
        // status back (a finished run shown as Running again, found in a full test run). It is
        // written over the observed version only; if the schedule changed since, reconcile again.
        let status_only = plan.starts.is_empty()
            && plan.emails.is_empty()
            && plan.events.is_empty()
            && plan.reports.is_empty();
        match sched.resource_version() {
            Some(version) if status_only => {
                if !apply_status_over(&ctx.acting, &api, &name, &version, &plan.status).await? {
                    return Ok(false);
                }
            }
            _ => apply_status(&ctx.acting, &api, &name, &plan.status).await?,
        }
    }
    // Each run is marked notified and its email queued in one transaction: at most once.
    for report in &plan.reports {
        let mut tx = ctx
            .db
            .begin()
            .await
            .map_err(StoreError::query("starting a transaction"))?;
        if runs::mark_notified(&mut tx, &report.connection, &report.run_id).await?
            && let Some(email) = &report.email
        {
            emails::enqueue_in(&mut tx, &email.settings, &email.notice, now).await?;
        }
        ctx.acting.check()?;
        tx.commit()
            .await
            .map_err(StoreError::query("committing a run's report"))?;
    }
    for report in plan.reports.iter().filter(|r| r.mark_job) {
        let patch = serde_json::json!({"metadata": {"annotations": {REPORTED_ANNOTATION: report.result.as_str()}}});
        ctx.acting.check()?;
        match jobs
            .patch(&report.job, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => {}
            // Deleted meanwhile: its run is marked notified already.
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(Error::kube("marking a Job reported")(e)),
        }
    }
    for job_name in &plan.prune {
        ctx.acting.check()?;
        match jobs.delete(job_name, &DeleteParams::background()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(Error::kube("deleting an old Job")(e)),
        }
    }
    let gauges = ScheduleGauges::of(&sched.spec, &plan.status, plan.last_success, plan.next_slot);
    ctx.metrics
        .schedule_observed(&ns, &name, connection, &gauges);
    Ok(true)
}

/// Which keys of the connection's Secret the Job's env refers to (a missing or unusable Secret
/// gives `token`: the run then fails with a clear error, recorded in history).
async fn credential_keys(ctx: &Context, o: &Observed, ns: &str) -> Result<CredentialKeys> {
    let connection = o
        .connection
        .as_ref()
        .ok_or(Error::MissingField("connection"))?;
    let secret = Api::<Secret>::namespaced(ctx.client.clone(), ns)
        .get_opt(&connection.spec.credentials_secret_ref.name)
        .await
        .map_err(Error::kube("reading the credentials Secret"))?;
    Ok(secret
        .as_ref()
        .and_then(|s| CleverCredentials::from_secret(s).ok())
        .map_or(CredentialKeys::Token, |c| c.keys()))
}

/// Creates the run's Job; one that already exists (an earlier attempt) counts as created.
async fn create_job(
    ctx: &Context,
    o: &Observed,
    jobs: &Api<Job>,
    request: &job::RunRequest,
    credentials: CredentialKeys,
) -> Result<()> {
    let connection = o
        .connection
        .as_ref()
        .ok_or(Error::MissingField("connection"))?;
    let job = job::build_job(&JobInput {
        schedule: &o.schedule,
        connection,
        request,
        credentials,
        config: &ctx.job_config,
    })
    .ok_or(Error::MissingField("metadata.uid"))?;
    // Right before the write: a replica that lost the Lease meanwhile starts nothing.
    ctx.acting.check()?;
    match jobs.create(&PostParams::default(), &job).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 422 => {
            // Something in spec.job the schedule's check cannot see (the Pod API validates more
            // than the CRD): say so where the district looks, then retry with the error backoff.
            let note = format!(
                "the API server rejected the sync Job: {}; fix spec.job (or the operator's sync Job \
                 defaults)",
                s.message
            );
            publish(
                &ctx.recorder,
                &ctx.acting,
                &o.schedule,
                true,
                "JobRejected",
                "CreateJob",
                note,
            )
            .await;
            Err(Error::kube("creating a sync Job")(kube::Error::Api(s)))
        }
        Err(e) => Err(Error::kube("creating a sync Job")(e)),
    }
}
