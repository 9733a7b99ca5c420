//! Stores through `MAP_SYNC` mappings (`USER_STORE` records): durable from
//! the point user space reports them, and the write fault's block map with
//! them.

mod common;

use common::{base, check, quick, synth};
use crashcheck::synth::{Faults, Synth};
use crashcheck::trace::parse;
use layout::trace::{kind, op};

const BYTES: &[u8] = b"stored through a MAP_SYNC mapping, flushed, fenced, then reported";

/// `/c` (empty) grows to two blocks, a write fault fills block 1, the
/// program stores into it and reports; then a store into `/a/f1`'s mapped
/// block 0, no fault.
fn workload(s: &mut Synth) {
    s.truncate("/c", 8192).unwrap();
    s.fault("/c", 1).unwrap();
    s.user_store("/c", 4096 + 100, BYTES).unwrap();
    s.user_store("/a/f1", 10, BYTES).unwrap();
}

#[test]
fn reported_stores_pass_and_are_boundaries() {
    let base = base();
    let mut s = synth(&base, Faults::default());
    workload(&mut s);
    let trace = s.trace();
    let t = parse(&trace).unwrap();
    assert_eq!(t.records.iter().filter(|r| r.kind == kind::USER_STORE).count(), 2);
    let r = check(&base, &trace, &quick());
    assert_eq!(r.violations, 0, "{}", r.text(&|i| i.to_string()));
    assert_eq!(r.user_stores, 2);
    assert_eq!(r.ops, 2);
    // Before, after the truncate, after the fault (same file contents:
    // zeroed block = hole), after each store.
    assert!(r.trees >= 4, "{}", r.text(&|i| i.to_string()));
}

/// The fault's commit: the `log_tail` flush of operation `nr` dropped.
fn tail_flush(base: &[u8]) -> (u32, usize) {
    let mut s = synth(base, Faults::default());
    workload(&mut s);
    let info = s.ops().iter().find(|o| o.code == op::FAULT).unwrap();
    let n = info.flushes.iter().position(|&f| f == "log_tail").unwrap();
    (info.nr, n)
}

#[test]
fn unflushed_fault_commit_is_caught_by_the_store() {
    let base = base();
    let faults = Faults { drop_flush: Some(tail_flush(&base)), ..Faults::default() };
    // Without the store the lost block map is invisible: a zeroed block and
    // a hole read alike.
    let mut s = synth(&base, faults);
    s.truncate("/c", 8192).unwrap();
    s.fault("/c", 1).unwrap();
    let r = check(&base, &s.trace(), &quick());
    assert_eq!(r.violations, 0, "{}", r.text(&|i| i.to_string()));
    // With it, every image after the report must hold the bytes in /c.
    let mut s = synth(&base, faults);
    workload(&mut s);
    let r = check(&base, &s.trace(), &quick());
    assert!(r.violations > 0, "{}", r.text(&|i| i.to_string()));
    let f = r.findings.iter().find(|f| f.violation).unwrap();
    assert_eq!(f.point.name(), "user-store");
    assert!(f.tree_diff.iter().any(|d| d.contains("/c")), "{:?}", f.tree_diff);
}

#[test]
fn unfenced_fault_commit_is_fenced_by_the_programs_own_fence() {
    // The fault's last fence dropped: the tail is flushed but not fenced
    // when the fault returns; the program's own fence (part of its report)
    // makes it durable, as on the hardware, so the store finds no violation.
    let base = base();
    let mut s = synth(&base, Faults::default());
    workload(&mut s);
    let info = s.ops().iter().find(|o| o.code == op::FAULT).unwrap().clone();
    let last = info.fences.len() - 1;
    let mut s = synth(&base, Faults { drop_fence: Some((info.nr, last)), ..Faults::default() });
    workload(&mut s);
    let r = check(&base, &s.trace(), &quick());
    assert_eq!(r.violations, 0, "{}", r.text(&|i| i.to_string()));
}
