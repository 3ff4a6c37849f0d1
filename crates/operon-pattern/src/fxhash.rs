//! A small, fast, non-cryptographic hasher (the Firefox/rustc "Fx" hash) for
//! the matcher's lookup tables. Keys come from rules, not from events, so
//! hash flooding is not a concern; event values are only looked up.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

pub(crate) type FxHashMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

#[derive(Default, Clone, Copy)]
pub(crate) struct FxHasher {
    hash: u64,
}

impl FxHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word));
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    /// The multiply-rotate rounds leave the low bits depending only on the
    /// low bytes of the key, and hash tables pick buckets by the low bits:
    /// keys differing only in their last bytes ("0001001", "0001002") would
    /// all collide. A final avalanche (splitmix64's) spreads every bit.
    #[inline]
    fn finish(&self) -> u64 {
        let mut h = self.hash;
        h ^= h >> 30;
        h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
        h ^= h >> 27;
        h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
        h ^ (h >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::FxHashMap;

    #[test]
    fn keys_differing_in_last_byte_spread() {
        use std::hash::{BuildHasher, BuildHasherDefault};
        let build = BuildHasherDefault::<super::FxHasher>::default();
        let low_bits: std::collections::HashSet<u64> = (0..64)
            .map(|i| build.hash_one(format!("000100{i:02}")) & 63)
            .collect();
        assert!(
            low_bits.len() > 20,
            "only {} distinct buckets",
            low_bits.len()
        );
        let _unused: FxHashMap<u8, u8> = FxHashMap::default();
    }
}
