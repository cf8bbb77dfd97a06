//! What an ADD has made so far, undone in reverse when the ADD fails.

use libcni::netlink::{LinkId, Netlink};

use libcni::netlink::nftables::Nftables;
use libcni::CniError;

use crate::masq;

/// What an ADD made so far; undone on drop unless the ADD succeeded.
#[derive(Default)]
pub struct Rollback {
    pub host_veth: Option<String>,
    pub created_bridge: Option<String>,
    /// The bridge and VLAN of the gateway interface this ADD made (and marked).
    pub vlan_gateway: Option<(String, u16)>,
    /// The macspoofchk reference whose rules this ADD wrote.
    pub spoofcheck: Option<String>,
    pub masquerade: Option<(String, String, String)>,
    pub done: bool,
}

impl Drop for Rollback {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        // Only the rules this ADD wrote: their jump matches our host veth.
        if let (Some(reference), Some(host_veth)) = (&self.spoofcheck, &self.host_veth) {
            let removed = Nftables::open()
                .map_err(CniError::from)
                .and_then(|mut nft| {
                    let mut nl = Netlink::open()?;
                    crate::check::remove_spoofcheck(
                        &mut nft,
                        &mut nl,
                        reference,
                        Some(host_veth),
                        false,
                    )
                });
            if let Err(e) = removed {
                libcni::log_warn!("rollback: {e}");
            }
        }
        if let Some((network, ifname, cid)) = &self.masquerade {
            if let Err(e) = masq::teardown(network, ifname, cid) {
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
        if let Some((bridge, vlan)) = &self.vlan_gateway {
            if let Err(e) = crate::vlan::remove_unused_vlan_gateway(bridge, *vlan) {
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
