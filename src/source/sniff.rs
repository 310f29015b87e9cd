//! Telling a CSV input's delimiter from its first lines when none is given: comma, semicolon
//! (Excel in most of Europe), tab or pipe. Only the header and a few records after it are read
//! (at most [`SNIFF_BYTES`]), quotes respected; the bytes read are handed back to be read
//! again, so stdin loses nothing. From a pipe the header alone is read: the records after it
//! may not have been written yet, and a producer that stalls must not hold the run.

use std::io::{self, BufRead, Read};

/// The delimiters detected.
pub const CANDIDATES: [u8; 4] = [b',', b';', b'\t', b'|'];
/// How a tie between candidates is broken, lowest first (indexes into [`CANDIDATES`]): `;`,
/// tab, `|`, then the comma last, since a comma is common inside text (`Name, Vorname`,
/// `Doe, Jane`) and the others are not.
const TIE_RANK: [usize; 4] = [3, 0, 1, 2];
/// The most a detection reads: the header and up to [`SNIFF_RECORDS`] records after it, or
/// this many bytes, whichever comes first.
pub const SNIFF_BYTES: usize = 64 * 1024;
/// Records after the header whose delimiter counts are compared with the header's.
pub const SNIFF_RECORDS: usize = 5;

/// What a detection read and found.
#[derive(Debug)]
pub struct Sniffed {
    /// The bytes read, to be read again before the rest of the input.
    pub head: Vec<u8>,
    /// The delimiter found; `None` when the header holds none of the candidates (one column).
    pub delimiter: Option<u8>,
}

/// Reads the header of `reader` and up to `records` records after it (as far as
/// [`SNIFF_BYTES`]) and finds the delimiter.
pub fn sniff(reader: &mut dyn BufRead, records_after: usize) -> io::Result<Sniffed> {
    let mut head = Vec::new();
    let mut records = 0;
    let mut quoted = false;
    while head.len() < SNIFF_BYTES {
        let from = head.len();
        let mut limited = Read::take(&mut *reader, (SNIFF_BYTES - from) as u64);
        let n = limited.read_until(b'\n', &mut head)?;
        if n == 0 {
            break;
        }
        // A line ends a record unless a quote is still open.
        for b in &head[from..] {
            if *b == b'"' {
                quoted = !quoted;
            }
        }
        if !quoted && head.ends_with(b"\n") {
            records += 1;
            if records > records_after {
                break;
            }
        }
    }
    let delimiter = choose(&head);
    Ok(Sniffed { head, delimiter })
}

/// The delimiter of `head`: the candidate the header holds that every complete record after it
/// holds as often (the most such), else the one the header holds most; `None` if it holds none.
/// A tie goes to `;`, then tab, then `|`, and to the comma only last ([`TIE_RANK`]): in
/// `id;Name, Vorname` / `50;Müller, Hans` both count one, and the comma is the one in the text.
pub fn choose(head: &[u8]) -> Option<u8> {
    let counts = record_counts(head);
    let (header, rest) = counts.split_first()?;
    let most = |pick: &dyn Fn(usize) -> bool| {
        (0..CANDIDATES.len())
            .filter(|i| header[*i] > 0 && pick(*i))
            .max_by(|a, b| {
                header[*a]
                    .cmp(&header[*b])
                    .then(TIE_RANK[*b].cmp(&TIE_RANK[*a]))
            })
    };
    most(&|i| rest.iter().all(|r| r[i] == header[i]))
        .or_else(|| most(&|_| true))
        .map(|i| CANDIDATES[i])
}

/// For each complete, non-blank record of `head` (a record cut by the end of `head` is left
/// out, unless it is the header): how many of each candidate it holds outside quotes.
fn record_counts(head: &[u8]) -> Vec<[usize; 4]> {
    let mut out = Vec::new();
    let mut counts = [0usize; 4];
    let mut quoted = false;
    let mut blank = true;
    for b in head {
        match *b {
            b'"' => {
                quoted = !quoted;
                blank = false;
            }
            b'\n' | b'\r' if !quoted => {
                if !blank {
                    out.push(counts);
                }
                counts = [0; 4];
                blank = true;
            }
            b => {
                if !quoted {
                    if let Some(i) = CANDIDATES.iter().position(|c| *c == b) {
                        counts[i] += 1;
                    }
                }
                blank = false;
            }
        }
    }
    if !blank && out.is_empty() {
        out.push(counts);
    }
    out
}

/// The delimiter as a user writes it: `tab`, or the character.
pub fn word(d: u8) -> String {
    match d {
        b'\t' => "tab".to_string(),
        d => (d as char).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(text: &str) -> Option<u8> {
        sniff(
            &mut io::Cursor::new(text.as_bytes().to_vec()),
            SNIFF_RECORDS,
        )
        .expect("reads")
        .delimiter
    }

    #[test]
    fn finds_the_delimiter_of_the_header_and_its_rows() {
        assert_eq!(of("id,email\n1,a@x\n"), Some(b','));
        assert_eq!(of("id;email;first_name;plan\n1;a@x;Zoë;pro\n"), Some(b';'));
        assert_eq!(of("id\temail\n1\ta@x\n"), Some(b'\t'));
        assert_eq!(of("id|email\n1|a@x\n"), Some(b'|'));
        // Commas inside the values of a semicolon file do not win.
        assert_eq!(
            of("id;name;city\n1;Doe, Jane;Paris, FR\n2;Roe, Al;Lyon, FR\n"),
            Some(b';')
        );
        // Delimiters inside quotes are not counted, also across lines.
        assert_eq!(of("\"a;b\",c\n\"x;\ny;z\",1\n2,3\n"), Some(b','));
        // A header with one column: nothing to detect.
        assert_eq!(of("email\na@x\n"), None);
        // A header only, no line break.
        assert_eq!(of("id;email"), Some(b';'));
        // A tie does not go to the comma: it is the one inside text.
        assert_eq!(of("id;Name, Vorname\r\n50;Müller, Hans\r\n"), Some(b';'));
        assert_eq!(of("id;Name, Vorname\r\n"), Some(b';'));
        assert_eq!(of("id\tName, Vorname\n1\tMüller, Hans\n"), Some(b'\t'));
        assert_eq!(of("id|a, b\n1|x, y\n"), Some(b'|'));
        // More commas than anything else still wins.
        assert_eq!(of("id,name,city;x\n1,a,b;c\n"), Some(b','));
    }

    #[test]
    fn reads_only_the_first_lines_and_gives_them_back() {
        let mut text = String::from("id;n\n");
        for i in 0..100_000 {
            text.push_str(&format!("{i};x\n"));
        }
        let mut r = io::Cursor::new(text.clone().into_bytes());
        let s = sniff(&mut r, SNIFF_RECORDS).expect("reads");
        assert_eq!(s.delimiter, Some(b';'));
        assert!(s.head.len() < 100, "{}", s.head.len());
        // The header alone (a pipe): it is all that is read.
        let mut r = io::Cursor::new(text.clone().into_bytes());
        let s = sniff(&mut r, 0).expect("reads");
        assert_eq!(
            (s.head.as_slice(), s.delimiter),
            (&b"id;n\n"[..], Some(b';'))
        );
        let mut rest = Vec::new();
        std::io::Read::read_to_end(&mut r, &mut rest).expect("reads");
        assert_eq!([s.head, rest].concat(), text.into_bytes());
    }
}
