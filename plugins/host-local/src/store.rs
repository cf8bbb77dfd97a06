//! The on-disk store, byte for byte the Go plugin's, plus an index of our own.
//!
//! Go's layout under `<dataDir>/<network>/`: one file per address, named by the
//! address, mode 0600, holding `<containerID>\r\n<ifname>` (older versions wrote
//! only the container ID); `last_reserved_ip.<rangeSetIndex>`; an empty `lock`
//! file taken with flock. Both plugins take that lock, so they never race.
//!
//! Go finds an attachment's addresses by reading every file. We keep an index in
//! `.index/` so that ADD and DEL cost the same with 10 or 10,000 allocations: one
//! directory per attachment, `.index/<containerID>:<ifname>/`, holding one file per
//! address it holds, named by the address and with the address file's own content.
//! The address files stay the truth: every index entry is checked against the file
//! it names, and the index is rebuilt from a full scan whenever the directory
//! changed without us (a Go plugin ran). Go's DEL walks `.index/` too and removes
//! every file whose content is the attachment's, so on a node where both plugins
//! run, a Go DEL of an address we allocated takes its index entry with it.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::Path;

use libcni::host::fs::StateDir;
use libcni::spec::attachment::fitting_name;
use libcni::CniError;
use nix::fcntl::Flock;

use crate::range::Addr;

const INDEX_DIR: &str = ".index";
const INDEX_HEADER: &str = "host-local index v2";
const STATE_FILE: &str = "state";
// A fixed name: every writer holds the exclusive lock, so one at a time uses it, and
// a file left by a writer that died is removed by the next one.
const TMP_ADDRESS: &str = "tmp-address";
const LAST_RESERVED_PREFIX: &str = "last_reserved_ip.";
/// Range-set indices probed for a leftover `last_reserved_ip` temporary file
/// besides those on record (a first write, killed, is on no record).
const LEFTOVER_PROBE: usize = 16;

/// Who holds an address, as its file says.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Owner {
    Attachment {
        container_id: String,
        ifname: String,
    },
    /// The format of old Go versions: the container ID only.
    Legacy { container_id: String },
}

impl std::fmt::Display for Owner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Owner::Attachment {
                container_id,
                ifname,
            } => write!(f, "container {container_id} interface {ifname}"),
            Owner::Legacy { container_id } => write!(f, "container {container_id}"),
        }
    }
}

impl Owner {
    fn parse(content: &str) -> Owner {
        let content = content.trim();
        match content.split_once("\r\n") {
            Some((id, ifname)) => Owner::Attachment {
                container_id: id.trim().to_string(),
                ifname: ifname.to_string(),
            },
            None => Owner::Legacy {
                container_id: content.to_string(),
            },
        }
    }

    /// What its address files hold (Go's format).
    fn content(&self) -> String {
        match self {
            Owner::Attachment {
                container_id,
                ifname,
            } => format!("{}\r\n{ifname}", container_id.trim()),
            Owner::Legacy { container_id } => container_id.clone(),
        }
    }

    fn index_name(&self) -> String {
        match self {
            Owner::Attachment {
                container_id,
                ifname,
            } => fitting_name(&format!("{container_id}:{ifname}"), 255),
            Owner::Legacy { container_id } => fitting_name(&format!("{container_id}:"), 255),
        }
    }
}

/// The store of one network, locked for as long as it lives.
pub struct Store {
    dir: StateDir,
    index: StateDir,
    _lock: Flock<File>,
    /// Set once we changed the network directory: the state is recorded on drop.
    changed: bool,
    /// The round-robin positions this ADD moved, written only once every range set
    /// has its address (`commit_round_robin`): a failed ADD then has none to undo.
    last_reserved_pending: BTreeMap<usize, Addr>,
    /// The range-set indices that have a last-reserved file, so that recording the
    /// state never needs to list the (possibly huge) directory.
    last_reserved_indices: std::collections::BTreeSet<usize>,
}

impl Store {
    /// Opens (creating as Go does) and locks `<data_dir>/<network>/`. The network name
    /// was validated by the skel, so it is one path component.
    pub fn open(data_dir: &Path, network: &str) -> Result<Store, CniError> {
        let dir =
            StateDir::create(data_dir, 0o755).and_then(|base| base.subdir(network, true, 0o755))?;
        // The lock file stays empty; never truncate one Go holds.
        let lock = dir.lock("lock", 0o750)?;
        // Ours: anything else in its place (a symlink planted there) is removed.
        let index = match dir.subdir(INDEX_DIR, true, 0o755) {
            Ok(index) => index,
            Err(_) => {
                dir.remove(INDEX_DIR)?;
                dir.subdir(INDEX_DIR, true, 0o755)?
            }
        };
        let mut store = Store {
            dir,
            index,
            _lock: lock,
            changed: false,
            last_reserved_pending: BTreeMap::new(),
            last_reserved_indices: Default::default(),
        };
        let _ = store.index.remove(TMP_ADDRESS);
        store.index.remove_leftover_of(STATE_FILE);
        match store.fresh_index_state() {
            Some(indices) => store.last_reserved_indices = indices,
            None => store.rebuild_index()?,
        }
        store.remove_last_reserved_leftovers();
        Ok(store)
    }

    /// A process killed between writing a `last_reserved_ip.N` temporary file and
    /// renaming it left that file; under the lock no writer is in between. Probed by
    /// name (the range sets a config can have, and every index on record) rather
    /// than by listing the directory, which holds one file per allocation.
    fn remove_last_reserved_leftovers(&self) {
        let recorded = self.last_reserved_indices.iter().copied();
        for index in (0..LEFTOVER_PROBE).chain(recorded) {
            self.dir
                .remove_leftover_of(&format!("{LAST_RESERVED_PREFIX}{index}"));
        }
    }

    fn address_name(addr: Addr) -> String {
        addr.to_string()
    }

    fn dir_mtime(&self) -> Option<(i64, i64)> {
        self.dir.mtime().ok()
    }

    /// The last-reserved files, as `index content` pairs.
    fn last_reserved_files(&self, indices: &[usize]) -> Vec<(usize, String)> {
        indices
            .iter()
            .filter_map(|i| {
                self.dir
                    .read_text(&format!("{LAST_RESERVED_PREFIX}{i}"))
                    .map(|c| (*i, c))
            })
            .collect()
    }

    /// The index is fresh when the directory's mtime and the last-reserved files are
    /// what we recorded after our own last change; then it returns their indices.
    fn fresh_index_state(&self) -> Option<std::collections::BTreeSet<usize>> {
        let state = self.index.read_text(STATE_FILE)?;
        let mut lines = state.lines();
        if lines.next() != Some(INDEX_HEADER) {
            return None;
        }
        let (s, ns) = self.dir_mtime()?;
        if lines.next()? != format!("mtime {s} {ns}") {
            return None;
        }
        let mut recorded = Vec::new();
        for line in lines {
            let mut words = line.splitn(3, ' ');
            match (
                words.next(),
                words.next().and_then(|i| i.parse::<usize>().ok()),
                words.next(),
            ) {
                (Some("last"), Some(i), Some(ip)) => recorded.push((i, ip.to_string())),
                _ => return None,
            }
        }
        let indices: Vec<usize> = recorded.iter().map(|(i, _)| *i).collect();
        // A new last-reserved file would have changed the directory's mtime; a changed
        // one means another writer allocated.
        (self.last_reserved_files(&indices) == recorded).then(|| indices.into_iter().collect())
    }

    fn record_state(&self) -> Result<(), CniError> {
        let Some((s, ns)) = self.dir_mtime() else {
            return Ok(());
        };
        let mut state = format!("{INDEX_HEADER}\nmtime {s} {ns}\n");
        let indices: Vec<usize> = self.last_reserved_indices.iter().copied().collect();
        for (i, ip) in self.last_reserved_files(&indices) {
            state.push_str(&format!("last {i} {ip}\n"));
        }
        self.write_index_file(STATE_FILE, &state)
    }

    fn write_index_file(&self, name: &str, content: &str) -> Result<(), CniError> {
        self.index
            .write_derived(name, content.as_bytes(), 0o600)
            .map_err(CniError::from)
    }

    /// Reads every address file: the truth, for GC and for rebuilding the index.
    pub fn scan(&self) -> Result<Vec<(Addr, Owner)>, CniError> {
        let mut held = Vec::new();
        for name in self.dir.entries()? {
            let Some(addr) = name.parse().ok().map(Addr::from_ip) else {
                continue;
            };
            if let Some(content) = self.dir.read_text(&name) {
                held.push((addr, Owner::parse(&content)));
            }
        }
        Ok(held)
    }

    fn rebuild_index(&mut self) -> Result<(), CniError> {
        // Drop the state first: a crash half-way leaves an index that is rebuilt again.
        let _ = self.index.remove(STATE_FILE);
        for name in self.index.entries()? {
            match self.index.subdir_if_present(&name) {
                Ok(Some(entry)) => {
                    for file in entry.entries()? {
                        entry.remove(&file)?;
                    }
                    self.index.remove_dir(&name)?;
                }
                // A file (an index of an older version), or anything else.
                _ => {
                    self.index.remove(&name)?;
                }
            }
        }
        self.last_reserved_indices = self
            .dir
            .entries()?
            .iter()
            .filter_map(|name| name.strip_prefix(LAST_RESERVED_PREFIX)?.parse().ok())
            .collect();
        for (addr, owner) in self.scan()? {
            self.add_to_entry(&owner, addr)?;
        }
        self.record_state()
    }

    /// The addresses the index lists for `owner`.
    fn read_entry(&self, owner: &Owner) -> Vec<Addr> {
        let Ok(Some(entry)) = self.index.subdir_if_present(&owner.index_name()) else {
            return Vec::new();
        };
        entry
            .entries()
            .unwrap_or_default()
            .iter()
            .filter_map(|name| name.parse().ok())
            .map(Addr::from_ip)
            .collect()
    }

    /// Lists `addr` in the owner's index entry; a failure (a full filesystem) leaves
    /// no empty entry behind.
    fn add_to_entry(&self, owner: &Owner, addr: Addr) -> Result<(), CniError> {
        let written = self
            .index
            .subdir(&owner.index_name(), true, 0o755)
            .and_then(|entry| {
                entry.write_derived(&Self::address_name(addr), owner.content().as_bytes(), 0o600)
            });
        written.map_err(|e| {
            let _ = self.remove_from_entry(owner, addr);
            CniError::from(e)
        })
    }

    fn remove_from_entry(&self, owner: &Owner, addr: Addr) -> Result<(), CniError> {
        let name = owner.index_name();
        let Some(entry) = self.index.subdir_if_present(&name)? else {
            return Ok(());
        };
        entry.remove(&Self::address_name(addr))?;
        self.drop_entry_if_empty(&name, &entry)
    }

    /// Removes an attachment's index entry once it lists no address; what an ADD
    /// killed mid-write left in it does not count.
    fn drop_entry_if_empty(&self, name: &str, entry: &StateDir) -> Result<(), CniError> {
        entry.remove_leftovers()?;
        if entry.entries()?.is_empty() {
            self.index.remove_dir(name)?;
        }
        Ok(())
    }

    /// Whether the address file exists and says `owner` holds it.
    fn held_by(&self, addr: Addr, owner: &Owner) -> bool {
        self.dir
            .read_text(&Self::address_name(addr))
            .is_some_and(|c| Owner::parse(&c) == *owner)
    }

    /// Who the address file of `addr` names; `None` when the address is free. A file
    /// that cannot be read (a symlink, a FIFO, too large) is an error naming it.
    pub fn owner_of(&self, addr: Addr) -> Result<Option<Owner>, CniError> {
        let content = self.dir.read(&Self::address_name(addr))?;
        Ok(content.map(|c| Owner::parse(&String::from_utf8_lossy(&c))))
    }

    /// The addresses `owner` holds (each checked against its file).
    pub fn held(&self, owner: &Owner) -> Vec<Addr> {
        self.read_entry(owner)
            .into_iter()
            .filter(|a| self.held_by(*a, owner))
            .collect()
    }

    pub fn is_free(&self, addr: Addr) -> bool {
        !self.dir.exists(&Self::address_name(addr))
    }

    pub fn last_reserved(&self, range_set: usize) -> Option<Addr> {
        self.dir
            .read_text(&format!("{LAST_RESERVED_PREFIX}{range_set}"))
            .and_then(|t| t.trim().parse().ok())
            .map(Addr::from_ip)
    }

    /// Reserves `addr` for the attachment. False when it is taken. The index entry
    /// is written first, so that a crash after the address file exists can still be
    /// undone by DEL; the file is created complete (written, then linked into place),
    /// so no reader ever sees it empty. A failure leaves neither (a full or read-only
    /// filesystem: nothing is allocated). The round-robin position moves only with
    /// `commit_round_robin`.
    pub fn reserve(
        &mut self,
        container_id: &str,
        ifname: &str,
        addr: Addr,
        range_set: usize,
    ) -> Result<bool, CniError> {
        let owner = Owner::Attachment {
            container_id: container_id.to_string(),
            ifname: ifname.to_string(),
        };
        self.add_to_entry(&owner, addr)?;
        let linked = self
            .index
            .write_new(TMP_ADDRESS, owner.content().as_bytes(), 0o600)
            .and_then(|()| {
                self.index
                    .link_into(TMP_ADDRESS, &self.dir, &Self::address_name(addr))
            });
        let _ = self.index.remove(TMP_ADDRESS);
        match linked {
            Ok(true) => {
                self.changed = true;
                self.last_reserved_pending.insert(range_set, addr);
                Ok(true)
            }
            Ok(false) => self.remove_from_entry(&owner, addr).map(|()| false),
            Err(e) => {
                let _ = self.remove_from_entry(&owner, addr);
                Err(CniError::from(e))
            }
        }
    }

    /// Records the round-robin positions of this ADD's addresses, all of them or
    /// (on a failure) none: the last step of a successful ADD. The files are
    /// replaced, not written in place, so none is ever left empty or cut short.
    pub fn commit_round_robin(&mut self) -> Result<(), CniError> {
        let files: Vec<(String, String)> = self
            .last_reserved_pending
            .iter()
            .map(|(i, addr)| (format!("{LAST_RESERVED_PREFIX}{i}"), addr.to_string()))
            .collect();
        let files: Vec<(&str, &[u8])> = files
            .iter()
            .map(|(name, content)| (name.as_str(), content.as_bytes()))
            .collect();
        self.dir.replace_all(&files, 0o600, false)?;
        self.changed = true;
        let moved = std::mem::take(&mut self.last_reserved_pending);
        self.last_reserved_indices.extend(moved.into_keys());
        Ok(())
    }

    /// Releases the given addresses of `owner` (those its files confirm).
    pub fn release_addrs(&mut self, owner: &Owner, addrs: &[Addr]) -> Result<(), CniError> {
        let mut errors = libcni::spec::error::ErrorList::new();
        for addr in addrs {
            if self.held_by(*addr, owner) {
                match self.dir.remove(&Self::address_name(*addr)) {
                    Err(e) => errors.push(CniError::from(e)),
                    Ok(_) => self.changed = true,
                }
            }
        }
        for addr in addrs {
            errors.record(self.remove_from_entry(owner, *addr));
        }
        errors.into_result()
    }

    /// Releases everything the attachment holds; the legacy format (container ID only)
    /// only when nothing in the current format was found, as Go does.
    pub fn release_attachment(
        &mut self,
        container_id: &str,
        ifname: &str,
    ) -> Result<Vec<Addr>, CniError> {
        let owner = Owner::Attachment {
            container_id: container_id.to_string(),
            ifname: ifname.to_string(),
        };
        let held = self.held(&owner);
        if !held.is_empty() {
            self.release_addrs(&owner, &held)?;
            return Ok(held);
        }
        // Clear stale index entries too, and an entry that holds only leftovers.
        let stale = self.read_entry(&owner);
        self.release_addrs(&owner, &stale)?;
        let name = owner.index_name();
        if let Some(entry) = self.index.subdir_if_present(&name)? {
            self.drop_entry_if_empty(&name, &entry)?;
        }
        let legacy = Owner::Legacy {
            container_id: container_id.to_string(),
        };
        let held = self.held(&legacy);
        self.release_addrs(&legacy, &held)?;
        Ok(held)
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        if self.changed {
            if let Err(e) = self.record_state() {
                libcni::log_warn!("{e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::MetadataExt;
    use std::path::PathBuf;

    fn tempdir(tag: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("host-local-store-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    fn addr(text: &str) -> Addr {
        Addr::from_ip(text.parse().unwrap())
    }

    #[test]
    fn files_are_byte_for_byte_the_go_format() {
        let data = tempdir("format");
        let mut store = Store::open(&data, "net1").unwrap();
        assert!(store.reserve("cid1", "eth0", addr("10.0.0.2"), 0).unwrap());
        store.commit_round_robin().unwrap();
        drop(store);
        let dir = data.join("net1");
        assert_eq!(fs::read(dir.join("10.0.0.2")).unwrap(), b"cid1\r\neth0");
        assert_eq!(
            fs::metadata(dir.join("10.0.0.2")).unwrap().mode() & 0o777,
            0o600
        );
        assert_eq!(
            fs::read(dir.join("last_reserved_ip.0")).unwrap(),
            b"10.0.0.2"
        );
        assert_eq!(fs::metadata(dir.join("lock")).unwrap().len(), 0);
        fs::remove_dir_all(data).unwrap();
    }

    #[test]
    fn del_after_an_add_killed_mid_index_write_leaves_nothing() {
        let data = tempdir("killed");
        drop(Store::open(&data, "n").unwrap());
        // An ADD killed while writing its index entry: the temporary file and no
        // address file.
        let entry = data.join("n").join(INDEX_DIR).join("cid:eth0");
        fs::create_dir_all(&entry).unwrap();
        fs::write(entry.join(".10.0.0.5.tmp"), "").unwrap();
        let mut store = Store::open(&data, "n").unwrap();
        assert!(store.release_attachment("cid", "eth0").unwrap().is_empty());
        assert!(
            !entry.exists(),
            "the killed ADD's index entry is still there"
        );
        fs::remove_dir_all(data).unwrap();
    }

    #[test]
    fn a_taken_address_is_not_reserved_twice() {
        let data = tempdir("taken");
        let mut store = Store::open(&data, "n").unwrap();
        assert!(store.reserve("a", "eth0", addr("10.0.0.2"), 0).unwrap());
        assert!(!store.reserve("b", "eth0", addr("10.0.0.2"), 0).unwrap());
        assert!(store
            .held(&Owner::Attachment {
                container_id: "b".into(),
                ifname: "eth0".into()
            })
            .is_empty());
        fs::remove_dir_all(data).unwrap();
    }

    #[test]
    fn files_written_behind_our_back_are_found_after_a_rebuild() {
        let data = tempdir("foreign");
        drop(Store::open(&data, "n").unwrap());
        let dir = data.join("n");
        // What the Go plugin (or an older version of it) leaves.
        fs::write(dir.join("10.0.0.9"), "gocid\r\nnet1").unwrap();
        fs::write(dir.join("10.0.0.10"), "oldcid").unwrap();
        let mut store = Store::open(&data, "n").unwrap();
        assert_eq!(
            store.held(&Owner::Attachment {
                container_id: "gocid".into(),
                ifname: "net1".into()
            }),
            vec![addr("10.0.0.9")]
        );
        assert_eq!(
            store.release_attachment("oldcid", "eth0").unwrap(),
            vec![addr("10.0.0.10")]
        );
        assert_eq!(
            store.release_attachment("gocid", "net1").unwrap(),
            vec![addr("10.0.0.9")]
        );
        assert!(store.is_free(addr("10.0.0.9")) && store.is_free(addr("10.0.0.10")));
        fs::remove_dir_all(data).unwrap();
    }

    #[test]
    fn an_address_released_behind_our_back_is_not_reported_held() {
        let data = tempdir("stale");
        let mut store = Store::open(&data, "n").unwrap();
        store.reserve("a", "eth0", addr("10.0.0.2"), 0).unwrap();
        drop(store);
        fs::remove_file(data.join("n/10.0.0.2")).unwrap();
        fs::write(data.join("n/10.0.0.2"), "other\r\neth0").unwrap();
        let store = Store::open(&data, "n").unwrap();
        assert!(store
            .held(&Owner::Attachment {
                container_id: "a".into(),
                ifname: "eth0".into()
            })
            .is_empty());
        fs::remove_dir_all(data).unwrap();
    }
}
