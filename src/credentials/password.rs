//! Salted password hashes for basic auth: PBKDF2-HMAC-SHA256, written in the PHC string format as
//! `$pbkdf2-sha256$i=<iterations>$<salt>$<hash>` (salt and hash in unpadded standard base64), which is what
//! `rulefilter hash-password` prints.
//!
//! Why PBKDF2 and this few iterations: the proxy checks a password on every request that carries one, inside
//! a Wasm VM, so the check has to stay well under a millisecond (docs/authentication.md has the figures measured
//! in Envoy). Memory-hard hashes (scrypt, Argon2) cost megabytes per check and milliseconds by design. The
//! iteration count makes a leaked document slower to attack, but the real protection is the password's own
//! entropy: `hash-password --generate` makes one of 128 bits, against which even plain SHA-256 could not be
//! brute-forced.

use hmac::Hmac;
use sha2::Sha256;

use super::base64;

/// The scheme name in the PHC string.
pub const SCHEME: &str = "pbkdf2-sha256";
/// The iterations `hash-password` uses unless told otherwise: about 0.3 ms of a worker's time in Envoy's V8
/// on a loaded machine (docs/authentication.md), paid once per client and worker thanks to
/// [`super::REMEMBERED_CREDENTIALS`], and by every wrong guess.
pub const DEFAULT_ITERATIONS: u32 = 200;
/// Fewer would make a leaked document's hashes hardly slower to attack than plain SHA-256.
pub const MIN_ITERATIONS: u32 = 100;
/// More would let each wrong guess cost a worker over 10 ms.
pub const MAX_ITERATIONS: u32 = 10_000;
/// Salt bytes `hash-password` generates; documents may use 16 to 64.
pub const SALT_BYTES: usize = 16;
const MAX_SALT_BYTES: usize = 64;
/// The derived key: one SHA-256 block of output.
pub const HASH_BYTES: usize = 32;

/// A parsed password hash.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash {
    iterations: u32,
    salt: Vec<u8>,
    hash: [u8; HASH_BYTES],
}

impl std::fmt::Debug for PasswordHash {
    /// The iterations only: a derived key is not printed anywhere, even in debug output.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PasswordHash({SCHEME}, {} iterations)", self.iterations)
    }
}

impl PasswordHash {
    /// Reads a PHC string; the error says which part is wrong and what is expected, without repeating it.
    pub fn parse(text: &str) -> Result<Self, String> {
        const FORM: &str = "`$pbkdf2-sha256$i=<iterations>$<salt>$<hash>`, as `rulefilter hash-password` prints it";
        let mut parts = text.split('$');
        let (Some(""), Some(scheme), Some(params), Some(salt), Some(hash), None) =
            (parts.next(), parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(format!("not a password hash; write {FORM}"));
        };
        if scheme != SCHEME {
            return Err(format!("unknown hash scheme {scheme:?}; only {SCHEME} is read: write {FORM}"));
        }
        let iterations = params
            .strip_prefix("i=")
            .and_then(|n| n.parse::<u32>().ok())
            .ok_or_else(|| format!("the iterations part is `i=<number>`; write {FORM}"))?;
        if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(&iterations) {
            return Err(format!(
                "{iterations} iterations; use {MIN_ITERATIONS} to {MAX_ITERATIONS} (`rulefilter hash-password` uses {DEFAULT_ITERATIONS})"
            ));
        }
        let salt = base64::decode(salt)
            .ok_or("the salt is not base64; copy the hash whole from `rulefilter hash-password`")?;
        if !(SALT_BYTES..=MAX_SALT_BYTES).contains(&salt.len()) {
            return Err(format!("a salt of {} bytes; use {SALT_BYTES} to {MAX_SALT_BYTES} random bytes", salt.len()));
        }
        let hash =
            base64::decode(hash).ok_or("the hash is not base64; copy it whole from `rulefilter hash-password`")?;
        let hash: [u8; HASH_BYTES] = hash.as_slice().try_into().map_err(|_| {
            format!("a hash of {} bytes; PBKDF2-HMAC-SHA256 gives {HASH_BYTES}: copy it whole from `rulefilter hash-password`", hash.len())
        })?;
        Ok(PasswordHash { iterations, salt, hash })
    }

    /// Hashes `password` with `salt`: what `rulefilter hash-password` writes.
    pub fn new(password: &[u8], salt: &[u8], iterations: u32) -> Self {
        PasswordHash { iterations, salt: salt.to_vec(), hash: derive(password, salt, iterations) }
    }

    /// Whether `password` is the one hashed; the derived keys are compared in constant time.
    pub fn verify(&self, password: &[u8]) -> bool {
        super::same_digest(&derive(password, &self.salt, self.iterations), &self.hash)
    }

    pub fn iterations(&self) -> u32 {
        self.iterations
    }
}

impl std::fmt::Display for PasswordHash {
    /// The PHC string.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "${SCHEME}$i={}${}${}",
            self.iterations,
            base64::encode_unpadded(&self.salt),
            base64::encode_unpadded(&self.hash)
        )
    }
}

fn derive(password: &[u8], salt: &[u8], iterations: u32) -> [u8; HASH_BYTES] {
    let mut out = [0u8; HASH_BYTES];
    // Only fails for an output longer than HMAC-SHA256 can give (2^32 - 1 blocks); ours is one block.
    let _ = pbkdf2::pbkdf2::<Hmac<Sha256>>(password, salt, iterations, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_7914_pbkdf2_sha256_vector() {
        // RFC 7914 §11: PBKDF2-HMAC-SHA-256 (P="passwd", S="salt", c=1, dkLen=64), its first 32 bytes.
        let expected = "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc";
        let hex: String = derive(b"passwd", b"salt", 1).iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, expected);
    }

    #[test]
    fn hashes_round_trip_and_verify() {
        let hash = PasswordHash::new(b"correct horse", b"0123456789abcdef", 1_000);
        let text = hash.to_string();
        assert!(text.starts_with("$pbkdf2-sha256$i=1000$MDEyMzQ1Njc4OWFiY2RlZg$"), "{text}");
        let parsed = PasswordHash::parse(&text).unwrap();
        assert_eq!(parsed, hash);
        assert!(parsed.verify(b"correct horse"));
        assert!(!parsed.verify(b"correct horsE"));
        assert!(!parsed.verify(b""));
        assert!(!format!("{parsed:?}").contains(&text[text.len() - 20..]), "Debug shows no key");
    }

    #[test]
    fn malformed_hashes_say_what_is_wrong() {
        let good = PasswordHash::new(b"pw", b"0123456789abcdef", 1_000).to_string();
        let (head, key) = good.rsplit_once('$').unwrap();
        let cases = [
            ("plain-password".to_owned(), "not a password hash"),
            (good.replace("pbkdf2-sha256", "argon2id"), "unknown hash scheme \"argon2id\""),
            (good.replace("i=1000", "rounds=1000"), "the iterations part is `i=<number>`"),
            (good.replace("i=1000", "i=10"), "10 iterations; use 100 to 10000"),
            (good.replace("i=1000", "i=1000000"), "1000000 iterations"),
            (good.replace("MDEyMzQ1Njc4OWFiY2RlZg", "MDEy"), "a salt of 3 bytes; use 16 to 64"),
            (good.replace("MDEyMzQ1Njc4OWFiY2RlZg", "!!"), "the salt is not base64"),
            (format!("{head}${}", &key[..20]), "a hash of 15 bytes; PBKDF2-HMAC-SHA256 gives 32"),
            (format!("{head}$*{}", &key[1..]), "the hash is not base64"),
            (format!("{good}$extra"), "not a password hash"),
        ];
        for (text, wanted) in cases {
            let message = PasswordHash::parse(&text).unwrap_err();
            assert!(message.contains(wanted), "{text}: {message}");
        }
    }
}
