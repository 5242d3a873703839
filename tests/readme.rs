//! The README's rule snippets compile: a reader who copies one gets a working document.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;

/// The bodies of the README's ```yaml blocks.
fn yaml_blocks(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        match (&mut current, line.trim_end()) {
            (None, "```yaml") => current = Some(String::new()),
            (Some(block), "```") => {
                blocks.push(std::mem::take(block));
                current = None;
            }
            (Some(block), text) => {
                block.push_str(text);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    blocks
}

#[test]
fn every_rules_snippet_in_the_readme_compiles() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let mut compiled = 0;
    for block in yaml_blocks(&readme) {
        let first = block.lines().find(|l| !l.trim().is_empty() && !l.starts_with('#')).unwrap_or_default();
        let document = if first.starts_with("request:") || first.starts_with("response:") {
            block
        } else if first.starts_with("match:") {
            // A `match` block on its own: make it a rule.
            let indented: String = block.lines().map(|l| format!("    {l}\n")).collect();
            format!("request:\n  - name: snippet\n{indented}    actions: [log: {{message: matched}}]\n")
        } else {
            continue; // a manifest or a case file
        };
        common::rules(&document);
        compiled += 1;
    }
    assert!(compiled >= 2, "expected the README's rule snippets, compiled {compiled}");
}

/// The README's `rulefilter trace` examples print exactly what the tool prints.
#[test]
fn the_readme_trace_example_is_what_the_tool_prints() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let mut checked = 0;
    let mut lines = readme.lines().peekable();
    while let Some(line) = lines.next() {
        let Some(command) = line.strip_prefix("$ rulefilter trace ") else { continue };
        let mut expected = String::new();
        while let Some(next) = lines.next_if(|l| !l.starts_with("$ ") && *l != "```") {
            expected.push_str(next);
            expected.push('\n');
        }
        let mut args = vec!["trace".to_owned()];
        args.extend(common::shell_words(command));
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_rulefilter"))
            .args(&args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .unwrap();
        assert!(output.status.success(), "{args:?}: {}", String::from_utf8_lossy(&output.stderr));
        assert_eq!(String::from_utf8_lossy(&output.stdout), expected, "README example {args:?}");
        checked += 1;
    }
    assert!(checked >= 1, "the README should show a trace");
}
