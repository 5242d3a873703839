//! How much of a body is held, and what happens past the limit.
//!
//! The proxy keeps the bytes (Envoy buffers what a body callback pauses on); the filter only decides, at each
//! piece, whether to keep waiting. It never copies a body until it is complete and within the limit.

/// What a rule does with a message whose body is longer than its `max_bytes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OverLimit {
    /// The message goes on unmodified and the rule's body conditions are false (the default).
    #[default]
    Pass,
    /// Requests only: the client gets 413 and the upstream is not called.
    Reject,
}

/// Where a body stands after a piece arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fill {
    /// More may come and what came fits: keep holding.
    Waiting,
    /// The whole body is here and fits: read it.
    Complete,
    /// More arrived than the limit allows: stop holding, let the message go on.
    Over,
}

/// Classifies a body of `size` bytes so far (what the proxy buffered), `complete` when it has all arrived.
pub fn fill(size: usize, limit: usize, complete: bool) -> Fill {
    if size > limit {
        Fill::Over
    } else if complete {
        Fill::Complete
    } else {
        Fill::Waiting
    }
}

/// Whether a message that announces `content_length` can never fit `limit`: it need not be held at all.
pub fn announced_over(content_length: Option<&str>, limit: usize) -> bool {
    content_length.and_then(|value| value.trim().parse::<u64>().ok()).is_some_and(|length| length > limit as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_is_held_until_complete_or_past_the_limit() {
        assert_eq!(fill(0, 10, false), Fill::Waiting);
        assert_eq!(fill(10, 10, false), Fill::Waiting);
        assert_eq!(fill(10, 10, true), Fill::Complete);
        assert_eq!(fill(11, 10, false), Fill::Over);
        assert_eq!(fill(11, 10, true), Fill::Over);
        assert_eq!(fill(0, 0, true), Fill::Complete);
    }

    #[test]
    fn an_announced_length_past_the_limit_is_never_held() {
        assert!(announced_over(Some("8193"), 8192));
        assert!(!announced_over(Some("8192"), 8192));
        assert!(!announced_over(Some(" 12 "), 8192));
        // Unparsable or absent: only the bytes themselves can tell.
        assert!(!announced_over(Some("lots"), 8192));
        assert!(!announced_over(None, 8192));
    }
}
