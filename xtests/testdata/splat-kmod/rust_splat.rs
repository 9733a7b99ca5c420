// SPDX-License-Identifier: GPL-2.0

//! Provokes a Rust panic (an arithmetic overflow, caught by
//! CONFIG_RUST_OVERFLOW_CHECKS) in module init, for the log scanner's test
//! data. Never loaded by tests.

use kernel::prelude::*;

module! {
    type: RustSplat,
    name: "rust_splat",
    author: "novars developers",
    description: "novars test-data generator: a Rust panic",
    license: "GPL",
}

struct RustSplat;

impl kernel::Module for RustSplat {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let x: u8 = core::hint::black_box(255);
        pr_info!("about to overflow: {}\n", x + 1);
        Err(EAGAIN)
    }
}
