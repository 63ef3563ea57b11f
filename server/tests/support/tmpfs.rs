//! A small tmpfs mounted for one test, to fill a disk for real. Needs root (CI runs as root);
//! a test that cannot mount fails, it never passes silently.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A mounted tmpfs, unmounted on drop.
pub struct Tmpfs {
    _parent: tempfile::TempDir,
    path: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `bytes` with `options` (e.g. "ro").
    pub fn mount(bytes: u64, options: &str) -> Self {
        let parent = tempfile::tempdir().expect("a directory to mount on");
        let path = parent.path().join("disk");
        std::fs::create_dir(&path).unwrap();
        let mut all = format!("size={bytes},mode=0755");
        if !options.is_empty() {
            all = format!("{all},{options}");
        }
        let status = Command::new("mount").args(["-t", "tmpfs", "-o", &all, "tmpfs"]).arg(&path).status();
        assert!(
            status.is_ok_and(|s| s.success()),
            "cannot mount a tmpfs at {} (this test needs root, as CI has)",
            path.display()
        );
        Self { _parent: parent, path }
    }

    /// Where it is mounted.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Remounts it read-only.
    pub fn make_read_only(&self) {
        let status = Command::new("mount").args(["-o", "remount,ro"]).arg(&self.path).status().unwrap();
        assert!(status.success(), "cannot remount {} read-only", self.path.display());
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}
