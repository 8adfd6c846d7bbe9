//! `rostersync schedule preview`: the next slots of a SyncSchedule manifest, as a table or JSON.
//! Formatting is pure (tested in-process); only [`run`] reads the file and prints.
use std::path::{Path, PathBuf};

use jiff::{Timestamp, Zoned};

use super::jitter::{DEFAULT_SLOT_JITTER_SECONDS, MAX_SLOT_JITTER_SECONDS, format_offset};
use super::rule::{Cadence, ScheduleRule};
use super::window::format_hhmm;
use crate::api::SyncSchedule;

/// `rostersync schedule ...`
#[derive(Debug, clap::Subcommand)]
pub enum ScheduleCommand {
    /// Print the next slots of a SyncSchedule manifest (validating it like the controller does).
    Preview(PreviewArgs),
}

/// Arguments of `rostersync schedule preview`.
#[derive(Debug, clap::Args)]
pub struct PreviewArgs {
    /// The SyncSchedule manifest (YAML).
    #[arg(long, value_name = "SCHEDULE.yaml")]
    pub file: PathBuf,
    /// List the slots strictly after this instant (RFC 3339, e.g. 2026-03-01T00:00:00Z); default now.
    #[arg(long, value_name = "RFC3339")]
    pub from: Option<Timestamp>,
    /// How many slots to list.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub count: u16,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
    /// The operator's `--slot-jitter-seconds` (0 to 3600), used when the manifest has no
    /// `spec.slotJitterSeconds`: each slot is shown at its effective time, a fixed delay (a hash
    /// of the manifest's namespace and name) after `at`.
    #[arg(long, default_value_t = DEFAULT_SLOT_JITTER_SECONDS,
        value_parser = clap::value_parser!(u32).range(0..=i64::from(MAX_SLOT_JITTER_SECONDS)))]
    pub slot_jitter_seconds: u32,
}

/// Output format of `schedule preview`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    Table,
    Json,
}

/// Exit code of an invalid schedule, an unreadable file or an unknown time zone.
pub const EXIT_INVALID: u8 = 2;

/// Runs a `schedule` subcommand and returns the exit code.
pub async fn run(command: ScheduleCommand) -> anyhow::Result<u8> {
    match command {
        ScheduleCommand::Preview(args) => Ok(preview(&args)),
    }
}

fn preview(args: &PreviewArgs) -> u8 {
    let rule = match load_rule_with_jitter(&args.file, args.slot_jitter_seconds) {
        Ok(rule) => rule,
        Err(message) => {
            eprintln!("error: {message}");
            return EXIT_INVALID;
        }
    };
    let from = args.from.unwrap_or_else(Timestamp::now);
    let slots = preview_slots(&rule, from, usize::from(args.count));
    match args.output {
        OutputFormat::Table => print!("{}", render_table(&rule, &slots)),
        OutputFormat::Json => println!("{}", render_json(&rule, &slots)),
    }
    0
}

/// Reads and validates a SyncSchedule manifest; the error is a sentence for the user.
pub fn load_rule(path: &Path) -> Result<ScheduleRule, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|err| format!("cannot read {}: {err}", path.display()))?;
    parse_rule(&text).map_err(|err| format!("{}: {err}", path.display()))
}

/// [`load_rule`] with the schedule's jitter: `spec.slotJitterSeconds`, else `default_jitter`,
/// hashed with the manifest's `namespace/name` (namespace `default` when it has none).
pub fn load_rule_with_jitter(path: &Path, default_jitter: u32) -> Result<ScheduleRule, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|err| format!("cannot read {}: {err}", path.display()))?;
    parse_rule_with_jitter(&text, default_jitter)
        .map_err(|err| format!("{}: {err}", path.display()))
}

/// [`parse_rule`] with the schedule's jitter (see [`load_rule_with_jitter`]).
pub fn parse_rule_with_jitter(yaml: &str, default_jitter: u32) -> Result<ScheduleRule, String> {
    let schedule = parse_schedule(yaml)?;
    let ns = schedule.metadata.namespace.as_deref().unwrap_or("default");
    let name = schedule.metadata.name.as_deref().unwrap_or_default();
    ScheduleRule::for_schedule(&schedule.spec, &format!("{ns}/{name}"), default_jitter)
        .map_err(|err| format!("invalid schedule: {err}"))
}

/// Parses and validates the YAML of a SyncSchedule manifest (slots without jitter).
pub fn parse_rule(yaml: &str) -> Result<ScheduleRule, String> {
    let schedule = parse_schedule(yaml)?;
    ScheduleRule::from_spec(&schedule.spec).map_err(|err| format!("invalid schedule: {err}"))
}

fn parse_schedule(yaml: &str) -> Result<SyncSchedule, String> {
    let value: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(yaml).map_err(|err| format!("not valid YAML: {err}"))?;
    match value.get("kind").and_then(|kind| kind.as_str()) {
        Some("SyncSchedule") | None => {}
        Some(kind) => return Err(format!("kind is {kind:?}, expected SyncSchedule")),
    }
    serde_yaml_ng::from_value(value)
        .map_err(|err| format!("not a valid SyncSchedule manifest: {err}"))
}

/// The next `count` slots strictly after `from`, each with its local reading in the zone.
pub fn preview_slots(rule: &ScheduleRule, from: Timestamp, count: usize) -> Vec<Zoned> {
    rule.slots_after(from)
        .take(count)
        .map(|slot| slot.to_zoned(rule.time_zone().clone()))
        .collect()
}

/// RFC 3339 with the zone's offset, e.g. `2026-03-08T03:00:00-05:00`.
pub fn local_rfc3339(slot: &Zoned) -> String {
    slot.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string()
}

/// How a slot reads next to its nominal time when jitter moved it: `22:00 +2m37s` (`None`
/// without jitter).
pub fn jitter_note(rule: &ScheduleRule, slot: &Zoned) -> Option<String> {
    let offset = rule.slot_offset(slot.timestamp());
    if rule.jitter().is_zero() {
        return None;
    }
    let nominal = slot.timestamp().checked_sub(offset).ok()?;
    let nominal = nominal.to_zoned(rule.time_zone().clone()).time();
    Some(format!(
        "{} {}",
        format_hhmm(nominal),
        format_offset(offset)
    ))
}

/// A JSON array of `{"utc": ..., "local": ..., "zone": ...}`, with `"jitter": "+2m37s"` (the
/// delay after the nominal time) when the schedule has jitter.
pub fn render_json(rule: &ScheduleRule, slots: &[Zoned]) -> String {
    #[derive(serde::Serialize)]
    struct Item<'a> {
        utc: String,
        local: String,
        zone: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        jitter: Option<String>,
    }
    let items: Vec<Item<'_>> = slots
        .iter()
        .map(|slot| Item {
            utc: slot.timestamp().to_string(),
            local: local_rfc3339(slot),
            zone: rule.time_zone_name(),
            jitter: (!rule.jitter().is_zero())
                .then(|| format_offset(rule.slot_offset(slot.timestamp()))),
        })
        .collect();
    // Serializing strings into a Vec cannot fail; an empty array is the fallback all the same.
    serde_json::to_string(&items).unwrap_or_else(|_| "[]".to_string())
}

/// A table with a header line describing the schedule, and a note on slots moved by DST.
pub fn render_table(rule: &ScheduleRule, slots: &[Zoned]) -> String {
    let window = match rule.cadence() {
        Cadence::Daily => format!(", off-peak window {}", rule.off_peak_window()),
        Cadence::Weekly(_) | Cadence::Monthly(_) => String::new(),
    };
    let jitter = if rule.jitter().is_zero() {
        String::new()
    } else {
        format!(", jitter {}", format_offset(rule.jitter()))
    };
    let mut out = format!(
        "{} at {} in {}{window}, starting deadline {} min{jitter}\n",
        rule.cadence(),
        format_hhmm(rule.at()),
        rule.time_zone_name(),
        rule.starting_deadline().as_mins(),
    );
    out.push_str("UTC                    LOCAL                       DAY  NOTE\n");
    for slot in slots {
        let offset = rule.slot_offset(slot.timestamp());
        let nominal = slot
            .timestamp()
            .checked_sub(offset)
            .map_or(slot.time(), |t| t.to_zoned(rule.time_zone().clone()).time());
        let mut notes = Vec::new();
        if let Some(j) = jitter_note(rule, slot) {
            notes.push(j);
        }
        if nominal != rule.at() {
            notes.push("moved by a DST gap: runs right after it".to_string());
        }
        let note = notes.join("; ");
        let utc = slot.timestamp().to_string();
        let line = format!(
            "{utc:<22} {:<27} {:<4} {note}",
            local_rfc3339(slot),
            slot.strftime("%a").to_string()
        );
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}
