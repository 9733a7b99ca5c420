//! Reading and writing persistence traces (`layout::trace`).
//!
//! [`parse`] turns the bytes the kernel's tracing build leaves in debugfs
//! into a list of records, refusing anything malformed with a message (never
//! a panic). [`TraceWriter`] builds traces: the synthetic workloads of
//! [`crate::synth`] and the tests use it.

use std::fmt;

use layout::trace::{kind, op, records, Rec, TraceHeader, TraceRecord, TRACE_MAGIC, TRACE_VERSION};

/// Why a trace cannot be checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TraceError {
    /// Shorter than a header, wrong magic or version.
    BadHeader(String),
    /// The kernel's buffer overflowed: records are missing.
    Dropped(u64),
    /// A record that does not decode, at this byte offset of the body.
    Malformed { offset: usize },
    /// A record whose range does not lie on the device.
    OutOfRange { record: usize, pos: u64, len: u32 },
}

impl fmt::Display for TraceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TraceError::BadHeader(s) => write!(f, "not a novars trace: {s}"),
            TraceError::Dropped(n) => {
                write!(
                    f,
                    "the trace buffer overflowed ({n} records dropped); enlarge it and trace again"
                )
            }
            TraceError::Malformed { offset } => {
                write!(f, "malformed record at byte {offset} of the trace body")
            }
            TraceError::OutOfRange { record, pos, len } => {
                write!(f, "record {record}: range {pos:#x}+{len} lies outside the device")
            }
        }
    }
}

impl std::error::Error for TraceError {}

/// A parsed trace: its records in order, payloads borrowed from the bytes.
#[derive(Clone, Debug)]
pub struct Trace<'a> {
    pub records: Vec<Rec<'a>>,
}

/// Parses a whole trace file (header and body).
pub fn parse(bytes: &[u8]) -> Result<Trace<'_>, TraceError> {
    let h = TraceHeader::decode(bytes)
        .ok_or_else(|| TraceError::BadHeader("shorter than a header".into()))?;
    if h.magic != TRACE_MAGIC {
        return Err(TraceError::BadHeader(format!("magic {:#010x}", h.magic)));
    }
    if h.version != TRACE_VERSION {
        return Err(TraceError::BadHeader(format!(
            "version {} (this checker reads {TRACE_VERSION})",
            h.version
        )));
    }
    if h.dropped != 0 {
        return Err(TraceError::Dropped(h.dropped));
    }
    let body = bytes.get(TraceHeader::SIZE..).unwrap_or(&[]);
    let n = usize::try_from(h.bytes).unwrap_or(usize::MAX);
    let body = body.get(..n).ok_or_else(|| {
        TraceError::BadHeader(format!(
            "header says {} bytes of records, the file has {}",
            h.bytes,
            body.len()
        ))
    })?;
    let mut out = Vec::new();
    for r in records(body) {
        match r {
            Ok(r) => out.push(r),
            Err(offset) => return Err(TraceError::Malformed { offset }),
        }
    }
    Ok(Trace { records: out })
}

impl Trace<'_> {
    /// Checks that every store and flush lies on a device of `size` bytes.
    pub fn check_ranges(&self, size: u64) -> Result<(), TraceError> {
        for (i, r) in self.records.iter().enumerate() {
            if matches!(r.kind, kind::STORE | kind::NT_STORE | kind::FLUSH | kind::USER_STORE) {
                let end = r.pos.checked_add(r.len as u64);
                if end.is_none_or(|e| e > size) {
                    return Err(TraceError::OutOfRange { record: i, pos: r.pos, len: r.len });
                }
            }
        }
        Ok(())
    }
}

/// Name of an operation code.
pub fn op_name(code: u64) -> &'static str {
    match code {
        op::MOUNT => "mount",
        op::UNMOUNT => "unmount",
        op::CREATE => "create",
        op::MKDIR => "mkdir",
        op::WRITE => "write",
        op::TRUNCATE => "truncate",
        op::SETATTR => "setattr",
        op::LINK => "link",
        op::UNLINK => "unlink",
        op::RMDIR => "rmdir",
        op::RENAME => "rename",
        op::SYMLINK => "symlink",
        op::MKNOD => "mknod",
        op::FALLOCATE => "fallocate",
        op::FSYNC => "fsync",
        op::FAULT => "fault",
        op::XATTR => "xattr",
        op::FILEATTR => "fileattr",
        _ => "op?",
    }
}

/// Name of a record kind.
pub fn kind_name(k: u8) -> &'static str {
    match k {
        kind::STORE => "STORE",
        kind::NT_STORE => "NT_STORE",
        kind::FLUSH => "FLUSH",
        kind::FENCE => "FENCE",
        kind::OP_BEGIN => "OP_BEGIN",
        kind::OP_END => "OP_END",
        kind::USER_STORE => "USER_STORE",
        _ => "?",
    }
}

/// Builds a trace in memory.
#[derive(Clone, Debug, Default)]
pub struct TraceWriter {
    body: Vec<u8>,
    records: usize,
}

impl TraceWriter {
    /// An empty trace.
    pub fn new() -> Self {
        Self::default()
    }

    fn push(&mut self, kind: u8, pos: u64, len: u32, data: &[u8]) {
        let mut h = [0u8; TraceRecord::SIZE];
        TraceRecord { kind, _pad: [0; 3], len, pos }.encode(&mut h);
        self.body.extend_from_slice(&h);
        self.body.extend_from_slice(data);
        self.body.resize(self.body.len() + (8 - data.len() % 8) % 8, 0);
        self.records += 1;
    }

    /// A cached store.
    pub fn store(&mut self, pos: u64, data: &[u8]) {
        self.push(kind::STORE, pos, data.len() as u32, data);
    }

    /// A non-temporal store.
    pub fn nt_store(&mut self, pos: u64, data: &[u8]) {
        self.push(kind::NT_STORE, pos, data.len() as u32, data);
    }

    /// A write-back of every line overlapping `[pos, pos+len)`.
    pub fn flush(&mut self, pos: u64, len: u32) {
        self.push(kind::FLUSH, pos, len, &[]);
    }

    /// A store fence.
    pub fn fence(&mut self) {
        self.push(kind::FENCE, 0, 0, &[]);
    }

    /// A system call `code` (number `nr` in this trace) begins.
    pub fn op_begin(&mut self, code: u64, nr: u32) {
        self.push(kind::OP_BEGIN, code, nr, &[]);
    }

    /// A system call returns.
    pub fn op_end(&mut self, code: u64, nr: u32) {
        self.push(kind::OP_END, code, nr, &[]);
    }

    /// User space reports a store through a `MAP_SYNC` mapping that it
    /// has flushed and fenced.
    pub fn user_store(&mut self, pos: u64, data: &[u8]) {
        self.push(kind::USER_STORE, pos, data.len() as u32, data);
    }

    /// Records written so far.
    pub fn len(&self) -> usize {
        self.records
    }

    /// Whether nothing was written.
    pub fn is_empty(&self) -> bool {
        self.records == 0
    }

    /// The trace file: header and records.
    pub fn finish(&self) -> Vec<u8> {
        let mut out = vec![0u8; TraceHeader::SIZE];
        TraceHeader {
            magic: TRACE_MAGIC,
            version: TRACE_VERSION,
            bytes: self.body.len() as u64,
            dropped: 0,
            _reserved: 0,
        }
        .encode(&mut out);
        out.extend_from_slice(&self.body);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_refusals() {
        let mut w = TraceWriter::new();
        w.op_begin(op::CREATE, 1);
        w.store(4096, b"abc");
        w.flush(4096, 3);
        w.fence();
        w.op_end(op::CREATE, 1);
        let bytes = w.finish();
        let t = parse(&bytes).unwrap();
        assert_eq!(t.records.len(), 5);
        assert_eq!(t.records[1].data, b"abc");
        assert!(t.check_ranges(8192).is_ok());
        assert!(matches!(t.check_ranges(4098), Err(TraceError::OutOfRange { record: 1, .. })));

        let mut bad = bytes.clone();
        bad[0] ^= 1;
        assert!(matches!(parse(&bad), Err(TraceError::BadHeader(_))));
        let mut dropped = bytes.clone();
        dropped[16] = 3;
        assert_eq!(parse(&dropped).unwrap_err(), TraceError::Dropped(3));
        let mut garbage = bytes.clone();
        garbage[TraceHeader::SIZE + 16] = 99; // kind of the second record
        assert_eq!(parse(&garbage).unwrap_err(), TraceError::Malformed { offset: 16 });
        assert!(parse(&bytes[..bytes.len() - 8]).is_err());
    }

    #[test]
    fn hostile_bytes_never_panic() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let base = {
            let mut w = TraceWriter::new();
            w.store(0, &[1; 40]);
            w.nt_store(64, &[2; 8]);
            w.flush(0, 128);
            w.fence();
            w.finish()
        };
        for _ in 0..2000 {
            let mut b = base.clone();
            for _ in 0..4 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let i = (x as usize) % b.len();
                b[i] = (x >> 32) as u8;
            }
            if let Ok(t) = parse(&b) {
                let _ = t.check_ranges(1 << 20);
            }
        }
    }
}
