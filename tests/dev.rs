//! `rulefilter dev` end to end: a real Envoy picks up every saved change without restarting, an invalid edit
//! is reported with its place and the last good rules keep serving, and Ctrl-C (SIGTERM here) takes Envoy
//! down with it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod support;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

use support::{envoy_binary, get, project_dir, wasm_module};

/// A running `rulefilter dev`, its standard output read line by line.
struct Dev {
    child: Child,
    lines: Receiver<String>,
    seen: Vec<String>,
}

impl Dev {
    fn start(rules: &Path) -> Dev {
        let mut child = Command::new(env!("CARGO_BIN_EXE_rulefilter"))
            .arg("dev")
            .arg(rules)
            .args(["--port", "0", "--envoy"])
            .arg(envoy_binary())
            .arg("--module")
            .arg(wasm_module())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (sender, lines) = channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    return;
                }
            }
        });
        Dev { child, lines, seen: Vec::new() }
    }

    /// Waits (up to 60 s) for a line containing `text` and returns it.
    fn wait_for(&mut self, text: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(text) {
                        return line;
                    }
                }
                Err(_) => panic!("no line with {text:?} from rulefilter dev; it printed:\n{}", self.seen.join("\n")),
            }
        }
    }

    /// Sends SIGTERM, as `kill` and service managers do (Ctrl-C sends SIGINT, handled alike).
    fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("sh").args(["-c", &format!("kill -TERM {pid}")]).status().unwrap();
        self.child.wait().unwrap()
    }
}

impl Drop for Dev {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            self.terminate();
        }
    }
}

fn address_after(line: &str, marker: &str) -> SocketAddr {
    let rest = &line[line.find(marker).unwrap_or_else(|| panic!("{marker:?} in {line:?}")) + marker.len()..];
    rest.split([' ', ';']).next().unwrap().parse().unwrap()
}

const V1: &str = r#"request:
  - name: hello
    match: {path: /hello}
    actions: [{respond: {status: 200, body: "v1"}}]
  - name: audit
    match: {path: {segment_prefix: /admin}}
    actions: [{log: {level: warn, message: "admin access to ${path}"}}]
"#;

#[test]
fn dev_applies_each_saved_change_without_restarting_and_keeps_the_last_good_rules() {
    let dir = project_dir().join(format!("target/dev-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let rules = dir.join("rules.yaml");
    std::fs::write(&rules, V1).unwrap();

    let mut dev = Dev::start(&rules);
    let greeting = dev.wait_for("rulefilter dev: Envoy on http://");
    let listener = address_after(&greeting, "http://");
    let admin = address_after(&dev.wait_for("Envoy's admin on"), "Envoy's admin on http://");
    let files = PathBuf::from(dev.wait_for("Envoy's files: ").split("Envoy's files: ").nth(1).unwrap());
    dev.wait_for("Watching");
    assert_eq!(get(listener, "/hello").body, "v1");

    std::fs::write(&rules, V1.replace("\"v1\"", "\"v2\"")).unwrap();
    dev.wait_for(": applied");
    assert_eq!(get(listener, "/hello").body, "v2");

    // An invalid edit: reported with its place, never sent to Envoy.
    std::fs::write(&rules, V1.replace("path: /hello", "path: {regex: '(v2'}")).unwrap();
    let problem = dev.wait_for("invalid regex");
    assert!(
        problem.ends_with(r#"rules.yaml:3:20: request[0] "hello": match.path.regex: invalid regex: unclosed group"#),
        "{problem}"
    );
    dev.wait_for("not applied; the last good rules keep serving");
    assert_eq!(get(listener, "/hello").body, "v2");

    // Fixed again: applied.
    std::fs::write(&rules, V1.replace("\"v1\"", "\"v3\"")).unwrap();
    dev.wait_for(": applied");
    assert_eq!(get(listener, "/hello").body, "v3");

    // The same Envoy all along: its ECDS counters count the start and both good edits; nothing was refused.
    let stats = get(admin, "/stats?filter=extension_config_discovery").body;
    assert!(stats.contains("~istio-translated-wasmplugin.update_success: 3"), "{stats}");
    assert!(stats.contains("~istio-translated-wasmplugin.update_rejected: 0"), "{stats}");

    // What rules log, and each request, are printed as they happen.
    assert_eq!(get(listener, "/admin/users").status, 200);
    assert_eq!(dev.wait_for("admin access"), "envoy [warning] audit: admin access to /admin/users");
    // Envoy writes the access line around the same time, before or after.
    let access = "GET /admin/users -> 200 (upstream 127.0.0.1:";
    if !dev.seen.iter().any(|line| line.contains(access)) {
        dev.wait_for(access);
    }

    let status = dev.terminate();
    assert!(status.success(), "{status}");
    assert!(std::net::TcpStream::connect(listener).is_err(), "Envoy still listens on {listener}");
    assert!(!files.exists(), "{} was left behind", files.display());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn dev_refuses_to_start_on_an_invalid_document() {
    let output = Command::new(env!("CARGO_BIN_EXE_rulefilter"))
        .args(["dev", "tests/invalid/bad-regex.yaml", "--port", "0"])
        .current_dir(project_dir())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("tests/invalid/bad-regex.yaml:"), "{stderr}");
    assert!(stderr.contains("is not valid; fix it, then start again"), "{stderr}");
}

#[test]
fn envoy_dies_with_dev_even_when_dev_is_killed_outright() {
    let dir = project_dir().join(format!("target/dev-kill-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let rules = dir.join("rules.yaml");
    std::fs::write(&rules, V1).unwrap();

    let mut dev = Dev::start(&rules);
    let listener = address_after(&dev.wait_for("rulefilter dev: Envoy on http://"), "http://");
    let files = PathBuf::from(dev.wait_for("Envoy's files: ").split("Envoy's files: ").nth(1).unwrap());
    dev.wait_for("Watching");
    assert_eq!(get(listener, "/hello").body, "v1");

    // SIGKILL: dev cannot stop Envoy itself; the kernel must.
    dev.child.kill().unwrap();
    dev.child.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(listener).is_ok() {
        assert!(Instant::now() < deadline, "Envoy outlived a killed rulefilter dev and still listens on {listener}");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Nobody was left to remove Envoy's files.
    std::fs::remove_dir_all(&files).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}
