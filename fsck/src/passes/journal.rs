//! Pass 1: the per-lane journals.
//!
//! An open transaction (state = seq, checksum good) is what a crash in the
//! middle of a multi-inode operation leaves; the kernel rolls it back at
//! mount. fsck does the same rollback in its overlay in every mode, so the
//! later passes see what the kernel will see; it is a note, not an error
//! (exit 0 if nothing else is wrong), and it is written with `-p`/`-y`.
//! Anything else that is not idle is corruption.

use layout::journal::{self, JournalError, JournalState, JOURNAL_STATE_OFF};
use layout::{Media, BLOCK_SIZE_U64};

use crate::check::Fsck;
use crate::problem::Code;

pub const NAME: &str = "journals";

fn media_err(e: layout::MediaError) -> String {
    format!("cannot access the journal ({e:?})")
}

pub fn run(f: &mut Fsck<'_, '_>) {
    for lane in 0..f.geo.lanes {
        let jb = f.geo.journal_block(lane);
        let state_pos = jb * BLOCK_SIZE_U64 + JOURNAL_STATE_OFF as u64;
        let subject = format!("lane {lane} journal (block {jb})");
        let (state, undo) = match f.m.block(jb) {
            Ok(b) => {
                let st = journal::inspect(b, &f.geo, lane);
                let undo: Vec<_> = match st {
                    Ok(JournalState::Open { count, .. }) => {
                        journal::undo_entries(b, count).collect()
                    }
                    _ => Vec::new(),
                };
                (st, undo)
            }
            Err(_) => continue,
        };
        match state {
            Ok(JournalState::Idle) => {}
            Ok(JournalState::Open { seq, count }) => {
                f.problem(
                    Code::JournalRollback,
                    subject,
                    format!(
                        "transaction {seq} is open ({count} word{} to restore)",
                        if count == 1 { "" } else { "s" }
                    ),
                    "rolled back, as a mount would",
                    |f| {
                        for e in &undo {
                            f.m.write_u64(e.pos, e.old).map_err(media_err)?;
                        }
                        f.m.write_u64(state_pos, 0).map_err(media_err)
                    },
                );
            }
            Err(JournalError::Torn(why)) => {
                f.problem(
                    Code::JournalTorn,
                    subject,
                    format!("open transaction is torn: {why}"),
                    "mark the journal idle without rolling back",
                    |f| f.m.write_u64(state_pos, 0).map_err(media_err),
                );
            }
            Err(JournalError::BadEntry { index, pos }) => {
                f.problem(
                    Code::JournalBadEntry,
                    subject,
                    format!("open transaction entry {index} names position {pos:#x}, which may not be journaled"),
                    "mark the journal idle without rolling back",
                    |f| f.m.write_u64(state_pos, 0).map_err(media_err),
                );
            }
            Err(JournalError::BadHeader) => {
                f.problem(
                    Code::JournalBadHeader,
                    subject,
                    "not a journal block of this lane (magic or lane wrong)",
                    "rewrite an idle journal",
                    |f| {
                        let b = f.m.block_mut(jb).map_err(media_err)?;
                        b.fill(0);
                        if journal::format_block(b, lane) {
                            Ok(())
                        } else {
                            Err("journal block too short".into())
                        }
                    },
                );
            }
        }
    }
}
