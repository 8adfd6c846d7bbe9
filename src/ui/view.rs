//! The pages' view models (times and words ready to print), the inline SVG chart and the CSV of
//! problems. Pure: everything here is computed from the JSON models and `now`.
use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde::Serialize;

use super::data::{DistrictDetailJson, DistrictJson, ProblemJson, RunJson, ScheduleJson};
use crate::api::RunResult;
use crate::output::{format_duration, relative};

/// `Thu 30 Nov 22:00 CST (in 3h)`, in `tz` (the schedule's time zone, else UTC).
pub fn when(t: Timestamp, now: Timestamp, tz: &TimeZone) -> String {
    let abs = t.to_zoned(tz.clone()).strftime("%a %-d %b %Y %H:%M %Z");
    format!("{abs} ({})", relative(t, now))
}

/// The zone a district's times are shown in: its first schedule's, else UTC.
pub fn zone_of(schedules: &[ScheduleJson]) -> TimeZone {
    schedules
        .iter()
        .find_map(|s| s.time_zone.as_deref())
        .and_then(|z| TimeZone::get(z).ok())
        .unwrap_or(TimeZone::UTC)
}

/// Sync Now in the district admin's words.
pub fn sync_now_words(s: &ScheduleJson, now: Timestamp, tz: &TimeZone) -> String {
    let Some(n) = &s.sync_now else {
        return "Sync Now: not known yet (the controller has not looked at this schedule)".into();
    };
    if n.available {
        return "Sync Now available".into();
    }
    match (n.reason.as_str(), n.available_after) {
        (_, Some(t)) => format!(
            "Sync Now available after {} ({})",
            t.to_zoned(tz.clone()).strftime("%H:%M %a"),
            relative(t, now)
        ),
        ("RunActive", None) => {
            "A sync is running: Sync Now is available again when it finishes".into()
        }
        ("ConnectionNotReady", None) => {
            "Sync Now is not available until the connection is fixed (see its state)".into()
        }
        (reason, None) => format!("Sync Now is not available ({reason})"),
    }
}

/// A run as a table row.
#[derive(Clone, Debug, Serialize)]
pub struct RunRow {
    pub run_id: String,
    pub result: String,
    pub result_class: &'static str,
    pub trigger: String,
    pub started: String,
    pub duration: String,
    pub children: String,
    pub classrooms: String,
    pub problems: String,
    pub reason: String,
    pub summary: String,
    pub dry_run: bool,
}

/// Children (or classrooms) in the roster after a run: every record it kept.
fn present(c: &crate::run::EntityCounts) -> u64 {
    c.created + c.updated + c.unchanged + c.reactivated + c.carried_over + c.matched
}

fn result_class(r: RunResult) -> &'static str {
    match r {
        RunResult::Succeeded => "ok",
        RunResult::Held => "held",
        RunResult::Failed => "failed",
        RunResult::Running => "running",
    }
}

pub fn run_row(r: &RunJson, now: Timestamp, tz: &TimeZone) -> RunRow {
    let rec = &r.record;
    let has_counts = !rec.counts.is_empty();
    let problems = rec
        .problem_codes
        .iter()
        .map(|(code, n)| format!("{n} {code}"))
        .collect::<Vec<_>>()
        .join(", ");
    RunRow {
        run_id: rec.run_id.clone(),
        result: rec.result.as_str().to_string(),
        result_class: result_class(rec.result),
        trigger: rec.trigger.as_str().to_string(),
        started: when(rec.started_at, now, tz),
        duration: rec
            .duration_ms
            .map(|ms| format_duration(i64::try_from(ms / 1000).unwrap_or(i64::MAX)))
            .unwrap_or_else(|| "-".into()),
        children: if has_counts {
            present(&rec.counts.children).to_string()
        } else {
            "-".into()
        },
        classrooms: if has_counts {
            present(&rec.counts.classrooms).to_string()
        } else {
            "-".into()
        },
        problems: if rec.problems == 0 {
            "0".into()
        } else {
            format!("{} ({problems})", rec.problems)
        },
        reason: rec.reason.clone().unwrap_or_default(),
        summary: r.summary.clone(),
        dry_run: rec.dry_run,
    }
}

/// A schedule as printed.
#[derive(Clone, Debug, Serialize)]
pub struct ScheduleView {
    pub name: String,
    pub description: String,
    pub suspended: bool,
    pub next_sync: String,
    pub sync_now: String,
    pub sync_now_available: bool,
    pub sync_now_command: Option<String>,
    pub health: String,
}

pub fn schedule_view(s: &ScheduleJson, now: Timestamp, tz: &TimeZone) -> ScheduleView {
    ScheduleView {
        name: s.name.clone(),
        description: s.description.clone(),
        suspended: s.suspended,
        next_sync: match (s.suspended, s.next_sync) {
            (true, _) => "none: scheduled syncs are suspended".into(),
            (false, Some(t)) => when(t, now, tz),
            (false, None) => "-".into(),
        },
        sync_now: sync_now_words(s, now, tz),
        sync_now_available: s.sync_now.as_ref().is_some_and(|n| n.available),
        sync_now_command: s.sync_now.as_ref().map(|n| n.command.clone()),
        health: s.health.clone(),
    }
}

/// A district on the overview, as printed.
#[derive(Clone, Debug, Serialize)]
pub struct DistrictView {
    pub namespace: String,
    pub name: String,
    pub href: String,
    pub district_id: String,
    pub district_name: Option<String>,
    pub health: String,
    pub health_ok: bool,
    pub health_words: String,
    pub last_run: Option<RunRow>,
    pub schedules: Vec<ScheduleView>,
}

pub fn district_view(d: &DistrictJson, now: Timestamp) -> DistrictView {
    let tz = zone_of(&d.schedules);
    DistrictView {
        namespace: d.namespace.clone(),
        name: d.name.clone(),
        href: format!("/districts/{}/{}", d.namespace, d.name),
        district_id: d.district_id.clone(),
        district_name: d.district_name.clone(),
        health_ok: d.health == "Ready",
        health: d.health.clone(),
        health_words: d.health_words.clone(),
        last_run: d.last_run.as_ref().map(|r| run_row(r, now, &tz)),
        schedules: d
            .schedules
            .iter()
            .map(|s| schedule_view(s, now, &tz))
            .collect(),
    }
}

/// A condition as printed.
#[derive(Clone, Debug, Serialize)]
pub struct ConditionView {
    pub type_: String,
    pub ok: bool,
    pub words: String,
    pub reason: String,
    pub since: String,
}

/// The district page, as printed.
#[derive(Clone, Debug, Serialize)]
pub struct DetailView {
    pub district: DistrictView,
    pub conditions: Vec<ConditionView>,
    pub runs: Vec<RunRow>,
    pub chart: String,
    pub held: Option<super::data::HeldJson>,
    pub problems_run_id: Option<String>,
    pub problems: Vec<ProblemJson>,
    pub csv_href: String,
}

pub fn detail_view(d: &DistrictDetailJson, now: Timestamp) -> DetailView {
    let tz = zone_of(&d.district.schedules);
    let mut conditions: Vec<ConditionView> = d
        .conditions
        .iter()
        .chain(
            d.district
                .schedules
                .iter()
                .flat_map(|s| s.conditions.iter()),
        )
        // Sync Now has its own line, in words, under Schedule.
        .filter(|c| c.type_ != crate::api::condition::SYNC_NOW_AVAILABLE)
        .map(|c| ConditionView {
            type_: c.type_.clone(),
            ok: (c.status == "True") != (c.type_ == crate::api::condition::SUSPENDED),
            words: c.words.clone(),
            reason: c.reason.clone(),
            since: when(c.since, now, &tz),
        })
        .collect();
    conditions.dedup_by(|a, b| a.type_ == b.type_ && a.words == b.words);
    DetailView {
        district: district_view(&d.district, now),
        conditions,
        runs: d.runs.iter().map(|r| run_row(r, now, &tz)).collect(),
        chart: chart_svg(&d.runs),
        held: d.held.clone(),
        problems_run_id: d.problems_run_id.clone(),
        problems: d.problems.clone(),
        csv_href: format!(
            "/districts/{}/{}/problems.csv",
            d.district.namespace, d.district.name
        ),
    }
}

/// A small line chart of children and classrooms in the roster after each run that applied
/// (oldest left), as inline SVG. Only numbers go into it.
pub fn chart_svg(runs: &[RunJson]) -> String {
    let points: Vec<(u64, u64)> = runs
        .iter()
        .rev()
        .filter(|r| r.record.result == RunResult::Succeeded && !r.record.counts.is_empty())
        .map(|r| {
            (
                present(&r.record.counts.children),
                present(&r.record.counts.classrooms),
            )
        })
        .collect();
    if points.is_empty() {
        return String::new();
    }
    let (w, h, pad) = (600.0_f64, 160.0_f64, 30.0_f64);
    let max = points
        .iter()
        .map(|(c, k)| (*c).max(*k))
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let step = if points.len() > 1 {
        (w - 2.0 * pad) / (points.len() - 1) as f64
    } else {
        0.0
    };
    let line = |pick: fn(&(u64, u64)) -> u64| -> String {
        points
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let x = pad + step * i as f64;
                let y = h - pad - (pick(p) as f64 / max) * (h - 2.0 * pad);
                format!("{x:.1},{y:.1}")
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    let last = points.last().copied().unwrap_or_default();
    format!(
        concat!(
            r##"<svg class="chart" viewBox="0 0 {w} {h}" role="img" aria-label="children and classrooms over the last {n} successful runs" xmlns="http://www.w3.org/2000/svg">"##,
            r##"<line x1="{pad}" y1="{base}" x2="{right}" y2="{base}" stroke="#999"/>"##,
            r##"<text x="2" y="{top}" font-size="11">{max}</text><text x="2" y="{base}" font-size="11">0</text>"##,
            r##"<polyline fill="none" stroke="#1a6" stroke-width="2" points="{children}"/>"##,
            r##"<polyline fill="none" stroke="#36c" stroke-width="2" points="{classrooms}"/>"##,
            r##"<text x="{pad}" y="14" font-size="12" fill="#1a6">children ({lc})</text>"##,
            r##"<text x="200" y="14" font-size="12" fill="#36c">classrooms ({lk})</text>"##,
            "</svg>"
        ),
        w = w,
        h = h,
        n = points.len(),
        pad = pad,
        base = h - pad,
        right = w - pad,
        top = pad + 4.0,
        max = max as u64,
        children = line(|p| p.0),
        classrooms = line(|p| p.1),
        lc = last.0,
        lk = last.1,
    )
}

/// The problems of run `run_id` as CSV (ids, codes, messages, what to do).
pub fn problems_csv(run_id: &str, problems: &[ProblemJson]) -> String {
    let mut out = String::from("run_id,record_kind,clever_id,code,message,what_to_do\r\n");
    for p in problems {
        let row = [
            run_id,
            p.problem.record_kind.as_str(),
            p.problem.clever_id.as_deref().unwrap_or(""),
            p.problem.code.as_str(),
            p.problem.message.as_str(),
            p.what_to_do.as_str(),
        ];
        out.push_str(
            &row.iter()
                .map(|f| crate::output::csv_field(f))
                .collect::<Vec<_>>()
                .join(","),
        );
        out.push_str("\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::csv_field;

    #[test]
    fn csv_fields_are_quoted_and_formulas_defused() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("=1+1"), "'=1+1");
    }

    #[test]
    fn times_read_in_the_schedules_zone_with_a_relative_part() {
        let now: Timestamp = "2026-11-26T22:00:00Z".parse().expect("ts");
        let t: Timestamp = "2026-11-27T04:00:00Z".parse().expect("ts");
        let tz = TimeZone::get("America/Chicago").expect("tz");
        assert_eq!(when(t, now, &tz), "Thu 26 Nov 2026 22:00 CST (in 6h)");
    }

    #[test]
    fn an_empty_history_draws_no_chart() {
        assert_eq!(chart_svg(&[]), "");
    }
}
