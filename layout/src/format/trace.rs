//! The persistence trace: what a tracing build of the kernel module records
//! (issue 7) and the host's crash-state checker replays.
//!
//! A trace is a [`TraceHeader`] followed by records. Each record is a
//! [`TraceRecord`] (16 bytes) followed, for `STORE` and `NT_STORE`, by `len`
//! payload bytes zero-padded to a multiple of 8. Positions are byte offsets
//! on the file-system device (as everywhere in this crate).
//!
//! Semantics (the x86 model the replayer implements):
//! * `STORE`: cached store of the payload at `pos`; volatile until a
//!   `FLUSH` covering its cache line is followed by a `FENCE`.
//! * `NT_STORE`: non-temporal store; durable at the next `FENCE`.
//! * `FLUSH`: clwb of every cache line overlapping `[pos, pos+len)`.
//! * `FENCE`: sfence.
//! * `OP_BEGIN` / `OP_END`: a system call starts / returns; `pos` holds the
//!   operation code ([`op`]), `len` a per-trace operation number.
//! * `USER_STORE`: user space stored the payload at `pos` through a DAX
//!   (`MAP_SYNC`) mapping, flushed and fenced it, and then reported it
//!   (debugfs `user_store`): durable from this point on, like a `STORE`,
//!   `FLUSH` and `FENCE` with no crash point inside; the tree after it is a
//!   legal state of its own.

/// `"NVTR"`.
pub const TRACE_MAGIC: u32 = u32::from_le_bytes(*b"NVTR");
/// Trace format version.
pub const TRACE_VERSION: u32 = 1;

/// Record kinds.
pub mod kind {
    /// Cached store (payload follows).
    pub const STORE: u8 = 1;
    /// Non-temporal store (payload follows).
    pub const NT_STORE: u8 = 2;
    /// Cache-line write-back of a range.
    pub const FLUSH: u8 = 3;
    /// Store fence.
    pub const FENCE: u8 = 4;
    /// A system call begins.
    pub const OP_BEGIN: u8 = 5;
    /// A system call returns.
    pub const OP_END: u8 = 6;
    /// A store through a `MAP_SYNC` mapping, flushed and fenced by user
    /// space, then reported (payload follows).
    pub const USER_STORE: u8 = 7;
}

/// Whether records of `kind` carry a payload.
pub fn has_payload(k: u8) -> bool {
    matches!(k, kind::STORE | kind::NT_STORE | kind::USER_STORE)
}

/// Operation codes in `OP_BEGIN`/`OP_END` records.
pub mod op {
    pub const MOUNT: u64 = 1;
    pub const UNMOUNT: u64 = 2;
    pub const CREATE: u64 = 3;
    pub const MKDIR: u64 = 4;
    pub const WRITE: u64 = 5;
    pub const TRUNCATE: u64 = 6;
    pub const SETATTR: u64 = 7;
    pub const LINK: u64 = 8;
    pub const UNLINK: u64 = 9;
    pub const RMDIR: u64 = 10;
    pub const RENAME: u64 = 11;
    pub const SYMLINK: u64 = 12;
    pub const MKNOD: u64 = 13;
    pub const FALLOCATE: u64 = 14;
    pub const FSYNC: u64 = 15;
    pub const FAULT: u64 = 16;
    /// setxattr, removexattr, set_acl: one `XATTR` entry.
    pub const XATTR: u64 = 17;
    /// fileattr_set (chattr, project id): one `FLAGS` entry.
    pub const FILEATTR: u64 = 18;
}

/// Cache-line size of the model.
pub const CACHE_LINE: u64 = 64;

ondisk! {
    /// Start of a trace.
    pub struct TraceHeader {
        pub magic: u32,
        pub version: u32,
        /// Bytes of records that follow (the buffer may be larger).
        pub bytes: u64,
        /// Records dropped because the buffer was full (the trace is then
        /// unusable for checking).
        pub dropped: u64,
        pub _reserved: u64,
    }
}

ondisk! {
    /// One record; a payload of `len` bytes (padded to 8) follows stores.
    pub struct TraceRecord {
        pub kind: u8,
        pub _pad: [u8; 3],
        pub len: u32,
        pub pos: u64,
    }
}

const _: () = assert!(TraceHeader::SIZE == 32 && TraceRecord::SIZE == 16);

/// Bytes a record with `kind` and `len` occupies, payload included.
pub fn record_size(kind: u8, len: u32) -> usize {
    let payload = if has_payload(kind) { (len as usize + 7) & !7 } else { 0 };
    TraceRecord::SIZE + payload
}

/// A decoded record with its payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rec<'a> {
    pub kind: u8,
    pub pos: u64,
    pub len: u32,
    pub data: &'a [u8],
}

/// Iterates the records of a trace body (the bytes after the header).
/// Stops at the first malformed record (reported as `Err(offset)`).
pub fn records(body: &[u8]) -> impl Iterator<Item = Result<Rec<'_>, usize>> + '_ {
    let mut off = 0usize;
    let mut done = false;
    core::iter::from_fn(move || {
        if done || off >= body.len() {
            return None;
        }
        let r = match body.get(off..).and_then(TraceRecord::decode) {
            Some(r) if (kind::STORE..=kind::USER_STORE).contains(&r.kind) => r,
            _ => {
                done = true;
                return Some(Err(off));
            }
        };
        let size = record_size(r.kind, r.len);
        let data = if has_payload(r.kind) {
            match body.get(off + TraceRecord::SIZE..off + TraceRecord::SIZE + r.len as usize) {
                Some(d) => d,
                None => {
                    done = true;
                    return Some(Err(off));
                }
            }
        } else {
            &[]
        };
        off += size;
        Some(Ok(Rec { kind: r.kind, pos: r.pos, len: r.len, data }))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_roundtrip_and_stop_on_garbage() {
        let mut body = std::vec::Vec::new();
        let mut push = |kind: u8, pos: u64, data: &[u8], len: u32| {
            let mut h = [0u8; 16];
            TraceRecord { kind, _pad: [0; 3], len, pos }.encode(&mut h);
            body.extend_from_slice(&h);
            body.extend_from_slice(data);
            body.resize(body.len() + ((8 - data.len() % 8) % 8), 0);
        };
        push(kind::OP_BEGIN, op::CREATE, &[], 1);
        push(kind::STORE, 4096, b"hello", 5);
        push(kind::FLUSH, 4096, &[], 5);
        push(kind::FENCE, 0, &[], 0);
        let got: std::vec::Vec<_> = records(&body).collect::<Result<_, _>>().unwrap();
        assert_eq!(got.len(), 4);
        assert_eq!(got[1].data, b"hello");
        body.extend_from_slice(&[9u8; 16]);
        assert_eq!(records(&body).filter(|r| r.is_err()).count(), 1);
    }
}
