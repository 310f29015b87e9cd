//! Writes N synthetic customers (about 220 bytes of CSV each) to stdout, as CSV or JSONL, for
//! the benchmarks: `cargo run --release --example gen_customers -- 1000000 csv > big.csv`.
//! A broken pipe (the importer stopped reading) ends it quietly.

#[path = "../benches/support/synthetic.rs"]
mod synthetic;

use std::io::{BufWriter, Write};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: u64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(1000);
    let jsonl = args.get(2).is_some_and(|f| f == "jsonl");
    let out = std::io::stdout();
    let mut w = BufWriter::with_capacity(1 << 20, out.lock());
    let chunk = 10_000;
    let mut from = 0;
    while from < n {
        let k = chunk.min(n - from);
        if synthetic::write_customers(&mut w, from, k, jsonl).is_err() {
            return;
        }
        from += k;
    }
    let _ = w.flush();
}
