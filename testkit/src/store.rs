//! State stores that cannot be written: a real tiny tmpfs, filled, and what a
//! failed write may and may not leave behind.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::call::sh;

/// The errnos the `test-hooks` build's `CNI_TEST_FS_FAIL` injects, with the text
/// of each that an error message must carry.
pub const STORE_ERRNOS: [(&str, &str); 3] = [
    ("ENOSPC", "No space left on device"),
    ("EROFS", "Read-only file system"),
    ("EDQUOT", "Disk quota exceeded"),
];

/// Every file and directory below `dir` with its content (directories: empty).
pub fn store_tree(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.insert(path.clone(), Vec::new());
            out.extend(store_tree(&path));
        } else {
            out.insert(path.clone(), std::fs::read(&path).unwrap_or_default());
        }
    }
    out
}

/// No temporary file of an interrupted or failed write among `state`'s paths.
pub fn assert_no_temporary_files(state: &BTreeMap<PathBuf, Vec<u8>>, what: &str) {
    for path in state.keys() {
        let name = path.file_name().unwrap().to_string_lossy();
        assert!(
            !name.ends_with(".tmp") && !name.starts_with("tmp-"),
            "{what}: {} was left",
            path.display()
        );
    }
}

/// Mounts a tmpfs of `size` (as `mount -o size=` reads it) on `dir`, created first.
pub fn mount_tiny_tmpfs(dir: &Path, size: &str) {
    std::fs::create_dir_all(dir).unwrap();
    sh(&[
        "mount",
        "-t",
        "tmpfs",
        "-o",
        &format!("size={size}"),
        "tmpfs",
        &dir.display().to_string(),
    ]);
}

/// Fills `file` until the filesystem is full, then frees `pages` pages of it.
pub fn fill_leaving(file: &Path, pages: u64) {
    let _ = std::fs::remove_file(file);
    let mut f = std::fs::File::create(file).unwrap();
    let chunk = vec![0x55u8; 4096];
    let mut len = 0u64;
    while f.write_all(&chunk).is_ok() {
        len += 4096;
    }
    drop(f);
    let f = std::fs::OpenOptions::new().write(true).open(file).unwrap();
    f.set_len(len.saturating_sub(pages * 4096)).unwrap();
}
