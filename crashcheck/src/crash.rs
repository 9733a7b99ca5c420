//! Crash states: which of the writes in flight at a crash point reached the
//! media.
//!
//! A *pending write* is one trace record (one store or non-temporal copy of
//! the kernel) that is not yet wholly durable; its *pieces* are its parts in
//! each cache line ([`crate::model::Piece`]). At a crash point (before every
//! `FENCE`, at every `OP_BEGIN`/`OP_END`, at the end of the trace) the states
//! generated are, in this order (the order fixes the image ids):
//!
//! 1. **durable**: nothing pending landed;
//! 2. **all**: everything pending landed (what the CPU saw);
//! 3. **single**: each pending write alone;
//! 4. **pair**: each two pending writes;
//! 5. **partial**: a multi-line write with only some of its lines: for a
//!    write of at most [`SMALL_WRITE`] lines each line alone and all lines
//!    but one; for a larger one (file data) its first line, its last line,
//!    its first half, all but its first and all but its last line;
//! 6. **tear**: a line of a write with only a prefix of its 8-byte words
//!    (every line of a small write, the first and last line of a larger
//!    one); aligned 8-byte stores never tear;
//! 7. **random**: up to `max_random` seeded random combinations of whole,
//!    partial and torn writes (when there are at least three pending
//!    writes, or a write that can split).
//!
//! **Same-line rule**: pieces of one cache line land in program order. A
//! state that lands piece *k* of a line also lands pieces `0..k` of that
//! line whole; a torn piece is always the last one landed in its line.
//! Every state is normalised to this form ([`LineLanding`]) before it is
//! materialised, so no state the hardware cannot produce is checked.
//!
//! Equal images are found by their 128-bit diff hash (see
//! [`crate::model`]); [`crate::replay`] checks each distinct image once.

use std::collections::BTreeMap;

use crate::model::{line_hash, LineBytes, Model};

/// Writes of at most this many lines get every line-subset state of
/// step 5 and a tear state for every line.
pub const SMALL_WRITE: usize = 8;

/// One pending write: a trace record and its pending pieces as
/// `(line, index in that line's pending list)`, in address order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingWrite {
    pub rec: usize,
    pub pieces: Vec<(u64, usize)>,
}

/// The pending writes of `m`, in program order.
pub fn pending_writes(m: &Model) -> Vec<PendingWrite> {
    let mut by_rec: BTreeMap<usize, Vec<(u64, usize)>> = BTreeMap::new();
    for line in m.pending_lines() {
        for (i, p) in m.pieces(line).iter().enumerate() {
            by_rec.entry(p.rec).or_default().push((line, i));
        }
    }
    by_rec
        .into_iter()
        .map(|(rec, mut pieces)| {
            pieces.sort_unstable();
            PendingWrite { rec, pieces }
        })
        .collect()
}

/// What a crash leaves of one line: its pending pieces `0..full` whole,
/// then piece `full` only in the words of `torn` (0: not at all).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LineLanding {
    pub line: u64,
    pub full: usize,
    pub torn: u8,
}

/// How a state was chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StateKind {
    Durable,
    All,
    Single,
    Pair,
    Partial,
    Tear,
    Random,
}

impl StateKind {
    /// Lower-case name for reports.
    pub fn name(self) -> &'static str {
        match self {
            StateKind::Durable => "durable",
            StateKind::All => "all",
            StateKind::Single => "single",
            StateKind::Pair => "pair",
            StateKind::Partial => "partial",
            StateKind::Tear => "tear",
            StateKind::Random => "random",
        }
    }
}

/// One crash state, normalised (lines ascending, same-line rule applied).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CrashState {
    pub kind: StateKind,
    pub landed: Vec<LineLanding>,
}

/// Collects pieces into a normalised state.
#[derive(Default)]
struct Landing {
    /// line -> (pieces landed whole, torn piece index and mask)
    lines: BTreeMap<u64, (usize, Option<(usize, u8)>)>,
}

impl Landing {
    fn full(&mut self, line: u64, idx: usize) -> &mut Self {
        let e = self.lines.entry(line).or_insert((0, None));
        e.0 = e.0.max(idx + 1);
        if e.1.is_some_and(|(t, _)| t < e.0) {
            e.1 = None;
        }
        self
    }

    fn torn(&mut self, line: u64, idx: usize, mask: u8) -> &mut Self {
        let e = self.lines.entry(line).or_insert((0, None));
        if idx < e.0 {
            return self;
        }
        match e.1 {
            Some((t, m)) if t == idx => e.1 = Some((t, m | mask)),
            Some((t, _)) if t > idx => {}
            _ => {
                e.0 = idx; // earlier pieces of the line land whole
                e.1 = Some((idx, mask));
            }
        }
        self
    }

    fn write(&mut self, w: &PendingWrite) -> &mut Self {
        for &(line, idx) in &w.pieces {
            self.full(line, idx);
        }
        self
    }

    fn finish(&self, m: &Model, kind: StateKind) -> CrashState {
        let landed = self
            .lines
            .iter()
            .filter_map(|(&line, &(full, torn))| {
                let mut torn = match torn {
                    Some((t, mask)) if t == full => mask,
                    _ => 0,
                };
                // A "tear" of every word the piece has is the whole piece.
                if let Some(p) = m.pieces(line).get(full) {
                    if torn != 0 && torn & p.words() == p.words() {
                        return Some(LineLanding { line, full: full + 1, torn: 0 });
                    }
                    torn &= p.words();
                }
                (full > 0 || torn != 0).then_some(LineLanding { line, full, torn })
            })
            .collect();
        CrashState { kind, landed }
    }
}

/// A small seeded generator (xorshift64*): the random states must be the
/// same on every run with the same seed, so image ids reproduce.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed` (any value, 0 included).
    pub fn new(seed: u64) -> Self {
        let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        Self((z ^ (z >> 31)) | 1)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number below `n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// Generation limits.
#[derive(Clone, Copy, Debug)]
pub struct GenConfig {
    /// Random states per crash point.
    pub max_random: usize,
}

/// The first `k` words (by address) of `mask`.
fn word_prefix(mask: u8, k: u32) -> u8 {
    let mut out = 0u8;
    let mut left = k;
    for w in 0..8 {
        if left == 0 {
            break;
        }
        if mask & (1 << w) != 0 {
            out |= 1 << w;
            left -= 1;
        }
    }
    out
}

/// Every crash state of a crash point, in id order (see the module doc).
/// `rng` must be seeded per crash point by the caller.
pub fn states(
    m: &Model,
    writes: &[PendingWrite],
    cfg: &GenConfig,
    rng: &mut Rng,
) -> Vec<CrashState> {
    let mut out = vec![CrashState { kind: StateKind::Durable, landed: Vec::new() }];
    if writes.is_empty() {
        return out;
    }
    let mut all = Landing::default();
    for w in writes {
        all.write(w);
    }
    out.push(all.finish(m, StateKind::All));
    for w in writes {
        out.push(Landing::default().write(w).finish(m, StateKind::Single));
    }
    for (i, a) in writes.iter().enumerate() {
        for b in &writes[i + 1..] {
            out.push(Landing::default().write(a).write(b).finish(m, StateKind::Pair));
        }
    }
    let words_of = |line: u64, idx: usize| m.pieces(line).get(idx).map(|p| p.words()).unwrap_or(0);
    for w in writes {
        let n = w.pieces.len();
        if n < 2 {
            continue;
        }
        let subset = |keep: &dyn Fn(usize) -> bool| {
            let mut l = Landing::default();
            for (k, &(line, idx)) in w.pieces.iter().enumerate() {
                if keep(k) {
                    l.full(line, idx);
                }
            }
            l.finish(m, StateKind::Partial)
        };
        if n <= SMALL_WRITE {
            for j in 0..n {
                out.push(subset(&|k| k == j));
            }
            if n > 2 {
                for j in 0..n {
                    out.push(subset(&|k| k != j));
                }
            }
        } else {
            out.push(subset(&|k| k == 0));
            out.push(subset(&|k| k == n - 1));
            out.push(subset(&|k| k < n / 2));
            out.push(subset(&|k| k != 0));
            out.push(subset(&|k| k != n - 1));
        }
    }
    for w in writes {
        let n = w.pieces.len();
        let chosen: Vec<(u64, usize)> =
            if n <= SMALL_WRITE { w.pieces.clone() } else { vec![w.pieces[0], w.pieces[n - 1]] };
        for (line, idx) in chosen {
            let words = words_of(line, idx);
            for k in 1..words.count_ones() {
                out.push(
                    Landing::default()
                        .torn(line, idx, word_prefix(words, k))
                        .finish(m, StateKind::Tear),
                );
            }
        }
    }
    let splittable = writes.iter().any(|w| {
        w.pieces.len() > 1 || w.pieces.iter().any(|&(l, i)| words_of(l, i).count_ones() > 1)
    });
    if writes.len() >= 3 || splittable {
        for _ in 0..cfg.max_random {
            let mut l = Landing::default();
            for w in writes {
                match rng.below(100) {
                    0..=44 => {}
                    45..=79 => {
                        l.write(w);
                    }
                    _ => {
                        for &(line, idx) in &w.pieces {
                            let words = words_of(line, idx);
                            match rng.below(100) {
                                0..=49 => {}
                                50..=84 => {
                                    l.full(line, idx);
                                }
                                _ => {
                                    let mask = (rng.next_u64() as u8) & words;
                                    if mask != 0 {
                                        l.torn(line, idx, mask);
                                    }
                                }
                            }
                        }
                    }
                }
            }
            out.push(l.finish(m, StateKind::Random));
        }
    }
    out
}

/// The lines a state changes, with their crash contents.
pub fn materialize(m: &Model, s: &CrashState) -> Vec<(u64, LineBytes)> {
    s.landed.iter().map(|l| (l.line, m.compose(l.line, l.full, l.torn))).collect()
}

/// Diff hash of the crash image against the base image.
pub fn image_hash(m: &Model, lines: &[(u64, LineBytes)]) -> u128 {
    lines
        .iter()
        .fold(m.hash(), |h, (line, c)| h ^ line_hash(*line, &m.line(*line)) ^ line_hash(*line, c))
}

/// One write's share of a crash state, for reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LandedWrite {
    pub rec: usize,
    /// Pending lines of the write that landed whole.
    pub lines_landed: usize,
    /// Pending lines of the write.
    pub lines_pending: usize,
    /// Torn lines: (line, words landed).
    pub torn: Vec<(u64, u8)>,
}

/// Which pending writes a state lands, per write, in program order.
pub fn describe(m: &Model, writes: &[PendingWrite], s: &CrashState) -> Vec<LandedWrite> {
    let mut out: BTreeMap<usize, LandedWrite> = BTreeMap::new();
    let total =
        |rec: usize| writes.iter().find(|w| w.rec == rec).map(|w| w.pieces.len()).unwrap_or(0);
    for l in &s.landed {
        let ps = m.pieces(l.line);
        let mut bump = |rec: usize, torn: Option<(u64, u8)>| {
            let e = out.entry(rec).or_insert_with(|| LandedWrite {
                rec,
                lines_landed: 0,
                lines_pending: total(rec),
                torn: Vec::new(),
            });
            match torn {
                Some(t) => e.torn.push(t),
                None => e.lines_landed += 1,
            }
        };
        for p in ps.iter().take(l.full) {
            bump(p.rec, None);
        }
        if l.torn != 0 {
            if let Some(p) = ps.get(l.full) {
                bump(p.rec, Some((l.line, l.torn)));
            }
        }
    }
    out.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::{parse, TraceWriter};

    fn model(w: &TraceWriter) -> Model {
        let bytes = w.finish();
        let t = parse(&bytes).unwrap();
        let mut m = Model::new(vec![0; 8192]);
        for (i, r) in t.records.iter().enumerate() {
            m.apply(i, r);
        }
        m
    }

    #[test]
    fn same_line_rule_holds_in_every_state() {
        let mut w = TraceWriter::new();
        w.store(0, &[1; 8]); // line 0, piece 0
        w.store(8, &[2; 8]); // line 0, piece 1
        w.store(64, &[3; 64]); // line 1
        w.store(0, &[4; 16]); // line 0, piece 2 (two words)
        let m = model(&w);
        let ws = pending_writes(&m);
        assert_eq!(ws.len(), 4);
        let ss = states(&m, &ws, &GenConfig { max_random: 50 }, &mut Rng::new(1));
        for s in &ss {
            for l in &s.landed {
                assert!(l.full <= m.pieces(l.line).len());
                if l.torn != 0 {
                    assert!(l.full < m.pieces(l.line).len());
                }
            }
        }
        // "single" of the third store to line 0 lands the two before it.
        let single = ss.iter().filter(|s| s.kind == StateKind::Single).nth(3).unwrap();
        assert_eq!(single.landed, vec![LineLanding { line: 0, full: 3, torn: 0 }]);
        // Its tear lands the first word only, after the earlier pieces.
        let tear = ss.iter().find(|s| s.kind == StateKind::Tear && s.landed[0].line == 0).unwrap();
        assert_eq!(tear.landed, vec![LineLanding { line: 0, full: 2, torn: 1 }]);
        let img = materialize(&m, tear);
        assert_eq!(
            &img[0].1[..24],
            &[4, 4, 4, 4, 4, 4, 4, 4, 2, 2, 2, 2, 2, 2, 2, 2, 0, 0, 0, 0, 0, 0, 0, 0]
        );
    }

    #[test]
    fn counts_for_a_small_point() {
        let mut w = TraceWriter::new();
        w.store(0, &[1; 8]);
        w.store(64, &[2; 8]);
        let m = model(&w);
        let ws = pending_writes(&m);
        let ss = states(&m, &ws, &GenConfig { max_random: 10 }, &mut Rng::new(1));
        // durable, all, 2 singles, 1 pair; nothing can split: no random.
        assert_eq!(ss.len(), 5);
        let hashes: std::collections::HashSet<u128> =
            ss.iter().map(|s| image_hash(&m, &materialize(&m, s))).collect();
        assert_eq!(hashes.len(), 4, "the pair equals 'all'");
    }

    #[test]
    fn large_writes_get_bounded_states() {
        let mut w = TraceWriter::new();
        w.nt_store(4096, &[7; 4096]);
        let m = model(&w);
        let ws = pending_writes(&m);
        assert_eq!(ws[0].pieces.len(), 64);
        let ss = states(&m, &ws, &GenConfig { max_random: 0 }, &mut Rng::new(1));
        // durable, all, single, 5 partial, 2 x 7 tears.
        assert_eq!(ss.len(), 3 + 5 + 14);
        let d = describe(&m, &ws, &ss[3]);
        assert_eq!((d[0].lines_landed, d[0].lines_pending), (1, 64));
    }

    #[test]
    fn rng_is_deterministic() {
        let a: Vec<u64> = (0..5).scan(Rng::new(7), |r, _| Some(r.next_u64())).collect();
        let b: Vec<u64> = (0..5).scan(Rng::new(7), |r, _| Some(r.next_u64())).collect();
        assert_eq!(a, b);
        assert_ne!(Rng::new(0).next_u64(), Rng::new(1).next_u64());
    }
}
