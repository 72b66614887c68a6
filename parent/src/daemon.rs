//! The daemon's lifecycle: [`start`] binds everything and returns a [`Handle`]; cancelling the
//! shutdown token stops it, and [`Handle::wait`] returns when every part has stopped.

use crate::ParentError;
use crate::admin::{self, AdminState};
use crate::config::ParentConfig;
use crate::control::EnclaveClient;
use nitrosync_relay::{self as relay, RelayStats};
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

/// Binds the relay and admin sockets (and the tenant API's port when configured), starts the control connection, and returns at once.
pub async fn start(cfg: ParentConfig, shutdown: CancellationToken) -> Result<Handle, ParentError> {
    if let Some(dir) = cfg.admin_socket.parent() {
        std::fs::create_dir_all(dir).map_err(|source| ParentError::Admin {
            path: cfg.admin_socket.clone(),
            source,
        })?;
    }
    let admin_listener = Listener::bind(&Endpoint::Unix(cfg.admin_socket.clone())).await?;
    // Certificate and key are read at start: a bad file stops the daemon here, not a tenant later.
    let tenant_api = match &cfg.tenant_api {
        Some(t) => Some((
            crate::tenant_api::tls_config(&t.cert, &t.key)?,
            crate::tenant_api::bind(t.listen).await?,
        )),
        None => None,
    };
    let metrics_listener = match cfg.metrics_listen {
        Some(addr) => Some(crate::metrics::bind(addr).await?),
        None => None,
    };
    if let Some(dir) = cfg.store_path.parent() {
        std::fs::create_dir_all(dir).map_err(|source| ParentError::StoreDir {
            path: dir.to_owned(),
            source,
        })?;
    }
    // Open's errors name the file.
    let store = Arc::new(crate::store::Store::open(&cfg.store_path)?);
    let wake = Arc::new(tokio::sync::Notify::new());
    let scheduler_stats = Arc::new(crate::scheduler::SchedulerStats::default());
    let regions = cfg.relay.policy.regions().to_vec();
    let relay_listen = cfg.relay.listen.to_string();
    let relay = relay::start(cfg.relay, shutdown.clone()).await?;
    let (client, control_task) = EnclaveClient::start(
        cfg.control.clone(),
        cfg.request_timeout,
        cfg.sync_timeout,
        cfg.max_backoff,
        shutdown.clone(),
    );
    let scheduler = crate::scheduler::Scheduler::new(
        store.clone(),
        client.clone(),
        wake.clone(),
        cfg.scheduler.clone(),
        scheduler_stats.clone(),
    );
    let state = Arc::new(AdminState {
        client: client.clone(),
        relay_stats: relay.stats.clone(),
        relay_listen: relay_listen.clone(),
        regions,
        started: Instant::now(),
        store: store.clone(),
        commits: crate::store::GroupCommit::start(store.clone(), crate::scheduler::now_ms),
        wake: wake.clone(),
        scheduler: scheduler.clone(),
        identity_kms_key: cfg.identity_kms_key.clone(),
    });
    let scheduler_task = tokio::spawn(scheduler.run(shutdown.clone()));
    let metrics_task = match metrics_listener {
        Some(listener) => {
            let sources = crate::metrics::MetricsSources {
                relay: relay.stats.clone(),
                store: store.clone(),
                scheduler: scheduler_stats,
                enclave: client.clone(),
            };
            let limits = crate::metrics::ServerLimits::DAEMON;
            let server = crate::metrics::start_on(listener, sources, limits, shutdown.clone())?;
            Some(server.into_task())
        }
        None => None,
    };
    let mut tasks_extra = Vec::new();
    let tenant_api_task = tenant_api.map(|(tls, listener)| {
        tokio::spawn(crate::tenant_api::serve(
            listener,
            tls,
            state.clone(),
            shutdown.clone(),
        ))
    });
    let admin_task = tokio::spawn(admin::serve(admin_listener, state, shutdown.clone()));
    let root_path = cfg
        .admin_socket
        .parent()
        .map(|d| d.join(SIM_ROOT_FILE))
        .unwrap_or_else(|| SIM_ROOT_FILE.into());
    if let Some(key_arn) = cfg.identity_kms_key.clone() {
        info!(key_arn = %key_arn, "the enclave's identity is sealed under this KMS key");
        tasks_extra.push(tokio::spawn(crate::identity::unseal_on_connect(
            client.clone(),
            store.clone(),
            key_arn,
            shutdown.clone(),
        )));
    }
    let publish_task = tokio::spawn(publish_simulator_root(
        client.clone(),
        root_path,
        shutdown.clone(),
    ));
    info!(
        control = %cfg.control,
        relay = %relay_listen,
        admin = %cfg.admin_socket.display(),
        "nitrosync-parent started"
    );
    let relay_stats = relay.stats.clone();
    let relay_task = tokio::spawn(relay.join());
    let mut tasks = vec![
        relay_task,
        control_task,
        admin_task,
        publish_task,
        scheduler_task,
    ];
    tasks.extend(metrics_task);
    tasks.extend(tenant_api_task);
    tasks.extend(tasks_extra);
    Ok(Handle {
        client,
        relay_stats,
        tasks,
    })
}

/// Runs the daemon until `shutdown` is cancelled.
pub async fn run(cfg: ParentConfig, shutdown: CancellationToken) -> Result<(), ParentError> {
    start(cfg, shutdown).await?.wait().await;
    Ok(())
}

pub use nitrosync_api::SIM_ROOT_FILE;

/// Simulator mode: after each (re)connect, asks the enclave for its description and writes the
/// simulated NSM's root next to the admin socket, where the CLI and `nitrosync-attest --root`
/// can find it. Production enclaves have no such root, and nothing is written.
async fn publish_simulator_root(
    client: EnclaveClient,
    path: std::path::PathBuf,
    shutdown: CancellationToken,
) {
    use nitrosync_shared::control::{RequestBody, ResponseBody};
    let mut connects = client.subscribe_connects();
    // A connect that happened before this task subscribed still counts.
    connects.mark_changed();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            changed = connects.changed() => if changed.is_err() { return },
        }
        // A locked enclave (its identity not unsealed yet) answers Describe with an error:
        // ask again until it answers or the connection changes.
        let d = loop {
            match client.request(RequestBody::Describe).await {
                Ok(ResponseBody::Describe(d)) => break Some(d),
                _ if !client.state().connected => break None,
                _ => {}
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(std::time::Duration::from_millis(250)) => {}
            }
        };
        let Some(d) = d else { continue };
        let Some(pem) = d.simulator_root_pem else {
            continue;
        };
        let tmp = path.with_extension("pem.tmp");
        let written =
            std::fs::write(&tmp, pem.as_bytes()).and_then(|()| std::fs::rename(&tmp, &path));
        match written {
            Ok(()) => {
                info!(path = %path.display(), "wrote the simulated NSM root (simulator mode)")
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot write the simulated NSM root")
            }
        }
    }
}
