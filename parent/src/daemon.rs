//! The daemon's lifecycle: [`start`] binds everything and returns a [`Handle`]; cancelling the
//! shutdown token stops it, and [`Handle::wait`] returns when every part has stopped.

use crate::ParentError;
use crate::admin::{self, AdminState};
use crate::config::ParentConfig;
use crate::control::EnclaveClient;
use crate::relay::{self, RelayStats};
use nitrosync_shared::Endpoint;
use nitrosync_transport::Listener;
use std::sync::Arc;
use std::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::info;

/// A running daemon.
#[derive(Debug)]
pub struct Handle {
    /// The control connection.
    pub client: EnclaveClient,
    /// Relay counters.
    pub relay_stats: Arc<RelayStats>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Handle {
    /// Waits until every part has stopped (after the shutdown token is cancelled).
    pub async fn wait(self) {
        for t in self.tasks {
            let _ = t.await;
        }
        info!("nitrosync-parent stopped");
    }
}

/// Binds the relay and admin sockets, starts the control connection, and returns at once.
pub async fn start(cfg: ParentConfig, shutdown: CancellationToken) -> Result<Handle, ParentError> {
    if let Some(dir) = cfg.admin_socket.parent() {
        std::fs::create_dir_all(dir).map_err(|source| ParentError::Admin {
            path: cfg.admin_socket.clone(),
            source,
        })?;
    }
    let admin_listener = Listener::bind(&Endpoint::Unix(cfg.admin_socket.clone())).await?;
    let regions = cfg.relay.policy.regions().to_vec();
    let relay_listen = cfg.relay.listen.to_string();
    let relay = relay::start(cfg.relay, shutdown.clone()).await?;
    let (client, control_task) = EnclaveClient::start(
        cfg.control.clone(),
        cfg.request_timeout,
        cfg.max_backoff,
        shutdown.clone(),
    );
    let state = Arc::new(AdminState {
        client: client.clone(),
        relay_stats: relay.stats.clone(),
        relay_listen: relay_listen.clone(),
        regions,
        started: Instant::now(),
    });
    let admin_task = tokio::spawn(admin::serve(admin_listener, state, shutdown.clone()));
    info!(
        control = %cfg.control,
        relay = %relay_listen,
        admin = %cfg.admin_socket.display(),
        "nitrosync-parent started"
    );
    let relay_stats = relay.stats.clone();
    let relay_task = tokio::spawn(relay.join());
    Ok(Handle {
        client,
        relay_stats,
        tasks: vec![relay_task, control_task, admin_task],
    })
}

/// Runs the daemon until `shutdown` is cancelled.
pub async fn run(cfg: ParentConfig, shutdown: CancellationToken) -> Result<(), ParentError> {
    start(cfg, shutdown).await?.wait().await;
    Ok(())
}
