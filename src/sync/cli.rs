//! `rostersync sync`: standalone (manifest files, token from the environment) or in a Job
//! (`--connection NS/NAME`, objects read through the Kubernetes API).
use std::path::PathBuf;

use anyhow::Context as _;

use super::clever_source::CleverSource;
use super::{SyncError, SyncRequest, run_sync_with};
use crate::api::{JourneyPolicy, JourneyPolicySpec, RosterConnection, RosterConnectionSpec};
use crate::clever::CleverCredentials;
use crate::run::{ConnectionKey, RunRecord, Trigger, parse_trigger};

/// Output formats of `rostersync sync`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum SyncOutput {
    #[default]
    Text,
    Json,
}

/// Arguments of `rostersync sync`.
///
/// Exit codes: 0 succeeded (also a dry run), 3 held by the removal guard, 2 not retriable
/// (credentials, district, invalid configuration), 1 retriable failure (Clever unavailable,
/// database error, another run in progress).
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["connection_file", "connection"])))]
pub struct SyncArgs {
    /// A RosterConnection manifest (YAML); its namespace/name (default namespace `default`) keys
    /// the roster rows. The token comes from CLEVER_TOKEN, or CLEVER_CLIENT_ID and
    /// CLEVER_CLIENT_SECRET (app credentials).
    #[arg(long)]
    pub connection_file: Option<PathBuf>,
    /// The JourneyPolicy manifest the connection's journeyPolicyRef names.
    #[arg(long, requires = "connection_file")]
    pub journey_policy_file: Option<PathBuf>,
    /// In a Job: the RosterConnection `NAMESPACE/NAME` to read through the Kubernetes API.
    #[arg(long)]
    pub connection: Option<String>,
    /// What started the run: `Scheduled`, `Manual` or `CatchUp`.
    #[arg(long, default_value = "Manual", value_parser = parse_trigger)]
    pub trigger: Trigger,
    /// The run's id (the `sync_runs` key). A finished run with this id is reported, not run again,
    /// unless it failed with a retriable error: then this is its next attempt.
    #[arg(long)]
    pub run_id: Option<String>,
    /// The SyncSchedule that started the run.
    #[arg(long)]
    pub schedule: Option<String>,
    /// The Job running the sync.
    #[arg(long)]
    pub job: Option<String>,
    /// Postgres URL of the roster database.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: String,
    /// Compute and report the counts; apply nothing (only the history row is written).
    #[arg(long)]
    pub dry_run: bool,
    /// Apply removals above the removal guard, for this run only.
    #[arg(long)]
    pub approve_removals: bool,
    #[arg(long, value_enum, default_value_t = SyncOutput::Text)]
    pub output: SyncOutput,
    /// Pages one Clever list may have; more fails the run (a cursor that never ends), before
    /// anything is applied.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub clever_max_pages: u32,
    /// Postgres: the longest one statement may run, in seconds.
    #[arg(long, default_value_t = 600, value_parser = clap::value_parser!(u64).range(1..))]
    pub db_statement_timeout: u64,
    /// Postgres: the longest a statement waits for a lock, in seconds (a run that waits longer
    /// fails, retriable, and changes nothing).
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    pub db_lock_timeout: u64,
    /// Postgres: a transaction left idle this long (a frozen process) is ended by the server, in
    /// seconds, releasing its locks.
    #[arg(long, default_value_t = 120, value_parser = clap::value_parser!(u64).range(1..))]
    pub db_idle_in_transaction_timeout: u64,
    /// Postgres, the client's own bound, in seconds: a run whose database stops answering (a
    /// frozen server or network path) fails after about this long instead of waiting for a reply
    /// that never comes. Its session is checked from a second connection, so a long statement is
    /// not cut short by it.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    pub db_client_timeout: u64,
    /// The hosts (`HOST[:PORT]`) Clever credentials may be sent to; apiBaseUrl (and the oauth
    /// tokens URL derived from it) elsewhere fails the run before any request, not retriable.
    /// The controller passes its `--allowed-api-host` list to every sync Job. Without the flag
    /// (a person running a sync with credentials of their own) any host is allowed.
    #[arg(long = "allowed-api-host", value_name = "HOST[:PORT]", value_delimiter = ',', value_parser = crate::clever::parse_allowed_host)]
    pub allowed_api_hosts: Vec<crate::clever::AllowedHost>,
    /// Apply pending migrations first (needs the owner's URL). Without it the sync only checks
    /// that the schema is current and fails clearly when it is behind: a sync Job never runs DDL
    /// (the controller migrates at start).
    #[arg(long)]
    pub migrate: bool,
    /// `--extra-ca-file`: Clever and Postgres connections trust these CA certificates too (the
    /// controller passes it to Jobs when run with `--sync-ca-bundle-configmap`).
    #[command(flatten)]
    pub extra_ca: crate::tls::ExtraCaArgs,
    /// The largest Clever response body accepted, in bytes; a larger one fails the run.
    #[arg(long, default_value_t = 256 * 1024 * 1024, value_parser = clap::value_parser!(u64).range(1..))]
    pub clever_max_body_bytes: u64,
}

/// What a run is configured with.
struct Loaded {
    connection: ConnectionKey,
    spec: RosterConnectionSpec,
    policy: Option<JourneyPolicySpec>,
    credentials: CleverCredentials,
}

/// Runs `rostersync sync` and returns the exit code.
pub async fn run(args: SyncArgs) -> anyhow::Result<u8> {
    // Read once, first: a missing or broken CA file is a configuration error naming the file.
    let extra_ca = match args.extra_ca.load() {
        Ok(ca) => ca,
        Err(err) => {
            let err = SyncError::Config(err.to_string());
            eprintln!("error: {err}");
            return Ok(err.exit_code());
        }
    };
    let loaded = match load(&args).await {
        Ok(l) => l,
        Err(err) => {
            eprintln!("error: {err}");
            return Ok(err.exit_code());
        }
    };
    let base_url = match validate(&loaded.spec) {
        Ok(u) => u,
        Err(err) => {
            eprintln!("error: {err}");
            return Ok(err.exit_code());
        }
    };
    let allowed = crate::clever::AllowedApiHosts::new(args.allowed_api_hosts.clone());
    if let Err(err) = allowed.check_api_base(&base_url) {
        let err = SyncError::Source {
            reason: "ApiHostNotAllowed",
            message: err.message,
            retriable: false,
        };
        eprintln!("error: {err}");
        return Ok(err.exit_code());
    }
    let limits = crate::store::SessionLimits {
        statement_timeout: std::time::Duration::from_secs(args.db_statement_timeout),
        lock_timeout: std::time::Duration::from_secs(args.db_lock_timeout),
        idle_in_transaction_timeout: std::time::Duration::from_secs(
            args.db_idle_in_transaction_timeout,
        ),
        client_timeout: std::time::Duration::from_secs(args.db_client_timeout),
        ..Default::default()
    };
    let pool = match crate::store::connect_with_ca(
        &args.database_url,
        3,
        &limits,
        extra_ca.as_ref(),
    )
    .await
    {
        Ok(p) => p,
        Err(err) => {
            eprintln!("error: {err}");
            return Ok(crate::output::exit::FAILED);
        }
    };
    if args.migrate {
        crate::store::migrate(&pool)
            .await
            .context("cannot migrate the roster database")?;
    }
    if let Err(err) = check_database(&pool, &loaded.connection).await {
        eprintln!("error: {err}");
        return Ok(err.exit_code());
    }
    let name = loaded.connection.name().to_string();
    let req = SyncRequest {
        connection: loaded.connection,
        spec: loaded.spec,
        policy: loaded.policy,
        run_id: args.run_id.clone().unwrap_or_else(|| new_run_id(&name)),
        trigger: args.trigger,
        schedule: args.schedule.clone(),
        job: args.job.clone(),
        dry_run: args.dry_run,
        approve_removals: args.approve_removals,
        today: jiff::Zoned::now().date(),
    };
    let mut source = CleverSource::new(base_url, loaded.credentials);
    source.config.max_pages = args.clever_max_pages;
    source.config.max_body_bytes = args.clever_max_body_bytes;
    source.config.extra_ca = extra_ca;
    // The run's span: every line of the sync carries the run id, connection and trigger (the
    // controller logs the Job's creation in a span with the same fields).
    let span = tracing::info_span!(
        "run",
        run_id = %req.run_id,
        connection = %req.connection,
        trigger = req.trigger.as_str(),
    );
    match tracing::Instrument::instrument(run_sync_with(&pool, &req, &source, &limits), span).await
    {
        Ok(run) => {
            print_outcome(&run, args.output)?;
            Ok(run.exit_code())
        }
        Err(err) => {
            eprintln!("error: {err}");
            Ok(err.exit_code())
        }
    }
}

/// The schema is current, and a district credential (dedicated tenancy) belongs to this
/// connection: a district's credential used with another district's manifest is refused before
/// anything is read or written (row-level security would hide and refuse the rows anyway).
async fn check_database(pool: &sqlx::PgPool, connection: &ConnectionKey) -> Result<(), SyncError> {
    crate::store::check_schema(pool)
        .await
        .map_err(|e| SyncError::Config(e.to_string()))?;
    match crate::store::tenancy::credential_connection(pool).await? {
        Some(own) if own != connection.as_str() => Err(SyncError::Config(format!(
            "this database credential belongs to connection {own}, not {connection}: a district's \
             credential reaches only its own roster (use the Secret of {connection}'s namespace)"
        ))),
        _ => Ok(()),
    }
}

/// A run id for a standalone run: `<name>-<UTC time>-<64 random bits>`.
pub fn new_run_id(name: &str) -> String {
    use rand::RngExt;
    let now = jiff::Timestamp::now().strftime("%Y%m%dt%H%M%S");
    let suffix: u64 = rand::rng().random();
    format!("{name}-{now}-{suffix:016x}")
}

async fn load(args: &SyncArgs) -> Result<Loaded, SyncError> {
    match (&args.connection_file, &args.connection) {
        (Some(file), _) => load_files(file, args.journey_policy_file.as_deref()),
        (None, Some(key)) => load_cluster(key).await,
        (None, None) => Err(SyncError::Config(
            "pass --connection-file FILE or --connection NAMESPACE/NAME".into(),
        )),
    }
}

fn read_yaml<T: serde::de::DeserializeOwned>(
    path: &std::path::Path,
    what: &str,
) -> Result<T, SyncError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| SyncError::Config(format!("cannot read {what} {}: {e}", path.display())))?;
    serde_yaml_ng::from_str(&text).map_err(|e| {
        SyncError::Config(format!(
            "{} is not a valid {what} manifest: {e}",
            path.display()
        ))
    })
}

fn load_files(
    file: &std::path::Path,
    policy_file: Option<&std::path::Path>,
) -> Result<Loaded, SyncError> {
    let rc: RosterConnection = read_yaml(file, "RosterConnection")?;
    let ns = rc
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    let name = rc
        .metadata
        .name
        .clone()
        .ok_or_else(|| SyncError::Config(format!("{} has no metadata.name", file.display())))?;
    let policy = match (policy_file, &rc.spec.journey_policy_ref) {
        (Some(p), _) => Some(read_yaml::<JourneyPolicy>(p, "JourneyPolicy")?.spec),
        (None, Some(r)) => {
            return Err(SyncError::Config(format!(
                "the connection names JourneyPolicy {:?}: pass its manifest with --journey-policy-file",
                r.name
            )));
        }
        (None, None) => None,
    };
    Ok(Loaded {
        connection: key(&ns, &name)?,
        spec: rc.spec,
        policy,
        credentials: env_credentials()?,
    })
}

/// CLEVER_TOKEN, else CLEVER_CLIENT_ID + CLEVER_CLIENT_SECRET.
fn env_credentials() -> Result<CleverCredentials, SyncError> {
    CleverCredentials::from_env().ok_or_else(|| SyncError::Source {
        reason: "CredentialsMissing",
        message: "no Clever credentials: set CLEVER_TOKEN (a district token), or CLEVER_CLIENT_ID and CLEVER_CLIENT_SECRET".into(),
        retriable: false,
    })
}

/// The connection key of `namespace/name`.
fn key(ns: &str, name: &str) -> Result<ConnectionKey, SyncError> {
    ConnectionKey::new(ns, name).map_err(|e| SyncError::Config(e.to_string()))
}

async fn load_cluster(key: &str) -> Result<Loaded, SyncError> {
    use k8s_openapi::api::core::v1::Secret;
    let key =
        ConnectionKey::parse(key).map_err(|e| SyncError::Config(format!("--connection: {e}")))?;
    let (ns, name) = (key.namespace(), key.name());
    let retriable = |what: String| {
        move |e: kube::Error| {
            let not_found = matches!(&e, kube::Error::Api(s) if s.code == 404);
            if not_found {
                SyncError::Config(format!("{what} not found"))
            } else {
                SyncError::Source {
                    reason: "KubernetesUnavailable",
                    message: format!("cannot read {what}: {e}"),
                    retriable: true,
                }
            }
        }
    };
    let client = kube::Client::try_default()
        .await
        .map_err(|e| SyncError::Config(format!("no Kubernetes client configuration: {e}")))?;
    let rc = kube::Api::<RosterConnection>::namespaced(client.clone(), ns)
        .get(name)
        .await
        .map_err(retriable(format!("RosterConnection {ns}/{name}")))?;
    let policy = match &rc.spec.journey_policy_ref {
        Some(r) => Some(
            kube::Api::<JourneyPolicy>::namespaced(client.clone(), ns)
                .get(&r.name)
                .await
                .map_err(retriable(format!("JourneyPolicy {ns}/{}", r.name)))?
                .spec,
        ),
        None => None,
    };
    let credentials = match env_credentials() {
        Ok(c) => c,
        Err(_) => {
            let secret_name = &rc.spec.credentials_secret_ref.name;
            let secret = kube::Api::<Secret>::namespaced(client, ns)
                .get(secret_name)
                .await
                .map_err(retriable(format!("Secret {ns}/{secret_name}")))?;
            CleverCredentials::from_secret(&secret)
                .map_err(|e| SyncError::Config(format!("namespace {ns}: {e}")))?
        }
    };
    Ok(Loaded {
        connection: key.clone(),
        spec: rc.spec,
        policy,
        credentials,
    })
}

/// The admission rules, again (a manifest file never went through the API server).
fn validate(spec: &RosterConnectionSpec) -> Result<url::Url, SyncError> {
    let id = &spec.district_id;
    if id.len() != 24
        || !id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(SyncError::Config(format!(
            "districtId {id:?} must be 24 lowercase hex characters"
        )));
    }
    let url = url::Url::parse(&spec.api_base_url)
        .map_err(|e| SyncError::Config(format!("apiBaseUrl is not a URL: {e}")))?;
    let loopback = matches!(url.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
    if url.scheme() != "https" && !(url.scheme() == "http" && loopback) {
        return Err(SyncError::Config(
            "apiBaseUrl must use https (plain http only to 127.0.0.1, localhost or [::1])".into(),
        ));
    }
    if !(0..=100).contains(&spec.settings.removal_guard_percent) {
        return Err(SyncError::Config(
            "removalGuardPercent must be 0 to 100".into(),
        ));
    }
    Ok(url)
}

fn print_outcome(o: &RunRecord, output: SyncOutput) -> anyhow::Result<()> {
    match output {
        SyncOutput::Json => println!("{}", serde_json::to_string(o)?),
        SyncOutput::Text => print!("{}", outcome_text(o)),
    }
    Ok(())
}

/// The human-readable report.
pub fn outcome_text(o: &RunRecord) -> String {
    let mut out = format!(
        "run {}: {}{} in {:.1}s\n",
        o.run_id,
        o.result.as_str(),
        if o.dry_run {
            " (dry run, nothing applied)"
        } else {
            ""
        },
        o.duration_ms.unwrap_or(0) as f64 / 1000.0
    );
    if let Some(m) = &o.message {
        out.push_str(&format!("  {m}\n"));
    }
    out.push_str(&format!(
        "  {:<12} {:>8} {:>8} {:>9} {:>11} {:>8} {:>11} {:>12} {:>8}\n",
        "",
        "created",
        "updated",
        "unchanged",
        "deactivated",
        "removed",
        "reactivated",
        "carriedOver",
        "matched"
    ));
    for (entity, c) in o.counts.entities() {
        out.push_str(&format!(
            "  {:<12} {:>8} {:>8} {:>9} {:>11} {:>8} {:>11} {:>12} {:>8}\n",
            entity,
            c.created,
            c.updated,
            c.unchanged,
            c.deactivated,
            c.removed,
            c.reactivated,
            c.carried_over,
            c.matched
        ));
    }
    if o.problems > 0 {
        let codes: Vec<String> = o
            .problem_codes
            .iter()
            .map(|(c, n)| format!("{c} {n}"))
            .collect();
        out.push_str(&format!(
            "  problems: {} ({}); see `rostersync history`\n",
            o.problems,
            codes.join(", ")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifests_are_validated_like_admission_does() {
        let spec = |id: &str, url: &str| -> RosterConnectionSpec {
            serde_json::from_value(serde_json::json!({
                "districtId": id, "apiBaseUrl": url, "credentialsSecretRef": {"name": "c"}
            }))
            .unwrap_or_else(|e| panic!("spec: {e}"))
        };
        let id = "0123456789abcdef01234567";
        assert!(validate(&spec(id, "https://api.clever.com")).is_ok());
        assert!(validate(&spec(id, "http://127.0.0.1:8080")).is_ok());
        assert!(validate(&spec(id, "http://api.clever.com")).is_err());
        assert!(validate(&spec("ABC", "https://api.clever.com")).is_err());
    }
}
