//! What a run found: counts, per-operation numbers, and each violation with
//! a command line that re-creates its image.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::{json, Value};

/// Where in the trace a crash point is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PointKind {
    /// Just before a `FENCE` record takes effect.
    Fence,
    /// At an `OP_BEGIN` (the call has not started).
    OpBegin,
    /// At an `OP_END` (the call has returned).
    OpEnd,
    /// After the last record.
    End,
    /// Just after a `USER_STORE` (user space flushed, fenced and reported
    /// a store through a `MAP_SYNC` mapping).
    UserStore,
}

impl PointKind {
    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            PointKind::Fence => "fence",
            PointKind::OpBegin => "op-begin",
            PointKind::OpEnd => "op-end",
            PointKind::End => "end",
            PointKind::UserStore => "user-store",
        }
    }
}

/// An operation as the trace names it: kind and number.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpRef {
    pub name: &'static str,
    pub nr: u32,
}

impl std::fmt::Display for OpRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} #{}", self.name, self.nr)
    }
}

/// One checked crash state worth reporting (a violation, or the image asked
/// for with `--only`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// Whether the image breaks a rule.
    pub violation: bool,
    /// Image id (for `--only`).
    pub image: u64,
    /// Index of the record the crash point is at (the trace length for the end).
    pub record: usize,
    pub point: PointKind,
    /// Operations in flight (or, between operations, the last completed one).
    pub ops: Vec<OpRef>,
    /// How the state was chosen (`single`, `pair`, `tear`, ...).
    pub state: &'static str,
    /// The pending writes that landed, one line each.
    pub landed: Vec<String>,
    /// The pending writes that did not land at all (the first few).
    pub lost: Vec<String>,
    /// fsck could not check.
    pub fatal: Option<String>,
    /// fsck errors (code: headline).
    pub fsck: Vec<String>,
    /// fsck notes (what mount recovery did).
    pub notes: Vec<String>,
    /// What the tree should have been.
    pub expected: String,
    /// Differences of the recovered tree from the legal trees (empty if it
    /// equals one of them).
    pub tree_diff: Vec<String>,
}

/// Numbers for one kind of operation.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OpStats {
    /// Operations of this kind.
    pub ops: u64,
    /// Crash points inside them.
    pub points: u64,
    /// Crash states generated at those points.
    pub generated: u64,
    /// Distinct images first checked there.
    pub checked: u64,
    /// Violating states there.
    pub violations: u64,
}

/// The whole run.
#[derive(Clone, Debug, Default)]
pub struct Report {
    pub records: usize,
    pub ops: u64,
    pub fences: u64,
    /// `USER_STORE` records (stores through `MAP_SYNC` mappings).
    pub user_stores: u64,
    pub crash_points: u64,
    /// Crash states generated (= image ids handed out).
    pub generated: u64,
    /// States whose image equalled one already checked.
    pub deduplicated: u64,
    /// Distinct images checked by the oracle.
    pub checked: u64,
    /// Violating states.
    pub violations: u64,
    /// Distinct violating images.
    pub violating_images: u64,
    /// Distinct trees seen.
    pub trees: usize,
    /// Per operation kind; "(between ops)" for points outside any call.
    pub per_op: BTreeMap<&'static str, OpStats>,
    /// The first violations (and the `--only` image), in trace order.
    pub findings: Vec<Finding>,
    /// Things that are not violations but should be known.
    pub warnings: Vec<String>,
    pub millis: u128,
}

impl Report {
    /// Text for people; `repro(id)` gives the command line for an image.
    pub fn text(&self, repro: &dyn Fn(u64) -> String) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "records {}, ops {}, fences {}, crash points {}, user stores {}",
            self.records, self.ops, self.fences, self.crash_points, self.user_stores
        );
        let _ = writeln!(
            s,
            "crash images: generated {}, deduplicated {}, checked {}; distinct trees {}",
            self.generated, self.deduplicated, self.checked, self.trees
        );
        if !self.per_op.is_empty() {
            let _ = writeln!(
                s,
                "{:<16} {:>5} {:>7} {:>9} {:>8} {:>10}",
                "op", "ops", "points", "generated", "checked", "violations"
            );
            for (k, o) in &self.per_op {
                let _ = writeln!(
                    s,
                    "{:<16} {:>5} {:>7} {:>9} {:>8} {:>10}",
                    k, o.ops, o.points, o.generated, o.checked, o.violations
                );
            }
        }
        for w in &self.warnings {
            let _ = writeln!(s, "warning: {w}");
        }
        for f in &self.findings {
            let ops = f.ops.iter().map(|o| o.to_string()).collect::<Vec<_>>().join(", ");
            let _ = writeln!(
                s,
                "{} image {}: {} at record {} ({}), state {}",
                if f.violation { "VIOLATION" } else { "ok" },
                f.image,
                if ops.is_empty() { "no op".to_string() } else { ops },
                f.record,
                f.point.name(),
                f.state
            );
            if f.landed.is_empty() && f.lost.is_empty() {
                let _ = writeln!(s, "  nothing was pending");
            }
            for l in &f.landed {
                let _ = writeln!(s, "  landed: {l}");
            }
            for l in &f.lost {
                let _ = writeln!(s, "  lost:   {l}");
            }
            if let Some(x) = &f.fatal {
                let _ = writeln!(s, "  fsck: cannot check: {x}");
            }
            for x in &f.fsck {
                let _ = writeln!(s, "  fsck: {x}");
            }
            for x in &f.notes {
                let _ = writeln!(s, "  note: {x}");
            }
            if !f.tree_diff.is_empty() {
                let _ = writeln!(s, "  tree is not {}:", f.expected);
                for d in &f.tree_diff {
                    let _ = writeln!(s, "    {d}");
                }
            }
            let _ = writeln!(s, "  reproduce: {}", repro(f.image));
        }
        let shown = self.findings.iter().filter(|f| f.violation).count() as u64;
        if self.violating_images > shown {
            let _ =
                writeln!(s, "({} more violating images not shown)", self.violating_images - shown);
        }
        let _ = writeln!(
            s,
            "violations: {} ({} distinct images) in {:.1} s",
            self.violations,
            self.violating_images,
            self.millis as f64 / 1000.0
        );
        s
    }

    /// The same as JSON.
    pub fn json(&self, repro: &dyn Fn(u64) -> String) -> Value {
        let per_op: serde_json::Map<String, Value> = self
            .per_op
            .iter()
            .map(|(k, o)| {
                (
                    k.to_string(),
                    json!({"ops": o.ops, "points": o.points, "generated": o.generated,
                           "checked": o.checked, "violations": o.violations}),
                )
            })
            .collect();
        let findings: Vec<Value> = self
            .findings
            .iter()
            .map(|f| {
                json!({
                    "violation": f.violation,
                    "image": f.image,
                    "record": f.record,
                    "point": f.point.name(),
                    "ops": f.ops.iter().map(|o| json!({"op": o.name, "nr": o.nr})).collect::<Vec<_>>(),
                    "state": f.state,
                    "landed": f.landed,
                    "lost": f.lost,
                    "fatal": f.fatal,
                    "fsck": f.fsck,
                    "notes": f.notes,
                    "expected": f.expected,
                    "tree_diff": f.tree_diff,
                    "reproduce": repro(f.image),
                })
            })
            .collect();
        json!({
            "records": self.records,
            "ops": self.ops,
            "fences": self.fences,
            "user_stores": self.user_stores,
            "crash_points": self.crash_points,
            "generated": self.generated,
            "deduplicated": self.deduplicated,
            "checked": self.checked,
            "trees": self.trees,
            "violations": self.violations,
            "violating_images": self.violating_images,
            "per_op": per_op,
            "findings": findings,
            "warnings": self.warnings,
            "millis": self.millis as u64,
        })
    }
}
