//! Running a `rate_limit` action: the request's key picks a bucket in the proxy's shared data
//! ([`crate::ratelimit`]); over the limit the proxy answers 429, or in dry run only says it would.

use super::{Host, Outcome, Run};
use crate::ratelimit::{ceil_seconds, key_hash, Bucket, SharedData, Verdict};
use crate::ruleset::{RateLimit, Rule};
use crate::trace::Event;

/// The engine's host as the rate limiter's store.
struct HostData<'h, H: Host>(&'h mut H);

impl<H: Host> SharedData for HostData<'_, H> {
    fn get(&mut self, key: &str) -> Result<Option<(Vec<u8>, u32)>, String> {
        self.0.shared_data(key)
    }

    fn set(&mut self, key: &str, value: &[u8], cas: u32) -> Result<bool, String> {
        self.0.set_shared_data(key, value, cas)
    }
}

impl<'r, H: Host> Run<'r, '_, H> {
    pub(super) fn rate_limit(&mut self, rule: &Rule, limit: &RateLimit, captures: &[Option<String>]) -> Outcome {
        let hash = key_hash(&self.render(&limit.key, captures));
        let verdict = match self.host.now_nanos() {
            Some(now) => limit.buckets.take(&mut HostData(&mut *self.host), hash, now),
            None => Verdict::Failed("the proxy gave no time".to_owned()),
        };
        let key = &*limit.key_written;
        match verdict {
            Verdict::Allowed { remaining, reset_ns, bucket } => {
                self.record(|| Event::RateLimit {
                    key: key.to_owned(),
                    verdict: format!(
                        "allowed: {remaining} more now, full again in {} s{}",
                        ceil_seconds(reset_ns),
                        overflow_note(bucket)
                    ),
                });
                Outcome::Matched
            }
            Verdict::Limited { retry_after_ns, reset_ns, bucket } => {
                self.host.count(rule.rate_limited_counter());
                let retry_after = ceil_seconds(retry_after_ns).max(1);
                self.record(|| Event::RateLimit {
                    key: key.to_owned(),
                    verdict: format!("limited: 0 left, retry after {retry_after} s{}", overflow_note(bucket)),
                });
                let policy_limit = &limit.buckets.limit;
                let retry_after = retry_after.to_string();
                let policy = format!("\"{}\";q={};w={}", rule.name, policy_limit.requests, policy_limit.per.seconds());
                let state = format!("\"{}\";r=0;t={}", rule.name, ceil_seconds(reset_ns).max(1));
                let headers = [
                    ("retry-after", retry_after.as_str()),
                    ("ratelimit-policy", policy.as_str()),
                    ("ratelimit", state.as_str()),
                    ("content-type", "text/plain"),
                ];
                // In dry run (or if the proxy refuses the answer) the request goes on.
                if self.send_response(429, &headers, "too many requests\n") {
                    Outcome::Responded
                } else {
                    Outcome::Matched
                }
            }
            Verdict::Failed(reason) => {
                self.host.count(rule.rate_limit_failed_counter());
                let then =
                    if limit.fail_closed { "answering 503 (fail: closed)" } else { "letting it go on (fail: open)" };
                let message = format!("rule {:?}: rate limit undecided: {reason}; {then}", &*rule.name);
                self.log(log::Level::Warn, format_args!("{message}"));
                self.record(|| Event::RateLimit {
                    key: key.to_owned(),
                    verdict: format!("undecided: {reason}; {then}"),
                });
                if limit.fail_closed
                    && self.send_response(
                        503,
                        &[("retry-after", "1"), ("content-type", "text/plain")],
                        "rate limit unavailable\n",
                    )
                {
                    return Outcome::Responded;
                }
                Outcome::Matched
            }
        }
    }
}

fn overflow_note(bucket: Bucket) -> &'static str {
    match bucket {
        Bucket::Own => "",
        Bucket::Overflow => " (in the overflow bucket: this key's slots are held by other active keys)",
    }
}
