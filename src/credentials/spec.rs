//! The `api_key` and `basic_auth` conditions as written in a document (see [`crate::config`] for the rest).
//! Only their shape is checked here; hashes, names and places are judged when the document compiles.

use crate::decode_struct;

/// `api_key`: a header or a query parameter holds one of the keys.
#[derive(Debug, Default)]
pub struct ApiKeySpec {
    /// The request header carrying the key (one of `header` and `query`).
    pub header: Option<String>,
    /// The query parameter carrying the key, compared decoded.
    pub query: Option<String>,
    /// The keys; the one presented must be one of them.
    pub keys: Vec<ApiKeyEntry>,
}
decode_struct!(ApiKeySpec { header: optional, query: optional, keys: required });

/// One key: its name (what `${auth.key_name}` renders) and the key itself as a SHA-256 hash, or the name of a
/// `vmConfig.env` variable holding it in clear.
#[derive(Debug, Default)]
pub struct ApiKeyEntry {
    pub name: String,
    /// 64 hex digits: `printf %s "$KEY" | sha256sum`.
    pub sha256: Option<String>,
    /// A `vmConfig.env` variable holding the key; hashed when the document compiles.
    pub env: Option<String>,
}
decode_struct!(ApiKeyEntry { name: required, sha256: optional, env: optional });

/// `basic_auth`: the `authorization` header holds Basic credentials of one of the users.
#[derive(Debug, Default)]
pub struct BasicAuthSpec {
    pub users: Vec<BasicUserEntry>,
}
decode_struct!(BasicAuthSpec { users: required });

/// One user: the name (what `${auth.user}` renders) and the password hash `rulefilter hash-password` printed.
#[derive(Debug, Default)]
pub struct BasicUserEntry {
    pub user: String,
    pub hash: String,
}
decode_struct!(BasicUserEntry { user: required, hash: required });
