//! API keys: how they are minted, hashed, listed and recognised.
//!
//! A key is `sbk_` followed by 64 hex digits: 256 bits from the operating
//! system's random source. The server never stores a key, only its
//! SHA-256 (`sha256:<hex>`). A fast hash is enough here because every key
//! carries 256 bits of chance: no guess list can reach it, so a slow
//! password hash would add nothing but milliseconds of CPU to every
//! request (and hand a flood of wrong keys a lever on the CPU). Keys of any
//! other shape are refused before hashing, so a weak, hand-made key can
//! never be accepted. A presented key's hash is compared with every listed
//! hash in constant time.

use std::fmt;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// What every key starts with (also lets secret scanners find leaked ones).
const KEY_PREFIX: &str = "sbk_";
/// What every hash starts with: the hash function, for a later change.
const HASH_PREFIX: &str = "sha256:";
/// Random bytes in a key.
const KEY_BYTES: usize = 32;
/// Longest tenant name.
const TENANT_MAX: usize = 64;

/// A freshly minted key with its hash.
#[derive(Debug)]
pub struct Minted {
    pub key: String,
    pub hash: String,
}

/// Makes a new key from the operating system's random source.
pub fn mint() -> Result<Minted, String> {
    let mut bytes = [0u8; KEY_BYTES];
    getrandom::fill(&mut bytes).map_err(|e| format!("the system's random source failed: {e}"))?;
    let key = format!("{KEY_PREFIX}{}", hex(&bytes));
    let hash = format!("{HASH_PREFIX}{}", hex(&digest(&key)));
    Ok(Minted { key, hash })
}

fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `key` has the shape of a minted key.
fn well_formed(key: &str) -> bool {
    key.strip_prefix(KEY_PREFIX)
        .is_some_and(|rest| rest.len() == 2 * KEY_BYTES && rest.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Checks a tenant name: 1 to 64 of letters, digits and `-_.:@`.
pub fn check_tenant(tenant: &str) -> Result<(), String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "-_.:@".contains(c);
    if tenant.is_empty() || tenant.len() > TENANT_MAX || !tenant.chars().all(allowed) {
        return Err(format!(
            "invalid tenant `{}`: use 1 to {TENANT_MAX} letters, digits or `-_.:@`",
            tenant.escape_debug()
        ));
    }
    Ok(())
}

/// Reads a listed hash. Errors never repeat the value: it may be a key
/// pasted in by mistake, and errors reach the logs.
fn parse_hash(hash: &str) -> Result<[u8; 32], String> {
    let refused = || {
        let hint = if hash.starts_with(KEY_PREFIX) {
            ": this is a key itself, list its hash (`keys new` prints both) and keep the key secret"
        } else {
            ""
        };
        format!("not a key hash (`{HASH_PREFIX}` and 64 hex digits){hint}")
    };
    let hex = hash.strip_prefix(HASH_PREFIX).filter(|h| h.len() == 64).ok_or_else(refused)?;
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = hex.get(2 * i..2 * i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()).ok_or_else(refused)?;
    }
    Ok(out)
}

/// One accepted key: its tenant and the hash of the key.
#[derive(Clone)]
struct Entry {
    tenant: std::sync::Arc<str>,
    digest: [u8; 32],
}

/// The keys the server accepts, by hash. Never holds a key itself.
#[derive(Clone, Default)]
pub struct KeySet(Vec<Entry>);

impl fmt::Debug for KeySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeySet({} keys)", self.0.len())
    }
}

impl KeySet {
    /// Reads `TENANT HASH` lines: blank lines and `#` comments (whole
    /// lines, or after the hash) are skipped. `origin` names the source in
    /// errors, which give the line number; the first bad line is an error.
    pub fn parse(text: &str, origin: &str) -> Result<Self, String> {
        let (set, mut problems) = Self::parse_lenient(text, origin);
        if problems.is_empty() { Ok(set) } else { Err(problems.swap_remove(0)) }
    }

    /// Like [`KeySet::parse`], but a bad line is skipped: the keys of the
    /// good lines, and what was wrong with each bad one (with its number).
    pub fn parse_lenient(text: &str, origin: &str) -> (Self, Vec<String>) {
        let mut set = Self::default();
        let mut problems = Vec::new();
        // Some editors start a file with a byte-order mark.
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        for (number, line) in text.lines().enumerate() {
            let line = line.split_once('#').map_or(line, |(before, _)| before).trim();
            if line.is_empty() {
                continue;
            }
            let at = |problem: String| format!("{origin}, line {}: {problem}", number + 1);
            let mut words = line.split_whitespace();
            let added = match (words.next(), words.next(), words.next()) {
                (Some(tenant), Some(hash), None) => set.add(tenant, hash),
                _ => Err("expected `TENANT HASH`".into()),
            };
            if let Err(problem) = added {
                problems.push(at(problem));
            }
        }
        (set, problems)
    }

    /// Adds one key by its hash.
    pub fn add(&mut self, tenant: &str, hash: &str) -> Result<(), String> {
        check_tenant(tenant)?;
        let digest = parse_hash(hash)?;
        if let Some(other) = self.0.iter().find(|e| e.digest == digest) {
            if *other.tenant != *tenant {
                return Err(format!("the same key is listed for tenants `{}` and `{tenant}`", other.tenant));
            }
            return Ok(());
        }
        self.0.push(Entry { tenant: tenant.into(), digest });
        Ok(())
    }

    /// Both sets in one; a key of `other` listed in `self` for another
    /// tenant is left out, and named (by its tenants) in the problems.
    pub fn merged(mut self, other: &Self) -> (Self, Vec<String>) {
        let mut problems = Vec::new();
        for entry in &other.0 {
            if let Err(problem) = self.add(&entry.tenant, &format!("{HASH_PREFIX}{}", hex(&entry.digest))) {
                problems.push(problem);
            }
        }
        (self, problems)
    }

    /// How many keys there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether no key is listed (every request is then refused).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The tenant of `key`, if it is one of the listed keys. Every listed
    /// hash is compared, each in constant time, whether or not one matched.
    pub fn tenant_of(&self, key: &str) -> Option<std::sync::Arc<str>> {
        if !well_formed(key) {
            return None;
        }
        let presented = digest(key);
        let mut found = None;
        for entry in &self.0 {
            if bool::from(entry.digest.ct_eq(&presented)) {
                found = Some(entry.tenant.clone());
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_keys_are_recognised_by_their_hash_only() {
        let a = mint().expect("key");
        let b = mint().expect("key");
        assert_ne!(a.key, b.key);
        assert!(well_formed(&a.key), "{}", a.key);
        let set =
            KeySet::parse(&format!("\u{feff}# team a\r\nteam-a {}  # rotated 2026-12\r\n\n", a.hash), "test")
                .expect("parses");
        assert_eq!(set.tenant_of(&a.key).as_deref(), Some("team-a"));
        assert_eq!(set.tenant_of(&b.key), None);
        assert_eq!(set.tenant_of(&a.hash), None, "the hash is not a key");
        assert_eq!(set.tenant_of(&a.key.to_uppercase()), None);
        assert_eq!(set.tenant_of(""), None);
    }

    #[test]
    fn bad_lines_name_their_line() {
        let key = mint().expect("key");
        for (text, expected) in [
            ("a\n", "line 1: expected `TENANT HASH`"),
            (&format!("\nt {} extra\n", key.hash), "line 2: expected"),
            ("t sha256:zz\n", "line 1: not a key hash"),
            (&format!("t {}\n", key.key), "this is a key itself"),
            (&format!("bad/tenant {}\n", key.hash), "invalid tenant"),
            (&format!("a {0}\nb {0}\n", key.hash), "tenants `a` and `b`"),
        ] {
            let err = KeySet::parse(text, "keys").expect_err(text);
            assert!(err.starts_with("keys, line ") && err.contains(expected), "{text:?}: {err}");
            assert!(!err.contains(&key.key) && !err.contains("zz"), "errors never repeat the value: {err}");
        }
        let twice = KeySet::parse(&format!("a {0}\na {0}\n", key.hash), "keys").expect("same tenant twice");
        assert_eq!(twice.len(), 1);
    }

    #[test]
    fn lenient_parsing_keeps_good_lines_and_names_bad_ones() {
        let (a, b) = (mint().expect("key"), mint().expect("key"));
        let text = format!("team-a {}\nteam-b not-a-hash\nteam-c {}\nteam-d {}\n", a.hash, b.hash, a.hash);
        let (set, problems) = KeySet::parse_lenient(&text, "keys");
        assert_eq!(set.tenant_of(&a.key).as_deref(), Some("team-a"));
        assert_eq!(set.tenant_of(&b.key).as_deref(), Some("team-c"));
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].starts_with("keys, line 2: not a key hash"), "{problems:?}");
        assert!(problems[1].starts_with("keys, line 4: the same key is listed"), "{problems:?}");
    }
}
