//! rulefilter: declarative HTTP rules for Envoy and Istio, as one proxy-wasm module.
//!
//! A rules document (the `pluginConfig` of an Istio `WasmPlugin`) is parsed and compiled once by
//! [`document::load`] into a [`RuleSet`] (the module and every tool give that one verdict on the same text); each request is then run through [`RuleSet::on_request_headers`]
//! and [`RuleSet::on_response_headers`] against a [`Host`], which is Envoy inside the module and a simulated
//! exchange in tests and tools.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing))]

pub mod attributes;
pub mod body;
#[cfg(not(target_arch = "wasm32"))]
pub mod cases;
pub mod cidr;
pub mod claims;
pub mod compile;
pub mod config;
pub mod credentials;
pub mod document;
pub mod encoding;
pub mod engine;
pub mod error;
pub mod fields;
mod fnv;
pub mod header_block;
pub mod host_port;
mod index;
#[cfg(not(target_arch = "wasm32"))]
pub mod input;
pub mod join;
pub mod json;
pub mod lazy_regex;
pub mod limits;
#[cfg(not(target_arch = "wasm32"))]
pub mod local;
#[cfg(not(target_arch = "wasm32"))]
pub mod locate;
pub mod matcher;
pub mod metrics;
pub mod named;
#[cfg(not(target_arch = "wasm32"))]
pub mod nesting;
pub mod proxy_host;
pub mod ratelimit;
pub mod regex_engine;
pub mod regex_subset;
mod reserved;
pub mod ruleset;
pub mod sampling;
pub mod segments;
#[cfg(not(target_arch = "wasm32"))]
pub mod simulate;
pub mod template;
pub mod trace;
pub mod url;
#[cfg(not(target_arch = "wasm32"))]
pub mod yaml11;
#[cfg(not(target_arch = "wasm32"))]
pub mod yaml_document;

#[cfg(target_arch = "wasm32")]
mod wasm;

pub use compile::Environment;
#[cfg(not(target_arch = "wasm32"))]
pub use compile::{parse, parse_with_env};
pub use engine::{Flow, Host, RequestState};
pub use error::{ConfigError, ConfigErrors, Phase, RuleLocation};
pub use ruleset::{HeaderMap, RuleSet};
