//! The workspace's release binaries, which the guest runs from
//! `target/release` (on its PATH).

use crate::util::{repo_root, status, target_dir};
use anyhow::{bail, Result};
use std::process::{Command, Stdio};

/// Cargo binaries cannot have a `.` in their name; the tools' real names
/// are given to them by symlinks next to the binaries.
const DOTTED_NAMES: &[(&str, &str)] = &[("mkfs.novars", "mkfs_novars"), ("fsck.novars", "fsck_novars")];

/// `cargo build --release` of every binary of the workspace, then the
/// `mkfs.novars` / `fsck.novars` symlinks for those that exist.
pub fn build() -> Result<()> {
    let mut c = Command::new(env!("CARGO"));
    c.args(["build", "--release", "--workspace", "--bins"]).current_dir(repo_root()).stdin(Stdio::null());
    let st = status(&mut c)?;
    link_dotted_names();
    if !st.success() {
        bail!("`cargo build --release --workspace --bins` failed ({st}); the compiler's message is above");
    }
    Ok(())
}

fn link_dotted_names() {
    let dir = target_dir().join("release");
    for (name, bin) in DOTTED_NAMES {
        let link = dir.join(name);
        if dir.join(bin).exists() && std::fs::read_link(&link).is_err() {
            let _ = std::fs::remove_file(&link);
            let _ = std::os::unix::fs::symlink(bin, &link);
        }
    }
}
