//! Progress lines of long waits (`sync-now --wait`): one line per step with the elapsed time,
//! `[  4.2s] Job created: springfield-now-1a2b`; on a TTY (stderr) a spinner line between steps.
use std::io::{IsTerminal as _, Write as _};
use std::time::{Duration, Instant};

use super::time::format_elapsed;

/// Writes step lines to stdout (the record of what happened) and, on a TTY, a spinner to stderr.
pub struct Progress {
    start: Instant,
    quiet: bool,
    spinner: bool,
    frame: usize,
    spinning: bool,
    last_step: Option<String>,
    lines: Vec<String>,
    to_stderr: bool,
}

const FRAMES: [char; 4] = ['|', '/', '-', '\\'];

impl Progress {
    /// Steps on stdout unless `quiet`; a spinner only when stderr is a terminal (and not quiet).
    pub fn new(quiet: bool) -> Progress {
        Progress::with_stream(quiet, false)
    }

    /// Like [`Progress::new`], step lines on stderr when `to_stderr` (stdout is for `-o json`).
    pub fn with_stream(quiet: bool, to_stderr: bool) -> Progress {
        let tty = std::io::stderr().is_terminal();
        Progress {
            start: Instant::now(),
            quiet,
            spinner: tty && !quiet && std::env::var_os("TERM").is_none_or(|t| t != "dumb"),
            frame: 0,
            spinning: false,
            last_step: None,
            lines: Vec::new(),
            to_stderr,
        }
    }

    /// Time since the start.
    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    /// The line of a step (pure): `[  4.2s] message`.
    pub fn line(elapsed: Duration, message: &str) -> String {
        format!("[{:>6}] {message}", format_elapsed(elapsed))
    }

    /// Prints a step once (the same message twice in a row is printed once).
    pub fn step(&mut self, message: impl Into<String>) {
        let message = message.into();
        if self.last_step.as_deref() == Some(message.as_str()) {
            return;
        }
        self.clear_spinner();
        let line = Progress::line(self.elapsed(), &message);
        if !self.quiet {
            if self.to_stderr {
                eprintln!("{line}");
            } else {
                println!("{line}");
                let _ = std::io::stdout().flush();
            }
        }
        self.lines.push(line);
        self.last_step = Some(message);
    }

    /// Advances the spinner (a no-op unless stderr is a terminal).
    pub fn tick(&mut self) {
        if !self.spinner {
            return;
        }
        let what = self.last_step.as_deref().unwrap_or("waiting");
        let mut err = std::io::stderr().lock();
        let _ = write!(
            err,
            "\r{} {} ({})\x1b[K",
            FRAMES[self.frame % FRAMES.len()],
            what,
            format_elapsed(self.elapsed())
        );
        let _ = err.flush();
        self.frame += 1;
        self.spinning = true;
    }

    /// Removes the spinner line, if any.
    pub fn clear_spinner(&mut self) {
        if self.spinning {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[K");
            let _ = err.flush();
            self.spinning = false;
        }
    }

    /// The step lines so far.
    pub fn lines(&self) -> &[String] {
        &self.lines
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.clear_spinner();
    }
}
