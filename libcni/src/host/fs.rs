//! Files in state directories, reached without following symlinks.
//!
//! A state directory (host-local's data directory, sriov's cache, the runtime's
//! result cache) is root's, but what lies below it was written by plugins acting on
//! tenants' requests, so nothing below it is trusted to be what its name says. A
//! [`StateDir`] is a directory handle opened with `O_DIRECTORY|O_NOFOLLOW`; every
//! file and subdirectory is then reached relative to it (`openat`, `renameat`,
//! `linkat`, `unlinkat`) with `O_NOFOLLOW`, so a symlink planted there is refused
//! instead of followed. Only the configured base path itself is resolved as the
//! admin wrote it (it may legitimately cross a symlink such as `/var/run`).
//!
//! Every read is bounded and must be of a regular file: a FIFO or `/dev/zero` in
//! its place fails instead of blocking or filling memory.

use crate::spec::attachment::fitting_name;
use std::ffi::OsStr;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{openat, renameat, AtFlags, Flock, FlockArg, OFlag};
use nix::sys::stat::{fstat, fstatat, mkdirat, Mode, SFlag};
use nix::unistd::{linkat, unlinkat, UnlinkatFlags};

/// The most a state file may hold: every state file of the suite is far smaller.
pub const STATE_FILE_LIMIT: u64 = 1 << 20;

/// A failed file operation, naming the path and the cause.
#[derive(Debug, thiserror::Error)]
#[error("failed to {operation} {}: {cause}", path.display())]
pub struct FsError {
    pub operation: &'static str,
    pub path: PathBuf,
    pub cause: std::io::Error,
}

impl FsError {
    fn new(operation: &'static str, path: PathBuf, cause: impl Into<std::io::Error>) -> FsError {
        FsError {
            operation,
            path,
            cause: cause.into(),
        }
    }

    pub fn is_not_found(&self) -> bool {
        self.cause.kind() == std::io::ErrorKind::NotFound
    }
}

fn errno_io(e: Errno) -> std::io::Error {
    std::io::Error::from_raw_os_error(e as i32)
}

/// One file name inside a directory: not empty, no `/`, not `.` or `..`.
fn check_name(name: &str) -> Result<(), std::io::Error> {
    if name.is_empty() || name.contains('/') || name == "." || name == ".." || name.contains('\0') {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{name:?} is not a single file name"),
        ));
    }
    if name.len() > 255 {
        return Err(std::io::Error::from_raw_os_error(libc::ENAMETOOLONG));
    }
    Ok(())
}

/// The temporary file [`StateDir::write_atomic`] writes before renaming it to `name`.
fn temporary_name(name: &str) -> String {
    fitting_name(&format!(".{name}.tmp"), 255)
}

/// Reads at most `limit` bytes of an open file, which must be a regular file.
fn read_bounded_file(mut file: File, limit: u64, path: &Path) -> Result<Vec<u8>, FsError> {
    let stat = fstat(&file).map_err(|e| FsError::new("read", path.to_owned(), errno_io(e)))?;
    if SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT != SFlag::S_IFREG {
        return Err(FsError::new(
            "read",
            path.to_owned(),
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a regular file"),
        ));
    }
    let mut bytes = Vec::new();
    (&mut file)
        .take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| FsError::new("read", path.to_owned(), e))?;
    if bytes.len() as u64 > limit {
        return Err(FsError::new(
            "read",
            path.to_owned(),
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("larger than {limit} bytes"),
            ),
        ));
    }
    Ok(bytes)
}

/// Reads a file a configuration names (e.g. host-local's `resolvConf`): at most
/// `limit` bytes, and only a regular file. Opened non-blocking so that a FIFO in
/// its place cannot hang the plugin before the type check refuses it.
pub fn read_config_file(path: &Path, limit: u64) -> Result<Vec<u8>, FsError> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| FsError::new("read", path.to_owned(), e))?;
    read_bounded_file(file, limit, path)
}

/// A write step that a test makes fail (see `hooks::write_fault`); never in release
/// builds.
fn fault(operation: &'static str, path: impl FnOnce() -> PathBuf) -> Result<(), FsError> {
    match crate::hooks::write_fault(operation) {
        Some(e) => Err(FsError::new(operation, path(), e)),
        None => Ok(()),
    }
}

/// An open state directory. See the module docs.
#[derive(Debug)]
pub struct StateDir {
    fd: OwnedFd,
    path: PathBuf,
}

impl StateDir {
    /// Creates the base directory `path` and its missing parents with `mode`, then
    /// opens it.
    pub fn create(path: &Path, mode: u32) -> Result<StateDir, FsError> {
        use std::os::unix::fs::DirBuilderExt;
        if !path.is_dir() {
            fault("create", || path.into())?;
        }
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(mode)
            .create(path)
            .map_err(|e| FsError::new("create", path.into(), e))?;
        StateDir::open(path)
    }

    /// Opens the base directory `path`. The base path is the admin's and may cross
    /// symlinks; the last component itself must be a real directory.
    pub fn open(path: &Path) -> Result<StateDir, FsError> {
        let fd = nix::fcntl::open(
            path,
            OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_RDONLY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| FsError::new("open", path.into(), errno_io(e)))?;
        Ok(StateDir {
            fd,
            path: path.to_owned(),
        })
    }

    /// Opens the base directory, or `None` when it does not exist.
    pub fn open_if_present(path: &Path) -> Result<Option<StateDir>, FsError> {
        match StateDir::open(path) {
            Ok(dir) => Ok(Some(dir)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn child(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    fn open_at(&self, name: &str, flags: OFlag, mode: u32) -> Result<File, FsError> {
        check_name(name).map_err(|e| FsError::new("open", self.child(name), e))?;
        if flags.contains(OFlag::O_CREAT) {
            fault("create", || self.child(name))?;
        }
        let fd = openat(
            self.fd.as_fd(),
            name,
            flags | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(mode),
        )
        .map_err(|e| FsError::new("open", self.child(name), errno_io(e)))?;
        Ok(File::from(fd))
    }

    /// The subdirectory `name` (created with `mode` when `create`); a symlink or a
    /// file in its place is an error.
    pub fn subdir(&self, name: &str, create: bool, mode: u32) -> Result<StateDir, FsError> {
        check_name(name).map_err(|e| FsError::new("open", self.child(name), e))?;
        // An existing directory is found before a full or read-only filesystem matters.
        if create && !self.exists(name) {
            fault("create", || self.child(name))?;
        }
        if create {
            match mkdirat(self.fd.as_fd(), name, Mode::from_bits_truncate(mode)) {
                Ok(()) | Err(Errno::EEXIST) => {}
                Err(e) => return Err(FsError::new("create", self.child(name), errno_io(e))),
            }
        }
        let fd = openat(
            self.fd.as_fd(),
            name,
            OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_RDONLY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| FsError::new("open", self.child(name), errno_io(e)))?;
        Ok(StateDir {
            fd,
            path: self.child(name),
        })
    }

    /// The subdirectory, or `None` when it does not exist.
    pub fn subdir_if_present(&self, name: &str) -> Result<Option<StateDir>, FsError> {
        match self.subdir(name, false, 0) {
            Ok(dir) => Ok(Some(dir)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The content of regular file `name` (at most [`STATE_FILE_LIMIT`] bytes), or
    /// `None` when it does not exist.
    pub fn read(&self, name: &str) -> Result<Option<Vec<u8>>, FsError> {
        let file = match self.open_at(name, OFlag::O_RDONLY | OFlag::O_NONBLOCK, 0) {
            Ok(file) => file,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e),
        };
        read_bounded_file(file, STATE_FILE_LIMIT, &self.child(name)).map(Some)
    }

    /// [`StateDir::read`] as text; unreadable or not UTF-8 reads as absent, as a
    /// damaged state file should for the callers that tolerate one.
    pub fn read_text(&self, name: &str) -> Option<String> {
        self.read(name)
            .ok()
            .flatten()
            .and_then(|b| String::from_utf8(b).ok())
    }

    /// Whether anything (a symlink included) is at `name`.
    pub fn exists(&self, name: &str) -> bool {
        check_name(name).is_ok()
            && fstatat(self.fd.as_fd(), name, AtFlags::AT_SYMLINK_NOFOLLOW).is_ok()
    }

    /// Writes `name` atomically: a temporary file in the same directory, written,
    /// fsynced and renamed over `name`, so a reader sees the old or the new content.
    /// The temporary name is derived from `name` (a crash leaves at most one per
    /// name, which the next write reuses), so writers of one name must hold a lock.
    pub fn write_atomic(&self, name: &str, content: &[u8], mode: u32) -> Result<(), FsError> {
        self.replace(name, content, mode, true)
    }

    /// [`StateDir::write_atomic`] without the fsync, for data derived from other
    /// files (an index that is checked against them and rebuilt when stale).
    pub fn write_derived(&self, name: &str, content: &[u8], mode: u32) -> Result<(), FsError> {
        self.replace(name, content, mode, false)
    }

    fn replace(&self, name: &str, content: &[u8], mode: u32, durable: bool) -> Result<(), FsError> {
        self.replace_all(&[(name, content)], mode, durable)
    }

    /// Replaces several files as one: every temporary file is written first, and only
    /// when all are complete are they renamed over their names. A failure while
    /// writing (a full or read-only filesystem) leaves every file as it was and no
    /// temporary file; renaming needs no space.
    pub fn replace_all(
        &self,
        files: &[(&str, &[u8])],
        mode: u32,
        durable: bool,
    ) -> Result<(), FsError> {
        if files.is_empty() {
            return Ok(());
        }
        let mut written = Vec::with_capacity(files.len());
        let result = files.iter().try_for_each(|(name, content)| {
            check_name(name).map_err(|e| FsError::new("write", self.child(name), e))?;
            let temp = temporary_name(name);
            let file = self.open_at(
                &temp,
                OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_TRUNC,
                mode,
            )?;
            written.push(temp.clone());
            Self::fill(file, content, durable)
                .map_err(|e| FsError::new("write", self.child(&temp), e))
        });
        // One step for the renames: they need no space, so a full filesystem fails
        // before them, and a read-only one at the first.
        let result = result.and_then(|()| fault("write", || self.child(files[0].0)));
        let result = result.and_then(|()| {
            files
                .iter()
                .zip(&written)
                .try_for_each(|((name, _), temp)| {
                    renameat(self.fd.as_fd(), temp.as_str(), self.fd.as_fd(), *name)
                        .map_err(|e| FsError::new("write", self.child(name), errno_io(e)))
                })
        });
        if result.is_err() {
            for temp in &written {
                let _ = unlinkat(self.fd.as_fd(), temp.as_str(), UnlinkatFlags::NoRemoveDir);
            }
        }
        result
    }

    /// Writes `content` to a new file, and syncs it when `durable`.
    fn fill(mut file: File, content: &[u8], durable: bool) -> std::io::Result<()> {
        if let Some(e) = crate::hooks::write_fault("write") {
            return Err(e);
        }
        file.write_all(content)?;
        if durable {
            if let Some(e) = crate::hooks::write_fault("sync") {
                return Err(e);
            }
            file.sync_all()?;
        }
        Ok(())
    }

    /// Creates `name`, which must not exist yet, with `content`.
    /// A failure leaves no file: an empty or partial one would be read as state.
    pub fn write_new(&self, name: &str, content: &[u8], mode: u32) -> Result<(), FsError> {
        let file = self.open_at(name, OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL, mode)?;
        Self::fill(file, content, false).map_err(|e| {
            let _ = unlinkat(self.fd.as_fd(), name, UnlinkatFlags::NoRemoveDir);
            FsError::new("write", self.child(name), e)
        })
    }

    /// Links the existing file `from` as `to` in `target` (which may be this
    /// directory); false when `to` already exists. A file is thus made complete
    /// before it appears under its name.
    pub fn link_into(&self, from: &str, target: &StateDir, to: &str) -> Result<bool, FsError> {
        check_name(to).map_err(|e| FsError::new("create", target.child(to), e))?;
        check_name(from).map_err(|e| FsError::new("create", self.child(from), e))?;
        fault("create", || target.child(to))?;
        match linkat(
            self.fd.as_fd(),
            from,
            target.fd.as_fd(),
            to,
            AtFlags::empty(),
        ) {
            Ok(()) => Ok(true),
            Err(Errno::EEXIST) => Ok(false),
            Err(e) => Err(FsError::new("create", target.child(to), errno_io(e))),
        }
    }

    /// Removes file (or symlink) `name`, and what an interrupted
    /// [`StateDir::write_atomic`] of it left; false when there was no `name`.
    pub fn remove(&self, name: &str) -> Result<bool, FsError> {
        check_name(name).map_err(|e| FsError::new("remove", self.child(name), e))?;
        if !name.starts_with('.') {
            let _ = unlinkat(
                self.fd.as_fd(),
                temporary_name(name).as_str(),
                UnlinkatFlags::NoRemoveDir,
            );
        }
        match unlinkat(self.fd.as_fd(), name, UnlinkatFlags::NoRemoveDir) {
            Ok(()) => Ok(true),
            Err(Errno::ENOENT) => Ok(false),
            Err(e) => Err(FsError::new("remove", self.child(name), errno_io(e))),
        }
    }

    /// Removes what an interrupted [`StateDir::write_atomic`] of `name` left.
    pub fn remove_leftover_of(&self, name: &str) {
        let _ = unlinkat(
            self.fd.as_fd(),
            temporary_name(name).as_str(),
            UnlinkatFlags::NoRemoveDir,
        );
    }

    /// Removes what interrupted writes left here: the temporary files of
    /// [`StateDir::write_atomic`] and [`StateDir::write_derived`] of a killed process.
    pub fn remove_leftovers(&self) -> Result<(), FsError> {
        for name in self.entries()? {
            if !(name.starts_with('.') && name.ends_with(".tmp")) {
                continue;
            }
            match unlinkat(self.fd.as_fd(), name.as_str(), UnlinkatFlags::NoRemoveDir) {
                Ok(()) | Err(Errno::ENOENT) => {}
                Err(e) => return Err(FsError::new("remove", self.child(&name), errno_io(e))),
            }
        }
        Ok(())
    }

    /// Removes the empty subdirectory `name`; false when there was none.
    pub fn remove_dir(&self, name: &str) -> Result<bool, FsError> {
        check_name(name).map_err(|e| FsError::new("remove", self.child(name), e))?;
        match unlinkat(self.fd.as_fd(), name, UnlinkatFlags::RemoveDir) {
            Ok(()) => Ok(true),
            Err(Errno::ENOENT) => Ok(false),
            Err(e) => Err(FsError::new("remove", self.child(name), errno_io(e))),
        }
    }

    /// The names in the directory (not `.` and `..`), as they are; a name that is
    /// not UTF-8 is left out (the suite never writes one).
    pub fn entries(&self) -> Result<Vec<String>, FsError> {
        // The handle's own /proc entry lists exactly the directory we opened.
        let fd_path = PathBuf::from(format!(
            "/proc/self/fd/{}",
            std::os::fd::AsRawFd::as_raw_fd(&self.fd)
        ));
        let entries =
            std::fs::read_dir(&fd_path).map_err(|e| FsError::new("list", self.path.clone(), e))?;
        Ok(entries
            .flatten()
            .filter_map(|e| {
                let name: &OsStr = &e.file_name();
                std::str::from_utf8(name.as_bytes()).ok().map(str::to_owned)
            })
            .collect())
    }

    /// The directory's modification time (seconds, nanoseconds).
    pub fn mtime(&self) -> Result<(i64, i64), FsError> {
        let stat =
            fstat(&self.fd).map_err(|e| FsError::new("stat", self.path.clone(), errno_io(e)))?;
        Ok((stat.st_mtime, stat.st_mtime_nsec))
    }

    /// Takes an exclusive flock on file `name` (created empty with `mode` when
    /// missing, never truncated: another plugin may hold it), waiting for it.
    pub fn lock(&self, name: &str, mode: u32) -> Result<Flock<File>, FsError> {
        let file = self.open_at(name, OFlag::O_RDWR | OFlag::O_CREAT, mode)?;
        Flock::lock(file, FlockArg::LockExclusive)
            .map_err(|(_, e)| FsError::new("lock", self.child(name), errno_io(e)))
    }

    /// Like [`StateDir::lock`], without waiting: `None` when another holds it.
    pub fn try_lock(&self, name: &str, mode: u32) -> Result<Option<Flock<File>>, FsError> {
        let file = self.open_at(name, OFlag::O_RDWR | OFlag::O_CREAT, mode)?;
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => Ok(Some(lock)),
            Err((_, Errno::EWOULDBLOCK)) => Ok(None),
            Err((_, e)) => Err(FsError::new("lock", self.child(name), errno_io(e))),
        }
    }
}

/// A state file that cannot be read or written is an I/O error (code 5) to the
/// runtime. The one conversion sits here, beside `FsError`, rather than in
/// `spec/error.rs` with the netlink and netns ones: `host` is above the protocol
/// layer (it applies results), and `spec` imports nothing above it.
impl From<FsError> for crate::spec::error::CniError {
    fn from(e: FsError) -> Self {
        crate::spec::error::CniError::io(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch() -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "libcni-fs-{}-{}",
            std::process::id(),
            crate::netlink::random_name("", 8)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn symlinks_below_the_base_are_refused() {
        let base = scratch();
        let elsewhere = scratch();
        std::fs::write(elsewhere.join("victim"), "keep").unwrap();
        std::os::unix::fs::symlink(&elsewhere, base.join("sub")).unwrap();
        std::os::unix::fs::symlink(elsewhere.join("victim"), base.join("file")).unwrap();
        let dir = StateDir::open(&base).unwrap();
        assert!(dir.subdir("sub", true, 0o700).is_err());
        assert!(dir.read("file").is_err());
        assert!(dir.write_new("file", b"x", 0o600).is_err());
        // Replacing the symlink itself is fine: the target is untouched.
        dir.write_atomic("file", b"new", 0o600).unwrap();
        assert_eq!(std::fs::read(elsewhere.join("victim")).unwrap(), b"keep");
        assert_eq!(dir.read("file").unwrap().unwrap(), b"new");
        assert!(dir.remove("sub").unwrap());
        assert!(elsewhere.join("victim").exists());
        let _ = std::fs::remove_dir_all(base);
        let _ = std::fs::remove_dir_all(elsewhere);
    }

    #[test]
    fn reads_are_bounded_and_of_regular_files() {
        assert!(read_config_file(Path::new("/dev/zero"), 1024).is_err());
        let base = scratch();
        std::fs::write(base.join("big"), vec![b'a'; 2048]).unwrap();
        assert!(read_config_file(&base.join("big"), 1024).is_err());
        assert_eq!(
            read_config_file(&base.join("big"), 4096).unwrap().len(),
            2048
        );
        let _ = std::fs::remove_dir_all(base);
    }

    #[test]
    fn names_must_be_one_component() {
        let base = scratch();
        let dir = StateDir::open(&base).unwrap();
        for bad in ["", ".", "..", "a/b"] {
            assert!(dir.write_atomic(bad, b"x", 0o600).is_err(), "{bad:?}");
        }
        assert!(dir.write_atomic(&"x".repeat(256), b"x", 0o600).is_err());
        dir.write_atomic("ok", b"1", 0o600).unwrap();
        assert_eq!(dir.entries().unwrap(), vec!["ok".to_string()]);
        let _ = std::fs::remove_dir_all(base);
    }
}
