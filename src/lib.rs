//! rulefilter: declarative HTTP rules for Envoy and Istio, as one proxy-wasm module.
//!
//! A rules document (the `pluginConfig` of an Istio `WasmPlugin`) is parsed and compiled once by
//! [`document::load`] into a [`RuleSet`] (the module and every tool give that one verdict on the same text); each request is then run through [`RuleSet::on_request_headers`]
//! and [`RuleSet::on_response_headers`] against a [`Host`], which is Envoy inside the module and a simulated
//! exchange in tests and tools.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing))]

#[cfg(not(target_arch = "wasm32"))]
pub mod cases;
pub mod cidr;
pub mod compile;
pub mod config;
pub mod document;
pub mod engine;
pub mod error;
pub mod header_block;
mod index;
#[cfg(not(target_arch = "wasm32"))]
pub mod input;
pub mod lazy_regex;
pub mod limits;
#[cfg(not(target_arch = "wasm32"))]
pub mod local;
#[cfg(not(target_arch = "wasm32"))]
pub mod locate;
pub mod matcher;
pub mod metrics;
pub mod nesting;
pub mod regex_subset;
mod reserved;
pub mod ruleset;
#[cfg(not(target_arch = "wasm32"))]
pub mod simulate;
pub mod template;
pub mod trace;
pub mod url;
#[cfg(not(target_arch = "wasm32"))]
pub mod yaml11;

#[cfg(target_arch = "wasm32")]
mod wasm;

pub use compile::{parse, parse_with_env, Environment};
pub use engine::{Flow, Host, RequestState};
pub use error::{ConfigError, ConfigErrors, Phase, RuleLocation};
pub use ruleset::{HeaderMap, RuleSet};
