//! `cargo xt <cmd>`: the novars host harness. See README.md.

mod bench;
mod bins;
mod demo;
mod kernel;
mod logscan;
mod module;
mod setup;
mod tests;
mod util;
mod vm;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};
use kernel::Flavour;
use std::time::Duration;

#[derive(Parser)]
#[command(name = "cargo xt", about = "novars harness: setup, guest kernel, VM, demo, tests")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Install every host dependency (apt, rustup components, bindgen-cli, virtme-ng); idempotent.
    Setup,
    /// Build (or reuse from the cache) the guest kernel.
    Kernel {
        #[arg(long, value_enum, default_value_t = Flavour::Normal)]
        flavour: Flavour,
    },
    /// Build novars.ko against the guest kernel.
    Module {
        #[arg(long, value_enum, default_value_t = Flavour::Normal)]
        flavour: Flavour,
        /// The tracing build of the crash checker (issue 7), in
        /// target/kmod/<flavour>-trace/.
        #[arg(long)]
        trace: bool,
    },
    /// Boot a VM with emulated NVDIMMs and run CMD in it as root.
    Vm {
        #[command(flatten)]
        vm: VmArgs,
        /// Timeout for the whole run, in seconds.
        #[arg(long, default_value_t = 600)]
        timeout: u64,
        /// Power cut: kill qemu with SIGKILL once the command printed a line
        /// containing this text (after --crash-delay).
        #[arg(long, value_name = "TEXT")]
        crash_on: Option<String>,
        /// Seconds between --crash-on's text and the kill.
        #[arg(long, default_value_t = 2.0, value_name = "SECS")]
        crash_delay: f64,
        /// The command (one argument: a shell command line).
        #[arg(last = true, required = true)]
        cmd: Vec<String>,
    },
    /// Interactive root shell in the same VM setup.
    Shell {
        #[command(flatten)]
        vm: VmArgs,
    },
    /// Walk the life of a novars file system in a VM, with a verdict per step.
    Demo,
    /// fmt and clippy checks, unit tests of every crate, every VM test; prints `N passed, N failed`.
    Test(tests::TestArgs),
    /// Benchmark suite: novars vs ext4-DAX, xfs-DAX and the raw device in one boot.
    Bench(bench::BenchArgs),
}

#[derive(Args)]
struct VmArgs {
    /// Recreate the NVDIMM images (all data lost).
    #[arg(long)]
    fresh: bool,
    #[arg(long, default_value_t = 1)]
    nvdimms: u32,
    /// Size of each NVDIMM, e.g. 512M, 1G or 256G (a sparse file; above
    /// an eighth of the guest's RAM x 64 the fsdax memmap goes on the
    /// NVDIMM itself, `-M dev`).
    #[arg(long, default_value = "1G")]
    size: String,
    /// Guest RAM besides the NVDIMMs, e.g. 1G or 4G.
    #[arg(long, default_value = "1G")]
    memory: String,
    #[arg(long, value_enum, default_value_t = Flavour::Normal)]
    flavour: Flavour,
    /// Keep the NVDIMMs in host memory (images on /dev/shm, qemu
    /// `prealloc=on`), as `cargo xt bench` does: no first-touch faults and
    /// no writeback stalls on the host.
    #[arg(long)]
    resident: bool,
}

impl VmArgs {
    fn config(&self, timeout: u64) -> Result<vm::VmConfig> {
        Ok(vm::VmConfig {
            flavour: self.flavour,
            nvdimms: self.nvdimms,
            size_mib: vm::parse_size_mib(&self.size)?,
            ram_mib: vm::parse_size_mib(&self.memory)?,
            fresh: self.fresh,
            timeout: Duration::from_secs(timeout),
            echo: true,
            module: None,
            images: None,
            resident: self.resident,
        })
    }
}

fn main() {
    let cli = Cli::parse();
    let code = match dispatch(cli.cmd) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("xt: error: {e:#}");
            1
        }
    };
    std::process::exit(code);
}

fn dispatch(cmd: Cmd) -> Result<i32> {
    match cmd {
        Cmd::Setup => setup::setup().map(|()| 0),
        Cmd::Kernel { flavour } => kernel::ensure(flavour).map(|k| {
            println!("{}", k.bzimage().display());
            0
        }),
        Cmd::Module { flavour, trace } => {
            if trace { module::ensure_trace(flavour) } else { module::ensure(flavour) }.map(|ko| {
                println!("{}", ko.display());
                0
            })
        }
        Cmd::Vm { vm, timeout, crash_on, crash_delay, cmd } => {
            let crash = crash_on.map(|marker| vm::Crash {
                marker,
                delay: Duration::from_secs_f64(crash_delay.max(0.0)),
            });
            // Ad-hoc scripts (xtests/bench/*.sh) use the guest programs:
            // build them when their sources are newer.
            for e in [bench::build_programs().map(|_| ()), bins::build()]
                .into_iter()
                .filter_map(Result::err)
            {
                eprintln!("xt: vm: guest programs not built: {e:#}");
            }
            vm::cmd_vm(&vm.config(timeout)?, &cmd, crash.as_ref())
        }
        Cmd::Shell { vm } => vm::shell(&vm.config(24 * 3600)?).map(|()| 0),
        Cmd::Demo => demo::demo(),
        Cmd::Test(args) => tests::test(&args),
        Cmd::Bench(args) => bench::bench(&args),
    }
}
