//! `host-local`: an IPAM plugin that allocates addresses from range sets and keeps
//! them in the Go plugin's on-disk format, so that a node can switch between the
//! two without losing or duplicating an address.

mod config;
mod range;
mod store;

use libcni::skel::{Env, Outcome};
use libcni::spec::result::IpConfig;
use libcni::{About, CniError, CniResult, ErrorCode, Plugin, Request};

use crate::config::StoreLocation;
use crate::range::{Addr, Range, RangeSet};
use crate::store::{Owner, Store};

/// Exhausted ranges: addresses come back as pods go, so the runtime may retry.
fn exhausted(set: &RangeSet) -> CniError {
    CniError::new(
        ErrorCode::TryAgainLater,
        format!("no IP addresses available in range set: {set}"),
    )
}

fn attachment(request: &Request) -> Owner {
    Owner::Attachment {
        container_id: request.container_id.clone(),
        ifname: request.ifname.clone(),
    }
}

/// One address from one range set: the requested one, or the next free in
/// round-robin order from the last reserved.
fn allocate_from_set<'s>(
    store: &mut Store,
    request: &Request,
    set: &'s RangeSet,
    set_index: usize,
    requested: Option<Addr>,
) -> Result<(Addr, &'s Range), CniError> {
    let (cid, ifname) = (&request.container_id, &request.ifname);
    if let Some(wanted) = requested {
        let range = set
            .range_for(wanted)
            .ok_or_else(|| CniError::invalid_config(format!("{wanted} not in range set {set}")))?;
        if wanted == range.gateway {
            return Err(CniError::invalid_config(format!(
                "requested ip {wanted} is subnet's gateway"
            )));
        }
        if !store.reserve(cid, ifname, wanted, set_index)? {
            return Err(CniError::invalid_config(format!(
                "requested IP address {wanted} is not available in range set {set}"
            )));
        }
        return Ok((wanted, range));
    }
    let legacy = Owner::Legacy {
        container_id: cid.clone(),
    };
    for held in store
        .held(&attachment(request))
        .into_iter()
        .chain(store.held(&legacy))
    {
        if set.contains(held) {
            return Err(CniError::invalid_config(format!(
                "{held} has been allocated to {cid}, duplicate allocation is not allowed"
            )));
        }
    }
    for candidate in set.candidates(store.last_reserved(set_index)) {
        if store.is_free(candidate) && store.reserve(cid, ifname, candidate, set_index)? {
            let range = set
                .range_for(candidate)
                .expect("candidates come from the set");
            return Ok((candidate, range));
        }
    }
    Err(exhausted(set))
}

/// All or nothing: a failed ADD gives back only what it took, and reports why it
/// failed (a release that fails too is added to that one error). The round-robin
/// position was never moved (see `Store::commit_round_robin`).
fn give_back(store: &mut Store, request: &Request, taken: &[Addr], cause: CniError) -> CniError {
    match store.release_addrs(&attachment(request), taken) {
        Ok(()) => cause,
        Err(e) => {
            let msg = format!(
                "{}; releasing what it took failed too: {}",
                cause.msg, e.msg
            );
            CniError { msg, ..cause }
        }
    }
}

struct HostLocal;

impl Plugin for HostLocal {
    type Config = config::Config;
    type DelConfig = StoreLocation;
    type GcConfig = StoreLocation;

    fn load(&self, request: &Request) -> Result<Self::Config, CniError> {
        config::load(request)
    }

    fn load_for_del(&self, request: &Request) -> Result<StoreLocation, CniError> {
        config::store_location(request)
    }

    fn load_for_gc(&self, request: &Request) -> Result<StoreLocation, CniError> {
        config::store_location(request)
    }

    fn add(&self, request: &Request, config: &Self::Config) -> Result<CniResult, CniError> {
        let mut result = CniResult::default();
        if let Some(path) = &config.resolv_conf {
            result.dns = config::parse_resolv_conf(path)?;
        }
        let mut store = Store::open(&config.data_dir, &config.conf.name)?;
        let mut requested = config.requested.clone();
        let mut taken = Vec::new();
        for (index, set) in config.range_sets.iter().enumerate() {
            let wanted = requested
                .iter()
                .position(|a| set.contains(*a))
                .map(|i| requested.remove(i));
            match allocate_from_set(&mut store, request, set, index, wanted) {
                Ok((addr, range)) => {
                    taken.push(addr);
                    result.ips.push(IpConfig {
                        address: range.with_prefix(addr),
                        gateway: Some(range.gateway.ip()),
                        interface: None,
                    });
                }
                Err(e) => {
                    return Err(give_back(
                        &mut store,
                        request,
                        &taken,
                        e.context(format!("failed to allocate for range {index}")),
                    ))
                }
            }
        }
        if !requested.is_empty() {
            let left: Vec<String> = requested.iter().map(|a| a.to_string()).collect();
            let e = CniError::invalid_config(format!(
                "failed to allocate all requested IPs: {}",
                left.join(" ")
            ));
            return Err(give_back(&mut store, request, &taken, e));
        }
        if let Err(e) = store.commit_round_robin() {
            return Err(give_back(&mut store, request, &taken, e));
        }
        result.routes = config.routes.clone();
        Ok(result)
    }

    fn del(&self, request: &Request, location: &StoreLocation) -> Result<(), CniError> {
        let mut store = Store::open(&location.data_dir, &location.conf.name)?;
        store.release_attachment(&request.container_id, &request.ifname)?;
        Ok(())
    }

    /// Every prevResult address in this config's ranges must be allocated to this
    /// container and interface, as its file says: an address released behind the
    /// attachment's back, and perhaps handed to another pod, fails CHECK. Without such
    /// an address, the attachment must hold some address (Go's whole check).
    fn check(&self, request: &Request, config: &Self::Config) -> Result<(), CniError> {
        let store = Store::open(&config.data_dir, &config.conf.name)?;
        let legacy = Owner::Legacy {
            container_id: request.container_id.clone(),
        };
        let prev = config
            .conf
            .parsed_prev_result(request.version)?
            .unwrap_or_default();
        let mine = attachment(request);
        for ip in &prev.ips {
            let addr = Addr::from_ip(ip.address.addr());
            if !config.range_sets.iter().any(|set| set.contains(addr)) {
                continue;
            }
            match store.owner_of(addr)? {
                Some(owner) if owner == mine || owner == legacy => {}
                found => {
                    let now = match found {
                        None => "it is free".to_string(),
                        Some(other) => format!("its file names {other}"),
                    };
                    return Err(CniError::invalid_config(format!(
                        "host-local: address {addr} of prevResult is not allocated to container {} interface {}: {now}",
                        request.container_id, request.ifname
                    )));
                }
            }
        }
        if store.held(&mine).is_empty() && store.held(&legacy).is_empty() {
            return Err(CniError::invalid_config(format!(
                "host-local: Failed to find address added by container {}",
                request.container_id
            )));
        }
        Ok(())
    }

    /// Releases every address whose attachment is not in the valid list. A legacy
    /// file (container ID only) stays while any attachment of that container does.
    fn gc(&self, _request: &Request, location: &StoreLocation) -> Result<(), CniError> {
        let valid = location.conf.gc_valid_attachments();
        let mut store = Store::open(&location.data_dir, &location.conf.name)?;
        let mut errors = libcni::spec::error::ErrorList::new();
        for (addr, owner) in store.scan()? {
            let keep = match &owner {
                Owner::Attachment {
                    container_id,
                    ifname,
                } => valid
                    .iter()
                    .any(|a| &a.container_id == container_id && &a.ifname == ifname),
                Owner::Legacy { container_id } => {
                    valid.iter().any(|a| &a.container_id == container_id)
                }
            };
            if !keep {
                errors.record(store.release_addrs(&owner, &[addr]));
            }
        }
        errors.into_result()
    }

    /// Ready when the data directory can be created, opened and locked.
    fn status(&self, _request: &Request, location: &StoreLocation) -> Result<(), CniError> {
        Store::open(&location.data_dir, &location.conf.name)
            .map(|_| ())
            .map_err(|e| {
                CniError::new(
                    ErrorCode::PluginNotAvailable,
                    format!("host-local data directory is unusable: {}", e.msg),
                )
            })
    }

    fn known_args(&self) -> &'static [&'static str] {
        &["IP"]
    }

    fn is_ipam(&self) -> bool {
        true
    }
}

const ABOUT: About = About {
    name: "host-local",
    version: env!("CARGO_PKG_VERSION"),
};

/// The plugin's entry point, for its own binary and for the multi-call binary.
pub fn run() -> ! {
    libcni::skel::run(&HostLocal, ABOUT)
}

/// One invocation inside the caller's process: the multi-call binary's answer when
/// a plugin of it delegates IPAM to this one (`libcni::delegate::builtin`).
pub fn invoke(env: Env<'_>, stdin: &mut dyn std::io::Read) -> Outcome {
    libcni::skel::dispatch(&HostLocal, &ABOUT, env, stdin)
}
