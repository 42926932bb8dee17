//! Offline verification of an export (`spend ledger verify`): recomputes
//! every leaf hash and every checkpoint root, checks every checkpoint
//! signature, and names the first bad index on tamper.
//!
//! What is checked, per line:
//! - events: consecutive indexes; `seq = index + 1` (the event stream never
//!   deletes, so its sequence numbers have no gaps); the payload decodes and
//!   hashes to `leaf_hash_b64`; the ledger's verdict is reproduced (an
//!   accepted event must sit on its own org/aggregate subject; a rejected
//!   one must be rejected for the stated reason);
//! - checkpoints: the body parses, its size is the number of leaves so far,
//!   its root equals the recomputed root, its origin never changes, and its
//!   signature verifies with a key the auditor supplied;
//! - the export ends on a checkpoint, so every event is signed for.
//!
//! An export without a header line (the pinned format of DESIGN.md: event
//! and checkpoint lines only) is verified too, with the same checks except
//! what only the header can tell: the stream's subject prefix (see
//! [`Report::unchecked`]). Its events carry no ledger verdict the verifier
//! can merely reproduce cheaply, so each event not marked `rejected` is
//! parsed as a full envelope; the prefix is inferred per event (the subject
//! less the envelope's own `.<org>.<aggregate>.<id>`) and must be the same
//! across the export.
//!
//! Lines are parsed and hashed on all cores in chunks; the tree is folded
//! in order on one.

use std::collections::HashMap;
use std::io::BufRead;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

use crate::export::{Line, parse_body};
use crate::merkle::{CompactRange, Hash, leaf_hash};
use crate::validate;

/// Verifying keys by key id; a key loaded without an id accepts any id.
#[derive(Default)]
pub struct KeyRing {
    by_id: HashMap<String, spend_signer::Verifier>,
    any: Vec<spend_signer::Verifier>,
}

impl KeyRing {
    /// Adds a key from a PEM file's text. A `key-id: <id>` line before the
    /// PEM block (as `spend ledger public-key` prints) pins the key id.
    pub fn add_pem(&mut self, text: &str) -> Result<(), String> {
        let key_id = text.lines().find_map(|l| l.strip_prefix("key-id:")).map(|s| s.trim().to_string());
        let start = text.find("-----BEGIN").ok_or("no PEM block (-----BEGIN PUBLIC KEY-----) found")?;
        let v = spend_signer::Verifier::from_pem(&text[start..]).map_err(|e| e.to_string())?;
        match key_id {
            Some(id) => {
                self.by_id.insert(id, v);
            }
            None => self.any.push(v),
        }
        Ok(())
    }

    /// Checks one signature by key id.
    pub fn check(&self, key_id: &str, body: &[u8], sig: &[u8]) -> Result<(), String> {
        if let Some(k) = self.by_id.get(key_id) {
            return if k.verify(body, sig) {
                Ok(())
            } else {
                Err(format!("signature does not verify with key {key_id}"))
            };
        }
        if self.any.is_empty() {
            return Err(format!("no public key for key id {key_id:?}"));
        }
        if self.any.iter().any(|k| k.verify(body, sig)) {
            Ok(())
        } else {
            Err("signature does not verify with the given public key".into())
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub events: u64,
    pub checkpoints: u64,
    /// The first index in the export (non-zero for a partial export).
    pub first_index: u64,
    pub tree_size: u64,
    pub root: Hash,
    pub origin: String,
    /// False for an export without a header line.
    pub header: bool,
    /// The subject prefix events were checked against: the header's, or,
    /// without a header, the one inferred from the events (`None` when no
    /// event's subject depends on a prefix).
    pub subject_prefix: Option<String>,
}

impl Report {
    /// What this export could not show, in plain words: nothing with a
    /// header line; without one, the binding of subjects to the stream's
    /// subject prefix and the format name, both of which only the header
    /// carries.
    pub fn unchecked(&self) -> Vec<String> {
        if self.header {
            return Vec::new();
        }
        let prefix = match &self.subject_prefix {
            Some(p) => format!(
                "the subject-prefix binding: nothing shows that {p:?} (inferred from the export itself, the prefix all its events share) is the event stream's subject prefix; only the header's `subject_prefix` states it. Each accepted event was checked to sit on <prefix>.<org>.<aggregate>.<id> of its own envelope"
            ),
            None => "the subject-prefix binding: no event implied a prefix, so none was inferred or checked; only the header's `subject_prefix` states it"
                .to_string(),
        };
        vec![
            prefix,
            format!(
                "the export format: only the header's `format` names it; the lines were read as {:?} (the pinned fields of DESIGN.md)",
                crate::export::FORMAT
            ),
        ]
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", match .index { Some(i) => format!("first bad index {i} (line {}): {}", .line, .reason), None => format!("line {}: {}", .line, .reason) })]
pub struct Failure {
    /// The first leaf index that cannot be trusted.
    pub index: Option<u64>,
    /// 1-based line number in the export.
    pub line: u64,
    pub reason: String,
}

enum Item {
    Header {
        prefix: String,
    },
    Frontier {
        size: u64,
        hashes: Vec<Hash>,
    },
    Event {
        index: u64,
        leaf: Hash,
        /// Without a header: the subject prefix this event's verdict implies.
        prefix: Option<String>,
    },
    Checkpoint {
        body: String,
        sig: Vec<u8>,
        key_id: String,
    },
    /// A line that cannot be trusted; the fold names the index it stands at.
    Bad {
        reason: String,
    },
}

/// Every field any line kind has. Parsing into one flat struct (instead of
/// the internally tagged [`Line`], which serde buffers whole before it can
/// see the tag) keeps verification fast; [`parse_line`] then checks that
/// each kind has exactly its own fields.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLine<'a> {
    #[serde(borrow)]
    kind: std::borrow::Cow<'a, str>,
    format: Option<std::borrow::Cow<'a, str>>,
    subject_prefix: Option<std::borrow::Cow<'a, str>>,
    tree_size: Option<u64>,
    hashes_b64: Option<Vec<String>>,
    index: Option<u64>,
    seq: Option<u64>,
    #[serde(borrow)]
    subject: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    payload_b64: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    leaf_hash_b64: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    rejected: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    body: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    signature_b64: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    key_id: Option<std::borrow::Cow<'a, str>>,
}

fn parse_line(line: &[u8]) -> Result<Line<'_>, String> {
    let r: RawLine<'_> = serde_json::from_slice(line).map_err(|e| e.to_string())?;
    let missing = |f: &str| format!("{} line without `{f}`", r.kind);
    // Which kinds' fields are present.
    let (header, frontier, event, checkpoint) = (
        r.format.is_some() || r.subject_prefix.is_some(),
        r.tree_size.is_some() || r.hashes_b64.is_some(),
        r.index.is_some() || r.seq.is_some() || r.subject.is_some() || r.payload_b64.is_some() || r.leaf_hash_b64.is_some() || r.rejected.is_some(),
        r.body.is_some() || r.signature_b64.is_some() || r.key_id.is_some(),
    );
    match r.kind.as_ref() {
        "header" if !(frontier || event || checkpoint) => Ok(Line::Header {
            format: r.format.ok_or_else(|| missing("format"))?,
            subject_prefix: r.subject_prefix.ok_or_else(|| missing("subject_prefix"))?,
        }),
        "frontier" if !(header || event || checkpoint) => Ok(Line::Frontier {
            tree_size: r.tree_size.ok_or_else(|| missing("tree_size"))?,
            hashes_b64: r.hashes_b64.ok_or_else(|| missing("hashes_b64"))?,
        }),
        "event" if !(header || frontier || checkpoint) => Ok(Line::Event {
            index: r.index.ok_or_else(|| missing("index"))?,
            seq: r.seq.ok_or_else(|| missing("seq"))?,
            subject: r.subject.ok_or_else(|| missing("subject"))?,
            payload_b64: r.payload_b64.ok_or_else(|| missing("payload_b64"))?,
            leaf_hash_b64: r.leaf_hash_b64,
            rejected: r.rejected,
        }),
        "checkpoint" if !(header || frontier || event) => Ok(Line::Checkpoint {
            body: r.body.ok_or_else(|| missing("body"))?,
            signature_b64: r.signature_b64.ok_or_else(|| missing("signature_b64"))?,
            key_id: r.key_id.ok_or_else(|| missing("key_id"))?,
        }),
        "header" | "frontier" | "event" | "checkpoint" => Err(format!("{} line with fields of another kind", r.kind)),
        other => Err(format!("unknown line kind {other:?}")),
    }
}

/// Without a header, the verdict on an event not marked `rejected`: it must
/// be a valid envelope on `<prefix>.<org>.<aggregate>.<id>` for some
/// non-empty prefix, which is returned.
fn headerless_accepted(subject: &str, payload: &[u8]) -> Result<String, String> {
    let unmarked = "yet the event is not marked rejected";
    let env = spend_core::RawEnvelope::parse(payload).map_err(|e| format!("{e} (published on {subject:?}), {unmarked}"))?;
    let tail = env
        .subject
        .split_once('/')
        .and_then(|(aggregate, id)| spend_core::subject::aggregate_subject("", &env.org, aggregate, id).ok())
        .ok_or_else(|| format!("event subject {:?} is not <aggregate>/<id> (published on {subject:?}), {unmarked}", env.subject))?;
    match subject.strip_suffix(tail.as_str()) {
        Some(prefix) if !prefix.is_empty() => Ok(prefix.to_string()),
        _ => Err(format!(
            "subject {subject:?} is not <prefix>{tail} (the event's own org/aggregate subject), {unmarked}"
        )),
    }
}

/// Without a header, the verdict on an event marked rejected for `reason`:
/// [`validate::classify`] must give exactly that reason for some prefix.
/// Returns the prefix when the reason depends on it (it names the event's
/// own subject), `None` when it does not.
fn headerless_rejected(subject: &str, payload: &[u8], reason: &str) -> Result<Option<String>, String> {
    // Two sentinel prefixes: a reason that differs between them names the
    // prefix. At most one of three can make the event valid.
    let verdicts: Vec<String> = ["a", "b", "c"]
        .iter()
        .filter_map(|p| validate::classify(p, subject, payload).err())
        .take(2)
        .collect();
    let [ra, rb] = &verdicts[..] else {
        unreachable!("a subject equals at most one of a.…, b.…, c.…")
    };
    if ra == rb {
        return if ra == reason {
            Ok(None)
        } else {
            Err(format!("rejection reason differs: export says {reason:?}, recomputed {ra:?}"))
        };
    }
    let differs = || format!("rejection reason differs: export says {reason:?}, recomputed {ra:?} for prefix \"a\"");
    let head = ra.bytes().zip(rb.bytes()).take_while(|(x, y)| x == y).count();
    let tail = ra
        .bytes()
        .rev()
        .zip(rb.bytes().rev())
        .take_while(|(x, y)| x == y)
        .count()
        .min(ra.len().min(rb.len()) - head);
    if reason.len() < head + tail || !reason.starts_with(&ra[..head]) || !reason.ends_with(&ra[ra.len() - tail..]) {
        return Err(differs());
    }
    let prefix = reason
        .get(head..reason.len() - tail)
        .and_then(unescape_debug)
        .filter(|p| !p.is_empty())
        .ok_or_else(differs)?;
    match validate::classify(&prefix, subject, payload) {
        Err(r) if r == reason => Ok(Some(prefix)),
        Err(_) => Err(differs()),
        Ok(_) => Err(format!(
            "the event is marked rejected but is valid for the prefix its reason names ({prefix:?})"
        )),
    }
}

/// Reverses `{:?}` escaping of a string's characters (without the quotes).
fn unescape_debug(s: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        out.push(match chars.next()? {
            'n' => '\n',
            'r' => '\r',
            't' => '\t',
            '0' => '\0',
            c @ ('\\' | '"' | '\'') => c,
            'u' => {
                let rest = chars.as_str().strip_prefix('{')?;
                let end = rest.find('}')?;
                let c = char::from_u32(u32::from_str_radix(&rest[..end], 16).ok()?)?;
                chars = rest[end + 1..].chars();
                c
            }
            _ => return None,
        });
    }
    Some(out)
}

/// Without a header, the prefix most events of the first block imply, so
/// that an event whose subject prefix was changed is the one named, even
/// when it is the first (ties go to the earliest).
fn majority_prefix(items: &[Item]) -> Option<String> {
    let mut counts: HashMap<&str, (usize, usize)> = HashMap::new(); // prefix → (count, first position)
    for (at, it) in items.iter().enumerate() {
        if let Item::Event { prefix: Some(p), .. } = it {
            counts.entry(p).or_insert((0, at)).0 += 1;
        }
    }
    counts
        .into_iter()
        .max_by_key(|(_, (count, first))| (*count, std::cmp::Reverse(*first)))
        .map(|(p, _)| p.to_string())
}

/// One line's item. `prefix` is the header's subject prefix, `None` for an
/// export without a header line.
fn item(line: &[u8], prefix: Option<&str>, scratch: &mut Vec<u8>) -> Item {
    let bad = |reason: String| Item::Bad { reason };
    let parsed = match parse_line(line) {
        Ok(l) => l,
        Err(e) => return bad(format!("not a valid export line: {e}")),
    };
    match parsed {
        Line::Header { format, subject_prefix } => {
            if format != crate::export::FORMAT {
                return bad(format!("unknown export format {format:?} (expected {:?})", crate::export::FORMAT));
            }
            Item::Header {
                prefix: subject_prefix.into_owned(),
            }
        }
        Line::Frontier { tree_size, hashes_b64 } => {
            let hashes: Result<Vec<Hash>, _> = hashes_b64
                .iter()
                .map(|h| B64.decode(h).ok().and_then(|v| v.try_into().ok()).ok_or(()))
                .collect();
            match hashes {
                Ok(hashes) => Item::Frontier { size: tree_size, hashes },
                Err(()) => bad("frontier hash is not base64 SHA-256".into()),
            }
        }
        Line::Event {
            index,
            seq,
            subject,
            payload_b64,
            leaf_hash_b64,
            rejected,
        } => {
            if seq != index.wrapping_add(1) {
                return bad(format!("seq {seq} does not match index {index} (seq must be index + 1)"));
            }
            scratch.clear();
            if B64.decode_vec(payload_b64.as_bytes(), scratch).is_err() {
                return bad("payload_b64 is not valid base64".into());
            }
            let payload = &scratch[..];
            let leaf = leaf_hash(payload);
            if let Some(h) = leaf_hash_b64
                && {
                    let mut out = [0u8; 48];
                    B64.decode_slice(h.as_bytes(), &mut out).ok() != Some(32) || out[..32] != leaf
                }
            {
                return bad("payload does not hash to leaf_hash_b64".into());
            }
            let inferred = match (prefix, rejected) {
                (Some(prefix), None) if !validate::subject_consistent(prefix, &subject, payload) => {
                    return bad(format!(
                        "subject {subject:?} is not the event's own org/aggregate subject, yet the event is marked accepted"
                    ));
                }
                (Some(_), None) => None,
                (Some(prefix), Some(reason)) => match validate::classify(prefix, &subject, payload) {
                    Ok(_) => return bad("the event is marked rejected but is valid".into()),
                    Err(r) if r != reason => return bad(format!("rejection reason differs: export says {reason:?}, recomputed {r:?}")),
                    Err(_) => None,
                },
                (None, None) => match headerless_accepted(&subject, payload) {
                    Ok(p) => Some(p),
                    Err(e) => return bad(e),
                },
                (None, Some(reason)) => match headerless_rejected(&subject, payload, &reason) {
                    Ok(p) => p,
                    Err(e) => return bad(e),
                },
            };
            Item::Event { index, leaf, prefix: inferred }
        }
        Line::Checkpoint { body, signature_b64, key_id } => match B64.decode(signature_b64.as_bytes()) {
            Ok(sig) => Item::Checkpoint {
                body: body.into_owned(),
                sig,
                key_id: key_id.into_owned(),
            },
            Err(_) => bad("signature_b64 is not valid base64".into()),
        },
    }
}

/// Verifies an export read from `reader`. `progress(lines)` is called per
/// chunk for a progress display.
pub fn verify(mut reader: impl BufRead, keys: &KeyRing, mut progress: impl FnMut(u64)) -> Result<Report, Failure> {
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).min(8);
    let mut range: Option<CompactRange> = None;
    let mut first_index = 0u64;
    let (mut events, mut checkpoints) = (0u64, 0u64);
    let mut covered = 0u64; // tree size of the last checkpoint
    let mut origin: Option<String> = None;
    // The header line is read first: every event line depends on it. An
    // export without one (the pinned format) starts with its first event,
    // frontier or checkpoint line, which goes back to the block reader.
    let mut first = Vec::new();
    reader.read_until(b'\n', &mut first).map_err(|e| Failure {
        index: None,
        line: 1,
        reason: format!("reading the export: {e}"),
    })?;
    let trimmed = {
        let mut t = &first[..];
        while let [rest @ .., b'\n' | b'\r'] = t {
            t = rest;
        }
        t
    };
    if trimmed.is_empty() {
        return Err(Failure {
            index: None,
            line: 1,
            reason: "the export is empty".into(),
        });
    }
    let (prefix, mut line_no, mut block) = if matches!(parse_line(trimmed), Ok(Line::Header { .. })) {
        match item(trimmed, None, &mut Vec::new()) {
            Item::Header { prefix } => (Some(prefix), 1u64, Vec::new()),
            Item::Bad { reason } => {
                return Err(Failure {
                    index: Some(0),
                    line: 1,
                    reason,
                });
            }
            _ => unreachable!("a header line is a header item or a bad one"),
        }
    } else {
        (None, 0, first)
    };
    // Without a header: the prefix the events imply, the same for all.
    let mut inferred: Option<String> = None;
    // Read in large blocks and hand whole lines to the workers as slices.
    const BLOCK: usize = 8 << 20;
    block.reserve(BLOCK + (1 << 16));
    let mut eof = false;
    loop {
        while !eof && (block.len() < BLOCK || !block.contains(&b'\n')) {
            let read = match reader.fill_buf() {
                Ok(buf) => {
                    block.extend_from_slice(buf);
                    buf.len()
                }
                Err(e) => {
                    return Err(Failure {
                        index: None,
                        line: line_no + 1,
                        reason: format!("reading the export: {e}"),
                    });
                }
            };
            if read == 0 {
                eof = true;
            }
            reader.consume(read);
        }
        if block.is_empty() {
            break;
        }
        let cut = if eof {
            block.len()
        } else {
            block.iter().rposition(|b| *b == b'\n').map(|p| p + 1).unwrap_or(block.len())
        };
        let mut lines: Vec<&[u8]> = block[..cut].split(|b| *b == b'\n').collect();
        if block[..cut].ends_with(b"\n") {
            lines.pop(); // the empty piece after the last newline
        }
        let lines: Vec<&[u8]> = lines.into_iter().map(|l| l.strip_suffix(b"\r").unwrap_or(l)).collect();
        let per = lines.len().div_ceil(threads).max(1);
        let items: Vec<Item> = std::thread::scope(|s| {
            let prefix = prefix.as_deref();
            let handles: Vec<_> = lines
                .chunks(per)
                .map(|c| {
                    s.spawn(move || {
                        let mut scratch = Vec::new();
                        c.iter()
                            .map(|l| {
                                if l.is_empty() {
                                    Item::Bad { reason: "empty line".into() }
                                } else {
                                    item(l, prefix, &mut scratch)
                                }
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles.into_iter().flat_map(|h| h.join().expect("verify worker panicked")).collect()
        });
        block.drain(..cut);
        if prefix.is_none() && inferred.is_none() {
            inferred = majority_prefix(&items);
        }
        for it in items {
            line_no += 1;
            let next_index = range.as_ref().map(|r| r.size()).unwrap_or(0);
            let fail = |index: Option<u64>, reason: String| Failure { index, line: line_no, reason };
            match it {
                Item::Bad { reason } => {
                    // Name the index this line stands at, whatever it claims.
                    return Err(fail(Some(next_index), reason));
                }
                Item::Header { .. } if prefix.is_some() => return Err(fail(Some(next_index), "a second header line".into())),
                Item::Header { .. } => return Err(fail(Some(next_index), "a header line may only be the first line".into())),
                Item::Frontier { size, hashes } => {
                    if range.is_some() {
                        return Err(fail(Some(next_index), "a frontier line may only start an export".into()));
                    }
                    range = Some(CompactRange::from_frontier(size, hashes).map_err(|e| fail(Some(size), e))?);
                    first_index = size;
                    covered = size;
                }
                Item::Event { index, leaf, prefix: implied } => {
                    let r = range.get_or_insert_with(CompactRange::new);
                    if index != r.size() {
                        return Err(fail(Some(r.size()), format!("expected index {}, found {index}", r.size())));
                    }
                    match (&inferred, implied) {
                        (Some(p), Some(q)) if *p != q => {
                            return Err(fail(
                                Some(index),
                                format!(
                                    "subject prefix {q:?} differs from {p:?}, the one the export's other events imply (an event stream has one subject prefix)"
                                ),
                            ));
                        }
                        (None, Some(q)) => inferred = Some(q),
                        _ => {}
                    }
                    r.push(leaf);
                    events += 1;
                }
                Item::Checkpoint { body, sig, key_id } => {
                    let r = range.get_or_insert_with(CompactRange::new);
                    // A bad checkpoint means one of the leaves it alone
                    // covers (or the checkpoint itself) was changed.
                    let first_uncovered = covered.min(r.size().saturating_sub(1));
                    let (o, size, root) = parse_body(&body).map_err(|e| fail(Some(first_uncovered), e))?;
                    if size != r.size() {
                        return Err(fail(
                            Some(first_uncovered),
                            format!("checkpoint for tree size {size} follows {} events", r.size()),
                        ));
                    }
                    if root != r.root() {
                        return Err(fail(
                            Some(first_uncovered),
                            format!(
                                "recomputed root of tree size {size} does not match the checkpoint: one of indexes {first_uncovered}..{} or the checkpoint was changed",
                                size - 1
                            ),
                        ));
                    }
                    match &origin {
                        Some(prev) if prev != o => return Err(fail(Some(first_uncovered), format!("checkpoint origin {o:?} differs from {prev:?}"))),
                        Some(_) => {}
                        None => origin = Some(o.to_string()),
                    }
                    keys.check(&key_id, body.as_bytes(), &sig)
                        .map_err(|e| fail(Some(first_uncovered), format!("checkpoint for tree size {size}: {e}")))?;
                    covered = size;
                    checkpoints += 1;
                }
            }
        }
        progress(line_no);
    }
    let Some(range) = range else {
        return Err(Failure {
            index: None,
            line: 0,
            reason: "the export is empty".into(),
        });
    };
    if checkpoints == 0 {
        return Err(Failure {
            index: Some(first_index),
            line: line_no,
            reason: "the export has no signed checkpoint".into(),
        });
    }
    if covered != range.size() {
        return Err(Failure {
            index: Some(covered),
            line: line_no,
            reason: format!(
                "events {covered}..{} are not covered by a signed checkpoint (the export was cut short?)",
                range.size() - 1
            ),
        });
    }
    Ok(Report {
        events,
        checkpoints,
        first_index,
        tree_size: range.size(),
        root: range.root(),
        origin: origin.unwrap_or_default(),
        header: prefix.is_some(),
        subject_prefix: prefix.or(inferred),
    })
}

#[cfg(test)]
mod tests {
    use spend_signer::Signer as _;

    use super::*;
    use crate::export::checkpoint_body;
    use crate::merkle::root;

    struct Export {
        keys: KeyRing,
        text: String,
    }

    /// `(subject, payload, rejected)` events, a checkpoint every 3 and at
    /// the end, with or without a header line.
    async fn export(events: &[(String, Vec<u8>, Option<String>)], header: Option<&str>) -> Export {
        let dir = tempfile::tempdir().unwrap();
        let signer = spend_signer::LocalSigner::load_or_create(&dir.path().join("key.pem")).unwrap();
        let mut keys = KeyRing::default();
        keys.add_pem(&spend_signer::spki_pem(&signer.public_key_der().await.unwrap()).unwrap()).unwrap();
        let mut text = header.map(|p| format!("{}\n", crate::export::header_line(p))).unwrap_or_default();
        let mut leaves = Vec::new();
        for (i, (subject, payload, rejected)) in events.iter().enumerate() {
            let mut line = serde_json::json!({"kind": "event", "index": i, "seq": i + 1, "subject": subject, "payload_b64": B64.encode(payload)});
            if let Some(r) = rejected {
                line["rejected"] = r.as_str().into();
            }
            text.push_str(&format!("{line}\n"));
            leaves.push(leaf_hash(payload));
            if leaves.len() % 3 == 0 || leaves.len() == events.len() {
                let body = checkpoint_body("test/ledger", leaves.len() as u64, &root(&leaves));
                let sig = signer.sign(body.as_bytes()).await.unwrap();
                let cp = serde_json::json!({"kind": "checkpoint", "body": body, "signature_b64": B64.encode(sig), "key_id": signer.key_id()});
                text.push_str(&format!("{cp}\n"));
            }
        }
        Export { keys, text }
    }

    fn event(prefix: &str, org: &str, i: u64) -> (String, Vec<u8>, Option<String>) {
        let a = spend_testkit::events::draft_event(prefix, org, i);
        (a.subject, a.payload.to_vec(), None)
    }

    fn run(e: &Export) -> Result<Report, Failure> {
        verify(e.text.as_bytes(), &e.keys, |_| {})
    }

    #[tokio::test]
    async fn a_headerless_export_verifies_and_says_what_only_a_header_could_show() {
        let events: Vec<_> = (0..7).map(|i| event("spend.evt", if i % 2 == 0 { "acme" } else { "globex" }, i)).collect();
        let r = run(&export(&events, None).await).unwrap();
        assert_eq!((r.events, r.checkpoints, r.tree_size, r.header), (7, 3, 7, false));
        assert_eq!(r.subject_prefix.as_deref(), Some("spend.evt"));
        let unchecked = r.unchecked();
        assert_eq!(unchecked.len(), 2, "{unchecked:?}");
        assert!(unchecked[0].starts_with("the subject-prefix binding") && unchecked[0].contains("\"spend.evt\""));
        // The same events with a header: nothing left unchecked.
        let r = run(&export(&events, Some("spend.evt")).await).unwrap();
        assert!(r.header && r.unchecked().is_empty());
        assert_eq!(r.subject_prefix.as_deref(), Some("spend.evt"));
        // A header line anywhere but first is refused.
        let mut e = export(&events, None).await;
        let second = e.text.find('\n').unwrap() + 1;
        e.text.insert_str(second, &format!("{}\n", crate::export::header_line("spend.evt")));
        let f = run(&e).unwrap_err();
        assert_eq!(f.index, Some(1), "{f}");
        assert!(f.reason.contains("may only be the first line"), "{f}");
    }

    #[tokio::test]
    async fn without_a_header_every_event_is_a_full_envelope_on_its_own_subject_with_one_prefix() {
        let mut events: Vec<_> = (0..6).map(|i| event("spend.evt", "acme", i)).collect();
        // Valid JSON, not an envelope (no id), unmarked: named.
        events[4].1 = br#"{"org":"acme","subject":"draft/d1"}"#.to_vec();
        let f = run(&export(&events, None).await).unwrap_err();
        assert_eq!(f.index, Some(4), "{f}");
        assert!(f.reason.contains("not marked rejected"), "{f}");
        // An event of another prefix, even the first one: named, not its neighbours.
        for at in [0, 3] {
            let mut events: Vec<_> = (0..6).map(|i| event("spend.evt", "acme", i)).collect();
            events[at] = event("spend.other", "acme", at as u64);
            let f = run(&export(&events, None).await).unwrap_err();
            assert_eq!(f.index, Some(at as u64), "{f}");
            assert!(f.reason.contains("\"spend.other\" differs from \"spend.evt\""), "{f}");
        }
        // An event on another org's subject, unmarked: named.
        let mut events: Vec<_> = (0..6).map(|i| event("spend.evt", "acme", i)).collect();
        events[2].0 = "spend.evt.globex.draft.d0".into();
        let f = run(&export(&events, None).await).unwrap_err();
        assert_eq!(f.index, Some(2), "{f}");
    }

    #[tokio::test]
    async fn without_a_header_rejections_are_reproduced_with_the_prefix_the_events_imply() {
        let mut events: Vec<_> = (0..6).map(|i| event("spend.evt", "acme", i)).collect();
        // A forged event on another org's subject, and junk bytes, both
        // marked rejected with the ledger's reasons.
        let forged = "spend.evt.globex.draft.d1".to_string();
        let reason = validate::classify("spend.evt", &forged, &events[3].1).unwrap_err();
        events[3] = (forged.clone(), events[3].1.clone(), Some(reason));
        let junk = b"{not json".to_vec();
        let reason = validate::classify("spend.evt", "spend.evt.acme.draft.junk", &junk).unwrap_err();
        events[5] = ("spend.evt.acme.draft.junk".into(), junk, Some(reason));
        let r = run(&export(&events, None).await).unwrap();
        assert_eq!((r.events, r.subject_prefix.as_deref()), (6, Some("spend.evt")));
        // A rejection naming another prefix than the events imply: named.
        let mut other = events.clone();
        other[3].2 = Some(validate::classify("other.evt", &forged, &other[3].1).unwrap_err());
        let f = run(&export(&other, None).await).unwrap_err();
        assert_eq!(f.index, Some(3), "{f}");
        assert!(f.reason.contains("\"other.evt\" differs from \"spend.evt\""), "{f}");
        // A reason that is not the recomputed one, or a valid event marked rejected.
        let mut wrong = events.clone();
        wrong[3].2 = Some("it looked odd".into());
        let f = run(&export(&wrong, None).await).unwrap_err();
        assert!(f.index == Some(3) && f.reason.contains("rejection reason differs"), "{f}");
        let mut valid = events.clone();
        valid[1].2 = Some(validate::classify("other.evt", &valid[1].0, &valid[1].1).unwrap_err());
        let f = run(&export(&valid, None).await).unwrap_err();
        assert!(f.index == Some(1) && f.reason.contains("differs from \"spend.evt\""), "{f}");
        // With every event rejected, the prefix comes from the reasons.
        let only = vec![events[3].clone(), events[5].clone()];
        let r = run(&export(&only, None).await).unwrap();
        assert_eq!(r.subject_prefix.as_deref(), Some("spend.evt"));
        let r = run(&export(&only[1..], None).await).unwrap();
        assert_eq!(r.subject_prefix, None, "junk alone implies no prefix");
        assert!(r.unchecked()[0].contains("none was inferred"));
    }

    #[test]
    fn a_prefix_is_recovered_from_any_rejection_reason_that_names_it() {
        let (subject, payload, _) = event("spend.evt", "acme", 0);
        for prefix in ["spend.evt", "a", "we\"ird\\pr\u{e9}fix\n\u{7}", "b.c"] {
            let reason = validate::classify(prefix, "x.globex.draft.d0", &payload).unwrap_err();
            assert_eq!(headerless_rejected("x.globex.draft.d0", &payload, &reason), Ok(Some(prefix.to_string())));
        }
        // The one prefix that would make the event valid is never recovered.
        let own = format!("event of org \"acme\" was published on {subject:?}, not on its own subject {subject:?}");
        let e = headerless_rejected(&subject, &payload, &own).unwrap_err();
        assert!(e.contains("marked rejected but is valid"), "{e}");
        assert!(headerless_rejected(&subject, &payload, "anything").is_err());
        assert_eq!(unescape_debug(r#"a\"b\\c\u{1f600}\n"#).as_deref(), Some("a\"b\\c\u{1f600}\n"));
        assert_eq!(unescape_debug(r"\q"), None);
    }
}
