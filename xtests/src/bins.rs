//! The workspace's release binaries, which the guest runs from
//! `target/release` (on its PATH), and the guest's C test programs
//! (`xtests/guest/*.c`, built on the host into `target/guest-bin/`: the
//! guest sees the host's root read-only and compiling under TCG is slow).

use crate::util::{repo_root, status, target_dir};
use anyhow::{bail, Result};
use std::process::{Command, Stdio};

/// Cargo binaries cannot have a `.` in their name; the tools' real names
/// are given to them by symlinks next to the binaries.
const DOTTED_NAMES: &[(&str, &str)] =
    &[("mkfs.novars", "mkfs_novars"), ("fsck.novars", "fsck_novars")];

/// `cargo build --release` of every binary of the workspace, then the
/// `mkfs.novars` / `fsck.novars` symlinks for those that exist.
pub fn build() -> Result<()> {
    let mut c = Command::new(env!("CARGO"));
    c.args(["build", "--release", "--workspace", "--bins"])
        .current_dir(repo_root())
        .stdin(Stdio::null());
    let st = status(&mut c)?;
    link_dotted_names();
    if !st.success() {
        bail!("`cargo build --release --workspace --bins` failed ({st}); the compiler's message is above");
    }
    guest_programs()
}

/// `cc -O2 -Wall -Werror` of every `xtests/guest/NAME.c` into
/// `target/guest-bin/NAME` when the source is newer than the program.
/// They may include `novafs-kmod/novars_ioctl.h`.
pub fn guest_programs() -> Result<()> {
    let src = repo_root().join("xtests/guest");
    let out = target_dir().join("guest-bin");
    std::fs::create_dir_all(&out)?;
    let mtime = |p: &std::path::Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let header = repo_root().join("novafs-kmod/novars_ioctl.h");
    let mut failed = Vec::new();
    for e in std::fs::read_dir(&src)? {
        let path = e?.path();
        if path.extension().is_none_or(|x| x != "c") {
            continue;
        }
        let Some(stem) = path.file_stem() else { continue };
        let bin = out.join(stem);
        let newest = mtime(&path).max(mtime(&header));
        if mtime(&bin).is_some_and(|b| newest.is_some_and(|n| b >= n)) {
            continue;
        }
        // A line `// xt-link: ARGS` adds linker arguments (e.g. -lpmem).
        let text = std::fs::read_to_string(&path)?;
        let link: Vec<&str> = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("// xt-link:"))
            .map(|a| a.split_whitespace().collect())
            .unwrap_or_default();
        let mut c = Command::new("cc");
        c.args(["-O2", "-Wall", "-Werror", "-I"])
            .arg(repo_root().join("novafs-kmod"))
            .arg("-o")
            .arg(&bin)
            .arg(&path)
            .args(&link)
            .stdin(Stdio::null());
        let st = status(&mut c)?;
        if !st.success() {
            failed.push(format!("cc {} failed ({st})", path.display()));
        }
    }
    // One program that does not build (e.g. libpmem-dev missing before
    // `cargo xt setup`) fails its own test, not every other program's.
    if !failed.is_empty() {
        bail!("{}; the compiler's messages are above", failed.join(", "));
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
