//! `cargo xt vm` / `cargo xt shell`: boot the guest kernel under TCG with
//! emulated NVDIMMs and run a command in it through virtme-ng.
//!
//! How a run works:
//! - The host root is the guest root (9p, read-only), so host binaries,
//!   `target/release/*` and `novars.ko` are visible at their host paths.
//! - Each run gets a directory `target/vm/logs/<time>-<name>/`, shared
//!   read-write with the guest. `run.sh` there is the guest entry point; it
//!   prepares the NVDIMMs (`xtests/guest/prep.sh`), runs the command with its
//!   output teed to `cmd.out`, stores its exit status in `status` and the
//!   whole kernel ring buffer in `dmesg.txt`. The serial console (every
//!   kernel message, even after a guest hang or panic) goes to `console.log`.
//! - The run fails if `logscan` finds anything in `console.log` or
//!   `dmesg.txt`, whatever the command returned.
//! - virtme-ng's virtio-serial script channel needs udev in the guest to name
//!   its ports; Debian hosts here have no udev (and `udevadm settle` would
//!   cost ~15 s per TCG boot), so virtme-ng-init falls back to running the
//!   command on the serial console. The harness therefore shows the
//!   command's output live from the non-kernel lines of `console.log` (or
//!   from vng's stdout when udev is present), keeps `cmd.out` as the
//!   authoritative copy, and reads the exit status from `status`.

use crate::kernel::{self, Flavour};
use crate::logscan::{self, Finding};
use crate::util::{self, fmt_duration, repo_root, show, target_dir, timestamp, FileLock, Timer};
use crate::{module, say};
use anyhow::{bail, Context, Result};
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Guest RAM (besides the NVDIMMs), unless a run asks for more.
pub const GUEST_RAM_MIB: u64 = 1024;
/// NVDIMM images above this size are big: each holds, besides what the
/// guest wrote, the fsdax memmap the guest puts on the device (1/64 of it:
/// 4 GiB of host disk for a 256 GiB NVDIMM, `xtests/guest/prep.sh`), so
/// the test harness deletes them after the boots that needed them.
pub const BIG_IMAGE_MIB: u64 = 16 * 1024;
const GUEST_CPUS: u32 = 2;
/// Run directories kept under target/vm/logs.
const KEEP_LOGS: usize = 100;

#[derive(Clone, Debug)]
pub struct VmConfig {
    pub flavour: Flavour,
    pub nvdimms: u32,
    pub size_mib: u64,
    /// Guest RAM besides the NVDIMMs.
    pub ram_mib: u64,
    /// Recreate the NVDIMM image files (all data lost) before booting.
    pub fresh: bool,
    pub timeout: Duration,
    /// Copy the command's output to our stdout as it arrives.
    pub echo: bool,
    /// `novars.ko` for this flavour, exported to the guest as $NOVARS_KO
    /// (None: it did not build).
    pub module: Option<PathBuf>,
    /// A private set of NVDIMM images (`target/vm/<name>/`) instead of the
    /// shared ones: a crash test's images must survive from one boot to the
    /// next, whatever other harness runs do between them. [`ANY_LANE`]: any
    /// free set of the pool `target/vm/lane<K>/` (the test harness's boots).
    pub images: Option<String>,
    /// Keep the NVDIMMs in host memory, as real pmem is: backing files on
    /// `/dev/shm` (when it has room) and qemu's `prealloc=on`. A sparse
    /// file on the host's disk costs the first store to each page a host
    /// fault and an allocation (new-block writes ran at 250 MiB/s against
    /// 2 GiB/s on touched pages), and the host's writeback of it stalls
    /// the guest's stores at random (a raw 128 MiB write once took 2 s).
    /// Benchmarks set it; big devices should not (it takes their size in
    /// host RAM).
    pub resident: bool,
}

impl Default for VmConfig {
    fn default() -> Self {
        VmConfig {
            flavour: Flavour::Normal,
            nvdimms: 1,
            size_mib: 1024,
            ram_mib: GUEST_RAM_MIB,
            fresh: false,
            timeout: Duration::from_secs(600),
            echo: true,
            module: None,
            images: None,
            resident: false,
        }
    }
}

/// Kill qemu with SIGKILL `delay` after the guest command printed a line
/// containing `marker`: a power cut in the middle of whatever it does.
#[derive(Clone, Debug)]
pub struct Crash {
    pub marker: String,
    pub delay: Duration,
}

#[derive(Debug)]
pub struct Outcome {
    /// Exit status of the guest command; None if it never finished.
    pub status: Option<i32>,
    /// The command's output (stdout and stderr).
    pub output: String,
    pub findings: Vec<Finding>,
    pub timed_out: bool,
    /// qemu was killed on purpose (see `Crash`).
    pub crashed: bool,
    pub log_dir: PathBuf,
    pub took: Duration,
}

impl Outcome {
    pub fn clean_log(&self) -> bool {
        self.findings.is_empty()
    }

    /// One line: what happened, for a summary.
    pub fn describe(&self) -> String {
        let status = match (self.crashed, self.timed_out, self.status) {
            (true, _, _) => "qemu killed on purpose".to_string(),
            (_, true, _) => "TIMED OUT".to_string(),
            (_, _, Some(s)) => format!("exit {s}"),
            (_, _, None) => "command did not finish (guest died?)".to_string(),
        };
        let log = if self.findings.is_empty() {
            "kernel log clean".to_string()
        } else {
            format!("{} kernel log finding(s)", self.findings.len())
        };
        format!("{status}, {log}, {} (logs: {})", fmt_duration(self.took), self.log_dir.display())
    }
}

pub fn vm_dir() -> PathBuf {
    target_dir().join("vm")
}

fn image_dir(cfg: &VmConfig) -> PathBuf {
    // Decided once per run: every path to an image (its creation, qemu's
    // command line, its deletion) must name the same file.
    static SHM: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();
    let shm = if cfg.resident { SHM.get_or_init(|| shm_dir(cfg)).clone() } else { None };
    let root = shm.unwrap_or_else(vm_dir);
    match &cfg.images {
        Some(set) => root.join(set),
        None => root,
    }
}

/// `/dev/shm/novars-vm-<uid>` for [`VmConfig::resident`] images, if
/// `/dev/shm` has room for them (and 256 MiB more); `None` otherwise.
fn shm_dir(cfg: &VmConfig) -> Option<PathBuf> {
    let c = std::ffi::CString::new("/dev/shm").ok()?;
    // SAFETY: `c` is a NUL-terminated path that outlives the call; `st` is
    // a plain C struct statvfs fills in (zeroed is a valid value for it).
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    let avail = (st.f_bavail as u64).saturating_mul(st.f_frsize as u64);
    let need = (u64::from(cfg.nvdimms) * cfg.size_mib + 256) << 20;
    // Images already there count as room.
    let dir = Path::new("/dev/shm").join(format!("novars-vm-{}", uid()));
    let have: u64 = fs::read_dir(&dir)
        .map(|d| d.flatten().filter_map(|e| e.metadata().ok()).map(|m| m.len()).sum())
        .unwrap_or(0);
    (avail.saturating_add(have) >= need).then_some(dir)
}

fn uid() -> u32 {
    // SAFETY: getuid has no preconditions and cannot fail.
    unsafe { libc::getuid() }
}

fn image_path(cfg: &VmConfig, i: u32) -> PathBuf {
    image_dir(cfg).join(format!("pmem{i}.img"))
}

/// Marker: this image was turned into an fsdax namespace by a guest.
fn fsdax_marker(cfg: &VmConfig, i: u32) -> PathBuf {
    image_dir(cfg).join(format!("pmem{i}.img.fsdax"))
}

/// Parse "512M", "1G", "1024" (MiB) into MiB.
pub fn parse_size_mib(s: &str) -> Result<u64> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().last() {
        Some((i, 'G' | 'g')) => (&s[..i], 1024),
        Some((i, 'M' | 'm')) => (&s[..i], 1),
        _ => (s, 1),
    };
    let n: u64 = num.parse().with_context(|| format!("bad size {s:?}: use e.g. 512M or 1G"))?;
    let mib = n.checked_mul(mult).context("size too large")?;
    if mib < 16 || mib % 2 != 0 {
        bail!("NVDIMM size {s} must be at least 16M and a multiple of 2M");
    }
    Ok(mib)
}

/// Create missing (or, with `fresh`, all) NVDIMM backing files.
fn prepare_images(cfg: &VmConfig) -> Result<()> {
    fs::create_dir_all(image_dir(cfg))?;
    for i in 0..cfg.nvdimms {
        let img = image_path(cfg, i);
        let want = cfg.size_mib << 20;
        let len = fs::metadata(&img).map(|m| m.len()).ok();
        if cfg.fresh || len != Some(want) {
            let why = match len {
                None => "new".to_string(),
                Some(l) if l != want => format!("size was {} MiB", l >> 20),
                Some(_) => "--fresh".to_string(),
            };
            say!("vm: creating {} ({} MiB, sparse; {why})", img.display(), cfg.size_mib);
            let _ = fs::remove_file(fsdax_marker(cfg, i));
            let _ = fs::remove_file(&img);
            let f = fs::File::create(&img)?;
            f.set_len(want)?;
            if let Some(head) = fsdax_head(cfg.size_mib, i)
                .and_then(|p| fs::read(p).ok())
                .filter(|h| h.len() as u64 == FSDAX_HEAD)
            {
                use std::os::unix::fs::FileExt;
                f.write_all_at(&head, 0)?;
                say!(
                    "vm: {}: fsdax info block from the cache (no ndctl in the guest)",
                    img.display()
                );
            }
        }
    }
    Ok(())
}

/// The bytes of an image before an fsdax namespace's data: the pfn info
/// block (at 4 KiB) and padding up to the 2 MiB data alignment. A guest
/// never writes there (`/dev/pmemN` starts after it).
const FSDAX_HEAD: u64 = 2 << 20;

/// Where the head of a freshly prepared image of `size_mib` in NVDIMM slot
/// `slot` is kept, so that new images (every fresh clone's lanes,
/// `--fresh`) start as fsdax namespaces: `ndctl create-namespace` takes
/// seconds per namespace under TCG on the normal kernel and minutes on the
/// debug kernel. One head per slot, so the namespaces of one VM keep
/// distinct uuids. If a head does not give a DAX device, prep.sh still
/// runs ndctl.
fn fsdax_head(size_mib: u64, slot: u32) -> Option<PathBuf> {
    util::cache_dir()
        .ok()
        .map(|d| d.join("nvdimm").join(format!("fsdax-head-{size_mib}M-{slot}.bin")))
}

/// After a boot whose prep succeeded: keep each image's head for new
/// images of its slot, where none is kept yet.
fn save_fsdax_head(cfg: &VmConfig) {
    use std::io::Read;
    for i in 0..cfg.nvdimms {
        let Some(path) = fsdax_head(cfg.size_mib, i) else { return };
        if path.exists() {
            continue;
        }
        let mut head = vec![0u8; FSDAX_HEAD as usize];
        let ok =
            fs::File::open(image_path(cfg, i)).and_then(|mut f| f.read_exact(&mut head)).is_ok();
        // An info block starts with its signature "NVDIMM_PFN_INFO" at 4 KiB.
        if !ok || head.get(4096..4096 + 15) != Some(b"NVDIMM_PFN_INFO".as_slice()) {
            continue;
        }
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        let saved = path
            .parent()
            .map_or(Ok(()), fs::create_dir_all)
            .and_then(|_| fs::write(&tmp, &head))
            .and_then(|_| fs::rename(&tmp, &path));
        if saved.is_ok() {
            say!(
                "vm: kept the fsdax info block of {} for new images ({})",
                image_path(cfg, i).display(),
                path.display()
            );
        } else {
            let _ = fs::remove_file(&tmp);
        }
    }
}

/// Deletes [`VmConfig::resident`] images above 1 GiB after the run: they
/// hold their size in host RAM (`/dev/shm`) until deleted; the bench's
/// 1 GiB one is kept for the next run.
pub fn drop_resident_images(cfg: &VmConfig) {
    if !cfg.resident || cfg.size_mib <= 1024 {
        return;
    }
    for i in 0..cfg.nvdimms {
        let img = image_path(cfg, i);
        if img.starts_with("/dev/shm") && fs::remove_file(&img).is_ok() {
            let _ = fs::remove_file(fsdax_marker(cfg, i));
            say!("vm: deleted {} ({} MiB of host RAM)", img.display(), cfg.size_mib);
        }
    }
}

/// Deletes the run's images if they are big ([`BIG_IMAGE_MIB`]): the
/// test harness calls it after the boots that used them (a later boot
/// makes a new sparse image in milliseconds, its fsdax info block from
/// the cache).
pub fn drop_big_images(cfg: &VmConfig) {
    if cfg.size_mib <= BIG_IMAGE_MIB {
        return;
    }
    for i in 0..cfg.nvdimms {
        let img = image_path(cfg, i);
        if fs::remove_file(&img).is_ok() {
            say!("vm: deleted {} ({} MiB; big images are not kept)", img.display(), cfg.size_mib);
        }
        let _ = fs::remove_file(fsdax_marker(cfg, i));
    }
}

/// Whether every image already holds an fsdax namespace.
fn images_ready(cfg: &VmConfig) -> bool {
    (0..cfg.nvdimms).all(|i| fsdax_marker(cfg, i).exists())
}

fn qemu_opts(cfg: &VmConfig) -> String {
    let n = cfg.nvdimms.max(1);
    let ram = cfg.ram_mib;
    let maxmem = ram + u64::from(n) * cfg.size_mib;
    let mut o = format!("-machine nvdimm=on -m {ram}M,slots={n},maxmem={maxmem}M");
    for i in 0..cfg.nvdimms {
        o.push_str(&format!(
            " -object memory-backend-file,id=nvmem{i},share=on,mem-path={},size={}M{} -device nvdimm,id=nvdimm{i},memdev=nvmem{i}",
            image_path(cfg, i).display(),
            cfg.size_mib,
            if cfg.resident { ",prealloc=on" } else { "" }
        ));
    }
    o
}

/// The vng command line shared by `run` and `shell`.
fn vng(cfg: &VmConfig, kernel: &Path, rwdir: &Path) -> Command {
    let mut c = Command::new("vng");
    c.arg("-r").arg(kernel);
    c.args(["--disable-kvm", "--force-9p", "--verbose"]);
    c.args(["--cpus", &GUEST_CPUS.to_string(), "--memory", &format!("{}M", cfg.ram_mib)]);
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        c.args(["--user", "root"]);
    }
    c.arg(format!("--rwdir={}", rwdir.display()));
    // no5lvl: `-cpu max` offers 5-level paging, under which the debug
    // kernel's KASAN reported a wild access in early boot (rcu_is_watching
    // from an interrupt in identify_cpu) in about one boot in four, before
    // any novars code ran. 4-level paging is plenty for a 1 GiB guest.
    // watchdog_thresh=60: the debug kernel's soft-lockup detector fires
    // after 2 x thresh seconds without a reschedule; with two TCG VMs on
    // 2 host cores a vCPU was starved for 26 s during boot (session 4, a
    // false "BUG: soft lockup" that failed every test of that boot). 120 s
    // still catches a real lockup; the tests' own timeouts catch the rest.
    // cache=loose: the root is the host's, read-only and unchanged during
    // a run (crashcheck 430 -> 254 s); the last rootflags= wins.
    c.args(["--append", "printk.devkmsg=on no5lvl watchdog_thresh=60 rootflags=version=9p2000.L,trans=virtio,access=any,msize=524288,cache=loose"]);
    c.arg(format!("--qemu-opts={}", qemu_opts(cfg)));
    c
}

pub fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Turn `cargo xt vm -- ARGS` into one shell command: a single argument is a
/// shell script line; several are a program and its arguments.
pub fn command_line(args: &[String]) -> String {
    match args {
        [one] => one.clone(),
        many => many.iter().map(|a| sh_quote(a)).collect::<Vec<_>>().join(" "),
    }
}

/// Environment every guest command gets.
fn guest_env(cfg: &VmConfig, run_dir: &Path) -> Vec<(String, String)> {
    let root = repo_root();
    let bin = target_dir().join("release");
    let tools =
        crate::setup::cargo_bin_dir().map(|d| format!(":{}", d.display())).unwrap_or_default();
    // NOVARS_GUEST_PATH_PREFIX=DIR[:DIR...] goes first on the guest's PATH
    // (the guest sees the host's root): a directory with an `awk` symlink
    // to gawk runs every guest script with GNU awk (TESTING.md).
    let prefix = std::env::var("NOVARS_GUEST_PATH_PREFIX")
        .ok()
        .filter(|p| !p.is_empty())
        .map(|p| format!("{p}:"))
        .unwrap_or_default();
    let mut env = vec![
        ("NOVARS_ROOT".into(), root.display().to_string()),
        ("NOVARS_BIN".into(), bin.display().to_string()),
        ("NOVARS_FLAVOUR".into(), cfg.flavour.name().into()),
        ("NOVARS_NVDIMMS".into(), cfg.nvdimms.to_string()),
        ("NOVARS_OUT".into(), run_dir.display().to_string()),
        ("NOVARS_GUEST_LIB".into(), root.join("xtests/guest/lib.sh").display().to_string()),
        // cargo's bin directory: the test tools `cargo xt setup` installs (pjdfstest, fsx)
        (
            "PATH".into(),
            format!(
                "{prefix}{}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin{}",
                bin.display(),
                tools
            ),
        ),
    ];
    if let Some(ko) = &cfg.module {
        env.push(("NOVARS_KO".into(), ko.display().to_string()));
    }
    // Other NOVARS_* settings of the host (a test's long mode, e.g.
    // NOVARS_GC_WRITES) reach the guest unchanged.
    let mut host: Vec<(String, String)> = std::env::vars()
        .filter(|(k, _)| k.starts_with("NOVARS_") && !env.iter().any(|(e, _)| e == k))
        .collect();
    host.sort();
    env.extend(host);
    env
}

/// The guest's entry point, written into the run directory.
fn write_run_script(cfg: &VmConfig, run_dir: &Path, cmd: &str) -> Result<PathBuf> {
    let root = repo_root();
    let mut s =
        String::from("#!/bin/sh\n# Generated by `cargo xt vm`: the guest side of one VM run.\n");
    for (k, v) in guest_env(cfg, run_dir) {
        s.push_str(&format!("export {k}={}\n", sh_quote(&v)));
    }
    s.push_str(&format!(
        r#"R="$NOVARS_OUT"
cd /tmp
if sh {prep} "$NOVARS_NVDIMMS" > "$R/prep.out" 2>&1; then
    touch "$R/prep-ok"
    {{ sh -c {cmd}; echo $? > "$R/status"; }} < /dev/null 2>&1 | tee "$R/cmd.out"
else
    echo "xt: NVDIMM preparation failed:"; cat "$R/prep.out"
fi
dmesg > "$R/dmesg.txt"
sync
"#,
        prep = sh_quote(&root.join("xtests/guest/prep.sh").display().to_string()),
        cmd = sh_quote(cmd),
    ));
    let path = run_dir.join("run.sh");
    fs::write(&path, s)?;
    Ok(path)
}

/// Follows a growing file and hands out its complete lines.
struct ConsoleTail {
    path: PathBuf,
    offset: u64,
    partial: Vec<u8>,
}

impl ConsoleTail {
    fn new(path: PathBuf) -> Self {
        ConsoleTail { path, offset: 0, partial: Vec::new() }
    }

    /// Lines appended since the last call; with `at_end`, also an
    /// unterminated last line.
    fn new_lines(&mut self, at_end: bool) -> Vec<String> {
        use std::io::{Read, Seek, SeekFrom};
        let mut buf = Vec::new();
        if let Ok(mut f) = fs::File::open(&self.path) {
            if f.seek(SeekFrom::Start(self.offset)).is_ok() {
                let _ = f.read_to_end(&mut buf);
            }
        }
        self.offset += buf.len() as u64;
        self.partial.extend_from_slice(&buf);
        let mut lines = Vec::new();
        while let Some(pos) = self.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=pos).collect();
            lines.push(String::from_utf8_lossy(&line).trim_end_matches(['\r', '\n']).to_string());
        }
        if at_end && !self.partial.is_empty() {
            lines.push(String::from_utf8_lossy(&self.partial).trim_end().to_string());
            self.partial.clear();
        }
        lines
    }
}

/// Held for the duration of a VM run: its image set (runs on the same
/// images wait for each other) and one of the machine's VM slots (at most
/// one TCG VM per host CPU, whatever the number of clones, harness runs and
/// lanes: more only makes every VM slower and tests time out). The slots
/// are lock files in `$TMPDIR/novars-vm-slots-<uid>/`.
struct VmLocks {
    _images: FileLock,
    _slot: FileLock,
}

/// `VmConfig::images` for "any free image set of the lane pool".
pub const ANY_LANE: &str = "lane*";

/// Lock the run's image set (choosing one from the pool for [`ANY_LANE`]:
/// the returned config names it), then a VM slot.
fn lock(cfg: &VmConfig) -> Result<(VmConfig, VmLocks)> {
    let (cfg, images) = if cfg.images.as_deref() == Some(ANY_LANE) {
        let pool: Vec<PathBuf> = (0..2 * util::ncpus().max(1))
            .map(|k| vm_dir().join(format!("lane{k}")).join("lock"))
            .collect();
        let (k, lock) = FileLock::acquire_any(&pool, "every lane's VM images")?;
        (VmConfig { images: Some(format!("lane{k}")), ..cfg.clone() }, lock)
    } else {
        (cfg.clone(), FileLock::acquire(&image_dir(cfg).join("lock"), "the VM images")?)
    };
    // SAFETY: getuid(2) cannot fail and touches no memory.
    let uid = unsafe { libc::getuid() };
    let dir = std::env::temp_dir().join(format!("novars-vm-slots-{uid}"));
    let slots: Vec<PathBuf> =
        (0..util::ncpus().max(1)).map(|i| dir.join(format!("slot{i}.lock"))).collect();
    let (_, slot) = FileLock::acquire_any(&slots, "every VM slot")?;
    Ok((cfg, VmLocks { _images: images, _slot: slot }))
}

fn new_run_dir(name: &str) -> Result<PathBuf> {
    let logs = vm_dir().join("logs");
    fs::create_dir_all(&logs)?;
    prune_logs(&logs);
    let base = format!("{}-{name}", timestamp());
    // create_dir fails on an existing directory: parallel lanes never share one.
    let mut dir = logs.join(&base);
    let mut n = 1;
    loop {
        match fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                n += 1;
                dir = logs.join(format!("{base}.{n}"));
            }
            Err(e) => return Err(e).with_context(|| format!("creating {}", dir.display())),
        }
    }
}

fn prune_logs(logs: &Path) {
    let Ok(rd) = fs::read_dir(logs) else { return };
    let mut dirs: Vec<PathBuf> = rd.flatten().map(|e| e.path()).filter(|p| p.is_dir()).collect();
    dirs.sort();
    let excess = dirs.len().saturating_sub(KEEP_LOGS);
    for d in &dirs[..excess] {
        let _ = fs::remove_dir_all(d);
    }
}

/// Build novars.ko for `flavour` if it compiles (a VM is still useful when
/// it does not: the guest then has no $NOVARS_KO).
pub fn module_if_it_builds(flavour: Flavour) -> Option<PathBuf> {
    match module::ensure(flavour) {
        Ok(ko) => Some(ko),
        Err(e) => {
            say!("vm: novars.ko will not be available in the guest: {e:#}");
            None
        }
    }
}

/// Boot, run `cmd` (a shell command line) as root in the guest, and report.
/// `name` names the log directory.
pub fn run(cfg: &VmConfig, name: &str, cmd: &str, crash: Option<&Crash>) -> Result<Outcome> {
    let kernel = kernel::ensure(cfg.flavour)?;
    let (cfg, _lock) = lock(cfg)?;
    let cfg = &cfg;
    prepare_images(cfg)?;
    let run_dir = new_run_dir(name)?;
    let script = write_run_script(cfg, &run_dir, cmd)?;
    let mut c = vng(cfg, &kernel.bzimage(), &run_dir);
    c.arg("--exec").arg(format!("sh {}", script.display()));
    fs::write(run_dir.join("vng-command.txt"), format!("{}\n", show(&c)))?;
    let console = fs::File::create(run_dir.join("console.log"))?;
    c.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(console);
    // Own process group: a timeout or a crash kills vng and qemu together.
    c.process_group(0);
    say!(
        "vm: booting {} kernel, {} MiB of RAM, {} NVDIMM(s) of {} MiB, timeout {}; log dir {}",
        cfg.flavour,
        cfg.ram_mib,
        cfg.nvdimms,
        cfg.size_mib,
        fmt_duration(cfg.timeout),
        run_dir.display()
    );
    eprintln!("+ {}", show(&c));
    let timer = Timer::start();
    let mut child = c.spawn().context("could not start vng: run `cargo xt setup`")?;
    let pgid = child.id() as i32;

    let stdout = child.stdout.take().context("vng stdout")?;
    let (tx, rx) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // Without udev in the guest (the usual case: Debian's udev is not
    // installed), virtme-ng-init finds no virtio-serial script ports and the
    // command's output goes to the serial console, i.e. console.log. So the
    // command's lines come either from vng's stdout or from the non-kernel
    // lines of console.log; follow both.
    let mut console = ConsoleTail::new(run_dir.join("console.log"));

    let mut echoed = false;
    let (mut timed_out, mut crashed) = (false, false);
    let mut kill_at: Option<Duration> = None;
    let kill_group = || {
        // SAFETY: kill(2) on the process group we created; at worst ESRCH.
        unsafe { libc::kill(-pgid, libc::SIGKILL) };
    };
    let mut on_line = |line: &str, kill_at: &mut Option<Duration>, elapsed: Duration| {
        if cfg.echo {
            println!("{line}");
            let _ = std::io::stdout().flush();
            echoed = true;
        }
        if let Some(cr) = crash {
            if kill_at.is_none() && line.contains(&cr.marker) {
                *kill_at = Some(elapsed + cr.delay);
                say!(
                    "vm: saw {:?}; killing qemu with SIGKILL in {}",
                    cr.marker,
                    fmt_duration(cr.delay)
                );
            }
        }
    };
    let mut vng_out = String::new();
    loop {
        let exited = child.try_wait()?.is_some();
        while let Ok(line) = rx.recv_timeout(Duration::from_millis(if exited { 200 } else { 50 })) {
            on_line(&line, &mut kill_at, timer.elapsed());
            vng_out.push_str(&line);
            vng_out.push('\n');
        }
        for line in console.new_lines(exited) {
            if !logscan::is_kernel_line(&line) {
                on_line(&line, &mut kill_at, timer.elapsed());
            }
        }
        if exited {
            break;
        }
        if kill_at.is_some_and(|t| timer.elapsed() >= t) && !crashed {
            say!("vm: kill -9 qemu (crash)");
            kill_group();
            crashed = true;
        }
        if timer.elapsed() >= cfg.timeout && !timed_out && !crashed {
            say!("vm: timeout after {}; killing qemu", fmt_duration(cfg.timeout));
            kill_group();
            timed_out = true;
        }
    }
    // If vng left qemu behind in our group, do not leave it running.
    kill_group();
    let _ = reader.join();
    let took = timer.elapsed();

    let read = |f: &str| {
        fs::read(run_dir.join(f))
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    };
    let status = read("status").trim().parse::<i32>().ok();
    // cmd.out (teed in the guest) is the command's whole output, whichever
    // channel carried it; it is missing only if the guest died first.
    let cmd_out = read("cmd.out");
    let output = if cmd_out.is_empty() { vng_out } else { cmd_out };
    if cfg.echo && !echoed {
        print!("{output}");
    }
    if run_dir.join("prep-ok").exists() {
        for i in 0..cfg.nvdimms {
            let _ = fs::write(fsdax_marker(cfg, i), "");
        }
        save_fsdax_head(cfg);
    } else if !crashed {
        say!("vm: NVDIMM preparation did not complete; see {}", run_dir.join("prep.out").display());
    }
    let mut findings = logscan::scan(&read("console.log"));
    for f in logscan::scan(&read("dmesg.txt")) {
        if !findings.iter().any(|g| g.line == f.line) {
            findings.push(f);
        }
    }
    let out = Outcome { status, output, findings, timed_out, crashed, log_dir: run_dir, took };
    say!("vm: {}", out.describe());
    if !out.findings.is_empty() {
        say!(
            "vm: the guest kernel log shows problems (full log: {}):\n{}",
            out.log_dir.join("console.log").display(),
            logscan::report(&out.findings, 20)
        );
    }
    Ok(out)
}

/// `cargo xt vm`: exit status is the command's, or 1 for any kernel log finding,
/// timeout or guest death; with `crash`, 0 if qemu was killed as planned.
pub fn cmd_vm(cfg: &VmConfig, args: &[String], crash: Option<&Crash>) -> Result<i32> {
    if args.is_empty() {
        bail!("nothing to run: `cargo xt vm -- CMD...` (or `cargo xt shell` for a shell)");
    }
    let cfg = VmConfig { module: module_if_it_builds(cfg.flavour), ..cfg.clone() };
    let out = run(&cfg, "vm", &command_line(args), crash);
    drop_resident_images(&cfg);
    let out = out?;
    if crash.is_some() {
        return Ok(if out.crashed && out.clean_log() { 0 } else { 1 });
    }
    Ok(match out.status {
        Some(s) if out.clean_log() && !out.timed_out => s,
        Some(0) => 1,
        Some(s) => s,
        None => 1,
    })
}

/// `cargo xt shell`: an interactive root shell in the same VM setup.
pub fn shell(cfg: &VmConfig) -> Result<()> {
    let cfg = &VmConfig { module: module_if_it_builds(cfg.flavour), ..cfg.clone() };
    if cfg.fresh || !images_ready(cfg) {
        say!("shell: preparing the NVDIMM images first (one non-interactive boot)");
        let prep_cfg = VmConfig { echo: false, ..cfg.clone() };
        run(&prep_cfg, "shell-prep", "true", None)?;
    }
    let kernel = kernel::ensure(cfg.flavour)?;
    let (cfg, _lock) = lock(cfg)?;
    let cfg = &cfg;
    let run_dir = new_run_dir("shell")?;
    say!(
        "shell: in the guest, /dev/pmem* are fsdax; scratch space is /tmp and {}",
        run_dir.display()
    );
    for (k, v) in guest_env(cfg, &run_dir) {
        say!("shell:   {k}={v}");
    }
    let mut c = vng(cfg, &kernel.bzimage(), &run_dir);
    let status = crate::util::status(&mut c)?;
    say!("shell: vng exited ({status})");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size_mib("1G").unwrap(), 1024);
        assert_eq!(parse_size_mib("512M").unwrap(), 512);
        assert_eq!(parse_size_mib("256").unwrap(), 256);
        assert!(parse_size_mib("1").is_err());
        assert!(parse_size_mib("33M").is_err());
        assert!(parse_size_mib("lots").is_err());
    }

    #[test]
    fn command_lines() {
        assert_eq!(command_line(&["echo $HOME; ls".into()]), "echo $HOME; ls");
        assert_eq!(command_line(&["ls".into(), "-l".into(), "a b".into()]), "'ls' '-l' 'a b'");
    }

    #[test]
    fn qemu_options_describe_every_nvdimm() {
        let cfg = VmConfig { nvdimms: 2, size_mib: 512, ..VmConfig::default() };
        let o = qemu_opts(&cfg);
        assert!(o.contains("slots=2,maxmem=2048M"), "{o}");
        assert!(o.contains("id=nvmem1,share=on"), "{o}");
        assert!(o.contains("-device nvdimm,id=nvdimm1,memdev=nvmem1"), "{o}");
    }
}
