//! The run: replays a trace over the model, generates the crash states at
//! every crash point, asks the oracle about each distinct image and
//! compares its tree with the trees the trace makes legal there.
//!
//! **Legal trees.** The trace is cut into *windows* at its `OP_BEGIN` and
//! `OP_END` records. A *busy* window runs from an `OP_BEGIN` that starts
//! from no call in flight to the `OP_END` after which none is; a *quiet*
//! window lies between two busy ones (or before the first, after the last).
//! At every boundary the tree of the image the CPU sees (every write so far
//! applied, durable or not) is listed: for a call in flight, the first
//! boundary of its window is its *before* state and the last its *after*
//! state. A crash state in a window must show one of the trees listed at
//! that window's boundaries: in a busy window with one call, before or
//! after it; in a quiet window, the state after the last completed call
//! (the crash point at an `OP_END` belongs to the quiet window after it:
//! the call has returned, so its effect must be durable). Calls that
//! overlap in time share one busy window, which accepts the tree of any of
//! its boundaries: a coarser rule, documented rather than hidden; the
//! workload generators run calls one at a time.
//!
//! A crash state whose tree is not yet legal waits until its window closes
//! (the after state is only known at `OP_END`); fsck errors are violations
//! at once.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use layout::trace::kind;

use crate::crash::{
    self, describe, image_hash, materialize, GenConfig, LandedWrite, PendingWrite, Rng,
};
use crate::model::{Model, LINE};
use crate::oracle::{self, TreeId, Trees, Verdict};
use crate::report::{Finding, OpRef, PointKind, Report};
use crate::trace::{kind_name, op_name, Trace};

/// How to run.
#[derive(Clone, Debug)]
pub struct Config {
    /// Random crash states per crash point.
    pub max_random: usize,
    /// Seed of the random states.
    pub seed: u64,
    /// Check only this image id (the others are generated, not checked).
    pub only: Option<u64>,
    /// With `only`: keep a copy of that image (before recovery).
    pub dump: bool,
    /// Violations described in full (all are counted).
    pub max_findings: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self { max_random: 32, seed: DEFAULT_SEED, only: None, dump: false, max_findings: 20 }
    }
}

/// The default seed.
pub const DEFAULT_SEED: u64 = 0x6e6f_7661_7273;

/// A run's results.
#[derive(Debug)]
pub struct Outcome {
    pub report: Report,
    /// The `--only` image, if asked for and found.
    pub image: Option<Vec<u8>>,
}

/// A crash state waiting for its window to close.
struct Waiting {
    finding: Finding,
    tree: TreeId,
    hash: u128,
}

struct Window {
    busy: bool,
    /// Trees listed at the window's boundaries so far.
    trees: Vec<TreeId>,
    /// Busy: the calls that ran in it; quiet: the last completed call.
    ops: Vec<OpRef>,
    waiting: Vec<Waiting>,
}

struct Run<'t, 'c> {
    trace: &'t Trace<'t>,
    cfg: &'c Config,
    m: Model,
    trees: Trees,
    verdicts: Vec<Verdict>,
    cache: HashMap<u128, usize>,
    violating: HashSet<u128>,
    window: Window,
    in_flight: Vec<(u64, u32)>,
    next_id: u64,
    points: u64,
    report: Report,
    image: Option<Vec<u8>>,
}

const BETWEEN: &str = "(between ops)";
/// The name of a reported user store in reports.
const USER_STORE: &str = "user store";

/// More pending writes than this at one crash point earn a warning: the
/// pair states grow with the square.
const WIDE_POINT: usize = 100;

/// Checks `trace` replayed over `base` (the device before the workload).
pub fn run(base: Vec<u8>, trace: &Trace<'_>, cfg: &Config) -> Result<Outcome, String> {
    let t0 = Instant::now();
    trace.check_ranges(base.len() as u64).map_err(|e| e.to_string())?;
    if base.len() < 2 * layout::BLOCK_SIZE {
        return Err("the base image is too small to hold a novars file system".into());
    }
    let mut m = Model::new(base);
    let mut trees = Trees::default();
    let t = oracle::volatile_tree(&mut m, &mut trees);
    let mut r = Run {
        trace,
        cfg,
        m,
        trees,
        verdicts: Vec::new(),
        cache: HashMap::new(),
        violating: HashSet::new(),
        window: Window { busy: false, trees: vec![t], ops: Vec::new(), waiting: Vec::new() },
        in_flight: Vec::new(),
        next_id: 0,
        points: 0,
        report: Report { records: trace.records.len(), ..Report::default() },
        image: None,
    };
    for (i, rec) in trace.records.iter().enumerate() {
        match rec.kind {
            kind::FENCE => {
                r.report.fences += 1;
                r.point(i, PointKind::Fence);
                r.m.apply(i, rec);
            }
            kind::OP_BEGIN => r.op_begin(i, rec.pos, rec.len),
            kind::OP_END => r.op_end(i, rec.pos, rec.len),
            kind::USER_STORE => r.user_store(i, rec),
            _ => r.m.apply(i, rec),
        }
    }
    let n = trace.records.len();
    r.point(n, PointKind::End);
    let t = oracle::volatile_tree(&mut r.m, &mut r.trees);
    r.window.trees.push(t);
    if !r.in_flight.is_empty() {
        let ops: Vec<String> =
            r.in_flight.iter().map(|&(c, nr)| format!("{} #{nr}", op_name(c))).collect();
        r.report.warnings.push(format!("the trace ends with calls in flight: {}", ops.join(", ")));
    }
    r.close_window();
    r.report.trees = r.trees.len();
    r.report.millis = t0.elapsed().as_millis();
    if cfg.only.is_some_and(|id| id >= r.next_id) {
        return Err(format!(
            "no image {} (this run generates ids 0..{})",
            cfg.only.unwrap_or(0),
            r.next_id
        ));
    }
    Ok(Outcome { report: r.report, image: r.image })
}

impl Run<'_, '_> {
    fn op_begin(&mut self, i: usize, code: u64, nr: u32) {
        self.report.ops += 1;
        self.report.per_op.entry(op_name(code)).or_default().ops += 1;
        let t = oracle::volatile_tree(&mut self.m, &mut self.trees);
        if self.in_flight.is_empty() {
            self.window.trees.push(t);
            self.point(i, PointKind::OpBegin);
            self.close_window();
            self.window =
                Window { busy: true, trees: vec![t], ops: Vec::new(), waiting: Vec::new() };
        } else {
            self.window.trees.push(t);
            self.point(i, PointKind::OpBegin);
        }
        self.in_flight.push((code, nr));
        self.window.ops.push(OpRef { name: op_name(code), nr });
    }

    fn op_end(&mut self, i: usize, code: u64, nr: u32) {
        let t = oracle::volatile_tree(&mut self.m, &mut self.trees);
        match self.in_flight.iter().position(|&x| x == (code, nr)) {
            Some(k) => {
                self.in_flight.remove(k);
            }
            None => self
                .report
                .warnings
                .push(format!("record {i}: OP_END of {} #{nr}, which never began", op_name(code))),
        }
        self.window.trees.push(t);
        if self.in_flight.is_empty() && self.window.busy {
            self.close_window();
            self.window = Window {
                busy: false,
                trees: vec![t],
                ops: vec![OpRef { name: op_name(code), nr }],
                waiting: Vec::new(),
            };
        }
        self.point(i, PointKind::OpEnd);
    }

    /// A store through a `MAP_SYNC` mapping that user space flushed and
    /// fenced, then reported: a zero-width call. Its bytes are durable from
    /// here on (the model applies store, flush and fence at once, with no
    /// crash point inside: user stores promise no atomicity, only
    /// durability once flushed), and the tree after it is the only legal
    /// one until the next call: every later crash image must hold the bytes
    /// in the file and show the fault's block map, whole.
    fn user_store(&mut self, i: usize, rec: &layout::trace::Rec<'_>) {
        self.report.user_stores += 1;
        self.report.per_op.entry(USER_STORE).or_default().ops += 1;
        if self.in_flight.is_empty() {
            let t = oracle::volatile_tree(&mut self.m, &mut self.trees);
            self.window.trees.push(t);
            self.close_window();
            self.m.apply(i, rec);
            let t = oracle::volatile_tree(&mut self.m, &mut self.trees);
            self.window = Window {
                busy: false,
                trees: vec![t],
                ops: vec![OpRef { name: USER_STORE, nr: self.report.user_stores as u32 }],
                waiting: Vec::new(),
            };
        } else {
            // Beside a call in flight (another thread): one more boundary
            // of its busy window.
            self.m.apply(i, rec);
            let t = oracle::volatile_tree(&mut self.m, &mut self.trees);
            self.window.trees.push(t);
        }
        self.point(i, PointKind::UserStore);
    }

    /// Ends the window: every waiting state must show one of its trees.
    fn close_window(&mut self) {
        let key = self.op_key();
        let w = std::mem::replace(
            &mut self.window,
            Window { busy: false, trees: Vec::new(), ops: Vec::new(), waiting: Vec::new() },
        );
        let (first, last) = (w.trees.first().copied(), w.trees.last().copied());
        for mut x in w.waiting {
            let legal = w.trees.contains(&x.tree);
            if legal && !x.finding.violation {
                if self.cfg.only.is_some() {
                    self.report.findings.push(x.finding);
                }
                continue;
            }
            if !legal {
                let got = self.trees.get(x.tree).clone();
                let mut diff = Vec::new();
                let legal: &[(&str, Option<TreeId>)] =
                    if w.busy { &[("before", first), ("after", last)] } else { &[("after", last)] };
                for &(label, id) in legal {
                    let Some(id) = id else { continue };
                    diff.push(format!("vs {label}:"));
                    diff.extend(
                        oracle::diff(&got, self.trees.get(id), 8)
                            .into_iter()
                            .map(|d| format!("  {d}")),
                    );
                }
                x.finding.tree_diff = diff;
                x.finding.violation = true;
            }
            if self.violating.insert(x.hash) {
                self.report.violating_images += 1;
            }
            self.violation(x.finding, key);
        }
    }

    fn violation(&mut self, f: Finding, key: &'static str) {
        self.report.violations += 1;
        self.report.per_op.entry(key).or_default().violations += 1;
        if self.report.findings.iter().filter(|x| x.violation).count() < self.cfg.max_findings
            || self.cfg.only.is_some()
        {
            self.report.findings.push(f);
        }
    }

    fn op_key(&self) -> &'static str {
        match self.window.busy {
            true => self.window.ops.first().map(|o| o.name).unwrap_or(BETWEEN),
            false => BETWEEN,
        }
    }

    fn expected(&self) -> String {
        let ops: Vec<String> = self.window.ops.iter().map(|o| o.to_string()).collect();
        match (self.window.busy, ops.is_empty()) {
            (true, _) => format!("the tree before or after {}", ops.join(", ")),
            (false, true) => "the tree of the base image".into(),
            (false, false) => format!("the tree after {}", ops.join(", ")),
        }
    }

    fn record_line(&self, rec: usize) -> String {
        let (k, pos, len) = self
            .trace
            .records
            .get(rec)
            .map(|r| (kind_name(r.kind), r.pos, r.len))
            .unwrap_or(("?", 0, 0));
        format!("record {rec} {k} {pos:#x}+{len}")
    }

    /// The pending writes of `writes` that `landed` does not touch.
    fn lost_lines(&self, writes: &[PendingWrite], landed: &[LandedWrite]) -> Vec<String> {
        const MAX: usize = 8;
        let lost: Vec<usize> =
            writes.iter().map(|w| w.rec).filter(|r| !landed.iter().any(|l| l.rec == *r)).collect();
        let mut out: Vec<String> = lost.iter().take(MAX).map(|&r| self.record_line(r)).collect();
        if lost.len() > MAX {
            out.push(format!("... and {} more", lost.len() - MAX));
        }
        out
    }

    fn landed_lines(&self, ws: &[LandedWrite]) -> Vec<String> {
        ws.iter()
            .map(|w| {
                let mut s = self.record_line(w.rec);
                if w.lines_landed == w.lines_pending && w.torn.is_empty() {
                    s.push_str(" (whole)");
                } else {
                    s.push_str(&format!(
                        " ({} of {} pending lines",
                        w.lines_landed, w.lines_pending
                    ));
                    for (line, mask) in &w.torn {
                        s.push_str(&format!(
                            "; line {:#x} torn, words {mask:08b} landed",
                            line * LINE
                        ));
                    }
                    s.push(')');
                }
                s
            })
            .collect()
    }

    /// Generates and checks the crash states at record `i`.
    fn point(&mut self, i: usize, kind: PointKind) {
        let writes = crash::pending_writes(&self.m);
        if writes.len() > WIDE_POINT && self.report.warnings.len() < 20 {
            self.report.warnings.push(format!(
                "record {i}: {} writes pending at one crash point ({} pair states); \
                 fence more often or expect a slow check",
                writes.len(),
                writes.len() * (writes.len() - 1) / 2
            ));
        }
        let point_seed = self.cfg.seed ^ self.points.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        self.points += 1;
        self.report.crash_points += 1;
        let mut rng = Rng::new(point_seed);
        let states = crash::states(
            &self.m,
            &writes,
            &GenConfig { max_random: self.cfg.max_random },
            &mut rng,
        );
        let key = self.op_key();
        {
            let st = self.report.per_op.entry(key).or_default();
            st.points += 1;
            st.generated += states.len() as u64;
        }
        for s in states {
            let id = self.next_id;
            self.next_id += 1;
            self.report.generated += 1;
            if self.cfg.only.is_some_and(|o| o != id) {
                continue;
            }
            let lines = materialize(&self.m, &s);
            let h = image_hash(&self.m, &lines);
            let vi = match self.cache.get(&h) {
                Some(&v) if self.cfg.only.is_none() => {
                    self.report.deduplicated += 1;
                    v
                }
                _ => {
                    for (line, c) in &lines {
                        self.m.patch(line * LINE, c);
                    }
                    if self.cfg.dump && self.cfg.only == Some(id) {
                        self.image = Some(self.m.bytes().to_vec());
                    }
                    let v = oracle::check(&mut self.m, &mut self.trees);
                    self.m.revert();
                    self.report.checked += 1;
                    if let Some(st) = self.report.per_op.get_mut(key) {
                        st.checked += 1;
                    }
                    self.verdicts.push(v);
                    let vi = self.verdicts.len() - 1;
                    self.cache.insert(h, vi);
                    vi
                }
            };
            let Some(v) = self.verdicts.get(vi).cloned() else {
                continue;
            };
            let legal_now = self.window.trees.contains(&v.tree);
            if v.fsck_clean() && legal_now && self.cfg.only.is_none() {
                continue;
            }
            let landed = describe(&self.m, &writes, &s);
            let finding = Finding {
                violation: !v.fsck_clean(),
                image: id,
                record: i,
                point: kind,
                ops: self.window.ops.clone(),
                state: s.kind.name(),
                landed: self.landed_lines(&landed),
                lost: self.lost_lines(&writes, &landed),
                fatal: v.fatal.clone(),
                fsck: v.errors.iter().map(|(c, h)| format!("{c}: {h}")).collect(),
                notes: v.notes.clone(),
                expected: self.expected(),
                tree_diff: Vec::new(),
            };
            if !v.fsck_clean() {
                if self.violating.insert(h) {
                    self.report.violating_images += 1;
                }
                self.violation(finding, key);
            } else {
                self.window.waiting.push(Waiting { finding, tree: v.tree, hash: h });
            }
        }
    }
}
