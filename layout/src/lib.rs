//! The novars on-media format: the one definition of what a valid image is.
//!
//! This crate is `no_std`, dependency-free in its default build and contains
//! no `unsafe`. The kernel module compiles the same source in with
//! `#[path = "../layout/src/format/mod.rs"] mod layout;`, so everything
//! lives in [`format`] and is re-exported here; `format` must only use
//! `self::`/`super::` paths.
//!
//! With the `user` feature the on-media structs also derive `zerocopy`
//! traits, so the tools can view image bytes as structs without `unsafe`.
//!
//! The byte-by-byte description is in `layout/FORMAT.md`.
#![cfg_attr(not(test), no_std)]

#[path = "format/mod.rs"]
mod format;
pub use format::*;
