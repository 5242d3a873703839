//! Compiling the actions that answer or change the URL: respond, redirect, rewrite, query edits.

use super::conditions::status_code;
use super::{is_header_value, Compiler, RuleContext, HEADER_VALUE_RULE};
use crate::config::{QueryEditsSpec, RedirectSpec, RespondSpec, RewriteSpec};
use crate::limits::MAX_BODY_BYTES;
use crate::matcher::CompiledMatch;
use crate::reserved::bodiless_status;
use crate::ruleset::{HeaderMap, LocalResponse, PathRewrite, QueryEdits, Redirect, RedirectTarget, Rewrite, UrlSlots};

impl Compiler<'_> {
    pub(super) fn local_response(
        &mut self,
        spec: &RespondSpec,
        field: &str,
        ctx: &mut RuleContext,
    ) -> Option<LocalResponse> {
        let before = ctx.error_count();
        let status = status_code(spec.status, 200);
        if status.is_none() {
            ctx.error(format!("{field}.status"), format!("{} is not a final HTTP status (200-599)", spec.status.0));
        }
        let mut headers = self.templated_headers(&spec.headers, HeaderMap::Response, &format!("{field}.headers"), ctx);
        if let Some(content_type) = &spec.content_type {
            let at = format!("{field}.content_type");
            if headers.iter().any(|(n, _)| &**n == "content-type") {
                ctx.error(at, "also given in headers; keep one");
            } else if !is_header_value(content_type) {
                ctx.error(at, HEADER_VALUE_RULE);
            } else if let Some(template) = self.template(content_type, &at, ctx) {
                headers.push(("content-type".into(), template));
            }
        }
        if let Some(code) = status.filter(|code| bodiless_status(*code) && !spec.body.is_empty()) {
            let message = format!(
                "a {code} response has no body, yet Envoy would send this one and HTTP/1.1 clients would read it \
                 as the next response; remove `body` or answer 200"
            );
            ctx.error(format!("{field}.body"), message);
        }
        let body = self.sized_template(&spec.body, MAX_BODY_BYTES, &format!("{field}.body"), ctx);
        let (status, body) = (status?, body?);
        (ctx.error_count() == before).then_some(LocalResponse { status, headers, body })
    }

    fn url_slots(&mut self, ctx: &mut RuleContext) -> UrlSlots {
        UrlSlots {
            scheme: self.request_header(":scheme", ctx),
            authority: self.request_header(":authority", ctx),
            path: self.request_header(":path", ctx),
        }
    }

    pub(super) fn redirect(&mut self, spec: &RedirectSpec, field: &str, ctx: &mut RuleContext) -> Option<Redirect> {
        let before = ctx.error_count();
        let status = spec.status.map_or(302, |s| s.0);
        if ![301, 302, 303, 307, 308].contains(&status) {
            ctx.error(
                format!("{field}.status"),
                format!("{status} is not a redirect status (301, 302, 303, 307, 308)"),
            );
        }
        let parts_given = spec.scheme.is_some()
            || spec.host.is_some()
            || spec.port.is_some()
            || spec.path.is_some()
            || spec.query.is_some();
        let target = match &spec.location {
            Some(_) if parts_given => {
                ctx.error(field, "give either `location` or the parts (scheme, host, port, path, query), not both");
                None
            }
            Some(location) => {
                self.header_template(location, &format!("{field}.location"), ctx).map(RedirectTarget::Location)
            }
            None if !parts_given => {
                ctx.error(field, "give `location`, or at least one of scheme, host, port, path, query");
                None
            }
            None => {
                let scheme = spec.scheme.as_deref().map(str::to_ascii_lowercase);
                if let Some(scheme) = scheme.as_deref().filter(|s| *s != "http" && *s != "https") {
                    ctx.error(format!("{field}.scheme"), format!("{scheme:?} is not http or https"));
                }
                let port = spec.port.map(|p| p.0);
                let port = match port.map(u16::try_from) {
                    Some(Ok(port)) if port > 0 => Some(port),
                    Some(_) => {
                        ctx.error(format!("{field}.port"), format!("{} is not a port (1-65535)", port.unwrap_or(0)));
                        None
                    }
                    None => None,
                };
                let host = spec.host.as_deref().and_then(|h| self.header_template(h, &format!("{field}.host"), ctx));
                let path = spec.path.as_deref().and_then(|p| self.path_template(p, &format!("{field}.path"), ctx));
                let query = spec.query.as_deref().and_then(|q| self.header_template(q, &format!("{field}.query"), ctx));
                Some(RedirectTarget::Parts { scheme: scheme.map(Into::into), host, port, path, query })
            }
        };
        let url = self.url_slots(ctx);
        let status = u16::try_from(status).ok()?;
        let target = target?;
        (ctx.error_count() == before).then_some(Redirect {
            status,
            target,
            keep_query: spec.keep_query.unwrap_or(true),
            url,
        })
    }

    pub(super) fn rewrite(&mut self, spec: &RewriteSpec, field: &str, ctx: &mut RuleContext) -> Option<Rewrite> {
        let before = ctx.error_count();
        let given = [spec.path.is_some(), spec.path_prefix.is_some(), spec.path_regex.is_some()];
        if given.iter().filter(|g| **g).count() > 1 {
            ctx.error(field, "give only one of path, path_prefix, path_regex");
        }
        if !given.contains(&true) && spec.host.is_none() {
            ctx.error(field, "give one of path, path_prefix, path_regex, and/or host");
        }
        let path = if let Some(path) = &spec.path {
            self.path_template(path, &format!("{field}.path"), ctx).map(PathRewrite::Full)
        } else if let Some(prefix) = &spec.path_prefix {
            if !prefix.from.starts_with('/') {
                ctx.error(format!("{field}.path_prefix.from"), "a path prefix starts with `/`");
            }
            self.header_template(&prefix.to, &format!("{field}.path_prefix.to"), ctx)
                .map(|to| PathRewrite::Prefix { from: prefix.from.as_str().into(), to })
        } else if let Some(regex) = &spec.path_regex {
            // Envoy's `regex_rewrite`: every match anywhere in the path is substituted.
            match CompiledMatch::search_regex(&regex.pattern) {
                Ok(compiled) => {
                    match envoy_substitution(&regex.substitution, compiled.captures_len().saturating_sub(1)) {
                        Ok(substitution) => {
                            Some(PathRewrite::Regex { regex: compiled, substitution: substitution.into() })
                        }
                        Err(message) => {
                            ctx.error(format!("{field}.path_regex.substitution"), message);
                            None
                        }
                    }
                }
                Err(reason) => {
                    ctx.error(format!("{field}.path_regex.pattern"), format!("invalid regex: {reason}"));
                    None
                }
            }
        } else {
            None
        };
        let host = spec.host.as_deref().and_then(|h| self.header_template(h, &format!("{field}.host"), ctx));
        let url = self.url_slots(ctx);
        (ctx.error_count() == before).then_some(Rewrite { path, host, url })
    }

    pub(super) fn query_edits(
        &mut self,
        spec: &QueryEditsSpec,
        field: &str,
        ctx: &mut RuleContext,
    ) -> Option<QueryEdits> {
        let before = ctx.error_count();
        let mut params = |pairs: &std::collections::BTreeMap<String, String>, at: &str, ctx: &mut RuleContext| {
            let mut out = Vec::new();
            for (name, value) in pairs {
                let item = format!("{at}.{name}");
                if name.is_empty() {
                    ctx.error(item.clone(), "a query parameter needs a name");
                }
                if let Some(template) = self.template(value, &item, ctx) {
                    out.push((Box::<str>::from(name.as_str()), template));
                }
            }
            out
        };
        let set = params(&spec.set, &format!("{field}.set"), ctx);
        let add = params(&spec.add, &format!("{field}.add"), ctx);
        let remove: Vec<Box<str>> = spec.remove.iter().map(|n| n.as_str().into()).collect();
        if set.is_empty() && add.is_empty() && remove.is_empty() && ctx.error_count() == before {
            ctx.error(field, "give at least one of set, add or remove");
        }
        let path_slot = self.request_header(":path", ctx);
        (ctx.error_count() == before).then_some(QueryEdits { set, add, remove, path_slot })
    }
}

/// Translates Envoy's `\1` substitution syntax to the regex crate's `${1}`, refusing groups the pattern lacks.
fn envoy_substitution(text: &str, groups: usize) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(d) if d.is_ascii_digit() => {
                    let index = d.to_digit(10).map_or(0, |d| d as usize);
                    if index > groups {
                        return Err(format!("\\{index} refers to a group the pattern does not have ({groups} groups)"));
                    }
                    out.push_str(&format!("${{{index}}}"));
                }
                Some('\\') => out.push('\\'),
                Some(other) => {
                    out.push('\\');
                    out.push(other);
                }
                None => out.push('\\'),
            },
            '$' => out.push_str("$$"),
            c => out.push(c),
        }
    }
    Ok(out)
}
