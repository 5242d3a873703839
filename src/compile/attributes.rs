//! Compiling what Envoy knows beyond headers: attributes by name (`match.attributes`, `${xds.route_name}`) and
//! the claims of the token `jwt_authn` verified (`match.claims`, `${claim.sub}`). Each resolves to a property
//! slot ([`crate::attributes`]), so a request fetches it once, and only when a rule reads it.

use super::conditions::leaf;
use super::conditions::Operand;
use super::{Compiler, RuleContext};
use crate::attributes::{self, Property, Resolved};
use crate::config::MatchSpec;
use crate::error::Phase;
use crate::matcher::CompiledMatch;
use crate::ruleset::{Expr, Piece, Slot, Test, View};

impl Compiler<'_> {
    /// The `attributes` and `claims` conditions of a match block, added to `all`.
    pub(super) fn attribute_conditions(
        &mut self,
        spec: &MatchSpec,
        field: &str,
        ctx: &mut RuleContext,
        all: &mut Vec<Expr>,
    ) {
        for (name, test) in &spec.attributes {
            let at = format!("{field}.attributes.{name}");
            let Some((slot, view)) = self.attribute_slot(name, &at, "", ctx) else { continue };
            all.extend(self.string_condition(&test.0 .0, slot, view, Operand::Optional, &at, ctx));
        }
        if let Some(misdirected) = spec.misdirected {
            let at = format!("{field}.misdirected");
            let Some((slot, _)) = self.attribute_slot("connection.requested_server_name", &at, "", ctx) else { return };
            let authority_slot = self.request_header(":authority", ctx);
            // Traces then read `got "false", wanted "true" (the host is not the TLS server name)`.
            let wanted = if misdirected {
                r#""true" (the host is not the TLS server name)"#
            } else {
                r#""false" (the host is the TLS server name)"#
            };
            let test = Test::Matches(CompiledMatch::exact(if misdirected { "true" } else { "false" }, false));
            all.push(leaf(at, wanted.to_owned(), slot, View::Misdirected { authority_slot }, test));
        }
        for (path, test) in &spec.claims {
            let at = format!("{field}.claims.{path}");
            let Some(view) = claim_view(path, &at, "", ctx) else { continue };
            let slot = self.slot(Slot::Property(Property::jwt_claims()), ctx);
            all.extend(self.string_condition(&test.0 .0, slot, view, Operand::Optional, &at, ctx));
        }
    }

    /// Whether a template reference names a claim or an attribute (misspelt ones included, so they get an
    /// attribute's hint rather than the list of every reference).
    pub(super) fn is_attribute_reference(reference: &str) -> bool {
        reference.starts_with("claim.") || attributes::is_attribute_family(reference)
    }

    /// `${claim.PATH}` or `${ATTRIBUTE}`.
    pub(super) fn attribute_reference(&mut self, reference: &str, field: &str, ctx: &mut RuleContext) -> Option<Piece> {
        let written = format!("`${{{reference}}}`: ");
        if let Some(path) = reference.strip_prefix("claim.") {
            let view = claim_view(path, field, &written, ctx)?;
            let slot = self.slot(Slot::Property(Property::jwt_claims()), ctx);
            return Some(Piece::Value { slot, view });
        }
        let (slot, view) = self.attribute_slot(reference, field, &written, ctx)?;
        Some(Piece::Value { slot, view })
    }

    /// The slot and view of attribute `name`, or `None` after recording why not (`context` prefixes messages).
    fn attribute_slot(
        &mut self,
        name: &str,
        field: &str,
        context: &str,
        ctx: &mut RuleContext,
    ) -> Option<(usize, View)> {
        let Resolved { property, spiffe } = match attributes::resolve(name) {
            Ok(resolved) => resolved,
            Err(message) => {
                ctx.error(field, format!("{context}{message}"));
                return None;
            }
        };
        if property.phase() == Phase::Response && ctx.phase == Phase::Request {
            let message =
                format!("{context}`{name}` is only known in the response phase; put this rule under `response`");
            ctx.error(field, message);
            return None;
        }
        let slot = self.slot(Slot::Property(property), ctx);
        Some((slot, spiffe.map_or(View::Whole, View::Spiffe)))
    }
}

/// The view of claim `path`, or `None` after recording why it cannot name one.
fn claim_view(path: &str, field: &str, context: &str, ctx: &mut RuleContext) -> Option<View> {
    if path.is_empty() || path.split('.').any(str::is_empty) || path.contains('\0') {
        ctx.error(
            field,
            format!("{context}name a claim by its path, e.g. `sub` or `org.team` (nested objects joined with `.`)"),
        );
        return None;
    }
    Some(View::Claim(path.into()))
}
