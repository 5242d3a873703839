//! The `api_key` and `basic_auth` conditions as written in a document (see [`crate::config`] for the rest).
//! Only their shape is checked here; hashes, names and places are judged when the document compiles.

use serde::Deserialize;

/// `api_key`: a header or a query parameter holds one of the keys.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeySpec {
    /// The request header carrying the key (one of `header` and `query`).
    pub header: Option<String>,
    /// The query parameter carrying the key, compared decoded.
    pub query: Option<String>,
    /// The keys; the one presented must be one of them.
    pub keys: Vec<ApiKeyEntry>,
}

/// One key: its name (what `${auth.key_name}` renders) and the key itself as a SHA-256 hash, or the name of a
/// `vmConfig.env` variable holding it in clear.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyEntry {
    pub name: String,
    /// 64 hex digits: `printf %s "$KEY" | sha256sum`.
    pub sha256: Option<String>,
    /// A `vmConfig.env` variable holding the key; hashed when the document compiles.
    pub env: Option<String>,
}

/// `basic_auth`: the `authorization` header holds Basic credentials of one of the users.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicAuthSpec {
    pub users: Vec<BasicUserEntry>,
}

/// One user: the name (what `${auth.user}` renders) and the password hash `rulefilter hash-password` printed.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicUserEntry {
    pub user: String,
    pub hash: String,
}
