//! `cargo xt setup`: install every host dependency, idempotently.
//!
//! Each step checks first and only installs what is missing, so a second run
//! is a no-op that prints "ok" lines. Works without a terminal (CI=true, no
//! stdin).

use crate::say;
use crate::util::{have, probe, run};
use anyhow::{Context, Result};
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// Debian packages the harness, the kernel build and the guest need.
pub const APT_PACKAGES: &[&str] = &[
    // kernel source and its build (LLVM=1 needs clang/lld/llvm; bindgen needs libclang)
    "linux-source-6.12",
    "make",
    "bc",
    "flex",
    "bison",
    "libelf-dev",
    "libssl-dev",
    "dwarves",
    "cpio",
    "xz-utils",
    "clang",
    "lld",
    "llvm",
    "libclang-dev",
    // the VM and what runs inside it (the guest sees the host's root read-only)
    "qemu-system-x86",
    "busybox-static",
    "kmod",
    "ndctl",
    "xfsprogs",
    "e2fsprogs",
    "fio",
    // mkfs's unit tests make btrfs (and ext4, xfs, swap) images to format
    // over, and look for what is left with blkid, wipefs, e2fsck, xfs_repair
    "btrfs-progs",
    "util-linux",
    // external test tools: stress-ng runs as is; pjdfstest links libacl
    "stress-ng",
    "libacl1-dev",
    // extended attributes and ACLs with the standard tools (vm:xattr):
    // setfattr/getfattr, setfacl/getfacl, and the copies that carry them
    "attr",
    "acl",
    "rsync",
    // PMDK, a real MAP_SYNC client (vm:pmdk): pmempool, libpmem(obj), and
    // libpmem-dev for xtests/guest/pmemmap.c
    "pmdk-tools",
    "libpmem-dev",
    "libpmemobj1",
    // knfsd's user space for vm:export (the guest exports a novars mount
    // and mounts it over NFSv4): exportfs, rpc.mountd, rpc.nfsd, mount.nfs
    "nfs-kernel-server",
    "nfs-common",
    "rpcbind",
];

/// bindgen version the kernel's Rust build is known to work with.
pub const BINDGEN_VERSION: &str = "0.73.0";
/// virtme-ng (`vng`), the VM runner.
pub const VIRTME_NG_VERSION: &str = "1.42";

/// Test tools from crates.io, pinned: (crate, version, what it is for).
/// Each installs one binary of the crate's name into cargo's bin directory,
/// which `cargo xt vm` puts on the guest's PATH. A cold install compiles
/// them: about 2 min (pjdfstest) and 2-4 min (fsx) on 2 busy cores.
pub const CARGO_TOOLS: &[(&str, &str, &str)] = &[
    ("pjdfstest", "0.2.2", "POSIX metadata test suite, vm:pjdfstest"),
    ("fsx", "0.3.2", "seeded file exerciser, vm:fsx"),
];

pub fn setup() -> Result<()> {
    apt()?;
    rust_components()?;
    bindgen()?;
    virtme_ng()?;
    for &(name, version, why) in CARGO_TOOLS {
        cargo_tool(name, version, why)?;
    }
    say!("setup done: host has every dependency; next: `cargo xt demo` or `cargo xt test`");
    Ok(())
}

/// Prefix for commands that need root.
fn sudo() -> Vec<&'static str> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        vec![]
    } else {
        vec!["sudo", "-n"]
    }
}

fn root_cmd(args: &[&str]) -> Command {
    let mut argv = sudo();
    argv.extend_from_slice(args);
    let mut c = Command::new(argv[0]);
    c.args(&argv[1..]);
    c
}

fn apt_installed(pkg: &str) -> bool {
    probe(Command::new("dpkg-query").args(["-W", "-f=${Status}", pkg]))
        .is_some_and(|s| s.trim() == "install ok installed")
}

fn apt() -> Result<()> {
    let missing: Vec<&str> = APT_PACKAGES.iter().copied().filter(|p| !apt_installed(p)).collect();
    if missing.is_empty() {
        say!("apt: ok, all {} packages installed", APT_PACKAGES.len());
        return Ok(());
    }
    say!("apt: installing {}", missing.join(" "));
    let hint = "Check the network access to the Debian mirror and that you are root (or have passwordless sudo).";
    run(
        root_cmd(&["apt-get", "update", "-q"])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdin(Stdio::null()),
        hint,
    )?;
    let mut args = vec!["apt-get", "install", "-y", "-q", "--no-install-recommends"];
    args.extend(&missing);
    run(root_cmd(&args).env("DEBIAN_FRONTEND", "noninteractive").stdin(Stdio::null()), hint)
}

/// rustup components: rust-src (the kernel builds `core` from it), rustfmt
/// and clippy (`cargo xt test` checks formatting and lints). Installs only
/// what is missing.
fn rust_components() -> Result<()> {
    const WANT: [(&str, &str); 3] = [
        ("rust-src", "the kernel builds `core` from it"),
        ("rustfmt", "`cargo xt test` checks formatting"),
        ("clippy", "`cargo xt test` runs clippy"),
    ];
    let installed = probe(Command::new("rustup").args(["component", "list", "--installed"]))
        .context("`rustup component list --installed` failed: the kernel's Rust build needs rustup (https://rustup.rs)")?;
    // Installed components are listed as `rust-src` or `clippy-x86_64-...`.
    let has = |c: &str| {
        installed.lines().map(str::trim).any(|l| l == c || l.starts_with(&format!("{c}-")))
    };
    let missing: Vec<&str> = WANT.iter().map(|(c, _)| *c).filter(|c| !has(c)).collect();
    if missing.is_empty() {
        say!("rustup: ok, rust-src, rustfmt and clippy installed");
        return Ok(());
    }
    for (c, why) in WANT.iter().filter(|(c, _)| missing.contains(c)) {
        say!("rustup: installing component {c} ({why})");
    }
    let mut args = vec!["component", "add"];
    args.extend(&missing);
    run(
        Command::new("rustup").args(&args).stdin(Stdio::null()),
        "Check access to static.rust-lang.org.",
    )
}

fn bindgen() -> Result<()> {
    let want = format!("bindgen {BINDGEN_VERSION}");
    match probe(Command::new("bindgen").arg("--version")) {
        Some(v) if v.trim() == want => {
            say!("bindgen: ok, {want}");
            return Ok(());
        }
        Some(v) => say!("bindgen: found `{}`, installing {want}", v.trim()),
        None => say!("bindgen: missing, installing {want} (about a minute)"),
    }
    run(
        Command::new("cargo")
            .args(["install", "--locked", &format!("bindgen-cli@{BINDGEN_VERSION}")])
            .stdin(Stdio::null()),
        "Check access to crates.io; libclang-dev must be installed (the apt step does it).",
    )
}

/// Where `cargo install` puts binaries: `$CARGO_HOME/bin`, else `~/.cargo/bin`.
pub fn cargo_bin_dir() -> Option<PathBuf> {
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))?;
    Some(home.join("bin"))
}

/// Install crate `name` at exactly `version` with `cargo install --locked`
/// unless its binary already reports that version.
fn cargo_tool(name: &str, version: &str, why: &str) -> Result<()> {
    let want = format!("{name} {version}");
    let bin = cargo_bin_dir().map(|d| d.join(name)).unwrap_or_else(|| PathBuf::from(name));
    match probe(Command::new(&bin).arg("--version")) {
        Some(v) if v.trim() == want => {
            say!("{name}: ok, {want}");
            return Ok(());
        }
        Some(v) => say!("{name}: found `{}`, installing {want} ({why})", v.trim()),
        None => say!("{name}: missing, installing {want} ({why}; a few minutes)"),
    }
    run(
        Command::new("cargo")
            .args(["install", "--locked", &format!("{name}@{version}")])
            .stdin(Stdio::null()),
        "Check access to crates.io; pjdfstest also needs libacl1-dev (the apt step installs it).",
    )
}

fn virtme_ng() -> Result<()> {
    let want = VIRTME_NG_VERSION;
    let have_version = probe(Command::new("python3").args(["-m", "pip", "show", "virtme-ng"]))
        .and_then(|s| {
            s.lines().find_map(|l| l.strip_prefix("Version: ").map(|v| v.trim().to_string()))
        });
    if have_version.as_deref() == Some(want) && have("vng") {
        say!("virtme-ng: ok, {want}");
        return Ok(());
    }
    say!("virtme-ng: installing {want} (found {})", have_version.as_deref().unwrap_or("none"));
    let spec = format!("virtme-ng=={want}");
    let pip = |extra: &[&str]| {
        let mut c = Command::new("python3");
        c.args(["-m", "pip", "install", "-q", "--disable-pip-version-check"])
            .args(extra)
            .arg(&spec)
            .stdin(Stdio::null());
        c
    };
    let hint = "Check access to PyPI; on a system Python, installing python3-pip may be needed.";
    if crate::util::status(&mut pip(&[]))?.success() {
    } else {
        // Debian's own python refuses pip installs (PEP 668) unless told.
        say!("virtme-ng: retrying with --break-system-packages (Debian's python3)");
        run(&mut pip(&["--break-system-packages"]), hint)?;
    }
    if have("pyenv") {
        run(Command::new("pyenv").arg("rehash"), "pyenv could not create the `vng` shim.")?;
    }
    if !have("vng") {
        anyhow::bail!("virtme-ng installed but `vng` is not on PATH; add python's script directory (e.g. ~/.local/bin) to PATH");
    }
    Ok(())
}
