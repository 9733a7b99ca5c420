//! Paths and the one way this harness runs other programs: it always says
//! what it runs, and a failure says which command failed.

use anyhow::{bail, Context, Result};
use std::ffi::OsStr;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

/// The repository root (the workspace this harness was built from).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtests lives one level below the workspace root")
        .to_path_buf()
}

/// `target/` of the workspace (honours CARGO_TARGET_DIR).
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) => {
            let d = PathBuf::from(d);
            if d.is_absolute() {
                d
            } else {
                repo_root().join(d)
            }
        }
        None => repo_root().join("target"),
    }
}

/// Cache for things that outlive a clone (kernel sources and builds):
/// `$NOVARS_CACHE`, else `$XDG_CACHE_HOME/novars`, else `~/.cache/novars`.
pub fn cache_dir() -> Result<PathBuf> {
    if let Some(d) = std::env::var_os("NOVARS_CACHE") {
        return Ok(PathBuf::from(d));
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(d).join("novars"));
    }
    let home = std::env::var_os("HOME").context("neither NOVARS_CACHE, XDG_CACHE_HOME nor HOME is set; set NOVARS_CACHE to a writable directory")?;
    Ok(PathBuf::from(home).join(".cache/novars"))
}

/// Render a command the way a user would type it.
pub fn show(cmd: &Command) -> String {
    let mut s = String::new();
    for (k, v) in cmd.get_envs() {
        if let Some(v) = v {
            let _ = write!(s, "{}={} ", k.to_string_lossy(), quote(v));
        }
    }
    s.push_str(&quote(cmd.get_program()));
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&quote(a));
    }
    if let Some(dir) = cmd.get_current_dir() {
        let _ = write!(s, "   (in {})", dir.display());
    }
    s
}

fn quote(s: &OsStr) -> String {
    let s = s.to_string_lossy();
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c)) {
        s.into_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// Print a harness message (always to stderr, so stdout stays the user's).
#[macro_export]
macro_rules! say {
    ($($t:tt)*) => { eprintln!("xt: {}", format!($($t)*)) };
}

/// Run `cmd`, printing it first; fail with `hint` if it does not exit 0.
/// Its output goes to stderr: stdout is kept for results (paths, the guest
/// command's output).
pub fn run(cmd: &mut Command, hint: &str) -> Result<()> {
    let status = status(cmd.stdout(std::io::stderr()))?;
    if !status.success() {
        bail!("`{}` failed ({status}). {hint}", show(cmd));
    }
    Ok(())
}

/// Run `cmd`, printing it first, and return its exit status.
pub fn status(cmd: &mut Command) -> Result<ExitStatus> {
    eprintln!("+ {}", show(cmd));
    cmd.status().with_context(|| format!("could not start `{}`", show(cmd)))
}

/// Run `cmd` quietly (a probe, not an action) and return its stdout if it
/// exited 0.
pub fn probe(cmd: &mut Command) -> Option<String> {
    let out = cmd.stderr(std::process::Stdio::null()).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Is `prog` on PATH?
pub fn have(prog: &str) -> bool {
    probe(Command::new("sh").args(["-c", &format!("command -v {prog}")])).is_some()
}

pub fn fmt_duration(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

/// Measures and reports how long a phase took.
pub struct Timer(Instant);

impl Timer {
    pub fn start() -> Self {
        Timer(Instant::now())
    }
    pub fn elapsed(&self) -> Duration {
        self.0.elapsed()
    }
    pub fn took(&self) -> String {
        fmt_duration(self.0.elapsed())
    }
}

/// A stable 64-bit FNV-1a hash, used for cache keys (not for security).
pub fn fnv1a64(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for &b in part.iter().chain(&[0u8]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

/// Number of CPUs on the host.
pub fn ncpus() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2)
}

/// An exclusive lock on a file, held until dropped. Serialises harness runs
/// that share a kernel build directory, a module build directory or the VM
/// images (e.g. `cargo xt test` in two terminals).
pub struct FileLock(#[allow(dead_code)] std::fs::File);

impl FileLock {
    /// Open (creating it and its directory if need be) a lock file.
    fn open(path: &Path) -> Result<std::fs::File> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .with_context(|| format!("opening lock file {}", path.display()))
    }

    pub fn acquire(path: &Path, what: &str) -> Result<FileLock> {
        use std::os::fd::AsRawFd;
        let f = Self::open(path)?;
        // SAFETY: flock on an fd we own; the lock goes when the File closes.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            crate::say!("another harness run is using {what} ({}); waiting for it", path.display());
            // SAFETY: as above, blocking.
            if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
                bail!("could not lock {}", path.display());
            }
        }
        Ok(FileLock(f))
    }

    /// Lock whichever of `paths` is free first (a counting semaphore made
    /// of lock files), polling once a second while all are taken.
    pub fn acquire_any(paths: &[PathBuf], what: &str) -> Result<(usize, FileLock)> {
        use std::os::fd::AsRawFd;
        let mut files =
            paths.iter().map(|p| Self::open(p).map(Some)).collect::<Result<Vec<_>>>()?;
        if files.is_empty() {
            bail!("no lock files for {what}");
        }
        let mut said = false;
        loop {
            for (i, slot) in files.iter_mut().enumerate() {
                let Some(f) = slot else { continue };
                // SAFETY: flock on an fd we own; the lock goes when the File closes.
                if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
                    if let Some(f) = slot.take() {
                        return Ok((i, FileLock(f)));
                    }
                }
            }
            if !said {
                crate::say!("other harness runs are using {what}; waiting for one");
                said = true;
            }
            std::thread::sleep(Duration::from_secs(1));
        }
    }
}

/// The current UTC time as `yyyymmdd-hhmmss` (for log directory names).
pub fn timestamp() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    // UTC yyyymmdd-hhmmss, computed by hand to avoid a date dependency.
    let (days, secs) = (now / 86400, now % 86400);
    let (y, m, d) = civil_from_days(days as i64);
    format!("{y:04}{m:02}{d:02}-{:02}{:02}{:02}", secs / 3600, secs / 60 % 60, secs % 60)
}

// Howard Hinnant's days-to-civil algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_is_stable_and_separates_parts() {
        assert_eq!(fnv1a64(&[b"a"]), fnv1a64(&[b"a"]));
        assert_ne!(fnv1a64(&[b"ab", b"c"]), fnv1a64(&[b"a", b"bc"]));
    }

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
    }

    #[test]
    fn quoting() {
        let mut c = Command::new("echo");
        c.args(["a b", "it's", "plain-1.0"]);
        assert_eq!(show(&c), r"echo 'a b' 'it'\''s' plain-1.0");
    }
}
