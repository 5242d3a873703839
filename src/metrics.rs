//! The counters the engine keeps, and the names the proxy exports them under.
//!
//! The engine only says "count counter N" ([`crate::Host::count`]); what counting means is the host's business
//! (the module batches counts and hands them to Envoy once a second). Counter ids are dense and laid out at
//! compile time: the document-wide counters first, then for each rule, request rules before response rules,
//! one for `matched` and one per action.
//!
//! proxy-wasm metrics have no labels, and Envoy files them under `wasmcustom.<name>`. So the labels travel
//! inside the name in Istio's `label=.=value;.;` form, ahead of the metric name, and the [`STATS_TAGS`]
//! regexes (bootstrap `stats_config.stats_tags`) turn them back into labels:
//! `wasmcustom.plugin=.=default.edge;.;rule=.=block-admin;.;mode=.=enforce;.;rulefilter_rule_matches_total`
//! becomes `rulefilter_rule_matches_total{plugin="default.edge",rule="block-admin",mode="enforce"}` in
//! `/stats/prometheus`. The form is unambiguous for any rule name, dots included.

use crate::ruleset::{Action, HeaderMap, Rule, RuleSet};

/// One counter of a compiled rule set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CounterId(pub u32);

/// Requests the request rules were run for.
pub const REQUESTS: CounterId = CounterId(0);
/// Responses the filter sent itself (`respond`, `redirect`), outside dry run.
pub const DIRECT_RESPONSES: CounterId = CounterId(1);
/// Rendered values refused because they could have split a header line, or were too long.
pub const REFUSED_VALUES: CounterId = CounterId(2);
/// The first per-rule counter.
pub(crate) const FIRST_RULE_COUNTER: u32 = 3;

/// What a counter counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counter<'r> {
    Requests,
    DirectResponses,
    RefusedValues,
    /// A rule's conditions held.
    RuleMatched {
        rule: &'r str,
        dry_run: bool,
    },
    /// One of a rule's actions ran (in dry run: would have run). `action` is its key in the document.
    RuleAction {
        rule: &'r str,
        action: &'static str,
        dry_run: bool,
    },
    /// A rule's `rate_limit` found the request over the limit (in dry run: would have answered 429).
    RateLimited {
        rule: &'r str,
        dry_run: bool,
    },
    /// A rule's `rate_limit` could not decide (the proxy refused, or CAS attempts ran out); `fail` decided.
    RateLimitFailures {
        rule: &'r str,
        dry_run: bool,
    },
}

impl Counter<'_> {
    /// The name the module defines the metric under (Envoy adds `wasmcustom.`).
    pub fn stat_name(&self, plugin: &str) -> String {
        let mode = |dry_run: bool| if dry_run { "dry_run" } else { "enforce" };
        match self {
            Counter::Requests => format!("plugin=.={plugin};.;rulefilter_requests_total"),
            Counter::DirectResponses => format!("plugin=.={plugin};.;rulefilter_direct_responses_total"),
            Counter::RefusedValues => format!("plugin=.={plugin};.;rulefilter_refused_values_total"),
            Counter::RuleMatched { rule, dry_run } => {
                format!("plugin=.={plugin};.;rule=.={rule};.;mode=.={};.;rulefilter_rule_matches_total", mode(*dry_run))
            }
            Counter::RuleAction { rule, action, dry_run } => format!(
                "plugin=.={plugin};.;rule=.={rule};.;action=.={action};.;mode=.={};.;rulefilter_rule_actions_total",
                mode(*dry_run)
            ),
            Counter::RateLimited { rule, dry_run } => {
                format!("plugin=.={plugin};.;rule=.={rule};.;mode=.={};.;rulefilter_rate_limited_total", mode(*dry_run))
            }
            Counter::RateLimitFailures { rule, dry_run } => format!(
                "plugin=.={plugin};.;rule=.={rule};.;mode=.={};.;rulefilter_rate_limit_failures_total",
                mode(*dry_run)
            ),
        }
    }
}

/// The name of the counter of rejected documents. It lives outside any rule set: a rejected document has none.
pub fn config_errors_stat_name(plugin: &str) -> String {
    format!("plugin=.={plugin};.;rulefilter_config_errors_total")
}

/// The plugin label: Envoy's filter config name without Istio's `~istio-translated-wasmplugin` suffix, which
/// leaves the `WasmPlugin`'s `<namespace>.<name>`. Characters that would break the name's form are replaced.
pub fn plugin_label(config_name: &str) -> String {
    let name = config_name.split('~').next().unwrap_or_default();
    let label: String = name.chars().map(|c| if matches!(c, ';' | '=') || c.is_control() { '_' } else { c }).collect();
    if label.is_empty() {
        "unnamed".into()
    } else {
        label
    }
}

/// Bootstrap `stats_config.stats_tags` that turn the labels in the names back into tags: (tag name, regex).
/// Envoy removes each regex's first group from the name and keeps its second as the tag's value.
pub const STATS_TAGS: [(&str, &str); 4] = [
    ("plugin", r"^wasmcustom\.(plugin=\.=(.*?);\.;)"),
    ("rule", r"^wasmcustom\..*?(rule=\.=(.*?);\.;)"),
    ("action", r"^wasmcustom\..*?(action=\.=(.*?);\.;)"),
    ("mode", r"^wasmcustom\..*?(mode=\.=(.*?);\.;)"),
];

impl Action {
    /// The action's key in the document, which is its `action` label.
    pub(crate) fn key(&self) -> &'static str {
        match self {
            Action::RequestHeaders(_) => "request_headers",
            Action::ResponseHeaders(_) => "response_headers",
            Action::Respond(_) => "respond",
            Action::Redirect(_) => "redirect",
            Action::Rewrite(_) => "rewrite",
            Action::Query(_) => "query",
            Action::Log { .. } => "log",
            Action::RateLimit(_) => "rate_limit",
            Action::Body { map: HeaderMap::Request, .. } => "request_body",
            Action::Body { map: HeaderMap::Response, .. } => "response_body",
        }
    }
}

impl Rule {
    /// The counter of this rule's matches.
    pub(crate) fn matched_counter(&self) -> CounterId {
        CounterId(self.counter_base)
    }

    /// The counter of this rule's action number `action`.
    pub(crate) fn action_counter(&self, action: usize) -> CounterId {
        let offset = u32::try_from(action).unwrap_or(u32::MAX - 1).saturating_add(1);
        CounterId(self.counter_base.saturating_add(offset))
    }

    /// How many counters the rule has: `matched`, one per action, and with a rate limit its two.
    pub(crate) fn counter_count(&self) -> u32 {
        let rate_limit = if self.has_rate_limit() { 2 } else { 0 };
        u32::try_from(self.actions.len()).unwrap_or(u32::MAX).saturating_add(1 + rate_limit)
    }

    fn has_rate_limit(&self) -> bool {
        self.actions.iter().any(|a| matches!(a, Action::RateLimit(_)))
    }

    /// The counter of requests a rate limit of this rule found over the limit (after the action counters).
    pub(crate) fn rate_limited_counter(&self) -> CounterId {
        let after_actions = u32::try_from(self.actions.len()).unwrap_or(u32::MAX - 2).saturating_add(1);
        CounterId(self.counter_base.saturating_add(after_actions))
    }

    /// The counter of requests a rate limit of this rule could not decide on.
    pub(crate) fn rate_limit_failed_counter(&self) -> CounterId {
        CounterId(self.rate_limited_counter().0.saturating_add(1))
    }
}

impl RuleSet {
    /// Every counter of this rule set, in id order: the counter with id `n` is item `n`.
    pub fn counters(&self) -> Vec<Counter<'_>> {
        let mut counters = vec![Counter::Requests, Counter::DirectResponses, Counter::RefusedValues];
        for rule in self.request_rules.iter().chain(&self.response_rules) {
            counters.push(Counter::RuleMatched { rule: &rule.name, dry_run: rule.dry_run });
            for action in &rule.actions {
                counters.push(Counter::RuleAction { rule: &rule.name, action: action.key(), dry_run: rule.dry_run });
            }
            if rule.has_rate_limit() {
                counters.push(Counter::RateLimited { rule: &rule.name, dry_run: rule.dry_run });
                counters.push(Counter::RateLimitFailures { rule: &rule.name, dry_run: rule.dry_run });
            }
        }
        counters
    }
}

/// Gives each rule the id of its first counter, in the order [`RuleSet::counters`] lists them.
pub(crate) fn assign_counters(request_rules: &mut [Rule], response_rules: &mut [Rule]) {
    let mut next = FIRST_RULE_COUNTER;
    for rule in request_rules.iter_mut().chain(response_rules.iter_mut()) {
        rule.counter_base = next;
        next = next.saturating_add(rule.counter_count());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counter_ids_follow_the_listed_order() {
        let rules = crate::parse(
            "request:\n  - {name: a, actions: [{log: {message: x}}, {respond: {status: 403}}]}\n\
             response:\n  - {name: b, mode: dry_run, actions: [{response_headers: {set: {x: y}}}]}\n",
        )
        .unwrap();
        let counters = rules.counters();
        let a = &rules.request_rules[0];
        let b = &rules.response_rules[0];
        assert_eq!(counters[a.matched_counter().0 as usize], Counter::RuleMatched { rule: "a", dry_run: false });
        assert_eq!(
            counters[a.action_counter(1).0 as usize],
            Counter::RuleAction { rule: "a", action: "respond", dry_run: false }
        );
        assert_eq!(
            counters[b.action_counter(0).0 as usize],
            Counter::RuleAction { rule: "b", action: "response_headers", dry_run: true }
        );
        assert_eq!(counters.len(), 3 + 3 + 2);
    }

    #[test]
    fn names_carry_labels_in_istio_form() {
        let name = Counter::RuleAction { rule: "v1.block", action: "respond", dry_run: true }.stat_name("ns.edge");
        assert_eq!(
            name,
            "plugin=.=ns.edge;.;rule=.=v1.block;.;action=.=respond;.;mode=.=dry_run;.;rulefilter_rule_actions_total"
        );
        assert_eq!(plugin_label("default.edge~istio-translated-wasmplugin"), "default.edge");
        assert_eq!(plugin_label("a;b=c"), "a_b_c");
        assert_eq!(plugin_label(""), "unnamed");
    }
}
