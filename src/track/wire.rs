//! The seam between the engine and a destination. The engine carries operations and knows
//! no method, path, body framing or status code: it asks a [`Wire`] for the request that
//! carries one operation or a packed batch, hands that request back to be sent, and acts on
//! the [`Verdict`] it gets.
//!
//! # Adding a destination
//! Customer.io's Data Pipelines API (`POST /v1/batch` on `cdp.customer.io`, Basic auth with
//! a write key and an empty password, Segment-style messages) would be one new file beside
//! [`super::track_api`], say `track/pipelines.rs`, holding a `PipelinesApi` that implements
//! [`Wire`]: its own [`TrackClient`] (its host; the write key as the Basic user, an empty
//! password), `packer` with its limits (its body is `{"batch":[...]}` too; another envelope
//! would be another [`Packer`] constructor in `batch.rs`), `single`/`batch` building its
//! requests, and `send` reading its answers into verdicts (it answers 200 and drops an
//! oversized request, so its packer must never build one). Its converter writes Segment
//! messages as the operations' bodies. [`connect`] is the one place that chooses a
//! destination from the settings; the engine does not change.

use super::batch::{Packed, Packer};
use super::client::{ConnectError, Request, TrackClient};
use super::track_api::TrackApi;
use crate::config::ImportConfig;
use crate::operation::Operation;
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// A request on its way: resolves to what its answer (or the lack of one) means.
pub type Sending<'a> = Pin<Box<dyn Future<Output = Verdict> + Send + 'a>>;

/// One destination's wire protocol: how operations become requests, and what its answers
/// mean for the engine. Implementations own every request fact.
pub trait Wire: Send + Sync + std::fmt::Debug {
    /// The destination's name in messages, such as "the Track API".
    fn name(&self) -> &'static str;

    /// A packer for this destination's batch body with at most `max_bytes` bytes and
    /// `max_ops` operations (the destination may lower both), or `None` when every
    /// operation travels alone (then the engine asks [`Wire::single`]).
    fn packer(&self, max_bytes: usize, max_ops: Option<usize>) -> Option<Packer>;

    /// The request that carries `op` alone. It takes the operation's body; the rest of the
    /// operation stays with the engine for its outcome.
    fn single(&self, op: &mut Operation) -> Request;

    /// The request that carries a packed batch.
    fn batch(&self, packed: &Packed) -> Request;

    /// Makes one attempt at `req` and reads the answer. Never panics.
    fn send<'a>(&'a self, req: &'a Request) -> Sending<'a>;
}

/// What an answer means for the operations its request carried: the only thing the engine
/// reads of an answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Acknowledged. In a batch, the operations listed in `rejected` (by their index in the
    /// batch) were refused one by one; every other one was accepted.
    Accepted {
        /// The operations refused individually.
        rejected: BTreeMap<usize, Rejection>,
    },
    /// The destination refused the content; the same request will be refused again.
    Refused {
        /// The status, for the reports.
        status: u16,
        /// The destination's message.
        message: String,
        /// The request carried several operations and the answer may be about one of
        /// them: halving the batch and sending each half isolates it.
        halve: bool,
    },
    /// Nothing more will work (credentials, region, an untrusted certificate): stop the run.
    Fatal {
        /// The status, for the reports (0 without an answer).
        status: u16,
        /// What to do.
        message: String,
    },
    /// The destination asks to slow down: pace down and retry, without spending retries.
    Throttled {
        /// The status, for the reports and messages.
        status: u16,
        /// How long the destination asked to wait, when it said.
        retry_after: Option<Duration>,
        /// What it said.
        message: String,
    },
    /// A fault worth another try (a 5xx, a timeout, a broken connection, an answer that
    /// cannot be read).
    Retry {
        /// The status, when there was an answer.
        status: Option<u16>,
        /// How long the destination asked to wait, when it said.
        retry_after: Option<Duration>,
        /// What happened.
        message: String,
        /// Nothing answers at all (the connection could not be made): when retries run out
        /// on this, every later request would too.
        unreachable: bool,
    },
}

/// One operation of a batch the destination refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    /// The status reported for it (the batch answer's, such as 207).
    pub status: u16,
    /// Why.
    pub message: String,
}

/// Opens the destination the settings name (today always the Track API, through the API
/// `cfg.convert.api` chose). The one place a destination is chosen.
pub fn connect(cfg: &ImportConfig) -> Result<Arc<dyn Wire>, ConnectError> {
    let client = TrackClient::new(
        &cfg.endpoint,
        cfg.credentials.clone(),
        cfg.timeout,
        cfg.concurrency,
        cfg.ca_cert.as_deref(),
    )?;
    Ok(Arc::new(TrackApi::new(cfg.convert.api, client)))
}
