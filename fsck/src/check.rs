//! The driver: runs the passes over an overlay and decides, problem by
//! problem, whether to repair.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::rc::Rc;
use std::time::Instant;

use layout::inode::Timespec;
use layout::{Geometry, Superblock};

use crate::direct::ReadBlocks;
use crate::model::{InodeMap, LiveIndex};
use crate::overlay::Overlay;
use crate::passes;
use crate::problem::{Code, Kind, Problem, Resolution};
use crate::space::FreeSpace;
use layout::Media;

/// How problems are handled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// `-n`: change nothing.
    ReadOnly,
    /// `-p`/`-a`: repair what is safe without asking.
    Preen,
    /// `-y`: repair everything.
    Yes,
    /// Ask for every problem through [`Events::ask`].
    Interactive,
}

impl Mode {
    /// The name used in JSON.
    pub fn name(self) -> &'static str {
        match self {
            Mode::ReadOnly => "read-only",
            Mode::Preen => "preen",
            Mode::Yes => "yes",
            Mode::Interactive => "interactive",
        }
    }

    /// Whether this mode may write.
    pub fn writes(self) -> bool {
        self != Mode::ReadOnly
    }
}

/// Check options.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    pub mode: Mode,
    /// `-f`: check even a clean file system fully.
    pub force: bool,
    /// Time stamped on inodes fsck creates (root, lost+found).
    pub now: Timespec,
    /// Threads for the parallel parts; 0: one per CPU (at most 8), fewer
    /// for small file systems. The result never depends on it.
    pub threads: usize,
}

impl Options {
    /// Options for `mode`, forced, time 0.
    pub fn new(mode: Mode) -> Self {
        Self { mode, force: true, now: Timespec::new(0, 0), threads: 0 }
    }
}

/// An answer at the prompt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    Yes,
    No,
    /// Yes to this and every later problem.
    All,
    /// Stop: nothing is written, exit 32.
    Quit,
}

/// What the front end hears while the check runs.
pub trait Events {
    /// A pass starts.
    fn pass(&mut self, _pass: u8, _name: &str) {}
    /// Progress within the current pass.
    fn progress(&mut self, _pass: u8, _done: u64, _total: u64) {}
    /// Interactive mode: should `p` be repaired?
    fn ask(&mut self, _p: &Problem) -> Answer {
        Answer::No
    }
    /// A problem was found and handled.
    fn problem(&mut self, _p: &Problem) {}
    /// Something worth saying that is not a problem.
    fn info(&mut self, _msg: &str) {}
}

/// Events that go nowhere.
pub struct Quiet;
impl Events for Quiet {}

/// Per-pass summary.
#[derive(Clone, Debug)]
pub struct PassSummary {
    pub pass: u8,
    pub name: &'static str,
    pub problems: usize,
    pub millis: u128,
}

/// Counts for the summary line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub inodes_used: u64,
    pub inodes_total: u64,
    pub blocks_used: u64,
    pub blocks_total: u64,
}

/// fsck(8) exit bits.
pub mod exit {
    pub const OK: i32 = 0;
    pub const CORRECTED: i32 = 1;
    pub const UNCORRECTED: i32 = 4;
    pub const OPERATIONAL: i32 = 8;
    pub const USAGE: i32 = 16;
    pub const CANCELLED: i32 = 32;
}

/// The result of a check.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Without `-f` on a clean file system: only the quick check ran.
    pub quick_clean: bool,
    pub problems: Vec<Problem>,
    pub passes: Vec<PassSummary>,
    pub counts: Counts,
    /// Why checking was impossible (exit 8).
    pub fatal: Option<String>,
    pub cancelled: bool,
    /// Blocks to write, in order (primary superblock last). Empty for `-n`.
    pub writes: Vec<(u64, Box<[u8]>)>,
    pub exit_code: i32,
}

impl Outcome {
    /// Problems of `code`.
    pub fn has(&self, code: Code) -> bool {
        self.problems.iter().any(|p| p.code == code)
    }

    /// Errors (not notes) found.
    pub fn errors(&self) -> usize {
        self.problems.iter().filter(|p| !p.is_note()).count()
    }

    /// Errors repaired.
    pub fn fixed(&self) -> usize {
        self.problems.iter().filter(|p| !p.is_note() && p.fixed()).count()
    }

    fn compute_exit(&mut self) {
        let mut code = 0;
        if self.fatal.is_some() {
            code |= exit::OPERATIONAL;
        }
        if self.cancelled {
            code |= exit::CANCELLED;
        }
        if self.problems.iter().any(|p| !p.is_note() && !p.fixed()) {
            code |= exit::UNCORRECTED;
        }
        if !self.cancelled && self.problems.iter().any(|p| !p.is_note() && p.fixed()) {
            code |= exit::CORRECTED;
        }
        self.exit_code = code;
    }
}

/// An inode-table lane: its segments, in chain order.
#[derive(Clone, Debug, Default)]
pub struct Lane {
    pub segments: Vec<u64>,
}

/// A check in progress: the overlay, the superblock, what the passes learnt.
pub struct Fsck<'a, 'e> {
    pub(crate) m: Overlay<'a>,
    pub(crate) opts: Options,
    ev: &'e mut dyn Events,
    pub(crate) sb: Superblock,
    pub(crate) geo: Geometry,
    /// The superblocks must be rewritten (both, primary last).
    pub(crate) sb_dirty: bool,
    /// The superblock said CLEAN when the check began.
    pub(crate) was_clean: bool,
    pub(crate) problems: Vec<Problem>,
    yes_all: bool,
    pub(crate) cancelled: bool,
    /// Preen met a problem it may not fix: no more repairs.
    pub(crate) preen_halted: bool,
    pub(crate) pass: u8,
    pub(crate) lanes: Vec<Lane>,
    pub(crate) inodes: InodeMap,
    /// Free inode numbers (slot 0 of lane 0, inode 0, excluded).
    pub(crate) free_inos: BTreeSet<u64>,
    /// Free blocks for repairs (after pass 3).
    pub(crate) space: FreeSpace,
    pub(crate) counts: Counts,
    /// Names a declined repair would have added (+1) or removed (-1):
    /// `(directory, inode, delta)`, so pass 5 does not report what only
    /// follows from that decision.
    pub(crate) pending_names: Vec<(u64, u64, i32)>,
    /// Repairs (and notes) carried out so far: every change to the model
    /// is one, so a result computed from the model stays valid while this
    /// does not move.
    pub(crate) repairs_run: u64,
    /// The free extents pass 3 computed, and `repairs_run` then.
    pub(crate) swept_free: Option<(u64, Vec<(u64, u64)>)>,
    /// The last [`LiveIndex`] built, and the map's version it is of.
    live_index: RefCell<Option<(u64, Rc<LiveIndex>)>>,
}

/// A repair's result: `Err` says why it failed.
pub type Repair = Result<(), String>;

impl<'a, 'e> Fsck<'a, 'e> {
    pub(crate) fn new(
        m: Overlay<'a>,
        opts: Options,
        ev: &'e mut dyn Events,
        sb: Superblock,
        geo: Geometry,
    ) -> Self {
        Self {
            m,
            opts,
            ev,
            sb,
            geo,
            sb_dirty: false,
            was_clean: false,
            problems: Vec::new(),
            yes_all: false,
            cancelled: false,
            preen_halted: false,
            pass: 0,
            lanes: Vec::new(),
            inodes: InodeMap::default(),
            free_inos: BTreeSet::new(),
            space: FreeSpace::default(),
            counts: Counts::default(),
            pending_names: Vec::new(),
            repairs_run: 0,
            swept_free: None,
            live_index: RefCell::new(None),
        }
    }

    /// The [`LiveIndex`] of the live inodes now (built again only after
    /// the map changed).
    pub(crate) fn live_index(&self) -> Rc<LiveIndex> {
        let v = self.inodes.version();
        let mut cache = self.live_index.borrow_mut();
        match &*cache {
            Some((at, idx)) if *at == v => Rc::clone(idx),
            _ => {
                let idx = Rc::new(LiveIndex::new(&self.inodes));
                *cache = Some((v, Rc::clone(&idx)));
                idx
            }
        }
    }

    /// Reports a problem and, if the mode allows, runs `repair`.
    /// Returns whether it was repaired (notes: applied).
    pub(crate) fn problem(
        &mut self,
        code: Code,
        subject: impl Into<String>,
        message: impl Into<String>,
        action: impl Into<String>,
        repair: impl FnOnce(&mut Self) -> Repair,
    ) -> bool {
        let mut p = Problem {
            code,
            pass: self.pass,
            subject: subject.into(),
            message: message.into(),
            action: action.into(),
            resolution: Resolution::Declined,
        };
        if self.cancelled && code.kind() != Kind::Note {
            // After a quit nothing more is asked, fixed or reported.
            return false;
        }
        let go = match code.kind() {
            Kind::Note => true,
            _ => match self.opts.mode {
                Mode::ReadOnly => {
                    p.resolution = Resolution::ReadOnly;
                    false
                }
                Mode::Yes => !self.preen_halted,
                Mode::Preen if code.kind() == Kind::Preen && !self.preen_halted => true,
                Mode::Preen => {
                    if !self.preen_halted {
                        self.preen_halted = true;
                        self.ev.info("UNEXPECTED INCONSISTENCY: run fsck.novars manually (-y or interactively); no further repairs in preen mode");
                    }
                    p.resolution = Resolution::NotPreenSafe;
                    false
                }
                Mode::Interactive if self.yes_all => true,
                Mode::Interactive => match self.ev.ask(&p) {
                    Answer::Yes => true,
                    Answer::All => {
                        self.yes_all = true;
                        true
                    }
                    Answer::No => false,
                    Answer::Quit => {
                        self.cancelled = true;
                        false
                    }
                },
            },
        };
        if go {
            self.repairs_run += 1;
            p.resolution = match repair(self) {
                Ok(()) if code.kind() == Kind::Note && !self.opts.mode.writes() => {
                    Resolution::Noted
                }
                Ok(()) => Resolution::Fixed,
                Err(why) => Resolution::Failed(why),
            };
        }
        let fixed = p.resolution == Resolution::Fixed || p.resolution == Resolution::Noted;
        self.ev.problem(&p);
        self.problems.push(p);
        fixed
    }

    pub(crate) fn info(&mut self, msg: &str) {
        self.ev.info(msg);
    }

    pub(crate) fn progress(&mut self, done: u64, total: u64) {
        let pass = self.pass;
        self.ev.progress(pass, done, total);
    }

    /// Whether repairs are still being made.
    pub(crate) fn repairing(&self) -> bool {
        self.opts.mode.writes() && !self.cancelled
    }

    fn run_pass(
        &mut self,
        pass: u8,
        name: &'static str,
        out: &mut Vec<PassSummary>,
        f: impl FnOnce(&mut Self),
    ) {
        if self.cancelled {
            return;
        }
        self.pass = pass;
        self.ev.pass(pass, name);
        let before = self.problems.len();
        let t = Instant::now();
        f(self);
        out.push(PassSummary {
            pass,
            name,
            problems: self.problems.len() - before,
            millis: t.elapsed().as_millis(),
        });
    }
}

/// Checks the image `bytes` (and repairs it in the overlay, per `opts`).
/// The caller writes `Outcome::writes` back.
pub fn check(bytes: &[u8], opts: &Options, ev: &mut dyn Events) -> Outcome {
    check_with_reader(bytes, None, opts, ev)
}

/// [`check`], with a way to read the image's blocks other than through
/// `bytes` (a device opened for direct reads: [`crate::direct`]).
pub fn check_with_reader(
    bytes: &[u8],
    reader: Option<&dyn ReadBlocks>,
    opts: &Options,
    ev: &mut dyn Events,
) -> Outcome {
    let mut out = Outcome::default();
    let m = Overlay::with_reader(bytes, reader);
    let mut pass_log = Vec::new();

    // The superblock comes first: without one there is nothing to check.
    ev.pass(0, passes::superblock::NAME);
    let t = Instant::now();
    let found = match passes::superblock::find(&m) {
        Ok(v) => v,
        Err(msg) => {
            out.fatal = Some(msg);
            out.compute_exit();
            return out;
        }
    };
    let (sb, geo) = (found.sb, found.geo);
    // Read-only-compatible features this fsck does not know: the file
    // system may be checked but not written, so pass 0 reports what it
    // finds unrepaired and the check stops below (a repair it claimed
    // would never be written).
    let refuse_writes = geo.read_only && opts.mode.writes();
    let pass_opts = if refuse_writes { Options { mode: Mode::ReadOnly, ..*opts } } else { *opts };
    let mut f = Fsck::new(m, pass_opts, ev, sb, geo);
    f.was_clean = sb.state & layout::sb::STATE_CLEAN != 0;
    passes::superblock::run(&mut f, &found);
    pass_log.push(PassSummary {
        pass: 0,
        name: passes::superblock::NAME,
        problems: f.problems.len(),
        millis: t.elapsed().as_millis(),
    });

    if refuse_writes {
        out.fatal = Some(
            "the file system has read-only-compatible features this fsck does not know; \
             it can only be checked with -n"
                .into(),
        );
        out.problems = f.problems;
        out.compute_exit();
        return out;
    }

    if !opts.force && f.problems.is_empty() {
        if let Some(counts) = passes::alloc::quick_clean(&f) {
            out.quick_clean = true;
            out.counts = counts;
            out.passes = pass_log;
            out.compute_exit();
            return out;
        }
    }
    if sb.state & layout::sb::STATE_ERROR != 0 {
        f.problem(
            Code::SbErrorFlag,
            "superblock",
            "the kernel recorded errors",
            "check fully",
            |_| Ok(()),
        );
    }

    f.run_pass(1, passes::journal::NAME, &mut pass_log, passes::journal::run);
    f.run_pass(2, passes::inodes::NAME, &mut pass_log, passes::inodes::run);
    f.run_pass(3, passes::blocks::NAME, &mut pass_log, passes::blocks::run);
    f.run_pass(4, passes::dirs::NAME, &mut pass_log, passes::dirs::run);
    f.run_pass(5, passes::links::NAME, &mut pass_log, passes::links::run);
    f.run_pass(6, passes::alloc::NAME, &mut pass_log, passes::alloc::run);
    if !f.cancelled {
        passes::alloc::finish(&mut f);
    }

    out.counts = f.counts;
    out.cancelled = f.cancelled;
    out.passes = pass_log;
    let writes_ok = opts.mode.writes() && !f.cancelled;
    let (sb, geo, sb_dirty) = (f.sb, f.geo, f.sb_dirty);
    out.problems = std::mem::take(&mut f.problems);
    let mut m = f.m;
    if writes_ok {
        if sb_dirty {
            // Never write a superblock that would not parse.
            let mut blk = vec![0u8; layout::BLOCK_SIZE];
            sb.write_block(&mut blk);
            if let Err(e) = Superblock::parse(&blk, m.blocks()) {
                out.fatal = Some(format!(
                    "internal error: the repaired superblock is invalid ({}); nothing written",
                    e.describe()
                ));
                out.problems.iter_mut().filter(|p| p.fixed()).for_each(|p| {
                    p.resolution = Resolution::Failed("not written".into());
                });
                out.compute_exit();
                return out;
            }
            for b in [geo.backup_sb(), 0] {
                if let Ok(dst) = m.block_mut(b) {
                    dst.copy_from_slice(&blk);
                }
            }
        }
        let mut dirty = m.into_dirty();
        let primary = dirty.remove(&0);
        let backup = dirty.remove(&geo.backup_sb());
        out.writes = dirty.into_iter().collect();
        out.writes.extend(backup.map(|b| (geo.backup_sb(), b)));
        out.writes.extend(primary.map(|b| (0, b)));
    }
    out.compute_exit();
    out
}

/// Applies `writes` to an in-memory image.
pub fn apply_writes(img: &mut [u8], writes: &[(u64, Box<[u8]>)]) {
    for (b, data) in writes {
        let Ok(start) = usize::try_from(*b) else { continue };
        let Some(start) = start.checked_mul(layout::BLOCK_SIZE) else {
            continue;
        };
        if let Some(dst) = img.get_mut(start..start.saturating_add(data.len())) {
            dst.copy_from_slice(data);
        }
    }
}
