//! Synthetic customers for the benchmarks: about 220 bytes of CSV (360 of JSONL) per row,
//! deterministic, shared by `benches/hot_path.rs` and `examples/gen_customers.rs`.

use std::io::Write;

const FIRST: [&str; 8] = [
    "Ana", "Björn", "Chloé", "Dmitri", "Fatima", "Grace", "Hiroshi", "Zoë",
];
const LAST: [&str; 6] = ["O'Brien", "Müller", "García", "Nguyen", "Kowalski", "Silva"];
const PLANS: [&str; 4] = ["free", "starter", "pro", "enterprise"];
const CITIES: [&str; 5] = ["Lisbon", "São Paulo", "Zürich", "New York", "Tokyo"];

/// Writes `n` customers starting at number `from`, with a CSV header when `from == 0`.
pub fn write_customers(w: &mut impl Write, from: u64, n: u64, jsonl: bool) -> std::io::Result<()> {
    if !jsonl && from == 0 {
        writeln!(w, "id,email,first_name,last_name,plan,city,zip,lifetime_value,created_at,company,title,source")?;
    }
    for i in from..from + n {
        let mut x: u64 = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let f = FIRST[(x % 8) as usize];
        let l = LAST[((x >> 8) % 6) as usize];
        let plan = PLANS[((x >> 16) % 4) as usize];
        let city = CITIES[((x >> 24) % 5) as usize];
        let zip = (x >> 32) % 100_000;
        let ltv = (x >> 40) % 100_000;
        let created = 1_500_000_000 + (x >> 36) % 200_000_000;
        let company = (x >> 20) % 10_000;
        let title = "Senior Vice President of Customer Engineering";
        let source = "imported-from-legacy-crm-system-2019";
        if jsonl {
            writeln!(
                w,
                r#"{{"id":"user-{i:010}","email":"customer.{i}+promo@example-mail.com","first_name":"{f}","last_name":"{l}","plan":"{plan}","city":"{city}","zip":"{zip:05}","lifetime_value":{}.{:02},"created_at":{created},"company":"Company number {company} Holdings Ltd","title":"{title}","source":"{source}"}}"#,
                ltv / 100,
                ltv % 100
            )?;
        } else {
            writeln!(
                w,
                "user-{i:010},customer.{i}+promo@example-mail.com,{f},{l},{plan},{city},{zip:05},{}.{:02},{created},Company number {company} Holdings Ltd,{title},{source}",
                ltv / 100,
                ltv % 100
            )?;
        }
    }
    Ok(())
}
