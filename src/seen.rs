//! People already sent in this run, remembered in fixed memory: a Bloom filter.
//!
//! With `--state`, a row whose hash matches the ledger is skipped, unless an earlier row of
//! the same person was sent in this run (then the ledger's hash may be about to change, and
//! the later row must still go, so that the file's last row wins). An exact set of every
//! person sent grows with the file (10 million people would take hundreds of MiB); this
//! filter takes [`SeenFilter::BYTES`] whatever the file. It never forgets a person it was
//! told of; it may wrongly claim one (a false positive), which only costs a request: that
//! row is sent instead of skipped. After 10 million people about 0.8% of lookups are false
//! positives; after a million, about one in twenty-five million.

/// A fixed-size Bloom filter over 128-bit person keys.
pub struct SeenFilter {
    bits: Vec<u64>,
}

/// Bit positions probed per key.
const PROBES: u64 = 6;

impl Default for SeenFilter {
    fn default() -> Self {
        Self::new()
    }
}

impl SeenFilter {
    /// The filter's size: 12 MiB (about 100 million bits). Pages are only touched as keys
    /// arrive.
    pub const BYTES: usize = 12 << 20;

    /// An empty filter.
    pub fn new() -> SeenFilter {
        SeenFilter {
            bits: vec![0; Self::BYTES / 8],
        }
    }

    /// Remembers `key`.
    pub fn insert(&mut self, key: u128) {
        for (w, b) in positions(self.bits.len(), key) {
            self.bits[w] |= b;
        }
    }

    /// Whether `key` may have been inserted (never false for a key that was).
    pub fn may_contain(&self, key: u128) -> bool {
        positions(self.bits.len(), key).all(|(w, b)| self.bits[w] & b != 0)
    }
}

/// The probed (word, bit mask) pairs of `key` in a filter of `words` 64-bit words: double
/// hashing over the key's two halves, each probe mapped onto the bits by a multiply-shift.
fn positions(words: usize, key: u128) -> impl Iterator<Item = (usize, u64)> {
    let bits = words as u128 * 64;
    let (h1, h2) = (key as u64, ((key >> 64) as u64) | 1);
    (0..PROBES).map(move |i| {
        let h = h1.wrapping_add(i.wrapping_mul(h2));
        let bit = ((h as u128 * bits) >> 64) as u64;
        ((bit / 64) as usize, 1u64 << (bit % 64))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: u64) -> u128 {
        xxhash_rust::xxh3::xxh3_128(&i.to_le_bytes())
    }

    #[test]
    fn never_forgets_and_rarely_invents() {
        let mut f = SeenFilter::new();
        for i in 0..200_000 {
            f.insert(key(i));
        }
        assert!((0..200_000).all(|i| f.may_contain(key(i))));
        let false_positives = (1_000_000..1_200_000)
            .filter(|i| f.may_contain(key(*i)))
            .count();
        assert_eq!(
            false_positives, 0,
            "at 200k people the filter is nearly exact"
        );
    }
}
