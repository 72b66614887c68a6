//! The file systems the enclave needs, mounted in order; each mount point is created if
//! missing, and one that is already mounted (a different device from `/`, or `EBUSY`) is left
//! as it is.

use std::io;
use std::os::unix::fs::MetadataExt as _;
use std::path::Path;

use nix::errno::Errno;
use nix::mount::{MsFlags, mount};

/// One mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MountSpec {
    /// The mount point.
    pub target: &'static str,
    /// The file system type, also used as the source name.
    pub fstype: &'static str,
    /// Mount flags.
    pub flags: MsFlags,
    /// File system options.
    pub data: Option<&'static str>,
}

const NOSUID_NODEV_NOEXEC: MsFlags = MsFlags::MS_NOSUID
    .union(MsFlags::MS_NODEV)
    .union(MsFlags::MS_NOEXEC);

/// What is mounted, in this order: `/dev` and `/proc` first, as the console check needs them.
/// `/dev` is a devtmpfs, so the kernel creates the device nodes (`/dev/nsm`, `/dev/vsock`,
/// `/dev/null`, …). The tmpfs sizes are upper bounds; memory is used only as files are written.
pub const MOUNTS: [MountSpec; 5] = [
    MountSpec {
        target: "/dev",
        fstype: "devtmpfs",
        flags: MsFlags::MS_NOSUID.union(MsFlags::MS_NOEXEC),
        data: Some("mode=0755"),
    },
    MountSpec {
        target: "/proc",
        fstype: "proc",
        flags: NOSUID_NODEV_NOEXEC,
        data: None,
    },
    MountSpec {
        target: "/sys",
        fstype: "sysfs",
        flags: NOSUID_NODEV_NOEXEC,
        data: None,
    },
    MountSpec {
        target: "/tmp",
        fstype: "tmpfs",
        flags: NOSUID_NODEV_NOEXEC,
        data: Some("mode=1777,size=16m"),
    },
    MountSpec {
        target: "/run",
        fstype: "tmpfs",
        flags: NOSUID_NODEV_NOEXEC,
        data: Some("mode=0755,size=4m"),
    },
];

/// What a successful mount step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mounted {
    /// Mounted now.
    Now,
    /// Something was already mounted there.
    Already,
}

/// Whether `target` is a mount point: on a different device from its parent.
fn is_mount_point(target: &Path) -> io::Result<bool> {
    let parent = target.parent().unwrap_or(Path::new("/"));
    Ok(std::fs::metadata(target)?.dev() != std::fs::metadata(parent)?.dev())
}

/// Mounts one file system, creating its mount point first.
pub fn mount_one(spec: &MountSpec) -> io::Result<Mounted> {
    let target = Path::new(spec.target);
    std::fs::create_dir_all(target)?;
    if is_mount_point(target)? {
        return Ok(Mounted::Already);
    }
    match mount(
        Some(spec.fstype),
        target,
        Some(spec.fstype),
        spec.flags,
        spec.data,
    ) {
        Ok(()) => Ok(Mounted::Now),
        Err(Errno::EBUSY) => Ok(Mounted::Already),
        Err(e) => Err(e.into()),
    }
}

/// A console line for one mount's outcome.
pub fn describe(spec: &MountSpec, outcome: &io::Result<Mounted>) -> String {
    let options = spec.data.map(|d| format!(" ({d})")).unwrap_or_default();
    match outcome {
        Ok(Mounted::Now) => format!("mounted {} on {}{options}", spec.fstype, spec.target),
        Ok(Mounted::Already) => format!("{} is already mounted", spec.target),
        Err(e) => format!(
            "cannot mount {} on {}: {e}; continuing",
            spec.fstype, spec.target
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_mounts_what_the_enclave_needs_dev_and_proc_first() {
        let targets: Vec<&str> = MOUNTS.iter().map(|m| m.target).collect();
        assert_eq!(targets, ["/dev", "/proc", "/sys", "/tmp", "/run"]);
        let tmp = MOUNTS[3];
        assert_eq!(tmp.fstype, "tmpfs");
        assert!(tmp.data.unwrap().contains("mode=1777"));
        assert!(tmp.data.unwrap().contains("size="));
        assert!(
            MOUNTS
                .iter()
                .all(|m| m.flags.contains(MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC))
        );
    }

    #[test]
    fn the_root_of_a_mount_is_a_mount_point_and_a_plain_directory_is_not() {
        let dir = std::env::temp_dir().join(format!("nitrosync-init-mp-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert!(!is_mount_point(&dir).unwrap());
        std::fs::remove_dir(&dir).unwrap();
        // /proc is its own file system wherever these tests run.
        assert!(is_mount_point(Path::new("/proc")).unwrap());
    }

    #[test]
    fn outcomes_read_as_one_line() {
        let tmp = &MOUNTS[3];
        assert_eq!(
            describe(tmp, &Ok(Mounted::Now)),
            "mounted tmpfs on /tmp (mode=1777,size=16m)"
        );
        assert_eq!(
            describe(&MOUNTS[1], &Ok(Mounted::Already)),
            "/proc is already mounted"
        );
        let err = describe(&MOUNTS[2], &Err(Errno::EPERM.into()));
        assert!(err.starts_with("cannot mount sysfs on /sys: ") && err.ends_with("; continuing"));
    }
}
