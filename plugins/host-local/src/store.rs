//! The on-disk store, byte for byte the Go plugin's, plus an index of our own.
//!
//! Go's layout under `<dataDir>/<network>/`: one file per address, named by the
//! address, mode 0600, holding `<containerID>\r\n<ifname>` (older versions wrote
//! only the container ID); `last_reserved_ip.<rangeSetIndex>`; an empty `lock`
//! file taken with flock. Both plugins take that lock, so they never race.
//!
//! Go finds an attachment's addresses by reading every file. We keep an index in
//! `.index/` (one file per attachment listing its addresses) so that ADD and DEL
//! cost the same with 10 or 10,000 allocations. The address files stay the truth:
//! every index entry is checked against the file it names, and the index is rebuilt
//! from a full scan whenever the directory changed without us (a Go plugin ran).
//! Go walks `.index/` too, but its files never hold an attachment's content.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use libcni::CniError;
use nix::fcntl::{Flock, FlockArg};

use crate::range::Addr;

const INDEX_DIR: &str = ".index";
const INDEX_HEADER: &str = "host-local index v1";
const STATE_FILE: &str = "state";
// Fixed names: every writer holds the exclusive lock, so one at a time uses them, and
// a file left by a writer that died is removed by the next one.
const TMP_WRITE: &str = "tmp-write";
const TMP_ADDRESS: &str = "tmp-address";
const LAST_RESERVED_PREFIX: &str = "last_reserved_ip.";

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

    fn index_name(&self) -> String {
        match self {
            Owner::Attachment {
                container_id,
                ifname,
            } => format!("{container_id}:{ifname}"),
            Owner::Legacy { container_id } => format!("{container_id}:"),
        }
    }
}

fn io_error(what: impl std::fmt::Display, path: &Path, e: std::io::Error) -> CniError {
    CniError::io(format!("failed to {what} {}: {e}", path.display()))
}

/// The store of one network, locked for as long as it lives.
pub struct Store {
    dir: PathBuf,
    index: PathBuf,
    _lock: Flock<File>,
    /// Set once we changed the network directory: the state is recorded on drop.
    changed: bool,
    /// What each last-reserved file held before this process wrote it (None: absent),
    /// so that a rolled-back ADD leaves the round-robin position as it found it.
    last_reserved_before: HashMap<usize, Option<Vec<u8>>>,
    /// The range-set indices that have a last-reserved file, so that recording the
    /// state never needs to list the (possibly huge) directory.
    last_reserved_indices: std::collections::BTreeSet<usize>,
}

impl Store {
    /// Opens (creating as Go does) and locks `<data_dir>/<network>/`. The network name
    /// was validated by the skel, so it is one path component.
    pub fn open(data_dir: &Path, network: &str) -> Result<Store, CniError> {
        let dir = data_dir.join(network);
        fs::create_dir_all(&dir).map_err(|e| io_error("create the data directory", &dir, e))?;
        let lock_path = dir.join("lock");
        let lock_file = OpenOptions::new()
            .read(true)
            .create(true)
            .truncate(false) // the lock file stays empty; never truncate one Go holds
            .write(true)
            .mode(0o750)
            .open(&lock_path)
            .map_err(|e| io_error("open the lock file", &lock_path, e))?;
        let lock = Flock::lock(lock_file, FlockArg::LockExclusive).map_err(|(_, errno)| {
            CniError::io(format!("failed to lock {}: {errno}", lock_path.display()))
        })?;
        let index = dir.join(INDEX_DIR);
        let mut store = Store {
            dir,
            index,
            _lock: lock,
            changed: false,
            last_reserved_before: HashMap::new(),
            last_reserved_indices: Default::default(),
        };
        for leftover in [TMP_WRITE, TMP_ADDRESS] {
            let _ = fs::remove_file(store.index.join(leftover));
        }
        match store.fresh_index_state() {
            Some(indices) => store.last_reserved_indices = indices,
            None => store.rebuild_index()?,
        }
        Ok(store)
    }

    fn address_path(&self, addr: Addr) -> PathBuf {
        self.dir.join(addr.to_string())
    }

    fn dir_mtime(&self) -> Option<(i64, i64)> {
        fs::metadata(&self.dir)
            .ok()
            .map(|m| (m.mtime(), m.mtime_nsec()))
    }

    /// The last-reserved files, as `index content` pairs.
    fn last_reserved_files(&self, indices: &[usize]) -> Vec<(usize, String)> {
        indices
            .iter()
            .filter_map(|i| {
                fs::read_to_string(self.dir.join(format!("{LAST_RESERVED_PREFIX}{i}")))
                    .ok()
                    .map(|c| (*i, c))
            })
            .collect()
    }

    /// The index is fresh when the directory's mtime and the last-reserved files are
    /// what we recorded after our own last change; then it returns their indices.
    fn fresh_index_state(&self) -> Option<std::collections::BTreeSet<usize>> {
        let state = fs::read_to_string(self.index.join(STATE_FILE)).ok()?;
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
        let temp = self.index.join(TMP_WRITE);
        fs::write(&temp, content).map_err(|e| io_error("write", &temp, e))?;
        let path = self.index.join(name);
        fs::rename(&temp, &path).map_err(|e| io_error("write", &path, e))
    }

    /// Reads every address file: the truth, for GC and for rebuilding the index.
    pub fn scan(&self) -> Result<Vec<(Addr, Owner)>, CniError> {
        let mut held = Vec::new();
        for entry in fs::read_dir(&self.dir)
            .map_err(|e| io_error("list", &self.dir, e))?
            .flatten()
        {
            let name = entry.file_name();
            let Some(addr) = name
                .to_str()
                .and_then(|n| n.parse().ok())
                .map(Addr::from_ip)
            else {
                continue;
            };
            if let Ok(content) = fs::read_to_string(entry.path()) {
                held.push((addr, Owner::parse(&content)));
            }
        }
        Ok(held)
    }

    fn rebuild_index(&mut self) -> Result<(), CniError> {
        // Drop the state first: a crash half-way leaves an index that is rebuilt again.
        let _ = fs::remove_file(self.index.join(STATE_FILE));
        if self.index.exists() {
            for entry in fs::read_dir(&self.index)
                .map_err(|e| io_error("list", &self.index, e))?
                .flatten()
            {
                let _ = fs::remove_file(entry.path());
            }
        } else {
            fs::create_dir(&self.index).map_err(|e| io_error("create", &self.index, e))?;
        }
        self.last_reserved_indices = fs::read_dir(&self.dir)
            .map_err(|e| io_error("list", &self.dir, e))?
            .flatten()
            .filter_map(|e| {
                e.file_name()
                    .to_str()?
                    .strip_prefix(LAST_RESERVED_PREFIX)?
                    .parse()
                    .ok()
            })
            .collect();
        let mut by_owner: HashMap<String, Vec<Addr>> = HashMap::new();
        for (addr, owner) in self.scan()? {
            by_owner.entry(owner.index_name()).or_default().push(addr);
        }
        for (name, addrs) in by_owner {
            self.write_entry(&name, &addrs)?;
        }
        self.record_state()
    }

    fn read_entry(&self, name: &str) -> Vec<Addr> {
        let Ok(content) = fs::read_to_string(self.index.join(name)) else {
            return Vec::new();
        };
        let mut lines = content.lines();
        if lines.next() != Some(INDEX_HEADER) {
            return Vec::new();
        }
        lines
            .filter_map(|l| l.parse().ok())
            .map(Addr::from_ip)
            .collect()
    }

    fn write_entry(&self, name: &str, addrs: &[Addr]) -> Result<(), CniError> {
        if addrs.is_empty() {
            return match fs::remove_file(self.index.join(name)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    Err(io_error("remove", &self.index.join(name), e))
                }
                _ => Ok(()),
            };
        }
        let mut content = format!("{INDEX_HEADER}\n");
        for a in addrs {
            content.push_str(&format!("{a}\n"));
        }
        self.write_index_file(name, &content)
    }

    /// Whether the address file exists and says `owner` holds it.
    fn held_by(&self, addr: Addr, owner: &Owner) -> bool {
        fs::read_to_string(self.address_path(addr))
            .map(|c| Owner::parse(&c) == *owner)
            .unwrap_or(false)
    }

    /// The addresses `owner` holds (each checked against its file).
    pub fn held(&self, owner: &Owner) -> Vec<Addr> {
        self.read_entry(&owner.index_name())
            .into_iter()
            .filter(|a| self.held_by(*a, owner))
            .collect()
    }

    pub fn is_free(&self, addr: Addr) -> bool {
        fs::symlink_metadata(self.address_path(addr)).is_err()
    }

    pub fn last_reserved(&self, range_set: usize) -> Option<Addr> {
        fs::read_to_string(self.dir.join(format!("{LAST_RESERVED_PREFIX}{range_set}")))
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .map(Addr::from_ip)
    }

    /// Reserves `addr` for the attachment. False when it is taken. The index entry
    /// is written first, so that a crash after the address file exists can still be
    /// undone by DEL; the file is created complete (written, then linked into place),
    /// so no reader ever sees it empty.
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
        let name = owner.index_name();
        let mut entry = self.read_entry(&name);
        if !entry.contains(&addr) {
            entry.push(addr);
            self.write_entry(&name, &entry)?;
        }
        let temp = self.index.join(TMP_ADDRESS);
        let _ = fs::remove_file(&temp);
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp)
            .map_err(|e| io_error("create", &temp, e))?;
        file.write_all(format!("{}\r\n{ifname}", container_id.trim()).as_bytes())
            .map_err(|e| io_error("write", &temp, e))?;
        drop(file);
        let target = self.address_path(addr);
        let linked = fs::hard_link(&temp, &target);
        let _ = fs::remove_file(&temp);
        self.changed = true;
        match linked {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                entry.retain(|a| *a != addr);
                self.write_entry(&name, &entry)?;
                return Ok(false);
            }
            Err(e) => return Err(io_error("create", &target, e)),
        }
        let last = self.dir.join(format!("{LAST_RESERVED_PREFIX}{range_set}"));
        self.last_reserved_before
            .entry(range_set)
            .or_insert_with(|| fs::read(&last).ok());
        self.last_reserved_indices.insert(range_set);
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&last)
            .and_then(|mut f| f.write_all(addr.to_string().as_bytes()))
            .map_err(|e| io_error("write", &last, e))?;
        Ok(true)
    }

    /// Puts the last-reserved files back as they were before this process: for an
    /// ADD that fails after it reserved some addresses.
    pub fn restore_round_robin(&mut self) -> Result<(), CniError> {
        for (range_set, before) in self.last_reserved_before.drain() {
            let path = self.dir.join(format!("{LAST_RESERVED_PREFIX}{range_set}"));
            let restored = match before {
                Some(content) => fs::write(&path, content),
                None => {
                    self.last_reserved_indices.remove(&range_set);
                    fs::remove_file(&path)
                }
            };
            restored.map_err(|e| io_error("restore", &path, e))?;
        }
        Ok(())
    }

    /// Releases the given addresses of `owner` (those its files confirm).
    pub fn release_addrs(&mut self, owner: &Owner, addrs: &[Addr]) -> Result<(), CniError> {
        let mut errors = libcni::spec::error::ErrorList::new();
        for addr in addrs {
            if self.held_by(*addr, owner) {
                let path = self.address_path(*addr);
                match fs::remove_file(&path) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                        errors.push(io_error("remove", &path, e))
                    }
                    _ => self.changed = true,
                }
            }
        }
        let name = owner.index_name();
        let left: Vec<Addr> = self
            .read_entry(&name)
            .into_iter()
            .filter(|a| !addrs.contains(a))
            .collect();
        errors.record(self.write_entry(&name, &left));
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
        // Clear stale index entries too.
        let stale = self.read_entry(&owner.index_name());
        self.release_addrs(&owner, &stale)?;
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
