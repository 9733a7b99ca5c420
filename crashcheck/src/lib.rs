//! `novars-crashcheck`: the host side of the crash-state checker (issue 7).
//!
//! A tracing build of the kernel module records every persistent-memory
//! store, non-temporal copy, cache-line flush and fence, and a marker around
//! every system call (`layout::trace`). Starting from a copy of the device
//! taken before the workload, this crate replays the trace over a model of
//! x86 persistence ([`model`]), builds the images a power cut could leave at
//! every fence and call boundary ([`crash`]), and checks each distinct one
//! ([`oracle`]): `fsck.novars -n` must be clean after mount-time recovery,
//! and the recovered tree must be the tree before or after each call in
//! flight, with every completed call present ([`replay`]). [`report`] says
//! what was found, with a command line that re-creates each bad image;
//! [`cli`] is the binary. [`synth`] emulates the kernel's operations as
//! traces, following `layout/FORMAT.md`: the tests use it to show that the
//! checker passes a correct trace and catches deliberately broken ones, and
//! it documents what the kernel must emit.
#![forbid(unsafe_code)]

pub mod cli;
pub mod crash;
pub mod model;
pub mod oracle;
pub mod replay;
pub mod report;
pub mod synth;
pub mod trace;

pub use replay::{run, Config, Outcome};
pub use report::Report;
