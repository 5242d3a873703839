//! `make run`: a local Envoy on 127.0.0.1:10000 running the module with a rules document (default
//! `rules/hello.yaml`), in front of an echo upstream. Ctrl-C stops it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::path::PathBuf;
use std::process::ExitCode;

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
    // The same compiler the module runs: refuse a bad document here, with the same messages.
    if let Err(errors) = rulefilter::parse(&text) {
        eprintln!("{} is not a valid rules document:\n{errors}", rules_path.display());
        return ExitCode::FAILURE;
    }
    let document: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    let upstream = EchoUpstream::start();
    let plugin = Plugin::new("demo", Some(document_json(&document)));
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
    println!("Try:");
    println!("  curl -i http://{at}/hello              # answered by the proxy itself");
    println!("  curl -i http://{at}/anything           # from the upstream, tagged x-service-name");
    println!("  curl -i -X POST http://{at}/hello      # not GET: goes to the upstream");
    println!("Ctrl-C stops it.");
    let status = envoy.wait();
    eprintln!("Envoy exited: {status}");
    ExitCode::FAILURE
}
