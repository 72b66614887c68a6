//! The enclave's logs leave it only as `Event::Log` frames on the control connection.
//!
//! [`ParentLogLayer`] is a `tracing` layer that renders each event and hands it to every connected
//! parent through a broadcast channel. Whatever is logged leaves the enclave, so the rule for all
//! enclave code is: never log a variable value or key material.

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

/// Crates whose debug and trace events may contain request or response bodies (the AWS SDK
/// logs them at trace level). Their events above INFO never leave the enclave, whatever
/// `RUST_LOG` says.
const BODY_LOGGING_CRATES: [&str; 6] = [
    "aws_smithy",
    "aws_sdk",
    "aws_sigv4",
    "hyper",
    "rustls",
    "h2",
];

/// Whether an event may be forwarded to the parent.
pub fn may_leave(target: &str, level: &tracing::Level) -> bool {
    *level <= tracing::Level::INFO || !BODY_LOGGING_CRATES.iter().any(|c| target.starts_with(c))
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
