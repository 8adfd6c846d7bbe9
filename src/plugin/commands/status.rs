//! `kubectl roster status`: one table across RosterConnections, SyncSchedules and JourneyPolicies;
//! `--watch` prints it again on every change.
use anyhow::{Context as _, bail};
use futures::StreamExt as _;
use kube::api::ListParams;
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Api, Client, ResourceExt};

use super::Ctx;
use crate::api::{JourneyPolicy, RosterConnection, SyncSchedule};
use crate::output::{OutputFormat, TimePolicy};
use crate::plugin::format::{StatusRow, not_ready_notes, status_rows};

fn api<K>(client: &Client, ns: &str, all: bool) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    <K as kube::Resource>::DynamicType: Default,
{
    if all {
        Api::all(client.clone())
    } else {
        Api::namespaced(client.clone(), ns)
    }
}

/// The rows of the objects `name` selects (all without a name).
async fn rows(
    client: &Client,
    ns: &str,
    name: Option<&str>,
    all: bool,
    time: &TimePolicy,
) -> anyhow::Result<Vec<StatusRow>> {
    let lp = ListParams::default();
    let keep = |n: String| name.is_none_or(|want| want == n);
    let mut connections = api::<RosterConnection>(client, ns, all)
        .list(&lp)
        .await
        .context("cannot list RosterConnections (are the rostersync CRDs installed?)")?
        .items;
    connections.retain(|o| keep(o.name_any()));
    let mut schedules = api::<SyncSchedule>(client, ns, all)
        .list(&lp)
        .await
        .context("cannot list SyncSchedules")?
        .items;
    // With a NAME, a connection's schedules come along (they may be named differently).
    schedules.retain(|o| {
        keep(o.name_any())
            || name.is_some_and(|n| {
                o.spec.connection_ref.name == n
                    && connections
                        .iter()
                        .any(|c| c.namespace() == o.namespace() && c.name_any() == n)
            })
    });
    let mut policies = api::<JourneyPolicy>(client, ns, all)
        .list(&lp)
        .await
        .context("cannot list JourneyPolicies")?
        .items;
    policies.retain(|o| keep(o.name_any()));
    if let Some(name) = name
        && connections.is_empty()
        && schedules.is_empty()
        && policies.is_empty()
    {
        bail!(
            "no RosterConnection, SyncSchedule or JourneyPolicy named {name:?} in namespace {ns}"
        );
    }
    Ok(status_rows(&connections, &schedules, &policies, time))
}

/// The status output in `format` (tables with the not-ready notes below them).
fn render(
    ctx: &Ctx,
    format: OutputFormat,
    rows: &[StatusRow],
    all: bool,
) -> anyhow::Result<String> {
    let mut printer = ctx.printer(format);
    if !all {
        printer = printer.hide("NAMESPACE");
    }
    if rows.is_empty() && !format.is_machine() {
        return Ok("No rostersync objects found.\n".to_string());
    }
    let mut out = printer.render(rows)?;
    if !format.is_machine() {
        out.push_str(&not_ready_notes(rows));
    }
    Ok(out)
}

pub async fn status(
    ctx: &Ctx,
    name: Option<&str>,
    all: bool,
    watch: bool,
    format: OutputFormat,
) -> anyhow::Result<u8> {
    let time = ctx.printer(format).time;
    let first = rows(&ctx.client, &ctx.ns, name, all, &time).await?;
    let mut last = render(ctx, format, &first, all)?;
    print!("{last}");
    if !watch {
        return Ok(0);
    }
    // Any change of the three kinds: list again and print when the output changed.
    let cfg = watcher::Config::default();
    let changes = futures::stream::select_all([
        watcher(
            api::<RosterConnection>(&ctx.client, &ctx.ns, all),
            cfg.clone(),
        )
        .default_backoff()
        .map(|e| e.map(|_| ()))
        .boxed(),
        watcher(api::<SyncSchedule>(&ctx.client, &ctx.ns, all), cfg.clone())
            .default_backoff()
            .map(|e| e.map(|_| ()))
            .boxed(),
        watcher(api::<JourneyPolicy>(&ctx.client, &ctx.ns, all), cfg)
            .default_backoff()
            .map(|e| e.map(|_| ()))
            .boxed(),
    ]);
    tokio::pin!(changes);
    while let Some(change) = changes.next().await {
        if let Err(err) = change {
            eprintln!("note: watch interrupted ({err}); retrying");
            continue;
        }
        let time = TimePolicy::new(ctx.global.utc);
        let rows = match rows(&ctx.client, &ctx.ns, name, all, &time).await {
            Ok(rows) => rows,
            Err(err) => {
                eprintln!("note: {err:#}");
                continue;
            }
        };
        let out = render(ctx, format, &rows, all)?;
        if out != last {
            if !format.is_machine() {
                println!();
            }
            print!("{out}");
            use std::io::Write as _;
            let _ = std::io::stdout().flush();
            last = out;
        }
    }
    Ok(0)
}
