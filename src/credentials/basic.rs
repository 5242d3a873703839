//! Reading `Authorization: Basic <base64(user:password)>` (RFC 7617), refusing anything malformed with a reason
//! a trace can print; the reason never contains the password.

use super::base64;

/// Longer `authorization` values are refused before decoding: no real user name and password need 1 KiB,
/// and a huge header should cost nothing.
pub const MAX_AUTHORIZATION_BYTES: usize = 1024;

/// Why an `authorization` header holds no usable basic credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Malformed {
    /// Another scheme (`Bearer …`), or no scheme at all.
    NotBasic,
    TooLong(usize),
    NotBase64,
    /// The decoded credentials have no `:` between user and password.
    NoColon,
    /// The user name is not UTF-8 (the password may be any bytes).
    UserNotUtf8,
}

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Malformed::NotBasic => f.write_str("the authorization header holds no Basic credentials"),
            Malformed::TooLong(bytes) => write!(
                f,
                "the authorization header is {bytes} bytes long; Basic credentials over {MAX_AUTHORIZATION_BYTES} are refused"
            ),
            Malformed::NotBase64 => f.write_str("the Basic credentials are not valid base64"),
            Malformed::NoColon => f.write_str("the Basic credentials have no `:` between user and password"),
            Malformed::UserNotUtf8 => f.write_str("the Basic credentials' user name is not UTF-8"),
        }
    }
}

/// A user name and password, decoded.
#[derive(PartialEq, Eq)]
pub struct Credentials {
    pub user: String,
    pub password: Vec<u8>,
}

/// Decodes an `authorization` header value. The scheme is case-insensitive; spaces around the token are allowed.
pub fn parse(value: &str) -> Result<Credentials, Malformed> {
    if value.len() > MAX_AUTHORIZATION_BYTES {
        return Err(Malformed::TooLong(value.len()));
    }
    let value = value.trim_matches([' ', '\t']);
    let (scheme, token) = value.split_once([' ', '\t']).ok_or(Malformed::NotBasic)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(Malformed::NotBasic);
    }
    let decoded = base64::decode(token.trim_start_matches([' ', '\t'])).ok_or(Malformed::NotBase64)?;
    let colon = decoded.iter().position(|&b| b == b':').ok_or(Malformed::NoColon)?;
    let (user, password) = decoded.split_at(colon);
    let user = std::str::from_utf8(user).map_err(|_| Malformed::UserNotUtf8)?;
    Ok(Credentials { user: user.to_owned(), password: password.get(1..).unwrap_or_default().to_vec() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(value: &str) -> (String, String) {
        let c = parse(value).unwrap();
        (c.user, String::from_utf8(c.password).unwrap())
    }

    #[test]
    fn basic_credentials_are_decoded() {
        let aladdin = ("Aladdin".to_owned(), "open sesame".to_owned());
        assert_eq!(parsed("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="), aladdin);
        assert_eq!(parsed("basic   QWxhZGRpbjpvcGVuIHNlc2FtZQ== "), aladdin);
        // Only the first colon separates: passwords may hold colons, user names may not (RFC 7617).
        assert_eq!(parsed("Basic dTpwOnE="), ("u".to_owned(), "p:q".to_owned()));
        assert_eq!(parsed("Basic Og=="), (String::new(), String::new()));
    }

    #[test]
    fn malformed_values_are_refused_with_a_reason() {
        assert_eq!(parse("Bearer abc").err(), Some(Malformed::NotBasic));
        assert_eq!(parse("Basic").err(), Some(Malformed::NotBasic));
        assert_eq!(parse("QWxhZGRpbjpvcGVuIHNlc2FtZQ==").err(), Some(Malformed::NotBasic));
        assert_eq!(parse("Basic !!!!").err(), Some(Malformed::NotBase64));
        assert_eq!(parse("Basic dXNlcg==").err(), Some(Malformed::NoColon));
        assert_eq!(parse("Basic /w==").err(), Some(Malformed::NoColon));
        assert_eq!(parse("Basic /zpw").err(), Some(Malformed::UserNotUtf8));
        let huge = format!("Basic {}", "QUFB".repeat(1000));
        assert_eq!(parse(&huge).err(), Some(Malformed::TooLong(4006)));
        for m in [Malformed::NotBasic, Malformed::TooLong(2000), Malformed::NotBase64, Malformed::NoColon] {
            assert!(!m.to_string().is_empty());
        }
    }
}
