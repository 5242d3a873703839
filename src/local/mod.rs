//! A real Envoy on this machine with the module, configured the way istiod configures it, in front of a demo
//! upstream: what `rulefilter dev`, `make run` and the e2e suite run. Native only.
//!
//! - [`istio`]: the Wasm filter istiod generates for a `WasmPlugin`.
//! - [`envoy`]: starting Envoy with that filter (inline or by ECDS from a watched file) and pushing updates.
//! - [`echo`]: an upstream that answers with what it received.
//! - [`http`]: just enough HTTP/1.1 to talk to those.

pub mod echo;
pub mod envoy;
pub mod http;
pub mod istio;
