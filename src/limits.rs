//! Every bound the filter puts on a document and on the work one request can cause, in one place.
//!
//! A document is refused, with the place and the limit, when it exceeds one; at run time a value past a limit
//! is refused (logged and counted, like a value with a line break) rather than sent. With templates bounded
//! and each rendered value capped, the memory one request can take is bounded whatever its headers hold.

/// Largest document `on_configure` accepts, in bytes of its text (the JSON it receives; the tools hold a YAML
/// file's text to it too).
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

/// Deepest nesting of collections (mappings and lists) a rules document may have, checked in one linear pass
/// over the text before any tree is built: YAML parsers take time quadratic in nesting depth (30,000 brackets
/// took 6 s in Envoy), so depth must be refused before they see it.
///
/// The deepest a valid document can need: the root mapping, `request`, a rule, its `match` block (4); each of
/// the [`MAX_NESTING`] `all`/`any` levels below adds a list and a block (2 each); the innermost block's
/// `headers` (or `host`, `source`) and one condition's operator map add 2 more: 4 + 2 × 16 + 2 = 38. Actions
/// never go deeper than 8. The bound leaves 2 levels of slack, so a document at the limit is refused by
/// the compiler with the rule and field named rather than here.
pub const MAX_DOCUMENT_DEPTH: usize = 4 + 2 * MAX_NESTING + 2 + 2;

/// Deepest nesting the tools accept in a *file* before reading it as YAML to find out what it holds (a file of
/// Kubernetes objects wraps a rules document in `spec.pluginConfig`, and other objects, a CRD's schema say,
/// nest deeper than rules do). serde_yaml's own recursion limit is 128, so nothing deeper could be read anyway.
pub const MAX_FILE_DEPTH: usize = 128;

/// Bytes of body a body rule holds when its document says nothing (`body.max_bytes`): enough for a JSON API
/// call or a small page, small enough that holding it in every worker for many requests at once is cheap.
pub const DEFAULT_BODY_BYTES: usize = 8 * 1024;

/// Most bytes of body a rule may hold (`body.max_bytes`), and the most an edit may make a body grow to. It
/// equals Envoy's default `per_connection_buffer_limit_bytes` (1 MiB): past its own limit Envoy itself answers
/// 413 (request) or 500 (response) to a message a filter holds, so a larger value would never be reached.
pub const MAX_BODY_HOLD_BYTES: usize = 1024 * 1024;
