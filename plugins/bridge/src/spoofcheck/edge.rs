//! ipspoofchk's port is a host's edge port. Frames to the IEEE reserved group
//! addresses (01:80:c2:00:00:0X) never reach the bridge's PREROUTING hook, so
//! neither spoof check sees them: the bridge learns their source MAC and hands
//! them to the port's own network stack, or to its STP. So the port learns no
//! MAC (the container's is pinned: see `MacPin`), a BPDU on it disables it, and
//! the node's stack takes no IPv6 from it, no unicast IPv4, no IPv4 from a source
//! it would not route back to it (where the node's own `rp_filter` is not loose),
//! and no neighbour from its ARP. Nor do multicast queries make it a multicast
//! router port, to which the bridge would send all multicast. None of it is
//! needed by a host: its frames to the node go through the bridge.

use libcni::host::sysctl;
use libcni::netlink::{BridgePortFlags, Link};
use libcni::CniError;

/// The port flags of an edge port, set with the port's other flags.
pub fn flags() -> BridgePortFlags {
    BridgePortFlags {
        learning: Some(false),
        bpdu_guard: Some(true),
        multicast_router: Some(false),
        ..Default::default()
    }
}

/// The host veth's sysctls: the key, its value, and whether a kernel without
/// the family (no /proc/sys/net/ipv6) may lack it.
fn sysctls(port: &str) -> [(String, &'static str, bool); 4] {
    let ipv4 = |key: &str| format!("net/ipv4/conf/{port}/{key}");
    [
        (format!("net/ipv6/conf/{port}/disable_ipv6"), "1", true),
        (ipv4("drop_unicast_in_l2_multicast"), "1", false),
        // Strict: the node routes the pod's addresses through the bridge.
        (ipv4("rp_filter"), "1", false),
        // Answer no ARP request here, so none creates a neighbour entry.
        (ipv4("arp_ignore"), "8", false),
    ]
}

fn family_absent(key: &str) -> bool {
    let family = key.split('/').take(2).collect::<Vec<_>>().join("/");
    !std::path::Path::new("/proc/sys").join(family).exists()
}

/// Closes the port's own stack to what it receives (before the container end is up).
pub fn close_stack(port: &str) -> Result<(), CniError> {
    for (key, value, optional) in sysctls(port) {
        if optional && family_absent(&key) {
            continue;
        }
        sysctl::write(&key, value)?;
    }
    Ok(())
}

/// CHECK: the port's flags and sysctls are still an edge port's.
pub fn check(port: &Link) -> Result<(), CniError> {
    let failed =
        |what: &str| CniError::internal(format!("ipspoofchk: host veth {:?} {what}", port.name));
    if port.learning != Some(false) {
        return Err(failed("learns MACs"));
    }
    if port.bpdu_guard != Some(true) {
        return Err(failed("has no BPDU guard"));
    }
    if port.multicast_router != Some(false) {
        return Err(failed("may become a multicast router port"));
    }
    for (key, value, optional) in sysctls(&port.name) {
        if optional && family_absent(&key) {
            continue;
        }
        let now = sysctl::read(&key)?;
        if now.trim() != value {
            return Err(failed(&format!("has {key} = {}, not {value}", now.trim())));
        }
    }
    Ok(())
}
