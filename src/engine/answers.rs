//! Running the actions that answer or change the URL: respond, redirect, rewrite, query edits.

use super::values::{authority_port, default_port, strip_port};
use super::writes::unsendable;
use super::{Host, Run};
use crate::ruleset::{LocalResponse, PathRewrite, QueryEdits, Redirect, RedirectTarget, Rewrite, Rule, Template};
use crate::trace::UrlChange;
use crate::url;
use crate::url::QueryPairs;
use std::borrow::Cow;

impl<'r, H: Host> Run<'r, '_, H> {
    pub(super) fn respond(&mut self, rule: &Rule, response: &LocalResponse, captures: &[Option<String>]) -> bool {
        let mut headers: Vec<(&str, Cow<'_, str>)> = Vec::with_capacity(response.headers.len());
        for (name, template) in &response.headers {
            if let Some(value) = self.render_header(rule, name, template, captures) {
                headers.push((name, value));
            }
        }
        let body = self.render(&response.body, captures);
        let pairs: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_ref())).collect();
        self.send_response(response.status, &pairs, &body)
    }

    pub(super) fn redirect(&mut self, rule: &Rule, redirect: &Redirect, captures: &[Option<String>]) -> bool {
        for slot in [redirect.url.scheme, redirect.url.authority, redirect.url.path] {
            self.ensure(slot);
        }
        let (request_path, request_query) = url::split_path(self.get(redirect.url.path).unwrap_or("/"));
        let (request_path, request_query) = (request_path.to_owned(), request_query.map(str::to_owned));
        let kept_query = request_query.filter(|q| redirect.keep_query && !q.is_empty());
        let location = match &redirect.target {
            RedirectTarget::Location(template) => {
                let location = self.render(template, captures).into_owned();
                match kept_query {
                    Some(query) if !location.contains('?') => format!("{location}?{query}"),
                    _ => location,
                }
            }
            RedirectTarget::Parts { scheme, host, port, path, query } => {
                let request_scheme = self.get(redirect.url.scheme).unwrap_or("http").to_ascii_lowercase();
                let authority = self.get(redirect.url.authority).unwrap_or_default().to_owned();
                let new_scheme = scheme.as_deref().unwrap_or(&request_scheme).to_owned();
                let new_host = match host {
                    Some(template) => self.render(template, captures).into_owned(),
                    None => strip_port(&authority).to_owned(),
                };
                // A changed scheme gets its default port unless one is given.
                let scheme_changed = new_scheme != request_scheme;
                let request_port = authority_port(&authority).filter(|_| !scheme_changed);
                let new_port = port.or(request_port).filter(|p| Some(*p) != default_port(&new_scheme));
                let new_path = match path {
                    Some(template) => self.render(template, captures).into_owned(),
                    None => request_path,
                };
                let new_query = match query {
                    Some(template) => Some(self.render(template, captures).into_owned()).filter(|q| !q.is_empty()),
                    None if new_path.contains('?') => None,
                    None => kept_query,
                };
                let mut location = format!("{new_scheme}://{new_host}");
                if let Some(port) = new_port {
                    location.push_str(&format!(":{port}"));
                }
                location.push_str(&new_path);
                if let Some(query) = new_query {
                    location.push('?');
                    location.push_str(&query);
                }
                location
            }
        };
        if let Some(reason) = unsendable(&location) {
            self.refuse(format!("rule {:?}: refused a redirect: the location {reason}", &*rule.name));
            return false;
        }
        self.send_response(redirect.status, &[("location", &location)], "")
    }

    pub(super) fn rewrite(&mut self, rule: &Rule, rewrite: &Rewrite, captures: &[Option<String>]) {
        if let Some(path_rewrite) = &rewrite.path {
            self.ensure(rewrite.url.path);
            let current = self.get(rewrite.url.path).unwrap_or("/").to_owned();
            let (path, query) = url::split_path(&current);
            let new_path: Cow<'_, str> = match path_rewrite {
                PathRewrite::Full(template) => Cow::Owned(self.render(template, captures).into_owned()),
                PathRewrite::Prefix { from, to } => match path.strip_prefix(&**from) {
                    Some(rest) => Cow::Owned(format!("{}{rest}", self.render(to, captures))),
                    None => Cow::Borrowed(path),
                },
                PathRewrite::Regex { regex, substitution } => regex.replace_all(path, &**substitution),
            };
            // A new path that brings its own query replaces the request's.
            let new = match query {
                Some(query) if !new_path.contains('?') => format!("{new_path}?{query}"),
                _ => new_path.into_owned(),
            };
            match unsendable(&new) {
                None if new.starts_with('/') => self.set_url(UrlChange::RewritePath, &new),
                None => self.refuse(format!(
                    "rule {:?}: refused a rewritten path {new:?}: it does not start with /",
                    &*rule.name
                )),
                Some(reason) => {
                    self.refuse(format!("rule {:?}: refused a rewritten path: it {reason}", &*rule.name));
                }
            }
        }
        if let Some(template) = &rewrite.host {
            match self.render_header(rule, ":authority", template, captures) {
                Some(host) if !host.is_empty() => self.set_url(UrlChange::RewriteHost, &host),
                Some(_) => self.refuse(format!("rule {:?}: refused an empty rewritten host", &*rule.name)),
                // Already refused by render_header.
                None => {}
            }
        }
    }

    pub(super) fn edit_query(&mut self, rule: &Rule, edits: &QueryEdits, captures: &[Option<String>]) {
        let rendered = |run: &mut Self, pairs: &[(Box<str>, Template)]| -> Vec<String> {
            pairs.iter().map(|(_, template)| run.render(template, captures).into_owned()).collect()
        };
        let set_values = rendered(self, &edits.set);
        let add_values = rendered(self, &edits.add);
        self.ensure(edits.path_slot);
        let current = self.get(edits.path_slot).unwrap_or("/").to_owned();
        let (path, query) = url::split_path(&current);
        let mut pairs = QueryPairs::parse(query.unwrap_or_default());
        for ((name, _), value) in edits.set.iter().zip(&set_values) {
            pairs.set(name, value);
        }
        for ((name, _), value) in edits.add.iter().zip(&add_values) {
            pairs.add(name, value);
        }
        for name in &edits.remove {
            pairs.remove(name);
        }
        let new = pairs.to_path(path);
        if let Some(reason) = unsendable(&new) {
            self.refuse(format!("rule {:?}: refused the edited query: the path {reason}", &*rule.name));
        } else if new != current {
            self.log(log::Level::Debug, format_args!("rule {:?}: query now {new:?}", &*rule.name));
            self.set_url(UrlChange::Query, &new);
        }
    }
}
