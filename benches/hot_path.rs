//! Hot path: read + convert + validate + serialize, for CSV and JSONL, without any network.
//! `cargo bench --bench hot_path`; rows/s and MB/s go in the README.

use cio_import::convert::{ConvertOptions, Converter};
use cio_import::record::IdKind;
use cio_import::source::{Format, Item, Opened, Rows};
use cio_import::track::Api;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::io::Cursor;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

#[path = "support/synthetic.rs"]
mod synthetic;

const ROWS: u64 = 50_000;

fn generate(format: &str) -> Vec<u8> {
    let mut out = Vec::new();
    synthetic::write_customers(&mut out, 0, ROWS, format == "jsonl").expect("in memory");
    out
}

/// Reads every row and turns it into a ready-to-send payload; returns the payload bytes.
fn pipeline(data: &[u8], format: Format, api: Api) -> usize {
    let opened = Opened {
        reader: Box::new(Cursor::new(data.to_vec())),
        total_bytes: Some(data.len() as u64),
        bytes_read: Arc::new(AtomicU64::new(0)),
        digest: Default::default(),
    };
    let rows = Rows::new(opened, format, b',', "bench").expect("header");
    let opts = ConvertOptions::new(IdKind::Id, "id", api);
    let converter =
        Converter::new(opts, rows.csv_header().map(|h| h.names.as_slice())).expect("no mapping");
    let mut bytes = 0;
    for item in rows {
        if let Ok(Item::Row { pos, raw }) = item {
            if let Ok(r) = converter.convert(pos, raw) {
                bytes += r.payload.len();
            }
        }
    }
    bytes
}

fn bench(c: &mut Criterion) {
    for (name, format) in [("csv", Format::Csv), ("jsonl", Format::Jsonl)] {
        let data = generate(name);
        for (unit, throughput) in [
            ("rows", Throughput::Elements(ROWS)),
            ("bytes", Throughput::Bytes(data.len() as u64)),
        ] {
            let mut g = c.benchmark_group(format!("hot_path/{name}/{unit}"));
            g.throughput(throughput);
            g.sample_size(10);
            for (api_name, api) in [("batch", Api::Batch), ("v1", Api::V1)] {
                g.bench_function(api_name, |b| b.iter(|| pipeline(&data, format, api)));
            }
            g.finish();
        }
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
