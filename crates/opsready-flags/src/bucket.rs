//! Sticky percentage buckets for rollouts and `percentage` conditions.

/// The number of buckets: a percentage has two decimals of resolution.
pub const BUCKETS: u32 = 10_000;

const C1: u32 = 0xcc9e_2d51;
const C2: u32 = 0x1b87_3593;

/// MurmurHash3, x86 variant, 32-bit output, of `data` with `seed`.
#[must_use]
pub fn murmur3_32(data: &[u8], seed: u32) -> u32 {
    let mut hasher = Murmur3::new(seed);
    hasher.write(data);
    hasher.finish()
}

/// The bucket (`0..BUCKETS`) of `targeting_key` for the flag `flag_key`:
/// MurmurHash3 (x86, 32-bit, seed 0) of `"{flag_key}/{targeting_key}"`,
/// modulo [`BUCKETS`]. Computed without allocating: the key is hashed in
/// pieces, not formatted.
///
/// # Example
///
/// ```
/// use opsready_flags::{BUCKETS, bucket, murmur3_32};
///
/// // A reference value of MurmurHash3 x86 32-bit.
/// assert_eq!(murmur3_32(b"Hello, world!", 0x9747_b28c), 0x2488_4cba);
///
/// // The same user lands in the same bucket of a flag on every evaluation
/// // and every instance.
/// let b = bucket("checkout.new", "user-42");
/// assert_eq!(b, bucket("checkout.new", "user-42"));
/// assert!(b < BUCKETS);
/// ```
///
/// # Gotchas
///
/// - A user is on at `p` percent when `bucket < round(p * 100)`: raising the
///   percentage never turns anyone off, and ramping down then up brings the
///   same people back.
/// - The bucket depends on the flag key, so the first 10% of one flag are
///   not the first 10% of another. Within one flag, every `percentage`
///   condition and the rollout use the same bucket: 10% in a rule and 10% in
///   the rollout are the same people.
/// - The granularity is 0.01%: finer percentages are rounded.
#[must_use]
pub fn bucket(flag_key: &str, targeting_key: &str) -> u32 {
    let mut hasher = Murmur3::new(0);
    hasher.write(flag_key.as_bytes());
    hasher.write(b"/");
    hasher.write(targeting_key.as_bytes());
    hasher.finish() % BUCKETS
}

/// The bucket threshold of a percentage: a key is in when its bucket is
/// below it. Out-of-range and NaN percentages clamp to 0 or 100 so that
/// evaluation never misbehaves on a definition that skipped validation.
pub(crate) fn threshold(percentage: f64) -> u32 {
    if percentage.is_nan() || percentage <= 0.0 {
        0
    } else if percentage >= 100.0 {
        BUCKETS
    } else {
        // In range, so the cast neither truncates nor saturates.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let threshold = (percentage * 100.0).round() as u32;
        threshold.min(BUCKETS)
    }
}

/// An incremental MurmurHash3: the same result as hashing the
/// concatenation of every piece written.
struct Murmur3 {
    hash: u32,
    tail: [u8; 4],
    tail_len: usize,
    len: u64,
}

impl Murmur3 {
    fn new(seed: u32) -> Self {
        Self {
            hash: seed,
            tail: [0; 4],
            tail_len: 0,
            len: 0,
        }
    }

    fn write(&mut self, mut data: &[u8]) {
        self.len += data.len() as u64;
        // Complete a block left over by the previous piece first.
        if self.tail_len > 0 {
            let take = (4 - self.tail_len).min(data.len());
            self.tail[self.tail_len..self.tail_len + take].copy_from_slice(&data[..take]);
            self.tail_len += take;
            data = &data[take..];
            if self.tail_len < 4 {
                return;
            }
            self.block(u32::from_le_bytes(self.tail));
            self.tail_len = 0;
        }
        let mut blocks = data.chunks_exact(4);
        for block in &mut blocks {
            self.block(u32::from_le_bytes([block[0], block[1], block[2], block[3]]));
        }
        let rest = blocks.remainder();
        self.tail[..rest.len()].copy_from_slice(rest);
        self.tail_len = rest.len();
    }

    fn block(&mut self, k: u32) {
        self.hash ^= scramble(k);
        self.hash = self
            .hash
            .rotate_left(13)
            .wrapping_mul(5)
            .wrapping_add(0xe654_6b64);
    }

    fn finish(&self) -> u32 {
        let mut hash = self.hash;
        if self.tail_len > 0 {
            let mut k = 0u32;
            for (i, byte) in self.tail[..self.tail_len].iter().enumerate() {
                k |= u32::from(*byte) << (8 * i);
            }
            hash ^= scramble(k);
        }
        // The algorithm mixes in the length modulo 2^32.
        #[allow(clippy::cast_possible_truncation)]
        let len = self.len as u32;
        hash ^= len;
        fmix32(hash)
    }
}

fn scramble(k: u32) -> u32 {
    k.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2)
}

fn fmix32(mut h: u32) -> u32 {
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^= h >> 16;
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_matches_published_reference_vectors() {
        let vectors: &[(&[u8], u32, u32)] = &[
            (b"", 0, 0),
            (b"", 1, 0x514e_28b7),
            (b"", 0xffff_ffff, 0x81f1_6f39),
            (b"\0\0\0\0", 0, 0x2362_f9de),
            (b"a", 0x9747_b28c, 0x7fa0_9ea6),
            (b"aa", 0x9747_b28c, 0x5d21_1726),
            (b"aaa", 0x9747_b28c, 0x283e_0130),
            (b"aaaa", 0x9747_b28c, 0x5a97_808a),
            (b"abcd", 0x9747_b28c, 0xf047_8627),
            (b"Hello, world!", 0x9747_b28c, 0x2488_4cba),
            (
                b"The quick brown fox jumps over the lazy dog",
                0x9747_b28c,
                0x2fa8_26cd,
            ),
        ];
        for (data, seed, expected) in vectors {
            assert_eq!(
                murmur3_32(data, *seed),
                *expected,
                "murmur3_32({:?}, {seed:#x})",
                String::from_utf8_lossy(data)
            );
        }
    }

    #[test]
    fn hashing_in_pieces_equals_hashing_the_whole() {
        let whole = b"checkout.new-flow/user-1234567";
        for first in 0..whole.len() {
            for second in first..whole.len() {
                let mut hasher = Murmur3::new(0);
                hasher.write(&whole[..first]);
                hasher.write(&whole[first..second]);
                hasher.write(&whole[second..]);
                assert_eq!(
                    hasher.finish(),
                    murmur3_32(whole, 0),
                    "split {first}/{second}"
                );
            }
        }
    }

    #[test]
    fn the_bucket_is_the_hash_of_flag_slash_key_modulo_ten_thousand() {
        let expected = murmur3_32(b"greeting.shout/user-1", 0) % 10_000;
        assert_eq!(bucket("greeting.shout", "user-1"), expected);
    }

    #[test]
    fn percentages_become_thresholds_in_hundredths() {
        assert_eq!(threshold(0.0), 0);
        assert_eq!(threshold(12.34), 1234);
        assert_eq!(threshold(50.0), 5000);
        assert_eq!(threshold(100.0), 10_000);
    }

    #[test]
    fn out_of_range_percentages_clamp_instead_of_misbehaving() {
        assert_eq!(threshold(-5.0), 0);
        assert_eq!(threshold(f64::NAN), 0);
        assert_eq!(threshold(250.0), 10_000);
    }
}
