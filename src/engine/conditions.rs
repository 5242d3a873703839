//! Evaluating conditions, and explaining which one failed when tracing.

use super::{Host, Run};
use crate::ruleset::{Condition, Expr, Group, Test, View};
use crate::trace::Miss;
use crate::{cidr, claims, sampling, trace};

/// Where a rule's regex captures go: `None` while deciding whether it matches.
pub(super) type Captures<'c> = Option<&'c mut Vec<Option<String>>>;

impl<'r, H: Host> Run<'r, '_, H> {
    /// Whether `expr` holds. With `captures`, also keeps the regex groups templates use: the engine first
    /// decides whether a rule matches without them (allocating nothing), then, for a rule that matched and
    /// uses captures, evaluates it again to take them; the values are the same both times, so the same
    /// branches hold.
    pub(super) fn eval(&mut self, expr: &Expr, mut captures: Captures<'_>) -> bool {
        match expr {
            Expr::All(exprs) => exprs.iter().all(|e| self.eval(e, captures.as_deref_mut())),
            Expr::Any { exprs, .. } => exprs.iter().any(|e| self.eval(e, captures.as_deref_mut())),
            Expr::Not { inner, .. } => !self.eval(inner, captures),
            Expr::Leaf(condition) => self.holds(condition, captures),
        }
    }

    /// Why `expr` does not hold, naming the first condition that fails; `None` when it holds. Evaluates in
    /// the same order as [`Self::eval`], so it reads only values the evaluation already fetched.
    pub(super) fn explain(&mut self, expr: &Expr) -> Option<Miss> {
        match expr {
            Expr::All(exprs) => exprs.iter().find_map(|e| self.explain(e)),
            Expr::Any { field, exprs } => {
                let mut alternatives = Vec::with_capacity(exprs.len());
                for e in exprs {
                    alternatives.push(self.explain(e)?);
                }
                let reason = format!("none of its {} alternatives matched", exprs.len());
                Some(Miss { field: field.to_string(), reason, alternatives })
            }
            Expr::Not { field, inner } => self.eval(inner, None).then(|| Miss {
                field: field.to_string(),
                reason: "the block under `not` matched".to_owned(),
                alternatives: Vec::new(),
            }),
            Expr::Leaf(condition) => {
                if self.holds(condition, None) {
                    return None;
                }
                let reason = self.credential_miss(condition).unwrap_or_else(|| {
                    let value = self.view(condition.slot, &condition.view);
                    let mut got = value.as_deref().map_or_else(|| "nothing".to_owned(), trace::quote);
                    if let (Test::Sample { seed, .. }, Some(key)) =
                        (&condition.test, value.as_deref().filter(|k| !k.is_empty()))
                    {
                        // Where the key fell, so a trace shows how far it is from the sample.
                        got.push_str(&format!(" (at {}%)", sampling::as_percent(sampling::bucket(seed, key))));
                    }
                    format!("got {got}, wanted {}", condition.wanted)
                });
                Some(Miss { field: condition.field.to_string(), reason, alternatives: Vec::new() })
            }
        }
    }

    pub(super) fn holds(&mut self, condition: &Condition, mut captures: Captures<'_>) -> bool {
        self.ensure_view(condition.slot, &condition.view);
        let cells = self.capture_cells;
        let result = match &condition.view {
            // A list claim (`aud`, `groups`) holds when any of its elements passes.
            View::Claim(path) if !matches!(condition.test, Test::Present(_)) => {
                self.get(condition.slot).is_some_and(|flat| {
                    claims::values(flat, path)
                        .any(|value| passes(condition, Some(value), captures.as_deref_mut(), cells))
                })
            }
            _ => passes(condition, self.view(condition.slot, &condition.view).as_deref(), captures, cells),
        };
        result != condition.invert
    }
}

/// Whether `value` passes the condition's test, before `invert`. With `captures`, a passing regex fills the
/// capture cells the rule's templates use (growing them to the rule's `cells`); without, nothing is allocated.
fn passes(condition: &Condition, value: Option<&str>, captures: Captures<'_>, cells: usize) -> bool {
    match (&condition.test, value) {
        (Test::Present(want), value) => value.is_some() == *want,
        (Test::Sample { buckets, seed }, value) => sampling::sampled(*buckets, seed, value),
        (_, None) => false,
        (Test::Matches(m), Some(value)) => match (captures, m.as_regex()) {
            (Some(captures), Some(regex)) if !condition.captures.is_empty() => match regex.captures(value) {
                Some(groups) => {
                    for binding in &condition.captures {
                        let text = match &binding.group {
                            Group::Index(index) => groups.get(*index),
                            Group::Name(name) => groups.name(name),
                        };
                        if captures.len() <= binding.cell {
                            captures.resize(cells.max(binding.cell + 1), None);
                        }
                        if let Some(cell) = captures.get_mut(binding.cell) {
                            *cell = text.map(str::to_owned);
                        }
                    }
                    true
                }
                None => false,
            },
            _ => m.is_match(value),
        },
        (Test::OneOf { values, ignore_case }, Some(value)) => {
            values.iter().any(|v| if *ignore_case { v.eq_ignore_ascii_case(value) } else { **v == *value })
        }
        (Test::Status(ranges), Some(value)) => {
            value.parse::<u16>().is_ok_and(|code| ranges.iter().any(|(low, high)| (*low..=*high).contains(&code)))
        }
        (Test::Cidrs(cidrs), Some(value)) => {
            cidr::parse_address(value).is_some_and(|ip| cidrs.iter().any(|c| c.contains(ip)))
        }
    }
}
