//! What the pages and the JSON API show, read with the controller's identity: the objects from the
//! API server (RosterConnections and their SyncSchedules) and the runs from Postgres
//! (`sync_runs`, `sync_problems`). Ids, counts, reasons and words only: no personal data.
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::ListParams;
use kube::{Api, Client, ResourceExt};
use serde::Serialize;
use sqlx::PgPool;

use crate::api::{RosterConnection, RunResult, SyncSchedule, condition};
use crate::run::{ConnectionKey, Problem, RunRecord};
use crate::schedule::ScheduleRule;
use crate::store::runs as store_runs;

/// How many runs the district page shows.
pub const PAGE_RUNS: i64 = 50;
/// The most runs one API call returns.
pub const MAX_RUNS: i64 = 1000;

/// Errors reading what a page shows.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("cannot read {what} from the Kubernetes API server: {source}")]
    Kube {
        what: &'static str,
        source: kube::Error,
    },
    #[error("cannot read the sync history from Postgres: {0}")]
    Store(#[from] crate::store::StoreError),
}

/// The objects of every district the controller watches.
pub struct Objects {
    pub connections: Vec<RosterConnection>,
    pub schedules: Vec<SyncSchedule>,
}

/// Lists RosterConnections and SyncSchedules in `namespaces` (all namespaces when empty).
pub async fn list_objects(client: &Client, namespaces: &[String]) -> Result<Objects, DataError> {
    let mut connections = Vec::new();
    let mut schedules = Vec::new();
    let scopes: Vec<Option<&str>> = if namespaces.is_empty() {
        vec![None]
    } else {
        namespaces.iter().map(|n| Some(n.as_str())).collect()
    };
    for ns in scopes {
        let (c, s): (Api<RosterConnection>, Api<SyncSchedule>) = match ns {
            Some(ns) => (
                Api::namespaced(client.clone(), ns),
                Api::namespaced(client.clone(), ns),
            ),
            None => (Api::all(client.clone()), Api::all(client.clone())),
        };
        connections.extend(
            c.list(&ListParams::default())
                .await
                .map_err(|source| DataError::Kube {
                    what: "RosterConnections",
                    source,
                })?
                .items,
        );
        schedules.extend(
            s.list(&ListParams::default())
                .await
                .map_err(|source| DataError::Kube {
                    what: "SyncSchedules",
                    source,
                })?
                .items,
        );
    }
    connections.sort_by_key(|c| (c.namespace().unwrap_or_default(), c.name_any()));
    schedules.sort_by_key(|s| (s.namespace().unwrap_or_default(), s.name_any()));
    Ok(Objects {
        connections,
        schedules,
    })
}

/// One RosterConnection and its SyncSchedules, read directly (the district page).
pub async fn get_objects(
    client: &Client,
    ns: &str,
    name: &str,
) -> Result<Option<(RosterConnection, Vec<SyncSchedule>)>, DataError> {
    let c: Api<RosterConnection> = Api::namespaced(client.clone(), ns);
    let Some(connection) = c.get_opt(name).await.map_err(|source| DataError::Kube {
        what: "the RosterConnection",
        source,
    })?
    else {
        return Ok(None);
    };
    let s: Api<SyncSchedule> = Api::namespaced(client.clone(), ns);
    let mut schedules: Vec<SyncSchedule> = s
        .list(&ListParams::default())
        .await
        .map_err(|source| DataError::Kube {
            what: "SyncSchedules",
            source,
        })?
        .items
        .into_iter()
        .filter(|s| s.spec.connection_ref.name == name)
        .collect();
    schedules.sort_by_key(|s| s.name_any());
    Ok(Some((connection, schedules)))
}

/// A run as the API returns it: the record with its one-line summary.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunJson {
    #[serde(flatten)]
    pub record: RunRecord,
    pub summary: String,
}

impl From<RunRecord> for RunJson {
    fn from(record: RunRecord) -> RunJson {
        RunJson {
            summary: record.summary(),
            record,
        }
    }
}

/// Sync Now, as the schedule's status says.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncNowJson {
    pub available: bool,
    pub reason: String,
    pub available_after: Option<Timestamp>,
    /// The command that asks for it (the page has no write action).
    pub command: String,
}

/// A SyncSchedule of the district.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleJson {
    pub name: String,
    /// `Daily at 02:00 (America/Chicago)`, or why the schedule is invalid.
    pub description: String,
    pub time_zone: Option<String>,
    pub suspended: bool,
    pub next_sync: Option<Timestamp>,
    pub sync_now: Option<SyncNowJson>,
    pub health: String,
    pub conditions: Vec<ConditionJson>,
}

/// A condition, with the district admin's words next to the controller's.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConditionJson {
    #[serde(rename = "type")]
    pub type_: String,
    pub status: String,
    pub reason: String,
    pub message: String,
    pub since: Timestamp,
    pub words: String,
}

/// A district on the overview.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DistrictJson {
    pub namespace: String,
    pub name: String,
    pub district_id: String,
    /// The district's name as Clever gives it (an organization, not a person).
    pub district_name: Option<String>,
    /// `Ready`, a reason, or `Pending`.
    pub health: String,
    pub health_words: String,
    pub last_run: Option<RunJson>,
    pub schedules: Vec<ScheduleJson>,
}

/// What a run held by the removal guard would remove, and how to approve it.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HeldJson {
    pub run_id: String,
    pub removals: Vec<(String, u64)>,
    pub approve_command: String,
}

/// The district page.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DistrictDetailJson {
    #[serde(flatten)]
    pub district: DistrictJson,
    pub conditions: Vec<ConditionJson>,
    pub runs: Vec<RunJson>,
    pub held: Option<HeldJson>,
    /// The run whose problems are listed (the latest finished run).
    pub problems_run_id: Option<String>,
    pub problems: Vec<ProblemJson>,
}

/// A per-record problem with what to do about it.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProblemJson {
    #[serde(flatten)]
    pub problem: Problem,
    pub what_to_do: String,
}

impl ProblemJson {
    /// `problem` of connection `key`, with what to do about it (the same words as `rostersync
    /// problems`: [`crate::store::problems::what_to_do`]).
    pub fn of(problem: Problem, key: &ConnectionKey) -> ProblemJson {
        ProblemJson {
            what_to_do: crate::store::problems::what_to_do(&problem.code, key.as_str()),
            problem,
        }
    }
}

fn ready(conds: &[Condition]) -> Option<&Condition> {
    conds.iter().find(|c| c.type_ == condition::READY)
}

/// `Ready`, the reason of a not-ready object, or `Pending` before the controller reported.
pub fn health(conds: &[Condition]) -> String {
    match ready(conds) {
        Some(c) if c.status == "True" => "Ready".to_string(),
        Some(c) if !c.reason.is_empty() => c.reason.clone(),
        Some(_) => "NotReady".to_string(),
        None => "Pending".to_string(),
    }
}

/// The health in words.
pub fn health_words(health: &str) -> String {
    match health {
        "Ready" => "Connected".into(),
        "Pending" => "Waiting for the first check".into(),
        "DistrictNotFound" => "Clever does not know this district ID: double-check it".into(),
        "CredentialsInvalid" => "Clever refused the token: a new token is needed".into(),
        "SecretNotFound" | "CredentialsMissing" => "The Clever token is missing".into(),
        "CleverUnavailable" => "Clever cannot be reached right now (retrying)".into(),
        other => format!("Needs attention ({other})"),
    }
}

/// A condition in words: the controller's message, led by what it means.
fn condition_words(c: &Condition) -> String {
    let what = match (c.type_.as_str(), c.status.as_str()) {
        (condition::READY, "True") => "Ready to sync",
        (condition::READY, _) => "Not ready to sync",
        (condition::CREDENTIALS_VALID, "True") => "Clever accepts the token",
        (condition::CREDENTIALS_VALID, _) => "Clever does not accept the token",
        (condition::DISTRICT_VERIFIED, "True") => "The district ID is verified with Clever",
        (condition::DISTRICT_VERIFIED, _) => "The district ID is not verified",
        (condition::SUSPENDED, "True") => "Scheduled syncs are off",
        (condition::SUSPENDED, _) => "Scheduled syncs are on",
        (condition::SYNC_NOW_AVAILABLE, "True") => "Sync Now is available",
        (condition::SYNC_NOW_AVAILABLE, _) => "Sync Now is not available",
        _ => "",
    };
    match (what, c.message.trim()) {
        ("", m) => format!("{}: {} ({})", c.type_, c.status, m),
        (w, "") => w.to_string(),
        (w, m) => format!("{w}: {m}"),
    }
}

fn conditions(conds: &[Condition]) -> Vec<ConditionJson> {
    conds
        .iter()
        .map(|c| ConditionJson {
            type_: c.type_.clone(),
            status: c.status.clone(),
            reason: c.reason.clone(),
            message: c.message.clone(),
            since: c.last_transition_time.0,
            words: condition_words(c),
        })
        .collect()
}

/// `Daily at 02:00 (UTC)`, `Weekly on Monday at 02:00 (...)`, `Monthly on day 1 at ...`.
fn describe_schedule(s: &SyncSchedule) -> String {
    let spec = &s.spec;
    let when = match spec.frequency {
        crate::api::Frequency::Daily => "Daily".to_string(),
        crate::api::Frequency::Weekly => match spec.day_of_week {
            Some(d) => format!("Weekly on {d:?}"),
            None => "Weekly".into(),
        },
        crate::api::Frequency::Monthly => match spec.day_of_month {
            Some(d) => format!("Monthly on day {d}"),
            None => "Monthly".into(),
        },
    };
    format!("{when} at {} ({})", spec.at, spec.time_zone)
}

fn schedule_json(s: &SyncSchedule, now: Timestamp) -> ScheduleJson {
    let status = s.status.clone().unwrap_or_default();
    let ns = s.namespace().unwrap_or_default();
    let name = s.name_any();
    let rule = ScheduleRule::from_spec(&s.spec);
    let next_sync = if s.spec.suspend {
        None
    } else {
        status
            .next_sync_time
            .as_ref()
            .map(|t| t.0)
            .or_else(|| rule.as_ref().ok().map(|r| r.next_slot_after(now)))
    };
    let description = match &rule {
        Ok(_) => describe_schedule(s),
        Err(e) => format!("invalid schedule: {e}"),
    };
    ScheduleJson {
        description,
        time_zone: rule.ok().map(|r| r.time_zone_name().to_string()),
        suspended: s.spec.suspend,
        next_sync,
        sync_now: status.sync_now.as_ref().map(|n| SyncNowJson {
            available: n.available,
            reason: n.reason.clone(),
            available_after: n.available_after.as_ref().map(|t| t.0),
            command: format!("kubectl roster sync-now -n {ns} {name}"),
        }),
        health: health(&status.conditions),
        conditions: conditions(&status.conditions),
        name,
    }
}

fn district_json(
    c: &RosterConnection,
    schedules: &[&SyncSchedule],
    last_run: Option<RunRecord>,
    now: Timestamp,
) -> DistrictJson {
    let status = c.status.clone().unwrap_or_default();
    let health = health(&status.conditions);
    DistrictJson {
        namespace: c.namespace().unwrap_or_default(),
        name: c.name_any(),
        district_id: c.spec.district_id.clone(),
        district_name: status
            .district
            .as_ref()
            .map(|d| d.name.clone())
            .filter(|n| !n.is_empty()),
        health_words: health_words(&health),
        health,
        last_run: last_run.map(RunJson::from),
        schedules: schedules.iter().map(|s| schedule_json(s, now)).collect(),
    }
}

fn key_of(c: &RosterConnection) -> Option<ConnectionKey> {
    ConnectionKey::new(&c.namespace()?, &c.name_any()).ok()
}

/// The overview entry of `c`: its schedules from `all_schedules`, its last run from Postgres.
pub async fn district(
    db: &PgPool,
    c: &RosterConnection,
    all_schedules: &[SyncSchedule],
    now: Timestamp,
) -> Result<DistrictJson, DataError> {
    let ns = c.namespace().unwrap_or_default();
    let name = c.name_any();
    let schedules: Vec<&SyncSchedule> = all_schedules
        .iter()
        .filter(|s| s.namespace().as_deref() == Some(ns.as_str()))
        .filter(|s| s.spec.connection_ref.name == name)
        .collect();
    let last = match key_of(c) {
        Some(key) => store_runs::list(db, Some(&key), 1)
            .await?
            .into_iter()
            .next(),
        None => None,
    };
    Ok(district_json(c, &schedules, last, now))
}

/// The district page of `c`.
pub async fn detail(
    db: &PgPool,
    c: &RosterConnection,
    schedules: &[SyncSchedule],
    now: Timestamp,
) -> Result<DistrictDetailJson, DataError> {
    let Some(key) = key_of(c) else {
        let refs: Vec<&SyncSchedule> = schedules.iter().collect();
        return Ok(DistrictDetailJson {
            district: district_json(c, &refs, None, now),
            conditions: Vec::new(),
            runs: Vec::new(),
            held: None,
            problems_run_id: None,
            problems: Vec::new(),
        });
    };
    let runs = store_runs::list(db, Some(&key), PAGE_RUNS).await?;
    let latest_finished = runs.iter().find(|r| r.is_finished()).cloned();
    let problems = match &latest_finished {
        Some(r) => latest_problems(db, &key, &r.run_id).await?,
        None => Vec::new(),
    };
    let held = store_runs::pending_held(db, &key).await?.map(|h| {
        let schedule = h
            .schedule
            .clone()
            .or_else(|| schedules.first().map(|s| s.name_any()))
            .unwrap_or_else(|| key.name().to_string());
        HeldJson {
            removals: h
                .counts
                .removals()
                .into_iter()
                .map(|(e, n)| (e.to_string(), n))
                .collect(),
            approve_command: format!(
                "kubectl roster approve -n {} {schedule} {}",
                key.namespace(),
                h.run_id
            ),
            run_id: h.run_id,
        }
    });
    let refs: Vec<&SyncSchedule> = schedules.iter().collect();
    let status = c.status.clone().unwrap_or_default();
    Ok(DistrictDetailJson {
        district: district_json(c, &refs, runs.first().cloned(), now),
        conditions: conditions(&status.conditions),
        problems_run_id: latest_finished.map(|r| r.run_id),
        problems: problems
            .into_iter()
            .map(|p| ProblemJson::of(p, &key))
            .collect(),
        runs: runs.into_iter().map(RunJson::from).collect(),
        held,
    })
}

/// The newest runs of `key`, at most `limit` (capped at [`MAX_RUNS`]).
pub async fn runs(db: &PgPool, key: &ConnectionKey, limit: i64) -> Result<Vec<RunJson>, DataError> {
    let runs = store_runs::list(db, Some(key), limit.clamp(1, MAX_RUNS)).await?;
    Ok(runs.into_iter().map(RunJson::from).collect())
}

/// The latest finished run's id of `key` (the run whose problems are shown by default).
pub async fn latest_finished_run(
    db: &PgPool,
    key: &ConnectionKey,
) -> Result<Option<String>, DataError> {
    Ok(sqlx::query_scalar!(
        "SELECT run_id FROM sync_runs WHERE connection = $1 AND result <> 'Running'
         ORDER BY started_at DESC, run_id DESC LIMIT 1",
        key.as_str(),
    )
    .fetch_optional(db)
    .await
    .map_err(crate::store::StoreError::query("reading the latest run"))?)
}

/// The per-record problems of run `run_id` of `key`, in recording order (ids, codes and the
/// sync's messages, which never hold personal data).
pub async fn latest_problems(
    db: &PgPool,
    key: &ConnectionKey,
    run_id: &str,
) -> Result<Vec<Problem>, DataError> {
    Ok(sqlx::query_as!(
        Problem,
        "SELECT p.record_kind, p.clever_id, p.code, p.message FROM sync_problems p
         JOIN sync_runs r ON r.run_id = p.run_id
         WHERE p.run_id = $1 AND r.connection = $2 ORDER BY p.id LIMIT 10000",
        run_id,
        key.as_str(),
    )
    .fetch_all(db)
    .await
    .map_err(crate::store::StoreError::query("reading sync_problems"))?)
}

/// Whether the latest run of the overview entry held for removals.
pub fn is_held(d: &DistrictJson) -> bool {
    d.last_run
        .as_ref()
        .is_some_and(|r| r.record.result == RunResult::Held)
}
