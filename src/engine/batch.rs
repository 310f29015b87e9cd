//! The batcher: takes the reader's chunks of operations and makes jobs of them, packed by
//! serialized bytes into the destination's batch bodies, or one operation per job when the
//! destination takes them alone. A partial batch goes out after `--flush-ms` without a row.

use super::read::Chunk;
use super::send::{failure, Dispatcher, Job};
use crate::operation::Operation;
use crate::record::Class;
use crate::track::batch::Packer;
use std::time::Duration;
use tokio::sync::mpsc;

/// Packs operations until the next one would not fit, then hands the batch over.
struct Batcher {
    packer: Packer,
    pending: Vec<Operation>,
}

impl Batcher {
    async fn add(&mut self, d: &mut Dispatcher, mut op: Operation) {
        if !self.packer.fits_alone(op.payload.len()) {
            let msg = format!(
                "this person's operation is {} bytes, more than --batch-bytes allows: raise --batch-bytes or shorten attributes",
                op.payload.len()
            );
            let _ = d.out.send(failure(op, Class::Invalid, None, 0, msg)).await;
            return;
        }
        if !self.packer.fits(op.payload.len()) {
            self.flush(d).await;
        }
        self.packer.push(&op.payload);
        // The body holds the operation now: free the row's copy while it waits.
        op.payload = Vec::new();
        self.pending.push(op);
    }

    async fn flush(&mut self, d: &mut Dispatcher) {
        if !self.pending.is_empty() {
            let packed = self.packer.take();
            d.dispatch(Job::Batch(std::mem::take(&mut self.pending), packed))
                .await;
        }
    }
}

/// Turns every chunk into jobs for `d` until the reader is done, then waits for the workers.
/// With a `packer` operations travel in batches; without one, alone.
pub(super) async fn batch_all(
    mut chunks: mpsc::Receiver<Chunk>,
    mut d: Dispatcher,
    packer: Option<Packer>,
    flush_after: Duration,
) {
    match packer {
        None => {
            while let Some(chunk) = chunks.recv().await {
                for op in chunk {
                    d.dispatch(Job::One(op)).await;
                }
            }
        }
        Some(packer) => {
            let mut b = Batcher {
                packer,
                pending: Vec::new(),
            };
            loop {
                let next = match chunks.try_recv() {
                    Ok(c) => Some(c),
                    Err(mpsc::error::TryRecvError::Disconnected) => None,
                    Err(mpsc::error::TryRecvError::Empty) if b.pending.is_empty() => {
                        chunks.recv().await
                    }
                    Err(mpsc::error::TryRecvError::Empty) => {
                        match tokio::time::timeout(flush_after, chunks.recv()).await {
                            Ok(c) => c,
                            Err(_) => {
                                // No row for a while: send what we have.
                                b.flush(&mut d).await;
                                continue;
                            }
                        }
                    }
                };
                let Some(chunk) = next else { break };
                for op in chunk {
                    b.add(&mut d, op).await;
                }
            }
            b.flush(&mut d).await;
        }
    }
    d.finish().await;
}
