//! Frames a plugin put on the wire, read from a packet socket.

use serde_json::Value;

use crate::call::sh;

/// Frames received on `ifname` (of the calling thread's netns) for `wait`.
/// (the test's own packet socket, open before `during` runs). For checking what a
/// plugin puts on the wire, e.g. gratuitous ARPs.
pub fn capture_frames(
    ifname: &str,
    wait: std::time::Duration,
    during: impl FnOnce(),
) -> Vec<Vec<u8>> {
    let link: Value = serde_json::from_str(&sh(&["ip", "-j", "link", "show", ifname])).unwrap();
    let index = link[0]["ifindex"].as_u64().expect("ifindex") as u32;
    let mut frames = Vec::new();
    unsafe {
        let fd = libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            (libc::ETH_P_ALL as u16).to_be() as i32,
        );
        assert!(fd >= 0);
        let mut address: libc::sockaddr_ll = std::mem::zeroed();
        address.sll_family = libc::AF_PACKET as u16;
        address.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
        address.sll_ifindex = index as i32;
        assert_eq!(
            libc::bind(
                fd,
                (&address as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32
            ),
            0
        );
        let timeout = libc::timeval {
            tv_sec: 0,
            tv_usec: 100_000,
        };
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&timeout as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as u32,
        );
        during();
        let deadline = std::time::Instant::now() + wait;
        while std::time::Instant::now() < deadline {
            let mut buffer = [0u8; 2048];
            let n = libc::recv(fd, buffer.as_mut_ptr().cast(), buffer.len(), 0);
            if n > 0 {
                frames.push(buffer[..n as usize].to_vec());
            }
        }
        libc::close(fd);
    }
    frames
}
