//! `rulefilter`: the rules engine of the Wasm module, on the command line. Check documents before they reach
//! a proxy and run their test cases on a laptop, with the same code the module runs.

mod args;
mod cases;
mod manifest;
mod report;
mod trace;
mod validate;

use std::process::ExitCode;

use lexopt::ValueExt;

const USAGE: &str = "\
rulefilter: check and try rulefilter rules documents without a proxy

Usage: rulefilter <COMMAND> [OPTIONS] [FILE]...

Commands:
  validate  Check rules documents and WasmPlugin manifests, as the module would
  test      Run rule test cases (<name>.test.yaml) on the simulated proxy
  trace     Show which rules a request matches, why the others do not, and what they change
  manifest  Wrap a rules document into an Istio WasmPlugin

Run `rulefilter <COMMAND> --help` for a command's options and examples.
Exit status: 0 all good, 1 problems found or cases failed, 2 the command itself failed.
";

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(message) => {
            eprintln!("rulefilter: {message}");
            ExitCode::from(2)
        }
    }
}

fn run() -> Result<ExitCode, String> {
    use lexopt::Arg::{Long, Short, Value};
    let mut args = lexopt::Parser::from_env();
    let command = match args.next().map_err(|e| e.to_string())? {
        Some(Value(command)) => command.string().map_err(|e| e.to_string())?,
        Some(Long("help") | Short('h')) => {
            print!("{USAGE}");
            return Ok(ExitCode::SUCCESS);
        }
        Some(Long("version") | Short('V')) => {
            println!("rulefilter {}", env!("CARGO_PKG_VERSION"));
            return Ok(ExitCode::SUCCESS);
        }
        Some(other) => return Err(format!("{}; see `rulefilter --help`", other.unexpected())),
        None => return Err(format!("a command is needed\n\n{USAGE}")),
    };
    match command.as_str() {
        "validate" => validate::run(args),
        "test" => cases::run(args),
        "trace" => trace::run(args),
        "manifest" => manifest::run(args),
        "help" => {
            print!("{USAGE}");
            Ok(ExitCode::SUCCESS)
        }
        other => Err(format!(
            "unknown command {other:?}; the commands are validate, test, trace and manifest (see `rulefilter --help`)"
        )),
    }
}
