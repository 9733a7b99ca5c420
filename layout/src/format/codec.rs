//! Little-endian field codec and the `ondisk!` macro that declares an
//! on-media struct together with its parser and builder.
//!
//! Every on-media struct is `#[repr(C)]` with explicit padding, so its Rust
//! layout is its media layout on a little-endian machine (checked at compile
//! time). Parsing and building go field by field through [`Field`], which
//! never panics and needs no `unsafe`.

/// A fixed-size little-endian value that can appear in an on-media struct.
pub trait Field: Sized + Copy {
    /// Encoded size in bytes.
    const SIZE: usize;
    /// Decodes from `b`; bytes missing from `b` read as zero.
    fn get(b: &[u8]) -> Self;
    /// Encodes into `b`; bytes beyond `b` are dropped.
    fn put(&self, b: &mut [u8]);
}

/// The first `N` bytes of `b` (missing bytes zero). Inlined: every field
/// of every record and entry goes through here, so it must compile to a
/// load, not a call and a byte loop (a profile of the module showed the
/// loops among its top symbols, BENCH.md "Overwrites").
#[inline(always)]
fn copy_in<const N: usize>(b: &[u8]) -> [u8; N] {
    let mut a = [0u8; N];
    let n = b.len().min(N);
    if let (Some(d), Some(s)) = (a.get_mut(..n), b.get(..n)) {
        d.copy_from_slice(s);
    }
    a
}

/// Stores as much of `src` as `b` holds at the start of `b`.
#[inline(always)]
fn copy_out(src: &[u8], b: &mut [u8]) {
    let n = b.len().min(src.len());
    if let (Some(d), Some(s)) = (b.get_mut(..n), src.get(..n)) {
        d.copy_from_slice(s);
    }
}

macro_rules! int_field {
    ($($t:ty),*) => {$(
        impl Field for $t {
            const SIZE: usize = core::mem::size_of::<$t>();
            #[inline(always)]
            fn get(b: &[u8]) -> Self {
                <$t>::from_le_bytes(copy_in(b))
            }
            #[inline(always)]
            fn put(&self, b: &mut [u8]) {
                copy_out(&self.to_le_bytes(), b)
            }
        }
    )*};
}
int_field!(u8, u16, u32, u64, i64);

impl<const N: usize> Field for [u8; N] {
    const SIZE: usize = N;
    #[inline(always)]
    fn get(b: &[u8]) -> Self {
        copy_in(b)
    }
    #[inline(always)]
    fn put(&self, b: &mut [u8]) {
        copy_out(self, b)
    }
}

/// [`copy_in`] for the `ondisk!` macro.
#[inline(always)]
pub fn copy_in_pub<const N: usize>(b: &[u8]) -> [u8; N] {
    copy_in(b)
}

/// [`copy_out`] for the `ondisk!` macro.
#[inline(always)]
pub fn copy_out_pub(src: &[u8], b: &mut [u8]) {
    copy_out(src, b)
}

/// Reads a little-endian `u64` at `off`, or `None` if out of range.
pub fn read_u64(b: &[u8], off: usize) -> Option<u64> {
    let end = off.checked_add(8)?;
    b.get(off..end).map(u64::get)
}

/// Reads a little-endian `u32` at `off`, or `None` if out of range.
pub fn read_u32(b: &[u8], off: usize) -> Option<u32> {
    let end = off.checked_add(4)?;
    b.get(off..end).map(u32::get)
}

/// Declares an on-media struct: `#[repr(C)]`, `Copy`, with `SIZE`,
/// `decode`, `encode`, `zeroed` and a compile-time check that the Rust
/// layout has no hidden padding.
macro_rules! ondisk {
    ($(#[$m:meta])* pub struct $name:ident { $( $(#[$fm:meta])* pub $f:ident : $t:ty ),* $(,)? }) => {
        $(#[$m])*
        #[repr(C)]
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        #[cfg_attr(feature = "user", derive(
            zerocopy::FromBytes, zerocopy::IntoBytes,
            zerocopy::KnownLayout, zerocopy::Immutable))]
        pub struct $name { $( $(#[$fm])* pub $f: $t ),* }

        impl $name {
            /// Size on the media in bytes.
            pub const SIZE: usize = 0 $( + <$t as super::codec::Field>::SIZE )*;

            /// Parses the struct from the start of `b`; `None` if `b` is short.
            #[allow(unused_assignments)]
            #[inline]
            pub fn decode(b: &[u8]) -> Option<Self> {
                let b = b.get(..Self::SIZE)?;
                let mut off = 0usize;
                Some(Self { $( $f: {
                    let sz = <$t as super::codec::Field>::SIZE;
                    let v = <$t as super::codec::Field>::get(b.get(off..off + sz).unwrap_or(&[]));
                    off += sz;
                    v
                } ),* })
            }

            /// Writes the struct to the start of `b`; `false` if `b` is short.
            #[allow(unused_assignments)]
            #[inline]
            pub fn encode(&self, b: &mut [u8]) -> bool {
                let Some(b) = b.get_mut(..Self::SIZE) else { return false };
                let mut off = 0usize;
                $(
                    let sz = <$t as super::codec::Field>::SIZE;
                    if let Some(d) = b.get_mut(off..off + sz) {
                        super::codec::Field::put(&self.$f, d);
                    }
                    off += sz;
                )*
                true
            }

            /// The all-zero value.
            pub fn zeroed() -> Self {
                let z = [0u8; Self::SIZE];
                // All fields are integers or byte arrays: any bytes decode.
                match Self::decode(&z) { Some(v) => v, None => unreachable!() }
            }
        }

        impl super::codec::Field for $name {
            const SIZE: usize = $name::SIZE;
            fn get(b: &[u8]) -> Self {
                let z: [u8; $name::SIZE] = super::codec::copy_in_pub(b);
                match Self::decode(&z) { Some(v) => v, None => unreachable!() }
            }
            fn put(&self, b: &mut [u8]) {
                let mut z = [0u8; $name::SIZE];
                self.encode(&mut z);
                super::codec::copy_out_pub(&z, b);
            }
        }

        const _: () = assert!(core::mem::size_of::<$name>() == $name::SIZE);
    };
}
