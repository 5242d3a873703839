//! `rulefilter validate`: the module's own validation, with each problem's place in the file.

use std::cell::OnceCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use lexopt::ValueExt;

use rulefilter::cases::CaseFile;
use rulefilter::input::{self, Item};
use rulefilter::{Phase, RuleSet};
use serde_json::json;

use crate::args::env_pair;
use crate::report::{judge, Problem};

const HELP: &str = "\
rulefilter validate: check rules documents and WasmPlugin manifests, as the module would

Usage: rulefilter validate [OPTIONS] <FILE>...

Each FILE, YAML or JSON, is taken for one of these, and the output says which:
  - Kubernetes objects: every YAML document in it has apiVersion and kind (several per file, split by
    ---). Each Istio WasmPlugin (apiVersion extensions.istio.io/*, kind WasmPlugin) is judged on what
    the module receives: the compact JSON of its spec.pluginConfig, with its vmConfig.env. Other kinds
    are skipped.
  - test cases: one YAML document with `rules` and `cases`; its format is checked.
  - otherwise a rules document: the whole text, judged exactly as the module judges its configuration.
    A rules document is one YAML document: a file of several that are not all Kubernetes objects is
    refused, as the module refuses it.
The verdict is the module's own, on the same bytes (size and nesting limits included). Every problem is
one line, file:line:column, naming the rule and the field, with a hint where one helps.

Options:
      --env NAME=VALUE  An environment variable for ${env.NAME} (vmConfig.env); repeatable
      --format FORMAT   text (default) or json
  -h, --help            Print this help

Examples:
  rulefilter validate rules/cors.yaml
  rulefilter validate manifests/*.yaml
  rulefilter validate --env REGION=eu --format json rules/maintenance.yaml

Exit status: 0 every file is valid, 1 problems were found, 2 the command itself failed.
";

struct Options {
    files: Vec<PathBuf>,
    env: HashMap<String, String>,
    json: bool,
}

fn options(mut args: lexopt::Parser) -> Result<Option<Options>, lexopt::Error> {
    use lexopt::Arg::{Long, Short, Value};
    let mut options = Options { files: Vec::new(), env: HashMap::new(), json: false };
    while let Some(arg) = args.next()? {
        match arg {
            Long("env") => {
                let (name, value) = env_pair(&args.value()?.string()?)?;
                options.env.insert(name, value);
            }
            Long("format") => match args.value()?.string()?.as_str() {
                "text" => options.json = false,
                "json" => options.json = true,
                other => return Err(format!("--format is text or json, not {other:?}").into()),
            },
            Long("help") | Short('h') => {
                out!("{HELP}");
                return Ok(None);
            }
            Value(file) => options.files.push(file.into()),
            other => return Err(other.unexpected()),
        }
    }
    if options.files.is_empty() {
        return Err("give at least one file to validate; see `rulefilter validate --help`".into());
    }
    Ok(Some(options))
}

pub fn run(args: lexopt::Parser) -> Result<ExitCode, String> {
    let Some(options) = options(args).map_err(|e| e.to_string())? else { return Ok(ExitCode::SUCCESS) };
    let mut problem_count = 0;
    let mut report = Vec::new();
    for file in &options.files {
        let (checked, problems) = check_file(file, &options.env);
        problem_count += problems.len();
        if !options.json {
            for problem in &problems {
                outln!("{}", problem.text());
            }
            for valid in checked.iter().filter(|c| c.valid) {
                outln!("{}: {}: {}", valid.file, valid.taken_for, valid.summary);
            }
        }
        report.push((checked, problems));
    }
    if options.json {
        let checked: Vec<_> = report
            .iter()
            .flat_map(|(checked, _)| checked)
            .map(|c| {
                json!({
                    "file": c.file,
                    "taken_for": c.taken_for,
                    "manifest": c.manifest,
                    "valid": c.valid,
                    "summary": c.summary,
                })
            })
            .collect();
        let problems: Vec<_> = report.iter().flat_map(|(_, problems)| problems).map(Problem::json).collect();
        outln!("{:#}", json!({"valid": problem_count == 0, "checked": checked, "problems": problems}));
    } else if problem_count > 0 {
        eprintln!("{} in {}", plural(problem_count, "problem"), plural(options.files.len(), "file"));
    }
    Ok(if problem_count == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// `1 rule`, `2 rules`.
pub fn plural(count: usize, noun: &str) -> String {
    if count == 1 {
        format!("1 {noun}")
    } else {
        format!("{count} {noun}s")
    }
}

/// What was checked in one document, for the summary.
struct Checked {
    file: String,
    /// `rules document`, `WasmPlugin ns/name`, `test cases`, or `skipped KIND name` for another object.
    taken_for: String,
    manifest: Option<String>,
    valid: bool,
    summary: String,
}

/// Checks every document of one file.
fn check_file(path: &Path, env: &HashMap<String, String>) -> (Vec<Checked>, Vec<Problem>) {
    let mut problems = Vec::new();
    let checked = check_documents(path, env, &mut problems);
    // In the order of the file, as an editor lists them.
    problems.sort_by_key(|p| p.position);
    (checked, problems)
}

fn check_documents(path: &Path, env: &HashMap<String, String>, problems: &mut Vec<Problem>) -> Vec<Checked> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) => {
            problems.push(Problem::file(path, None, format!("cannot read it: {e}")));
            return Vec::new();
        }
    };
    // Refused as the module refuses bytes that are not text.
    let text = match rulefilter::document::utf8(&bytes) {
        Ok(text) => text.to_owned(),
        Err(error) => {
            problems.push(Problem::file(path, None, error.message));
            return Vec::new();
        }
    };
    let items = match input::read(&text) {
        Ok(items) => items,
        Err(error) => {
            problems.push(Problem::syntax(path, &error));
            return Vec::new();
        }
    };
    // Positions are needed only for problems: the text is read for them only then.
    let map = OnceCell::new();
    let file = path.display().to_string();
    let mut checked = Vec::new();
    for item in items {
        match item {
            Item::Rules(source) => {
                let before = problems.len();
                let summary = match judge(path, &text, &map, &source, env) {
                    Ok(rules) => summary(&rules),
                    Err(found) => {
                        problems.extend(found);
                        String::new()
                    }
                };
                checked.push(Checked {
                    file: file.clone(),
                    taken_for: source.taken_for().to_owned(),
                    manifest: source.manifest.clone(),
                    valid: problems.len() == before,
                    summary,
                });
            }
            Item::Cases { .. } => match CaseFile::parse(&text, path) {
                Ok(cases) => checked.push(Checked {
                    file: file.clone(),
                    taken_for: "test cases".to_owned(),
                    manifest: None,
                    valid: true,
                    summary: format!("valid ({} for {})", plural(cases.cases.len(), "case"), cases.rules.display()),
                }),
                Err(message) => problems.push(Problem::file(path, None, message)),
            },
            Item::Other { kind, name, .. } => checked.push(Checked {
                file: file.clone(),
                taken_for: format!("{kind} {name}"),
                manifest: None,
                valid: true,
                summary: "skipped (not a WasmPlugin)".to_owned(),
            }),
        }
    }
    checked
}

/// What a valid rules document holds.
fn summary(rules: &RuleSet) -> String {
    if rules.is_empty() {
        return "valid, no rules (the filter passes all traffic through)".to_owned();
    }
    format!(
        "valid ({}, {})",
        plural(rules.rule_count(Phase::Request), "request rule"),
        plural(rules.rule_count(Phase::Response), "response rule")
    )
}
