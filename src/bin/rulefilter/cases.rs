//! `rulefilter test`: runs rule test cases on the simulated proxy, the engine the module runs.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::report::{compile_first, Problem};
use rulefilter::cases::{case_file_beside, case_files, check, CaseFile, Session};

const HELP: &str = "\
rulefilter test: run rule test cases on the simulated proxy

Usage: rulefilter test [OPTIONS] <PATH>...

Each PATH is a test-case file (<name>.test.yaml), a rules document (its <name>.test.yaml beside it is run),
or a folder (every *.test.yaml in it). A case gives a request, optionally the upstream's answer, and what
must come out; each failure says what differed. The format is in docs/reference.md, under \"Testing rules\".

Options:
  -q, --quiet   Print only failures and the summary
  -h, --help    Print this help

Examples:
  rulefilter test rules/
  rulefilter test rules/cors.yaml
  rulefilter test -q rules/cors.test.yaml rules/canary.test.yaml

Exit status: 0 every case passed, 1 a case failed or a document is invalid, 2 the command itself failed.
";

pub fn run(mut args: lexopt::Parser) -> Result<ExitCode, String> {
    use lexopt::Arg::{Long, Short, Value};
    let mut paths: Vec<PathBuf> = Vec::new();
    let mut quiet = false;
    while let Some(arg) = args.next().map_err(|e| e.to_string())? {
        match arg {
            Long("quiet") | Short('q') => quiet = true,
            Long("help") | Short('h') => {
                out!("{HELP}");
                return Ok(ExitCode::SUCCESS);
            }
            Value(path) => paths.push(path.into()),
            other => return Err(other.unexpected().to_string()),
        }
    }
    if paths.is_empty() {
        return Err("give at least one case file, rules document or folder; see `rulefilter test --help`".into());
    }
    let mut files = Vec::new();
    for path in &paths {
        files.extend(case_files_for(path)?);
    }
    let (mut passed, mut failed) = (0, 0);
    for file in &files {
        let (p, f) = run_file(file, quiet);
        passed += p;
        failed += f;
    }
    outln!("{passed} passed, {failed} failed");
    Ok(if failed == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// The case files a path stands for.
fn case_files_for(path: &Path) -> Result<Vec<PathBuf>, String> {
    if path.is_dir() {
        let files = case_files(path);
        if files.is_empty() {
            return Err(format!("{}: no *.test.yaml in this folder", path.display()));
        }
        return Ok(files);
    }
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    if name.ends_with(".test.yaml") {
        return Ok(vec![path.to_owned()]);
    }
    let beside = case_file_beside(path);
    if beside.is_file() {
        Ok(vec![beside])
    } else {
        Err(format!("{}: no test cases beside it ({} does not exist)", path.display(), beside.display()))
    }
}

/// Runs one case file; returns (passed, failed). A document that does not compile fails every case.
fn run_file(file: &Path, quiet: bool) -> (usize, usize) {
    let cases = match CaseFile::load(file) {
        Ok(cases) => cases,
        Err(message) => {
            outln!("{message}");
            return (0, 1);
        }
    };
    let rules_path = cases.rules_path(file);
    outln!("{} ({})", file.display(), rules_path.display());
    let env: HashMap<String, String> = cases.env.clone().into_iter().collect();
    let rules = match compile(&rules_path, &env) {
        Ok(rules) => rules,
        Err(problems) => {
            for problem in problems {
                outln!("  {}", problem.text().replace('\n', "\n  "));
            }
            outln!("  FAIL  every case: the rules document is not valid");
            return (0, cases.cases.len().max(1));
        }
    };
    let (mut passed, mut failed) = (0, 0);
    // One simulated proxy per file: rate-limit buckets carry from case to case, as in Envoy.
    let mut session = Session::default();
    for case in &cases.cases {
        let differences = check(&case.expect, &session.simulate(&rules, case));
        if differences.is_empty() {
            passed += 1;
            if !quiet {
                outln!("  ok    {}", case.name);
            }
        } else {
            failed += 1;
            outln!("  FAIL  {}", case.name);
            for difference in differences {
                outln!("        {difference}");
            }
        }
    }
    (passed, failed)
}

/// Compiles the rules document a case file names, or says where it is wrong.
fn compile(path: &Path, env: &HashMap<String, String>) -> Result<rulefilter::RuleSet, Vec<Problem>> {
    let text =
        std::fs::read_to_string(path).map_err(|e| vec![Problem::file(path, None, format!("cannot read it: {e}"))])?;
    match compile_first(path, &text, env) {
        Some(compiled) => compiled.map(|(_, rules)| rules),
        None => Err(vec![Problem::file(path, None, "holds no rules document")]),
    }
}
