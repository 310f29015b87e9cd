//! Text encodings: the input's bytes become UTF-8 while they stream (a decoder over
//! `encoding_rs`, fixed buffers, so memory stays flat on any size), and rejects go back out in
//! the input's encoding. Without `--encoding`, a UTF-16 byte-order mark is followed and the
//! first block of the input is checked: a file that is not UTF-8 stops before its first row,
//! with the encoding it most likely is (a guess by `chardetng`, the detector Firefox uses) and
//! the flag that reads it. With `--encoding` naming a single-byte encoding, a first block that
//! is UTF-8 with non-ASCII characters in it stops too ([`check_not_utf8`]): the exporter
//! switched to UTF-8 and reading it as given would write mojibake over every name. There is no
//! override: drop the flag or pass `--encoding utf-8` (a real windows-1252 file whose accents
//! all happen to form valid UTF-8 sequences, such as `Ã©`, is not a file people have).

use encoding_rs::{CoderResult, Decoder, Encoder, Encoding, UTF_16BE, UTF_16LE, UTF_8};
use std::io::{self, BufRead, Read, Write};

/// The encoding an input was read in, and whether it started with a byte-order mark: what the
/// rejects file is written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TextEncoding {
    /// The encoding (UTF-8 when the input is read as it is).
    pub encoding: &'static Encoding,
    /// The input started with a byte-order mark (written again at the top of the rejects).
    pub bom: bool,
}

impl TextEncoding {
    /// UTF-8, read as it is.
    pub const UTF8: TextEncoding = TextEncoding {
        encoding: UTF_8,
        bom: false,
    };

    /// The encoding's name as `--encoding` takes it (lower case, e.g. `windows-1252`).
    pub fn label(&self) -> String {
        self.encoding.name().to_ascii_lowercase()
    }

    /// Whether the bytes are UTF-8 already (nothing to transcode).
    pub fn is_utf8(&self) -> bool {
        self.encoding == UTF_8
    }
}

/// The encoding of an `--encoding` label: any WHATWG label (`utf-8`, `utf-16le`, `utf-16be`,
/// `windows-1252`, `latin1`, `iso-8859-1`, `iso-8859-15`, `shift_jis`, ...), case-insensitive.
/// `utf-16` alone is UTF-16LE. (As in every browser, `iso-8859-1` and `latin1` read as
/// windows-1252, its superset.)
pub fn encoding_for_label(label: &str) -> Result<&'static Encoding, String> {
    let label = label.trim();
    Encoding::for_label(label.as_bytes())
        .filter(|e| *e != encoding_rs::REPLACEMENT)
        .ok_or_else(|| {
            format!(
                "--encoding '{label}' is not an encoding name: use utf-8, utf-16le, utf-16be, windows-1252, \
iso-8859-1, iso-8859-15, shift_jis or another WHATWG label"
            )
        })
}

/// The byte-order mark at the start of `head`, if any: its encoding and length.
pub fn bom_of(head: &[u8]) -> Option<(&'static Encoding, usize)> {
    Encoding::for_bom(head)
}

/// Why the start of an input cannot be read as UTF-8: where, and what it most likely is.
#[derive(Debug, PartialEq, Eq)]
pub struct NotUtf8 {
    /// The line (as an editor counts) of the first byte that is not UTF-8.
    pub line: u64,
    /// That byte.
    pub byte: u8,
    /// The encoding the input most likely is.
    pub likely: &'static Encoding,
}

impl NotUtf8 {
    /// The message: what was found, the likely encoding and the flag that reads it.
    pub fn message(&self) -> String {
        let label = self.likely.name().to_ascii_lowercase();
        let utf16 = self.likely == UTF_16LE || self.likely == UTF_16BE;
        let shown = if self.likely == encoding_rs::WINDOWS_1252 {
            let byte = [self.byte];
            let (text, _) = self.likely.decode_without_bom_handling(&byte);
            format!(" ('{text}' in windows-1252)")
        } else {
            String::new()
        };
        let why = if utf16 {
            "every other byte is zero, without a byte-order mark"
        } else if self.likely == encoding_rs::WINDOWS_1252 {
            "a guess from its first block: what Excel and many CRMs write on Windows; ISO-8859-1 files read the same"
        } else {
            "a guess from its first block"
        };
        format!(
            "the input is not UTF-8 (line {} has the byte 0x{:02X}{shown}): it looks like {label} ({why}); \
pass --encoding {label} (check a few names after), or save the file as UTF-8",
            self.line, self.byte
        )
    }
}

/// Checks that the first block of an input is UTF-8 (a character cut by the end of the block
/// is fine unless the input ends there). `Err` says where it is not and what it likely is.
pub fn check_utf8(head: &[u8], at_end: bool) -> Result<(), NotUtf8> {
    if let Some(likely) = utf16_pattern(head) {
        // UTF-16 without a byte-order mark: ASCII in it is valid UTF-8 (with NULs).
        let at = head.iter().position(|b| *b == 0).unwrap_or(0);
        return Err(NotUtf8 {
            line: 1,
            byte: head.get(at).copied().unwrap_or(0),
            likely,
        });
    }
    let err = match std::str::from_utf8(head) {
        Ok(_) => return Ok(()),
        Err(e) if e.error_len().is_none() && !at_end => return Ok(()),
        Err(e) => e,
    };
    let at = err.valid_up_to();
    let line = 1 + head[..at].iter().filter(|b| **b == b'\n').count() as u64;
    let byte = head.get(at).copied().unwrap_or(0);
    Err(NotUtf8 {
        line,
        byte,
        likely: likely_encoding(head),
    })
}

/// Why an input given a single-byte `--encoding` should not be read in it: its first block is
/// UTF-8 with non-ASCII characters, so reading it as given would make mojibake of them.
pub fn check_not_utf8(head: &[u8], at_end: bool, given: &'static Encoding) -> Result<(), String> {
    if !given.is_single_byte() || head.is_ascii() {
        return Ok(());
    }
    let utf8 = match std::str::from_utf8(head) {
        Ok(_) => true,
        Err(e) => e.error_len().is_none() && !at_end && e.valid_up_to() > 0,
    };
    if !utf8 {
        return Ok(());
    }
    let at = head.iter().position(|b| !b.is_ascii()).unwrap_or(0);
    let line = 1 + head[..at].iter().filter(|b| **b == b'\n').count();
    let label = given.name().to_ascii_lowercase();
    Err(format!(
        "--encoding {label} was given, but the input looks like UTF-8 (line {line} has UTF-8 \
characters, which {label} would read as mojibake): drop --encoding, or pass --encoding utf-8"
    ))
}

/// A guess at the encoding of bytes that are not UTF-8: UTF-16 when zero bytes alternate
/// (text in a Latin script, without a byte-order mark), else what `chardetng` guesses from
/// them (windows-1252 when it guesses UTF-8 or nothing better).
fn likely_encoding(head: &[u8]) -> &'static Encoding {
    if let Some(utf16) = utf16_pattern(head) {
        return utf16;
    }
    let mut detector = chardetng::EncodingDetector::new();
    detector.feed(head, true);
    match detector.guess(None, true) {
        e if e == UTF_8 || e == encoding_rs::REPLACEMENT => encoding_rs::WINDOWS_1252,
        e => e,
    }
}

/// UTF-16 without a byte-order mark: zero bytes alternate (text in a Latin script).
fn utf16_pattern(head: &[u8]) -> Option<&'static Encoding> {
    let pairs = head.len() / 2;
    if pairs >= 2 {
        let zero_even = head.iter().step_by(2).filter(|b| **b == 0).count();
        let zero_odd = head.iter().skip(1).step_by(2).filter(|b| **b == 0).count();
        if zero_odd * 10 >= pairs * 4 && zero_even * 10 < pairs {
            return Some(UTF_16LE);
        }
        if zero_even * 10 >= pairs * 4 && zero_odd * 10 < pairs {
            return Some(UTF_16BE);
        }
    }
    None
}

/// Reads `inner` (bytes in some encoding, its byte-order mark already consumed) as UTF-8,
/// a block at a time. Malformed sequences become U+FFFD, as an editor shows them.
pub struct DecodeReader<R> {
    inner: R,
    decoder: Decoder,
    out: Box<[u8]>,
    start: usize,
    end: usize,
    done: bool,
    /// A single-byte encoding: every block is checked for UTF-8 (see [`utf8_block`]).
    single_byte: Option<&'static Encoding>,
    /// Lines read so far (for the message when a later block turns out to be UTF-8).
    lines: u64,
}

/// Whether `block` is plainly UTF-8 with non-ASCII characters (a sequence cut at its end
/// still counts): read in a single-byte encoding, its characters would become mojibake, and
/// an identifier among them another person.
fn utf8_block(block: &[u8]) -> bool {
    if block.is_ascii() {
        return false;
    }
    match std::str::from_utf8(block) {
        Ok(_) => true,
        Err(e) => {
            e.error_len().is_none() && e.valid_up_to() > 0 && !block[..e.valid_up_to()].is_ascii()
        }
    }
}

/// Decoded bytes held at most: a block of the input decodes into this, then is handed out.
const DECODED_BLOCK: usize = 64 * 1024;

impl<R: BufRead> DecodeReader<R> {
    /// Decodes `inner` from `encoding`, without looking for a byte-order mark.
    pub fn new(inner: R, encoding: &'static Encoding) -> DecodeReader<R> {
        DecodeReader {
            inner,
            decoder: encoding.new_decoder_without_bom_handling(),
            out: vec![0; DECODED_BLOCK].into_boxed_slice(),
            start: 0,
            end: 0,
            done: false,
            single_byte: encoding.is_single_byte().then_some(encoding),
            lines: 0,
        }
    }
}

impl<R: BufRead> Read for DecodeReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.start < self.end {
                let n = buf.len().min(self.end - self.start);
                buf[..n].copy_from_slice(&self.out[self.start..self.start + n]);
                self.start += n;
                return Ok(n);
            }
            if self.done || buf.is_empty() {
                return Ok(0);
            }
            let src = self.inner.fill_buf()?;
            let last = src.is_empty();
            // The first block was checked before reading began; a later one that is UTF-8
            // stops the read (a read error: nothing is removed by a mirror after it).
            if let Some(enc) = self.single_byte.filter(|_| utf8_block(src)) {
                let label = enc.name().to_ascii_lowercase();
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "--encoding {label} was given, but the input is UTF-8 after line {} \
(its characters would be read as mojibake, and an identifier as another person): drop \
--encoding, or pass --encoding utf-8; the rows before were read as {label}",
                        self.lines
                    ),
                ));
            }
            if self.single_byte.is_some() {
                self.lines += src.iter().filter(|b| **b == b'\n').count() as u64;
            }
            let (result, read, written, _) = self.decoder.decode_to_utf8(src, &mut self.out, last);
            self.inner.consume(read);
            self.start = 0;
            self.end = written;
            if last && result == CoderResult::InputEmpty {
                self.done = true;
            }
        }
    }
}

/// Writes UTF-8 text in another encoding (transparent for UTF-8): how the rejects file comes
/// out in the input's encoding. A character cut between two writes waits for its end; bytes
/// that are not UTF-8 (a row of an input read as UTF-8 that was not) pass as they are.
pub struct EncodeWriter<W: Write> {
    inner: W,
    encoder: Option<Encoder>,
    /// UTF-16 is written by hand (encoding_rs encodes to it no more than browsers do).
    utf16: Option<Utf16>,
    pending: Vec<u8>,
    out: Vec<u8>,
}

#[derive(Clone, Copy)]
enum Utf16 {
    Le,
    Be,
}

impl<W: Write> EncodeWriter<W> {
    /// A writer in `enc`; its byte-order mark first if the input had one.
    pub fn new(mut inner: W, enc: TextEncoding) -> io::Result<EncodeWriter<W>> {
        let utf16 = match enc.encoding {
            e if e == UTF_16LE => Some(Utf16::Le),
            e if e == UTF_16BE => Some(Utf16::Be),
            _ => None,
        };
        if enc.bom {
            match utf16 {
                Some(Utf16::Le) => inner.write_all(&[0xFF, 0xFE])?,
                Some(Utf16::Be) => inner.write_all(&[0xFE, 0xFF])?,
                None if enc.encoding == UTF_8 => inner.write_all(b"\xEF\xBB\xBF")?,
                None => {}
            }
        }
        let encoder =
            (utf16.is_none() && enc.encoding != UTF_8).then(|| enc.encoding.new_encoder());
        Ok(EncodeWriter {
            inner,
            encoder,
            utf16,
            pending: Vec::new(),
            out: Vec::new(),
        })
    }

    /// The underlying writer.
    pub fn get_ref(&self) -> &W {
        &self.inner
    }

    fn encode_text(&mut self, text: &str) {
        match (self.utf16, self.encoder.as_mut()) {
            (Some(order), _) => {
                for unit in text.encode_utf16() {
                    self.out.extend_from_slice(&match order {
                        Utf16::Le => unit.to_le_bytes(),
                        Utf16::Be => unit.to_be_bytes(),
                    });
                }
            }
            (None, Some(enc)) => {
                let mut src = text;
                loop {
                    let need = enc
                        .max_buffer_length_from_utf8_if_no_unmappables(src.len())
                        .unwrap_or(src.len() * 4)
                        + 16;
                    let from = self.out.len();
                    self.out.resize(from + need, 0);
                    let (result, read, written, _) =
                        enc.encode_from_utf8(src, &mut self.out[from..], false);
                    self.out.truncate(from + written);
                    src = &src[read..];
                    if result == CoderResult::InputEmpty {
                        break;
                    }
                }
            }
            (None, None) => self.out.extend_from_slice(text.as_bytes()),
        }
    }
}

impl<W: Write> Write for EncodeWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.utf16.is_none() && self.encoder.is_none() {
            return self.inner.write(buf);
        }
        self.pending.extend_from_slice(buf);
        let mut at = 0;
        while at < self.pending.len() {
            match std::str::from_utf8(&self.pending[at..]) {
                Ok(text) => {
                    let text = text.to_owned();
                    self.encode_text(&text);
                    at = self.pending.len();
                }
                Err(e) => {
                    let good = e.valid_up_to();
                    let text = std::str::from_utf8(&self.pending[at..at + good])
                        .unwrap_or_default()
                        .to_owned();
                    self.encode_text(&text);
                    at += good;
                    match e.error_len() {
                        // A character cut by the end of this write: wait for the rest.
                        None => break,
                        Some(n) => {
                            self.out.extend_from_slice(&self.pending[at..at + n]);
                            at += n;
                        }
                    }
                }
            }
        }
        self.pending.drain(..at);
        self.inner.write_all(&self.out)?;
        self.out.clear();
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if !self.pending.is_empty() {
            // The input ended inside a character: its bytes as they are.
            self.inner.write_all(&self.pending)?;
            self.pending.clear();
        }
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(bytes: &[u8], enc: &'static Encoding, block: usize) -> String {
        let r = io::BufReader::with_capacity(block, bytes);
        let mut d = DecodeReader::new(r, enc);
        let mut out = String::new();
        d.read_to_string(&mut out).expect("decodes");
        out
    }

    #[test]
    fn decodes_whatever_the_block_size() {
        let (cp, _, _) = encoding_rs::WINDOWS_1252.encode("id,n\n1,Zoë “quoted” €\n");
        for block in [1, 2, 3, 7, 4096] {
            assert_eq!(
                decode_all(&cp, encoding_rs::WINDOWS_1252, block),
                "id,n\n1,Zoë “quoted” €\n"
            );
        }
        let utf16: Vec<u8> = "id,n\r\n1,Zoë 🦀\r\n"
            .encode_utf16()
            .flat_map(|u| u.to_le_bytes())
            .collect();
        for block in [1, 3, 4096] {
            assert_eq!(decode_all(&utf16, UTF_16LE, block), "id,n\r\n1,Zoë 🦀\r\n");
        }
    }

    #[test]
    fn encodes_back_to_the_same_bytes_across_cut_writes() {
        let text = "id;name\n1;Zoë “quoted” € 🦀\n";
        for (enc, bom) in [
            (encoding_rs::WINDOWS_1252, false),
            (UTF_16LE, true),
            (UTF_16BE, true),
            (UTF_8, false),
        ] {
            let mut w =
                EncodeWriter::new(Vec::new(), TextEncoding { encoding: enc, bom }).expect("vec");
            for b in text.as_bytes() {
                w.write_all(&[*b]).expect("vec");
            }
            w.flush().expect("vec");
            let bytes = w.inner;
            let (back, used, _) = enc.decode(&bytes);
            assert_eq!(used, enc);
            // windows-1252 has no crab: it comes back as a numeric character reference.
            if enc == encoding_rs::WINDOWS_1252 {
                assert_eq!(back, "id;name\n1;Zoë “quoted” € &#129408;\n");
            } else {
                assert_eq!(back, text, "{}", enc.name());
            }
        }
    }

    #[test]
    fn names_the_likely_encoding_and_the_line() {
        let (cp, _, _) = encoding_rs::WINDOWS_1252.encode("id,n\n1,a\n2,Zoë\n");
        let e = check_utf8(&cp, true).unwrap_err();
        assert_eq!(
            (e.line, e.byte, e.likely),
            (3, 0xEB, encoding_rs::WINDOWS_1252)
        );
        assert!(
            e.message().contains("pass --encoding windows-1252"),
            "{}",
            e.message()
        );
        let le: Vec<u8> = "id,n\n1,é\n"
            .encode_utf16()
            .flat_map(|u| u.to_le_bytes())
            .collect();
        assert_eq!(check_utf8(&le, true).unwrap_err().likely, UTF_16LE);
        // A character cut by the end of the block is not an error unless the input ends there.
        assert!(check_utf8("ab é".as_bytes().split_at(4).0, false).is_ok());
        assert!(check_utf8("ab é".as_bytes().split_at(4).0, true).is_err());
        assert!(encoding_for_label("Latin1").is_ok());
        // Cyrillic in windows-1251 is not windows-1252, and the message says it is a guess.
        let (cyr, _, _) = encoding_rs::WINDOWS_1251
            .encode("id,name,city\n1,Иван Петров,Москва\n2,Мария Смирнова,Санкт-Петербург\n");
        let e = check_utf8(&cyr, true).unwrap_err();
        assert_eq!(e.likely, encoding_rs::WINDOWS_1251, "{}", e.message());
        assert!(
            e.message().contains("pass --encoding windows-1251"),
            "{}",
            e.message()
        );
        assert!(e.message().contains("a guess"), "{}", e.message());
    }

    /// Second red team: a file given `--encoding windows-1252` whose first block is ASCII and
    /// a later one UTF-8 was read on as mojibake, and `josé@example.com` became another person
    /// (a mirror then removed the real one). A later UTF-8 block stops the read.
    #[test]
    fn a_later_utf8_block_stops_a_single_byte_read() {
        let w = encoding_rs::WINDOWS_1252;
        let mut text = String::from("email\n");
        for i in 0..200 {
            text.push_str(&format!("p{i}@example.com\n"));
        }
        text.push_str("jos\u{e9}@example.com\n");
        let reader = io::BufReader::with_capacity(256, text.as_bytes());
        let mut out = String::new();
        let err = DecodeReader::new(reader, w)
            .read_to_string(&mut out)
            .expect_err("stops");
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(err.to_string().contains("is UTF-8 after line"), "{err}");
        // The same text in real windows-1252 reads to its end.
        let (cp, _, _) = w.encode(&text);
        let reader = io::BufReader::with_capacity(256, &cp[..]);
        let mut out = String::new();
        DecodeReader::new(reader, w)
            .read_to_string(&mut out)
            .expect("windows-1252 reads");
        assert_eq!(out, text);
    }

    #[test]
    fn a_single_byte_encoding_given_to_utf8_is_refused() {
        let w = encoding_rs::WINDOWS_1252;
        let m = check_not_utf8("id,n\n1,Zoë\n".as_bytes(), true, w).unwrap_err();
        assert!(m.contains("looks like UTF-8 (line 2"), "{m}");
        assert!(
            m.contains("drop --encoding, or pass --encoding utf-8"),
            "{m}"
        );
        // ASCII only: nothing to tell, nothing to spoil.
        assert!(check_not_utf8(b"id,n\n1,Zoe\n", true, w).is_ok());
        // Real windows-1252.
        let (cp, _, _) = w.encode("id,n\n1,Zoë\n");
        assert!(check_not_utf8(&cp, true, w).is_ok());
        // UTF-16 is not single-byte.
        assert!(check_not_utf8("1,Zoë".as_bytes(), true, UTF_16LE).is_ok());
        assert!(encoding_for_label("klingon").is_err());
    }
}
