//! The embedded event log for `spend dev`: one append-only file plus a
//! small file per durable consumer, under a data folder.
//!
//! Record layout (little-endian), one per message:
//! `len:u32 | crc32(body):u32 | body`, with
//! `body = seq:u64 | time_unix_nanos:i64 | subject_len:u16 | subject |
//! msg_id_len:u16 | msg_id | payload`.
//!
//! On open the file is scanned to rebuild the indexes (offsets, last
//! sequence per subject, recent message ids for dedup). A record cut short
//! at the very end (a crash mid-write) is truncated away with a warning; a
//! bad record anywhere else is corruption and opening fails, because
//! silently dropping acknowledged events is never acceptable.
//!
//! Appends are written and fsynced (one fsync per `append_many` batch)
//! before they are acknowledged. File work runs on the blocking pool.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{TimeZone, Utc};
use futures::StreamExt;
use futures::stream::BoxStream;
use tokio::sync::watch;

use crate::{Append, AppendAck, Consumer, EventLog, LogError, LogInfo, StartAt, StoredMessage};

const LOG_FILE: &str = "events.log";
const HEADER: usize = 8;
/// Largest accepted payload, as JetStream's default max message size.
pub const MAX_PAYLOAD: usize = 1024 * 1024;

/// Settings of an embedded log.
#[derive(Debug, Clone)]
pub struct EmbeddedConfig {
    pub dir: PathBuf,
    /// How long a message id is remembered for dedup (JetStream's default
    /// duplicate window is 2 minutes).
    pub duplicate_window: Duration,
    /// fsync before acknowledging; off only in benchmarks of other parts.
    pub fsync: bool,
}

impl EmbeddedConfig {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            duplicate_window: Duration::from_secs(120),
            fsync: true,
        }
    }
}

struct Index {
    /// (file offset of the record, record length) for seq = i + 1.
    records: Vec<(u64, u32)>,
    /// Append time of seq = i + 1, unix nanoseconds, non-decreasing.
    times: Vec<i64>,
    last_by_subject: HashMap<String, u64>,
    first_by_subject: HashMap<String, u64>,
    /// msg id → (seq, append time nanos); pruned past the window.
    recent_ids: HashMap<String, (u64, i64)>,
    end: u64,
}

struct Inner {
    file: File,
    index: Index,
    /// Held (exclusively locked) for as long as the log is open, so a second
    /// process cannot append to the same file.
    _lock: File,
}

/// A durable single-file event log. Cheap to clone.
#[derive(Clone)]
pub struct EmbeddedLog {
    inner: Arc<Mutex<Inner>>,
    config: Arc<EmbeddedConfig>,
    /// Last stored sequence, for live subscribers and waiting consumers.
    tip: watch::Sender<u64>,
}

fn io_err(what: &str, path: &Path, e: std::io::Error) -> LogError {
    LogError::Unavailable(format!("{what} {}: {e}", path.display()))
}

impl EmbeddedLog {
    /// Opens (or creates) the log in `config.dir`.
    pub async fn open(config: EmbeddedConfig) -> Result<Self, LogError> {
        let cfg = config.clone();
        let inner = tokio::task::spawn_blocking(move || Self::open_blocking(&cfg))
            .await
            .map_err(|e| LogError::Internal(e.to_string()))??;
        let last = inner.index.records.len() as u64;
        let (tip, _) = watch::channel(last);
        Ok(Self {
            inner: Arc::new(Mutex::new(inner)),
            config: Arc::new(config),
            tip,
        })
    }

    fn open_blocking(config: &EmbeddedConfig) -> Result<Inner, LogError> {
        std::fs::create_dir_all(config.dir.join("consumers")).map_err(|e| io_err("creating", &config.dir, e))?;
        let lock_path = config.dir.join("LOCK");
        let lock = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(|e| io_err("opening", &lock_path, e))?;
        lock.try_lock().map_err(|_| {
            LogError::Unavailable(format!(
                "the event log in {} is in use by another process (a running `spend dev`?)",
                config.dir.display()
            ))
        })?;
        let path = config.dir.join(LOG_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .map_err(|e| io_err("opening", &path, e))?;
        let mut data = Vec::new();
        file.seek(SeekFrom::Start(0)).map_err(|e| io_err("reading", &path, e))?;
        file.read_to_end(&mut data).map_err(|e| io_err("reading", &path, e))?;
        let mut index = Index {
            records: Vec::new(),
            times: Vec::new(),
            last_by_subject: HashMap::new(),
            first_by_subject: HashMap::new(),
            recent_ids: HashMap::new(),
            end: 0,
        };
        let mut off = 0usize;
        while off < data.len() {
            let rest = &data[off..];
            let whole = rest.len() >= HEADER && {
                let len = u32::from_le_bytes(rest[0..4].try_into().unwrap()) as usize;
                rest.len() >= HEADER + len
            };
            if !whole {
                tracing::warn!(path = %path.display(), offset = off, bytes = rest.len(), "discarding a record cut short by a crash");
                break;
            }
            let len = u32::from_le_bytes(rest[0..4].try_into().unwrap()) as usize;
            let crc = u32::from_le_bytes(rest[4..8].try_into().unwrap());
            let body = &rest[HEADER..HEADER + len];
            let at_end = off + HEADER + len == data.len();
            if crc32fast::hash(body) != crc {
                if at_end {
                    tracing::warn!(path = %path.display(), offset = off, "discarding a torn final record (checksum mismatch)");
                    break;
                }
                return Err(LogError::Corrupt(format!("{}: record at offset {off} fails its checksum", path.display())));
            }
            let msg = decode(body).map_err(|e| LogError::Corrupt(format!("{}: record at offset {off}: {e}", path.display())))?;
            let expected = index.records.len() as u64 + 1;
            if msg.seq != expected {
                return Err(LogError::Corrupt(format!(
                    "{}: record at offset {off} has sequence {}, expected {expected}",
                    path.display(),
                    msg.seq
                )));
            }
            index.records.push((off as u64, (HEADER + len) as u32));
            let nanos = msg.time.timestamp_nanos_opt().unwrap_or(i64::MAX);
            index.times.push(nanos);
            index.first_by_subject.entry(msg.subject.clone()).or_insert(msg.seq);
            index.last_by_subject.insert(msg.subject, msg.seq);
            if let Some(id) = msg.msg_id {
                index.recent_ids.insert(id, (msg.seq, nanos));
            }
            off += HEADER + len;
        }
        if off < data.len() {
            file.set_len(off as u64).map_err(|e| io_err("truncating", &path, e))?;
            file.sync_all().map_err(|e| io_err("syncing", &path, e))?;
        }
        index.end = off as u64;
        let mut inner = Inner { file, index, _lock: lock };
        prune_ids(&mut inner.index, Utc::now().timestamp_nanos_opt().unwrap_or(0), config.duplicate_window);
        Ok(inner)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the index half-updated
        // (the index changes only after a successful write), so poisoning is
        // safe to ignore.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn append_blocking(&self, msgs: Vec<Append>) -> Vec<Result<AppendAck, LogError>> {
        let mut inner = self.lock();
        let path = self.config.dir.join(LOG_FILE);
        let mut results = Vec::with_capacity(msgs.len());
        let mut buf = Vec::new();
        let mut pending: Vec<(u64, u32, i64, String, String)> = Vec::new();
        let first_new_seq = inner.index.records.len() as u64 + 1;
        let mut now = Utc::now().timestamp_nanos_opt().unwrap_or(0);
        if let Some(&last) = inner.index.times.last() {
            now = now.max(last);
        }
        prune_ids(&mut inner.index, now, self.config.duplicate_window);
        // Subjects and ids written earlier in this same batch.
        let mut batch_subjects: HashMap<String, u64> = HashMap::new();
        let mut batch_ids: HashMap<String, u64> = HashMap::new();
        for m in msgs {
            if let Err(e) = check_append(&m) {
                results.push(Err(e));
                continue;
            }
            if let Some(&seq) = batch_ids.get(&m.msg_id).or(inner.index.recent_ids.get(&m.msg_id).map(|(s, _)| s)) {
                results.push(Ok(AppendAck { seq, duplicate: true }));
                continue;
            }
            let current = batch_subjects
                .get(&m.subject)
                .copied()
                .or_else(|| inner.index.last_by_subject.get(&m.subject).copied())
                .unwrap_or(0);
            if let Some(expected) = m.expected_last_subject_seq
                && expected != current
            {
                results.push(Err(LogError::WrongLastSequence {
                    subject: m.subject,
                    expected,
                    actual: current,
                }));
                continue;
            }
            let seq = first_new_seq + pending.len() as u64;
            let start = buf.len();
            encode(&mut buf, seq, now, &m);
            let len = (buf.len() - start) as u32;
            pending.push((inner.index.end + start as u64, len, now, m.subject.clone(), m.msg_id.clone()));
            batch_subjects.insert(m.subject, seq);
            batch_ids.insert(m.msg_id, seq);
            results.push(Ok(AppendAck { seq, duplicate: false }));
        }
        if pending.is_empty() {
            return results;
        }
        let write = inner
            .file
            .write_all(&buf)
            .and_then(|_| if self.config.fsync { inner.file.sync_data() } else { Ok(()) });
        if let Err(e) = write {
            // Nothing was acknowledged; cut back whatever part reached the
            // file so the next append starts on a record boundary.
            let end = inner.index.end;
            let _ = inner.file.set_len(end);
            let err = io_err("writing", &path, e);
            return results
                .into_iter()
                .map(|r| match r {
                    Ok(a) if !a.duplicate => Err(err.clone()),
                    other => other,
                })
                .collect();
        }
        for (off, len, t, subject, id) in pending {
            let seq = inner.index.records.len() as u64 + 1;
            inner.index.records.push((off, len));
            inner.index.times.push(t);
            inner.index.first_by_subject.entry(subject.clone()).or_insert(seq);
            inner.index.last_by_subject.insert(subject, seq);
            inner.index.recent_ids.insert(id, (seq, t));
        }
        inner.index.end += buf.len() as u64;
        let last = inner.index.records.len() as u64;
        drop(inner);
        self.tip.send_replace(last);
        results
    }

    /// Reads up to `max` messages starting at `seq`.
    fn read_blocking(&self, seq: u64, max: usize) -> Result<Vec<StoredMessage>, LogError> {
        let inner = self.lock();
        let path = self.config.dir.join(LOG_FILE);
        let start = seq.max(1) as usize - 1;
        let end = (start + max).min(inner.index.records.len());
        if start >= end {
            return Ok(Vec::new());
        }
        let (first_off, _) = inner.index.records[start];
        let (last_off, last_len) = inner.index.records[end - 1];
        let mut buf = vec![0u8; (last_off + last_len as u64 - first_off) as usize];
        inner.file.read_exact_at(&mut buf, first_off).map_err(|e| io_err("reading", &path, e))?;
        drop(inner);
        let mut out = Vec::with_capacity(end - start);
        let mut off = 0usize;
        while off < buf.len() {
            let len = u32::from_le_bytes(buf[off..off + 4].try_into().unwrap()) as usize;
            let body = &buf[off + HEADER..off + HEADER + len];
            out.push(decode(body).map_err(|e| LogError::Corrupt(format!("{}: {e}", path.display())))?);
            off += HEADER + len;
        }
        Ok(out)
    }

    fn first_seq_at(&self, start: StartAt) -> u64 {
        match start {
            StartAt::Beginning => 1,
            StartAt::Sequence(s) => s.max(1),
            StartAt::Time(t) => {
                let nanos = t.timestamp_nanos_opt().unwrap_or(i64::MIN);
                let inner = self.lock();
                inner.index.times.partition_point(|&x| x < nanos) as u64 + 1
            }
        }
    }

    async fn read(&self, seq: u64, max: usize) -> Result<Vec<StoredMessage>, LogError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.read_blocking(seq, max))
            .await
            .map_err(|e| LogError::Internal(e.to_string()))?
    }

    fn consumer_path(&self, name: &str) -> PathBuf {
        self.config.dir.join("consumers").join(format!("{name}.pos"))
    }
}

fn check_append(m: &Append) -> Result<(), LogError> {
    if m.subject.is_empty() || m.subject.split('.').any(|t| t.is_empty() || t == "*" || t == ">") || m.subject.contains(char::is_whitespace) {
        return Err(LogError::Rejected(format!("subject {:?} is not a valid literal subject", m.subject)));
    }
    if m.subject.len() > u16::MAX as usize || m.msg_id.len() > u16::MAX as usize {
        return Err(LogError::Rejected("subject or message id too long".into()));
    }
    if m.payload.len() > MAX_PAYLOAD {
        return Err(LogError::Rejected(format!(
            "payload of {} bytes exceeds the maximum of {MAX_PAYLOAD}",
            m.payload.len()
        )));
    }
    Ok(())
}

fn prune_ids(index: &mut Index, now: i64, window: Duration) {
    let horizon = now.saturating_sub(window.as_nanos() as i64);
    index.recent_ids.retain(|_, (_, t)| *t >= horizon);
}

fn encode(buf: &mut Vec<u8>, seq: u64, nanos: i64, m: &Append) {
    let start = buf.len();
    buf.extend_from_slice(&[0u8; HEADER]);
    buf.extend_from_slice(&seq.to_le_bytes());
    buf.extend_from_slice(&nanos.to_le_bytes());
    buf.extend_from_slice(&(m.subject.len() as u16).to_le_bytes());
    buf.extend_from_slice(m.subject.as_bytes());
    buf.extend_from_slice(&(m.msg_id.len() as u16).to_le_bytes());
    buf.extend_from_slice(m.msg_id.as_bytes());
    buf.extend_from_slice(&m.payload);
    let body_len = (buf.len() - start - HEADER) as u32;
    let crc = crc32fast::hash(&buf[start + HEADER..]);
    buf[start..start + 4].copy_from_slice(&body_len.to_le_bytes());
    buf[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

fn decode(body: &[u8]) -> Result<StoredMessage, String> {
    let short = || "record is shorter than its fields".to_string();
    let seq = u64::from_le_bytes(body.get(0..8).ok_or_else(short)?.try_into().unwrap());
    let nanos = i64::from_le_bytes(body.get(8..16).ok_or_else(short)?.try_into().unwrap());
    let slen = u16::from_le_bytes(body.get(16..18).ok_or_else(short)?.try_into().unwrap()) as usize;
    let subject = std::str::from_utf8(body.get(18..18 + slen).ok_or_else(short)?)
        .map_err(|e| e.to_string())?
        .to_string();
    let p = 18 + slen;
    let ilen = u16::from_le_bytes(body.get(p..p + 2).ok_or_else(short)?.try_into().unwrap()) as usize;
    let id = std::str::from_utf8(body.get(p + 2..p + 2 + ilen).ok_or_else(short)?)
        .map_err(|e| e.to_string())?
        .to_string();
    let payload = Bytes::copy_from_slice(&body[p + 2 + ilen..]);
    Ok(StoredMessage {
        seq,
        subject,
        payload,
        time: Utc.timestamp_nanos(nanos),
        msg_id: (!id.is_empty()).then_some(id),
        // One process, one file: nothing can be republished into it.
        republished: false,
    })
}

#[async_trait]
impl EventLog for EmbeddedLog {
    async fn append(&self, msg: Append) -> Result<AppendAck, LogError> {
        self.append_many(vec![msg])
            .await
            .pop()
            .unwrap_or_else(|| Err(LogError::Internal("no result".into())))
    }

    async fn append_many(&self, msgs: Vec<Append>) -> Vec<Result<AppendAck, LogError>> {
        let this = self.clone();
        let n = msgs.len();
        match tokio::task::spawn_blocking(move || this.append_blocking(msgs)).await {
            Ok(r) => r,
            Err(e) => vec![Err(LogError::Internal(e.to_string())); n],
        }
    }

    async fn info(&self) -> Result<LogInfo, LogError> {
        let inner = self.lock();
        let n = inner.index.records.len() as u64;
        Ok(LogInfo {
            last_seq: n,
            messages: n,
            backend: "embedded".into(),
        })
    }

    async fn last_subject_seq(&self, subject: &str) -> Result<u64, LogError> {
        Ok(self.lock().index.last_by_subject.get(subject).copied().unwrap_or(0))
    }

    async fn first_on_subject(&self, subject: &str) -> Result<Option<StoredMessage>, LogError> {
        let seq = self.lock().index.first_by_subject.get(subject).copied();
        match seq {
            Some(seq) => Ok(self.read(seq, 1).await?.pop()),
            None => Ok(None),
        }
    }

    async fn last_on_subject(&self, subject: &str) -> Result<Option<StoredMessage>, LogError> {
        let seq = self.lock().index.last_by_subject.get(subject).copied();
        match seq {
            Some(seq) => Ok(self.read(seq, 1).await?.pop()),
            None => Ok(None),
        }
    }

    async fn durable_consumer(&self, name: &str, start: StartAt) -> Result<Box<dyn Consumer>, LogError> {
        if !crate_name_ok(name) {
            return Err(LogError::Rejected(format!("consumer name {name:?} must be [A-Za-z0-9_-]+")));
        }
        let path = self.consumer_path(name);
        let acked = match std::fs::read_to_string(&path) {
            Ok(s) => s
                .trim()
                .parse::<u64>()
                .map_err(|_| LogError::Corrupt(format!("{}: not a sequence number", path.display())))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let acked = self.first_seq_at(start) - 1;
                write_pos(&path, acked)?;
                acked
            }
            Err(e) => return Err(io_err("reading", &path, e)),
        };
        Ok(Box::new(EmbeddedConsumer {
            log: self.clone(),
            path,
            acked,
            next: acked + 1,
            tip: self.tip.subscribe(),
        }))
    }

    async fn subscribe(&self, start: StartAt) -> Result<BoxStream<'static, Result<StoredMessage, LogError>>, LogError> {
        let next = self.first_seq_at(start);
        let state = (self.clone(), next, self.tip.subscribe(), std::collections::VecDeque::new());
        Ok(futures::stream::unfold(state, |(log, mut next, mut tip, mut buf)| async move {
            loop {
                if let Some(m) = buf.pop_front() {
                    return Some((Ok(m), (log, next, tip, buf)));
                }
                match log.read(next, 512).await {
                    Ok(batch) if !batch.is_empty() => {
                        next = batch.last().map(|m: &StoredMessage| m.seq + 1).unwrap_or(next);
                        buf.extend(batch);
                    }
                    Ok(_) => {
                        if tip.changed().await.is_err() {
                            return None;
                        }
                    }
                    Err(e) => return Some((Err(e), (log, next, tip, buf))),
                }
            }
        })
        .boxed())
    }
}

fn crate_name_ok(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn write_pos(path: &Path, seq: u64) -> Result<(), LogError> {
    let tmp = path.with_extension("pos.tmp");
    std::fs::write(&tmp, seq.to_string())
        .and_then(|_| File::open(&tmp)?.sync_all())
        .and_then(|_| std::fs::rename(&tmp, path))
        .map_err(|e| io_err("writing", path, e))
}

struct EmbeddedConsumer {
    log: EmbeddedLog,
    path: PathBuf,
    /// Highest sequence acknowledged (persisted).
    acked: u64,
    /// Next sequence to deliver in this session.
    next: u64,
    tip: watch::Receiver<u64>,
}

#[async_trait]
impl Consumer for EmbeddedConsumer {
    async fn fetch(&mut self, max: usize, wait: Duration) -> Result<Vec<StoredMessage>, LogError> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let batch = self.log.read(self.next, max).await?;
            if let Some(last) = batch.last() {
                self.next = last.seq + 1;
                return Ok(batch);
            }
            if tokio::time::timeout_at(deadline, self.tip.changed()).await.is_err() {
                return Ok(Vec::new());
            }
        }
    }

    async fn ack_through(&mut self, seq: u64) -> Result<(), LogError> {
        let seq = seq.min(self.next - 1);
        if seq <= self.acked {
            return Ok(());
        }
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || write_pos(&path, seq))
            .await
            .map_err(|e| LogError::Internal(e.to_string()))??;
        self.acked = seq;
        Ok(())
    }
}
