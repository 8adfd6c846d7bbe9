//! How the admin verbs' rows print through the shared output module ([`crate::output`]): each row
//! type's columns and cells. Ids, codes and counts only: never a name or a birth date.
use crate::output::{Cell, Column, OutputFormat, Printer, TableRow, Tone};
use crate::store::journeys::{JourneyChangeOutcome, JourneyChangeRow, RevertOutcome};
use crate::store::matching::{LinkOutcome, MatchRow, RecordKind};
use crate::store::problems::ProblemRow;
use crate::store::rollover::RolloverOutcome;

fn opt<T: ToString>(v: &Option<T>) -> Cell {
    Cell::text(v.as_ref().map(ToString::to_string).unwrap_or_default())
}

fn kind(k: RecordKind) -> Cell {
    Cell::text(match k {
        RecordKind::Child => "child",
        RecordKind::Educator => "educator",
    })
}

fn yes_no(b: bool) -> Cell {
    Cell::text(if b { "yes" } else { "no" })
}

impl TableRow for ProblemRow {
    const KIND: &'static str = "Problem";
    const COLUMNS: &'static [Column] = &[
        Column::new("CODE"),
        Column::new("KIND"),
        Column::new("CLEVER ID"),
        Column::new("WHAT TO DO"),
        Column::wide("MESSAGE"),
        Column::wide("RUN ID"),
    ];
    fn cells(&self) -> Vec<Cell> {
        vec![
            Cell::status(&self.code, Tone::Warn),
            Cell::text(&self.record_kind),
            opt(&self.clever_id),
            Cell::text(&self.what_to_do),
            Cell::text(&self.message),
            Cell::text(&self.run_id),
        ]
    }
}

impl TableRow for MatchRow {
    const KIND: &'static str = "Match";
    const COLUMNS: &'static [Column] = &[
        Column::new("KIND"),
        Column::new("STATUS"),
        Column::new("CLEVER ID"),
        Column::new("ID"),
        Column::new("CANDIDATES"),
    ];
    fn cells(&self) -> Vec<Cell> {
        vec![
            kind(self.kind),
            Cell::status(&self.status, Tone::Warn),
            opt(&self.clever_id),
            opt(&self.id),
            Cell::text(&self.candidates),
        ]
    }
}

impl TableRow for LinkOutcome {
    const KIND: &'static str = "Link";
    const COLUMNS: &'static [Column] = &[
        Column::new("ACTION"),
        Column::new("KIND"),
        Column::new("CLEVER ID"),
        Column::new("ID"),
        Column::new("MERGED DUPLICATE"),
        Column::new("DRY RUN"),
    ];
    fn cells(&self) -> Vec<Cell> {
        vec![
            Cell::text(&self.action),
            kind(self.kind),
            Cell::text(&self.clever_id),
            Cell::text(self.id.to_string()),
            opt(&self.merged_duplicate),
            yes_no(self.dry_run),
        ]
    }
}

impl TableRow for JourneyChangeOutcome {
    const KIND: &'static str = "JourneyChange";
    const COLUMNS: &'static [Column] = &[
        Column::new("CHANGE ID"),
        Column::new("SELECTOR"),
        Column::new("JOURNEY"),
        Column::new("CHILDREN"),
        Column::new("UNCHANGED"),
        Column::new("SAMPLE IDS"),
        Column::new("DRY RUN"),
    ];
    fn cells(&self) -> Vec<Cell> {
        let sample: Vec<String> = self.sample_ids.iter().map(ToString::to_string).collect();
        vec![
            opt(&self.change_id),
            Cell::text(&self.selector),
            Cell::text(&self.journey),
            Cell::text(self.children.to_string()),
            Cell::text(self.unchanged.to_string()),
            Cell::text(sample.join(" ")),
            yes_no(self.dry_run),
        ]
    }
}

impl TableRow for JourneyChangeRow {
    const KIND: &'static str = "JourneyChangeRecord";
    const COLUMNS: &'static [Column] = &[
        Column::new("ID"),
        Column::new("CHANGED"),
        Column::new("BY"),
        Column::new("SELECTOR"),
        Column::new("JOURNEY"),
        Column::new("CHILDREN"),
        Column::new("REVERTED"),
        Column::wide("REVERTED BY"),
    ];
    fn cells(&self) -> Vec<Cell> {
        vec![
            Cell::text(self.id.to_string()),
            Cell::time(self.changed_at),
            Cell::text(&self.changed_by),
            Cell::text(&self.selector),
            opt(&self.journey),
            Cell::text(self.children.to_string()),
            Cell::time(self.reverted_at),
            opt(&self.reverted_by),
        ]
    }
}

impl TableRow for RevertOutcome {
    const KIND: &'static str = "JourneyRevert";
    const COLUMNS: &'static [Column] = &[
        Column::new("CHANGE ID"),
        Column::new("RESTORED"),
        Column::new("SKIPPED"),
        Column::new("DRY RUN"),
    ];
    fn cells(&self) -> Vec<Cell> {
        vec![
            Cell::text(self.change_id.to_string()),
            Cell::text(self.restored.to_string()),
            Cell::text(self.skipped.to_string()),
            yes_no(self.dry_run),
        ]
    }
}

impl TableRow for RolloverOutcome {
    const KIND: &'static str = "Rollover";
    const COLUMNS: &'static [Column] = &[
        Column::new("SCHOOL YEAR"),
        Column::new("CHILDREN"),
        Column::new("ENROLLMENTS"),
        Column::new("ALREADY DONE"),
        Column::new("DRY RUN"),
    ];
    fn cells(&self) -> Vec<Cell> {
        vec![
            Cell::text(&self.school_year),
            Cell::text(self.children.to_string()),
            Cell::text(self.enrollments.to_string()),
            yes_no(self.already_done),
            yes_no(self.dry_run),
        ]
    }
}

/// Prints rows (a table says `empty` on stderr when there are none).
pub fn rows<R: TableRow>(
    rows: &[R],
    format: OutputFormat,
    utc: bool,
    empty: &str,
) -> anyhow::Result<()> {
    Printer::new(format, utc).print(rows)?;
    if rows.is_empty() && !format.is_machine() {
        eprintln!("{empty}");
    }
    Ok(())
}

/// Prints one outcome: a one-row table (or CSV), or the object itself as JSON/YAML.
pub fn one<R: TableRow>(row: &R, format: OutputFormat, utc: bool) -> anyhow::Result<()> {
    let printer = Printer::new(format, utc);
    match format {
        OutputFormat::Json | OutputFormat::Yaml => print!("{}", printer.render_doc(row)?),
        _ => printer.print(std::slice::from_ref(row))?,
    }
    Ok(())
}
