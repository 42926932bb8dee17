//! W3C `traceparent` for events. Everything about one draft shares one
//! correlation id, and its trace id *is* that correlation id (both are 16
//! bytes), so a trace viewer and an auditor group the same events; each
//! event gets a span id of its own. A caller that received a
//! `traceparent` (gRPC metadata, an HTTP header) continues that trace
//! instead.

use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
}

impl TraceParent {
    /// A new span in the trace of `correlation`.
    pub fn for_correlation(correlation: Uuid) -> Self {
        Self {
            trace_id: *correlation.as_bytes(),
            span_id: new_span_id(),
        }
    }

    /// A child span in the same trace.
    pub fn child(&self) -> Self {
        Self {
            trace_id: self.trace_id,
            span_id: new_span_id(),
        }
    }

    /// Parses `00-<32 hex>-<16 hex>-<2 hex>`; anything else is `None`.
    pub fn parse(s: &str) -> Option<Self> {
        let parts: Vec<&str> = s.trim().split('-').collect();
        let [version, trace, span, flags] = parts.as_slice() else { return None };
        if *version != "00" || trace.len() != 32 || span.len() != 16 || flags.len() != 2 {
            return None;
        }
        let mut trace_id = [0u8; 16];
        let mut span_id = [0u8; 8];
        for (i, b) in trace_id.iter_mut().enumerate() {
            *b = u8::from_str_radix(trace.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        for (i, b) in span_id.iter_mut().enumerate() {
            *b = u8::from_str_radix(span.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        if trace_id == [0; 16] || span_id == [0; 8] {
            return None;
        }
        Some(Self { trace_id, span_id })
    }
}

impl std::fmt::Display for TraceParent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("00-")?;
        for b in self.trace_id {
            write!(f, "{b:02x}")?;
        }
        f.write_str("-")?;
        for b in self.span_id {
            write!(f, "{b:02x}")?;
        }
        f.write_str("-01")
    }
}

fn new_span_id() -> [u8; 8] {
    // A v4 UUID's random bytes; never all zero in practice, but make sure.
    let mut id = [0u8; 8];
    id.copy_from_slice(&Uuid::new_v4().as_bytes()[8..]);
    if id == [0; 8] {
        id[7] = 1;
    }
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_traceparent_round_trips_and_shares_the_correlation_as_trace_id() {
        let c = Uuid::now_v7();
        let t = TraceParent::for_correlation(c);
        let s = t.to_string();
        assert!(s.starts_with(&format!("00-{}-", c.simple())));
        assert_eq!(TraceParent::parse(&s), Some(t));
        assert_eq!(t.child().trace_id, t.trace_id);
        assert!(TraceParent::parse("00-00000000000000000000000000000000-0000000000000001-01").is_none());
        assert!(TraceParent::parse("garbage").is_none());
    }
}
