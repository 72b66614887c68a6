//! The daemon's open-file limit (`RLIMIT_NOFILE`), raised at start to what its settings need.
//!
//! Every relay tunnel holds file descriptors (two when open, one while it waits for a slot), so
//! the settings decide how many the daemon may need ([`ParentConfig::fds_needed`]). The soft
//! limit is often far lower than the hard one (1,024 against 524,288 under systemd's defaults),
//! so the daemon raises its soft limit to that need, never past the hard limit and never down.
//! When the hard limit is too low, it says so once at start, with the remedy, instead of failing
//! tunnels later with "too many open files".
//!
//! `rustix` (already in the build through `tempfile`) gives `getrlimit`/`setrlimit` as safe
//! functions; its `setrlimit` is the `prlimit64` system call, which the systemd unit's
//! `SystemCallFilter=~@resources` (which denies `setrlimit`) allows.

use crate::config::{FD_MARGIN, ParentConfig};
use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
use tracing::{info, warn};

/// A limit value; `None` is unlimited.
pub type Limit = Option<u64>;

/// The soft limit to set, given the current `soft` and `hard` limits and the `need`: `None` when
/// the soft limit is already enough (or unlimited) and nothing should change.
pub fn target(soft: Limit, hard: Limit, need: u64) -> Option<u64> {
    match soft {
        None => None,
        Some(s) if s >= need => None,
        Some(s) => {
            let t = hard.map_or(need, |h| need.min(h));
            (t > s).then_some(t)
        }
    }
}

/// What [`raise`] found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The file descriptors the settings need.
    pub need: u64,
    /// The soft limit at start.
    pub before: Limit,
    /// The soft limit now.
    pub soft: Limit,
    /// The hard limit.
    pub hard: Limit,
    /// Why raising failed, if it did.
    pub error: Option<String>,
}

impl Outcome {
    /// Whether the soft limit now covers the need.
    pub fn enough(&self) -> bool {
        self.soft.is_none_or(|s| s >= self.need)
    }

    /// The start-up warning for a limit too low, naming the limit, the need and the remedy;
    /// `None` when the limit is enough.
    pub fn warning(&self, cfg: &ParentConfig) -> Option<String> {
        if self.enough() {
            return None;
        }
        let show = |l: Limit| l.map_or("unlimited".to_owned(), |v| v.to_string());
        let failed = self
            .error
            .as_ref()
            .map(|e| format!(" (raising the soft limit failed: {e})"))
            .unwrap_or_default();
        Some(format!(
            "the open-file limit (RLIMIT_NOFILE) is {soft} (hard limit {hard}){failed}, but these \
             settings need {need}: 2 per relay.max_connections ({mc}), 1 per relay.max_queued \
             ({mq}) and {FD_MARGIN} for the store and APIs; tunnels past the limit will fail with \
             \"too many open files\". Raise the limit (LimitNOFILE= in the systemd unit, \
             ulimit -n before starting) or lower relay.max_connections or relay.max_queued",
            soft = show(self.soft),
            hard = show(self.hard),
            need = self.need,
            mc = cfg.relay.max_connections,
            mq = cfg.relay.max_queued,
        ))
    }

    /// Logs the outcome: one INFO line when the limit is enough, one WARN line when it is not.
    pub fn log(&self, cfg: &ParentConfig) {
        match self.warning(cfg) {
            Some(w) => warn!("{w}"),
            None => info!(
                need = self.need,
                soft_before = ?self.before,
                soft = ?self.soft,
                hard = ?self.hard,
                "open-file limit"
            ),
        }
    }
}

/// Raises this process's soft `RLIMIT_NOFILE` towards `need` (up to the hard limit).
pub fn raise(need: u64) -> Outcome {
    let Rlimit { current, maximum } = getrlimit(Resource::Nofile);
    let mut outcome = Outcome {
        need,
        before: current,
        soft: current,
        hard: maximum,
        error: None,
    };
    if let Some(t) = target(current, maximum, need) {
        match setrlimit(
            Resource::Nofile,
            Rlimit {
                current: Some(t),
                maximum,
            },
        ) {
            Ok(()) => outcome.soft = getrlimit(Resource::Nofile).current,
            Err(e) => outcome.error = Some(e.to_string()),
        }
    }
    outcome
}

/// Raises the limit for `cfg` and logs the outcome.
pub fn raise_for(cfg: &ParentConfig) -> Outcome {
    let outcome = raise(cfg.fds_needed());
    outcome.log(cfg);
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Overrides, RawConfig};
    use std::path::Path;

    #[test]
    fn target_raises_up_to_the_hard_limit_and_never_lowers() {
        assert_eq!(target(Some(1024), Some(524_288), 17_408), Some(17_408));
        assert_eq!(target(Some(1024), Some(4096), 17_408), Some(4096));
        assert_eq!(target(Some(1024), None, 17_408), Some(17_408));
        assert_eq!(target(Some(65_536), Some(65_536), 17_408), None);
        assert_eq!(target(Some(4096), Some(4096), 17_408), None);
        assert_eq!(target(None, None, 17_408), None);
    }

    #[test]
    fn a_low_hard_limit_is_one_warning_naming_limit_need_and_remedy() {
        let cfg = RawConfig::parse("", Path::new("p.toml"))
            .unwrap()
            .resolve(Overrides::default())
            .unwrap();
        let low = Outcome {
            need: cfg.fds_needed(),
            before: Some(1024),
            soft: Some(4096),
            hard: Some(4096),
            error: None,
        };
        let w = low.warning(&cfg).expect("a warning");
        for want in [
            "RLIMIT_NOFILE",
            "4096",
            "17408",
            "LimitNOFILE",
            "ulimit -n",
            "relay.max_connections",
        ] {
            assert!(w.contains(want), "{want}: {w}");
        }
        assert!(!w.contains('\n'), "{w}");
        let fine = Outcome {
            soft: Some(65_536),
            hard: Some(65_536),
            ..low
        };
        assert_eq!(fine.warning(&cfg), None);
    }

    /// This test process's own limit: raising to what it already has changes nothing, and the
    /// outcome reads the real limits.
    #[test]
    fn raise_reads_the_real_limits() {
        let now = getrlimit(Resource::Nofile);
        let need = now.current.unwrap_or(1024).min(64);
        let o = raise(need);
        assert!(o.enough(), "{o:?}");
        assert_eq!(o.soft, now.current);
        assert_eq!(o.hard, now.maximum);
    }
}
