//! Compiling a `rate_limit` action: its key template, its limit and its table of buckets.

use super::{Compiler, RuleContext};
use crate::config::{Integer, RateLimitSpec};
use crate::error::Phase;
use crate::ratelimit::{Buckets, Limit, Per, DEFAULT_MAX_KEYS, MAX_KEYS_LIMIT, MAX_REQUESTS};
use crate::ruleset::{Action, RateLimit};

/// The key when none is written: the client address.
const DEFAULT_KEY: &str = "${source.ip}";

impl Compiler<'_> {
    pub(super) fn rate_limit(&mut self, spec: &RateLimitSpec, field: &str, ctx: &mut RuleContext) -> Option<Action> {
        let before = ctx.error_count();
        if ctx.phase == Phase::Response {
            ctx.error(
                field,
                "a rate limit in the response phase: the request has already gone upstream; move it to a request rule",
            );
        }
        let key_written = spec.key.as_deref().unwrap_or(DEFAULT_KEY);
        let key = self.template(key_written, &format!("{field}.key"), ctx);
        let requests = bounded(spec.requests, 1, MAX_REQUESTS, &format!("{field}.requests"), ctx);
        let per = Per::parse(&spec.per);
        if per.is_none() {
            ctx.error(format!("{field}.per"), format!("{:?} is not a period; write second, minute or hour", spec.per));
        }
        let burst = match spec.burst {
            Some(burst) => bounded(burst, 1, MAX_REQUESTS, &format!("{field}.burst"), ctx),
            None => requests,
        };
        let max_keys = match spec.max_keys {
            Some(max_keys) => bounded(max_keys, 1, MAX_KEYS_LIMIT, &format!("{field}.max_keys"), ctx),
            None => Some(DEFAULT_MAX_KEYS),
        };
        let fail_closed = match spec.fail.as_deref() {
            None | Some("open") => false,
            Some("closed") => true,
            Some(other) => {
                ctx.error(
                    format!("{field}.fail"),
                    format!(
                        "{other:?} is not a failure mode; write open (let the request go on) or closed (answer 503)"
                    ),
                );
                false
            }
        };
        if ctx.error_count() != before {
            return None;
        }
        let limit = Limit { requests: requests?, per: per?, burst: burst? };
        let buckets = Buckets::new(ctx.location.name.as_deref().unwrap_or_default(), limit, max_keys?);
        Some(Action::RateLimit(RateLimit { key: key?, key_written: key_written.into(), buckets, fail_closed }))
    }
}

/// A whole number in `low..=high`, or an error at `field` saying so.
fn bounded(value: Integer, low: u64, high: u64, field: &str, ctx: &mut RuleContext) -> Option<u64> {
    if (low..=high).contains(&value.0) {
        Some(value.0)
    } else {
        ctx.error(field, format!("{} is out of range; write a whole number from {low} to {high}", value.0));
        None
    }
}
