//! The enclave's logs leave it only as `Event::Log` frames on the control connection.
//!
//! [`ParentLogLayer`] is a `tracing` layer that renders each event and hands it to every connected
//! parent through a broadcast channel. Whatever is logged leaves the enclave, so the rule for all
//! enclave code is: never log a variable value or key material.
//!
//! What may leave is an allowlist ([`may_leave`], installed as a global filter by
//! [`allowlist`]): our own crates (`nitrosync_*`) at the level `RUST_LOG` sets, and only WARN
//! and above from everything else. Dependencies (the AWS SDK, hyper, rustls and any crate added
//! later) may log request and response bodies at debug and trace level; no setting lets those out.

use nitrosync_shared::control::{Event, LogLevel};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use tokio::sync::broadcast;
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::Context;

/// Events buffered per parent connection before the oldest are dropped.
pub const LOG_BUFFER: usize = 1024;

/// A layer that forwards events to the parent.
#[derive(Debug, Clone)]
pub struct ParentLogLayer {
    tx: broadcast::Sender<Event>,
}

impl ParentLogLayer {
    /// A layer and its sender; parent connections subscribe to the sender.
    pub fn new() -> (Self, broadcast::Sender<Event>) {
        let (tx, _) = broadcast::channel(LOG_BUFFER);
        (Self { tx: tx.clone() }, tx)
    }
}

#[derive(Default)]
struct Fields {
    message: String,
    fields: BTreeMap<String, String>,
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            self.fields
                .insert(field.name().to_owned(), format!("{value:?}"));
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            self.fields
                .insert(field.name().to_owned(), value.to_owned());
        }
    }
}

/// The target prefix of our own crates (`nitrosync_enclave`, `nitrosync_saml`, ...). Their
/// events are allowed at any level: they are reviewed not to carry secrets.
pub const OWN_TARGET_PREFIX: &str = "nitrosync_";

/// The most verbose level allowed from any other target.
pub const OTHERS_MAX_LEVEL: tracing::Level = tracing::Level::WARN;

/// Whether an event or span may be recorded at all (and so leave the enclave): any level from
/// our own crates, WARN and above from everything else. The level of our own crates is
/// `RUST_LOG`'s, applied by the `EnvFilter` beside this one.
pub fn may_leave(target: &str, level: &tracing::Level) -> bool {
    target.starts_with(OWN_TARGET_PREFIX) || *level <= OTHERS_MAX_LEVEL
}

/// [`may_leave`] as a global filter, for the binary's subscriber. It depends on metadata only,
/// so `tracing` caches the answer per call site: a disabled dependency event costs nothing.
pub fn allowlist() -> tracing_subscriber::filter::FilterFn<impl Fn(&tracing::Metadata<'_>) -> bool>
{
    tracing_subscriber::filter::filter_fn(|m| may_leave(m.target(), m.level()))
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for ParentLogLayer {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        if self.tx.receiver_count() == 0 {
            return;
        }
        let meta = event.metadata();
        if !may_leave(meta.target(), meta.level()) {
            return;
        }
        let level = match *meta.level() {
            tracing::Level::ERROR => LogLevel::Error,
            tracing::Level::WARN => LogLevel::Warn,
            tracing::Level::INFO => LogLevel::Info,
            _ => LogLevel::Debug,
        };
        let mut f = Fields::default();
        event.record(&mut f);
        let _ = self.tx.send(Event::Log {
            level,
            target: meta.target().to_owned(),
            message: f.message,
            fields: f.fields,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::Level;

    #[test]
    fn only_our_own_targets_leave_below_warn() {
        // Our crates at any level (RUST_LOG's EnvFilter decides which).
        assert!(may_leave("nitrosync_enclave::control", &Level::TRACE));
        assert!(may_leave("nitrosync_saml", &Level::DEBUG));
        assert!(may_leave("nitrosync_transport::framed", &Level::INFO));
        // Any other crate, known or not: WARN and ERROR only.
        for target in [
            "tokio_util::task",
            "some_new_dependency",
            "enclave",
            "nitrosync",
        ] {
            assert!(!may_leave(target, &Level::INFO), "{target}");
            assert!(!may_leave(target, &Level::DEBUG), "{target}");
            assert!(may_leave(target, &Level::WARN), "{target}");
            assert!(may_leave(target, &Level::ERROR), "{target}");
        }
    }

    #[test]
    fn the_allowlist_filters_a_real_subscriber() {
        use tracing_subscriber::prelude::*;
        let (layer, logs) = ParentLogLayer::new();
        let mut rx = logs.subscribe();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_subscriber::EnvFilter::new("trace"))
            .with(allowlist())
            .with(layer);
        let mut seen = Vec::new();
        tracing::subscriber::with_default(subscriber, || {
            tracing::trace!(target: "aws_smithy_runtime::client::http", "a body");
            tracing::info!(target: "hyper::proto", "a connection");
            tracing::warn!(target: "rustls::conn", "an alert");
            tracing::debug!(target: "nitrosync_enclave::sync", "ours");
        });
        while let Ok(Event::Log { target, .. }) = rx.try_recv() {
            seen.push(target);
        }
        assert_eq!(seen, ["rustls::conn", "nitrosync_enclave::sync"]);
    }

    #[test]
    fn sdk_debug_and_trace_never_leave() {
        assert!(!may_leave(
            "aws_smithy_runtime::client::http",
            &Level::TRACE
        ));
        assert!(!may_leave(
            "aws_sdk_secretsmanager::operation",
            &Level::DEBUG
        ));
        assert!(!may_leave("hyper::proto::h1", &Level::TRACE));
        assert!(may_leave(
            "aws_smithy_runtime::client::retries",
            &Level::WARN
        ));
        assert!(may_leave("nitrosync_enclave::sync", &Level::DEBUG));
    }
}
