//! Network namespaces: open and check a netns path, run code inside it on a thread
//! made for that purpose, and open netlink sockets bound to it.
//!
//! A thread that entered another netns is never reused: `run` spawns a scoped
//! thread, enters the netns there, runs the closure and lets the thread end. The
//! caller's thread never changes namespace, so nothing can be left behind in one.

use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};

use nix::sched::{setns, CloneFlags};

use crate::netlink::Netlink;

const NSFS_MAGIC: i64 = 0x6e73_6673;
const PROC_SUPER_MAGIC: i64 = 0x9fa0;

#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    #[error("failed to open netns {path}: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a network namespace")]
    NotNetns { path: PathBuf },
    #[error("failed to enter netns {path}: {errno}")]
    Enter {
        path: PathBuf,
        errno: nix::errno::Errno,
    },
    #[error("a thread working in netns {path} panicked")]
    Panicked { path: PathBuf },
    #[error("failed to open a netlink socket in netns {path}: {source}")]
    Netlink {
        path: PathBuf,
        source: crate::netlink::NetlinkError,
    },
}

impl NetnsError {
    /// The netns is gone (or never was one): DEL treats that as nothing to undo.
    pub fn is_gone(&self) -> bool {
        match self {
            NetnsError::Open { source, .. } => source.kind() == std::io::ErrorKind::NotFound,
            NetnsError::NotNetns { .. } => true,
            _ => false,
        }
    }
}

/// An open network namespace.
#[derive(Debug)]
pub struct NetNs {
    file: File,
    path: PathBuf,
}

impl NetNs {
    /// Opens `path` and checks that it is a network namespace (nsfs, or procfs on
    /// old kernels), so that a regular file or a directory is refused up front.
    pub fn open(path: &Path) -> Result<NetNs, NetnsError> {
        let file = File::open(path).map_err(|source| NetnsError::Open {
            path: path.to_owned(),
            source,
        })?;
        let fs = nix::sys::statfs::fstatfs(&file).map_err(|errno| NetnsError::Open {
            path: path.to_owned(),
            source: std::io::Error::from_raw_os_error(errno as i32),
        })?;
        let magic = fs.filesystem_type().0 as i64;
        if magic != NSFS_MAGIC && magic != PROC_SUPER_MAGIC {
            return Err(NetnsError::NotNetns {
                path: path.to_owned(),
            });
        }
        Ok(NetNs {
            file,
            path: path.to_owned(),
        })
    }

    /// Opens the netns, or `None` when it no longer exists (for DEL).
    pub fn open_if_present(path: &Path) -> Result<Option<NetNs>, NetnsError> {
        match NetNs::open(path) {
            Ok(ns) => Ok(Some(ns)),
            Err(e) if e.is_gone() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// A new, empty network namespace that lives as long as this value (no mount):
    /// a place to rename a link where no name can collide.
    pub fn new_anonymous() -> Result<NetNs, NetnsError> {
        let path = PathBuf::from("<temporary netns>");
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    nix::sched::unshare(CloneFlags::CLONE_NEWNET).map_err(|errno| {
                        NetnsError::Enter {
                            path: path.clone(),
                            errno,
                        }
                    })?;
                    let file = File::open("/proc/thread-self/ns/net").map_err(|source| {
                        NetnsError::Open {
                            path: path.clone(),
                            source,
                        }
                    })?;
                    Ok(NetNs {
                        file,
                        path: path.clone(),
                    })
                })
                .join()
                .unwrap_or_else(|_| Err(NetnsError::Panicked { path: path.clone() }))
        })
    }

    /// The netns of the calling thread.
    pub fn current() -> Result<NetNs, NetnsError> {
        NetNs::open(Path::new("/proc/thread-self/ns/net"))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }

    /// Runs `work` inside this netns on a fresh thread, which ends with it.
    pub fn run<T: Send, F: FnOnce() -> T + Send>(&self, work: F) -> Result<T, NetnsError> {
        std::thread::scope(|scope| {
            let handle = scope.spawn(|| {
                setns(self.file.as_fd(), CloneFlags::CLONE_NEWNET).map_err(|errno| {
                    NetnsError::Enter {
                        path: self.path.clone(),
                        errno,
                    }
                })?;
                Ok(work())
            });
            handle.join().unwrap_or_else(|_| {
                Err(NetnsError::Panicked {
                    path: self.path.clone(),
                })
            })
        })
    }

    /// A netlink client bound to this netns: later calls need no setns.
    pub fn netlink(&self) -> Result<Netlink, NetnsError> {
        self.run(Netlink::open)?
            .map_err(|source| NetnsError::Netlink {
                path: self.path.clone(),
                source,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::error::{CniError, ErrorCode};

    #[test]
    fn a_regular_file_or_directory_is_not_a_netns() {
        let e = NetNs::open(Path::new("/etc/hostname")).unwrap_err();
        assert!(matches!(e, NetnsError::NotNetns { .. }), "{e}");
        assert!(NetNs::open(Path::new("/")).is_err());
        let e: CniError = NetNs::open(Path::new("/etc/hostname")).unwrap_err().into();
        assert_eq!(e.code, ErrorCode::InvalidEnvironment);
    }

    #[test]
    fn a_missing_path_is_gone() {
        assert!(
            NetNs::open_if_present(Path::new("/run/netns/does-not-exist-xyz"))
                .unwrap()
                .is_none()
        );
    }
}
