//! CRC-32 (IEEE 802.3, reflected, as computed by the `crc32fast` crate and
//! the kernel's `crc32_le(~0, ..) ^ ~0`). Tied to `crc32fast` by tests.

const fn make_table() -> [[u32; 256]; 8] {
    let mut t = [[0u32; 256]; 8];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
            k += 1;
        }
        t[0][i] = c;
        i += 1;
    }
    let mut s = 1;
    while s < 8 {
        let mut i = 0;
        while i < 256 {
            let prev = t[s - 1][i];
            t[s][i] = (prev >> 8) ^ t[0][(prev & 0xff) as usize];
            i += 1;
        }
        s += 1;
    }
    t
}

static TABLE: [[u32; 256]; 8] = make_table();

/// Incremental CRC-32.
#[derive(Clone, Copy, Debug)]
pub struct Crc32 {
    state: u32,
}

impl Default for Crc32 {
    fn default() -> Self {
        Self::new()
    }
}

impl Crc32 {
    /// A fresh hasher.
    pub const fn new() -> Self {
        Self { state: !0 }
    }

    /// Feeds `data` (slice-by-8).
    pub fn update(&mut self, data: &[u8]) {
        let mut c = self.state;
        let mut chunks = data.chunks_exact(8);
        for ch in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(ch);
            let lo = u32::from_le_bytes([w[0], w[1], w[2], w[3]]) ^ c;
            let hi = u32::from_le_bytes([w[4], w[5], w[6], w[7]]);
            c = TABLE[7][(lo & 0xff) as usize]
                ^ TABLE[6][((lo >> 8) & 0xff) as usize]
                ^ TABLE[5][((lo >> 16) & 0xff) as usize]
                ^ TABLE[4][(lo >> 24) as usize]
                ^ TABLE[3][(hi & 0xff) as usize]
                ^ TABLE[2][((hi >> 8) & 0xff) as usize]
                ^ TABLE[1][((hi >> 16) & 0xff) as usize]
                ^ TABLE[0][(hi >> 24) as usize];
        }
        for &b in chunks.remainder() {
            c = TABLE[0][((c ^ b as u32) & 0xff) as usize] ^ (c >> 8);
        }
        self.state = c;
    }

    /// Feeds `n` zero bytes (used for checksum fields, which count as zero).
    pub fn update_zeros(&mut self, n: usize) {
        let z = [0u8; 8];
        let mut left = n;
        while left > 0 {
            let k = if left < 8 { left } else { 8 };
            self.update(&z[..k]);
            left -= k;
        }
    }

    /// The checksum of everything fed so far.
    pub fn finish(&self) -> u32 {
        !self.state
    }
}

/// CRC-32 of `data`.
pub fn crc32(data: &[u8]) -> u32 {
    let mut h = Crc32::new();
    h.update(data);
    h.finish()
}

/// CRC-32 of `data` with the 4 bytes at `csum_off` taken as zero: the rule
/// for every checksummed on-media object (its own checksum field is zero
/// while it is computed). Out-of-range `csum_off` checksums `data` as is.
pub fn crc32_skip(data: &[u8], csum_off: usize) -> u32 {
    let mut h = Crc32::new();
    match (data.get(..csum_off), csum_off.checked_add(4).and_then(|e| data.get(e..))) {
        (Some(a), Some(b)) => {
            h.update(a);
            h.update_zeros(4);
            h.update(b);
        }
        _ => h.update(data),
    }
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_crc32fast_on_vectors() {
        let vectors: [&[u8]; 5] = [
            b"",
            b"a",
            b"123456789",
            b"The quick brown fox jumps over the lazy dog",
            &[0xffu8; 4096],
        ];
        for v in vectors {
            assert_eq!(crc32(v), crc32fast::hash(v), "vector {:?}", &v[..v.len().min(16)]);
        }
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn matches_crc32fast_on_every_length_and_split() {
        let data: std::vec::Vec<u8> =
            (0..300u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
        for len in 0..data.len() {
            let want = crc32fast::hash(&data[..len]);
            assert_eq!(crc32(&data[..len]), want);
            let mut h = Crc32::new();
            let (a, b) = data[..len].split_at(len / 3);
            h.update(a);
            h.update(b);
            assert_eq!(h.finish(), want);
        }
    }

    #[test]
    fn skip_treats_field_as_zero() {
        let mut b = [7u8; 64];
        b[8..12].copy_from_slice(&[1, 2, 3, 4]);
        let mut z = b;
        z[8..12].fill(0);
        assert_eq!(crc32_skip(&b, 8), crc32(&z));
    }
}
