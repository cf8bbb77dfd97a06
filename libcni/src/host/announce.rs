//! Telling the network where addresses now live: a gratuitous ARP for each IPv4
//! address and an unsolicited neighbour advertisement for each IPv6 one, sent on the
//! interface that carries them (as sriov-cni does after it moved a VF), so that
//! switches and peers learn the new location at once instead of after their caches
//! expire.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use crate::netlink::{LinkId, Netlink};
use crate::netns::NetNs;
use crate::spec::error::CniError;

const BROADCAST: [u8; 6] = [0xff; 6];
/// ff02::1 (all nodes) as an Ethernet multicast address.
const ALL_NODES_MAC: [u8; 6] = [0x33, 0x33, 0, 0, 0, 1];
const ETH_P_ARP: u16 = 0x0806;
const ETH_P_IPV6: u16 = 0x86dd;

/// A gratuitous ARP request: who-has `ip`, tell `ip` at `mac`, to everyone.
pub fn gratuitous_arp(mac: [u8; 6], ip: Ipv4Addr) -> Vec<u8> {
    let mut frame = ethernet(BROADCAST, mac, ETH_P_ARP);
    frame.extend([0, 1, 0x08, 0x00, 6, 4, 0, 1]); // Ethernet, IPv4, request
    frame.extend(mac);
    frame.extend(ip.octets());
    frame.extend([0; 6]);
    frame.extend(ip.octets());
    frame
}

/// An unsolicited neighbour advertisement (override set) of `ip` at `mac`, from
/// `ip` to all nodes, with the target link-layer address option.
pub fn unsolicited_na(mac: [u8; 6], ip: Ipv6Addr) -> Vec<u8> {
    let destination: Ipv6Addr = "ff02::1".parse().expect("literal");
    let mut icmp = vec![136, 0, 0, 0, 0x20, 0, 0, 0]; // type, code, checksum, O flag
    icmp.extend(ip.octets());
    icmp.extend([2, 1]); // target link-layer address, 8 bytes
    icmp.extend(mac);
    let checksum = icmpv6_checksum(ip, destination, &icmp);
    icmp[2..4].copy_from_slice(&checksum.to_be_bytes());
    let mut frame = ethernet(ALL_NODES_MAC, mac, ETH_P_IPV6);
    frame.extend([0x60, 0, 0, 0]); // version 6
    frame.extend((icmp.len() as u16).to_be_bytes());
    frame.extend([58, 255]); // ICMPv6, hop limit 255 (required for ND)
    frame.extend(ip.octets());
    frame.extend(destination.octets());
    frame.extend(icmp);
    frame
}

fn ethernet(destination: [u8; 6], source: [u8; 6], ethertype: u16) -> Vec<u8> {
    let mut frame = Vec::with_capacity(86);
    frame.extend(destination);
    frame.extend(source);
    frame.extend(ethertype.to_be_bytes());
    frame
}

/// The ICMPv6 checksum over the pseudo-header and the message.
fn icmpv6_checksum(source: Ipv6Addr, destination: Ipv6Addr, message: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut add = |bytes: &[u8]| {
        for chunk in bytes.chunks(2) {
            let word = u16::from_be_bytes([chunk[0], *chunk.get(1).unwrap_or(&0)]);
            sum += u32::from(word);
        }
    };
    add(&source.octets());
    add(&destination.octets());
    add(&(message.len() as u32).to_be_bytes());
    add(&[0, 0, 0, 58]);
    add(message);
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Sends one frame, link header included, on interface `index` of the calling
/// thread's netns.
pub fn send_frame(index: u32, frame: &[u8]) -> std::io::Result<()> {
    // SAFETY: plain socket calls with a zeroed, fully initialized sockaddr_ll.
    unsafe {
        let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let mut address: libc::sockaddr_ll = std::mem::zeroed();
        address.sll_family = libc::AF_PACKET as u16;
        address.sll_ifindex = index as i32;
        address.sll_halen = 6;
        address.sll_addr[..6].copy_from_slice(&frame[..6]);
        let sent = libc::sendto(
            fd,
            frame.as_ptr().cast(),
            frame.len(),
            0,
            (&address as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as u32,
        );
        let error = std::io::Error::last_os_error();
        libc::close(fd);
        if sent < 0 {
            return Err(error);
        }
    }
    Ok(())
}

/// Announces `addresses` on `ifname` in `netns`: waits up to 200 ms for its carrier
/// (a VF that just came up), then sends one gratuitous ARP or unsolicited
/// neighbour advertisement per address. Returns how many frames went out.
pub fn announce(netns: &NetNs, ifname: &str, addresses: &[IpAddr]) -> Result<usize, CniError> {
    let ifname = ifname.to_string();
    let addresses = addresses.to_vec();
    netns.run(move || {
        let mut nl = Netlink::open()?;
        let deadline = Instant::now() + Duration::from_millis(200);
        let mut link = nl.require_link(&LinkId::Name(&ifname))?;
        while !link.oper_up && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
            link = nl.require_link(&LinkId::Name(&ifname))?;
        }
        let mac = link
            .mac
            .map(|mac| mac.octets())
            .ok_or_else(|| CniError::internal(format!("{ifname:?} has no MAC to announce")))?;
        let mut sent = 0;
        for address in &addresses {
            let frame = match address {
                IpAddr::V4(v4) => gratuitous_arp(mac, *v4),
                IpAddr::V6(v6) => unsolicited_na(mac, *v6),
            };
            send_frame(link.index, &frame).map_err(|e| {
                CniError::io(format!("failed to announce {address} on {ifname:?}: {e}"))
            })?;
            sent += 1;
        }
        Ok(sent)
    })?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gratuitous_arp_names_the_address_twice() {
        let frame = gratuitous_arp([2, 0, 0, 0, 0, 1], "10.0.0.5".parse().unwrap());
        assert_eq!(frame.len(), 42);
        assert_eq!(&frame[..6], &BROADCAST);
        assert_eq!(&frame[12..14], &[0x08, 0x06]);
        assert_eq!(&frame[28..32], &[10, 0, 0, 5], "sender");
        assert_eq!(&frame[38..42], &[10, 0, 0, 5], "target");
    }

    #[test]
    fn an_unsolicited_na_has_a_valid_checksum() {
        let ip: Ipv6Addr = "fd00::5".parse().unwrap();
        let frame = unsolicited_na([2, 0, 0, 0, 0, 1], ip);
        assert_eq!(&frame[12..14], &[0x86, 0xdd]);
        assert_eq!(frame[20], 58);
        assert_eq!(frame[21], 255);
        let icmp = &frame[54..];
        assert_eq!(icmp[0], 136);
        // A correct checksum makes the sum over pseudo-header and message zero.
        assert_eq!(icmpv6_checksum(ip, "ff02::1".parse().unwrap(), icmp), 0);
    }
}
