//! Free space as extents, and the claims that define it.

use std::collections::BTreeMap;

/// Who claims a block.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Owner {
    /// An inode-table segment (index > 0; the first ones are fixed).
    Segment { lane: u32, index: u32 },
    /// A page of an inode's log.
    LogPage { ino: u64 },
    /// File data of an inode, file block `pgoff` at the start of the claim.
    Data { ino: u64, pgoff: u64 },
    /// The value of an extended attribute of an inode, whose first block
    /// is `block` (which names the attribute: values never share blocks).
    Value { ino: u64, block: u64 },
}

impl Owner {
    /// Who keeps a block claimed twice: segments, then log pages, then
    /// data, then attribute values (a value is copied or, without room,
    /// removed, as data is); ties go to the lower inode.
    pub fn priority(&self) -> (u8, u64) {
        match *self {
            Owner::Segment { lane, index } => (0, ((lane as u64) << 32) | index as u64),
            Owner::LogPage { ino } => (1, ino),
            Owner::Data { ino, .. } => (2, ino),
            Owner::Value { ino, .. } => (3, ino),
        }
    }

    /// The inode concerned, if any.
    pub fn ino(&self) -> Option<u64> {
        match *self {
            Owner::Segment { .. } => None,
            Owner::LogPage { ino } | Owner::Data { ino, .. } | Owner::Value { ino, .. } => {
                Some(ino)
            }
        }
    }

    /// Human-readable description.
    pub fn describe(&self) -> String {
        match *self {
            Owner::Segment { lane, index } => format!("inode-table segment {index} of lane {lane}"),
            Owner::LogPage { ino } => format!("inode {ino} (log page)"),
            Owner::Data { ino, pgoff } => format!("inode {ino} (data at file block {pgoff})"),
            Owner::Value { ino, block } => {
                format!("inode {ino} (extended attribute value from block {block})")
            }
        }
    }
}

/// A range of blocks and its owner.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Claim {
    pub start: u64,
    pub count: u64,
    pub owner: Owner,
}

impl Claim {
    /// One past the last block.
    pub fn end(&self) -> u64 {
        self.start.saturating_add(self.count)
    }
}

/// Two claims that overlap on `[start, start+count)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Overlap {
    pub a: Claim,
    pub b: Claim,
    pub start: u64,
    pub count: u64,
}

/// Most overlaps collected; past this the image is beyond case-by-case
/// repair and the rest are only counted.
pub const MAX_OVERLAPS: usize = 10_000;

/// Sorts `claims` and returns the overlapping pairs (at most
/// [`MAX_OVERLAPS`], plus how many more there were) and the free extents
/// of `[first, end)` that nothing claims. `O(n log n)` plus the overlaps.
pub fn sweep(claims: &mut [Claim], first: u64, end: u64) -> (Vec<Overlap>, u64, Vec<(u64, u64)>) {
    claims.sort_unstable_by_key(|c| (c.start, c.end()));
    let mut overlaps = Vec::new();
    let mut more = 0u64;
    let mut active: Vec<Claim> = Vec::new();
    let mut free = Vec::new();
    let mut cursor = first; // everything before is claimed or accounted
    for c in claims.iter().filter(|c| c.count > 0) {
        active.retain(|a| a.end() > c.start);
        for a in &active {
            if overlaps.len() < MAX_OVERLAPS {
                let s = c.start.max(a.start);
                let e = c.end().min(a.end());
                overlaps.push(Overlap { a: *a, b: *c, start: s, count: e - s });
            } else {
                more += 1;
            }
        }
        if active.len() < 64 {
            active.push(*c);
        }
        let s = c.start.max(first).min(end);
        if s > cursor {
            free.push((cursor, s - cursor));
        }
        cursor = cursor.max(c.end().min(end));
    }
    if end > cursor {
        free.push((cursor, end - cursor));
    }
    (overlaps, more, free)
}

/// Merges sorted extents that touch.
pub fn merge(v: impl IntoIterator<Item = (u64, u64)>) -> Vec<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = Vec::new();
    for (s, l) in v {
        if l == 0 {
            continue;
        }
        match out.last_mut() {
            Some(last) if last.0.saturating_add(last.1) == s => last.1 = last.1.saturating_add(l),
            _ => out.push((s, l)),
        }
    }
    out
}

/// Free blocks that repairs may allocate from.
#[derive(Clone, Debug, Default)]
pub struct FreeSpace {
    ext: BTreeMap<u64, u64>,
    total: u64,
}

impl FreeSpace {
    /// Free space made of `extents`.
    pub fn new(extents: &[(u64, u64)]) -> Self {
        let mut s = Self::default();
        for &(b, l) in extents {
            if l > 0 {
                s.ext.insert(b, l);
                s.total = s.total.saturating_add(l);
            }
        }
        s
    }

    /// Free blocks left.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Takes `count` contiguous blocks (first fit).
    pub fn alloc(&mut self, count: u64) -> Option<u64> {
        if count == 0 {
            return None;
        }
        let (&s, &l) = self.ext.iter().find(|(_, &l)| l >= count)?;
        self.ext.remove(&s);
        if l > count {
            self.ext.insert(s + count, l - count);
        }
        self.total -= count;
        Some(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(start: u64, count: u64, ino: u64) -> Claim {
        Claim { start, count, owner: Owner::LogPage { ino } }
    }

    #[test]
    fn sweep_finds_overlaps_and_free() {
        let mut v = vec![c(20, 5, 1), c(10, 2, 2), c(22, 1, 3), c(30, 10, 4)];
        let (ov, more, free) = sweep(&mut v, 5, 45);
        assert_eq!(more, 0);
        assert_eq!(ov.len(), 1);
        assert_eq!((ov[0].start, ov[0].count), (22, 1));
        assert_eq!(free, vec![(5, 5), (12, 8), (25, 5), (40, 5)]);
    }

    #[test]
    fn alloc_first_fit() {
        let mut f = FreeSpace::new(&[(10, 1), (20, 5)]);
        assert_eq!(f.alloc(2), Some(20));
        assert_eq!(f.alloc(1), Some(10));
        assert_eq!(f.alloc(4), None);
        assert_eq!(f.total(), 3);
        assert_eq!(merge(vec![(1, 2), (3, 1), (5, 1)]), vec![(1, 3), (5, 1)]);
    }
}
