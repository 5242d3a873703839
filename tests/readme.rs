//! The documentation stays true: the README and every `docs/*.md` (a new file is covered as soon as it exists).
//! Rule snippets compile, trace examples print exactly what the tool prints, relative links lead somewhere, the
//! README keeps its promise to a newcomer (short, `make run` and `make test` first), and the text about CI and
//! bench-costs says what `.ci/run` and `examples/perf` do.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use std::path::{Path, PathBuf};

/// The most lines a newcomer is asked to read before the manual.
const README_MAX_LINES: usize = 300;

fn project() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `README.md` and every markdown file in `docs/`, with their text.
fn documents() -> Vec<(PathBuf, String)> {
    let mut paths = vec![project().join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(project().join("docs"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "md"))
        .collect();
    docs.sort();
    paths.extend(docs);
    paths.into_iter().map(|path| (path.clone(), std::fs::read_to_string(&path).unwrap())).collect()
}

fn shown(path: &Path) -> String {
    path.strip_prefix(project()).unwrap_or(path).display().to_string()
}

/// A markdown text's lines, each with whether it lies inside a fenced code block (fences included).
fn lines_with_fences(markdown: &str) -> impl Iterator<Item = (&str, bool)> {
    let mut fenced = false;
    markdown.lines().map(move |line| {
        let fence = line.trim_start().starts_with("```");
        if fence {
            fenced = !fenced;
        }
        (line, fence || fenced)
    })
}

/// The bodies of the ```yaml blocks.
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
fn every_rules_snippet_in_the_documentation_compiles() {
    let mut compiled = 0;
    for (path, text) in documents() {
        for block in yaml_blocks(&text) {
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
            let compiled_ok = std::panic::catch_unwind(|| common::rules(&document));
            assert!(compiled_ok.is_ok(), "{}: this rules snippet does not compile:\n{document}", shown(&path));
            compiled += 1;
        }
    }
    assert!(compiled >= 2, "expected the documentation's rule snippets, compiled {compiled}");
}

/// Every `$ rulefilter trace …` example prints exactly what the tool prints.
#[test]
fn every_trace_example_is_what_the_tool_prints() {
    let mut checked = 0;
    for (path, text) in documents() {
        let mut lines = text.lines().peekable();
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
                .current_dir(project())
                .output()
                .unwrap();
            assert!(output.status.success(), "{args:?}: {}", String::from_utf8_lossy(&output.stderr));
            assert_eq!(String::from_utf8_lossy(&output.stdout), expected, "{}: example {args:?}", shown(&path));
            checked += 1;
        }
    }
    assert!(checked >= 1, "the documentation should show a trace");
}

#[test]
fn the_readme_is_short_and_starts_with_make_run_and_make_test() {
    let readme = std::fs::read_to_string(project().join("README.md")).unwrap();
    let count = readme.lines().count();
    assert!(
        count <= README_MAX_LINES,
        "README.md has {count} lines; a newcomer's README keeps to {README_MAX_LINES}: move detail into docs/"
    );
    // The first code block holds the first commands a reader meets.
    let first_block: Vec<&str> = readme
        .lines()
        .skip_while(|line| !line.starts_with("```"))
        .skip(1)
        .take_while(|line| !line.starts_with("```"))
        .map(|line| line.split('#').next().unwrap_or_default().trim())
        .filter(|command| !command.is_empty())
        .collect();
    assert_eq!(first_block, ["make run", "make test"], "README.md's first commands");
}

/// GitHub's anchor for a heading: lower case, punctuation dropped, spaces as `-`.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// The anchors of a markdown text's headings (outside code blocks).
fn anchors(markdown: &str) -> Vec<String> {
    lines_with_fences(markdown)
        .filter(|(_, fenced)| !fenced)
        .filter_map(|(line, _)| line.strip_prefix('#'))
        .map(|heading| anchor(heading.trim_start_matches('#')))
        .collect()
}

/// The targets of the inline links `[text](target)` outside code blocks and code spans.
fn link_targets(markdown: &str) -> Vec<String> {
    let mut targets = Vec::new();
    for (line, fenced) in lines_with_fences(markdown) {
        if fenced {
            continue;
        }
        // Code spans are the odd pieces between backticks; links live in the even ones.
        for prose in line.split('`').step_by(2) {
            let mut rest = prose;
            while let Some(start) = rest.find("](") {
                let after = &rest[start + 2..];
                let Some(end) = after.find(')') else { break };
                targets.push(after[..end].to_owned());
                rest = &after[end..];
            }
        }
    }
    targets
}

/// What is wrong with the relative links of the markdown file `path`: a missing file, or an anchor that no
/// heading of its target has.
fn broken_links(path: &Path, markdown: &str) -> Vec<String> {
    let mut broken = Vec::new();
    for target in link_targets(markdown) {
        if target.contains("://") || target.starts_with("mailto:") {
            continue;
        }
        let (file, fragment) = match target.split_once('#') {
            Some((file, fragment)) => (file, Some(fragment)),
            None => (target.as_str(), None),
        };
        let linked = path.parent().unwrap().join(file);
        if !file.is_empty() && !linked.exists() {
            broken.push(format!("{target}: no file {}", linked.display()));
            continue;
        }
        if let Some(fragment) = fragment {
            let text = if file.is_empty() {
                markdown.to_owned()
            } else {
                std::fs::read_to_string(&linked).unwrap_or_default()
            };
            if !anchors(&text).iter().any(|a| a == fragment) {
                broken.push(format!("{target}: no heading with the anchor #{fragment}"));
            }
        }
    }
    broken
}

#[test]
fn every_relative_link_leads_to_a_file_and_heading() {
    let mut links = 0;
    let mut broken = Vec::new();
    for (path, text) in documents() {
        links += link_targets(&text).len();
        broken.extend(broken_links(&path, &text).into_iter().map(|problem| format!("{}: {problem}", shown(&path))));
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
    assert!(links >= 10, "expected the README to link into docs/, found {links} links");
}

#[test]
fn the_link_check_sees_a_missing_file_and_a_missing_heading() {
    assert_eq!(anchor(" Reload and failure (`failStrategy`)"), "reload-and-failure-failstrategy");
    assert_eq!(anchor(" Conditions (`match`)"), "conditions-match");
    let markdown = "# Title\n\n## A heading, with words\n\nSee [here](#a-heading-with-words), [gone](#gone), \
                    [nowhere](no-such-file.md), `[code](not-a-link.md)` and [reference](reference.md#limits).\n\n\
                    ```text\n[fenced](not-a-link.md)\n```\n";
    let path = project().join("docs").join("example.md");
    assert_eq!(
        broken_links(&path, markdown),
        [
            "#gone: no heading with the anchor #gone".to_owned(),
            format!("no-such-file.md: no file {}", project().join("docs/no-such-file.md").display()),
        ]
    );
}

/// The text of the section under the heading `## title` of a markdown file, up to the next `## `.
fn section(file: &str, title: &str) -> String {
    let text = std::fs::read_to_string(project().join(file)).unwrap();
    let heading = format!("## {title}");
    let start = text.find(&format!("\n{heading}\n")).unwrap_or_else(|| panic!("{file} has no section {heading}"));
    let body = &text[start + heading.len() + 2..];
    body[..body.find("\n## ").unwrap_or(body.len())].to_owned()
}

/// Every `make` command `.ci/run` runs is named, as written, where the documentation says what CI runs.
#[test]
fn the_ci_section_names_every_make_command_ci_runs() {
    let ci = std::fs::read_to_string(project().join(".ci/run")).unwrap();
    let commands: Vec<&str> = ci
        .lines()
        .map(|line| line.trim().trim_start_matches("time ").trim())
        .filter(|line| line.starts_with("make "))
        .collect();
    assert!(commands.len() >= 3, "expected .ci/run's make commands, found {commands:?}");
    // Lines wrap anywhere, so compare with every run of whitespace as one space.
    let described = section("docs/development.md", "CI").split_whitespace().collect::<Vec<_>>().join(" ");
    for command in commands {
        assert!(
            described.contains(&format!("`{command}`")),
            "docs/development.md, section CI, does not name `{command}`, which .ci/run runs:\n{described}"
        );
    }
}

/// The bench-costs table uses the labels `make bench-costs` prints, in its order.
#[test]
fn the_costs_table_uses_the_tools_labels() {
    let source = std::fs::read_to_string(project().join("examples/perf/costs.rs")).unwrap();
    let labels: Vec<&str> = source
        .split("part(\"")
        .skip(1)
        .map(|rest| rest.split('"').next().unwrap_or_default())
        .filter(|label| !label.is_empty())
        .collect();
    assert!(labels.len() >= 5, "expected the parts of examples/perf/costs.rs, found {labels:?}");
    let described = section("docs/performance.md", "What the parts of a rule cost");
    let rows: Vec<&str> = described
        .lines()
        .filter(|line| line.starts_with("| "))
        .skip(1) // the header; the separator starts with "| -"
        .filter(|line| !line.starts_with("| -"))
        .map(|line| line.trim_start_matches("| ").split(" |").next().unwrap_or_default())
        .collect();
    assert_eq!(rows, labels, "docs/performance.md's bench-costs rows should be the labels the tool prints");
}

/// The limits table states the bounds `src/limits.rs` enforces, row by row in its order.
#[test]
fn the_limits_table_states_the_enforced_bounds() {
    use rulefilter::limits::*;
    let enforced = [
        MAX_DOCUMENT_BYTES,
        MAX_RULES,
        MAX_ACTIONS,
        MAX_NESTING,
        REGEX_SIZE_LIMIT,
        MAX_TEMPLATE_BYTES,
        MAX_BODY_BYTES,
        MAX_HEADER_VALUE_BYTES,
        MAX_RENDERED_BYTES,
        MAX_BODY_HOLD_BYTES,
    ];
    // `1 MiB`, `8 KiB`, `16 deep`, `1000`: the number times its unit.
    let value = |limit: &str| -> usize {
        let mut words = limit.split_whitespace();
        let number: usize = words.next().and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("limit {limit:?}"));
        number
            * match words.next() {
                Some("MiB") => 1 << 20,
                Some("KiB") => 1 << 10,
                _ => 1,
            }
    };
    let stated: Vec<usize> = section("docs/reference.md", "Limits")
        .lines()
        .filter(|line| line.starts_with('|') && !line.starts_with("|--") && !line.starts_with("| Bound"))
        .map(|line| value(line.split('|').nth(2).unwrap_or_default()))
        .collect();
    assert_eq!(stated, enforced, "docs/reference.md's limits table against src/limits.rs");
}
