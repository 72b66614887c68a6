//! Bringing up the loopback interface `lo` with one rtnetlink request (`RTM_NEWLINK` setting
//! `IFF_UP`), so that anything in the enclave can use 127.0.0.1. The enclave program itself
//! talks only vsock; a failure here is reported and the boot goes on.

use std::io;
use std::os::fd::AsRawFd as _;
use std::time::Duration;

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::socket::{
    AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType, recv, sendto, socket,
};

/// The interface index of `lo`: the kernel registers the loopback device first, with
/// `LOOPBACK_IFINDEX` 1, in every network namespace.
pub const LOOPBACK_IFINDEX: i32 = 1;

const RTM_NEWLINK: u16 = 16;
const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const IFF_UP: u32 = 0x1;
/// `struct nlmsghdr` (16 bytes) and `struct ifinfomsg` (16 bytes).
const REQUEST_LEN: usize = 32;
/// How long to wait for the kernel's acknowledgement.
const ACK_TIMEOUT: Duration = Duration::from_secs(1);

/// The request: `nlmsghdr { len, RTM_NEWLINK, REQUEST|ACK, seq, pid 0 }` then
/// `ifinfomsg { AF_UNSPEC, 0, type 0, index, flags IFF_UP, change IFF_UP }`, in the host's
/// byte order as netlink wants.
pub fn request(index: i32, seq: u32) -> [u8; REQUEST_LEN] {
    let mut m = [0u8; REQUEST_LEN];
    m[0..4].copy_from_slice(&u32::try_from(REQUEST_LEN).unwrap_or(0).to_ne_bytes());
    m[4..6].copy_from_slice(&RTM_NEWLINK.to_ne_bytes());
    m[6..8].copy_from_slice(&(NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
    m[8..12].copy_from_slice(&seq.to_ne_bytes());
    // m[12..16]: pid 0 (the kernel); m[16..20]: family AF_UNSPEC, padding, type 0.
    m[20..24].copy_from_slice(&index.to_ne_bytes());
    m[24..28].copy_from_slice(&IFF_UP.to_ne_bytes());
    m[28..32].copy_from_slice(&IFF_UP.to_ne_bytes());
    m
}

/// Reads the kernel's answer to request `seq`: an `NLMSG_ERROR` message whose error is 0 on
/// success or a negative errno.
pub fn parse_ack(answer: &[u8], seq: u32) -> io::Result<()> {
    let invalid = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_owned());
    let field = |at: usize, len: usize| answer.get(at..at + len);
    let (Some(kind), Some(got_seq), Some(error)) = (field(4, 2), field(8, 4), field(16, 4)) else {
        return Err(invalid("short netlink answer"));
    };
    if u16::from_ne_bytes([kind[0], kind[1]]) != NLMSG_ERROR {
        return Err(invalid("the netlink answer is not an acknowledgement"));
    }
    if u32::from_ne_bytes([got_seq[0], got_seq[1], got_seq[2], got_seq[3]]) != seq {
        return Err(invalid("the netlink answer is for another request"));
    }
    match i32::from_ne_bytes([error[0], error[1], error[2], error[3]]) {
        0 => Ok(()),
        e => Err(io::Error::from_raw_os_error(
            e.checked_neg().unwrap_or(i32::MAX),
        )),
    }
}

/// Sets `lo` up and waits for the kernel to acknowledge it.
pub fn up() -> io::Result<()> {
    let fd = socket(
        AddressFamily::Netlink,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        SockProtocol::NetlinkRoute,
    )?;
    let seq = 1;
    sendto(
        fd.as_raw_fd(),
        &request(LOOPBACK_IFINDEX, seq),
        &NetlinkAddr::new(0, 0),
        MsgFlags::empty(),
    )?;
    let limit = PollTimeout::try_from(ACK_TIMEOUT).unwrap_or(PollTimeout::MAX);
    let mut answer = [0u8; 512];
    loop {
        let mut fds = [PollFd::new(
            std::os::fd::AsFd::as_fd(&fd),
            PollFlags::POLLIN,
        )];
        match poll(&mut fds, limit) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the kernel did not acknowledge",
                ));
            }
            Ok(_) => {}
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
        match recv(fd.as_raw_fd(), &mut answer, MsgFlags::empty()) {
            Ok(n) => return parse_ack(&answer[..n], seq),
            Err(Errno::EAGAIN | Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_is_an_ifinfomsg_setting_iff_up() {
        let m = request(1, 7);
        let u32_at = |at: usize| u32::from_ne_bytes(m[at..at + 4].try_into().unwrap());
        let u16_at = |at: usize| u16::from_ne_bytes(m[at..at + 2].try_into().unwrap());
        assert_eq!(u32_at(0), 32);
        assert_eq!(u16_at(4), 16, "RTM_NEWLINK");
        assert_eq!(u16_at(6), 0x5, "NLM_F_REQUEST | NLM_F_ACK");
        assert_eq!(u32_at(8), 7);
        assert_eq!(u32_at(12), 0);
        assert_eq!(&m[16..20], &[0, 0, 0, 0], "AF_UNSPEC, pad, type 0");
        assert_eq!(u32_at(20), 1, "ifindex");
        assert_eq!((u32_at(24), u32_at(28)), (1, 1), "IFF_UP set and changed");
    }

    fn ack(kind: u16, seq: u32, error: i32) -> Vec<u8> {
        let mut a = vec![0u8; 36];
        a[0..4].copy_from_slice(&36u32.to_ne_bytes());
        a[4..6].copy_from_slice(&kind.to_ne_bytes());
        a[8..12].copy_from_slice(&seq.to_ne_bytes());
        a[16..20].copy_from_slice(&error.to_ne_bytes());
        a
    }

    #[test]
    fn acknowledgements_are_read_and_errors_named() {
        assert!(parse_ack(&ack(NLMSG_ERROR, 3, 0), 3).is_ok());
        let e = parse_ack(&ack(NLMSG_ERROR, 3, -1), 3).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(1), "EPERM");
        assert!(
            parse_ack(&ack(NLMSG_ERROR, 4, 0), 3).is_err(),
            "another seq"
        );
        assert!(parse_ack(&ack(RTM_NEWLINK, 3, 0), 3).is_err(), "not an ack");
        assert!(parse_ack(&[0u8; 10], 3).is_err(), "short");
        assert!(parse_ack(&ack(NLMSG_ERROR, 3, i32::MIN), 3).is_err());
    }
}
