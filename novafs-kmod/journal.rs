// SPDX-License-Identifier: GPL-2.0

//! Journal transactions for operations on several inodes (FORMAT.md
//! "Journal"): undo records of the 8-byte words an operation changes.
//!
//! Callers write every log entry first (past the committed tails, so
//! invisible), then [`Tx::begin`] with the words they will change,
//! [`Tx::store`] each, and [`Tx::commit`]. A transaction dropped without a
//! successful commit (an error on the way) is rolled back at once, as
//! recovery would after a crash: every journaled word gets its old value
//! back and the lane's journal is closed, so the next transaction on the
//! lane never overwrites the undo record of an open one.

use crate::layout::journal::{build, tx_len, JournalEntry, JOURNAL_STATE_OFF};
use crate::layout::BLOCK_SIZE_U64;
use crate::shim;
use crate::super_::SbInfo;
use kernel::bindings;
use kernel::prelude::*;
use kernel::sync::lock::{mutex::MutexBackend, Guard};

/// Most words one operation changes (rename with exchange of two
/// directories touches fewer than this).
pub(crate) const MAX_WORDS: usize = 12;

/// Per-lane journal state.
pub(crate) struct Lane {
    pub(crate) seq: u64,
}

/// An open transaction; holds its lane.
pub(crate) struct Tx<'a> {
    sbi: &'a SbInfo,
    lane: Guard<'a, Lane, MutexBackend>,
    jpos: u64,
    seq: u64,
    /// The undo records (`n` of them), for a rollback on drop.
    undo: [JournalEntry; MAX_WORDS],
    n: usize,
    committed: bool,
}

fn read_word(sbi: &SbInfo, pos: u64) -> Result<u64> {
    crate::media::read_word(&sbi.media, pos)
        .map_err(|e| crate::media::read_failed(sbi, format_args!("journaled word {pos:#x}"), e))
}

impl<'a> Tx<'a> {
    /// Journals the current values of `words` and opens the transaction
    /// on the lane of the current CPU.
    pub(crate) fn begin(sbi: &'a SbInfo, words: &[u64]) -> Result<Self> {
        if words.len() > MAX_WORDS {
            return Err(EINVAL);
        }
        // SAFETY: reading the CPU number has no preconditions; a stale
        // value only picks another lane, which is equally correct.
        let cpu = unsafe { shim::novars_cpu() };
        let lane_nr = sbi.geo.lane_of_cpu(cpu);
        let lane = sbi.lanes.as_slice().get(lane_nr as usize).ok_or(EINVAL)?.lock();
        let seq = lane.seq.checked_add(1).ok_or_else(|| shim::err(bindings::EOVERFLOW))?;
        let mut es = [JournalEntry { pos: 0, old: 0 }; MAX_WORDS];
        for (e, &pos) in es.iter_mut().zip(words) {
            *e = JournalEntry { pos, old: read_word(sbi, pos)? };
        }
        let n = words.len();
        let mut buf = [0u8; tx_len(MAX_WORDS)];
        if !build(&mut buf, lane_nr, seq, es.get(..n).unwrap_or(&[])) {
            return Err(EINVAL);
        }
        let jpos = sbi.geo.journal_block(lane_nr) * BLOCK_SIZE_U64;
        let pm = &sbi.pm;
        pm.write_nt(jpos, buf.get(..tx_len(n)).unwrap_or(&[]))?;
        pm.fence();
        pm.persist_u64(jpos + JOURNAL_STATE_OFF as u64, seq)?;
        Ok(Self { sbi, lane, jpos, seq, undo: es, n, committed: false })
    }

    /// Changes one journaled word (flushed; made durable by `commit`).
    pub(crate) fn store(&self, pos: u64, v: u64) -> Result {
        self.sbi.pm.store_u64(pos, v)?;
        self.sbi.pm.flush(pos, 8)
    }

    /// Makes every change durable, then closes the transaction.
    pub(crate) fn commit(mut self) -> Result {
        let pm = &self.sbi.pm;
        pm.fence();
        pm.persist_u64(self.jpos + JOURNAL_STATE_OFF as u64, 0)?;
        self.lane.seq = self.seq;
        self.committed = true;
        Ok(())
    }

    /// Puts every journaled word back, durably, then closes the journal.
    fn roll_back(&mut self) -> Result {
        let pm = &self.sbi.pm;
        for e in self.undo.iter().take(self.n) {
            pm.store_u64(e.pos, e.old)?;
            pm.flush(e.pos, 8)?;
        }
        pm.fence();
        pm.persist_u64(self.jpos + JOURNAL_STATE_OFF as u64, 0)?;
        self.lane.seq = self.seq;
        Ok(())
    }
}

impl Drop for Tx<'_> {
    fn drop(&mut self) {
        if self.committed {
            return;
        }
        if let Err(e) = self.roll_back() {
            // The journal stays open: the next mount rolls it back.
            pr_err!(
                "({}): journal rollback failed ({:?}); the next mount recovers it\n",
                self.sbi.dev(),
                e
            );
        }
    }
}
