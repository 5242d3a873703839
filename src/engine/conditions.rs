//! Evaluating conditions, and explaining which one failed when tracing.

use super::{Host, Run};
use crate::ruleset::{Condition, Expr, Group, Test};
use crate::trace::Miss;
use crate::{cidr, trace};

impl<'r, H: Host> Run<'r, '_, H> {
    pub(super) fn eval(&mut self, expr: &Expr, captures: &mut [Option<String>]) -> bool {
        match expr {
            Expr::All(exprs) => exprs.iter().all(|e| self.eval(e, captures)),
            Expr::Any { exprs, .. } => exprs.iter().any(|e| self.eval(e, captures)),
            Expr::Not { inner, .. } => !self.eval(inner, captures),
            Expr::Leaf(condition) => self.holds(condition, captures),
        }
    }

    /// Why `expr` does not hold, naming the first condition that fails; `None` when it holds. Evaluates in
    /// the same order as [`Self::eval`], so it reads only values the evaluation already fetched.
    pub(super) fn explain(&mut self, expr: &Expr, captures: &mut [Option<String>]) -> Option<Miss> {
        match expr {
            Expr::All(exprs) => exprs.iter().find_map(|e| self.explain(e, captures)),
            Expr::Any { field, exprs } => {
                let mut alternatives = Vec::with_capacity(exprs.len());
                for e in exprs {
                    alternatives.push(self.explain(e, captures)?);
                }
                let reason = format!("none of its {} alternatives matched", exprs.len());
                Some(Miss { field: field.to_string(), reason, alternatives })
            }
            Expr::Not { field, inner } => self.eval(inner, captures).then(|| Miss {
                field: field.to_string(),
                reason: "the block under `not` matched".to_owned(),
                alternatives: Vec::new(),
            }),
            Expr::Leaf(condition) => {
                if self.holds(condition, captures) {
                    return None;
                }
                let got = self
                    .view(condition.slot, &condition.view)
                    .map_or_else(|| "nothing".to_owned(), |v| trace::quote(&v));
                let reason = format!("got {got}, wanted {}", condition.wanted);
                Some(Miss { field: condition.field.to_string(), reason, alternatives: Vec::new() })
            }
        }
    }

    pub(super) fn holds(&mut self, condition: &Condition, captures: &mut [Option<String>]) -> bool {
        self.ensure_view(condition.slot, &condition.view);
        let value = self.view(condition.slot, &condition.view);
        let result = match (&condition.test, value.as_deref()) {
            (Test::Present(want), value) => value.is_some() == *want,
            (_, None) => false,
            (Test::Matches(m), Some(value)) => match m.as_regex().filter(|_| !condition.captures.is_empty()) {
                Some(regex) => match regex.captures(value) {
                    Some(groups) => {
                        for binding in &condition.captures {
                            let text = match &binding.group {
                                Group::Index(index) => groups.get(*index),
                                Group::Name(name) => groups.name(name),
                            };
                            if let Some(cell) = captures.get_mut(binding.cell) {
                                *cell = text.map(|t| t.as_str().to_owned());
                            }
                        }
                        true
                    }
                    None => false,
                },
                None => m.is_match(value),
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
        };
        result != condition.invert
    }
}
