//! `rostersync bench scale`: many districts on one controller, on a real control plane and
//! Postgres (`hack/scale.sh` starts them when not given).
//!
//! Each district is a namespace with a token Secret, a JourneyPolicy, a RosterConnection and a
//! weekly SyncSchedule, all pointing at one in-process Clever emulator. The controller is this
//! executable (`rostersync controller`, run as a child process; the release binary when the bench
//! is), the pod runner runs the sync pods of the first `--pod-districts` districts.
//!
//! Phases, for each size of `--sizes` (ascending; the districts of a size are kept for the next):
//! 1. create the missing districts with no controller running;
//! 2. baseline: the API server's request counter (`apiserver_request_total`) over
//!    `--baseline-seconds` without the controller (the controller manager and the pod runner);
//! 3. start the controller; time until every connection is Ready and every schedule's status is
//!    current; `--settle-seconds`;
//! 4. at rest for `--rest-seconds`: the controller's RSS and CPU (from /proc), its API requests per
//!    minute (the counter's delta minus the baseline's rate), its reconciles and their latency (the
//!    `rostersync_reconcile_duration_seconds` histogram's delta; since the start too).
//!
//! At `--restart-at`: the controller is stopped and started again: time until every connection is
//! verified again (lastCheckTime after the start) and every object was reconciled once, and the
//! peak rate of district lookups at the emulator (max over sliding 1 s windows).
//!
//! At `--slot-at`: every schedule's slot is the same minute; the controller starts with its clock
//! shifted (`--clock-offset-seconds`) so that the slot comes `--slot-lead-seconds` after its start,
//! and the delay from the slot to each Job's creation (seen by a watch, ms; `creationTimestamp`, s)
//! gives p50, p99 and max.
//!
//! The bench makes no API request of its own during a baseline or a rest window. Figures are
//! printed as a table (stderr) and JSON (stdout).
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Namespace, Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};
use serde::Serialize;
use serde_json::json;

use crate::api::{RosterConnection, SyncSchedule};
use crate::devtools::emulator::{Emulator, EmulatorConfig, EmulatorHandle};

/// Arguments of `rostersync bench scale`.
#[derive(Debug, clap::Args)]
pub struct ScaleBenchArgs {
    /// District counts to measure at rest, ascending, comma separated (e.g. 100,1000,3000).
    #[arg(long, value_delimiter = ',', default_values_t = [20usize])]
    pub sizes: Vec<usize>,
    /// Run the restart phase at this size (one of --sizes).
    #[arg(long)]
    pub restart_at: Option<usize>,
    /// Run the slot-accuracy phase at this size (one of --sizes; the last phase: it starts Jobs).
    #[arg(long)]
    pub slot_at: Option<usize>,
    /// Postgres URL (a server); a fresh database `rs_bench_<random>` is created on it.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: String,
    /// Length of the at-rest window at each size.
    #[arg(long, default_value_t = 60)]
    pub rest_seconds: u64,
    /// Length of the baseline window (no controller) at each size.
    #[arg(long, default_value_t = 30)]
    pub baseline_seconds: u64,
    /// Pause between "all Ready" and the at-rest window.
    #[arg(long, default_value_t = 15)]
    pub settle_seconds: u64,
    /// The controller's `--verify-startup-jitter-seconds` (the restart spreads re-verifications
    /// over it).
    #[arg(long, default_value_t = 30)]
    pub verify_jitter_seconds: u64,
    /// Slot phase: seconds from the controller's start to the slot (0: twice the time the first
    /// start at that size took to get every object current, plus 20 s, at least 30 s).
    #[arg(long, default_value_t = 0)]
    pub slot_lead_seconds: u64,
    /// Districts (the first ones) whose sync pods the pod runner runs; the other sync pods stay
    /// Pending (no kubelet), which does not change when Jobs are created.
    #[arg(long, default_value_t = 5)]
    pub pod_districts: usize,
    /// Students in the emulated district (every connection syncs the same one).
    #[arg(long, default_value_t = 20)]
    pub students: u32,
    /// Creations in flight at once while setting up districts.
    #[arg(long, default_value_t = 16)]
    pub create_concurrency: usize,
    /// How long to wait for every object to become current after a start.
    #[arg(long, default_value_t = 600)]
    pub ready_timeout_seconds: u64,
    /// The controller's `--slot-jitter-seconds` (default: the controller's default). The slot
    /// phase measures each Job from its schedule's effective slot (nominal + its jitter), computed
    /// by the same rule the controller uses.
    #[arg(long, default_value_t = crate::schedule::DEFAULT_SLOT_JITTER_SECONDS)]
    pub slot_jitter_seconds: u32,
    /// Extra controller flags (repeat; e.g. --controller-arg=--max-concurrent-reconciles=16).
    #[arg(long = "controller-arg", allow_hyphen_values = true)]
    pub controller_args: Vec<String>,
    /// The controller's executable (default: this one); e.g. another build, to compare.
    #[arg(long)]
    pub controller_binary: Option<PathBuf>,
    /// Keep the districts, the database and the logs afterwards (on a throwaway cluster, where
    /// deleting thousands of namespaces is only slow).
    #[arg(long)]
    pub keep: bool,
    /// Directory for the controller's and the pod runner's logs (default: a temporary one).
    #[arg(long)]
    pub log_dir: Option<PathBuf>,
}

/// Figures at rest for one size.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RestFigures {
    pub districts: usize,
    /// Controller start to every connection Ready and every schedule's status current.
    pub start_to_ready_seconds: f64,
    pub rss_mb: f64,
    pub peak_rss_mb: f64,
    /// CPU over the rest window, in % of one core.
    pub cpu_percent: f64,
    /// CPU seconds from the start to the end of the rest window.
    pub cpu_seconds_total: f64,
    pub api_requests_per_minute: f64,
    pub api_requests_per_second_per_100_districts: f64,
    /// The controller's requests in the window by `VERB resource` (baseline subtracted).
    pub api_requests_by_kind: BTreeMap<String, f64>,
    pub baseline_requests_per_minute: f64,
    pub rest_seconds: f64,
    pub reconciles_in_window: f64,
    pub reconcile_latency: BTreeMap<String, Latency>,
}

/// Reconcile latency of one controller kind, from the histogram.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Latency {
    pub count_since_start: f64,
    pub p50_ms_since_start: Option<f64>,
    pub p99_ms_since_start: Option<f64>,
    pub count_at_rest: f64,
    pub p50_ms_at_rest: Option<f64>,
    pub p99_ms_at_rest: Option<f64>,
}

#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RestartFigures {
    pub districts: usize,
    pub verify_jitter_seconds: u64,
    /// Controller start to every object reconciled once (reconcile counters).
    pub all_reconciled_seconds: f64,
    /// Controller start to every connection verified again and Ready.
    pub all_verified_seconds: f64,
    pub clever_lookups: usize,
    pub clever_peak_per_second: usize,
    pub clever_mean_per_second: f64,
    pub not_ready_seen: usize,
    pub rss_mb: f64,
    pub peak_rss_mb: f64,
}

#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SlotFigures {
    pub districts: usize,
    /// Districts in the cluster (the others' slot is a day later).
    pub total_districts: usize,
    pub lead_seconds: u64,
    /// The controller's `--slot-jitter-seconds`: the districts' slots spread over this window.
    pub slot_jitter_seconds: u32,
    pub jobs: usize,
    /// From the watch (ms resolution).
    pub p50_seconds: f64,
    pub p99_seconds: f64,
    pub max_seconds: f64,
    /// From creationTimestamp (whole seconds).
    pub p50_seconds_by_creation_timestamp: f64,
    pub p99_seconds_by_creation_timestamp: f64,
    pub max_seconds_by_creation_timestamp: f64,
    pub missing: usize,
    pub peak_rss_mb: f64,
}

#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ScaleReport {
    pub rest: Vec<RestFigures>,
    pub restart: Option<RestartFigures>,
    pub slot: Option<SlotFigures>,
    pub clk_tck: u64,
    pub cores: usize,
    pub load_average: String,
}

/// The bench's world: clients, names, the emulator, the children.
struct World {
    client: Client,
    prefix: String,
    db_url: String,
    emulator: EmulatorHandle,
    /// The districts' slot (controller time).
    slot: jiff::Timestamp,
    created: usize,
    /// Districts from this index on get their slot a day later (only the first ones share it).
    slot_districts: usize,
    logs: PathBuf,
    exe: PathBuf,
    pod_districts: usize,
}

pub async fn run(args: ScaleBenchArgs) -> anyhow::Result<u8> {
    let mut sizes = args.sizes.clone();
    sizes.sort_unstable();
    sizes.dedup();
    if sizes.is_empty() || sizes[0] == 0 {
        bail!("--sizes needs at least one size above 0");
    }
    for (flag, at) in [
        ("--restart-at", args.restart_at),
        ("--slot-at", args.slot_at),
    ] {
        if let Some(at) = at
            && !sizes.contains(&at)
        {
            bail!("{flag} {at} is not one of --sizes {sizes:?}");
        }
    }
    let exe = std::env::current_exe().context("cannot find the rostersync executable")?;
    let client = Client::try_default()
        .await
        .context("cannot build a Kubernetes client (KUBECONFIG)")?;
    let tmp;
    let logs = match &args.log_dir {
        Some(d) => d.clone(),
        None => {
            tmp = std::env::temp_dir().join(format!("rostersync-scale-{}", std::process::id()));
            tmp
        }
    };
    std::fs::create_dir_all(&logs).with_context(|| format!("cannot create {}", logs.display()))?;
    eprintln!("bench scale: logs in {}", logs.display());

    install_crds(&client).await?;
    let suffix = crate::sync::cli::new_run_id("x")
        .rsplit('-')
        .next()
        .unwrap_or("0")
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .take(8)
        .collect::<String>();
    let prefix = format!("scale-{suffix}");
    // A fresh database on the given server.
    let (admin, db_name) = super::sync::fresh_database(&args.database_url).await?;
    let db_url = super::database_url(&args.database_url, &db_name)?;

    let mut emu_cfg = EmulatorConfig::generated(7, args.students.max(10));
    // One token for every district here (each has its own, and its own limit, at Clever): the
    // bench counts the requests instead of limiting them.
    emu_cfg.rate_limit_per_minute = 10_000_000;
    let emulator = Emulator::start(emu_cfg)
        .await
        .context("cannot start the emulator")?;
    // Every schedule's slot: the same minute, days away.
    let slot =
        jiff::Timestamp::from_second((jiff::Timestamp::now().as_second() / 60 + 3 * 1440) * 60)
            .context("slot time")?;
    let mut world = World {
        client,
        prefix,
        db_url,
        emulator,
        slot,
        created: 0,
        slot_districts: args.slot_at.unwrap_or(usize::MAX),
        logs,
        exe,
        pod_districts: args.pod_districts,
    };
    let mut runner = world.start_pod_runner()?;
    let result = bench(&args, &sizes, &mut world).await;
    runner.start_kill().ok();
    runner.wait().await.ok();
    if !args.keep {
        // Districts are offboarded by a controller (the finalizer): one runs while they go.
        let mut controller = world.start_controller(&args, 0, &[]).ok();
        world.delete_districts().await;
        if let Some(c) = controller.as_mut() {
            stop(c).await;
        }
        super::sync::drop_database(&admin, &db_name).await;
        if args.log_dir.is_none() {
            std::fs::remove_dir_all(&world.logs).ok();
        }
    }
    admin.close().await;
    let report = result?;
    eprint!("{}", table(&report));
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(0)
}

async fn bench(
    args: &ScaleBenchArgs,
    sizes: &[usize],
    world: &mut World,
) -> anyhow::Result<ScaleReport> {
    let mut report = ScaleReport {
        clk_tck: clk_tck(),
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        ..ScaleReport::default()
    };
    let mut first_ready = HashMap::new();
    for &size in sizes {
        eprintln!("bench scale: creating districts up to {size}");
        let t = Instant::now();
        world
            .create_districts(size, args.create_concurrency)
            .await?;
        eprintln!(
            "bench scale: {size} districts in place ({:.1} s)",
            t.elapsed().as_secs_f64()
        );
        // The controller manager gives each new namespace its `default` ServiceAccount: a burst
        // of requests that would fall into the baseline window and distort it.
        world
            .wait_default_service_accounts(size, Duration::from_secs(args.ready_timeout_seconds))
            .await?;
        let figures = rest_phase(args, world, size).await?;
        first_ready.insert(size, figures.start_to_ready_seconds);
        eprintln!("bench scale: {}", serde_json::to_string(&figures)?);
        report.rest.push(figures);
        if args.restart_at == Some(size) {
            let figures = restart_phase(args, world, size).await?;
            eprintln!("bench scale: {}", serde_json::to_string(&figures)?);
            report.restart = Some(figures);
        }
    }
    // Last: it starts Jobs. Only the first `slot_at` districts share the slot.
    if let Some(due) = args.slot_at {
        let size = world.created;
        let ready = first_ready.get(&size).copied().unwrap_or(30.0);
        let figures = slot_phase(args, world, due, ready).await?;
        eprintln!("bench scale: {}", serde_json::to_string(&figures)?);
        report.slot = Some(figures);
    }
    report.load_average = std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .trim()
        .to_string();
    Ok(report)
}

async fn rest_phase(
    args: &ScaleBenchArgs,
    world: &World,
    size: usize,
) -> anyhow::Result<RestFigures> {
    // Baseline: everything but the controller.
    let before = api_requests(&world.client).await?;
    let t = Instant::now();
    tokio::time::sleep(Duration::from_secs(args.baseline_seconds)).await;
    let after = api_requests(&world.client).await?;
    let baseline_secs = t.elapsed().as_secs_f64();
    let baseline = delta(&after, &before);
    let baseline_total: f64 = baseline.values().sum();

    let mut controller = world.start_controller(args, 0, &[])?;
    let pid = controller.id().context("the controller has no pid")?;
    let metrics = world.metrics_url_of(&controller).await?;
    let started = Instant::now();
    let ready = world
        .wait_current(size, Duration::from_secs(args.ready_timeout_seconds))
        .await;
    let start_to_ready = started.elapsed().as_secs_f64();
    if let Err(err) = ready {
        stop(&mut controller).await;
        return Err(err.context(format!("{size} districts: not every object became current")));
    }
    tokio::time::sleep(Duration::from_secs(args.settle_seconds)).await;

    // The window: no API request of the bench's own but the two counter reads.
    let hist0 = controller_metrics(&metrics).await?;
    let cpu0 = cpu_ticks(pid)?;
    let req0 = api_requests(&world.client).await?;
    let t = Instant::now();
    let mut peak_rss = 0.0f64;
    let end = t + Duration::from_secs(args.rest_seconds);
    while Instant::now() < end {
        peak_rss = peak_rss.max(super::status_mb(Some(pid), "VmRSS:").unwrap_or(0.0));
        tokio::time::sleep(
            Duration::from_secs(1).min(end.saturating_duration_since(Instant::now())),
        )
        .await;
    }
    let req1 = api_requests(&world.client).await?;
    let window = t.elapsed().as_secs_f64();
    let cpu1 = cpu_ticks(pid)?;
    let hist1 = controller_metrics(&metrics).await?;
    let rss = super::status_mb(Some(pid), "VmRSS:").unwrap_or(0.0);
    let hwm = super::status_mb(Some(pid), "VmHWM:").unwrap_or(0.0);
    stop(&mut controller).await;

    let tck = clk_tck() as f64;
    let mut by_kind = BTreeMap::new();
    let measured = delta(&req1, &req0);
    let mut total = 0.0;
    let keys: std::collections::BTreeSet<&String> =
        measured.keys().chain(baseline.keys()).collect();
    for k in keys {
        let m = measured.get(k).copied().unwrap_or(0.0);
        let b = baseline.get(k).copied().unwrap_or(0.0) * window / baseline_secs;
        let own = m - b;
        if own.abs() >= 0.5 {
            by_kind.insert(k.clone(), round(own));
        }
        // Fewer than in the baseline: a burst of someone else's requests in the baseline window,
        // not a saving of the controller's.
        total += own.max(0.0);
    }
    let total = total.max(0.0);
    let mut latency = BTreeMap::new();
    let mut reconciles = 0.0;
    for kind in ["RosterConnection", "SyncSchedule", "JourneyPolicy"] {
        let since = hist1.histogram(kind);
        let at_rest = since.minus(&hist0.histogram(kind));
        reconciles += at_rest.count;
        latency.insert(
            kind.to_string(),
            Latency {
                count_since_start: since.count,
                p50_ms_since_start: since.quantile(0.5).map(ms),
                p99_ms_since_start: since.quantile(0.99).map(ms),
                count_at_rest: at_rest.count,
                p50_ms_at_rest: at_rest.quantile(0.5).map(ms),
                p99_ms_at_rest: at_rest.quantile(0.99).map(ms),
            },
        );
    }
    Ok(RestFigures {
        districts: size,
        start_to_ready_seconds: round(start_to_ready),
        rss_mb: round(rss),
        peak_rss_mb: round(hwm.max(peak_rss)),
        cpu_percent: round((cpu1.0 - cpu0.0) as f64 / tck / window * 100.0),
        cpu_seconds_total: round(cpu1.0 as f64 / tck),
        api_requests_per_minute: round(total / window * 60.0),
        api_requests_per_second_per_100_districts: round(total / window / size as f64 * 100.0),
        api_requests_by_kind: by_kind,
        baseline_requests_per_minute: round(baseline_total / baseline_secs * 60.0),
        rest_seconds: round(window),
        reconciles_in_window: reconciles,
        reconcile_latency: latency,
    })
}

async fn restart_phase(
    args: &ScaleBenchArgs,
    world: &World,
    size: usize,
) -> anyhow::Result<RestartFigures> {
    // The previous controller verified every connection; this one starts with the same state.
    world.emulator.clear_requests();
    let started_at = jiff::Timestamp::now();
    let mut controller = world.start_controller(args, 0, &[])?;
    let pid = controller.id().context("the controller has no pid")?;
    let metrics = world.metrics_url_of(&controller).await?;
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.ready_timeout_seconds);
    let mut reconciled = None;
    let mut verified = None;
    let mut not_ready = std::collections::HashSet::new();
    while (reconciled.is_none() || verified.is_none()) && Instant::now() < deadline {
        if reconciled.is_none()
            && let Ok(m) = controller_metrics(&metrics).await
            && m.reconciles("RosterConnection") >= size as f64
            && m.reconciles("SyncSchedule") >= size as f64
        {
            reconciled = Some(started.elapsed().as_secs_f64());
        }
        if verified.is_none() {
            let conns = world.connections().await?;
            let mut done = 0;
            for c in &conns {
                let (ready, checked) = readiness(c);
                if !ready {
                    not_ready.insert(c.namespace().unwrap_or_default());
                }
                if ready && checked.is_some_and(|t| t.as_second() >= started_at.as_second()) {
                    done += 1;
                }
            }
            if done >= size {
                verified = Some(started.elapsed().as_secs_f64());
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let rss = super::status_mb(Some(pid), "VmRSS:").unwrap_or(0.0);
    let hwm = super::status_mb(Some(pid), "VmHWM:").unwrap_or(0.0);
    stop(&mut controller).await;
    let lookups = world.emulator.request_times("/v3.0/districts");
    let spread = lookups
        .last()
        .zip(lookups.first())
        .map_or(0.0, |(l, f)| l.duration_since(*f).as_secs_f64());
    let (Some(reconciled), Some(verified)) = (reconciled, verified) else {
        bail!(
            "restart at {size}: not every connection was verified again within {} s",
            args.ready_timeout_seconds
        );
    };
    Ok(RestartFigures {
        districts: size,
        verify_jitter_seconds: args.verify_jitter_seconds,
        all_reconciled_seconds: round(reconciled),
        all_verified_seconds: round(verified),
        clever_lookups: lookups.len(),
        clever_peak_per_second: peak_per_second(&lookups),
        clever_mean_per_second: round(lookups.len() as f64 / spread.max(1.0)),
        not_ready_seen: not_ready.len(),
        rss_mb: round(rss),
        peak_rss_mb: round(hwm),
    })
}

/// Jobs by namespace: when the watch saw each, and its creationTimestamp (s).
type Seen = HashMap<String, (jiff::Timestamp, Option<i64>)>;

async fn slot_phase(
    args: &ScaleBenchArgs,
    world: &World,
    size: usize,
    first_ready: f64,
) -> anyhow::Result<SlotFigures> {
    let lead = if args.slot_lead_seconds > 0 {
        args.slot_lead_seconds
    } else {
        ((first_ready * 2.0) as u64 + 20).max(30)
    };
    // Jobs as the watch sees them (ms), from before the controller starts.
    let seen: Arc<Mutex<Seen>> = Arc::default();
    let jobs: Api<Job> = Api::all(world.client.clone());
    let wc = watcher::Config::default().labels("app.kubernetes.io/managed-by=rostersync");
    let prefix = world.prefix.clone();
    let sink = seen.clone();
    let watch = tokio::spawn(async move {
        let mut events = std::pin::pin!(watcher(jobs, wc));
        while let Some(event) = events.next().await {
            let job = match event {
                Ok(watcher::Event::Apply(j) | watcher::Event::InitApply(j)) => j,
                _ => continue,
            };
            let ns = job.namespace().unwrap_or_default();
            if !ns.starts_with(&prefix) {
                continue;
            }
            let created = job.creation_timestamp().map(|t| t.0.as_second());
            if let Ok(mut s) = sink.lock() {
                s.entry(ns).or_insert((jiff::Timestamp::now(), created));
            }
        }
    });
    // Controller time = real time + offset; the slot comes `lead` seconds after the start.
    let real_slot = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(lead as i64);
    let offset = world.slot.as_second() - real_slot.as_second();
    eprintln!(
        "bench scale: slot phase: {size} schedules due at {} (controller clock +{offset} s), {lead} s after the start",
        world.slot
    );
    let mut controller = world.start_controller(args, offset, &[])?;
    let pid = controller.id().context("the controller has no pid")?;
    let deadline =
        Instant::now() + Duration::from_secs(lead + u64::from(args.slot_jitter_seconds) + 120);
    loop {
        let n = seen.lock().map(|s| s.len()).unwrap_or(0);
        if n >= size || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let hwm = super::status_mb(Some(pid), "VmHWM:").unwrap_or(0.0);
    stop(&mut controller).await;
    watch.abort();
    let seen = seen.lock().map(|s| s.clone()).unwrap_or_default();
    let mut by_watch: Vec<f64> = Vec::new();
    let mut by_ts: Vec<f64> = Vec::new();
    for (ns, (at, created)) in &seen {
        // The schedule's own slot: the nominal one plus its jitter (controller time, shifted back).
        let effective = world.effective_slot(ns, args.slot_jitter_seconds)?;
        let real = jiff::Timestamp::from_second(effective.as_second() - offset)?;
        by_watch.push(at.duration_since(real).as_secs_f64());
        if let Some(c) = created {
            by_ts.push((c - real.as_second()) as f64);
        }
    }
    by_watch.sort_by(f64::total_cmp);
    by_ts.sort_by(f64::total_cmp);
    Ok(SlotFigures {
        districts: size,
        total_districts: world.created,
        lead_seconds: lead,
        slot_jitter_seconds: args.slot_jitter_seconds,
        jobs: seen.len(),
        p50_seconds: round(percentile(&by_watch, 0.5)),
        p99_seconds: round(percentile(&by_watch, 0.99)),
        max_seconds: round(by_watch.last().copied().unwrap_or(f64::NAN)),
        p50_seconds_by_creation_timestamp: percentile(&by_ts, 0.5),
        p99_seconds_by_creation_timestamp: percentile(&by_ts, 0.99),
        max_seconds_by_creation_timestamp: by_ts.last().copied().unwrap_or(f64::NAN),
        missing: size.saturating_sub(seen.len()),
        peak_rss_mb: round(hwm),
    })
}

/// The name of every district's SyncSchedule.
const SCHEDULE: &str = "weekly";

/// A weekly schedule (UTC) whose slot is `slot`'s weekday and minute.
fn schedule_spec(slot: jiff::Timestamp, run_pods: bool) -> serde_json::Value {
    let zoned = slot.to_zoned(jiff::tz::TimeZone::UTC);
    let mut job = json!({"backoffLimit": 0, "activeDeadlineSeconds": 600});
    if run_pods {
        job["podLabels"] = json!({"rostersync-bench-pods": "run"});
    }
    json!({"connectionRef": {"name": "district"}, "frequency": "Weekly",
           "dayOfWeek": format!("{:?}", zoned.weekday()),
           "at": format!("{:02}:{:02}", zoned.hour(), zoned.minute()), "timeZone": "UTC",
           "job": job})
}

impl World {
    /// The effective slot (controller time) of namespace `ns`'s schedule: the shared nominal slot
    /// plus that schedule's jitter under `--slot-jitter-seconds` `jitter_seconds`.
    fn effective_slot(&self, ns: &str, jitter_seconds: u32) -> anyhow::Result<jiff::Timestamp> {
        let spec: crate::api::SyncScheduleSpec =
            serde_json::from_value(schedule_spec(self.slot, false))?;
        let rule = crate::schedule::ScheduleRule::for_schedule(
            &spec,
            &format!("{ns}/{SCHEDULE}"),
            jitter_seconds,
        )
        .map_err(|err| anyhow::anyhow!("the bench's schedule is invalid: {err}"))?;
        Ok(rule.next_slot_after(self.slot - jiff::SignedDuration::from_secs(1)))
    }

    fn namespace(&self, i: usize) -> String {
        format!("{}-{i:05}", self.prefix)
    }

    async fn create_districts(&mut self, size: usize, concurrency: usize) -> anyhow::Result<()> {
        let from = self.created;
        let this = &*self;
        futures::stream::iter(from..size)
            .map(|i| this.create_district(i))
            .buffer_unordered(concurrency.max(1))
            .try_collect::<Vec<()>>()
            .await?;
        self.created = size.max(self.created);
        Ok(())
    }

    async fn create_district(&self, i: usize) -> anyhow::Result<()> {
        let ns = self.namespace(i);
        let client = &self.client;
        let pp = PostParams::default();
        let namespace: Namespace = serde_json::from_value(json!({
            "metadata": {"name": ns, "labels": {"rostersync.io/bench": self.prefix}}
        }))?;
        create(&Api::<Namespace>::all(client.clone()), &pp, &namespace).await?;
        let secret: Secret = serde_json::from_value(json!({
            "metadata": {"name": "clever"}, "stringData": {"token": self.emulator.token()}
        }))?;
        create(&Api::namespaced(client.clone(), &ns), &pp, &secret).await?;
        let sa: ServiceAccount =
            serde_json::from_value(json!({"metadata": {"name": "rostersync-sync"}}))?;
        create(&Api::namespaced(client.clone(), &ns), &pp, &sa).await?;
        let run_pods = i < self.pod_districts;
        if run_pods {
            // What a sync pod reads (as the district chart grants it).
            let role: Role = serde_json::from_value(json!({
                "metadata": {"name": "rostersync-sync"},
                "rules": [
                    {"apiGroups": ["rostersync.io"], "resources": ["rosterconnections", "journeypolicies"], "verbs": ["get"]},
                    {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}
                ]
            }))?;
            create(&Api::namespaced(client.clone(), &ns), &pp, &role).await?;
            let binding: RoleBinding = serde_json::from_value(json!({
                "metadata": {"name": "rostersync-sync"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "rostersync-sync"},
                "subjects": [{"kind": "ServiceAccount", "name": "rostersync-sync", "namespace": ns}]
            }))?;
            create(&Api::namespaced(client.clone(), &ns), &pp, &binding).await?;
        }
        let policy: crate::api::JourneyPolicy = serde_json::from_value(json!({
            "apiVersion": "rostersync.io/v1alpha1", "kind": "JourneyPolicy",
            "metadata": {"name": "journeys"},
            "spec": {"licensedProducts": ["Readiness"], "newChildJourney": "Readiness"}
        }))?;
        create(&Api::namespaced(client.clone(), &ns), &pp, &policy).await?;
        let conn: RosterConnection = serde_json::from_value(json!({
            "apiVersion": "rostersync.io/v1alpha1", "kind": "RosterConnection",
            "metadata": {"name": "district"},
            "spec": {"districtId": self.emulator.district_id(),
                     "apiBaseUrl": self.emulator.base_url().as_str().trim_end_matches('/'),
                     "credentialsSecretRef": {"name": "clever"},
                     "journeyPolicyRef": {"name": "journeys"}}
        }))?;
        create(&Api::namespaced(client.clone(), &ns), &pp, &conn).await?;
        let slot = if i < self.slot_districts {
            self.slot
        } else {
            self.slot + jiff::SignedDuration::from_hours(24)
        };
        let sched: SyncSchedule = serde_json::from_value(json!({
            "apiVersion": "rostersync.io/v1alpha1", "kind": "SyncSchedule",
            "metadata": {"name": SCHEDULE},
            "spec": schedule_spec(slot, run_pods)
        }))?;
        create(&Api::namespaced(client.clone(), &ns), &pp, &sched).await?;
        Ok(())
    }

    /// Waits until the first `size` districts' namespaces have their `default` ServiceAccount.
    async fn wait_default_service_accounts(
        &self,
        size: usize,
        timeout: Duration,
    ) -> anyhow::Result<()> {
        let api = Api::<ServiceAccount>::all(self.client.clone());
        let lp = ListParams::default().fields("metadata.name=default");
        let deadline = Instant::now() + timeout;
        loop {
            let have = api
                .list_metadata(&lp)
                .await
                .context("listing the default ServiceAccounts")?
                .items
                .iter()
                .filter(|sa| {
                    sa.namespace()
                        .is_some_and(|ns| ns.starts_with(&self.prefix))
                })
                .count();
            if have >= size {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!("{have}/{size} district namespaces have their default ServiceAccount");
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    async fn delete_districts(&self) {
        let api = Api::<Namespace>::all(self.client.clone());
        let lp = ListParams::default().labels(&format!("rostersync.io/bench={}", self.prefix));
        // Namespaces have no deletecollection (405): one DELETE each, a few at a time.
        let names = match api.list_metadata(&lp).await {
            Ok(list) => list
                .items
                .into_iter()
                .map(|n| n.name_any())
                .collect::<Vec<_>>(),
            Err(err) => {
                eprintln!("bench scale: cannot list the districts' namespaces: {err}");
                return;
            }
        };
        let failed = futures::stream::iter(names)
            .map(|name| {
                let api = api.clone();
                async move { api.delete(&name, &Default::default()).await.err() }
            })
            .buffer_unordered(16)
            .filter_map(|err| async move { err })
            .count()
            .await;
        if failed > 0 {
            eprintln!("bench scale: {failed} districts' namespaces could not be deleted");
        }
        // The finalizers go with a controller running; a bounded wait.
        let deadline = Instant::now() + Duration::from_secs(300);
        while Instant::now() < deadline {
            match self.connections().await {
                Ok(c) if c.is_empty() => return,
                _ => tokio::time::sleep(Duration::from_secs(2)).await,
            }
        }
        eprintln!("bench scale: some districts were still being offboarded after 300 s");
    }

    async fn connections(&self) -> anyhow::Result<Vec<RosterConnection>> {
        let api: Api<RosterConnection> = Api::all(self.client.clone());
        let list = api
            .list(&ListParams::default())
            .await
            .context("cannot list RosterConnections")?;
        Ok(list
            .items
            .into_iter()
            .filter(|c| c.namespace().is_some_and(|ns| ns.starts_with(&self.prefix)))
            .collect())
    }

    async fn schedules(&self) -> anyhow::Result<Vec<SyncSchedule>> {
        let api: Api<SyncSchedule> = Api::all(self.client.clone());
        let list = api
            .list(&ListParams::default())
            .await
            .context("cannot list SyncSchedules")?;
        Ok(list
            .items
            .into_iter()
            .filter(|c| c.namespace().is_some_and(|ns| ns.starts_with(&self.prefix)))
            .collect())
    }

    /// Waits until every connection is Ready and every schedule's status is current
    /// (observedGeneration and nextSyncTime set by the controller).
    async fn wait_current(&self, size: usize, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let conns = self.connections().await?;
            let ready = conns.iter().filter(|c| readiness(c).0).count();
            let scheds = self.schedules().await?;
            let current = scheds
                .iter()
                .filter(|s| {
                    s.status.as_ref().is_some_and(|st| {
                        st.next_sync_time.is_some()
                            && st
                                .conditions
                                .iter()
                                .any(|c| c.observed_generation == s.metadata.generation)
                    })
                })
                .count();
            if ready >= size && current >= size {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!("{ready}/{size} connections Ready, {current}/{size} schedules current");
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    fn start_pod_runner(&self) -> anyhow::Result<tokio::process::Child> {
        let log = std::fs::File::create(self.logs.join("pod-runner.log"))?;
        let pods = self.logs.join("pods");
        tokio::process::Command::new(&self.exe)
            .arg("pod-runner")
            .arg("--selector")
            .arg("app.kubernetes.io/managed-by=rostersync,rostersync-bench-pods=run")
            .arg("--binary")
            .arg(format!("rostersync={}", self.exe.display()))
            .arg("--log-dir")
            .arg(&pods)
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .context("cannot start the pod runner")
    }

    fn start_controller(
        &self,
        args: &ScaleBenchArgs,
        offset: i64,
        extra: &[&str],
    ) -> anyhow::Result<tokio::process::Child> {
        let n = std::fs::read_dir(&self.logs).map_or(0, |d| d.count());
        let log = std::fs::File::create(self.logs.join(format!("controller-{n:02}.log")))?;
        let url = self.emulator.base_url();
        let host = format!(
            "{}:{}",
            url.host_str().unwrap_or("127.0.0.1"),
            url.port_or_known_default().unwrap_or(80)
        );
        let exe = args.controller_binary.as_ref().unwrap_or(&self.exe);
        let mut cmd = tokio::process::Command::new(exe);
        cmd.arg("controller")
            .arg("--metrics-addr=127.0.0.1:0")
            .arg("--sync-image=rostersync:bench")
            .arg(format!("--allowed-api-host={host}"))
            .arg(format!(
                "--verify-startup-jitter-seconds={}",
                args.verify_jitter_seconds
            ))
            .arg(format!("--clock-offset-seconds={offset}"))
            .arg(format!(
                "--slot-jitter-seconds={}",
                args.slot_jitter_seconds
            ))
            .args(&args.controller_args)
            .args(extra)
            .env("DATABASE_URL", &self.db_url)
            .env("RUST_LOG", "info")
            .env("ROSTERSYNC_LOG_FORMAT", "text")
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true);
        cmd.spawn().context("cannot start the controller")
    }

    /// The admin server's URL, from the controller's log line (it listens on a free port).
    async fn metrics_url_of(&self, controller: &tokio::process::Child) -> anyhow::Result<String> {
        let pid = controller.id().context("no pid")?;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            // The newest controller log is this one's.
            let mut logs: Vec<PathBuf> = std::fs::read_dir(&self.logs)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with("controller-"))
                })
                .collect();
            logs.sort();
            if let Some(log) = logs.last() {
                let text = std::fs::read_to_string(log).unwrap_or_default();
                if let Some(addr) = text
                    .lines()
                    .find(|l| l.contains("admin server listening"))
                    .and_then(|l| l.split("addr=").nth(1))
                    .and_then(|rest| rest.split_whitespace().next())
                {
                    return Ok(format!("http://{addr}/metrics"));
                }
            }
            if Instant::now() >= deadline || !std::path::Path::new(&format!("/proc/{pid}")).exists()
            {
                bail!(
                    "the controller (pid {pid}) did not report its admin address; see its log in {}",
                    self.logs.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

async fn create<K>(api: &Api<K>, pp: &PostParams, obj: &K) -> anyhow::Result<()>
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + Serialize
        + std::fmt::Debug,
{
    match api.create(pp, obj).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
        Err(err) => Err(anyhow::Error::new(err).context(format!(
            "cannot create {} {}",
            K::kind(&()),
            obj.name_any()
        ))),
    }
}

async fn install_crds(client: &Client) -> anyhow::Result<()> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in crate::api::crds() {
        let name = crd.name_any();
        api.patch(
            &name,
            &PatchParams::apply("rostersync-bench").force(),
            &Patch::Apply(&crd),
        )
        .await
        .with_context(|| format!("cannot apply CRD {name}"))?;
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let served = Api::<SyncSchedule>::all(client.clone())
            .list(&ListParams::default().limit(1))
            .await
            .is_ok()
            && Api::<RosterConnection>::all(client.clone())
                .list(&ListParams::default().limit(1))
                .await
                .is_ok();
        if served {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("the rostersync CRDs were not served within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Stops a child with SIGTERM (as Kubernetes would), then waits; SIGKILL after 30 s.
async fn stop(child: &mut tokio::process::Child) {
    if let Some(pid) = child.id() {
        let _ = std::process::Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status();
        if tokio::time::timeout(Duration::from_secs(30), child.wait())
            .await
            .is_ok()
        {
            return;
        }
    }
    child.start_kill().ok();
    child.wait().await.ok();
}

fn readiness(c: &RosterConnection) -> (bool, Option<jiff::Timestamp>) {
    let Some(st) = &c.status else {
        return (false, None);
    };
    let ready = st
        .conditions
        .iter()
        .any(|c| c.type_ == crate::api::condition::READY && c.status == "True")
        && st.observed_generation == c.metadata.generation;
    (ready, st.last_check_time.as_ref().map(|t| t.0))
}

/// `apiserver_request_total` summed by `VERB resource` (resource requests only: the bench's own
/// reads of /metrics are not counted).
async fn api_requests(client: &Client) -> anyhow::Result<HashMap<String, f64>> {
    let req = axum::http::Request::get("/metrics")
        .body(Vec::new())
        .context("request")?;
    let text = client
        .request_text(req)
        .await
        .context("cannot read the API server's /metrics")?;
    Ok(parse_request_totals(&text))
}

/// Parses `apiserver_request_total{...,resource="x",...,verb="GET"} 12` lines.
pub fn parse_request_totals(text: &str) -> HashMap<String, f64> {
    let mut out = HashMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("apiserver_request_total{") else {
            continue;
        };
        let Some((labels, value)) = rest.rsplit_once("} ") else {
            continue;
        };
        let Ok(value) = value.trim().parse::<f64>() else {
            continue;
        };
        let labels = parse_labels(labels);
        let resource = labels.get("resource").cloned().unwrap_or_default();
        if resource.is_empty() {
            continue;
        }
        let sub = labels.get("subresource").cloned().unwrap_or_default();
        let verb = labels.get("verb").cloned().unwrap_or_default();
        let key = if sub.is_empty() {
            format!("{verb} {resource}")
        } else {
            format!("{verb} {resource}/{sub}")
        };
        *out.entry(key).or_insert(0.0) += value;
    }
    out
}

fn parse_labels(s: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut rest = s;
    while let Some((name, after)) = rest.split_once("=\"") {
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = after.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, n)) = chars.next() {
                        value.push(n);
                    }
                }
                '"' => {
                    end = i + 1;
                    break;
                }
                c => value.push(c),
            }
        }
        out.insert(name.trim_start_matches(',').trim().to_string(), value);
        rest = &after[end..];
    }
    out
}

fn delta(after: &HashMap<String, f64>, before: &HashMap<String, f64>) -> HashMap<String, f64> {
    after
        .iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0.0)))
        .filter(|(_, v)| *v != 0.0)
        .collect()
}

/// A histogram read from the exposition text: cumulative counts by upper bound.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Hist {
    pub buckets: Vec<(f64, f64)>,
    pub count: f64,
}

impl Hist {
    fn minus(&self, other: &Hist) -> Hist {
        Hist {
            buckets: self
                .buckets
                .iter()
                .map(|(le, c)| {
                    let o = other
                        .buckets
                        .iter()
                        .find(|(l, _)| l == le)
                        .map_or(0.0, |(_, c)| *c);
                    (*le, c - o)
                })
                .collect(),
            count: self.count - other.count,
        }
    }

    /// The q-quantile, interpolated linearly within its bucket (as PromQL's
    /// histogram_quantile); the highest finite bound when it falls in +Inf.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.count <= 0.0 {
            return None;
        }
        let rank = q * self.count;
        let mut prev = (0.0, 0.0);
        for &(le, c) in &self.buckets {
            if c >= rank {
                if le.is_infinite() {
                    return Some(prev.0);
                }
                let width = c - prev.1;
                let frac = if width > 0.0 {
                    (rank - prev.1) / width
                } else {
                    1.0
                };
                return Some(prev.0 + (le - prev.0) * frac);
            }
            prev = (le, c);
        }
        Some(prev.0)
    }
}

/// The controller's /metrics, parsed as needed.
struct ControllerMetrics(String);

impl ControllerMetrics {
    fn histogram(&self, controller: &str) -> Hist {
        parse_histogram(
            &self.0,
            "rostersync_reconcile_duration_seconds",
            &format!("controller=\"{controller}\""),
        )
    }

    fn reconciles(&self, controller: &str) -> f64 {
        let label = format!("controller=\"{controller}\"");
        self.0
            .lines()
            .filter(|l| l.starts_with("rostersync_reconcile_total{") && l.contains(&label))
            .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
            .sum()
    }
}

/// Reads histogram `name` with the label `label` (`k="v"`) from exposition text.
pub fn parse_histogram(text: &str, name: &str, label: &str) -> Hist {
    let bucket = format!("{name}_bucket{{");
    let count = format!("{name}_count{{");
    let mut h = Hist::default();
    for line in text.lines() {
        if !line.contains(label) {
            continue;
        }
        let Some((_, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(value) = value.parse::<f64>() else {
            continue;
        };
        if let Some(rest) = line.strip_prefix(&bucket) {
            let labels = parse_labels(rest.split_once('}').map_or(rest, |(l, _)| l));
            let le = match labels.get("le").map(String::as_str) {
                Some("+Inf") => f64::INFINITY,
                Some(v) => v.parse().unwrap_or(f64::NAN),
                None => continue,
            };
            h.buckets.push((le, value));
        } else if line.starts_with(&count) {
            h.count = value;
        }
    }
    h.buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    h
}

async fn controller_metrics(url: &str) -> anyhow::Result<ControllerMetrics> {
    let text = reqwest::get(url)
        .await
        .with_context(|| format!("cannot read {url}"))?
        .text()
        .await?;
    Ok(ControllerMetrics(text))
}

fn cpu_ticks(pid: u32) -> anyhow::Result<(u64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("cannot read /proc/{pid}/stat (the controller exited?)"))?;
    parse_cpu_ticks(&stat).context("cannot parse /proc/PID/stat")
}

/// utime + stime (field 14 and 15) of /proc/PID/stat, and the start time (22).
pub fn parse_cpu_ticks(stat: &str) -> Option<(u64, u64)> {
    // The command name (field 2) may hold spaces: count from its closing parenthesis.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    let start: u64 = f.get(19)?.parse().ok()?;
    Some((utime + stime, start))
}

fn clk_tck() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100)
}

/// The largest number of `times` within any 1 s window.
pub fn peak_per_second(times: &[Instant]) -> usize {
    let mut sorted = times.to_vec();
    sorted.sort();
    let mut peak = 0;
    let mut start = 0;
    for end in 0..sorted.len() {
        while sorted[end].duration_since(sorted[start]) >= Duration::from_secs(1) {
            start += 1;
        }
        peak = peak.max(end - start + 1);
    }
    peak
}

/// The nearest-rank percentile of sorted values (NaN when empty).
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn ms(seconds: f64) -> f64 {
    round(seconds * 1000.0)
}

fn round(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn opt(x: Option<f64>) -> String {
    x.map_or("-".into(), |v| format!("{v:.1}"))
}

/// The readable table.
pub fn table(r: &ScaleReport) -> String {
    let mut out = String::new();
    out.push_str(
        "\nAt rest (one controller)\n\
         districts  ready_s  rss_mb  peak_mb  cpu_%  api_req/min  req/s/100  reconciles  conn_p50/p99_ms   sched_p50/p99_ms\n",
    );
    for f in &r.rest {
        let l = |k: &str| {
            f.reconcile_latency.get(k).map_or("-".into(), |l| {
                format!(
                    "{}/{}",
                    opt(l.p50_ms_since_start),
                    opt(l.p99_ms_since_start)
                )
            })
        };
        out.push_str(&format!(
            "{:>9}  {:>7.1}  {:>6.1}  {:>7.1}  {:>5.2}  {:>11.1}  {:>9.3}  {:>10}  {:>16}  {:>17}\n",
            f.districts,
            f.start_to_ready_seconds,
            f.rss_mb,
            f.peak_rss_mb,
            f.cpu_percent,
            f.api_requests_per_minute,
            f.api_requests_per_second_per_100_districts,
            f.reconciles_in_window,
            l("RosterConnection"),
            l("SyncSchedule"),
        ));
    }
    if let Some(s) = &r.restart {
        out.push_str(&format!(
            "\nRestart with {} districts (jitter {} s): every object reconciled after {:.1} s, every \
             connection verified again after {:.1} s; {} Clever lookups, peak {}/s, mean {:.1}/s; \
             {} not Ready seen; rss {:.1} MB (peak {:.1})\n",
            s.districts,
            s.verify_jitter_seconds,
            s.all_reconciled_seconds,
            s.all_verified_seconds,
            s.clever_lookups,
            s.clever_peak_per_second,
            s.clever_mean_per_second,
            s.not_ready_seen,
            s.rss_mb,
            s.peak_rss_mb
        ));
    }
    if let Some(s) = &r.slot {
        out.push_str(&format!(
            "\nSlot accuracy, {} of {} schedules in one minute (slot {} s after the start, jitter \
             window {} s): {} Jobs, {} missing; effective slot to Job p50 {:.2} s, p99 {:.2} s, max {:.2} s (creationTimestamp: p50 \
             {} s, p99 {} s, max {} s); peak rss {:.1} MB\n",
            s.districts,
            s.total_districts,
            s.lead_seconds,
            s.slot_jitter_seconds,
            s.jobs,
            s.missing,
            s.p50_seconds,
            s.p99_seconds,
            s.max_seconds,
            s.p50_seconds_by_creation_timestamp,
            s.p99_seconds_by_creation_timestamp,
            s.max_seconds_by_creation_timestamp,
            s.peak_rss_mb
        ));
    }
    out.push_str(&format!(
        "\nload average at the end: {} ({} cores)\n",
        r.load_average, r.cores
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_totals_sum_by_verb_and_resource_and_skip_non_resource_urls() {
        let text = "\
# HELP apiserver_request_total x
apiserver_request_total{code=\"200\",component=\"apiserver\",dry_run=\"\",group=\"\",resource=\"secrets\",scope=\"resource\",subresource=\"\",verb=\"GET\",version=\"v1\"} 7
apiserver_request_total{code=\"404\",component=\"apiserver\",dry_run=\"\",group=\"\",resource=\"secrets\",scope=\"resource\",subresource=\"\",verb=\"GET\",version=\"v1\"} 3
apiserver_request_total{code=\"200\",component=\"apiserver\",dry_run=\"\",group=\"rostersync.io\",resource=\"rosterconnections\",scope=\"resource\",subresource=\"status\",verb=\"PATCH\",version=\"v1alpha1\"} 2
apiserver_request_total{code=\"200\",component=\"\",dry_run=\"\",group=\"\",resource=\"\",scope=\"\",subresource=\"/metrics\",verb=\"GET\",version=\"\"} 9
";
        let t = parse_request_totals(text);
        assert_eq!(t.get("GET secrets"), Some(&10.0));
        assert_eq!(t.get("PATCH rosterconnections/status"), Some(&2.0));
        assert_eq!(t.len(), 2, "{t:?}");
    }

    #[test]
    fn histogram_quantiles_interpolate_within_buckets_and_subtract() {
        let text = "\
rostersync_reconcile_duration_seconds_bucket{controller=\"A\",le=\"0.01\"} 50
rostersync_reconcile_duration_seconds_bucket{controller=\"A\",le=\"0.1\"} 90
rostersync_reconcile_duration_seconds_bucket{controller=\"A\",le=\"+Inf\"} 100
rostersync_reconcile_duration_seconds_count{controller=\"A\"} 100
rostersync_reconcile_duration_seconds_bucket{controller=\"B\",le=\"0.01\"} 1
";
        let h = parse_histogram(
            text,
            "rostersync_reconcile_duration_seconds",
            "controller=\"A\"",
        );
        assert_eq!(h.count, 100.0);
        assert_eq!(h.buckets.len(), 3);
        assert_eq!(h.quantile(0.5), Some(0.01));
        let p = h.quantile(0.7).expect("p70");
        assert!((p - 0.055).abs() < 1e-9, "{p}");
        // In +Inf: the highest finite bound.
        assert_eq!(h.quantile(0.99), Some(0.1));
        let zero = h.minus(&h);
        assert_eq!(zero.quantile(0.5), None);
    }

    #[test]
    fn proc_stat_fields_are_counted_after_the_command_name() {
        let stat =
            "42 (tokio (x) y) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 9 0 12345 1000 200";
        assert_eq!(parse_cpu_ticks(stat), Some((300, 12345)));
    }

    #[test]
    fn peaks_and_percentiles() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        assert_eq!(
            peak_per_second(&[at(0), at(500), at(999), at(1000), at(1500)]),
            3
        );
        assert_eq!(peak_per_second(&[]), 0);
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), 50.0);
        assert_eq!(percentile(&v, 0.99), 99.0);
        assert!(percentile(&[], 0.5).is_nan());
    }
}
