//! Every rules document in rules/ ships test cases (`<name>.test.yaml`); here they run on the simulated proxy.
//! The e2e suite replays the same cases through the real Envoy.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::collections::HashMap;
use std::path::Path;

use rulefilter::cases::{case_files, check, CaseFile, Session};

#[test]
fn every_rules_document_has_cases_and_they_pass_offline() {
    let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
    // The examples, and the vocabulary document that covers what they do not use.
    let vocabulary = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cases");
    let files = [case_files(&folder), case_files(&vocabulary)].concat();
    let mut documents: Vec<String> = std::fs::read_dir(&folder)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml") && !n.ends_with(".test.yaml"))
        .collect();
    documents.sort();
    let mut failures = Vec::new();
    let mut count = 0;
    for file in &files {
        let cases = CaseFile::load(file).unwrap_or_else(|e| panic!("{e}"));
        let rules_path = cases.rules_path(file);
        documents.retain(|d| folder.join(d) != rules_path);
        let text = std::fs::read_to_string(&rules_path).unwrap();
        let env: HashMap<String, String> = cases.env.clone().into_iter().collect();
        let rules = rulefilter::parse_with_env(&text, &env)
            .unwrap_or_else(|e| panic!("{} does not compile:\n{e}", rules_path.display()));
        assert!(!cases.cases.is_empty(), "{} has no cases", file.display());
        let mut session = Session::default();
        for case in &cases.cases {
            count += 1;
            for difference in check(&case.expect, &session.simulate(&rules, case)) {
                failures.push(format!("{} / {}: {difference}", file.display(), case.name));
            }
        }
    }
    assert!(documents.is_empty(), "rules documents without a .test.yaml: {documents:?}");
    assert!(failures.is_empty(), "{} of {count} cases failed:\n{}", failures.len(), failures.join("\n"));
    println!("{count} cases in {} files passed", files.len());
}
