//! What both binaries print: one table printer, one time-format policy, colour rules and the
//! exit-code contract ([`exit`]).
//!
//! A command describes its rows once, as a `Serialize` struct implementing [`TableRow`] (the
//! columns and each row's cells), and prints them with [`Printer::print`] (or [`print`]) in any
//! [`OutputFormat`]:
//!
//! - `table`: the columns not marked wide, relative times (`5m ago`), colour on a TTY;
//! - `wide`: every column, absolute RFC 3339 times in the viewer's zone (UTC with `--utc`);
//! - `json` / `yaml`: `{"apiVersion": "cli.rostersync.io/v1", "kind": "<Kind>List", "items": [...]}`
//!   with the rows as serialized (camelCase, RFC 3339 UTC times): a stable, documented shape;
//! - `csv`: the wide columns, RFC 3339 UTC times, RFC 4180 quoting.
//!
//! ```
//! use rostersync::output::{Cell, Column, OutputFormat, Printer, TableRow, TimePolicy};
//! #[derive(serde::Serialize)]
//! struct Slot { at: jiff::Timestamp, note: String }
//! impl TableRow for Slot {
//!     const KIND: &'static str = "Slot";
//!     const COLUMNS: &'static [Column] = &[Column::new("AT"), Column::wide("NOTE")];
//!     fn cells(&self) -> Vec<Cell> { vec![Cell::time(self.at), Cell::text(&self.note)] }
//! }
//! let now: jiff::Timestamp = "2026-01-05T10:00:00Z".parse().unwrap();
//! let printer = Printer::plain(OutputFormat::Table, TimePolicy::utc_at(now));
//! let rows = [Slot { at: "2026-01-05T12:00:00Z".parse().unwrap(), note: "x".into() }];
//! assert_eq!(printer.render(&rows).unwrap(), "AT\nin 2h\n");
//! ```
pub mod exit;
pub mod progress;
pub mod runs;
pub mod time;

use std::io::{IsTerminal as _, Write as _};

use anyhow::Context as _;
use jiff::Timestamp;
use serde::Serialize;

pub use time::{TimePolicy, format_duration, parse_duration, relative};

/// The `apiVersion` of the JSON and YAML list documents.
pub const API_VERSION: &str = "cli.rostersync.io/v1";

/// `-o` of every read verb.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// Columns for people, relative times.
    #[default]
    Table,
    /// Every column, absolute times.
    Wide,
    /// A `<Kind>List` document (stable shape).
    Json,
    /// The same document as YAML.
    Yaml,
    /// The wide columns as CSV (RFC 4180), times in UTC.
    Csv,
}

impl OutputFormat {
    /// JSON, YAML or CSV: output for programs (no notes on stdout, no colour).
    pub fn is_machine(self) -> bool {
        matches!(
            self,
            OutputFormat::Json | OutputFormat::Yaml | OutputFormat::Csv
        )
    }
}

/// One column of a table.
#[derive(Clone, Copy, Debug)]
pub struct Column {
    /// The header, upper case (`LAST SYNC`).
    pub header: &'static str,
    /// Shown only with `-o wide` (and in CSV).
    pub wide_only: bool,
}

impl Column {
    /// A column of every table.
    pub const fn new(header: &'static str) -> Column {
        Column {
            header,
            wide_only: false,
        }
    }
    /// A column of `-o wide` and CSV only.
    pub const fn wide(header: &'static str) -> Column {
        Column {
            header,
            wide_only: true,
        }
    }
}

/// How a status word is coloured on a TTY.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tone {
    /// No colour.
    Plain,
    /// Green: Ready, Succeeded, available.
    Good,
    /// Yellow: Running, Held, Pending, Suspended.
    Warn,
    /// Red: Failed, a not-ready reason.
    Bad,
}

/// One table cell: text, or a value the printer formats by the time policy.
#[derive(Clone, Debug, PartialEq)]
pub enum Cell {
    /// Text as is (`-` when empty).
    Text(String),
    /// A status word, coloured on a TTY.
    Status(String, Tone),
    /// A point in time: relative in tables, absolute in wide and CSV; `-` when unknown.
    Time(Option<Timestamp>),
    /// Like [`Cell::Time`] but always relative in tables and wide (a duration-like "when").
    Span(Option<i64>),
}

impl Cell {
    pub fn text(s: impl Into<String>) -> Cell {
        Cell::Text(s.into())
    }
    pub fn time(t: impl Into<Option<Timestamp>>) -> Cell {
        Cell::Time(t.into())
    }
    pub fn status(s: impl Into<String>, tone: Tone) -> Cell {
        Cell::Status(s.into(), tone)
    }
    /// A duration in seconds (`2m`), `-` when unknown.
    pub fn seconds(s: Option<i64>) -> Cell {
        Cell::Span(s)
    }
}

/// Guesses the tone of a well-known status word (`Ready`, `Succeeded`, `Failed`, ...).
pub fn tone_of(word: &str) -> Tone {
    match word {
        "Ready" | "Succeeded" | "available" | "True" | "Normal" => Tone::Good,
        "Running" | "Held" | "Pending" | "Suspended" | "suspended" | "Unknown" => Tone::Warn,
        "-" | "" => Tone::Plain,
        w if w.starts_with("Ready,") => Tone::Warn,
        "Failed" | "NotReady" | "False" | "Warning" => Tone::Bad,
        _ => Tone::Bad,
    }
}

/// A row type: serialized as is for JSON/YAML, described by its cells for tables and CSV.
pub trait TableRow: Serialize {
    /// The list kind's stem: `Run` gives `RunList`.
    const KIND: &'static str;
    /// The columns, in order.
    const COLUMNS: &'static [Column];
    /// One cell per column of [`TableRow::COLUMNS`].
    fn cells(&self) -> Vec<Cell>;
}

/// Whether to colour output written to a stream that `is_tty`: only on a TTY, never with a
/// non-empty `NO_COLOR` (<https://no-color.org>), never with `TERM=dumb`.
pub fn color_enabled(is_tty: bool) -> bool {
    color_for(
        is_tty,
        std::env::var_os("NO_COLOR").as_deref(),
        std::env::var_os("TERM").as_deref(),
    )
}

/// [`color_enabled`] with the environment given: `NO_COLOR` and `TERM`.
pub fn color_for(
    is_tty: bool,
    no_color: Option<&std::ffi::OsStr>,
    term: Option<&std::ffi::OsStr>,
) -> bool {
    let no_color = no_color.is_some_and(|v| !v.is_empty());
    let dumb = term.is_some_and(|v| v == "dumb");
    is_tty && !no_color && !dumb
}

/// Whether stdout is a terminal with colour allowed.
pub fn stdout_color() -> bool {
    color_enabled(std::io::stdout().is_terminal())
}

/// Prints rows in one format with one time policy.
#[derive(Clone, Debug)]
pub struct Printer {
    pub format: OutputFormat,
    pub time: TimePolicy,
    pub color: bool,
    /// Headers of columns left out of tables and CSV (e.g. `NAMESPACE` without `-A`).
    pub hidden: Vec<&'static str>,
}

/// The list document of JSON and YAML.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ListDoc<'a, R> {
    api_version: &'static str,
    kind: String,
    items: &'a [R],
}

impl Printer {
    /// For stdout: the viewer's zone (UTC when `utc`), colour on a TTY without NO_COLOR.
    pub fn new(format: OutputFormat, utc: bool) -> Printer {
        Printer {
            format,
            time: TimePolicy::new(utc),
            color: !format.is_machine() && stdout_color(),
            hidden: Vec::new(),
        }
    }

    /// Leaves the column with this header out of tables and CSV (JSON and YAML keep the field).
    pub fn hide(mut self, header: &'static str) -> Printer {
        self.hidden.push(header);
        self
    }

    /// No colour, a given time policy (tests, files).
    pub fn plain(format: OutputFormat, time: TimePolicy) -> Printer {
        Printer {
            format,
            time,
            color: false,
            hidden: Vec::new(),
        }
    }

    /// The rows in this printer's format (a table ends with a newline; no rows: a header only).
    pub fn render<R: TableRow>(&self, rows: &[R]) -> anyhow::Result<String> {
        match self.format {
            OutputFormat::Json | OutputFormat::Yaml => self.render_doc(&ListDoc {
                api_version: API_VERSION,
                kind: format!("{}List", R::KIND),
                items: rows,
            }),
            OutputFormat::Csv => Ok(self.render_csv(rows)),
            OutputFormat::Table | OutputFormat::Wide => Ok(self.render_table(rows)),
        }
    }

    /// One document (not a list) as JSON or YAML; `None` for table formats.
    pub fn render_doc<T: Serialize>(&self, doc: &T) -> anyhow::Result<String> {
        match self.format {
            OutputFormat::Yaml => serde_yaml_ng::to_string(doc).context("cannot render YAML"),
            _ => {
                let mut s = serde_json::to_string_pretty(doc).context("cannot render JSON")?;
                s.push('\n');
                Ok(s)
            }
        }
    }

    /// Prints the rows to stdout.
    pub fn print<R: TableRow>(&self, rows: &[R]) -> anyhow::Result<()> {
        let out = self.render(rows)?;
        let mut stdout = std::io::stdout().lock();
        stdout
            .write_all(out.as_bytes())
            .and_then(|()| stdout.flush())
            .context("cannot write to stdout")
    }

    fn wide(&self) -> bool {
        matches!(self.format, OutputFormat::Wide | OutputFormat::Csv)
    }

    /// The cell as text for a table (relative or absolute time by format).
    fn cell_text(&self, cell: &Cell) -> String {
        let dash = |s: &str| {
            if s.is_empty() {
                "-".to_string()
            } else {
                s.to_string()
            }
        };
        match cell {
            Cell::Text(s) | Cell::Status(s, _) => dash(s),
            Cell::Time(None) | Cell::Span(None) => "-".into(),
            Cell::Time(Some(t)) => match self.format {
                OutputFormat::Csv => time::rfc3339_utc(*t),
                OutputFormat::Wide => self.time.absolute(*t),
                _ => self.time.relative(*t),
            },
            Cell::Span(Some(s)) => match self.format {
                OutputFormat::Csv => s.to_string(),
                _ => format_duration(*s),
            },
        }
    }

    fn render_table<R: TableRow>(&self, rows: &[R]) -> String {
        use comfy_table::{Cell as CCell, CellAlignment, Color, Table, presets};
        let keep: Vec<bool> = R::COLUMNS
            .iter()
            .map(|c| (self.wide() || !c.wide_only) && !self.hidden.contains(&c.header))
            .collect();
        let mut table = Table::new();
        table.load_style(presets::NOTHING);
        if self.color {
            table.enforce_styling();
        } else {
            table.force_no_tty();
        }
        table.set_header(
            R::COLUMNS
                .iter()
                .zip(&keep)
                .filter(|(_, k)| **k)
                .map(|(c, _)| CCell::new(c.header)),
        );
        for row in rows {
            let cells = row.cells();
            table.add_row(cells.iter().zip(&keep).filter(|(_, k)| **k).map(|(c, _)| {
                let cell = CCell::new(self.cell_text(c)).set_alignment(CellAlignment::Left);
                match c {
                    Cell::Status(_, tone) if self.color => match tone {
                        Tone::Good => cell.fg(Color::Green),
                        Tone::Warn => cell.fg(Color::Yellow),
                        Tone::Bad => cell.fg(Color::Red),
                        Tone::Plain => cell,
                    },
                    _ => cell,
                }
            }));
        }
        // kubectl's layout: no borders, three spaces between columns.
        let last = keep.iter().filter(|k| **k).count().saturating_sub(1);
        for (i, col) in table.column_iter_mut().enumerate() {
            col.set_padding((0, if i == last { 0 } else { 3 }));
        }
        let mut out = String::new();
        for line in table.lines() {
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }

    fn render_csv<R: TableRow>(&self, rows: &[R]) -> String {
        let keep: Vec<bool> = R::COLUMNS
            .iter()
            .map(|c| !self.hidden.contains(&c.header))
            .collect();
        let mut out = String::new();
        let line = |cells: Vec<String>, out: &mut String| {
            let cells: Vec<String> = cells
                .into_iter()
                .zip(&keep)
                .filter(|(_, k)| **k)
                .map(|(c, _)| c)
                .collect();
            let quoted: Vec<String> = cells.iter().map(|c| csv_field(c)).collect();
            out.push_str(&quoted.join(","));
            out.push_str("\r\n");
        };
        line(
            R::COLUMNS.iter().map(|c| c.header.to_string()).collect(),
            &mut out,
        );
        for row in rows {
            let cells = row
                .cells()
                .iter()
                .map(|c| match c {
                    Cell::Time(None) | Cell::Span(None) => String::new(),
                    Cell::Text(s) | Cell::Status(s, _) if s == "-" => String::new(),
                    other => self.cell_text(other),
                })
                .collect();
            line(cells, &mut out);
        }
        out
    }
}

/// One CSV field (RFC 4180): quoted when it holds a comma, quote or line break; a leading `=`, `+`,
/// `-` or `@` is prefixed with `'` so that spreadsheets never run it as a formula.
pub(crate) fn csv_field(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '@']) || (s.starts_with('-') && s.len() > 1) {
        format!("'{s}")
    } else {
        s.to_string()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

/// Prints `rows` to stdout in `format` (the viewer's zone, colour on a TTY).
pub fn print<R: TableRow>(format: OutputFormat, rows: &[R]) -> anyhow::Result<()> {
    Printer::new(format, false).print(rows)
}

#[cfg(test)]
mod tests;
