//! ipMasq: masquerade traffic from the container's addresses to anything outside
//! their subnet, with the Go plugin's names so that either plugin cleans up the
//! other's rules. Two backends, as Go's `pkg/ip` has them: `nft` (over netlink) and
//! `iptables` (the binaries).

mod iptables;
mod nft;

use ipnet::IpNet;
use libcni::netlink::nftables::Nftables;
use libcni::spec::attachment::AttachmentId;
use libcni::CniError;

use crate::config::MasqBackend;

/// The Go plugin's default: iptables, unless only nftables works.
pub fn default_backend() -> MasqBackend {
    if !iptables::works() && nft::available() {
        MasqBackend::Nftables
    } else {
        MasqBackend::Iptables
    }
}

/// The masquerade of one attachment's addresses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Masquerade {
    id: AttachmentId,
    /// The attachment's addresses; empty when DEL has no prevResult, and then the
    /// teardown takes everything of the attachment's iptables chain.
    addresses: Vec<IpNet>,
}

impl Masquerade {
    pub fn of(id: &AttachmentId, addresses: &[IpNet]) -> Masquerade {
        Masquerade {
            id: id.clone(),
            addresses: addresses.to_vec(),
        }
    }

    /// Masquerades the addresses with `backend`.
    pub fn setup(&self, backend: MasqBackend) -> Result<(), CniError> {
        match backend {
            MasqBackend::Nftables => Ok(nft::setup(&self.addresses, &self.id)?),
            MasqBackend::Iptables => iptables::setup(&self.addresses, &self.id)
                .map_err(|e| CniError::internal(format!("failed to set up ipMasq: {e}"))),
        }
    }

    /// Removes both backends' state for the attachment (it may have been made by
    /// another version or configuration); iptables runs only when it may hold some.
    pub fn teardown(&self) -> Result<(), CniError> {
        let mut errors = libcni::spec::error::ErrorList::new();
        let mut nft = Nftables::open().ok().filter(|_| nft::available());
        if let Some(nft) = nft.as_mut() {
            errors.record(nft::teardown(nft, &self.id).map_err(CniError::from));
        }
        let chain = self.id.iptables_chain();
        let may_exist = nft
            .as_mut()
            .is_none_or(|nft| iptables::chain_may_exist(nft, &chain));
        if may_exist && iptables::installed() {
            errors
                .record(iptables::teardown(&self.id, &self.addresses).map_err(CniError::internal));
        }
        errors.into_result()
    }

    /// Proves, for CHECK, that the masquerade made with `backend` is in place (see
    /// `nft::verify` and `iptables::verify`). Reads only; the error names what is
    /// missing.
    pub fn verify(&self, backend: MasqBackend) -> Result<(), CniError> {
        match backend {
            MasqBackend::Nftables => {
                let mut nft = Nftables::open()?;
                nft::verify(&mut nft, &self.addresses, &self.id)?.map_err(CniError::internal)
            }
            MasqBackend::Iptables => {
                iptables::verify(&self.addresses, &self.id).map_err(CniError::internal)
            }
        }
    }

    /// GC: removes the nftables rules of `network` whose attachment is not in `valid`.
    pub fn gc(network: &str, valid: &[AttachmentId]) -> Result<(), CniError> {
        let Some(mut nft) = Nftables::open().ok().filter(|_| nft::available()) else {
            return Ok(());
        };
        nft::gc(&mut nft, network, valid)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_comments_follow_the_go_plugin() {
        let id = AttachmentId::new("mynet", "cid1", "eth0");
        let chain = id.iptables_chain();
        assert!(chain.starts_with("CNI-") && chain.len() == 28, "{chain}");
        assert_eq!(id.iptables_comment(), "name: \"mynet\" id: \"cid1\"");
        let comment = id.masquerade_comment();
        assert!(
            comment.ends_with(", net: mynet, if: eth0, id: cid1"),
            "{comment}"
        );
        assert_eq!(comment.split(',').next().unwrap().len(), 33);
        let long = AttachmentId::new(&"n".repeat(200), "c", "eth0");
        assert_eq!(long.masquerade_comment().len(), 128);
    }
}
