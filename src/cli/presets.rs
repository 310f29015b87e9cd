//! `cio-import presets`: the built-in mappings for other platforms' exports.

use crate::exit;
use crate::mapping::{Mapping, PRESETS};

/// Lists the presets with their descriptions.
pub(super) fn run() -> u8 {
    for p in PRESETS {
        let d = Mapping::parse(p.text, p.name)
            .ok()
            .and_then(|m| m.description)
            .unwrap_or_default();
        println!("{:<10} {d}", p.name);
    }
    println!("\nuse: cio-import import FILE --preset NAME   (or --preset NAME --print-mapping to edit a copy)");
    exit::SUCCESS
}
