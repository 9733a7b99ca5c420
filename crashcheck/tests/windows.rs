//! How the replay cuts a trace into windows of legal trees: overlapping
//! calls, calls that never end, markers that do not match.

mod common;

use common::{base, check, quick, synth};
use crashcheck::synth::Faults;
use crashcheck::trace::{parse, TraceWriter};
use layout::trace::kind;

/// Re-emits `bytes` with the records reordered by `order` (indices).
fn reorder(bytes: &[u8], order: &[usize]) -> Vec<u8> {
    let t = parse(bytes).unwrap();
    let mut w = TraceWriter::new();
    for &i in order {
        let r = &t.records[i];
        match r.kind {
            kind::STORE => w.store(r.pos, r.data),
            kind::NT_STORE => w.nt_store(r.pos, r.data),
            kind::FLUSH => w.flush(r.pos, r.len),
            kind::FENCE => w.fence(),
            kind::OP_BEGIN => w.op_begin(r.pos, r.len),
            _ => w.op_end(r.pos, r.len),
        }
    }
    w.finish()
}

fn two_creates() -> (Vec<u8>, Vec<u8>) {
    let base = base();
    let mut s = synth(&base, Faults::default());
    s.create("/a/x").unwrap();
    s.create("/b/y").unwrap();
    (base, s.trace())
}

#[test]
fn overlapping_calls_share_a_window() {
    let (base, trace) = two_creates();
    let n = parse(&trace).unwrap().records.len();
    let ends: Vec<usize> = parse(&trace)
        .unwrap()
        .records
        .iter()
        .enumerate()
        .filter(|(_, r)| r.kind == kind::OP_END)
        .map(|(i, _)| i)
        .collect();
    // Move the first OP_END after the second OP_BEGIN: the calls overlap.
    let first_end = ends[0];
    let mut order: Vec<usize> = (0..n).filter(|&i| i != first_end).collect();
    let second_begin = order.iter().position(|&i| i == first_end + 1).unwrap();
    order.insert(second_begin + 1, first_end);
    let r = check(&base, &reorder(&trace, &order), &quick());
    assert_eq!(r.violations, 0, "{}", r.text(&|i| i.to_string()));
    assert_eq!(r.ops, 2);
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
}

#[test]
fn unmatched_markers_are_warnings() {
    let (base, trace) = two_creates();
    let t = parse(&trace).unwrap();
    let n = t.records.len();
    // Drop the last OP_END: the trace ends with a call in flight, whose
    // crash states may show the tree before or after it.
    let order: Vec<usize> = (0..n - 1).collect();
    let r = check(&base, &reorder(&trace, &order), &quick());
    assert_eq!(r.violations, 0);
    assert!(r.warnings.iter().any(|w| w.contains("in flight: create #2")), "{:?}", r.warnings);
    // An OP_END that never began.
    let mut w = TraceWriter::new();
    w.op_end(layout::trace::op::CREATE, 9);
    let r = check(&base, &w.finish(), &quick());
    assert!(r.warnings.iter().any(|w| w.contains("never began")), "{:?}", r.warnings);
}

#[test]
fn stores_outside_calls_may_change_the_tree_once() {
    // Between calls the legal trees are those at the window's two ends.
    // One create without markers is one step from the first to the last:
    // accepted (its crash states still have to be fsck-clean).
    let base = base();
    let mut s = synth(&base, Faults::default());
    s.create("/a/x").unwrap();
    let trace = s.trace();
    let unmarked = |trace: &[u8]| {
        let t = parse(trace).unwrap();
        let order: Vec<usize> = (0..t.records.len())
            .filter(|&i| !matches!(t.records[i].kind, kind::OP_BEGIN | kind::OP_END))
            .collect();
        reorder(trace, &order)
    };
    let r = check(&base, &unmarked(&trace), &quick());
    assert_eq!(r.violations, 0, "{}", r.text(&|i| i.to_string()));
    assert_eq!(r.ops, 0);
    // Two unmarked creates pass through a tree that is neither the first
    // nor the last of the window: violations.
    let (base, trace) = two_creates();
    let r = check(&base, &unmarked(&trace), &quick());
    assert!(r.violations > 0);
    assert!(r.findings.iter().all(|f| f.fsck.is_empty() && !f.tree_diff.is_empty()));
}
