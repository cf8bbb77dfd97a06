//! What an ADD has made so far, undone in reverse when the ADD fails.

use libcni::netlink::{LinkId, Netlink};

use crate::{masq, spoofcheck};

/// What an ADD made so far; undone on drop unless the ADD succeeded.
#[derive(Default)]
pub struct Rollback {
    pub host_veth: Option<String>,
    pub created_bridge: Option<String>,
    pub created_vlan_gateway: Option<String>,
    pub spoofcheck: Option<String>,
    pub masquerade: Option<(String, String, String)>,
    pub done: bool,
}

impl Drop for Rollback {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        if let Some(reference) = &self.spoofcheck {
            if let Err(e) = spoofcheck::teardown(reference) {
                libcni::log_warn!("rollback: {}", e.message);
            }
        }
        if let Some((network, ifname, cid)) = &self.masquerade {
            if let Err(e) = masq::teardown(network, ifname, cid) {
                libcni::log_warn!("rollback: {e}");
            }
        }
        let Ok(mut nl) = Netlink::open() else { return };
        for name in [&self.host_veth, &self.created_vlan_gateway]
            .into_iter()
            .flatten()
        {
            if let Err(e) = nl.delete_link_if_present(name) {
                libcni::log_warn!("rollback: {e}");
            }
        }
        // A bridge this ADD created goes too, unless another ADD has put a port on it.
        if let Some(bridge) = &self.created_bridge {
            let ports = nl
                .require_link(&LinkId::Name(bridge.clone()))
                .and_then(|b| {
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
