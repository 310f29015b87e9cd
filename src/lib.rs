//! cio-import: load people into Customer.io through the Track API from CSV or JSONL,
//! paced to the rate limit, retried, and with every row accounted for.
//!
//! The binary is a thin shell over [`engine::run`]; an embedder builds an
//! [`config::ImportConfig`] (with [`ImportConfig::builder`], which checks every setting),
//! calls it, and maps the [`Summary`] to an exit code with [`exit::code`] (already in
//! `Summary::exit_code`). [`sandbox`] is a local stand-in for the Track API.

pub mod cli;
pub mod config;
pub mod confirm;
pub mod convert;
pub mod duplicates;
pub mod engine;
pub mod event_id;
pub mod exit;
pub mod feed;
pub mod feed_members;
pub mod groups;
pub mod guard;
pub mod inspect;
pub mod json_object;
pub mod ledger;
pub mod mapping;
pub mod mirror;
pub mod operation;
pub mod pace;
pub mod preview;
pub mod record;
pub mod report;
pub mod run_record;
pub mod sandbox;
pub mod secret;
pub mod seen;
pub mod source;
pub mod stop;
pub mod tally;
pub mod timestamp;
pub mod track;
pub mod validate;
pub mod verify;

pub use config::ImportConfig;
pub use engine::run;
pub use report::summary::Summary;
pub use stop::Stop;
