//! What an ADD has made so far, undone in reverse when the ADD fails.

use libcni::netlink::{LinkId, Netlink};

use crate::masq::Masquerade;
use crate::spoofcheck::SpoofCheck;
use crate::vlan::VlanGateway;

/// What an ADD made so far; undone on drop unless the ADD succeeded.
#[derive(Default)]
pub struct Rollback {
    pub host_veth: Option<String>,
    pub created_bridge: Option<String>,
    /// The gateway interface this ADD made (and marked).
    pub vlan_gateway: Option<VlanGateway>,
    /// The macspoofchk rules this ADD wrote.
    pub spoofcheck: Option<SpoofCheck>,
    pub masquerade: Option<Masquerade>,
    pub done: bool,
}

impl Drop for Rollback {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        // Only the rules this ADD wrote: their jump matches our host veth.
        if let (Some(spoofcheck), Some(host_veth)) = (&self.spoofcheck, &self.host_veth) {
            if let Err(e) = spoofcheck.undo(host_veth) {
                libcni::log_warn!("rollback: {e}");
            }
        }
        if let Some(masquerade) = &self.masquerade {
            if let Err(e) = masquerade.teardown() {
                libcni::log_warn!("rollback: {e}");
            }
        }
        let Ok(mut nl) = Netlink::open() else { return };
        if let Some(name) = &self.host_veth {
            if let Err(e) = nl.delete_link_if_present(name) {
                libcni::log_warn!("rollback: {e}");
            }
        }
        // As DEL does: only while it is ours and no other ADD has put a port in its VLAN.
        if let Some(gateway) = &self.vlan_gateway {
            if let Err(e) = gateway.remove_if_unused() {
                libcni::log_warn!("rollback: {e}");
            }
        }
        // A bridge this ADD created goes too, unless another ADD has put a port on it.
        if let Some(bridge) = &self.created_bridge {
            let ports = nl.require_link(&LinkId::Name(bridge)).and_then(|b| {
                nl.list_links().map(|links| {
                    links
                        .iter()
                        .filter(|l| l.controller == Some(b.index))
                        .count()
                })
            });
            if ports.is_ok_and(|n| n == 0) {
                let _ = nl.delete_link_if_present(bridge);
            }
        }
    }
}
