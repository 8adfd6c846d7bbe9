//! Logging setup. Logs go to stderr so that a subcommand's stdout stays machine-readable.
use tracing_subscriber::EnvFilter;

/// The logging variables a process passes on to the sync Jobs it starts: `RUST_LOG` and
/// `ROSTERSYNC_LOG_FORMAT`, those that are set.
pub fn inherited_env() -> Vec<(String, String)> {
    ["RUST_LOG", "ROSTERSYNC_LOG_FORMAT"]
        .into_iter()
        .filter_map(|name| Some((name.to_string(), std::env::var(name).ok()?)))
        .collect()
}

/// Initialises `tracing` from `RUST_LOG` (default `info`); `ROSTERSYNC_LOG_FORMAT=json` selects JSON lines.
pub fn init_logging() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let json = std::env::var("ROSTERSYNC_LOG_FORMAT").is_ok_and(|v| v == "json");
    // A second initialisation (tests) is harmless: ignore "already set".
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}
