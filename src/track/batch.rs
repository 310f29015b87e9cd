//! The v2 batch framing: packing operations into `{"batch":[...]}` bodies by bytes, halving a
//! body, and reading a 207's per-operation errors.

use crate::validate::MAX_BATCH_BYTES;
use bytes::Bytes;
use std::collections::BTreeMap;
use std::ops::Range;

/// The fixed bytes around the operations: `{"batch":[` and `]}`.
pub const ENVELOPE_BYTES: usize = br#"{"batch":["#.len() + b"]}".len();

/// A finished batch body and where each operation sits in it.
#[derive(Clone, Debug)]
pub struct Packed {
    /// `{"batch":[op,op,...]}`
    pub body: Bytes,
    /// Byte range of each operation inside `body`, in order.
    pub spans: Vec<Range<usize>>,
}

impl Packed {
    /// How many operations it carries.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// Whether it carries none.
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// The operation at `i`.
    pub fn op(&self, i: usize) -> &[u8] {
        &self.body[self.spans[i].clone()]
    }

    /// Two bodies: the operations before `mid` and from `mid` on (for bisecting).
    pub fn halves(&self, mid: usize) -> (Packed, Packed) {
        let left = body_of((0..mid).map(|i| self.op(i)));
        let right = body_of((mid..self.spans.len()).map(|i| self.op(i)));
        (left, right)
    }
}

/// Packs serialized operations into one body without ever passing the byte or count cap.
#[derive(Debug)]
pub struct Packer {
    max_bytes: usize,
    max_ops: usize,
    body: Vec<u8>,
    spans: Vec<Range<usize>>,
}

impl Packer {
    /// A packer for bodies of at most `max_bytes` (capped at 500,000) and `max_ops` operations.
    pub fn new(max_bytes: usize, max_ops: Option<usize>) -> Packer {
        let max_bytes = max_bytes.min(MAX_BATCH_BYTES);
        let mut body = Vec::with_capacity(max_bytes.min(1 << 20));
        body.extend_from_slice(br#"{"batch":["#);
        Packer {
            max_bytes,
            max_ops: max_ops.unwrap_or(usize::MAX).max(1),
            body,
            spans: Vec::new(),
        }
    }

    /// Bytes the body would have with `op_len` more bytes of operation.
    fn size_with(&self, op_len: usize) -> usize {
        self.body.len() + usize::from(!self.spans.is_empty()) + op_len + 2
    }

    /// Whether an operation of `op_len` bytes fits in the current body.
    pub fn fits(&self, op_len: usize) -> bool {
        self.spans.len() < self.max_ops && self.size_with(op_len) <= self.max_bytes
    }

    /// Whether an operation of `op_len` bytes fits in an empty body at all.
    pub fn fits_alone(&self, op_len: usize) -> bool {
        ENVELOPE_BYTES + op_len <= self.max_bytes
    }

    /// Adds an operation; the caller checked [`Packer::fits`].
    pub fn push(&mut self, op: &[u8]) {
        debug_assert!(self.fits(op.len()));
        if !self.spans.is_empty() {
            self.body.push(b',');
        }
        let start = self.body.len();
        self.body.extend_from_slice(op);
        self.spans.push(start..self.body.len());
    }

    /// Whether nothing is packed.
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// The finished body; the packer starts over empty.
    pub fn take(&mut self) -> Packed {
        let fresh = Vec::with_capacity(self.max_bytes.min(1 << 20));
        let mut body = std::mem::replace(&mut self.body, fresh);
        body.extend_from_slice(b"]}");
        self.body.extend_from_slice(br#"{"batch":["#);
        Packed {
            body: Bytes::from(body),
            spans: std::mem::take(&mut self.spans),
        }
    }
}

/// Builds a body from a list of operations (for the halves of a bisected batch).
pub fn body_of<'a>(ops: impl Iterator<Item = &'a [u8]>) -> Packed {
    let mut body = Vec::new();
    let mut spans = Vec::new();
    body.extend_from_slice(br#"{"batch":["#);
    for (i, op) in ops.enumerate() {
        if i > 0 {
            body.push(b',');
        }
        let start = body.len();
        body.extend_from_slice(op);
        spans.push(start..body.len());
    }
    body.extend_from_slice(b"]}");
    Packed {
        body: Bytes::from(body),
        spans,
    }
}

/// Why the per-operation errors of a 207 cannot be read: the outcome of every operation in
/// the batch is unknown. Each reads as the end of "the API answered 207 but ...".
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UnreadableErrors {
    /// The body is not JSON (shown: its first 80 characters).
    #[error("its body is not readable JSON ({len} bytes: {shown:?})")]
    NotJson {
        /// The body's length in bytes.
        len: usize,
        /// Its beginning.
        shown: String,
    },
    /// No `errors` list.
    #[error("its body lists no errors")]
    NoList,
    /// An empty `errors` list.
    #[error("its errors list is empty")]
    EmptyList,
    /// An entry names an operation the batch does not have.
    #[error("it names batch_index {index} in a batch of {ops}")]
    IndexOutside {
        /// The index named.
        index: u64,
        /// Operations in the batch.
        ops: usize,
    },
    /// An entry names no operation.
    #[error("an error entry has no batch_index: {entry}")]
    NoIndex {
        /// The entry as JSON text.
        entry: String,
    },
}

/// The per-operation errors of a batch answer with `ops` operations: index -> message.
///
/// A 207 says that some operations were refused and all others accepted, so its body must
/// say which: a JSON `errors` list whose every entry names a `batch_index` inside the batch.
/// Anything else (a body cut off, not JSON, no list, an index outside the batch) leaves the
/// outcome of every operation unknown, and is an `Err` describing what was wrong: the caller
/// must not count any of them as sent. A 200 means all were accepted; its body is read
/// defensively (a readable `errors` list is honoured, an unreadable body ignored).
pub fn read_errors(
    status: u16,
    body: &[u8],
    ops: usize,
) -> Result<BTreeMap<usize, String>, UnreadableErrors> {
    let mut out = BTreeMap::new();
    let parsed = serde_json::from_slice::<serde_json::Value>(body);
    let list = match (&parsed, status) {
        (Ok(v), _) => v.get("errors").and_then(|e| e.as_array()),
        (Err(_), 207) => {
            let shown: String = String::from_utf8_lossy(body).chars().take(80).collect();
            return Err(UnreadableErrors::NotJson {
                len: body.len(),
                shown,
            });
        }
        (Err(_), _) => None,
    };
    let Some(list) = list else {
        return if status == 207 {
            Err(UnreadableErrors::NoList)
        } else {
            Ok(out)
        };
    };
    if status == 207 && list.is_empty() {
        return Err(UnreadableErrors::EmptyList);
    }
    for e in list {
        let i = e.get("batch_index").and_then(|i| i.as_u64());
        match i {
            Some(i) if (i as usize) < ops => {
                let msg = super::error::v2_error_text(e);
                out.entry(i as usize)
                    .and_modify(|m: &mut String| {
                        m.push_str("; ");
                        m.push_str(&msg)
                    })
                    .or_insert(msg);
            }
            Some(index) => return Err(UnreadableErrors::IndexOutside { index, ops }),
            None => {
                return Err(UnreadableErrors::NoIndex {
                    entry: e.to_string(),
                })
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn reads_207_errors_and_ignores_the_rest() {
        let body = br#"{"errors":[{"batch_index":2,"reason":"invalid","field":"identifiers","message":"bad"},{"batch_index":0,"reason":"x","message":"y"}]}"#;
        let e = read_errors(207, body, 3).unwrap();
        assert_eq!(e.len(), 2);
        assert_eq!(e[&2], "invalid: bad (field 'identifiers')");
        assert!(read_errors(200, b"{}", 3).unwrap().is_empty());
        assert!(read_errors(200, b"", 3).unwrap().is_empty());
    }

    #[test]
    fn an_unreadable_207_is_an_unknown_outcome() {
        for body in [
            &b""[..],
            b"{}",
            b"<html>",
            br#"{"errors":[{"batch_i"#,
            br#"{"errors":[]}"#,
            br#"{"errors":[{"batch_index":3}]}"#,
            br#"{"errors":[{"reason":"x"}]}"#,
        ] {
            assert!(
                read_errors(207, body, 3).is_err(),
                "{:?}",
                String::from_utf8_lossy(body)
            );
        }
        assert!(read_errors(207, br#"{"errors":[{"batch_index":2}]}"#, 3).is_ok());
    }

    proptest! {
        /// Whatever the operation sizes, no body exceeds the byte cap or the count cap,
        /// and every operation that fits alone is packed exactly once, in order.
        #[test]
        fn packing_never_exceeds_limits(
            attrs in proptest::collection::vec(("[a-z]{1,10}", "\\PC{0,300}"), 1..200),
            max_bytes in 200usize..5_000,
            cap in proptest::option::of(1usize..50),
        ) {
            let ops: Vec<Vec<u8>> = attrs.iter().enumerate().map(|(i, (k, v))| {
                serde_json::to_vec(&serde_json::json!({"type":"person","identifiers":{"id":i.to_string()},"action":"identify","attributes":{k: v}})).unwrap()
            }).collect();
            let mut p = Packer::new(max_bytes, cap);
            let mut bodies = Vec::new();
            let mut packed = Vec::new();
            for op in &ops {
                if !p.fits_alone(op.len()) { continue; }
                if !p.fits(op.len()) { bodies.push(p.take()); }
                p.push(op);
                packed.push(op.clone());
            }
            if !p.is_empty() { bodies.push(p.take()); }
            let mut seen = Vec::new();
            for packed in &bodies {
                for i in 0..packed.spans.len() {
                    prop_assert!(serde_json::from_slice::<serde_json::Value>(packed.op(i)).is_ok());
                }
                let b = &packed.body;
                prop_assert!(b.len() <= max_bytes, "body {} > {}", b.len(), max_bytes);
                let v: serde_json::Value = serde_json::from_slice(b).unwrap();
                let list = v["batch"].as_array().unwrap();
                if let Some(c) = cap { prop_assert!(list.len() <= c); }
                for op in list { seen.push(serde_json::to_vec(op).unwrap()); }
            }
            prop_assert_eq!(seen, packed);
        }
    }
}
