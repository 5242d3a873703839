//! `make run`: a local Envoy on 127.0.0.1:10000 running the module with a rules document (default
//! `rules/hello.yaml`), in front of an echo upstream. Ctrl-C stops it.
//!
//! When the document has test cases beside it (`<name>.test.yaml`), their `env` becomes the plugin's
//! `vmConfig.env` and their requests are printed as curl lines to try.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use rulefilter::cases::{case_file_beside, Case, CaseFile};
use support::{document_json, EchoUpstream, Envoy, EnvoyOptions, Plugin};

fn main() -> ExitCode {
    let rules_path =
        std::env::args().nth(1).map_or_else(|| support::project_dir().join("rules/hello.yaml"), PathBuf::from);
    let port: u16 = std::env::var("PORT").ok().and_then(|p| p.parse().ok()).unwrap_or(10000);
    let text = match std::fs::read_to_string(&rules_path) {
        Ok(text) => text,
        Err(e) => {
            eprintln!("cannot read {}: {e}", rules_path.display());
            return ExitCode::FAILURE;
        }
    };
    let cases = cases_beside(&rules_path);
    let env: HashMap<String, String> = cases.as_ref().map(|c| c.env.clone().into_iter().collect()).unwrap_or_default();
    // The same compiler the module runs: refuse a bad document here, with the same messages.
    if let Err(errors) = rulefilter::parse_with_env(&text, &env) {
        eprintln!("{} is not a valid rules document:\n{errors}", rules_path.display());
        return ExitCode::FAILURE;
    }
    let document: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    let upstream = EchoUpstream::start();
    let mut plugin = Plugin::new("demo", Some(document_json(&document)));
    plugin.env = env.into_iter().collect();
    let mut envoy = match Envoy::try_start(EnvoyOptions::new(plugin, &upstream).port(port)) {
        Ok(envoy) => envoy,
        Err(failure) => {
            eprintln!("Envoy did not start:\n{}", failure.log);
            return ExitCode::FAILURE;
        }
    };
    let at = envoy.listener;
    println!(
        "rulefilter: Envoy on http://{at} runs {} in front of an echo upstream on {}",
        rules_path.display(),
        upstream.addr
    );
    println!("Envoy's log: {}", envoy.dir.join("envoy.log").display());
    match &cases {
        Some(cases) => {
            println!("Try (from its test cases):");
            for case in cases.cases.iter().take(8) {
                println!("  {}\n      # {}", curl(at, case), case.name);
            }
        }
        None => println!("Try: curl -i http://{at}/"),
    }
    println!("Ctrl-C stops it.");
    let status = envoy.wait();
    eprintln!("Envoy exited: {status}");
    ExitCode::FAILURE
}

/// The document's cases (`<name>.test.yaml` beside it), if it has them.
fn cases_beside(rules_path: &Path) -> Option<CaseFile> {
    let path = case_file_beside(rules_path);
    if !path.is_file() {
        return None;
    }
    match CaseFile::load(&path) {
        Ok(cases) => Some(cases),
        Err(e) => {
            eprintln!("ignoring {}: {e}", path.display());
            None
        }
    }
}

/// A curl command sending a case's request.
fn curl(at: SocketAddr, case: &Case) -> String {
    let quote = |text: &str| format!("'{}'", text.replace('\'', r"'\''"));
    let request = &case.request;
    let mut command = String::from("curl -i");
    if request.method == "HEAD" {
        command.push_str(" --head");
    } else if request.method != "GET" {
        command.push_str(&format!(" -X {}", request.method));
    }
    if request.host != "example.com" {
        command.push_str(&format!(" -H {}", quote(&format!("host: {}", request.host))));
    }
    for (name, value) in request.header_list() {
        command.push_str(&format!(" -H {}", quote(&format!("{name}: {value}"))));
    }
    if request.source != "127.0.0.1" {
        command.push_str(&format!(" --interface {}", request.source));
    }
    command.push_str(&format!(" {}", quote(&format!("http://{at}{}", request.path))));
    command
}
