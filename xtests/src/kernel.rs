//! `cargo xt kernel`: the guest kernel, built once per (kernel version,
//! flavour, config fragments) into the cache outside the clone.
//!
//! Cache layout (see README):
//! ```text
//! <cache>/kernel/src-<debian version>/linux-source-6.12/   pristine, untarred once
//! <cache>/kernel/<debian version>-<flavour>-<hash>/          O= build dir
//!     arch/x86/boot/bzImage, .config, novars-build.log
//!     novars-built                                         stamp: written last
//! ```
//! `<hash>` covers the fragments' contents; a new package version or a changed
//! fragment gives a new directory, and older builds of that flavour are removed.

use crate::say;
use crate::util::{self, cache_dir, fmt_duration, repo_root, run, show, FileLock, Timer};
use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

const SOURCE_PACKAGE: &str = "linux-source-6.12";
const SOURCE_TARBALL: &str = "/usr/src/linux-source-6.12.tar.xz";
const SOURCE_TOPDIR: &str = "linux-source-6.12";
const STAMP: &str = "novars-built";

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum Flavour {
    /// Fast kernel for functional tests and the demo.
    Normal,
    /// Same config plus KASAN, lockdep, DEBUG_LIST, kmemleak and friends.
    Debug,
}

impl Flavour {
    pub fn name(self) -> &'static str {
        match self {
            Flavour::Normal => "normal",
            Flavour::Debug => "debug",
        }
    }

    pub fn parse(s: &str) -> Option<Flavour> {
        match s {
            "normal" => Some(Flavour::Normal),
            "debug" => Some(Flavour::Debug),
            _ => None,
        }
    }

    /// Config fragments merged, in order, on top of tinyconfig.
    fn fragments(self) -> Vec<PathBuf> {
        let q = repo_root().join("qemu");
        match self {
            Flavour::Normal => vec![q.join("kernel.config")],
            Flavour::Debug => vec![q.join("kernel.config"), q.join("kernel-debug.config")],
        }
    }
}

impl std::fmt::Display for Flavour {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A built (or to be built) kernel.
pub struct Kernel {
    /// The O= build directory: what `make -C` for external modules needs.
    pub build_dir: PathBuf,
}

impl Kernel {
    pub fn bzimage(&self) -> PathBuf {
        self.build_dir.join("arch/x86/boot/bzImage")
    }
}

/// Debian version of the kernel source package, e.g. `6.12.117-1~deb12u1`.
fn source_version() -> Result<String> {
    let v = util::probe(Command::new("dpkg-query").args(["-W", "-f=${Version}", SOURCE_PACKAGE]))
        .filter(|v| !v.trim().is_empty())
        .with_context(|| {
            format!("package {SOURCE_PACKAGE} is not installed: run `cargo xt setup`")
        })?;
    Ok(v.trim().replace(['~', ':', '+'], "_"))
}

/// Where the kernel of `flavour` lives, and whether it is complete.
pub fn locate(flavour: Flavour) -> Result<(Kernel, String)> {
    let version = source_version()?;
    let mut parts: Vec<Vec<u8>> = vec![version.clone().into_bytes()];
    for f in flavour.fragments() {
        let text =
            fs::read(&f).with_context(|| format!("reading config fragment {}", f.display()))?;
        parts.push(f.file_name().map(|n| n.as_encoded_bytes().to_vec()).unwrap_or_default());
        parts.push(text);
    }
    let refs: Vec<&[u8]> = parts.iter().map(|p| p.as_slice()).collect();
    let key = format!("{version}-{flavour}-{:012x}", util::fnv1a64(&refs) >> 16);
    let build_dir = cache_dir()?.join("kernel").join(&key);
    Ok((Kernel { build_dir }, key))
}

/// Return the kernel of `flavour`, building it first if the cache has none.
pub fn ensure(flavour: Flavour) -> Result<Kernel> {
    let (kernel, key) = locate(flavour)?;
    let stamp = kernel.build_dir.join(STAMP);
    let built =
        || fs::read_to_string(&stamp).is_ok_and(|s| s.trim() == key) && kernel.bzimage().exists();
    if built() {
        say!("kernel {flavour}: cached at {}", kernel.build_dir.display());
        return Ok(kernel);
    }
    // Another run may be building this very kernel: wait for it, then look again.
    let lock_path = kernel.build_dir.with_extension("lock");
    let _lock = FileLock::acquire(&lock_path, "this kernel build")?;
    if built() {
        say!("kernel {flavour}: built by another run, at {}", kernel.build_dir.display());
        return Ok(kernel);
    }
    let timer = Timer::start();
    say!("kernel {flavour}: building {key} (normal ~9 min, debug ~15 min on 2 cores)");
    let src = ensure_source()?;
    fs::create_dir_all(&kernel.build_dir)?;
    let _ = fs::remove_file(&stamp);
    configure(&src, &kernel, flavour)?;
    build(&src, &kernel)?;
    fs::write(&stamp, format!("{key}\n"))?;
    say!("kernel {flavour}: built in {} at {}", timer.took(), kernel.build_dir.display());
    prune(&kernel, flavour, &key);
    Ok(kernel)
}

/// Untar the source once per package version.
fn ensure_source() -> Result<PathBuf> {
    let version = source_version()?;
    let top = cache_dir()?.join("kernel").join(format!("src-{version}"));
    let src = top.join(SOURCE_TOPDIR);
    let stamp = top.join("untarred");
    if stamp.exists() && src.join("Makefile").exists() {
        return Ok(src);
    }
    let _lock = FileLock::acquire(&top.with_extension("lock"), "the kernel source")?;
    if stamp.exists() && src.join("Makefile").exists() {
        return Ok(src);
    }
    if !Path::new(SOURCE_TARBALL).exists() {
        bail!("{SOURCE_TARBALL} is missing: run `cargo xt setup` (installs {SOURCE_PACKAGE})");
    }
    if top.exists() {
        fs::remove_dir_all(&top)
            .with_context(|| format!("removing partial source {}", top.display()))?;
    }
    fs::create_dir_all(&top)?;
    say!("kernel: untarring {SOURCE_TARBALL} (about 10 s)");
    run(Command::new("tar").arg("xf").arg(SOURCE_TARBALL).current_dir(&top), "Is the disk full?")?;
    fs::write(&stamp, "")?;
    Ok(src)
}

fn make(src: &Path, kernel: &Kernel) -> Command {
    let mut c = Command::new("make");
    c.arg("-C").arg(src).arg(format!("O={}", kernel.build_dir.display())).arg("LLVM=1");
    c.stdin(Stdio::null());
    c
}

fn configure(src: &Path, kernel: &Kernel, flavour: Flavour) -> Result<()> {
    let build = &kernel.build_dir;
    run(
        make(src, kernel).args(["-s", "rustavailable"]),
        "The kernel's Rust toolchain is incomplete: run `cargo xt setup` (rust-src, bindgen-cli, libclang-dev).",
    )?;
    run(make(src, kernel).args(["-s", "tinyconfig"]), "")?;
    let fragments = flavour.fragments();
    let mut merge = Command::new(src.join("scripts/kconfig/merge_config.sh"));
    merge
        .arg("-m")
        .arg("-O")
        .arg(build)
        .arg(build.join(".config"))
        .args(&fragments)
        .current_dir(src);
    // Its report of every redefined value is noise; errors go to stderr.
    merge.stdout(Stdio::null());
    if !util::status(&mut merge)?.success() {
        bail!("`{}` failed", show(&merge));
    }
    run(make(src, kernel).args(["-s", "olddefconfig"]), "")?;
    verify_config(&build.join(".config"), &fragments)
}

/// Every option a fragment sets must have survived olddefconfig: Kconfig
/// silently drops options whose dependencies are not met.
fn verify_config(config: &Path, fragments: &[PathBuf]) -> Result<()> {
    let actual = parse_config(&fs::read_to_string(config)?);
    // What the fragments ask for, a later fragment overriding an earlier one
    // (as merge_config.sh does).
    let mut wanted: BTreeMap<String, (String, &Path)> = BTreeMap::new();
    for f in fragments {
        for (name, want) in parse_config(&fs::read_to_string(f)?) {
            wanted.insert(name, (want, f.as_path()));
        }
    }
    let mut bad = Vec::new();
    for (name, (want, f)) in &wanted {
        let got = actual.get(name).map(String::as_str).unwrap_or("n");
        if got != want {
            bad.push(format!("  {name}: wanted {want}, got {got}   ({})", f.display()));
        }
    }
    if !bad.is_empty() {
        bail!(
            "the kernel config lost options after olddefconfig (their dependencies are missing; add those to the fragment):\n{}",
            bad.join("\n")
        );
    }
    say!("kernel config: every option of {} fragment(s) is set", fragments.len());
    Ok(())
}

/// `CONFIG_X=v` lines and `# CONFIG_X is not set` (as "n").
fn parse_config(text: &str) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    for line in text.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("# ").and_then(|l| l.strip_suffix(" is not set")) {
            if rest.starts_with("CONFIG_") {
                m.insert(rest.to_string(), "n".to_string());
            }
        } else if line.starts_with("CONFIG_") {
            if let Some((k, v)) = line.split_once('=') {
                m.insert(k.to_string(), v.to_string());
            }
        }
    }
    m
}

/// `make -j` with the output in a log file and a progress line a minute.
fn build(src: &Path, kernel: &Kernel) -> Result<()> {
    let log_path = kernel.build_dir.join("novars-build.log");
    let log = fs::File::create(&log_path)?;
    let mut cmd = make(src, kernel);
    cmd.arg(format!("-j{}", util::ncpus() + 1));
    cmd.stdout(log.try_clone()?).stderr(log);
    eprintln!("+ {}   > {}", show(&cmd), log_path.display());
    let timer = Timer::start();
    let mut child = cmd.spawn().with_context(|| format!("could not start `{}`", show(&cmd)))?;
    let mut next_report = Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        std::thread::sleep(Duration::from_millis(500));
        if timer.elapsed() >= next_report {
            next_report += Duration::from_secs(60);
            let last = last_lines(&log_path, 1);
            say!("kernel build: {} elapsed, at: {}", fmt_duration(timer.elapsed()), last.trim());
        }
    };
    if !status.success() {
        bail!(
            "kernel build failed ({status}); last lines of {}:\n{}",
            log_path.display(),
            last_lines(&log_path, 40)
        );
    }
    Ok(())
}

pub fn last_lines(path: &Path, n: usize) -> String {
    let text = fs::read(path).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Remove older builds of the same flavour (each is ~1 GB).
fn prune(kernel: &Kernel, flavour: Flavour, key: &str) {
    let Some(dir) = kernel.build_dir.parent() else { return };
    let Ok(entries) = fs::read_dir(dir) else { return };
    let suffix = format!("-{flavour}-");
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name != key && name.contains(&suffix) && !name.starts_with("src-") && e.path().is_dir() {
            say!("kernel: removing outdated build {}", e.path().display());
            let _ = fs::remove_dir_all(e.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_set_and_unset_options() {
        let m = parse_config(
            "# comment\nCONFIG_A=y\n# CONFIG_B is not set\nCONFIG_C=\"x y\"\nCONFIG_D=8\n",
        );
        assert_eq!(m["CONFIG_A"], "y");
        assert_eq!(m["CONFIG_B"], "n");
        assert_eq!(m["CONFIG_C"], "\"x y\"");
        assert_eq!(m["CONFIG_D"], "8");
        assert_eq!(m.len(), 4);
    }

    #[test]
    fn a_later_fragment_overrides_an_earlier_one() {
        let dir = crate::util::target_dir().join("tmp/kconfig-unit");
        std::fs::create_dir_all(&dir).unwrap();
        let (base, debug, config) = (dir.join("base"), dir.join("debug"), dir.join(".config"));
        std::fs::write(&base, "CONFIG_A=y\nCONFIG_XFS_FS=y\n").unwrap();
        std::fs::write(&debug, "# CONFIG_XFS_FS is not set\n").unwrap();
        std::fs::write(&config, "CONFIG_A=y\n# CONFIG_XFS_FS is not set\n").unwrap();
        verify_config(&config, &[base.clone(), debug.clone()]).unwrap();
        // The base alone wants xfs: the same .config is then wrong.
        assert!(verify_config(&config, std::slice::from_ref(&base)).is_err());
        std::fs::write(&config, "CONFIG_A=y\nCONFIG_XFS_FS=y\n").unwrap();
        assert!(verify_config(&config, &[base, debug]).is_err());
    }

    #[test]
    fn fragments_are_well_formed() {
        for flavour in [Flavour::Normal, Flavour::Debug] {
            for f in flavour.fragments() {
                let text = fs::read_to_string(&f).unwrap();
                for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
                    let ok = line.starts_with('#')
                        || (line.starts_with("CONFIG_") && line.contains('='));
                    assert!(ok, "{}: malformed line {line:?}", f.display());
                }
                assert!(!parse_config(&text).is_empty());
            }
        }
    }
}
