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
use libcni::netlink::{BridgePortFlags, Ipv4Conf, Link, Netlink};
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

/// The host veth's IPv4 settings, set in one link change.
const IPV4: [Ipv4Conf; 3] = [
    Ipv4Conf::DropUnicastInL2Multicast(true),
    // Strict: the node routes the pod's addresses through the bridge.
    Ipv4Conf::RpFilter(1),
    // Answer no ARP request here, so none creates a neighbour entry.
    Ipv4Conf::ArpIgnore(8),
];

/// The host veth's sysctls, the key and its value: IPv6 first (no link change sets
/// it), skipped on a kernel without IPv6; then [`IPV4`].
fn sysctls(port: &str) -> Vec<(String, String)> {
    let disable_ipv6 = format!("net/ipv6/conf/{port}/disable_ipv6");
    let ipv6 = ipv6_present().then(|| (disable_ipv6, "1".to_string()));
    let ipv4 = IPV4.iter().map(|setting| {
        let key = format!("net/ipv4/conf/{port}/{}", setting.key());
        (key, setting.value().to_string())
    });
    ipv6.into_iter().chain(ipv4).collect()
}

fn ipv6_present() -> bool {
    std::path::Path::new("/proc/sys/net/ipv6").exists()
}

/// Closes the port's own stack to what it receives (before the container end is up).
pub fn close_stack(nl: &mut Netlink, port: &Link) -> Result<(), CniError> {
    if ipv6_present() {
        sysctl::write(&format!("net/ipv6/conf/{}/disable_ipv6", port.name), "1")?;
    }
    nl.change_link(port.index).ipv4_conf(&IPV4).apply()?;
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
    for (key, value) in sysctls(&port.name) {
        let now = sysctl::read(&key)?;
        if now.trim() != value {
            return Err(failed(&format!("has {key} = {}, not {value}", now.trim())));
        }
    }
    Ok(())
}
