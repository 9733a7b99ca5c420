//! The x86 persistence model: which bytes of the device are durable, and
//! which writes are still on their way.
//!
//! The model keeps one buffer with the *durable* contents of the device and,
//! per 64-byte cache line that has writes in flight, the list of *pending*
//! pieces (the part of one trace record that falls in that line) in program
//! order. Only touched lines cost anything: a fence visits the lines that a
//! flush or a non-temporal store made ready, a flush visits the lines it
//! covers that have pending pieces.
//!
//! Rules (x86 with clwb/clflushopt and sfence, as `layout::trace` states):
//! * a `STORE` piece becomes durable at the first `FENCE` that follows a
//!   `FLUSH` covering its line; a `FLUSH` covers only pieces stored before it
//!   (a store between the flush and the fence stays pending);
//! * an `NT_STORE` piece becomes durable at the next `FENCE`;
//! * a `USER_STORE` (user space's store through a `MAP_SYNC` mapping,
//!   reported after its own flush and fence) is a `STORE` of its bytes, a
//!   `FLUSH` of its lines and a `FENCE`, at once;
//! * **same-line order**: pieces of one cache line become durable in program
//!   order. When a fence makes piece *k* of a line durable, every earlier
//!   piece of that line becomes durable with it (a line is written back
//!   whole, and a non-temporal store to a cached line first evicts it).
//!   [`crate::crash`] applies the same rule to crash states: a later write
//!   to a line never lands without the earlier ones.
//!
//! Crash images are made in place: [`Model::patch`] writes bytes into the
//! durable buffer and remembers what was there, [`Model::revert`] puts it
//! back. No image is ever copied.
//!
//! The model also keeps a 128-bit hash of the difference between the durable
//! buffer and the base image (an XOR over touched lines of
//! `h(line, now) ^ h(line, base)`), so a crash image's identity is computed
//! from the lines it changes, without reading the rest of the device.

use std::collections::HashMap;

use layout::trace::{kind, Rec};

/// Cache-line size in bytes.
pub const LINE: u64 = layout::trace::CACHE_LINE;
/// 8-byte words in a line.
pub const WORDS: usize = (LINE / 8) as usize;

/// Contents of one cache line.
pub type LineBytes = [u8; LINE as usize];

/// The part of one trace record that falls in one cache line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Piece {
    /// Index of the record in the trace.
    pub rec: usize,
    /// First byte within the line.
    pub off: u8,
    /// Bytes (1..=64).
    pub len: u8,
    /// Non-temporal.
    pub nt: bool,
    /// A flush covered it (cached stores only).
    pub flushed: bool,
    /// The line's bytes `[off, off+len)` hold the data.
    pub data: LineBytes,
}

impl Piece {
    /// The 8-byte words of the line this piece touches, as a bit mask.
    pub fn words(&self) -> u8 {
        let first = self.off as usize / 8;
        let last = (self.off as usize + self.len as usize - 1) / 8;
        (first..=last).fold(0u8, |m, w| m | (1 << w))
    }

    /// Writes the piece into `line`, only in the words of `mask`.
    pub fn apply(&self, line: &mut LineBytes, mask: u8) {
        let (s, e) = (self.off as usize, self.off as usize + self.len as usize);
        for (i, b) in line.iter_mut().enumerate().take(e).skip(s) {
            if mask & (1 << (i / 8)) != 0 {
                *b = self.data[i];
            }
        }
    }

    /// Whether the piece becomes durable at the next fence.
    pub fn ready(&self) -> bool {
        self.nt || self.flushed
    }
}

/// 128-bit hash of a line's contents at a line number.
pub fn line_hash(line: u64, c: &LineBytes) -> u128 {
    fn mix(mut z: u64) -> u64 {
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    let mut a = mix(line ^ 0x6e6f_7661_7273_0001);
    let mut b = mix(line.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x6372_6173_6863_6b02);
    for (i, w) in c.chunks_exact(8).enumerate() {
        let mut x = [0u8; 8];
        x.copy_from_slice(w);
        let w = u64::from_le_bytes(x);
        a = mix(a ^ w.wrapping_add(i as u64));
        b = mix(b.rotate_left(17) ^ w ^ 0xa076_1d64_78bd_642f);
    }
    ((a as u128) << 64) | b as u128
}

/// The device as the model sees it.
pub struct Model {
    /// Durable contents.
    img: Vec<u8>,
    /// Pending pieces per line, in program order.
    pending: HashMap<u64, Vec<Piece>>,
    /// Lines that may have a piece becoming durable at the next fence.
    ready: Vec<u64>,
    /// Diff hash of `img` against the base image.
    hash: u128,
    /// Bytes replaced by [`Model::patch`]: `(position, old bytes)`.
    undo: Vec<(usize, Vec<u8>)>,
}

impl Model {
    /// A model whose durable state is `base`. Lines past a trailing partial
    /// line are never touched (the trace is range-checked first).
    pub fn new(base: Vec<u8>) -> Self {
        Self { img: base, pending: HashMap::new(), ready: Vec::new(), hash: 0, undo: Vec::new() }
    }

    /// The durable bytes (plus any patch in effect).
    pub fn bytes(&self) -> &[u8] {
        &self.img
    }

    /// Device size in bytes.
    pub fn size(&self) -> u64 {
        self.img.len() as u64
    }

    /// Diff hash of the durable state (no patch in effect).
    pub fn hash(&self) -> u128 {
        self.hash
    }

    /// Durable contents of `line` (zeros past the end of the device).
    pub fn line(&self, line: u64) -> LineBytes {
        let mut out = [0u8; LINE as usize];
        let s = (line * LINE) as usize;
        if let Some(src) = self.img.get(s..s + LINE as usize) {
            out.copy_from_slice(src);
        }
        out
    }

    /// Pending pieces of `line`, in program order.
    pub fn pieces(&self, line: u64) -> &[Piece] {
        self.pending.get(&line).map(|v| &v[..]).unwrap_or(&[])
    }

    /// Lines with pending pieces (unordered).
    pub fn pending_lines(&self) -> impl Iterator<Item = u64> + '_ {
        self.pending.keys().copied()
    }

    /// Number of pending pieces.
    pub fn pending_count(&self) -> usize {
        self.pending.values().map(Vec::len).sum()
    }

    /// Applies one record. `idx` is its index in the trace. The caller has
    /// range-checked the trace ([`crate::trace::Trace::check_ranges`]);
    /// out-of-range bytes are ignored.
    pub fn apply(&mut self, idx: usize, r: &Rec<'_>) {
        match r.kind {
            kind::STORE | kind::NT_STORE => {
                self.store(idx, r.pos, r.data, r.kind == kind::NT_STORE)
            }
            kind::FLUSH => self.flush(r.pos, r.len as u64),
            kind::FENCE => self.fence(),
            // User space stored, flushed and fenced before it reported.
            kind::USER_STORE => {
                self.store(idx, r.pos, r.data, false);
                self.flush(r.pos, r.data.len() as u64);
                self.fence();
            }
            _ => {}
        }
    }

    fn store(&mut self, idx: usize, pos: u64, data: &[u8], nt: bool) {
        let mut at = pos;
        let end = pos.saturating_add(data.len() as u64).min(self.size());
        while at < end {
            let line = at / LINE;
            let off = (at % LINE) as usize;
            let n = ((LINE as usize) - off).min((end - at) as usize);
            let src = (at - pos) as usize;
            let mut p = Piece {
                rec: idx,
                off: off as u8,
                len: n as u8,
                nt,
                flushed: false,
                data: [0; LINE as usize],
            };
            if let (Some(d), Some(s)) = (p.data.get_mut(off..off + n), data.get(src..src + n)) {
                d.copy_from_slice(s);
            }
            self.pending.entry(line).or_default().push(p);
            if nt {
                self.ready.push(line);
            }
            at += n as u64;
        }
    }

    fn flush(&mut self, pos: u64, len: u64) {
        if len == 0 {
            return;
        }
        let first = pos / LINE;
        let last = pos.saturating_add(len - 1) / LINE;
        let span = last - first + 1;
        let mark = |line: u64, v: &mut Vec<Piece>, ready: &mut Vec<u64>| {
            for p in v.iter_mut() {
                p.flushed = true;
            }
            ready.push(line);
        };
        if span as usize > self.pending.len() {
            for (&line, v) in self.pending.iter_mut() {
                if (first..=last).contains(&line) {
                    mark(line, v, &mut self.ready);
                }
            }
        } else {
            for line in first..=last {
                if let Some(v) = self.pending.get_mut(&line) {
                    mark(line, v, &mut self.ready);
                }
            }
        }
    }

    fn fence(&mut self) {
        let mut lines = std::mem::take(&mut self.ready);
        lines.sort_unstable();
        lines.dedup();
        for line in lines {
            let Some(v) = self.pending.get_mut(&line) else {
                continue;
            };
            let Some(last) = v.iter().rposition(Piece::ready) else {
                continue;
            };
            let done: Vec<Piece> = v.drain(..=last).collect();
            if v.is_empty() {
                self.pending.remove(&line);
            }
            let old = self.line(line);
            let mut new = old;
            for p in &done {
                p.apply(&mut new, 0xff);
            }
            self.set_line(line, &old, &new);
        }
    }

    fn set_line(&mut self, line: u64, old: &LineBytes, new: &LineBytes) {
        let s = (line * LINE) as usize;
        if let Some(dst) = self.img.get_mut(s..s + LINE as usize) {
            dst.copy_from_slice(new);
            self.hash ^= line_hash(line, old) ^ line_hash(line, new);
        }
    }

    /// The line as a crash would leave it if pending pieces `0..full` landed
    /// whole and then piece `full` landed in the words of `torn_mask`.
    pub fn compose(&self, line: u64, full: usize, torn_mask: u8) -> LineBytes {
        let mut c = self.line(line);
        let ps = self.pieces(line);
        for p in ps.iter().take(full) {
            p.apply(&mut c, 0xff);
        }
        if torn_mask != 0 {
            if let Some(p) = ps.get(full) {
                p.apply(&mut c, torn_mask);
            }
        }
        c
    }

    /// The line with every pending piece applied (what the CPU sees).
    pub fn volatile_line(&self, line: u64) -> LineBytes {
        self.compose(line, self.pieces(line).len(), 0)
    }

    /// Writes `bytes` at `pos` until [`Model::revert`]. Out-of-range bytes
    /// are dropped.
    pub fn patch(&mut self, pos: u64, bytes: &[u8]) {
        let Ok(s) = usize::try_from(pos) else { return };
        let Some(e) = s.checked_add(bytes.len()) else {
            return;
        };
        if let Some(dst) = self.img.get_mut(s..e) {
            self.undo.push((s, dst.to_vec()));
            dst.copy_from_slice(bytes);
        }
    }

    /// Undoes every patch, last first.
    pub fn revert(&mut self) {
        self.revert_to(0);
    }

    /// Patches in effect (a mark for [`Model::revert_to`]).
    pub fn undo_depth(&self) -> usize {
        self.undo.len()
    }

    /// Undoes the patches made after `depth` was taken, last first.
    pub fn revert_to(&mut self, depth: usize) {
        while self.undo.len() > depth {
            let Some((s, old)) = self.undo.pop() else {
                break;
            };
            if let Some(dst) = self.img.get_mut(s..s + old.len()) {
                dst.copy_from_slice(&old);
            }
        }
    }

    /// Patches every pending piece in (the image the CPU sees).
    pub fn patch_volatile(&mut self) {
        let mut lines: Vec<u64> = self.pending.keys().copied().collect();
        lines.sort_unstable();
        for line in lines {
            let c = self.volatile_line(line);
            self.patch(line * LINE, &c);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::{parse, TraceWriter};

    fn run(w: &TraceWriter, size: usize) -> Model {
        let bytes = w.finish();
        let t = parse(&bytes).unwrap();
        let mut m = Model::new(vec![0; size]);
        for (i, r) in t.records.iter().enumerate() {
            m.apply(i, r);
        }
        m
    }

    #[test]
    fn store_needs_flush_then_fence() {
        let mut w = TraceWriter::new();
        w.store(8, &[1; 8]);
        w.fence();
        let m = run(&w, 4096);
        assert_eq!(m.bytes()[8], 0, "a fence alone does not persist a cached store");
        w.flush(8, 8);
        let m = run(&w, 4096);
        assert_eq!(m.bytes()[8], 0, "a flush alone does not persist");
        w.fence();
        let m = run(&w, 4096);
        assert_eq!(m.bytes()[8], 1);
        assert_eq!(m.pending_count(), 0);
    }

    #[test]
    fn store_after_flush_is_not_covered() {
        let mut w = TraceWriter::new();
        w.store(128, &[1; 8]);
        w.flush(128, 8);
        w.store(136, &[2; 8]);
        w.fence();
        let m = run(&w, 4096);
        assert_eq!(m.bytes()[128], 1);
        assert_eq!(m.bytes()[136], 0);
        assert_eq!(m.pieces(2).len(), 1);
        assert_eq!(m.volatile_line(2)[8], 2);
    }

    #[test]
    fn nt_store_persists_at_fence_and_pulls_earlier_pieces_of_its_line() {
        let mut w = TraceWriter::new();
        w.store(0, &[1; 8]); // cached, never flushed
        w.nt_store(8, &[2; 8]); // same line
        w.nt_store(64, &[3; 70]); // two lines
        w.fence();
        let m = run(&w, 4096);
        assert_eq!(m.bytes()[0], 1, "same-line order: the earlier store lands with the later one");
        assert_eq!(m.bytes()[8], 2);
        assert_eq!(&m.bytes()[64..134], &[3; 70][..]);
        assert_eq!(m.pending_count(), 0);
    }

    #[test]
    fn hash_tracks_the_difference_only() {
        let mut w = TraceWriter::new();
        w.nt_store(4000, &[9; 8]);
        w.fence();
        let m = run(&w, 8192);
        assert_ne!(m.hash(), 0);
        w.nt_store(4000, &[0; 8]);
        w.fence();
        let m = run(&w, 8192);
        assert_eq!(m.hash(), 0, "back to the base image");
    }

    #[test]
    fn patch_and_revert() {
        let mut w = TraceWriter::new();
        w.store(64, &[5; 16]);
        let mut m = run(&w, 4096);
        m.patch_volatile();
        assert_eq!(m.bytes()[64], 5);
        m.patch(0, &[7; 4]);
        m.revert();
        assert_eq!(m.bytes()[64], 0);
        assert_eq!(m.bytes()[0], 0);
        let p = &m.pieces(1)[0];
        assert_eq!(p.words(), 0b11);
        let c = m.compose(1, 0, 0b01);
        assert_eq!((c[0], c[8]), (5, 0));
    }
}
