//! What the blob search index holds of a value: its words, lower-cased and
//! separated by single spaces, in segments of at most [`SEGMENT_BYTES`].
//!
//! A word is a run of letters and digits (Unicode), lower-cased. Values are
//! read as UTF-8 text up to their first NUL or invalid byte; binary values
//! (images, archives) stop there, usually at once. Not everything made of
//! letters is words: base64 (images and documents inside snapshots) and
//! other encodings form long runs of `[A-Za-z0-9+/=]` mixing capitals,
//! small letters and digits, and such a run of [`ENCODED_RUN`] characters
//! or more is left out whole, as is any single word over
//! [`MAX_WORD_BYTES`]. Queries are cut into words by [`terms`], the same
//! way, so a word matches exactly when its text does.
//!
//! The text is fed in pieces as it arrives ([`Indexer::feed`]); words and
//! characters split between pieces are joined. Segments bound the index's
//! rows: PostgreSQL refuses a `tsvector` over 1 MiB, which 128 KiB of words
//! cannot reach (at most about 3 bytes of `tsvector` per byte of text).
//!
//! The index holds each word behind its tenant's prefix ([`tenant_prefix`]),
//! so each tenant's words are index terms of their own.

use sha2::{Digest, Sha256};

/// The largest segment of words, in bytes.
pub const SEGMENT_BYTES: usize = 128 * 1024;
/// Longer words are not indexed (nor searched for).
pub const MAX_WORD_BYTES: usize = 100;
/// A run of base64 characters this long, mixing capitals, small letters
/// and digits, is encoded data, not words.
pub const ENCODED_RUN: usize = 64;
/// A run of base64 characters is judged within this many characters; a
/// longer one that has not been found encoded by then is read as words.
const RUN_JUDGED_WITHIN: usize = 4096;

/// Reads a value's bytes in order and cuts its words into segments.
#[derive(Debug, Default)]
pub struct Indexer {
    /// The start of a character split between two pieces.
    tail: Vec<u8>,
    /// A NUL or invalid UTF-8 was met: nothing after it is indexed.
    binary: bool,
    /// The word being read, lower-cased.
    word: String,
    /// The current word is dropped when it ends (too long, or encoded).
    skip_word: bool,
    run: Run,
    /// The segment being filled.
    segment: String,
    /// Segments filled and not yet taken.
    done: Vec<String>,
}

/// The current run of base64 characters.
#[derive(Debug, Default)]
struct Run {
    len: usize,
    /// Seen so far: 1 capitals, 2 small letters, 4 digits.
    mix: u8,
    state: RunState,
    /// Words read within the run while it is being judged.
    words: Vec<String>,
}

#[derive(Debug, Default, PartialEq, Eq)]
enum RunState {
    #[default]
    Judging,
    Encoded,
    Words,
}

const ALL_CLASSES: u8 = 7;

impl Indexer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads the next piece of the value.
    pub fn feed(&mut self, piece: &[u8]) {
        if self.binary {
            return;
        }
        let joined;
        let bytes = if self.tail.is_empty() {
            piece
        } else {
            let mut both = std::mem::take(&mut self.tail);
            both.extend_from_slice(piece);
            joined = both;
            &joined[..]
        };
        let (text, rest) = match std::str::from_utf8(bytes) {
            Ok(text) => (text, &[][..]),
            Err(err) if err.error_len().is_none() => {
                let (valid, rest) = bytes.split_at(err.valid_up_to());
                (std::str::from_utf8(valid).unwrap_or_default(), rest)
            }
            Err(err) => {
                let valid = &bytes[..err.valid_up_to()];
                self.read(std::str::from_utf8(valid).unwrap_or_default());
                self.stop();
                return;
            }
        };
        self.read(text);
        if !self.binary {
            self.tail = rest.to_vec();
        }
    }

    /// Segments filled so far (each at most [`SEGMENT_BYTES`]).
    pub fn take_segments(&mut self) -> Vec<String> {
        std::mem::take(&mut self.done)
    }

    /// Ends the value: every segment not yet taken, the last one included.
    pub fn finish(mut self) -> Vec<String> {
        self.end_word();
        self.end_run();
        if !self.segment.is_empty() {
            self.segment.pop();
            let last = std::mem::take(&mut self.segment);
            self.done.push(last);
        }
        self.done
    }

    fn read(&mut self, text: &str) {
        for c in text.chars() {
            if c == '\0' {
                self.stop();
                return;
            }
            let base64 = c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '=');
            if !c.is_alphanumeric() {
                self.end_word();
            }
            if base64 {
                self.run_continues(c);
            } else {
                self.end_run();
            }
            if c.is_alphanumeric() && !self.skip_word {
                self.word.extend(c.to_lowercase());
                if self.word.len() > MAX_WORD_BYTES {
                    self.skip_word = true;
                    self.word.clear();
                }
            }
        }
    }

    /// The text ends here: what came before is indexed, nothing after.
    fn stop(&mut self) {
        self.end_word();
        self.end_run();
        self.binary = true;
    }

    fn run_continues(&mut self, c: char) {
        let run = &mut self.run;
        run.len += 1;
        run.mix |= match c {
            'A'..='Z' => 1,
            'a'..='z' => 2,
            '0'..='9' => 4,
            _ => 0,
        };
        if run.state != RunState::Judging {
            return;
        }
        if run.len >= ENCODED_RUN && run.mix == ALL_CLASSES {
            run.state = RunState::Encoded;
            run.words.clear();
            self.skip_word = true;
            self.word.clear();
        } else if run.len > RUN_JUDGED_WITHIN {
            run.state = RunState::Words;
            for word in std::mem::take(&mut run.words) {
                push_word(&mut self.segment, &mut self.done, &word);
            }
        }
    }

    fn end_run(&mut self) {
        let run = std::mem::take(&mut self.run);
        if run.state == RunState::Judging {
            for word in run.words {
                push_word(&mut self.segment, &mut self.done, &word);
            }
        }
    }

    fn end_word(&mut self) {
        let word = std::mem::take(&mut self.word);
        if std::mem::take(&mut self.skip_word) || word.is_empty() {
            return;
        }
        match self.run.state {
            RunState::Judging if self.run.len > 0 => self.run.words.push(word),
            RunState::Encoded => {}
            _ => push_word(&mut self.segment, &mut self.done, &word),
        }
    }
}

fn push_word(segment: &mut String, done: &mut Vec<String>, word: &str) {
    if segment.len() + word.len() + 1 > SEGMENT_BYTES {
        segment.pop();
        done.push(std::mem::take(segment));
    }
    segment.push_str(word);
    segment.push(' ');
}

/// Hex digits of a tenant's prefix.
const TENANT_PREFIX_HEX: usize = 16;

/// What every word of a tenant's values is indexed under: 16 hex digits of
/// the SHA-256 of the tenant id, then the word. Each tenant's words are
/// thus terms of their own in the index, so a search reads only its own
/// tenant's postings: neither its scores nor the time it takes depend on
/// other tenants' data. PostgreSQL computes the same prefix as
/// `left(encode(sha256(convert_to(tenant_id, 'UTF8')), 'hex'), 16)`.
pub fn tenant_prefix(tenant: &str) -> String {
    let digest = Sha256::digest(tenant.as_bytes());
    digest.iter().take(TENANT_PREFIX_HEX / 2).map(|b| format!("{b:02x}")).collect()
}

/// A segment's words as a tenant's index terms, separated by spaces.
pub fn tenant_terms(prefix: &str, segment: &str) -> String {
    let words = segment.split(' ').filter(|w| !w.is_empty());
    let mut terms = String::with_capacity(segment.len() + segment.len() / 2);
    for word in words {
        if !terms.is_empty() {
            terms.push(' ');
        }
        terms.push_str(prefix);
        terms.push_str(word);
    }
    terms
}

/// The words of a query: runs of letters and digits, lower-cased, each
/// once, in order, at most `max`; words too long to be indexed are left
/// out.
pub fn terms(query: &str, max: usize) -> Vec<String> {
    let mut terms: Vec<String> = Vec::new();
    for word in query.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()) {
        let word: String = word.chars().flat_map(char::to_lowercase).collect();
        if word.len() <= MAX_WORD_BYTES && !terms.contains(&word) {
            terms.push(word);
        }
        if terms.len() == max {
            break;
        }
    }
    terms
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The words of a whole text, as the index holds them.
    fn segments(text: &[u8]) -> Vec<String> {
        let mut indexer = Indexer::new();
        indexer.feed(text);
        indexer.finish()
    }

    fn words(text: &str) -> String {
        segments(text.as_bytes()).join(" ")
    }

    #[test]
    fn words_are_lowercased_runs_of_letters_and_digits() {
        assert_eq!(words("Hello, WORLD! o'Neil café 42x"), "hello world o neil café 42x");
        assert_eq!(words("  \n "), "");
        assert_eq!(words("ÉCOLE Straße İstanbul"), "école straße i\u{307}stanbul");
        assert_eq!(terms("ÉCOLE, école; Straße!", 32), ["école", "straße"]);
        assert_eq!(terms(&"w ".repeat(100), 32), ["w"]);
        assert_eq!(terms("a b c d", 2), ["a", "b"]);
    }

    #[test]
    fn encoded_runs_and_overlong_words_are_left_out() {
        let base64 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==";
        let text = format!(r#"{{"text": "look at this", "image": {{"data": "{base64}"}}, "end": "done"}}"#);
        assert_eq!(words(&text), "text look at this image data end done");
        // Long runs without the mix of an encoding are words.
        let path = "/api/v1/storage/session/s1/scopes/agent/a1/snapshots/snapshot_latest";
        assert_eq!(words(path), "api v1 storage session s1 scopes agent a1 snapshots snapshot latest");
        let lower = "abc/".repeat(40);
        assert_eq!(words(&lower).split(' ').count(), 40);
        assert_eq!(words(&format!("short {} words", "x".repeat(MAX_WORD_BYTES + 1))), "short words");
        assert_eq!(terms(&"y".repeat(MAX_WORD_BYTES + 1), 32), Vec::<String>::new());
    }

    #[test]
    fn binary_values_stop_at_their_first_non_text_byte() {
        assert_eq!(segments(b"text then\0 more"), ["text then"]);
        assert_eq!(segments(&[0x89, b'P', b'N', b'G']), Vec::<String>::new());
        assert_eq!(segments(b"%PDF-1.7 \xe2\xe3\xcf\xd3 words"), ["pdf 1 7"]);
    }

    #[test]
    fn pieces_join_words_and_characters() {
        let text = "Grüße aus Köln, base64 follows: ".to_owned() + &"QUJD".repeat(40) + " and the end";
        let whole = segments(text.as_bytes());
        for size in [1, 2, 3, 7, 64] {
            let mut indexer = Indexer::new();
            let mut pieces = Vec::new();
            for piece in text.as_bytes().chunks(size) {
                indexer.feed(piece);
                pieces.extend(indexer.take_segments());
            }
            pieces.extend(indexer.finish());
            assert_eq!(pieces, whole, "pieces of {size}");
        }
        assert_eq!(whole, ["grüße aus köln base64 follows and the end"]);
    }

    #[test]
    fn segments_stay_within_their_bound_and_keep_every_word() {
        let text: String = (0..60_000).map(|i| format!("w{i} ")).collect();
        let segments = segments(text.as_bytes());
        assert!(segments.len() > 2);
        assert!(segments.iter().all(|s| s.len() <= SEGMENT_BYTES && !s.ends_with(' ')));
        let words: Vec<&str> = segments.iter().flat_map(|s| s.split(' ')).collect();
        assert_eq!(words.len(), 60_000);
        assert_eq!(words[59_999], "w59999");
    }

    #[test]
    fn each_tenant_has_terms_of_its_own() {
        let (a, b) = (tenant_prefix("team-a"), tenant_prefix("team-b"));
        assert_eq!(a.len(), 16);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()) && a != b);
        // sha256("default") begins 37a8eec1ce19687d.
        assert_eq!(tenant_prefix("default"), "37a8eec1ce19687d");
        assert_eq!(tenant_terms("p", "one two"), "pone ptwo");
        assert_eq!(tenant_terms("p", ""), "");
    }
}
