//! The export format (docs/export-format.md): JSON Lines, in tree order.
//!
//! ```text
//! {"kind":"header","format":"spendsignoff-ledger-export/v1","subject_prefix":"spend.evt"}
//! {"kind":"frontier","tree_size":N,"hashes_b64":[..]}          (only when starting after index 0)
//! {"kind":"event","index":i,"seq":s,"subject":..,"payload_b64":..,"leaf_hash_b64":..[,"rejected":reason]}
//! {"kind":"checkpoint","body":..,"signature_b64":..,"key_id":..}  (right after the event completing its tree)
//! ```
//!
//! An export always ends on a signed checkpoint, so every event in it is
//! covered by a signature.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::Serialize;

use crate::merkle::{CompactRange, Hash};
use crate::store::{CheckpointRow, EventRow, Store, StoreError};

/// One export line. Written through serde; read by
/// [`crate::verify`], which parses into a flat struct for speed and builds
/// this type from it.
#[derive(Debug, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Line<'a> {
    Header {
        format: std::borrow::Cow<'a, str>,
        subject_prefix: std::borrow::Cow<'a, str>,
    },
    Frontier {
        tree_size: u64,
        hashes_b64: Vec<String>,
    },
    Event {
        index: u64,
        seq: u64,
        subject: std::borrow::Cow<'a, str>,
        payload_b64: std::borrow::Cow<'a, str>,
        leaf_hash_b64: Option<std::borrow::Cow<'a, str>>,
        #[serde(skip_serializing_if = "Option::is_none")]
        rejected: Option<std::borrow::Cow<'a, str>>,
    },
    Checkpoint {
        body: std::borrow::Cow<'a, str>,
        signature_b64: std::borrow::Cow<'a, str>,
        key_id: std::borrow::Cow<'a, str>,
    },
}

/// Names this export format in its header line.
pub const FORMAT: &str = "spendsignoff-ledger-export/v1";

pub fn header_line(subject_prefix: &str) -> String {
    serde_json::to_string(&Line::Header {
        format: FORMAT.into(),
        subject_prefix: subject_prefix.into(),
    })
    .expect("serializes")
}

pub fn event_line(e: &EventRow) -> String {
    serde_json::to_string(&Line::Event {
        index: e.idx,
        seq: e.seq,
        subject: e.subject.as_str().into(),
        payload_b64: B64.encode(&e.payload).into(),
        leaf_hash_b64: Some(B64.encode(e.leaf_hash).into()),
        rejected: e.reject_reason.as_deref().map(Into::into),
    })
    .expect("serializes")
}

pub fn checkpoint_line(c: &CheckpointRow) -> String {
    serde_json::to_string(&Line::Checkpoint {
        body: c.body.as_str().into(),
        signature_b64: B64.encode(&c.signature).into(),
        key_id: c.key_id.as_str().into(),
    })
    .expect("serializes")
}

pub fn frontier_line(range: &CompactRange) -> String {
    serde_json::to_string(&Line::Frontier {
        tree_size: range.size(),
        hashes_b64: range.frontier().iter().map(|h| B64.encode(h)).collect(),
    })
    .expect("serializes")
}

/// The signed body of a checkpoint (C2SP tlog-checkpoint).
pub fn checkpoint_body(origin: &str, size: u64, root: &Hash) -> String {
    format!("{origin}\n{size}\n{}\n", B64.encode(root))
}

/// Parses a checkpoint body into (origin, size, root).
pub fn parse_body(body: &str) -> Result<(&str, u64, Hash), String> {
    let mut lines = body.split('\n');
    let (Some(origin), Some(size), Some(root), Some(""), None) = (lines.next(), lines.next(), lines.next(), lines.next(), lines.next()) else {
        return Err("checkpoint body is not \"<origin>\\n<size>\\n<root>\\n\"".into());
    };
    if origin.is_empty() {
        return Err("checkpoint origin is empty".into());
    }
    let size: u64 = size.parse().map_err(|_| format!("checkpoint tree size {size:?} is not a number"))?;
    let root: Hash = B64
        .decode(root)
        .ok()
        .and_then(|v| v.try_into().ok())
        .ok_or_else(|| format!("checkpoint root {root:?} is not a base64 SHA-256 hash"))?;
    Ok((origin, size, root))
}

/// What to export: events `from..to` (to exclusive) ending on a checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExportPlan {
    pub from: u64,
    /// Exclusive end: the size of the last checkpoint included.
    pub to: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Range(String),
    #[error("writing the export: {0}")]
    Io(#[from] std::io::Error),
}

/// Chooses the range: from `from` (default 0) up to the last signed
/// checkpoint at or below `to_inclusive + 1`.
pub async fn plan(store: &dyn Store, from: Option<u64>, to_inclusive: Option<u64>) -> Result<ExportPlan, ExportError> {
    let from = from.unwrap_or(0);
    let latest = store
        .latest_checkpoint()
        .await?
        .ok_or_else(|| ExportError::Range("the ledger has no signed checkpoint yet: nothing can be exported".into()))?;
    let limit = to_inclusive.map(|t| t.saturating_add(1)).unwrap_or(u64::MAX).min(latest.tree_size);
    let end = if limit == latest.tree_size {
        Some(latest.tree_size)
    } else {
        store.checkpoints(from, limit).await?.last().map(|c| c.tree_size)
    };
    match end {
        Some(to) if to > from => Ok(ExportPlan { from, to }),
        _ => Err(ExportError::Range(format!(
            "no signed checkpoint ends inside indexes {from}..={}; the latest covers {} events",
            to_inclusive.map(|t| t.to_string()).unwrap_or_else(|| "end".into()),
            latest.tree_size
        ))),
    }
}

/// Where export lines go: a file or stdout, or a gRPC stream.
#[async_trait::async_trait]
pub trait LineSink: Send {
    async fn line(&mut self, line: String) -> Result<(), ExportError>;
}

/// Lines to any writer, newline-terminated.
pub struct WriteSink<W>(pub W);

#[async_trait::async_trait]
impl<W: std::io::Write + Send> LineSink for WriteSink<W> {
    async fn line(&mut self, line: String) -> Result<(), ExportError> {
        self.0.write_all(line.as_bytes())?;
        self.0.write_all(b"\n")?;
        Ok(())
    }
}

/// Writes the export for `plan`, calling `progress(events_written)`.
/// `subject_prefix` is the event stream's (`nats.subject_prefix`).
pub async fn write(
    store: &dyn Store,
    plan: ExportPlan,
    subject_prefix: &str,
    out: &mut dyn LineSink,
    mut progress: impl FnMut(u64) + Send,
) -> Result<(), ExportError> {
    const PAGE: u32 = 5000;
    out.line(header_line(subject_prefix)).await?;
    if plan.from > 0 {
        let mut range = CompactRange::new();
        let mut at = 0;
        while at < plan.from {
            let page = store.events_by_index(at, plan.from, PAGE * 4).await?;
            if page.is_empty() {
                return Err(ExportError::Range(format!("events before index {at} are missing from the projection")));
            }
            for e in &page {
                range.push(e.leaf_hash);
            }
            at = page.last().expect("non-empty").idx + 1;
        }
        out.line(frontier_line(&range)).await?;
    }
    let checkpoints = store.checkpoints(plan.from, plan.to).await?;
    let mut cps = checkpoints.iter().peekable();
    let mut next = plan.from;
    while next < plan.to {
        let page = store.events_by_index(next, plan.to, PAGE).await?;
        if page.first().map(|e| e.idx) != Some(next) {
            return Err(ExportError::Range(format!("event {next} is missing from the projection")));
        }
        for e in &page {
            out.line(event_line(e)).await?;
            while let Some(c) = cps.next_if(|c| c.tree_size == e.idx + 1) {
                out.line(checkpoint_line(c)).await?;
            }
        }
        next = page.last().expect("non-empty").idx + 1;
        progress(next - plan.from);
    }
    Ok(())
}
