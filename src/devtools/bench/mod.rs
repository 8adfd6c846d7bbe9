//! `rostersync bench ...`: throughput of the Clever client ([`clever`]) and of a full sync
//! ([`sync`], with the floors of [`floors`]), printed as JSON; K districts syncing at once
//! ([`concurrent`]); many districts on one controller ([`scale`]).
pub mod clever;
pub mod concurrent;
pub mod floors;
pub mod scale;
pub mod sync;

/// A memory figure of a process from `/proc/<pid>/status` (`VmRSS:`, `VmHWM:` = peak RSS), in
/// MiB; `pid` `None`: this process.
pub fn status_mb(pid: Option<u32>, field: &str) -> Option<f64> {
    let path = pid.map_or("/proc/self/status".to_string(), |p| {
        format!("/proc/{p}/status")
    });
    let status = std::fs::read_to_string(path).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// A manual sync of `connection` from the emulated district `district_id` at `base_url`, as the
/// benchmarks run it: the token credentials, the Readiness journey for new children.
pub fn sync_request(
    connection: &crate::run::ConnectionKey,
    district_id: &str,
    base_url: &url::Url,
    run_id: String,
) -> anyhow::Result<crate::sync::SyncRequest> {
    let spec: crate::api::RosterConnectionSpec = serde_json::from_value(serde_json::json!({
        "districtId": district_id,
        "apiBaseUrl": base_url.as_str().trim_end_matches('/'),
        "credentialsSecretRef": {"name": "clever"},
    }))?;
    let policy: crate::api::JourneyPolicySpec = serde_json::from_value(
        serde_json::json!({"licensedProducts": ["Readiness"], "newChildJourney": "Readiness"}),
    )?;
    Ok(crate::sync::SyncRequest {
        connection: connection.clone(),
        spec,
        policy: Some(policy),
        run_id,
        trigger: crate::api::Trigger::Manual,
        schedule: None,
        job: None,
        dry_run: false,
        approve_removals: false,
        today: jiff::Zoned::now().date(),
    })
}

/// `owner`'s Postgres URL with its database replaced by `database`.
pub fn database_url(owner: &str, database: &str) -> anyhow::Result<String> {
    use anyhow::Context as _;
    let mut url = url::Url::parse(owner).context("the database URL is not a URL")?;
    url.set_path(&format!("/{database}"));
    Ok(url.to_string())
}
