//! Hostile novars images (issue 14): one seeded mutation engine for the
//! host fuzz of fsck and `layout` (`imgfuzz/tests/hostile.rs`) and the
//! kernel's VM fuzz (`xtests/vm-tests/fuzz_images.sh`, through the
//! `novars-imgfuzz` binary).
//!
//! A [`Base`] is a valid image and a [`Map`] of its metadata. A [`Case`]
//! turns a copy of it into a hostile image:
//!
//! * a named [`Regression`] (every image that ever failed), or
//! * `SEED:INDEX`, one to three random rules drawn from a generator seeded
//!   by both: field-aware mutations of the superblock and its backup,
//!   journals, segment headers, inode records, log page tails, log entries
//!   and allocator-record blocks (boundary values, off by one, a bit,
//!   positions of other metadata), random bytes, words and whole blocks,
//!   two files sharing a block, self-linked chains. Most field mutations
//!   recompute the structure's checksum, so the checks behind it are
//!   reached.
//!
//! A case is one line (`Case`'s `Display`/`FromStr`) and its mutations are
//! one line, so a failure names what to rerun.

use std::fmt;
use std::str::FromStr;

mod fix;
mod map;
mod mutate;
mod regress;

pub use map::{EntryAt, InodeAt, Map};
pub use regress::Regression;

/// A small deterministic generator (splitmix64-seeded xorshift).
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        Self((z ^ (z >> 31)) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number below `n` (0 for `n == 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// One hostile image of a base.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Case {
    Named(Regression),
    /// Random rules from the generator of `(seed, index)`.
    Seeded {
        seed: u64,
        index: u64,
    },
}

impl Case {
    /// The named regressions, then `count` random cases of `seed`.
    pub fn all(seed: u64, count: u64) -> impl Iterator<Item = Case> {
        Regression::ALL
            .into_iter()
            .map(Case::Named)
            .chain((0..count).map(move |index| Case::Seeded { seed, index }))
    }
}

impl fmt::Display for Case {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Case::Named(r) => f.write_str(r.name()),
            Case::Seeded { seed, index } => write!(f, "{seed}:{index}"),
        }
    }
}

impl FromStr for Case {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if let Some(r) = Regression::ALL.into_iter().find(|r| r.name() == s) {
            return Ok(Case::Named(r));
        }
        let bad = || {
            let names: Vec<&str> = Regression::ALL.iter().map(|r| r.name()).collect();
            format!("{s:?}: a case is SEED:INDEX or one of {}", names.join(", "))
        };
        let (seed, index) = s.split_once(':').ok_or_else(bad)?;
        Ok(Case::Seeded {
            seed: seed.parse().map_err(|_| bad())?,
            index: index.parse().map_err(|_| bad())?,
        })
    }
}

/// An image being mutated, which remembers what each write replaced so
/// that [`Image::restore`] gives the base back without copying all of it
/// (the host fuzz runs 100,000 cases of an 8 MiB image).
pub struct Image {
    bytes: Vec<u8>,
    undo: Vec<(usize, Vec<u8>)>,
}

impl Image {
    pub fn new(base: &[u8]) -> Self {
        Self { bytes: base.to_vec(), undo: Vec::new() }
    }

    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Writes `data` at byte `pos`.
    pub fn write(&mut self, pos: usize, data: &[u8]) {
        let range = pos..pos + data.len();
        self.undo.push((pos, self.bytes[range.clone()].to_vec()));
        self.bytes[range].copy_from_slice(data);
    }

    pub fn put_u64(&mut self, pos: usize, v: u64) {
        self.write(pos, &v.to_le_bytes());
    }

    pub fn put_u32(&mut self, pos: usize, v: u32) {
        self.write(pos, &v.to_le_bytes());
    }

    /// Undoes every write since the last restore.
    pub fn restore(&mut self) {
        while let Some((pos, old)) = self.undo.pop() {
            self.bytes[pos..pos + old.len()].copy_from_slice(&old);
        }
    }
}

/// A valid image to mutate and the map of its metadata.
pub struct Base {
    bytes: Vec<u8>,
    map: Map,
}

impl Base {
    /// `bytes` must be a valid image (primary superblock, segment chains
    /// and logs); the rules aim at what it holds.
    pub fn new(bytes: Vec<u8>) -> Result<Self, String> {
        let map = Map::new(&bytes)?;
        Ok(Self { bytes, map })
    }

    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    pub fn map(&self) -> &Map {
        &self.map
    }

    /// Applies `case` to `img`, which must hold the base (new or
    /// restored); returns what was done, in one line.
    pub fn mutate(&self, case: Case, img: &mut Image) -> String {
        match case {
            Case::Named(r) => r.apply(&self.map, img),
            Case::Seeded { seed, index } => {
                let rng = Rng::new(Rng::new(seed).next_u64() ^ index);
                let mut m = mutate::Mutator { map: &self.map, rng };
                // Mostly one mutation: a single fault shows which check
                // misses it; sometimes two or three that interact.
                let n = [1, 1, 1, 2, 3][m.rng.below(5) as usize];
                (0..n).map(|_| m.mutate(img)).collect::<Vec<_>>().join("; ")
            }
        }
    }
}
