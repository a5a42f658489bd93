//! Small disks for the full-disk cases: a tmpfs of a chosen size on a temporary folder,
//! unmounted and removed when dropped (also when the test panics). Mounting needs root, which
//! the tests have.

use super::run_ok;
use std::path::Path;
use std::process::Command;

/// A tmpfs of a few bytes, mounted on a temporary folder.
pub struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    /// A disk of `bytes` bytes.
    pub fn new(bytes: u64) -> SmallDisk {
        let dir = tempfile::Builder::new().prefix("stowage-disk-").tempdir().unwrap();
        run_ok(
            Command::new("mount")
                .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
                .arg(dir.path()),
        );
        SmallDisk { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The names of what is on it.
    pub fn listing(&self) -> Vec<String> {
        std::fs::read_dir(self.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        // Lazily: a process of a failed test may still hold a file open on it.
        let _ = Command::new("umount").arg("-l").arg(self.dir.path()).status();
    }
}
