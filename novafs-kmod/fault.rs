// SPDX-License-Identifier: GPL-2.0

//! Deliberate faults that need more than a skipped flush or fence (tracing
//! build only; a submodule of `pm`, switched by [`super::Fault`]). They
//! exist to show that the crash checker catches each kind of bug
//! (`xtests/vm-tests/crashcheck.sh`); nothing else calls them.

use crate::inode::{Index, InodeInfo};
use crate::layout::append::NewEntry;
use crate::layout::inode::read_inode_at;
use crate::layout::log::{seal_entry, DE_ADD, DE_DEL, MAX_ENTRY};
use crate::layout::walk::{walk_log, DirIndex, LogVisitor};
use crate::layout::{log::Entry, Media, Timespec, BLOCK_SIZE_U64};
use crate::log::Appender;
use crate::super_::SbInfo;
use kernel::prelude::*;

/// Finds the live `DENTRY ADD` of a name: (position, length).
struct FindAdd<'n> {
    name: &'n [u8],
    found: Option<(u64, usize)>,
}

impl LogVisitor for FindAdd<'_> {
    fn entry(&mut self, pos: u64, e: &Entry<'_>) {
        if let Entry::Dentry(d, name) = e {
            if *name == self.name {
                self.found = (d.hdr.flags == DE_ADD).then_some((pos, d.hdr.len as usize));
            }
        }
    }
}

/// [`super::Fault::DentryInPlace`]: renames `oname` over `nname` (a file,
/// both in `dir`) by rewriting `nname`'s `DENTRY ADD` in place to name
/// `moved` (inode number, type, checksum: three 8-byte stores, flushed and
/// fenced), then appending the removal of `oname` and the victim's link
/// count, each committed on its own. No journal, no atomicity: the bug.
#[allow(clippy::too_many_arguments)]
pub(crate) fn rename_in_place(
    sbi: &SbInfo,
    dir: &InodeInfo,
    moved: &InodeInfo,
    victim: &InodeInfo,
    oname: &[u8],
    nname: &[u8],
    ftype: u8,
    victim_nlink: u32,
    now: Timespec,
) -> Result {
    let inode = read_inode_at(&sbi.media, dir.rec).map_err(|_| EIO)?;
    let mut find = FindAdd { name: nname, found: None };
    walk_log(&sbi.media, &sbi.geo, dir.ino, &inode, &mut find).map_err(|_| EIO)?;
    let (pos, len) = find.found.ok_or(ENOENT)?;
    let off = (pos % BLOCK_SIZE_U64) as usize;
    let block = sbi.media.block(pos / BLOCK_SIZE_U64).map_err(|_| EIO)?;
    let mut e = [0u8; MAX_ENTRY];
    let e = e.get_mut(..len).ok_or(EIO)?;
    e.copy_from_slice(block.get(off..off + len).ok_or(EIO)?);
    e.get_mut(16..24).ok_or(EIO)?.copy_from_slice(&moved.ino.to_le_bytes());
    *e.get_mut(41).ok_or(EIO)? = ftype; // DentryEntry::ftype
    seal_entry(e);
    let word = |at: usize| -> Result<u64> {
        let b = e.get(at..at + 8).ok_or(EIO)?;
        Ok(u64::from_le_bytes(b.try_into().map_err(|_| EIO)?))
    };
    for at in [16usize, 40, 0] {
        sbi.pm.store_u64(pos + at as u64, word(at)?)?;
    }
    sbi.pm.flush(pos, len as u64)?;
    sbi.pm.fence();

    let mut dap = Appender::of(sbi, dir, dir.inner.lock().log);
    let seq =
        dap.push(&NewEntry::Dentry { op: DE_DEL, ino: moved.ino, ftype, mtime: now, name: oname })?;
    let dpos = dap.commit()?;
    let mut vap = Appender::of(sbi, victim, victim.inner.lock().log);
    vap.push(&NewEntry::Link { nlink: victim_nlink, ctime: now })?;
    let vpos = vap.commit()?;
    {
        let mut g = dir.inner.lock();
        g.log = dpos;
        if let Index::Dir(d) = &mut g.index {
            d.remove(oname, moved.ino);
            d.remove(nname, victim.ino);
            d.add(nname, moved.ino, ftype, seq);
        }
    }
    {
        let mut g = victim.inner.lock();
        g.log = vpos;
        g.nlink = victim_nlink;
    }
    Ok(())
}
