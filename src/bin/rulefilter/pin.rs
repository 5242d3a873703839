//! Pinning a WasmPlugin to one image: `spec.sha256` for an `oci://` url is the image *manifest* digest (what
//! the registry answers in `Docker-Content-Digest`), which the istio-agent compares with what it pulls.
//! It comes from the url (`…@sha256:<hex>`), from `--sha256`, or from the `build/image.digest` that
//! `rulefilter image` wrote.

use std::path::Path;

/// Where `rulefilter image` leaves the digest of the image it built.
pub const BUILT_DIGEST: &str = "build/image.digest";

/// 64 lower-case hex digits from `sha256:<hex>` or `<hex>`; `what` names the source in the error.
pub fn parse_digest(text: &str, what: &str) -> Result<String, String> {
    let hex = text.trim().strip_prefix("sha256:").unwrap_or(text.trim());
    if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(hex.to_ascii_lowercase())
    } else {
        Err(format!("{what} takes a SHA-256 digest, sha256:<64 hex digits> or the 64 hex digits, not {text:?}"))
    }
}

/// The `sha256` a WasmPlugin gets, and what to tell the user about it once the manifest is written.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Pin {
    /// 64 hex digits, or `None` for an unpinned url.
    pub sha256: Option<String>,
    /// Where the digest came from, or a warning that there is none.
    pub note: Option<String>,
}

/// The pin for `url`, given `--sha256` (already checked by [`parse_digest`]). For `oci://` urls without
/// either a digest in the url or `--sha256`, the digest `rulefilter image` wrote to `built` is used, and the
/// note says so; without that file the url stays unpinned and the note warns. Other urls keep what was given.
pub fn resolve(url: &str, given: Option<String>, built: &Path) -> Result<Pin, String> {
    let Some(image) = url.strip_prefix("oci://") else { return Ok(Pin { sha256: given, note: None }) };
    if let Some((_, digest)) = image.split_once('@') {
        let in_url = parse_digest(digest, "an image url's @")?;
        return match given {
            Some(flag) if flag != in_url => {
                Err(format!("--sha256 {flag} differs from the digest in --image ({in_url}); give one of them"))
            }
            _ => Ok(Pin { sha256: Some(in_url), note: None }),
        };
    }
    if given.is_some() {
        return Ok(Pin { sha256: given, note: None });
    }
    let text = match std::fs::read_to_string(built) {
        Ok(text) => text,
        Err(e) => {
            // Istio accepts an unpinned tag; say what that means rather than refuse.
            let note = format!(
                "rulefilter: warning: {url} is not pinned ({} cannot be read: {e}); proxies run whatever the tag names when they pull. Pin with --sha256, an @sha256:… url, or run `make image` first",
                built.display()
            );
            return Ok(Pin { sha256: None, note: Some(note) });
        }
    };
    let hex = parse_digest(&text, &built.display().to_string())?;
    let note = format!("rulefilter: pinned {url} to sha256:{hex}, the image `make image` built ({})", built.display());
    Ok(Pin { sha256: Some(hex), note: Some(note) })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const HEX: &str = "5a21e6a60762dc039fec7086c561bfa5527e24f3d4a1a49be4719abdbd310952";

    #[test]
    fn a_digest_is_64_hex_digits_with_or_without_its_algorithm() {
        assert_eq!(parse_digest(&format!("sha256:{HEX}"), "--sha256").unwrap(), HEX);
        assert_eq!(parse_digest(&HEX.to_ascii_uppercase(), "--sha256").unwrap(), HEX);
        for bad in ["sha256:abc", "sha512:00", &HEX[1..], &format!("{}g", &HEX[1..])] {
            assert!(parse_digest(bad, "--sha256").unwrap_err().contains("64 hex digits"), "{bad}");
        }
    }

    #[test]
    fn the_url_digest_wins_unless_sha256_contradicts_it() {
        let url = format!("oci://r.example.com/rf@sha256:{HEX}");
        let missing = Path::new("/nonexistent/image.digest");
        assert_eq!(resolve(&url, None, missing).unwrap().sha256.as_deref(), Some(HEX));
        assert_eq!(resolve(&url, Some(HEX.into()), missing).unwrap().sha256.as_deref(), Some(HEX));
        assert!(resolve(&url, Some("0".repeat(64)), missing).unwrap_err().contains("differs"));
        assert!(resolve("oci://r.example.com/rf@sha256:12", None, missing).is_err());
    }

    #[test]
    fn a_tag_without_sha256_takes_the_built_digest_if_there_is_one() {
        let missing = Path::new("/nonexistent/image.digest");
        let unpinned = resolve("oci://r.example.com/rf:1", None, missing).unwrap();
        assert_eq!(unpinned.sha256, None);
        assert!(unpinned.note.unwrap().contains("is not pinned"));
        let built = std::env::temp_dir().join(format!("rulefilter-pin-{}.digest", std::process::id()));
        std::fs::write(&built, format!("sha256:{HEX}\n")).unwrap();
        assert_eq!(resolve("oci://r.example.com/rf:1", None, &built).unwrap().sha256.as_deref(), Some(HEX));
        std::fs::write(&built, "sha256:nothex\n").unwrap();
        assert!(resolve("oci://r.example.com/rf:1", None, &built).is_err());
        std::fs::remove_file(&built).ok();
        assert_eq!(resolve("https://x/rf.wasm", None, missing).unwrap(), Pin::default());
    }
}
