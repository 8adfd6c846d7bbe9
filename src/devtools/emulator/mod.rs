//! A Clever API v3.0 emulator: a real HTTP server on loopback serving generated or file-based
//! district data the way Clever does, with fault injection and a test API. Used by the tests, the
//! demo and `rostersync bench`. See `docs/emulator.md`.
pub mod cli;
pub mod data;
pub mod faults;
mod load;
mod oauth;
pub mod paging;
pub mod record;
mod server;
pub mod store;
mod testapi;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::sync::oneshot;
use url::Url;

pub use data::{DEFAULT_DISTRICT_ID, GenConfig, generate};
pub use faults::{Fault, FaultKind};
pub use record::{Entry, Kind};
pub use store::{EmulatorStoreError, Store};

/// The district token the emulator accepts by default.
pub const DEFAULT_TOKEN: &str = "emulator-district-token-0000000000000000";
pub const DEFAULT_CLIENT_ID: &str = "emulator-client-id";
pub const DEFAULT_CLIENT_SECRET: &str = "emulator-client-secret";

/// Where the data comes from.
#[derive(Clone, Debug)]
pub enum DataSource {
    Generate(GenConfig),
    /// A directory of Clever list files (`districts.json`, `schools.json`, ...).
    Dir(PathBuf),
    Store(Store),
}

#[derive(Clone, Debug)]
pub struct EmulatorConfig {
    /// Must be a loopback address; port 0 picks a free port.
    pub listen: SocketAddr,
    pub token: String,
    pub client_id: String,
    pub client_secret: String,
    /// Requests per minute per token before 429 (Clever: 1200).
    pub rate_limit_per_minute: u64,
    pub data: DataSource,
    pub faults: Vec<Fault>,
}

impl EmulatorConfig {
    /// Generated data for `students` students with `seed`, defaults elsewhere.
    pub fn generated(seed: u64, students: u32) -> EmulatorConfig {
        EmulatorConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            token: DEFAULT_TOKEN.into(),
            client_id: DEFAULT_CLIENT_ID.into(),
            client_secret: DEFAULT_CLIENT_SECRET.into(),
            rate_limit_per_minute: 1200,
            data: DataSource::Generate(GenConfig {
                seed,
                students,
                schools: None,
                district_id: DEFAULT_DISTRICT_ID.into(),
            }),
            faults: Vec::new(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    #[error("the emulator only listens on loopback, not {0}")]
    NotLoopback(SocketAddr),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot load data: {0}")]
    Data(String),
}

pub struct Emulator;

impl Emulator {
    /// Builds the dataset, binds, and serves in a background task until the handle is shut down
    /// or dropped.
    pub async fn start(cfg: EmulatorConfig) -> Result<EmulatorHandle, EmulatorError> {
        if !cfg.listen.ip().is_loopback() {
            return Err(EmulatorError::NotLoopback(cfg.listen));
        }
        let store = match cfg.data {
            DataSource::Generate(g) => tokio::task::spawn_blocking(move || generate(&g))
                .await
                .map_err(|e| EmulatorError::Data(e.to_string()))?
                .map_err(|e| EmulatorError::Data(e.to_string()))?,
            DataSource::Dir(dir) => load::load_dir(&dir).map_err(EmulatorError::Data)?,
            DataSource::Store(s) => s,
        };
        let shared = Arc::new(server::Shared::new(
            store,
            cfg.token,
            cfg.client_id,
            cfg.client_secret,
            cfg.rate_limit_per_minute,
        ));
        if let Ok(mut f) = shared.faults.lock() {
            cfg.faults.into_iter().for_each(|x| f.add(x));
        }
        let listener = tokio::net::TcpListener::bind(cfg.listen)
            .await
            .map_err(|source| EmulatorError::Bind {
                addr: cfg.listen,
                source,
            })?;
        let addr = listener
            .local_addr()
            .map_err(|source| EmulatorError::Bind {
                addr: cfg.listen,
                source,
            })?;
        let router = axum::Router::new()
            .fallback(server::handle)
            .with_state(shared.clone());
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let serve = axum::serve(listener, router).with_graceful_shutdown(async {
                let _ = rx.await;
            });
            if let Err(err) = serve.await {
                tracing::error!(%err, "emulator server stopped");
            }
        });
        let base_url = Url::parse(&format!("http://{addr}"))
            .map_err(|e| EmulatorError::Data(e.to_string()))?;
        Ok(EmulatorHandle {
            base_url,
            addr,
            shared,
            shutdown: Some(tx),
            task: Some(task),
        })
    }
}

/// A running emulator. Dropping it stops the server.
pub struct EmulatorHandle {
    base_url: Url,
    addr: SocketAddr,
    shared: Arc<server::Shared>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl EmulatorHandle {
    /// `http://127.0.0.1:PORT` (the API base: paths are `/v3.0/...` and `/oauth/tokens`).
    pub fn base_url(&self) -> &Url {
        &self.base_url
    }
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
    pub fn token(&self) -> &str {
        &self.shared.token
    }
    pub fn client_id(&self) -> &str {
        &self.shared.client_id
    }
    pub fn client_secret(&self) -> &str {
        &self.shared.client_secret
    }
    pub fn district_id(&self) -> String {
        self.read(|s| s.district_id().to_owned())
    }

    /// Reads the dataset.
    pub fn read<R>(&self, f: impl FnOnce(&Store) -> R) -> R {
        f(&self.shared.store.read().unwrap_or_else(|p| p.into_inner()))
    }
    /// Changes the dataset (visible to the next request).
    pub fn update<R>(&self, f: impl FnOnce(&mut Store) -> R) -> R {
        f(&mut self.shared.store.write().unwrap_or_else(|p| p.into_inner()))
    }
    pub fn add_fault(&self, fault: Fault) {
        if let Ok(mut f) = self.shared.faults.lock() {
            f.add(fault);
        }
    }
    pub fn clear_faults(&self) {
        if let Ok(mut f) = self.shared.faults.lock() {
            f.clear();
        }
    }
    pub fn set_rate_limit(&self, per_minute: u64) {
        self.shared
            .rate_limit_per_minute
            .store(per_minute, Ordering::Relaxed);
    }
    /// Path and query of every API request so far (not the test API's), oldest first.
    pub fn requests(&self) -> Vec<String> {
        self.shared.request_log()
    }
    /// Arrival times of the API requests whose path starts with `prefix` (e.g. `/v3.0/districts`,
    /// the lookups a verification makes), oldest first.
    pub fn request_times(&self, prefix: &str) -> Vec<std::time::Instant> {
        self.shared
            .request_log_timed()
            .into_iter()
            .filter(|(_, p)| p.starts_with(prefix))
            .map(|(at, _)| at)
            .collect()
    }
    pub fn clear_requests(&self) {
        self.shared.clear_request_log();
    }

    /// Stops accepting requests and waits for the server task.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for EmulatorHandle {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}
