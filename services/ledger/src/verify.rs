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
    let (prefix, mut line_no, mut block) = header(&mut reader)?;
    let mut fold = Fold::default();
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
        let items = items(&block[..cut], prefix.as_deref(), threads);
        block.drain(..cut);
        if prefix.is_none() && fold.inferred.is_none() {
            fold.inferred = majority_prefix(&items);
        }
        for it in items {
            line_no += 1;
            fold.take(it, line_no, prefix.is_some(), keys)?;
        }
        progress(line_no);
    }
    fold.report(line_no, prefix)
}

/// The export's header line, read first (every event line depends on it):
/// its subject prefix, the lines read, and what was read that is not a
/// header (an export without one, the pinned format, starts with its first
/// event, frontier or checkpoint line, which goes back to the block reader).
fn header(reader: &mut impl BufRead) -> Result<(Option<String>, u64, Vec<u8>), Failure> {
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
    if !matches!(parse_line(trimmed), Ok(Line::Header { .. })) {
        return Ok((None, 0, first));
    }
    match item(trimmed, None, &mut Vec::new()) {
        Item::Header { prefix } => Ok((Some(prefix), 1, Vec::new())),
        Item::Bad { reason } => Err(Failure {
            index: Some(0),
            line: 1,
            reason,
        }),
        _ => unreachable!("a header line is a header item or a bad one"),
    }
}

/// The items of a block of whole lines, checked on `threads` workers.
fn items(block: &[u8], prefix: Option<&str>, threads: usize) -> Vec<Item> {
    let mut lines: Vec<&[u8]> = block.split(|b| *b == b'\n').collect();
    if block.ends_with(b"\n") {
        lines.pop(); // the empty piece after the last newline
    }
    let lines: Vec<&[u8]> = lines.into_iter().map(|l| l.strip_suffix(b"\r").unwrap_or(l)).collect();
    let per = lines.len().div_ceil(threads).max(1);
    std::thread::scope(|s| {
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
    })
}

/// The tree and the checkpoints, as the lines so far build them.
#[derive(Default)]
struct Fold {
    range: Option<CompactRange>,
    first_index: u64,
    events: u64,
    checkpoints: u64,
    /// The tree size of the last checkpoint.
    covered: u64,
    origin: Option<String>,
    /// Without a header: the prefix the events imply, the same for all.
    inferred: Option<String>,
}

impl Fold {
    /// Takes line `line_no`'s item, in order.
    fn take(&mut self, it: Item, line_no: u64, headed: bool, keys: &KeyRing) -> Result<(), Failure> {
        let next_index = self.range.as_ref().map(|r| r.size()).unwrap_or(0);
        let fail = |index: Option<u64>, reason: String| Failure { index, line: line_no, reason };
        match it {
            // Name the index this line stands at, whatever it claims.
            Item::Bad { reason } => Err(fail(Some(next_index), reason)),
            Item::Header { .. } if headed => Err(fail(Some(next_index), "a second header line".into())),
            Item::Header { .. } => Err(fail(Some(next_index), "a header line may only be the first line".into())),
            Item::Frontier { size, hashes } => {
                if self.range.is_some() {
                    return Err(fail(Some(next_index), "a frontier line may only start an export".into()));
                }
                self.range = Some(CompactRange::from_frontier(size, hashes).map_err(|e| fail(Some(size), e))?);
                self.first_index = size;
                self.covered = size;
                Ok(())
            }
            Item::Event { index, leaf, prefix: implied } => {
                let r = self.range.get_or_insert_with(CompactRange::new);
                if index != r.size() {
                    return Err(fail(Some(r.size()), format!("expected index {}, found {index}", r.size())));
                }
                match (&self.inferred, implied) {
                    (Some(p), Some(q)) if *p != q => {
                        return Err(fail(
                            Some(index),
                            format!(
                                "subject prefix {q:?} differs from {p:?}, the one the export's other events imply (an event stream has one subject prefix)"
                            ),
                        ));
                    }
                    (None, Some(q)) => self.inferred = Some(q),
                    _ => {}
                }
                r.push(leaf);
                self.events += 1;
                Ok(())
            }
            Item::Checkpoint { body, sig, key_id } => self.checkpoint(&body, &sig, &key_id, keys, fail),
        }
    }

    fn checkpoint(&mut self, body: &str, sig: &[u8], key_id: &str, keys: &KeyRing, fail: impl Fn(Option<u64>, String) -> Failure) -> Result<(), Failure> {
        let r = self.range.get_or_insert_with(CompactRange::new);
        // A bad checkpoint means one of the leaves it alone covers (or the
        // checkpoint itself) was changed.
        let first_uncovered = self.covered.min(r.size().saturating_sub(1));
        let (o, size, root) = parse_body(body).map_err(|e| fail(Some(first_uncovered), e))?;
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
        match &self.origin {
            Some(prev) if prev != o => return Err(fail(Some(first_uncovered), format!("checkpoint origin {o:?} differs from {prev:?}"))),
            Some(_) => {}
            None => self.origin = Some(o.to_string()),
        }
        keys.check(key_id, body.as_bytes(), sig)
            .map_err(|e| fail(Some(first_uncovered), format!("checkpoint for tree size {size}: {e}")))?;
        self.covered = size;
        self.checkpoints += 1;
        Ok(())
    }

    /// The report, once every line is read: every event under a signed
    /// checkpoint.
    fn report(self, line_no: u64, prefix: Option<String>) -> Result<Report, Failure> {
        let Some(range) = self.range else {
            return Err(Failure {
                index: None,
                line: 0,
                reason: "the export is empty".into(),
            });
        };
        if self.checkpoints == 0 {
            return Err(Failure {
                index: Some(self.first_index),
                line: line_no,
                reason: "the export has no signed checkpoint".into(),
            });
        }
        let covered = self.covered;
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
            events: self.events,
            checkpoints: self.checkpoints,
            first_index: self.first_index,
            tree_size: range.size(),
            root: range.root(),
            origin: self.origin.unwrap_or_default(),
            header: prefix.is_some(),
            subject_prefix: prefix.or(self.inferred),
        })
    }
}

#[cfg(test)]
mod tests;
