//! The checks of a CSV header against the conversion, made before any row is read: the
//! identifier column is there (else the closest names: "did you mean"), and the columns that
//! become attributes fit the Track API's limit. (Empty and duplicate names stop the run
//! earlier, when the header is read: [`crate::source::CsvRows`].)

use crate::validate::MAX_ATTRIBUTES;

/// The most characters of a column name a message shows: a header read in the wrong
/// encoding (or a file that is not CSV) can be one name of megabytes of customer data.
pub const NAME_SHOWN: usize = 60;

/// `name` as a message shows it: at most [`NAME_SHOWN`] characters, then `…`.
pub fn shown_name(name: &str) -> String {
    match name.char_indices().nth(NAME_SHOWN) {
        Some((at, _)) => format!("{}…", &name[..at]),
        None => name.to_string(),
    }
}

/// Delimiters a column name may hold when the file was read with another one.
const DELIMITERS: [char; 4] = [';', '\t', '|', ','];

/// The message for a header without the identifier column `id_column`: the closest names,
/// a delimiter the header seems to be written with, and the options that choose a column.
pub(super) fn missing_identifier(id_column: &str, names: &[&str], mapping: bool) -> String {
    let mut hints = Vec::new();
    // A name holding a delimiter is two columns read as one: suggesting it would send the
    // wrong cell as the identifier (`50;Müller` for `id;Name`), so the delimiter is suggested.
    let split = |n: &&str| n.contains(DELIMITERS);
    let candidates: Vec<&str> = names.iter().copied().filter(|n| !split(n)).collect();
    let close = closest(id_column, &candidates);
    if !close.is_empty() {
        let quoted: Vec<String> = close
            .iter()
            .map(|n| format!("'{}'", shown_name(n)))
            .collect();
        hints.push(format!(
            "did you mean {}? (--id-column {})",
            quoted.join(" or "),
            shell_word(close[0])
        ));
    }
    let holder = names.iter().find(|n| split(n));
    if let Some(d) = holder.and_then(|n| DELIMITERS.into_iter().find(|d| n.contains(*d))) {
        let word = if d == '\t' {
            "tab".to_string()
        } else {
            d.to_string()
        };
        let what = if names.len() == 1 {
            format!("the header is one column holding '{word}'")
        } else {
            format!(
                "the column '{}' holds '{word}'",
                shown_name(holder.copied().unwrap_or_default())
            )
        };
        hints.push(format!(
            "{what}: the file may be separated by '{word}' (pass --delimiter '{word}')"
        ));
    }
    let shown: Vec<String> = names.iter().take(20).map(|n| shown_name(n)).collect();
    let more = names.len().saturating_sub(shown.len());
    format!(
        "no column becomes the identifier '{id_column}' (columns: {}{}): {}choose one with --id-column, \
or --identify-by email{}",
        shown.join(", "),
        if more > 0 { format!(", and {more} more") } else { String::new() },
        hints.iter().map(|h| format!("{h}; or ")).collect::<String>(),
        if mapping { ", or rename a column to it in the mapping" } else { "" }
    )
}

/// The warning for a header with more attribute columns than a person may have, when empty
/// cells are left out (`--empty ignore`): rows that fill at most the limit are fine, the others
/// fail one by one.
pub(super) fn wide_header(attribute_columns: usize, constants: usize) -> Option<String> {
    let n = attribute_columns + constants;
    (n > MAX_ATTRIBUTES).then(|| {
        format!(
            "the header has {n} columns that become attributes (constants included), more than the \
{MAX_ATTRIBUTES} the Track API takes per person: empty cells are not sent, so a row that fills at \
most {MAX_ATTRIBUTES} of them goes through and a row that fills more fails alone; drop columns in \
a mapping ([columns.NAME] drop = true) to be sure"
        )
    })
}

/// The message for a header with more attribute columns than a person may have, if it has:
/// fatal under `--empty clear`, where every row sends every column.
pub(super) fn too_many_attributes(attribute_columns: usize, constants: usize) -> Option<String> {
    let n = attribute_columns + constants;
    (n > MAX_ATTRIBUTES).then(|| {
        format!(
            "the header has {attribute_columns} columns that become attributes{}, and the Track API \
takes at most {MAX_ATTRIBUTES} per person, so every row would fail under --empty clear; drop {} of them in a mapping \
([columns.NAME] drop = true, or list the ones to keep and pass --drop-unmapped)",
            if constants > 0 {
                format!(" (and {constants} constants: {n} in all)")
            } else {
                String::new()
            },
            n - MAX_ATTRIBUTES
        )
    })
}

/// A column name as a shell word: quoted when it holds anything but letters, digits, `_-.`.
fn shell_word(name: &str) -> String {
    if !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
    {
        name.to_string()
    } else {
        format!("'{}'", name.replace('\'', "'\\''"))
    }
}

/// The names nearest to `wanted` (case, spaces and punctuation aside; then by edit distance),
/// at most three, closest first.
fn closest<'a>(wanted: &str, names: &[&'a str]) -> Vec<&'a str> {
    let norm = |s: &str| -> String {
        s.chars()
            .filter(|c| c.is_alphanumeric())
            .flat_map(char::to_lowercase)
            .collect()
    };
    let w = norm(wanted);
    if w.is_empty() {
        return Vec::new();
    }
    let mut scored: Vec<(usize, &str)> = names
        .iter()
        .filter_map(|n| {
            let m = norm(n);
            let (wl, ml) = (w.chars().count(), m.chars().count());
            let threshold = (wl.max(ml) / 3).max(1);
            // The distance is at least the difference in length: skip it when that alone is
            // too far (a megabyte-long name costs nothing then).
            let d = if wl.abs_diff(ml) > threshold {
                usize::MAX
            } else {
                distance(&w, &m)
            };
            let near = d <= threshold;
            // `user_id` for `id`, `email_address` for `email`: the name holds the word.
            let holds = m.len() > w.len() && (m.starts_with(&w) || m.ends_with(&w));
            (near || holds).then(|| (if near { d } else { 3 + m.len() - w.len() }, *n))
        })
        .collect();
    scored.sort_by_key(|(d, n)| (*d, n.len()));
    scored.into_iter().take(3).map(|(_, n)| n).collect()
}

/// Edit distance in characters, a swap of two neighbours counting as one edit (`emial`).
fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_near_miss_is_suggested() {
        let m = missing_identifier("id", &["ID", "email", "name"], false);
        assert!(m.contains("did you mean 'ID'? (--id-column ID)"), "{m}");
        let m = missing_identifier("id", &["user_id", "email"], false);
        assert!(m.contains("did you mean 'user_id'?"), "{m}");
        let m = missing_identifier("email", &["id", "e-mail", "Email Address"], false);
        assert!(
            m.contains("did you mean 'e-mail' or 'Email Address'?"),
            "{m}"
        );
        let m = missing_identifier("customer_id", &["custmer_id", "plan"], true);
        assert!(
            m.contains("'custmer_id'") && m.ends_with("in the mapping"),
            "{m}"
        );
        let m = missing_identifier("emial", &["ID", "email", "plan"], false);
        assert!(
            m.contains("did you mean 'email'? (--id-column email); or choose"),
            "{m}"
        );
        let m = missing_identifier("id", &["name", "plan"], false);
        assert!(!m.contains("did you mean"), "{m}");
    }

    #[test]
    fn a_name_holding_a_delimiter_is_not_suggested_the_delimiter_is() {
        // `id;Name, Vorname` read with a comma.
        let m = missing_identifier("id", &["id;Name", " Vorname"], false);
        assert!(!m.contains("did you mean"), "{m}");
        assert!(m.contains("pass --delimiter ';'"), "{m}");
        assert!(m.contains("the column 'id;Name' holds ';'"), "{m}");
        // A UTF-16 tab file with commas in its header, read with a comma.
        let m = missing_identifier("id", &["id\tName", " Vorname"], false);
        assert!(!m.contains("did you mean"), "{m}");
        assert!(m.contains("pass --delimiter 'tab'"), "{m}");
    }

    #[test]
    fn a_huge_name_is_cut_in_messages_and_costs_no_edit_distance() {
        let huge = "x".repeat(1_000_000);
        let m = missing_identifier("id", &[huge.as_str()], false);
        assert!(m.len() < 400, "{}", m.len());
        assert!(m.contains(&format!("{}…", "x".repeat(60))), "{m}");
    }

    #[test]
    fn a_one_column_header_with_a_semicolon_names_the_delimiter() {
        let m = missing_identifier("id", &["id;email;first_name;plan"], false);
        assert!(m.contains("pass --delimiter ';'"), "{m}");
    }

    #[test]
    fn the_attribute_limit_counts_columns_and_constants() {
        assert_eq!(too_many_attributes(300, 0), None);
        let m = too_many_attributes(304, 0).expect("over");
        assert!(
            m.starts_with("the header has 304 columns that become attributes"),
            "{m}"
        );
        assert!(m.contains("drop 4 of them"), "{m}");
        assert!(too_many_attributes(300, 1).is_some());
        assert_eq!(wide_header(300, 0), None);
        let w = wide_header(350, 0).expect("over");
        assert!(w.contains("a row that fills more fails alone"), "{w}");
    }
}
