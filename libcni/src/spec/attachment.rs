//! One attachment's identity (network, container ID, interface name) and every name
//! derived from it: the link mark, the macspoofchk and masquerade names, the cache
//! file names. Each rule is written here once, so that ADD, CHECK, DEL and GC, and
//! the runtime, find the same objects by the same computation.

use crate::spec::hash::sha512_hex;

/// The three values that name an attachment, as a runtime passes them.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AttachmentId {
    pub network: String,
    pub container_id: String,
    pub ifname: String,
}

/// The longest `<ref>` that keeps `cni-br-iface-<ref>-mac` within a chain name (255
/// bytes) and `macspoofchk-<ref>` within a rule comment (253).
const SPOOFCHECK_REFERENCE_MAX: usize = 238;

/// knftables truncates comments to this length.
const MASQUERADE_COMMENT_MAX: usize = 128;

/// The longest file name most filesystems accept.
const FILE_NAME_MAX: usize = 255;

impl AttachmentId {
    pub fn new(network: &str, container_id: &str, ifname: &str) -> AttachmentId {
        AttachmentId {
            network: network.to_string(),
            container_id: container_id.to_string(),
            ifname: ifname.to_string(),
        }
    }

    /// The mark put on every container link the suite makes (its IFLA_IFALIAS): a
    /// hash of the three. DEL deletes a link only when it can show the link is its
    /// attachment's; the mark shows it even without prevResult (a runtime's DEL
    /// after a failed ADD has none).
    pub fn link_mark(&self) -> String {
        let input = format!("{}\0{}\0{}", self.network, self.container_id, self.ifname);
        sha512_hex(28, "cni:", input.as_bytes())
    }

    /// `<containerID>-<ifname>`, the key of an attachment's macspoofchk chains (Go's),
    /// hashed when a long container ID would make names the kernel refuses.
    pub fn spoofcheck_reference(&self) -> String {
        fitting_name(
            &format!("{}-{}", self.container_id, self.ifname),
            SPOOFCHECK_REFERENCE_MAX,
        )
    }

    /// Go's hash of the network name that starts every nftables masquerade comment.
    pub fn masquerade_network_hash(network: &str) -> String {
        sha512_hex(16, "", network.as_bytes())
    }

    /// `<network hash>-<instance hash>`: what starts the comment of each of the
    /// attachment's nftables masquerade rules (Go's).
    pub fn masquerade_instance_hash(&self) -> String {
        let instance = format!("{}:{}", self.ifname, self.container_id);
        format!(
            "{}-{}",
            Self::masquerade_network_hash(&self.network),
            sha512_hex(16, "", instance.as_bytes())
        )
    }

    /// The comment of an attachment's nftables masquerade rules, as Go writes it
    /// (`<instance hash>, net: …, if: …, id: …`, truncated).
    pub fn masquerade_comment(&self) -> String {
        let mut comment = format!(
            "{}, net: {}, if: {}, id: {}",
            self.masquerade_instance_hash(),
            self.network.replace('"', ""),
            self.ifname.replace('"', ""),
            self.container_id.replace('"', "")
        );
        comment.truncate(MASQUERADE_COMMENT_MAX);
        comment
    }

    /// `CNI-` and the SHA-512 of network name and container ID, 28 characters in
    /// all: the iptables masquerade chain (Go's; the interface is not part of it).
    pub fn iptables_chain(&self) -> String {
        let input = format!("{}{}", self.network, self.container_id);
        sha512_hex(28, "CNI-", input.as_bytes())
    }

    /// The comment of the iptables masquerade rules (Go's).
    pub fn iptables_comment(&self) -> String {
        format!("name: {:?} id: {:?}", self.network, self.container_id)
    }

    /// sriov's cache file: `<containerID>-<ifname>`, as sriov-cni names it.
    pub fn sriov_cache_name(&self) -> String {
        fitting_name(
            &format!("{}-{}", self.container_id, self.ifname),
            FILE_NAME_MAX,
        )
    }

    /// tuning's state file: `<containerID>_<ifname>.json`, Go's name.
    pub fn tuning_state_name(&self) -> String {
        fitting_name(
            &format!("{}_{}.json", self.container_id, self.ifname),
            FILE_NAME_MAX,
        )
    }

    /// The runtime's result cache file: `<network>-<containerID>-<ifname>` (Go's).
    pub fn runtime_cache_name(&self) -> String {
        fitting_name(
            &format!("{}-{}-{}", self.network, self.container_id, self.ifname),
            FILE_NAME_MAX,
        )
    }
}

/// `name` as a name that fits `max` bytes: itself when it does, else its first bytes
/// and a hash of the whole, so that names built from long request values (a
/// container ID has no length limit) stay distinct and are found again by the same
/// computation.
pub fn fitting_name(name: &str, max: usize) -> String {
    if name.len() <= max {
        return name.to_string();
    }
    let hash = sha512_hex(32, "", name.as_bytes());
    let mut keep = max.saturating_sub(hash.len() + 1);
    while !name.is_char_boundary(keep) {
        keep -= 1;
    }
    format!("{}~{hash}", &name[..keep])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> AttachmentId {
        AttachmentId::new("net1", "c0ffee", "eth1")
    }

    #[test]
    fn short_names_are_the_go_names() {
        assert_eq!(id().spoofcheck_reference(), "c0ffee-eth1");
        assert_eq!(id().sriov_cache_name(), "c0ffee-eth1");
        assert_eq!(id().tuning_state_name(), "c0ffee_eth1.json");
        assert_eq!(id().runtime_cache_name(), "net1-c0ffee-eth1");
        assert_eq!(id().iptables_comment(), "name: \"net1\" id: \"c0ffee\"");
        assert!(id().iptables_chain().starts_with("CNI-"));
        assert_eq!(id().iptables_chain().len(), 28);
        assert!(id().link_mark().starts_with("cni:"));
    }

    #[test]
    fn the_masquerade_comment_starts_with_the_network_hash() {
        let comment = id().masquerade_comment();
        let network_hash = AttachmentId::masquerade_network_hash("net1");
        assert!(
            comment.starts_with(&format!("{network_hash}-")),
            "{comment}"
        );
        assert!(
            comment.ends_with(", net: net1, if: eth1, id: c0ffee"),
            "{comment}"
        );
        let long = AttachmentId::new("net1", &"x".repeat(300), "eth1");
        assert_eq!(long.masquerade_comment().len(), MASQUERADE_COMMENT_MAX);
    }

    #[test]
    fn every_derived_name_tells_attachments_apart() {
        let others = [
            AttachmentId::new("net2", "c0ffee", "eth1"),
            AttachmentId::new("net1", "c0ffef", "eth1"),
            AttachmentId::new("net1", "c0ffee", "eth2"),
        ];
        for other in &others {
            assert_ne!(id().link_mark(), other.link_mark());
            assert_ne!(id().masquerade_comment(), other.masquerade_comment());
            assert_ne!(id().runtime_cache_name(), other.runtime_cache_name());
        }
    }

    #[test]
    fn long_names_fit_and_stay_distinct() {
        let a = AttachmentId::new("n", &"a".repeat(400), "eth0");
        let b = AttachmentId::new("n", &format!("{}b", "a".repeat(399)), "eth0");
        assert!(a.spoofcheck_reference().len() <= SPOOFCHECK_REFERENCE_MAX);
        assert!(a.runtime_cache_name().len() <= FILE_NAME_MAX);
        assert_ne!(a.spoofcheck_reference(), b.spoofcheck_reference());
        assert_ne!(a.sriov_cache_name(), b.sriov_cache_name());
        assert!(fitting_name(&"é".repeat(200), 100).len() <= 100);
    }
}
