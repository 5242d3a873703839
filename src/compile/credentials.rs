//! Compiling the `api_key` and `basic_auth` conditions and the `${auth.…}` references (see
//! [`crate::credentials`]). A condition becomes a [`Slot::Credential`], the name the credentials belong to, and a
//! presence test on it; `${auth.key_name}` and `${auth.user}` read the same slot, so a request's credentials
//! are checked once, when a rule first needs them.

use std::collections::HashMap;

use super::{is_header_value, request_header_name, Compiler, RuleContext};
use crate::credentials::spec::{ApiKeySpec, BasicAuthSpec};
use crate::credentials::{self, ApiKeys, Check, CredentialSlot, PasswordHash, Users};
use crate::ruleset::{Condition, Expr, Piece, Slot, Test, View};

/// More keys or users belong in an identity provider, not in a rules document.
pub const MAX_CREDENTIALS: usize = 1_000;
/// A key's or user's name is rendered into headers by `${auth.…}`.
const MAX_NAME_BYTES: usize = 128;

/// A credential condition as compiled, for the `${auth.…}` references after it: its slot, `None` when it was
/// refused (its error is reported; references to it then add none of their own).
pub(super) struct Written {
    kind: Kind,
    slot: Option<usize>,
}

/// Which kind of credentials a `${auth.…}` reference names.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    ApiKey,
    Basic,
}

impl Kind {
    fn condition(self) -> &'static str {
        match self {
            Kind::ApiKey => "api_key",
            Kind::Basic => "basic_auth",
        }
    }

    fn of(slot: &Slot) -> Option<Kind> {
        match slot {
            Slot::Credential(c) if matches!(c.check, Check::ApiKeys(_)) => Some(Kind::ApiKey),
            Slot::Credential(c) if matches!(c.check, Check::Basic(_)) => Some(Kind::Basic),
            _ => None,
        }
    }
}

impl Compiler<'_> {
    /// `match.api_key`: the header or query parameter holds one of the keys.
    pub(super) fn api_key_condition(&mut self, spec: &ApiKeySpec, field: &str, ctx: &mut RuleContext) -> Option<Expr> {
        let expr = self.api_key_expr(spec, field, ctx);
        self.written(Kind::ApiKey, &expr);
        expr
    }

    fn api_key_expr(&mut self, spec: &ApiKeySpec, field: &str, ctx: &mut RuleContext) -> Option<Expr> {
        let before = ctx.error_count();
        let (source, view, place) = match (&spec.header, &spec.query) {
            (Some(name), None) => {
                let name = request_header_name(name, &format!("{field}.header"), ctx)?;
                let place = format!("header {name}");
                (self.request_header(&name, ctx), View::Whole, place)
            }
            (None, Some(name)) if !name.is_empty() => {
                let place = format!("query parameter {name}");
                (self.request_header(":path", ctx), View::QueryParam(name.as_str().into()), place)
            }
            (None, Some(_)) => {
                ctx.error(format!("{field}.query"), "a query parameter needs a name");
                return None;
            }
            (None, None) => {
                ctx.error(field, "say where the key is: `header: x-api-key` or `query: api_key`");
                return None;
            }
            (Some(_), Some(_)) => {
                ctx.error(
                    field,
                    "give one of `header` and `query`; for a key in either, write two conditions under `any`",
                );
                return None;
            }
        };
        let at = format!("{field}.keys");
        check_count(spec.keys.len(), "key", &at, ctx);
        let mut keys: Vec<(Box<str>, credentials::Digest32)> = Vec::with_capacity(spec.keys.len());
        // Each hash with the index it was written at, for naming a repeated key.
        let mut hashes: Vec<(usize, credentials::Digest32)> = Vec::with_capacity(spec.keys.len());
        for (i, key) in spec.keys.iter().enumerate() {
            let at = format!("{at}[{i}]");
            // Names may repeat: a partner's old and new key while it rotates them.
            check_name(&key.name, "key", &format!("{at}.name"), ctx);
            let hash = match (&key.sha256, &key.env) {
                (Some(hex), None) => {
                    credentials::parse_sha256_hex(hex).map_err(|m| ctx.error(format!("{at}.sha256"), m)).ok()
                }
                (None, Some(variable)) => self.env_key(variable, &format!("{at}.env"), ctx),
                (None, None) => {
                    ctx.error(
                        &at,
                        "give the key as `sha256: <64 hex digits>` or `env: <vmConfig.env variable>`; never in clear",
                    );
                    None
                }
                (Some(_), Some(_)) => {
                    ctx.error(&at, "give one of `sha256` and `env`");
                    None
                }
            };
            let Some(hash) = hash else { continue };
            // Hashes are compared, never shown: the earlier key is named instead.
            match hashes.iter().find(|(_, h)| *h == hash) {
                Some((first, _)) => {
                    ctx.error(&at, format!("the same key as {field}.keys[{first}]; a key has one name"))
                }
                None => {
                    hashes.push((i, hash));
                    keys.push((key.name.as_str().into(), hash));
                }
            }
        }
        if ctx.error_count() != before {
            return None;
        }
        let mut names: Vec<&str> = Vec::with_capacity(keys.len());
        for (name, _) in &keys {
            if !names.contains(&&**name) {
                names.push(name);
            }
        }
        let wanted = format!("a key of {} in the {place}", listed(&names));
        let check = Check::ApiKeys(ApiKeys::new(keys));
        Some(self.credential_condition(field, wanted, CredentialSlot { source, view, check }, ctx))
    }

    /// `match.basic_auth`: the `authorization` header holds Basic credentials of one of the users.
    pub(super) fn basic_auth_condition(
        &mut self,
        spec: &BasicAuthSpec,
        field: &str,
        ctx: &mut RuleContext,
    ) -> Option<Expr> {
        let expr = self.basic_auth_expr(spec, field, ctx);
        self.written(Kind::Basic, &expr);
        expr
    }

    fn written(&mut self, kind: Kind, expr: &Option<Expr>) {
        let slot = match expr {
            Some(Expr::Leaf(condition)) => Some(condition.slot),
            _ => None,
        };
        self.credential_conditions.push(Written { kind, slot });
    }

    fn basic_auth_expr(&mut self, spec: &BasicAuthSpec, field: &str, ctx: &mut RuleContext) -> Option<Expr> {
        let before = ctx.error_count();
        let at = format!("{field}.users");
        check_count(spec.users.len(), "user", &at, ctx);
        let mut users = Vec::with_capacity(spec.users.len());
        let mut names: HashMap<&str, usize> = HashMap::new();
        for (i, user) in spec.users.iter().enumerate() {
            let at = format!("{at}[{i}]");
            if check_name(&user.user, "user", &format!("{at}.user"), ctx) {
                if let Some(first) = names.insert(&user.user, i) {
                    let message = format!("{:?} is already the name of [{first}]; give each user its own", user.user);
                    ctx.error(format!("{at}.user"), message);
                }
            }
            if user.user.contains(':') {
                ctx.error(format!("{at}.user"), "a user name cannot contain `:` (RFC 7617: it ends the name)");
            }
            match PasswordHash::parse(&user.hash) {
                Ok(hash) => users.push((user.user.as_str().into(), hash)),
                Err(message) => ctx.error(format!("{at}.hash"), message),
            }
        }
        if ctx.error_count() != before {
            return None;
        }
        let names: Vec<&str> = users.iter().map(|(name, _): &(Box<str>, _)| &**name).collect();
        let wanted = format!("Basic credentials of {} in the authorization header", listed(&names));
        let source = self.request_header("authorization", ctx);
        let check = Check::Basic(Users::new(users));
        Some(self.credential_condition(field, wanted, CredentialSlot { source, view: View::Whole, check }, ctx))
    }

    fn credential_condition(
        &mut self,
        field: &str,
        wanted: String,
        slot: CredentialSlot,
        ctx: &mut RuleContext,
    ) -> Expr {
        let slot = self.slot(Slot::Credential(Box::new(slot)), ctx);
        Expr::Leaf(Condition {
            field: field.into(),
            wanted: wanted.into(),
            slot,
            view: View::Whole,
            test: Test::Present(true),
            invert: false,
            regex_id: None,
            captures: Vec::new(),
        })
    }

    /// A key held in clear by a `vmConfig.env` variable, hashed now. Messages name the variable, never its value.
    fn env_key(&self, variable: &str, field: &str, ctx: &mut RuleContext) -> Option<credentials::Digest32> {
        let Some(value) = self.env.var(variable) else {
            ctx.error(field, format!("the plugin has no environment variable {variable:?} (vmConfig.env)"));
            return None;
        };
        if value.is_empty() {
            ctx.error(field, format!("the environment variable {variable:?} is empty; it should hold the key"));
            return None;
        }
        if value.trim() != value || !is_header_value(&value) {
            let message = format!(
                "the environment variable {variable:?} starts or ends with a space, or holds a line break: no request can present such a key (check how the secret was written)"
            );
            ctx.error(field, message);
            return None;
        }
        Some(credentials::sha256(value.as_bytes()))
    }

    /// `${auth.key_name}` / `${auth.user}`: the name from this rule's condition of that kind, or else from the
    /// nearest one above it (the usual pair: a rule refusing requests without credentials, then one using them).
    pub(super) fn auth_reference(
        &mut self,
        what: &str,
        reference: &str,
        field: &str,
        ctx: &mut RuleContext,
    ) -> Option<Piece> {
        let kind = match what {
            "key_name" => Kind::ApiKey,
            "user" => Kind::Basic,
            _ => {
                ctx.error(
                    field,
                    format!(
                        "unknown reference `${{{reference}}}`; known: auth.key_name (api_key), auth.user (basic_auth)"
                    ),
                );
                return None;
            }
        };
        let of_kind = |slot: &usize| self.slots.get(*slot).and_then(Kind::of) == Some(kind);
        let in_rule: Vec<usize> = ctx.slots_read.iter().copied().filter(of_kind).collect();
        let earlier = match self.credential_conditions.iter().rfind(|w| w.kind == kind) {
            Some(Written { slot: Some(slot), .. }) => Some(*slot),
            // That condition was refused, and said why.
            Some(Written { slot: None, .. }) if in_rule.is_empty() => return None,
            _ => None,
        };
        let condition = kind.condition();
        let slot = match (in_rule.as_slice(), earlier) {
            ([slot], _) => *slot,
            ([], Some(slot)) => {
                // Read by this rule too: a response rule's then comes with the request (see `carry`).
                if !ctx.slots_read.contains(&slot) {
                    ctx.slots_read.push(slot);
                }
                slot
            }
            ([], None) => {
                ctx.error(
                    field,
                    format!("`${{{reference}}}` needs a `{condition}` condition in this rule or an earlier one"),
                );
                return None;
            }
            (_, _) => {
                ctx.error(field, format!("`${{{reference}}}` is ambiguous: this rule has several `{condition}` conditions; split the rule"));
                return None;
            }
        };
        Some(Piece::Value { slot, view: View::Whole })
    }
}

/// At least one, at most [`MAX_CREDENTIALS`].
fn check_count(count: usize, what: &str, field: &str, ctx: &mut RuleContext) {
    if count == 0 {
        ctx.error(field, format!("give at least one {what}"));
    } else if count > MAX_CREDENTIALS {
        ctx.error(field, format!("{count} {what}s; at most {MAX_CREDENTIALS} (more belong in an identity provider)"));
    }
}

/// A key's or user's name: what `${auth.…}` writes into headers, so one line, trimmed and short. Whether it
/// is.
fn check_name(name: &str, what: &str, field: &str, ctx: &mut RuleContext) -> bool {
    if name.is_empty() || name.trim() != name || !is_header_value(name) || name.chars().any(char::is_control) {
        ctx.error(field, format!("a {what} name is one line of text, not empty, without leading or trailing spaces"));
        false
    } else if name.len() > MAX_NAME_BYTES {
        ctx.error(field, format!("{} bytes; a {what} name has at most {MAX_NAME_BYTES}", name.len()));
        false
    } else {
        true
    }
}

/// Names for a trace's "wanted": the first few, then how many more.
fn listed(names: &[&str]) -> String {
    const SHOWN: usize = 5;
    let mut text = crate::join::join(names.get(..SHOWN).unwrap_or(names), ", ");
    if names.len() > SHOWN {
        text.push_str(&format!(" and {} more", names.len() - SHOWN));
    }
    text
}
