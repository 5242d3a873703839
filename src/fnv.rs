//! FNV-1a (64-bit), one byte at a time: the indexes hash prefixes as a value is walked, and samples hash their
//! seed and key. Not for keys a client could aim at another's (rate limits use SipHash).

#[derive(Clone, Copy)]
pub(crate) struct Fnv(pub u64);

impl Fnv {
    pub const START: Fnv = Fnv(0xcbf2_9ce4_8422_2325);

    pub fn byte(self, b: u8) -> Fnv {
        Fnv((self.0 ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3))
    }

    pub fn bytes(self, bytes: impl Iterator<Item = u8>) -> Fnv {
        bytes.fold(self, Fnv::byte)
    }
}
