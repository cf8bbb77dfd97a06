//! macspoofchk: one attachment's rules as an object ([`SpoofCheck`]) for ADD, CHECK,
//! DEL, GC and rollback, over the rules themselves and the pure planning of their
//! transactions (`rules`, which says whose rules are whose), and ipspoofchk's
//! rules in the same chains (`ipfilter`).

pub mod edge;
mod ipfilter;
mod rules;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use libcni::mac::MacAddr;
use libcni::netlink::nftables::{Batch, Nftables};
use libcni::netlink::{FdbEntry, Link, LinkId, Netlink, NetlinkError};
use libcni::spec::attachment::AttachmentId;
use libcni::CniError;

pub use ipfilter::IpFilter;
use rules::{emptying_batch, iface_chain, references, verify, Broken, Existing, Installed};
pub use rules::{existing, installed, setup, teardown_batch};

/// The macspoofchk rules of one attachment, found by its reference
/// (`<containerID>-<ifname>`, see [`AttachmentId::spoofcheck_reference`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpoofCheck {
    reference: String,
}

/// What ADD read before changing anything, for [`Prepared::setup`] to write.
pub struct Prepared {
    nft: Nftables,
    existing: Existing,
    check: SpoofCheck,
}

impl SpoofCheck {
    pub fn of(id: &AttachmentId) -> SpoofCheck {
        SpoofCheck {
            reference: id.spoofcheck_reference(),
        }
    }

    /// Reads the state of this attachment's reference before ADD changes anything:
    /// rules that filter a live host interface belong to another attachment (Go's
    /// names join container ID and interface name with `-`, so two attachments can
    /// share them), and ADD refuses rather than take them over. Stale jumps (their
    /// host veth is gone) stay in what is returned, for the setup transaction to
    /// remove.
    pub fn prepare(id: &AttachmentId, nl: &mut Netlink) -> Result<Prepared, CniError> {
        let check = SpoofCheck::of(id);
        let mut nft = Nftables::open()?;
        let existing = existing(&mut nft, &check.reference)?;
        for veth in existing.installed.host_veths() {
            if nl.get_link(&LinkId::Name(&veth))?.is_some() {
                return Err(CniError::internal(format!(
                    "macspoofchk chain {:?} already filters the live host interface {veth:?} of another attachment: container ID {:?} with interface {:?} collides with it",
                    iface_chain(&check.reference),
                    id.container_id,
                    id.ifname
                )));
            }
        }
        Ok(Prepared {
            nft,
            existing,
            check,
        })
    }

    /// Removes these rules when every jump into them names `own_host_veth`, without
    /// asking which veths exist. False when that does not settle it (a jump names
    /// another veth), for [`SpoofCheck::remove_if_stale`] to judge later.
    pub fn remove_own(&self, nft: &mut Nftables, own_host_veth: &str) -> Result<bool, CniError> {
        self.tear_down(nft, |nft, batch| {
            let installed = installed(nft, &self.reference)?;
            if !installed.removable(Some(own_host_veth), |_| true) {
                return Ok((Batch::new(), false));
            }
            Ok((batch(&self.reference, &installed), true))
        })
    }

    /// Runs a teardown `plan`, given the batch to build from what it read. When the
    /// kernel refuses to delete a chain because a rule that is not ours jumps into it
    /// (EBUSY), runs it again with [`emptying_batch`], with a warning: DEL finishes,
    /// and nothing of the attachment filters anymore.
    fn tear_down<R>(
        &self,
        nft: &mut Nftables,
        mut plan: impl FnMut(
            &mut Nftables,
            fn(&str, &Installed) -> Batch,
        ) -> Result<(Batch, R), NetlinkError>,
    ) -> Result<R, CniError> {
        match nft.remove(|nft| plan(nft, teardown_batch)) {
            Err(e) if e.errno() == Some(libc::EBUSY) => {
                libcni::log_warn!(
                    "emptied the chains of {} and left them: a rule that is not ours jumps into one ({e})",
                    self.reference
                );
                Ok(nft.remove(|nft| plan(nft, emptying_batch))?)
            }
            other => Ok(other?),
        }
    }

    /// Removes these rules when they are ours to remove: their jump matches
    /// `own_host_veth` or a host veth that is gone. Rules of a live attachment stay
    /// (a colliding reference, or another network's pod), and that is success: there
    /// is nothing of ours left to undo. With `pod_gone` (DEL after the pod's netns went
    /// away) a host veth that still exists is given a moment to go: the kernel
    /// destroys a netns, and the veth with it, asynchronously. Rules another teardown
    /// removes meanwhile are success too (see `Nftables::remove`).
    pub fn remove_if_stale(
        &self,
        nft: &mut Nftables,
        nl: &mut Netlink,
        own_host_veth: Option<&str>,
        pod_gone: bool,
    ) -> Result<(), CniError> {
        let first = installed(nft, &self.reference)?;
        if pod_gone {
            wait_for_other_veths_to_go(nl, &first, own_host_veth);
        }
        let mut first = Some(first);
        self.tear_down(nft, |nft, batch| {
            // The first attempt uses the read above; a retry reads again.
            let installed = match first.take() {
                Some(installed) => installed,
                None => installed(nft, &self.reference)?,
            };
            let mut lookup_failed = false;
            let removable = installed.removable(own_host_veth, |veth| {
                match nl.get_link(&LinkId::Name(veth)) {
                    Ok(link) => link.is_some(),
                    Err(_) => {
                        lookup_failed = true;
                        true
                    }
                }
            });
            if removable && !lookup_failed {
                return Ok((batch(&self.reference, &installed), ()));
            }
            if installed != Installed::Nothing {
                libcni::log_warn!(
                    "left the macspoofchk rules of {} in place: they filter the live host interface {:?}",
                    self.reference,
                    installed.host_veths()
                );
            }
            Ok((Batch::new(), ()))
        })
    }

    /// Rollback of an ADD: only the rules it wrote, whose jump matches `host_veth`.
    pub fn undo(&self, host_veth: &str) -> Result<(), CniError> {
        let mut nft = Nftables::open()?;
        let mut nl = Netlink::open()?;
        self.remove_if_stale(&mut nft, &mut nl, Some(host_veth), false)
    }

    /// DEL's teardown, in two steps around the deletion of the container veth (see
    /// [`Teardown`]).
    pub fn teardown<'a>(&'a self, own_host_veth: Option<&'a str>) -> Teardown<'a> {
        let mut teardown = Teardown {
            check: self,
            own_host_veth,
            nft: None,
            removed: false,
        };
        if let (Some(own), Ok(mut nft)) = (own_host_veth, Nftables::open()) {
            teardown.removed = self.remove_own(&mut nft, own).unwrap_or(false);
            teardown.nft = Some(nft);
        }
        teardown
    }

    /// Proves, for CHECK, that the whole rule set filters `host_veth` for
    /// `container_mac`, and for `ip_filter`'s addresses when ipspoofchk is on (see
    /// [`verify`]). Reads only; the error names what is missing.
    pub fn check(
        &self,
        host_veth: &str,
        container_mac: MacAddr,
        ip_filter: Option<&IpFilter>,
    ) -> Result<(), CniError> {
        let mut nft = Nftables::open()?;
        let ip_rules = ip_filter.map(IpFilter::rules);
        let ip_rules = ip_rules.as_deref();
        match verify(
            &mut nft,
            &self.reference,
            host_veth,
            container_mac,
            ip_rules,
        )? {
            Ok(()) => Ok(()),
            Err(Broken(what)) => Err(CniError::internal(what)),
        }
    }

    /// GC: removes the state of attachments not in `valid` that is not live. The
    /// chains carry no network name, so GC of one network removes only rules whose
    /// host veth is gone. A live attachment of another network on the same bridge
    /// keeps its protection.
    pub fn gc(valid: &[AttachmentId]) -> Result<(), CniError> {
        let Ok(mut nft) = Nftables::open() else {
            return Ok(());
        };
        if !nft.available() {
            return Ok(());
        }
        let valid_refs: BTreeSet<String> = valid
            .iter()
            .map(AttachmentId::spoofcheck_reference)
            .collect();
        let mut nl = Netlink::open()?;
        let mut errors = libcni::spec::error::ErrorList::new();
        for reference in references(&mut nft)? {
            if valid_refs.contains(&reference) {
                continue;
            }
            let stale = SpoofCheck { reference };
            errors.record(stale.remove_if_stale(&mut nft, &mut nl, None, false));
        }
        errors.into_result()
    }
}

impl Prepared {
    /// Writes the rules for `host_veth` and `container_mac`, and `ip_filter`'s
    /// (ipspoofchk) when given, in one transaction.
    pub fn setup(
        mut self,
        host_veth: &str,
        container_mac: MacAddr,
        ip_filter: Option<&IpFilter>,
    ) -> Result<SpoofCheck, CniError> {
        let reference = &self.check.reference;
        let what = match ip_filter {
            Some(_) => "set up macspoofchk and ipspoofchk",
            None => "set up macspoofchk",
        };
        setup(
            &mut self.nft,
            host_veth,
            container_mac,
            reference,
            &self.existing,
            &ip_filter.map(IpFilter::rules).unwrap_or_default(),
        )
        .map_err(|e| CniError::from(e.context(what)))?;
        Ok(self.check)
    }
}

/// ipspoofchk's hold on the port's MAC: a static, sticky entry in the bridge's
/// forwarding database for each VLAN of the port (all of them at once without
/// VLAN filtering). A second attachment with the same MAC on the bridge would share
/// its link-local address and, once the bridge learned the MAC on its port, receive
/// the first one's traffic; so ADD refuses a MAC the bridge already has in one of
/// the port's VLANs, and learning cannot move it away while the port lives. The
/// entries go with the port, so every DEL, ours or Go's, removes them.
pub struct MacPin<'a> {
    pub bridge: &'a Link,
    pub port: &'a Link,
    pub mac: MacAddr,
    /// The port's VLANs; empty: a bridge without VLAN filtering.
    pub vids: Vec<u16>,
    /// A VLAN the port may be in or not: VLAN 1, kept by `preserveDefaultVlan`,
    /// is the port's only while the bridge's default PVID is 1.
    pub maybe_vid: Option<u16>,
}

impl MacPin<'_> {
    fn vids(&self) -> Vec<Option<u16>> {
        match self.vids.is_empty() {
            true => vec![None],
            false => self.vids.iter().copied().map(Some).collect(),
        }
    }

    fn is_maybe(&self, vid: Option<u16>) -> bool {
        vid.is_some() && vid == self.maybe_vid
    }

    fn in_vlan(vid: Option<u16>) -> String {
        vid.map(|v| format!(" in VLAN {v}")).unwrap_or_default()
    }

    /// ADD: pins the MAC, or refuses it when the bridge already has it.
    pub fn pin(&self, nl: &mut Netlink) -> Result<(), CniError> {
        let maybe = self.maybe_vid.map(Some);
        for vid in self.vids().into_iter().chain(maybe) {
            match nl.bridge_fdb_pin(self.port.index, self.mac, vid) {
                Ok(()) => {}
                // The kernel's answer for a VLAN the port is not in.
                Err(e) if self.is_maybe(vid) && e.errno() == Some(libc::EINVAL) => {}
                Err(e) if e.is_exists() => {
                    let holder = nl
                        .bridge_fdb_get(self.bridge.index, self.mac, vid)?
                        .and_then(|entry| nl.get_link(&LinkId::Index(entry.port)).ok().flatten())
                        .map(|link| format!(" (on port {:?})", link.name))
                        .unwrap_or_default();
                    return Err(CniError::internal(format!(
                        "ipspoofchk: MAC {} is already in use on bridge {:?}{}{holder}: another interface there would share its addresses and its traffic",
                        self.mac,
                        self.bridge.name,
                        Self::in_vlan(vid)
                    )));
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// CHECK: each entry is there, pinned, on the port (in `maybe_vid`, if there
    /// is one at all). Reads only.
    pub fn check(&self, nl: &mut Netlink) -> Result<(), CniError> {
        let maybe = self.maybe_vid.map(Some);
        for vid in self.vids().into_iter().chain(maybe) {
            let entry = nl.bridge_fdb_get(self.bridge.index, self.mac, vid)?;
            if entry.is_none() && self.is_maybe(vid) {
                continue;
            }
            if entry
                != Some(FdbEntry {
                    port: self.port.index,
                    pinned: true,
                })
            {
                return Err(CniError::internal(format!(
                    "ipspoofchk: bridge {:?} no longer pins MAC {}{} to port {:?} (found {entry:?})",
                    self.bridge.name,
                    self.mac,
                    Self::in_vlan(vid),
                    self.port.name
                )));
            }
        }
        Ok(())
    }
}

/// Waits up to 2 s for the host veths the rules name, other than our own, to go.
fn wait_for_other_veths_to_go(nl: &mut Netlink, installed: &Installed, own: Option<&str>) {
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline
        && installed.host_veths().iter().any(|v| {
            Some(v.as_str()) != own && matches!(nl.get_link(&LinkId::Name(v)), Ok(Some(_)))
        })
    {
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// DEL's removal of an attachment's rules. Rules that name prevResult's host veth
/// are ours whether the veth still exists or not: removing them before the veth
/// lets the kernel's post-commit work (an RCU grace period, waited for when the
/// nf_tables socket closes) run during the veth deletion's own waits, so the socket
/// stays open until this is dropped. Anything else is judged by [`Teardown::finish`]
/// after the veth is gone.
pub struct Teardown<'a> {
    check: &'a SpoofCheck,
    own_host_veth: Option<&'a str>,
    nft: Option<Nftables>,
    removed: bool,
}

impl Teardown<'_> {
    pub fn finish(&mut self, pod_gone: bool) -> Result<(), CniError> {
        if self.removed {
            return Ok(());
        }
        let mut nft = match self.nft.take() {
            Some(nft) => nft,
            None => Nftables::open()?,
        };
        let mut nl = Netlink::open()?;
        self.check
            .remove_if_stale(&mut nft, &mut nl, self.own_host_veth, pod_gone)
    }
}
