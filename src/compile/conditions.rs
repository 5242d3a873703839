//! Compiling `match` blocks: paths, methods, hosts, headers, query, cookies, source addresses, status.

use super::actions::tokens;
use super::{header_name, is_token, request_header_name, CapturableRegex, Compiler, RuleContext, TOKEN_SYMBOLS};
use crate::cidr::Cidr;
use crate::config::{Integer, MatchFields, MatchSpec, SourceSpec, StatusSpec, StringMatchSpec};
use crate::error::Phase;
use crate::limits::MAX_NESTING;
use crate::matcher::CompiledMatch;
use crate::regex_engine::Regex;
use crate::ruleset::{Condition, Expr, HeaderMap, Slot, Test, View};

impl Compiler<'_> {
    /// Compiles one match block: its fields are ANDed. `None` for an empty block (matches everything).
    pub(super) fn block(&mut self, spec: &MatchSpec, field: &str, depth: usize, ctx: &mut RuleContext) -> Option<Expr> {
        if depth > MAX_NESTING {
            ctx.error(field, format!("blocks nest more than {MAX_NESTING} deep; flatten the nested all/any/not"));
            return None;
        }
        let mut all = Vec::new();
        if let Some(path) = &spec.path {
            let slot = self.request_header(":path", ctx);
            all.extend(self.string_condition(
                &path.0,
                slot,
                View::PathOnly,
                Operand::Path,
                &format!("{field}.path"),
                ctx,
            ));
        }
        if let Some(methods) = &spec.method {
            let slot = self.request_header(":method", ctx);
            let at = format!("{field}.method");
            let values = tokens(&methods.0, &at, "an HTTP method (a token such as GET)", ctx);
            let wanted = one_of(&values);
            all.push(leaf(at, wanted, slot, View::Whole, Test::OneOf { values, ignore_case: false }));
        }
        if let Some(schemes) = &spec.scheme {
            let slot = self.request_header(":scheme", ctx);
            let at = format!("{field}.scheme");
            let values = tokens(&schemes.0, &at, "a URL scheme (http or https)", ctx);
            let wanted = one_of(&values);
            all.push(leaf(at, wanted, slot, View::Whole, Test::OneOf { values, ignore_case: true }));
        }
        if let Some(hosts) = &spec.host {
            let slot = self.request_header(":authority", ctx);
            let mut any = Vec::new();
            for (i, host) in hosts.0.iter().enumerate() {
                let at = if hosts.0.len() == 1 { format!("{field}.host") } else { format!("{field}.host[{i}]") };
                any.extend(self.host_condition(host, slot, &at, ctx));
            }
            all.push(one_or_any(format!("{field}.host"), any));
        }
        for (name, test) in &spec.headers {
            let at = format!("{field}.headers.{name}");
            if let Some(name) = request_header_name(name, &at, ctx) {
                let slot = self.request_header(&name, ctx);
                all.extend(self.string_condition(&test.0, slot, View::Whole, Operand::Optional, &at, ctx));
            }
        }
        for (name, test) in &spec.query {
            let at = format!("{field}.query.{name}");
            if name.is_empty() {
                ctx.error(at.clone(), "a query parameter needs a name");
            }
            let slot = self.request_header(":path", ctx);
            let view = View::QueryParam(name.as_str().into());
            all.extend(self.string_condition(&test.0, slot, view, Operand::Optional, &at, ctx));
        }
        for (name, test) in &spec.cookies {
            let at = format!("{field}.cookies.{name}");
            if !is_token(name) {
                ctx.error(
                    at.clone(),
                    format!("{name:?} is not a valid cookie name (a token: letters, digits and {TOKEN_SYMBOLS})"),
                );
            }
            let slot = self.request_header("cookie", ctx);
            let view = View::Cookie(name.as_str().into());
            all.extend(self.string_condition(&test.0, slot, view, Operand::Optional, &at, ctx));
        }
        if let Some(source) = &spec.source {
            all.extend(self.source_condition(source, &format!("{field}.source"), ctx));
        }
        if let Some(api_key) = &spec.api_key {
            all.extend(self.api_key_condition(api_key, &format!("{field}.api_key"), ctx));
        }
        if let Some(basic_auth) = &spec.basic_auth {
            all.extend(self.basic_auth_condition(basic_auth, &format!("{field}.basic_auth"), ctx));
        }
        if let Some(sample) = &spec.sample {
            all.extend(self.sample_condition(sample, &format!("{field}.sample"), ctx));
        }
        if let Some(statuses) = &spec.status {
            let at = format!("{field}.status");
            if ctx.phase == Phase::Request {
                ctx.error(at.clone(), "the status is only known in the response phase; put this rule under `response`");
            }
            let slot = self.slot(Slot::Header(HeaderMap::Response, ":status".into()), ctx);
            let mut ranges = Vec::new();
            for (i, status) in statuses.0.iter().enumerate() {
                let item = if statuses.0.len() == 1 { at.clone() } else { format!("{at}[{i}]") };
                match status_range(status) {
                    Ok(range) => ranges.push(range),
                    Err(message) => ctx.error(item, message),
                }
            }
            let written: Vec<String> = statuses.0.iter().map(StatusSpec::to_string).collect();
            all.push(leaf(at, one_of(&written), slot, View::Whole, Test::Status(ranges)));
        }
        for (name, test) in &spec.response_headers {
            let at = format!("{field}.response_headers.{name}");
            if ctx.phase == Phase::Request {
                let message = "response headers are only known in the response phase; put this rule under `response`";
                ctx.error(at.clone(), message);
            }
            if let Some(name) = header_name(name, &at, ctx) {
                let slot = self.slot(Slot::Header(HeaderMap::Response, name.into()), ctx);
                all.extend(self.string_condition(&test.0, slot, View::Whole, Operand::Optional, &at, ctx));
            }
        }
        self.attribute_conditions(spec, field, ctx, &mut all);
        if let Some(blocks) = &spec.all {
            let exprs = self.blocks(blocks, &format!("{field}.all"), depth, ctx);
            all.push(Expr::All(exprs));
        }
        if let Some(blocks) = &spec.any {
            if blocks.is_empty() {
                ctx.error(format!("{field}.any"), "`any` needs at least one block");
            }
            let at = format!("{field}.any");
            let exprs = self.blocks(blocks, &at, depth, ctx);
            all.push(Expr::Any { field: at.into(), exprs });
        }
        if let Some(block) = &spec.not {
            let at = format!("{field}.not");
            let before = ctx.error_count();
            ctx.under_not = !ctx.under_not;
            let inner = self.block(block, &at, depth + 1, ctx);
            ctx.under_not = !ctx.under_not;
            match inner {
                Some(expr) => all.push(Expr::Not { field: at.into(), inner: Box::new(expr) }),
                None if ctx.error_count() == before => {
                    ctx.error(at, "`not` of an empty block never matches; give it conditions");
                }
                None => {}
            }
        }
        match all.len() {
            0 => None,
            1 => all.pop(),
            _ => Some(Expr::All(all)),
        }
    }

    fn blocks(&mut self, blocks: &[MatchSpec], field: &str, depth: usize, ctx: &mut RuleContext) -> Vec<Expr> {
        let mut exprs = Vec::new();
        for (i, block) in blocks.iter().enumerate() {
            let at = format!("{field}[{i}]");
            let before = ctx.error_count();
            match self.block(block, &at, depth + 1, ctx) {
                Some(expr) => exprs.push(expr),
                None if ctx.error_count() == before => ctx.error(at, "an empty block; give it conditions"),
                None => {}
            }
        }
        exprs
    }

    pub(super) fn string_condition(
        &mut self,
        fields: &MatchFields,
        slot: usize,
        view: View,
        operand: Operand,
        field: &str,
        ctx: &mut RuleContext,
    ) -> Option<Expr> {
        let (test, regex_id) = string_test(fields, operand, field, ctx)?;
        Some(Expr::Leaf(Condition {
            field: field.into(),
            wanted: describe_test(fields).into(),
            slot,
            view,
            test,
            invert: fields.invert,
            regex_id,
            captures: Vec::new(),
        }))
    }

    fn host_condition(
        &mut self,
        host: &StringMatchSpec,
        slot: usize,
        field: &str,
        ctx: &mut RuleContext,
    ) -> Option<Expr> {
        // Host names are case-insensitive; `*.example.com` is a wildcard; a pattern that spells out a port
        // compares the whole authority (see `host_port`).
        let mut fields = host.0.clone();
        fields.ignore_case = true;
        if let Some(wildcard) = fields.exact.as_deref().and_then(|e| e.strip_prefix('*')) {
            if !wildcard.starts_with('.') || wildcard.contains('*') {
                ctx.error(field, "a wildcard host is `*.` followed by a domain, e.g. `*.example.com`");
                return None;
            }
            fields.suffix = Some(wildcard.to_owned());
            fields.exact = None;
        }
        let with_port = crate::host_port::compares_port(&fields);
        let view = if with_port { View::Whole } else { View::HostOnly };
        let mut expr = self.string_condition(&fields, slot, view, Operand::Host, field, ctx);
        if let Some(Expr::Leaf(condition)) = &mut expr {
            // Describe the test as written, before the wildcard became a suffix.
            let port = if with_port { " (with the port)" } else { "" };
            condition.wanted = format!("{}{port}", describe_test(&host.0)).into();
        }
        expr
    }

    fn source_condition(&mut self, spec: &SourceSpec, field: &str, ctx: &mut RuleContext) -> Option<Expr> {
        let mut cidrs = Vec::new();
        for (i, text) in spec.cidrs.iter().enumerate() {
            match Cidr::parse(text) {
                Ok(cidr) => cidrs.push(cidr),
                Err(message) => ctx.error(format!("{field}.cidrs[{i}]"), message),
            }
        }
        if spec.cidrs.is_empty() {
            ctx.error(format!("{field}.cidrs"), "give at least one address or CIDR block");
        }
        let trusted_hops = spec.trusted_hops.map_or(0, |h| h.0);
        if trusted_hops > 16 {
            let message =
                format!("{trusted_hops} trusted proxies; trusted_hops is 0-16 (the proxies in front of this one)");
            ctx.error(format!("{field}.trusted_hops"), message);
        }
        let trusted_hops = usize::try_from(trusted_hops).unwrap_or(usize::MAX);
        let slot = self.slot(Slot::SourceAddress, ctx);
        let xff_slot = if trusted_hops > 0 { self.request_header("x-forwarded-for", ctx) } else { slot };
        let mut wanted = if spec.invert { "not in ".to_owned() } else { "in ".to_owned() };
        wanted.push_str(&crate::join::join(&spec.cidrs, ", "));
        if trusted_hops > 0 {
            wanted.push_str(&format!(" (client taken {trusted_hops} from the right of x-forwarded-for)"));
        }
        let condition = Condition {
            field: field.into(),
            wanted: wanted.into(),
            slot,
            view: View::Client { xff_slot, trusted_hops },
            test: Test::Cidrs(cidrs),
            invert: spec.invert,
            regex_id: None,
            captures: Vec::new(),
        };
        Some(Expr::Leaf(condition))
    }
}

pub(super) fn leaf(field: String, wanted: String, slot: usize, view: View, test: Test) -> Expr {
    let (field, wanted) = (field.into(), wanted.into());
    Expr::Leaf(Condition { field, wanted, slot, view, test, invert: false, regex_id: None, captures: Vec::new() })
}

/// The one expression, or `any` of several (written at `field`).
fn one_or_any(field: String, mut exprs: Vec<Expr>) -> Expr {
    if exprs.len() == 1 {
        if let Some(expr) = exprs.pop() {
            return expr;
        }
    }
    Expr::Any { field: field.into(), exprs }
}

/// `GET`, or `one of GET, HEAD`: how a list of alternatives reads in a trace.
fn one_of(values: &[impl AsRef<str>]) -> String {
    match values {
        [one] => one.as_ref().to_owned(),
        many => format!("one of {}", crate::join::join(many, ", ")),
    }
}

/// A value test as written, for traces: `prefix "/api"`, `absent`, `not regex "v[0-9]+" (ignore case)`.
fn describe_test(fields: &MatchFields) -> String {
    let operators = [
        ("exact", &fields.exact),
        ("prefix", &fields.prefix),
        ("segment_prefix", &fields.segment_prefix),
        ("suffix", &fields.suffix),
        ("contains", &fields.contains),
        ("regex", &fields.regex),
    ];
    let mut text = if fields.invert { "not ".to_owned() } else { String::new() };
    match operators.iter().find_map(|(name, value)| value.as_ref().map(|v| (name, v))) {
        Some((name, value)) => text.push_str(&format!("{name} {}", crate::trace::quote(value))),
        None => {
            let present = fields.present.or(fields.absent.map(|absent| !absent)).unwrap_or(true);
            text.push_str(if present { "present" } else { "absent" });
        }
    }
    if fields.ignore_case {
        text.push_str(" (ignore case)");
    }
    text
}

/// What a string test is applied to, which decides the operators it may use.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Operand {
    Path,
    Host,
    /// Headers, query parameters, cookies: may be absent, so presence tests apply.
    Optional,
}

/// Compiles a value test; `None` after recording the reason. The second value is the regex id when the test is a
/// regex whose groups templates may use.
fn string_test(
    fields: &MatchFields,
    operand: Operand,
    field: &str,
    ctx: &mut RuleContext,
) -> Option<(Test, Option<usize>)> {
    let operators: Vec<&str> = [
        ("exact", fields.exact.is_some()),
        ("prefix", fields.prefix.is_some()),
        ("segment_prefix", fields.segment_prefix.is_some()),
        ("suffix", fields.suffix.is_some()),
        ("contains", fields.contains.is_some()),
        ("regex", fields.regex.is_some()),
        ("present", fields.present.is_some()),
        ("absent", fields.absent.is_some()),
    ]
    .into_iter()
    .filter_map(|(name, given)| given.then_some(name))
    .collect();
    let choices = match operand {
        Operand::Path => "exact, prefix, segment_prefix, suffix, contains or regex",
        Operand::Host => "exact, prefix, suffix, contains or regex",
        Operand::Optional => "exact, prefix, suffix, contains, regex, present or absent",
    };
    match operators.as_slice() {
        [] => {
            ctx.error(field, format!("give one of {choices}"));
            return None;
        }
        [_] => {}
        [first, second, ..] => {
            ctx.error(field, format!("give only one of {choices}; found both {first} and {second}"));
            return None;
        }
    }
    if operand != Operand::Optional && (fields.present.is_some() || fields.absent.is_some()) {
        let key = if fields.present.is_some() { "present" } else { "absent" };
        ctx.error(format!("{field}.{key}"), "only headers, query parameters and cookies can be tested for presence");
        return None;
    }
    if operand != Operand::Path && fields.segment_prefix.is_some() {
        ctx.error(format!("{field}.segment_prefix"), "only the path has segments; use prefix");
        return None;
    }
    let ic = fields.ignore_case;
    let test = match fields {
        MatchFields { exact: Some(v), .. } => Test::Matches(CompiledMatch::exact(v, ic)),
        MatchFields { prefix: Some(v), .. } => Test::Matches(CompiledMatch::prefix(v, ic)),
        MatchFields { segment_prefix: Some(v), .. } => {
            if !v.starts_with('/') {
                ctx.error(format!("{field}.segment_prefix"), "a path prefix starts with `/`");
                return None;
            }
            Test::Matches(CompiledMatch::segment_prefix(v, ic))
        }
        MatchFields { suffix: Some(v), .. } => Test::Matches(CompiledMatch::suffix(v, ic)),
        MatchFields { contains: Some(v), .. } => Test::Matches(CompiledMatch::contains(v, ic)),
        MatchFields { regex: Some(pattern), .. } => match CompiledMatch::regex(pattern, ic) {
            Ok(m) => {
                let group_names = m.group_names();
                let id = ctx.regexes.len();
                ctx.regexes.push(CapturableRegex {
                    group_names,
                    under_not: ctx.under_not || fields.invert,
                    field: field.to_owned(),
                });
                ctx.bindings.push(Vec::new());
                return Some((Test::Matches(m), Some(id)));
            }
            Err(reason) => {
                ctx.error(format!("{field}.regex"), format!("invalid regex: {reason}"));
                return None;
            }
        },
        MatchFields { present: Some(want), .. } => Test::Present(*want),
        MatchFields { absent: Some(not_wanted), .. } => Test::Present(!*not_wanted),
        _ => return None,
    };
    Some((test, None))
}

/// A value test on something no template can capture from (a JSON field of a body), and its description for
/// traces; `None` after recording the reason.
pub(super) fn uncaptured_value_test(
    fields: &MatchFields,
    field: &str,
    ctx: &mut RuleContext,
) -> Option<(Test, String)> {
    let (test, regex_id) = string_test(fields, Operand::Optional, field, ctx)?;
    if regex_id.is_some() {
        // Bodies are read after the rule's templates could use a capture: forget the regex's groups.
        ctx.regexes.pop();
        ctx.bindings.pop();
    }
    Some((test, describe_test(fields)))
}

/// `^(?:pattern)$` with the size limit every rule regex has.
pub(super) fn anchored_regex(pattern: &str, ignore_case: bool) -> Result<Regex, String> {
    CompiledMatch::regex(pattern, ignore_case).and_then(|m| m.into_regex().ok_or_else(|| "not a regex".to_owned()))
}

fn status_range(status: &StatusSpec) -> Result<(u16, u16), String> {
    let in_range = |code: u64| (100..=599).contains(&code).then(|| u16::try_from(code).ok()).flatten();
    let not_status =
        |text: &str| format!("{text:?} is not a status (100-599), a class like \"5xx\" or a range like \"500-504\"");
    match status {
        StatusSpec::Code(code) => {
            in_range(code.0).map(|c| (c, c)).ok_or_else(|| format!("{} is not an HTTP status (100-599)", code.0))
        }
        StatusSpec::Text(text) => {
            let trimmed = text.trim();
            if let Some(class) = trimmed.strip_suffix("xx").or_else(|| trimmed.strip_suffix("XX")) {
                let digit: u64 = class.parse().ok().filter(|d| (1..=5).contains(d)).ok_or_else(|| not_status(text))?;
                let low = u16::try_from(digit * 100).map_err(|_| not_status(text))?;
                return Ok((low, low + 99));
            }
            if let Some((low, high)) = trimmed.split_once('-') {
                let low = low.trim().parse().ok().and_then(in_range).ok_or_else(|| not_status(text))?;
                let high = high.trim().parse().ok().and_then(in_range).ok_or_else(|| not_status(text))?;
                if low > high {
                    return Err(format!("{text:?} is an empty range; write the lower code first, e.g. \"500-504\""));
                }
                return Ok((low, high));
            }
            trimmed.parse().ok().and_then(in_range).map(|c| (c, c)).ok_or_else(|| not_status(text))
        }
    }
}

pub(super) fn status_code(code: Integer, lowest: u64) -> Option<u16> {
    if (lowest..=599).contains(&code.0) {
        u16::try_from(code.0).ok()
    } else {
        None
    }
}
