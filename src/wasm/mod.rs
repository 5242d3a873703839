//! The proxy-wasm glue: hands the plugin configuration to the compiler once, and each request's headers to
//! the engine. Everything else lives in plain Rust outside this module.

mod abi;
mod counters;
mod filter;
