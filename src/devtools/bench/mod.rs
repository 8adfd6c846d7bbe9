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

/// `owner`'s Postgres URL with its database replaced by `database`.
pub fn database_url(owner: &str, database: &str) -> anyhow::Result<String> {
    use anyhow::Context as _;
    let mut url = url::Url::parse(owner).context("the database URL is not a URL")?;
    url.set_path(&format!("/{database}"));
    Ok(url.to_string())
}
