//! Credentials a rule can check: API keys (a header or query parameter holding one of a set of keys) and HTTP
//! basic auth (users with salted password hashes). The document never holds a secret in clear: keys are written
//! as SHA-256 hashes (or come from `vmConfig.env` and are hashed when the document compiles), passwords as
//! PBKDF2 hashes (see [`password`]).
//!
//! A check yields the *name* the credentials belong to (the key's name, the user), which templates may read
//! as `${auth.key_name}` / `${auth.user}`; the secret itself is never kept, logged or traced. Comparisons are
//! constant-time: a presented key is hashed once and compared with every stored hash, without stopping at the
//! first difference or the first match, so response times say nothing about how close a guess was.

pub mod base64;
pub mod basic;
pub mod password;
pub mod spec;

use std::fmt;
use std::sync::{Mutex, PoisonError};

use sha2::{Digest, Sha256};

pub use password::PasswordHash;

/// A SHA-256 digest.
pub type Digest32 = [u8; 32];

/// SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> Digest32 {
    Sha256::digest(bytes).into()
}

/// Whether two digests are equal, looking at every byte whatever the earlier ones were.
pub fn same_digest(a: &Digest32, b: &Digest32) -> bool {
    let mut difference = 0u8;
    for (x, y) in a.iter().zip(b) {
        difference |= x ^ y;
    }
    // Keeps the optimiser from turning the fold back into an early-exit comparison.
    std::hint::black_box(difference) == 0
}

/// Reads a SHA-256 hash written as 64 hex digits (either case).
pub fn parse_sha256_hex(text: &str) -> Result<Digest32, String> {
    let hint = "a SHA-256 hash is 64 hex digits: `printf %s \"$KEY\" | sha256sum`";
    if text.len() != 64 {
        return Err(format!("{} characters; {hint}", text.chars().count()));
    }
    let mut digest = [0u8; 32];
    // Digit by digit: `u8::from_str_radix` would take a sign (`+f`).
    let nibble = |c: u8| char::from(c).to_digit(16).map(|d| d as u8);
    for (byte, pair) in digest.iter_mut().zip(text.as_bytes().chunks(2)) {
        let value = match pair {
            [high, low] => nibble(*high).zip(nibble(*low)).map(|(h, l)| h << 4 | l),
            _ => None,
        };
        *byte = value.ok_or_else(|| format!("not hex; {hint}"))?;
    }
    Ok(digest)
}

/// A named set of API keys, by their SHA-256.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKeys {
    names: Vec<Box<str>>,
    hashes: Vec<Digest32>,
}

impl ApiKeys {
    /// The keys, name and hash each; names and hashes are distinct (the compiler checks).
    pub fn new(keys: Vec<(Box<str>, Digest32)>) -> Self {
        let (names, hashes) = keys.into_iter().unzip();
        ApiKeys { names, hashes }
    }

    /// The name of the key `presented` is; hashed once, compared with every key.
    pub fn find(&self, presented: &str) -> Option<&str> {
        let digest = sha256(presented.as_bytes());
        // 1 + the index of the matching key, 0 for none: built without a branch on any comparison.
        let mut found = 0usize;
        for (i, hash) in self.hashes.iter().enumerate() {
            found |= usize::from(same_digest(&digest, hash)) * (i + 1);
        }
        found.checked_sub(1).and_then(|i| self.names.get(i)).map(|name| &**name)
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

impl fmt::Debug for ApiKeys {
    /// The names only.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ApiKeys").field(&self.names).finish()
    }
}

/// The users of basic auth, by name, with their password hashes.
pub struct Users {
    users: Vec<(Box<str>, PasswordHash)>,
    /// Credentials accepted lately on this VM, so that a client's next requests cost one SHA-256 instead of a
    /// password hash. Only acceptances are kept (a wrong guess is always checked in full), bounded, and gone
    /// with the rules: a changed document starts empty.
    accepted: Mutex<Accepted>,
}

/// How many accepted `authorization` values a VM remembers; past that, the oldest is forgotten.
pub const REMEMBERED_CREDENTIALS: usize = 64;

/// Accepted `authorization` values by their SHA-256, with the user's index; a ring.
#[derive(Default)]
struct Accepted {
    entries: Vec<(Digest32, usize)>,
    next: usize,
}

impl Accepted {
    /// The user whose credentials hash to `digest`, comparing with every entry.
    fn find(&self, digest: &Digest32) -> Option<usize> {
        let mut found = 0usize;
        for (entry, user) in &self.entries {
            found |= usize::from(same_digest(digest, entry)) * (user + 1);
        }
        found.checked_sub(1)
    }

    fn remember(&mut self, digest: Digest32, user: usize) {
        if self.entries.len() < REMEMBERED_CREDENTIALS {
            self.entries.push((digest, user));
        } else if let Some(slot) = self.entries.get_mut(self.next) {
            *slot = (digest, user);
        }
        self.next = (self.next + 1) % REMEMBERED_CREDENTIALS;
    }
}

impl Users {
    /// The users; names are distinct (the compiler checks).
    pub fn new(users: Vec<(Box<str>, PasswordHash)>) -> Self {
        Users { users, accepted: Mutex::default() }
    }

    /// The user an `authorization` header value authenticates, or why it does not.
    pub fn check(&self, authorization: &str) -> Result<&str, Failure> {
        let digest = sha256(authorization.as_bytes());
        if let Some(name) = self.accepted().find(&digest).and_then(|i| self.users.get(i)).map(|(name, _)| name) {
            return Ok(name);
        }
        let credentials = basic::parse(authorization).map_err(Failure::Malformed)?;
        match self.users.iter().position(|(name, _)| **name == *credentials.user) {
            Some(index) => match self.users.get(index) {
                Some((name, hash)) if hash.verify(&credentials.password) => {
                    self.accepted().remember(digest, index);
                    Ok(name)
                }
                _ => Err(Failure::WrongPassword(credentials.user)),
            },
            None => {
                // As costly as a known user's check, so timing does not tell which users exist.
                if let Some((_, hash)) = self.users.first() {
                    std::hint::black_box(hash.verify(&credentials.password));
                }
                Err(Failure::UnknownUser(credentials.user))
            }
        }
    }

    fn accepted(&self) -> std::sync::MutexGuard<'_, Accepted> {
        // A VM runs one request at a time; a poisoned lock could only follow a panic, which aborts the VM.
        self.accepted.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn len(&self) -> usize {
        self.users.len()
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }
}

impl Clone for Users {
    /// The same users, remembering nothing yet.
    fn clone(&self) -> Self {
        Users::new(self.users.clone())
    }
}

impl PartialEq for Users {
    /// The same users with the same hashes, whatever each remembers.
    fn eq(&self, other: &Self) -> bool {
        self.users == other.users
    }
}

impl Eq for Users {}

impl fmt::Debug for Users {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Users").field(&self.users).finish()
    }
}

/// A compiled credential check: what a `api_key` or `basic_auth` condition tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    ApiKeys(ApiKeys),
    Basic(Users),
}

impl Check {
    /// The name the presented credentials belong to (a key's name, a user), or why there is none.
    pub fn verify(&self, presented: Option<&str>) -> Result<&str, Failure> {
        let presented = presented.ok_or(Failure::Missing)?;
        match self {
            Check::ApiKeys(keys) => keys.find(presented).ok_or(Failure::UnknownKey { keys: keys.len() }),
            Check::Basic(users) => users.check(presented),
        }
    }
}

/// Where a check reads the presented credentials, and the check: what a [`crate::ruleset::Slot::Credential`]
/// holds. Equal checks of equal places share one slot, so a request is checked once however many rules ask.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialSlot {
    /// The slot of the header (or of `:path`, for a query parameter) holding the credentials.
    pub(crate) source: usize,
    pub(crate) view: crate::ruleset::View,
    pub(crate) check: Check,
}

impl CredentialSlot {
    /// What a trace says about a check: `api_key: key "acme"`, `basic_auth: refused: no user "bob"`.
    pub fn describe(&self, verdict: &Result<&str, Failure>) -> String {
        let (condition, whose) = match self.check {
            Check::ApiKeys(_) => ("api_key", "key"),
            Check::Basic(_) => ("basic_auth", "user"),
        };
        match verdict {
            Ok(name) => format!("{condition}: accepted, {whose} {}", crate::trace::quote(name)),
            Err(failure) => format!("{condition}: refused, {failure}"),
        }
    }
}

/// Where a document's credential checks read secrets: what tools hide when they print a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretPlace {
    /// A request header (lower-case).
    Header(Box<str>),
    /// A query parameter.
    Query(Box<str>),
}

impl crate::RuleSet {
    /// The headers and query parameters some `api_key` or `basic_auth` condition reads credentials from.
    pub fn secret_places(&self) -> Vec<SecretPlace> {
        let mut places = Vec::new();
        for slot in &self.slots {
            let crate::ruleset::Slot::Credential(credential) = slot else { continue };
            let source = self.slots.get(credential.source);
            let place = match (&credential.view, source) {
                (crate::ruleset::View::QueryParam(name), _) => SecretPlace::Query(name.clone()),
                (_, Some(crate::ruleset::Slot::Header(_, name))) => SecretPlace::Header(name.clone()),
                _ => continue,
            };
            if !places.contains(&place) {
                places.push(place);
            }
        }
        places
    }
}

/// What a request presents at `places`: header values, and query parameter values as sent and decoded. Tools
/// hide these before printing a request ([`hide`]).
pub fn presented_secrets(places: &[SecretPlace], headers: &[(String, String)], path: &str) -> Vec<String> {
    let mut secrets = Vec::new();
    for place in places {
        match place {
            SecretPlace::Header(name) => {
                secrets.extend(headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone()));
            }
            SecretPlace::Query(name) => {
                let query = crate::url::split_path(path).1.unwrap_or_default();
                for pair in query.split('&') {
                    let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                    if crate::url::decode(key) == **name {
                        secrets.push(value.to_owned());
                        secrets.push(crate::url::decode(value).into_owned());
                    }
                }
            }
        }
    }
    // Longest first, so a secret containing another is hidden whole.
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    secrets.dedup();
    secrets
}

/// Shortest secret [`hide`] looks for: shorter strings would be found in unrelated text (and guessed anyway).
pub const MIN_HIDDEN_BYTES: usize = 4;

/// `text` with every occurrence of each secret (of [`MIN_HIDDEN_BYTES`] or more) replaced by `(hidden)`.
pub fn hide(text: &str, secrets: &[String]) -> String {
    let mut text = text.to_owned();
    for secret in secrets.iter().filter(|s| s.len() >= MIN_HIDDEN_BYTES) {
        text = text.replace(secret.as_str(), "(hidden)");
    }
    text
}

/// Why credentials were not accepted: what a trace says. Never holds a key or a password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// No header or query parameter to check.
    Missing,
    /// A key that is none of the set's.
    UnknownKey {
        keys: usize,
    },
    Malformed(basic::Malformed),
    UnknownUser(String),
    WrongPassword(String),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Missing => f.write_str("no credentials"),
            Failure::UnknownKey { keys: 1 } => f.write_str("a key that is not the one key (not shown)"),
            Failure::UnknownKey { keys } => write!(f, "a key that is none of the {keys} keys (not shown)"),
            Failure::Malformed(malformed) => malformed.fmt(f),
            Failure::UnknownUser(user) => write!(f, "no user {}", crate::trace::quote(user)),
            Failure::WrongPassword(user) => write!(f, "a wrong password for user {}", crate::trace::quote(user)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(digest: &Digest32) -> String {
        digest.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn sha256_and_hex_agree_with_sha256sum() {
        // printf %s abc | sha256sum
        let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(hex(&sha256(b"abc")), abc);
        assert_eq!(parse_sha256_hex(abc).unwrap(), sha256(b"abc"));
        assert_eq!(parse_sha256_hex(&abc.to_uppercase()).unwrap(), sha256(b"abc"));
        assert!(parse_sha256_hex(&abc[1..]).unwrap_err().starts_with("63 characters; a SHA-256 hash is 64 hex"));
        assert!(parse_sha256_hex(&abc.replace('b', "g")).unwrap_err().starts_with("not hex"));
        assert!(parse_sha256_hex(&format!("é{}", &abc[2..])).unwrap_err().starts_with("not hex"));
        assert!(parse_sha256_hex(&format!("+f{}", &abc[2..])).unwrap_err().starts_with("not hex"));
    }

    #[test]
    fn keys_are_found_by_name_and_only_whole() {
        let keys = ApiKeys::new(vec![("acme".into(), sha256(b"k-acme")), ("globex".into(), sha256(b"k-globex"))]);
        assert_eq!(keys.find("k-acme"), Some("acme"));
        assert_eq!(keys.find("k-globex"), Some("globex"));
        for wrong in ["", "k-acm", "k-acme ", "K-ACME", "k-globex\0"] {
            assert_eq!(keys.find(wrong), None, "{wrong:?}");
        }
        assert!(!format!("{keys:?}").contains(&hex(&sha256(b"k-acme"))[..16]));
        let check = Check::ApiKeys(keys);
        assert_eq!(check.verify(None), Err(Failure::Missing));
        assert_eq!(check.verify(Some("nope")), Err(Failure::UnknownKey { keys: 2 }));
        assert_eq!(Failure::UnknownKey { keys: 2 }.to_string(), "a key that is none of the 2 keys (not shown)");
    }

    #[test]
    fn same_digest_compares_every_byte() {
        let a = sha256(b"a");
        let mut b = a;
        assert!(same_digest(&a, &b));
        b[31] ^= 1;
        assert!(!same_digest(&a, &b));
        b = a;
        b[0] ^= 0x80;
        assert!(!same_digest(&a, &b));
    }

    #[test]
    fn users_check_basic_credentials_and_say_why_not() {
        let alice = PasswordHash::new(b"open sesame", b"saltsaltsaltsalt", 1_000);
        let users = Check::Basic(Users::new(vec![("alice".into(), alice)]));
        let header = |creds: &str| format!("Basic {}", base64::encode_unpadded(creds.as_bytes()));
        assert_eq!(users.verify(Some(&header("alice:open sesame"))), Ok("alice"));
        let wrong = users.verify(Some(&header("alice:open sesamE"))).unwrap_err();
        assert_eq!(wrong.to_string(), "a wrong password for user \"alice\"");
        let unknown = users.verify(Some(&header("bob:open sesame"))).unwrap_err();
        assert_eq!(unknown.to_string(), "no user \"bob\"");
        assert_eq!(users.verify(Some("Basic %%%")), Err(Failure::Malformed(basic::Malformed::NotBase64)));
        assert_eq!(users.verify(Some("Bearer x")), Err(Failure::Malformed(basic::Malformed::NotBasic)));
        assert_eq!(users.verify(None), Err(Failure::Missing));
        for failure in [wrong, unknown] {
            assert!(!failure.to_string().contains("sesame"));
        }
    }

    #[test]
    fn accepted_credentials_are_remembered_only_when_right_and_within_bounds() {
        let users = Users::new(vec![("u".into(), PasswordHash::new(b"pw", b"saltsaltsaltsalt", 100))]);
        let right = format!("Basic {}", base64::encode_unpadded(b"u:pw"));
        let wrong = format!("Basic {}", base64::encode_unpadded(b"u:pW"));
        assert_eq!(users.check(&wrong), Err(Failure::WrongPassword("u".into())));
        assert!(users.accepted.lock().unwrap().entries.is_empty(), "a refusal is not remembered");
        assert_eq!(users.check(&right), Ok("u"));
        assert_eq!(users.check(&right), Ok("u"));
        assert_eq!(users.accepted.lock().unwrap().entries.len(), 1);
        // The same credentials written differently are checked on their own, and remembered apart.
        let lower = right.replacen("Basic", "basic", 1);
        assert_eq!(users.check(&lower), Ok("u"));
        for spaces in 1..=2 * REMEMBERED_CREDENTIALS {
            let padded = format!("Basic{}{}", " ".repeat(spaces), &right[6..]);
            assert_eq!(users.check(&padded), Ok("u"));
        }
        assert_eq!(users.accepted.lock().unwrap().entries.len(), REMEMBERED_CREDENTIALS);
        assert_eq!(users.clone().accepted.lock().unwrap().entries.len(), 0);
        assert_eq!(users.clone(), users);
    }
}
