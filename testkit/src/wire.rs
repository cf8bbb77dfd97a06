//! Frames a test forges and puts on the wire itself, from a packet socket in a
//! netns the test made: what a tenant's pod could send, without a tool that takes
//! the frame on its command line.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::Path;

use libcni::mac::MacAddr;
use libcni::netns::NetNs;

pub const BROADCAST: MacAddr = MacAddr([0xff; 6]);
pub const ETH_P_IP: u16 = 0x0800;
pub const ETH_P_ARP: u16 = 0x0806;
pub const ETH_P_IPV6: u16 = 0x86dd;
pub const ETH_P_8021Q: u16 = 0x8100;
pub const ETH_P_LLDP: u16 = 0x88cc;
pub const ARP_REQUEST: u16 = 1;
pub const ARP_REPLY: u16 = 2;
/// The NA flag that asks receivers to replace the link-layer address they have.
pub const NA_OVERRIDE: u8 = 0x20;

/// Runs `work` on a thread of its own in the netns `/run/netns/<netns>`.
pub fn in_netns<T: Send>(netns: &str, work: impl FnOnce() -> T + Send) -> T {
    let path = Path::new("/run/netns").join(netns);
    let ns = NetNs::open(&path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    ns.run(work)
        .unwrap_or_else(|e| panic!("run in {}: {e}", path.display()))
}

/// Sends each frame whole (link header included) out of `ifname` in `netns`.
pub fn send_frames(netns: &str, ifname: &str, frames: &[Vec<u8>]) {
    let name = std::ffi::CString::new(ifname).unwrap();
    let sent = in_netns(netns, || {
        // SAFETY: a NUL-terminated name, read only.
        let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
        frames
            .iter()
            .try_for_each(|frame| libcni::host::announce::send_frame(index, frame))
    });
    if let Err(e) = sent {
        panic!("sending from {ifname} in {netns}: {e}");
    }
}

/// The frames `ifname` in `netns` receives while `during` runs, and for `wait`
/// after it.
pub fn frames_received(
    netns: &str,
    ifname: &str,
    wait: std::time::Duration,
    during: impl FnOnce() + Send,
) -> Vec<Vec<u8>> {
    in_netns(netns, || crate::capture_frames(ifname, wait, during))
}

/// An Ethernet frame.
pub fn ethernet(dst: MacAddr, src: MacAddr, ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut frame = dst.octets().to_vec();
    frame.extend(src.octets());
    frame.extend(ethertype.to_be_bytes());
    frame.extend(payload);
    frame
}

/// An Ethernet frame with an 802.1Q tag of `vid`.
pub fn ethernet_tagged(
    dst: MacAddr,
    src: MacAddr,
    vid: u16,
    ethertype: u16,
    payload: &[u8],
) -> Vec<u8> {
    let mut inner = vid.to_be_bytes().to_vec();
    inner.extend(ethertype.to_be_bytes());
    inner.extend(payload);
    ethernet(dst, src, ETH_P_8021Q, &inner)
}

/// An Ethernet/IPv4 ARP packet.
pub fn arp(op: u16, sha: MacAddr, spa: Ipv4Addr, tha: MacAddr, tpa: Ipv4Addr) -> Vec<u8> {
    let mut packet = vec![0, 1, 0x08, 0x00, 6, 4];
    packet.extend(op.to_be_bytes());
    packet.extend(sha.octets());
    packet.extend(spa.octets());
    packet.extend(tha.octets());
    packet.extend(tpa.octets());
    packet
}

fn checksum(chunks: &[&[u8]]) -> u16 {
    let mut sum = 0u32;
    for chunk in chunks {
        for pair in chunk.chunks(2) {
            let word = u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]);
            sum += u32::from(word);
        }
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An IPv4 packet (no options, don't fragment) carrying `payload` of `protocol`.
fn ipv4(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, payload: &[u8]) -> Vec<u8> {
    let mut packet = vec![0x45, 0];
    packet.extend((20 + payload.len() as u16).to_be_bytes());
    packet.extend([0, 0, 0x40, 0, 64, protocol, 0, 0]);
    packet.extend(src.octets());
    packet.extend(dst.octets());
    let header = checksum(&[&packet]);
    packet[10..12].copy_from_slice(&header.to_be_bytes());
    packet.extend(payload);
    packet
}

/// An IPv4 packet carrying UDP from `src`:`sport` to `dst`:`dport`.
pub fn udp4(src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16, data: &[u8]) -> Vec<u8> {
    let mut udp = sport.to_be_bytes().to_vec();
    udp.extend(dport.to_be_bytes());
    udp.extend((8 + data.len() as u16).to_be_bytes());
    udp.extend([0, 0]); // no checksum: allowed over IPv4
    udp.extend(data);
    ipv4(src, dst, 17, &udp)
}

/// An IPv4 packet carrying an ICMP echo request whose data is `data`.
pub fn echo4(src: Ipv4Addr, dst: Ipv4Addr, data: &[u8]) -> Vec<u8> {
    let mut icmp = vec![8, 0, 0, 0, 0x12, 0x34, 0, 1];
    icmp.extend(data);
    let sum = checksum(&[&icmp]);
    icmp[2..4].copy_from_slice(&sum.to_be_bytes());
    ipv4(src, dst, 1, &icmp)
}

/// An IPv6 packet with `next` as its payload's protocol, the upper-layer
/// checksum at `checksum_at` in the payload filled in.
fn ipv6(
    src: Ipv6Addr,
    dst: Ipv6Addr,
    next: u8,
    mut payload: Vec<u8>,
    checksum_at: usize,
) -> Vec<u8> {
    let len = payload.len() as u32;
    let pseudo: Vec<u8> = [&src.octets()[..], &dst.octets()[..], &len.to_be_bytes()[..]]
        .concat()
        .into_iter()
        .chain([0, 0, 0, next])
        .collect();
    let sum = checksum(&[&pseudo, &payload]);
    payload[checksum_at..checksum_at + 2].copy_from_slice(&sum.to_be_bytes());
    let mut packet = vec![0x60, 0, 0, 0];
    packet.extend((len as u16).to_be_bytes());
    packet.extend([next, 255]);
    packet.extend(src.octets());
    packet.extend(dst.octets());
    packet.extend(payload);
    packet
}

/// An IPv6 packet carrying UDP.
pub fn udp6(src: Ipv6Addr, dst: Ipv6Addr, sport: u16, dport: u16, data: &[u8]) -> Vec<u8> {
    let mut udp = sport.to_be_bytes().to_vec();
    udp.extend(dport.to_be_bytes());
    udp.extend((8 + data.len() as u16).to_be_bytes());
    udp.extend([0, 0]);
    udp.extend(data);
    ipv6(src, dst, 17, udp, 6)
}

/// An IPv6 packet carrying an ICMPv6 message of `kind` and `code` whose body
/// after the checksum is `rest`.
pub fn icmpv6(src: Ipv6Addr, dst: Ipv6Addr, kind: u8, code: u8, rest: &[u8]) -> Vec<u8> {
    let mut icmp = vec![kind, code, 0, 0];
    icmp.extend(rest);
    ipv6(src, dst, 58, icmp, 2)
}

/// One fragment of an IPv6 packet: a fragment header (identification `id`,
/// `offset` in 8-byte units, `more` fragments to come) whose next header is
/// `next`, then `payload`, the fragment's part of what follows that header.
pub fn ipv6_fragment(
    src: Ipv6Addr,
    dst: Ipv6Addr,
    next: u8,
    (offset, more, id): (u16, bool, u32),
    payload: &[u8],
) -> Vec<u8> {
    let mut packet = vec![0x60, 0, 0, 0];
    packet.extend((8 + payload.len() as u16).to_be_bytes());
    packet.extend([44, 255]);
    packet.extend(src.octets());
    packet.extend(dst.octets());
    packet.extend([next, 0]);
    packet.extend((offset << 3 | u16::from(more)).to_be_bytes());
    packet.extend(id.to_be_bytes());
    packet.extend(payload);
    packet
}

/// A BOOTP/DHCP client message (BOOTREQUEST) with `chaddr`, then `rest`.
pub fn bootp_request(chaddr: MacAddr, rest: &[u8]) -> Vec<u8> {
    let mut message = vec![1, 1, 6, 0, 0x12, 0x34, 0x56, 0x78];
    message.extend([0; 20]); // secs, flags, ciaddr, yiaddr, siaddr, giaddr
    message.extend(chaddr.octets());
    message.extend([0; 10]);
    message.extend(rest);
    message
}

/// An NDP option carrying a link-layer address (1: source, 2: target).
pub fn lladdr_option(kind: u8, mac: MacAddr) -> Vec<u8> {
    let mut option = vec![kind, 1];
    option.extend(mac.octets());
    option
}

/// An IPv6 packet carrying a neighbour solicitation (135) or advertisement (136)
/// for `target`, with `flags` (NA) and `options`.
pub fn neighbor_message(
    src: Ipv6Addr,
    dst: Ipv6Addr,
    kind: u8,
    flags: u8,
    target: Ipv6Addr,
    options: &[u8],
) -> Vec<u8> {
    let mut body = vec![flags, 0, 0, 0];
    body.extend(target.octets());
    body.extend(options);
    icmpv6(src, dst, kind, 0, &body)
}

/// The solicited-node multicast address of `address`, and its MAC.
pub fn solicited_node(address: Ipv6Addr) -> (Ipv6Addr, MacAddr) {
    let o = address.octets();
    let group = Ipv6Addr::new(
        0xff02,
        0,
        0,
        0,
        0,
        1,
        0xff00 | u16::from(o[13]),
        u16::from_be_bytes([o[14], o[15]]),
    );
    let g = group.octets();
    (group, MacAddr([0x33, 0x33, g[12], g[13], g[14], g[15]]))
}

/// The all-nodes group ff02::1 and its MAC.
pub fn all_nodes() -> (Ipv6Addr, MacAddr) {
    (
        Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1),
        MacAddr([0x33, 0x33, 0, 0, 0, 1]),
    )
}

/// Whether any of `frames` holds `needle` (a probe's packet: its link header may
/// differ, as when a bridge takes a VLAN tag off).
pub fn any_holds(frames: &[Vec<u8>], needle: &[u8]) -> bool {
    frames
        .iter()
        .any(|f| f.windows(needle.len()).any(|w| w == needle))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ipv4_header_checksum_verifies() {
        let packet = udp4(
            "10.0.0.1".parse().unwrap(),
            "10.0.0.2".parse().unwrap(),
            1,
            2,
            b"x",
        );
        assert_eq!(checksum(&[&packet[..20]]), 0);
    }

    #[test]
    fn solicited_node_groups_are_the_rfc_4291_ones() {
        let (group, mac) = solicited_node("fd00::12:3456".parse().unwrap());
        assert_eq!(group, "ff02::1:ff12:3456".parse::<Ipv6Addr>().unwrap());
        assert_eq!(mac, MacAddr([0x33, 0x33, 0xff, 0x12, 0x34, 0x56]));
    }
}
