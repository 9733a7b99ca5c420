//! `cargo xt module`: build `novars.ko` against a cached kernel.
//!
//! Kbuild writes its objects next to the sources, so the module is built in a
//! per-flavour copy under `target/kmod/<flavour>/novafs-kmod/`. A symlink
//! `target/kmod/<flavour>/layout -> <repo>/layout` keeps the crate root's
//! `#[path = "../layout/src/lib.rs"]` valid in the copy. Files are copied only
//! when their content changed, so Kbuild stays incremental.
//!
//! The tracing build of the crash checker (issue 7, `cargo xt module
//! --trace`) is the same sources with `NOVARS_TRACE=y` (see
//! `novafs-kmod/Kbuild`), in `target/kmod/<flavour>-trace/`.

use crate::kernel::{self, Flavour, Kernel};
use crate::say;
use crate::util::{repo_root, run, target_dir, FileLock, Timer};
use anyhow::{Context, Result};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Build products Kbuild leaves in the module directory; never copied.
const BUILD_PRODUCTS: &[&str] = &["o", "ko", "mod", "cmd", "order", "symvers", "rmeta", "d"];

fn build_dir(flavour: Flavour, trace: bool) -> PathBuf {
    let name = if trace { format!("{}-trace", flavour.name()) } else { flavour.name().to_string() };
    target_dir().join("kmod").join(name).join("novafs-kmod")
}

/// Build (incrementally) and return the path of `novars.ko`.
pub fn ensure(flavour: Flavour) -> Result<PathBuf> {
    build(&kernel::ensure(flavour)?, flavour)
}

/// Build (incrementally) the tracing build and return its `novars.ko`.
pub fn ensure_trace(flavour: Flavour) -> Result<PathBuf> {
    build_variant(&kernel::ensure(flavour)?, flavour, true)
}

/// Build (incrementally) against `kernel`, of `flavour`.
pub fn build(kernel: &Kernel, flavour: Flavour) -> Result<PathBuf> {
    build_variant(kernel, flavour, false)
}

fn build_variant(kernel: &Kernel, flavour: Flavour, trace: bool) -> Result<PathBuf> {
    let timer = Timer::start();
    let root = repo_root();
    let dir = build_dir(flavour, trace);
    let _lock = FileLock::acquire(&dir.with_extension("lock"), "this module build")?;
    // Objects built against another kernel (a config change makes a new
    // one) would still link, and load with that kernel's struct layouts:
    // Kbuild's dependency files name the old kernel's headers, which did
    // not change. Start over when the kernel is another one.
    let stamp = dir.with_extension("kernel");
    let built_for = kernel.build_dir.display().to_string();
    if fs::read_to_string(&stamp).ok().as_deref() != Some(built_for.as_str()) {
        if dir.exists() {
            fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
        }
        fs::create_dir_all(&dir)?;
        fs::write(&stamp, &built_for)?;
    }
    sync_tree(&root.join("novafs-kmod"), &dir)?;
    let link = dir.parent().context("module build dir has a parent")?.join("layout");
    if fs::read_link(&link).ok().as_deref() != Some(root.join("layout").as_path()) {
        let _ = fs::remove_file(&link);
        std::os::unix::fs::symlink(root.join("layout"), &link)
            .context("linking layout/ beside the module copy")?;
    }
    let mut make = Command::new("make");
    make.arg("-C")
        .arg(&kernel.build_dir)
        .arg(format!("M={}", dir.display()))
        .arg("LLVM=1")
        .arg(format!("-j{}", crate::util::ncpus() + 1));
    if trace {
        make.arg("NOVARS_TRACE=y");
    }
    run(&mut make, "The module did not compile; the compiler's message is above.")?;
    let ko = dir.join("novars.ko");
    let what = if trace { " (tracing build)" } else { "" };
    say!("module {flavour}{what}: {} ({})", ko.display(), timer.took());
    Ok(ko)
}

/// Copy the source tree `from` into `to`, skipping build products and only
/// writing files whose content differs.
fn sync_tree(from: &Path, to: &Path) -> Result<()> {
    fs::create_dir_all(to)?;
    for entry in fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let entry = entry?;
        let name = entry.file_name();
        let (src, dst) = (entry.path(), to.join(&name));
        let name = name.to_string_lossy();
        if entry.file_type()?.is_dir() {
            sync_tree(&src, &dst)?;
            continue;
        }
        let ext = name.rsplit('.').next().unwrap_or("");
        if name.starts_with('.') || name.ends_with(".mod.c") || BUILD_PRODUCTS.contains(&ext) {
            continue;
        }
        let data = fs::read(&src)?;
        if fs::read(&dst).ok().as_deref() != Some(data.as_slice()) {
            fs::write(&dst, &data).with_context(|| format!("writing {}", dst.display()))?;
        }
    }
    Ok(())
}
