//! The fault dice: seeded, so a run with the same `--seed` sees the same mix.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::sync::Mutex;

/// A shared, seedable random source.
#[derive(Debug)]
pub struct Dice(Mutex<StdRng>);

impl Dice {
    /// Seeded, or from entropy.
    pub fn new(seed: Option<u64>) -> Dice {
        Dice(Mutex::new(match seed {
            Some(s) => StdRng::seed_from_u64(s),
            None => StdRng::from_os_rng(),
        }))
    }

    /// True with probability `p`.
    pub fn roll(&self, p: f64) -> bool {
        p > 0.0
            && self
                .0
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .random::<f64>()
                < p
    }

    /// A number in `0..n`.
    pub fn pick(&self, n: usize) -> usize {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .random_range(0..n.max(1))
    }

    /// A factor in `[1 - j, 1 + j]`.
    pub fn jitter(&self, j: f64) -> f64 {
        1.0 + self
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .random_range(-j..=j)
    }
}
