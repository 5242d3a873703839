//! Every bound the filter puts on a document and on the work one request can cause, in one place.
//!
//! A document is refused, with the place and the limit, when it exceeds one; at run time a value past a limit
//! is refused (logged and counted, like a value with a line break) rather than sent. With templates bounded
//! and each rendered value capped, the memory one request can take is bounded whatever its headers hold.

/// Largest document `on_configure` accepts, in bytes of its text (YAML or Istio's JSON).
pub const MAX_DOCUMENT_BYTES: usize = 1 << 20;

/// Most rules in one document, request and response phases together.
pub const MAX_RULES: usize = 1000;

/// Most actions in one rule.
pub const MAX_ACTIONS: usize = 64;

/// How deep `all`/`any`/`not` blocks may nest.
pub const MAX_NESTING: usize = 16;

/// Upper bound on a compiled regex, so one pattern cannot make the filter's memory balloon in every worker.
pub const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// Longest template as written (header values, paths, log messages), in bytes.
pub const MAX_TEMPLATE_BYTES: usize = 8 * 1024;

/// Longest `respond` body as written, in bytes: room for an error page.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Longest header value, path or redirect location the filter writes, in bytes once rendered. (Envoy's own
/// default limit for all request headers together is 60 KiB.)
pub const MAX_HEADER_VALUE_BYTES: usize = 16 * 1024;

/// Longest text any one template renders to; beyond it, rendering stops (a body or log line is cut there).
pub const MAX_RENDERED_BYTES: usize = MAX_BODY_BYTES;
