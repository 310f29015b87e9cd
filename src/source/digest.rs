//! The input's content hash, computed while the rows are read (no second read): SHA-256 of
//! the bytes as they are on disk (compressed, for gzip), so it equals `sha256sum FILE`.
//! For stdin and pipes it is the hash of the bytes that came through.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// A SHA-256 fed by the reader as bytes arrive; shared with whoever reports it at the end.
#[derive(Clone)]
pub struct InputDigest {
    inner: Arc<Mutex<ring::digest::Context>>,
    ended: Arc<AtomicBool>,
}

impl Default for InputDigest {
    fn default() -> InputDigest {
        InputDigest {
            inner: Arc::new(Mutex::new(ring::digest::Context::new(
                &ring::digest::SHA256,
            ))),
            ended: Arc::new(AtomicBool::new(false)),
        }
    }
}

impl InputDigest {
    /// Adds bytes read from the input.
    pub(crate) fn update(&self, bytes: &[u8]) {
        if let Ok(mut c) = self.inner.lock() {
            c.update(bytes);
        }
    }

    /// Notes that the input's end was reached.
    pub(crate) fn end(&self) {
        self.ended.store(true, Ordering::Relaxed);
    }

    /// Whether the input was read to its end.
    pub fn ended(&self) -> bool {
        self.ended.load(Ordering::Relaxed)
    }

    /// The lowercase hex SHA-256 of the bytes read so far.
    pub fn hex(&self) -> String {
        let digest = match self.inner.lock() {
            Ok(c) => c.clone().finish(),
            Err(p) => p.into_inner().clone().finish(),
        };
        digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_is_sha256_of_the_bytes_fed() {
        let d = InputDigest::default();
        d.update(b"ab");
        d.update(b"c");
        assert_eq!(
            d.hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(!d.ended());
    }
}
