//! Same bytes, same verdict: `rulefilter validate` (the binary, run as users run it) and the module's own
//! function, `rulefilter::document::load` (what `on_configure` runs), agree on every shipped document and on
//! mutations of them: valid or not, and the same messages. The module reads JSON only: a JSON file is judged
//! on its own bytes, a YAML file on the JSON istiod would make of it (what the tool hands the module), and
//! YAML itself never reaches the module's compiler. A handful also go through a real Envoy by ECDS, which must
//! apply exactly the ones the tool calls valid. And the verdict's time grows linearly with depth and size.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod support;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use rulefilter::limits::{MAX_DOCUMENT_BYTES, MAX_DOCUMENT_DEPTH, MAX_NESTING};
use serde_json::Value;
use support::{echo, options, start, Plugin, Reload};

/// The environment both sides get (the shipped documents read these).
const ENV: [(&str, &str); 2] = [("MAINTENANCE_RETRY_AFTER", "60"), ("REGION", "eu")];

/// One problem, as both sides can tell it: phase, rule index, field and message.
type Problem = (Option<String>, Option<u64>, String, String);

/// Valid, or the problems found.
type Verdict = Result<(), Vec<Problem>>;

/// What a file was taken for (one entry per object or document), and its verdict.
type Judged = (Vec<String>, Verdict);

fn env() -> HashMap<String, String> {
    ENV.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// The module's verdict on exactly the bytes it would receive.
fn module_verdict(bytes: &[u8]) -> Verdict {
    rulefilter::document::load_bytes(bytes, &env()).map(drop).map_err(|errors| {
        let mut problems: Vec<Problem> = errors
            .0
            .into_iter()
            .map(|e| {
                let rule = e.rule.as_ref();
                (rule.map(|r| r.phase.key().to_owned()), rule.map(|r| r.index as u64), e.field, e.message)
            })
            .collect();
        problems.sort();
        problems
    })
}

/// The module's verdict on what the tool hands it for a file's bytes: JSON as it is, YAML rendered as istiod
/// renders `pluginConfig`; a file the tool cannot render is refused with the tool's reason.
fn handed_over_verdict(bytes: &[u8]) -> Verdict {
    let Ok(text) = std::str::from_utf8(bytes) else { return module_verdict(bytes) };
    match rulefilter::yaml_document::module_text(text) {
        Ok(json) => module_verdict(json.as_bytes()),
        Err(error) => Err(vec![(None, None, String::new(), error.message)]),
    }
}

/// What `rulefilter validate --format json` says about each file: what it took it for, and its verdict.
fn cli_verdicts(files: &[PathBuf]) -> HashMap<String, Judged> {
    let mut verdicts: HashMap<String, Judged> = HashMap::new();
    for chunk in files.chunks(200) {
        let mut command = Command::new(env!("CARGO_BIN_EXE_rulefilter"));
        command.arg("validate").arg("--format").arg("json");
        for (name, value) in ENV {
            command.arg("--env").arg(format!("{name}={value}"));
        }
        let output = command.args(chunk).output().unwrap();
        assert!(output.status.code().is_some_and(|c| c < 2), "{}", String::from_utf8_lossy(&output.stderr));
        let report: Value = serde_json::from_slice(&output.stdout).unwrap();
        for file in chunk {
            verdicts.insert(file.display().to_string(), (Vec::new(), Ok(())));
        }
        for checked in report["checked"].as_array().unwrap() {
            let entry = verdicts.get_mut(checked["file"].as_str().unwrap()).unwrap();
            entry.0.push(checked["taken_for"].as_str().unwrap_or("rules document").to_owned());
        }
        for problem in report["problems"].as_array().unwrap() {
            let entry = verdicts.get_mut(problem["file"].as_str().unwrap()).unwrap();
            let text = |key: &str| problem[key].as_str().map(str::to_owned);
            let found = (
                text("phase"),
                problem["rule_index"].as_u64(),
                text("field").unwrap_or_default(),
                text("message").unwrap(),
            );
            match &mut entry.1 {
                Ok(()) => entry.1 = Err(vec![found]),
                Err(list) => list.push(found),
            }
        }
    }
    for (_, verdict) in verdicts.values_mut() {
        if let Err(list) = verdict {
            list.sort();
        }
    }
    verdicts
}

fn shipped(folder: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(folder))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            (name.ends_with(".yaml") || name.ends_with(".json")) && !name.ends_with(".test.yaml")
        })
        .collect();
    files.sort();
    files
}

/// Mutations of one rules document: what people and tools get wrong.
fn mutations(text: &str) -> Vec<Vec<u8>> {
    let half = (0..=text.len() / 2).rev().find(|&i| text.is_char_boundary(i)).unwrap();
    let out: Vec<String> = vec![
        text.to_owned(),
        text.replacen("name:", "nmae:", 1),
        text.replacen("request:", "requets:", 1),
        text.replacen("status: ", "status: ok", 1),
        text.replacen("actions:", "actions: 5\n    old_actions:", 1),
        text.replacen("match:", "match: [", 1),
        text[..half].to_owned(),
        format!("{text}\u{7}"),
        text.replacen(':', ":\u{0}", 1),
        format!("{text}---\n{text}"),
        format!("kind: WasmPlugin\n{text}"),
        format!("kind: Service\n{text}"),
        format!("{text}\n{}", "#".repeat(MAX_DOCUMENT_BYTES)),
        format!("x: {}{}\n{text}", "[".repeat(MAX_DOCUMENT_DEPTH), "]".repeat(MAX_DOCUMENT_DEPTH)),
    ];
    let mut bytes: Vec<Vec<u8>> = out.into_iter().map(String::into_bytes).collect();
    bytes.push([b"request: [] # ".as_slice(), &[0xff, 0xfe], b"\n"].concat());
    bytes
}

/// Texts that are not made from a document.
fn odd_texts() -> Vec<String> {
    let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
    vec![
        String::new(),
        " ".into(),
        "\t".into(),
        "\n\t \r\n".into(),
        "\u{a0}".into(),
        "\u{feff}".into(),
        "# just a comment\n".into(),
        "---\n---\n".into(),
        "~".into(),
        "[]".into(),
        "\"text\"".into(),
        deep(100_000),
        deep(MAX_DOCUMENT_DEPTH),
        deep(MAX_DOCUMENT_DEPTH + 1),
        deepest_valid_document(),
        deepest_valid_document().replace("path: /x", "path: [[x]]"),
        "request:\n".to_owned()
            + &"  ".repeat(0)
            + &(0..60).map(|i| format!("{}- \n", "  ".repeat(i))).collect::<String>(),
    ]
}

/// A rule whose `all` blocks nest as deep as the language allows, its innermost condition a header test: the
/// deepest valid document.
fn deepest_valid_document() -> String {
    let mut block = "{headers: {x-a: {prefix: a}}, path: /x}".to_owned();
    for _ in 0..MAX_NESTING {
        block = format!("{{all: [{block}]}}");
    }
    format!("request:\n  - name: deep\n    match: {block}\n    actions: [{{log: {{message: x}}}}]\n")
}

#[test]
fn the_tool_and_the_module_give_the_same_verdict_on_the_same_bytes() {
    let dir = std::env::temp_dir().join(format!("rulefilter-verdict-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut cases: Vec<(PathBuf, Vec<u8>, String)> = Vec::new();
    for folder in ["rules", "tests/invalid", "fuzz/documents"] {
        for file in shipped(folder) {
            let text = std::fs::read_to_string(&file).unwrap();
            // Manifests are judged on their pluginConfig: the next test compares those.
            if text.contains("apiVersion:") {
                continue;
            }
            for (i, mutation) in mutations(&text).into_iter().enumerate() {
                let name = file.file_name().unwrap().to_string_lossy().replace('.', "_");
                cases.push((
                    dir.join(format!("{name}-{i}.yaml")),
                    mutation,
                    format!("{} mutation {i}", file.display()),
                ));
            }
        }
    }
    for (i, text) in odd_texts().into_iter().enumerate() {
        cases.push((dir.join(format!("odd-{i}.yaml")), text.into_bytes(), format!("odd text {i}")));
    }
    for (path, bytes, _) in &cases {
        std::fs::write(path, bytes).unwrap();
    }
    let files: Vec<PathBuf> = cases.iter().map(|(path, ..)| path.clone()).collect();
    let verdicts = cli_verdicts(&files);
    let mut compared = 0;
    let mut refused = 0;
    let mut json_texts = 0;
    let mut disagreements = Vec::new();
    for (path, bytes, what) in &cases {
        let (taken_for, cli) = &verdicts[&path.display().to_string()];
        // A text of Kubernetes objects (apiVersion and kind) is not taken for a rules document, and says so.
        if taken_for.iter().any(|t| t != "rules document") {
            panic!("{what} was taken for {taken_for:?}");
        }
        let module = handed_over_verdict(bytes);
        // A JSON text reaches the module as it is: same bytes, no rendering between.
        if std::str::from_utf8(bytes).is_ok_and(rulefilter::yaml_document::is_json) {
            assert_eq!(module_verdict(bytes), module, "{what}: a JSON text judged otherwise as it is");
            json_texts += 1;
        } else if module.is_ok() && !bytes.iter().all(u8::is_ascii_whitespace) {
            // YAML as written is refused by the module, in one line that says how to write JSON.
            let refused = module_verdict(bytes).expect_err(what);
            assert!(refused[0].3.contains("rulefilter manifest --envoy"), "{what}: {refused:?}");
        }
        if cli != &module {
            let start = String::from_utf8_lossy(&bytes[..bytes.len().min(120)]).into_owned();
            disagreements.push(format!("{what} ({start:?}):\n  tool:   {cli:?}\n  module: {module:?}"));
        }
        compared += 1;
        refused += usize::from(module.is_err());
    }
    assert!(disagreements.is_empty(), "{} disagreements:\n{}", disagreements.len(), disagreements.join("\n"));
    // The set is big and mixed enough to mean something.
    assert!(
        compared >= 200 && refused >= compared / 2 && compared - refused >= 20 && json_texts >= 10,
        "{compared} compared, {refused} refused, {json_texts} JSON texts"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_wasmplugin_is_judged_on_the_compact_json_istiod_hands_the_module() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = shipped("manifests");
    files.retain(|f| !f.to_string_lossy().ends_with("-bootstrap.yaml"));
    files.push(dir.join("tests/invalid/manifest.yaml"));
    let verdicts = cli_verdicts(&files);
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let manifest = serde_yaml::Deserializer::from_str(&text)
            .map(|d| <serde_yaml::Value as serde::Deserialize>::deserialize(d).unwrap())
            .find(|v| v["kind"] == "WasmPlugin")
            .unwrap();
        // As the e2e suite builds the filter from a manifest: the JSON Envoy's module receives.
        let plugin = Plugin::from_manifest(&manifest).unwrap();
        let module = module_verdict(plugin.config_json.unwrap_or_default().as_bytes());
        let (taken_for, cli) = &verdicts[&file.display().to_string()];
        assert!(taken_for.iter().any(|t| t.starts_with("WasmPlugin ")), "{taken_for:?}");
        assert_eq!(cli, &module, "{}", file.display());
    }
    // Whole numbers arrive as doubles written `5` or `5.0`: both are whole numbers to the module.
    let doubles = r#"{"version":1.0,"request":[{"name":"r","actions":[{"respond":{"status":200.0}}]}]}"#;
    assert_eq!(module_verdict(doubles.as_bytes()), Ok(()));
}

#[test]
fn the_deepest_valid_document_is_valid_and_one_level_more_is_refused_by_the_compiler() {
    let deepest = deepest_valid_document();
    assert_eq!(handed_over_verdict(deepest.as_bytes()), Ok(()));
    let deeper = deepest.replace("match: {", "match: {all: [{").replace("\n    actions", "]}\n    actions");
    let found = handed_over_verdict(deeper.as_bytes()).unwrap_err();
    assert!(found[0].3.contains("nest more than 16 deep"), "{found:?}");
}

/// The verdict's time on `text` (the module's on JSON, the tool's on YAML): the fastest of several runs (the
/// least disturbed by a busy machine), each repeating the verdict enough times to be measurable.
fn verdict_time(text: &str) -> Duration {
    let repeat = (1_000_000 / text.len().max(1)).max(1);
    let json = text.starts_with(['{', '[']);
    let load = if json { rulefilter::document::load } else { rulefilter::yaml_document::load };
    (0..7)
        .map(|_| {
            let started = Instant::now();
            for _ in 0..repeat {
                let _ = std::hint::black_box(load(text, &HashMap::new()));
            }
            started.elapsed() / repeat as u32
        })
        .min()
        .unwrap()
}

#[test]
fn the_verdict_takes_time_linear_in_depth_and_size() {
    let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
    // JSON objects nested: the parser's time is quadratic in their depth (30,000 took seconds).
    let objects = |n: usize| format!("{}1{}", "{\"a\":".repeat(n / 5), "}".repeat(n / 5));
    // Flat: as many brackets, side by side (the parser reads them all), in JSON and in YAML.
    let flat = |n: usize| format!("{{\"x\": [{}]}}", vec!["[]"; n / 2].join(","));
    // One object of many keys: each key is checked against the others once (a key given twice is refused).
    let keys = |n: usize| format!("{{{}}}", (0..n / 8).map(|i| format!("\"k{i}\":0")).collect::<Vec<_>>().join(","));
    let flat_yaml = |n: usize| format!("x: [{}]", vec!["[]"; n / 2].join(","));
    // Deep texts are refused before parsing, with the bound named.
    let refused = rulefilter::document::load(&deep(100_000), &HashMap::new()).unwrap_err().to_string();
    assert!(refused.contains(&format!("nested more than {MAX_DOCUMENT_DEPTH} levels deep")), "{refused}");
    // The scan stops at the bound, so it must be linear even where nothing is refused: a deep-but-allowed
    // prefix, then the rest of the text in quotes (which the scan reads to its end).
    let quoted = |n: usize| format!("{{\"a\": {}, \"b\": \"{}\"}}", deep(MAX_DOCUMENT_DEPTH - 1), "[".repeat(n));
    let quoted_yaml = |n: usize| format!("a: {}\nb: '{}'\n", deep(MAX_DOCUMENT_DEPTH - 1), "[".repeat(n));
    let makers: [(&str, &dyn Fn(usize) -> String); 7] = [
        ("deep", &deep),
        ("many keys", &keys),
        ("objects", &objects),
        ("flat", &flat),
        ("quoted", &quoted),
        ("flat YAML", &flat_yaml),
        ("quoted YAML", &quoted_yaml),
    ];
    for (what, make) in makers {
        let small = verdict_time(&make(10_000));
        let large = verdict_time(&make(100_000));
        // 10× the text: linear is ~10×, quadratic 100×. Generous for a loaded machine, far from quadratic.
        let ratio = large.as_secs_f64() / small.as_secs_f64().max(1e-6);
        println!("{what}: 10k {small:?}, 100k {large:?}, ratio {ratio:.1}");
        assert!(ratio < 30.0, "{what}: 10k took {small:?}, 100k {large:?}");
    }
    assert!(verdict_time(&deep(100_000)) < verdict_time(&flat(100_000)) * 2 + Duration::from_millis(5));
}

/// A handful through a real Envoy by ECDS: it applies exactly the documents the tool calls valid.
#[test]
fn envoy_applies_exactly_what_the_tool_calls_valid() {
    let upstream = echo();
    let mut envoy = start(options(Plugin::new("verdict", Some("{}".into())), &upstream));
    let texts: Vec<(&str, String)> = vec![
        ("valid", r#"{"request":[{"name":"a","actions":[{"log":{"message":"x"}}]}]}"#.into()),
        ("tab only", "\t".into()),
        ("no-break space only", "\u{a0}".into()),
        ("two documents", "request: []\n---\nresponse: []\n".into()),
        ("a kind key", "kind: WasmPlugin\nrequest: []\n".into()),
        ("100,000 deep", format!("{}{}", "[".repeat(100_000), "]".repeat(100_000))),
        ("100,000 objects deep", format!("{}1{}", "{\"a\":".repeat(100_000), "}".repeat(100_000))),
        ("deepest valid", deepest_valid_document()),
        ("over 1 MiB", format!("request: []\n{}", "#".repeat(MAX_DOCUMENT_BYTES))),
    ];
    let dir = std::env::temp_dir().join(format!("rulefilter-verdict-envoy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let files: Vec<PathBuf> = (0..texts.len()).map(|i| dir.join(format!("{i}.yaml"))).collect();
    for (file, (_, text)) in files.iter().zip(&texts) {
        std::fs::write(file, text).unwrap();
    }
    let verdicts = cli_verdicts(&files);
    let mut wrong = Vec::new();
    // YAML as written, not as the tool hands it over: the module refuses it.
    let yaml = ("valid YAML as written", None, "request: []\n".to_owned());
    let handed = files.iter().zip(&texts).map(|(file, (what, text))| {
        let valid = verdicts[&file.display().to_string()].1.is_ok();
        // What the tool hands over (`rulefilter manifest --envoy`): JSON as written, YAML as istiod's JSON.
        let json = rulefilter::yaml_document::module_text(text).map_or_else(|_| text.clone(), |t| t.into_owned());
        (*what, Some(valid), json)
    });
    for (what, valid, text) in handed.chain([yaml]) {
        let expected = if valid == Some(true) { Reload::Applied } else { Reload::Refused };
        let valid = valid.unwrap_or(false);
        let started = Instant::now();
        match envoy.push_config(Some(text.clone())) {
            Ok(reload) if reload == expected => {}
            outcome => wrong.push(format!("{what}: the tool says valid = {valid}, Envoy: {outcome:?}")),
        }
        // Envoy's main thread stays free: the verdict is quick, and the admin endpoint answers right after.
        if started.elapsed() > Duration::from_secs(20) {
            wrong.push(format!("{what}: took {:?}", started.elapsed()));
        }
        if support::get(envoy.admin, "/ready").status != 200 {
            wrong.push(format!("{what}: /ready did not answer 200"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// How deep a parsed value nests collections.
fn parsed_depth(value: &serde_yaml::Value) -> usize {
    use serde_yaml::Value;
    match value {
        Value::Sequence(items) => 1 + items.iter().map(parsed_depth).max().unwrap_or(0),
        Value::Mapping(map) => 1 + map.iter().map(|(k, v)| parsed_depth(k).max(parsed_depth(v))).max().unwrap_or(0),
        Value::Tagged(tagged) => parsed_depth(&tagged.value),
        _ => 0,
    }
}

/// The depth the pre-scan measures: the smallest limit it lets through.
fn scanned_depth(text: &str) -> usize {
    let (mut low, mut high) = (0, 400);
    while low < high {
        let middle = (low + high) / 2;
        if rulefilter::nesting::check(text, middle).is_ok() {
            high = middle;
        } else {
            low = middle + 1;
        }
    }
    low
}

/// The pre-scan is what keeps the parser's quadratic time away: over thousands of shipped documents with YAML
/// syntax sprinkled in (a fixed pseudo-random sequence, so a failure replays), it never measures less depth
/// than the parser then builds.
#[test]
fn the_nesting_scan_never_counts_less_than_the_parser_builds() {
    let mut seeds = Vec::new();
    for folder in ["rules", "tests/invalid", "fuzz/documents", "manifests"] {
        for file in shipped(folder) {
            seeds.push(std::fs::read_to_string(file).unwrap());
        }
    }
    let pieces = [
        "[", "]", "{", "}", ":", ": ", "'", "\"", "- ", "-", " ", "  ", "\n", "\n  ", "\n- ", "#", " #", "|", ">", ",",
        "? ", "&a ", "*a", "!t ", "\\", "\r", "\t", "x", "---\n", "...\n", "\u{feff}", "\u{85}", "\u{2028}", "k: [",
        "a: |\n", "- - ",
    ];
    let mut state: u64 = 0x1234_5678;
    let mut random = |n: usize| {
        state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        ((state >> 33) as usize) % n.max(1)
    };
    let mut parsed = 0;
    for _ in 0..8000 {
        let mut text = seeds[random(seeds.len())].clone();
        for _ in 0..1 + random(8) {
            let mut at = random(text.len() + 1);
            while !text.is_char_boundary(at) {
                at -= 1;
            }
            if random(4) == 0 && at < text.len() {
                let mut end = (at + 1 + random(20)).min(text.len());
                while !text.is_char_boundary(end) {
                    end -= 1;
                }
                text.replace_range(at..end, "");
            } else {
                text.insert_str(at, pieces[random(pieces.len())]);
            }
        }
        let Some(first) = serde_yaml::Deserializer::from_str(&text).next() else { continue };
        let Ok(value) = <serde_yaml::Value as serde::Deserialize>::deserialize(first) else { continue };
        parsed += 1;
        assert!(parsed_depth(&value) <= scanned_depth(&text), "the scan counts less than the parser builds: {text:?}");
    }
    assert!(parsed > 1000, "only {parsed} mutations parsed");
}
