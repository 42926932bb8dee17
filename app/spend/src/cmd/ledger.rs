//! `spend ledger …`: export, public key, offline verification and replay.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use spend_eventlog::jetstream::JetStreamLog;
use spend_eventlog::{EventLog, StartAt};
use spend_ledger::export::{self, WriteSink};
use spend_ledger::merkle::{CompactRange, leaf_hash};
use spend_ledger::verify::{self, KeyRing};
use spend_signer::{KmsSigner, LocalSigner, Signer};

use super::{Point, parse_point};
use crate::LedgerCommand;
use crate::config::{DevPaths, SpendConfig};

fn bar(len: u64, what: &str) -> ProgressBar {
    let pb = ProgressBar::new(len);
    pb.set_style(
        ProgressStyle::with_template(&format!("{{spinner}} {what} [{{bar:40}}] {{pos}}/{{len}} ({{per_sec}}, eta {{eta}})"))
            .expect("valid template")
            .progress_chars("=> "),
    );
    pb.enable_steady_tick(Duration::from_millis(200));
    pb
}

pub async fn run(config: SpendConfig, command: LedgerCommand) -> anyhow::Result<ExitCode> {
    match command {
        LedgerCommand::Export { source, from, to, output } => {
            let store = super::open_store(&config, source.data_dir.as_deref()).await?;
            let resolve = async |flag: &str, v: Option<String>, end: bool| -> anyhow::Result<Option<u64>> {
                match v.map(|v| parse_point(flag, &v)).transpose()? {
                    None => Ok(None),
                    Some(Point::Index(i)) => Ok(Some(i)),
                    Some(Point::Time(t)) => {
                        let first = store.first_index_at(t).await?;
                        // --to a time: end before the first event at or after it.
                        Ok(if end {
                            Some(first.map(|i| i.saturating_sub(1)).unwrap_or(u64::MAX - 1))
                        } else {
                            Some(first.unwrap_or(u64::MAX))
                        })
                    }
                }
            };
            let from = resolve("--from", from, false).await?;
            let to = resolve("--to", to, true).await?;
            let plan = export::plan(store.as_ref(), from, to).await?;
            let pb = bar(plan.to - plan.from, "exporting");
            let result = match &output {
                Some(path) => {
                    let file = std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
                    let mut sink = WriteSink(std::io::BufWriter::new(file));
                    let r = export::write(store.as_ref(), plan, &config.nats.subject_prefix, &mut sink, |n| pb.set_position(n)).await;
                    sink.0.flush().context("writing the export")?;
                    r
                }
                None => {
                    let mut sink = WriteSink(std::io::BufWriter::with_capacity(1 << 16, std::io::stdout()));
                    let r = export::write(store.as_ref(), plan, &config.nats.subject_prefix, &mut sink, |n| pb.set_position(n)).await;
                    sink.0.flush().context("writing the export")?;
                    r
                }
            };
            pb.finish_and_clear();
            result?;
            eprintln!(
                "exported events {}..={} ({} events, ending on a signed checkpoint)",
                plan.from,
                plan.to - 1,
                plan.to - plan.from
            );
            Ok(ExitCode::SUCCESS)
        }
        LedgerCommand::PublicKey { source } => {
            let (key_id, der) = match source.data_dir {
                Some(dir) => {
                    let path = DevPaths::new(&dir).signing_key;
                    if !path.exists() {
                        anyhow::bail!("{} does not exist: run `spend dev --data-dir {}` first", path.display(), dir.display());
                    }
                    let s = LocalSigner::load_or_create(&path)?;
                    (s.key_id().to_string(), s.public_key_der().await?)
                }
                None => {
                    if config.kms.key_id.is_empty() {
                        anyhow::bail!("no KMS key configured: set SPEND__KMS__KEY_ID, or pass --data-dir for a `spend dev` folder");
                    }
                    let s = KmsSigner::connect(&config.kms).await?;
                    (s.key_id().to_string(), s.public_key_der().await?)
                }
            };
            print!("key-id: {key_id}\n{}", spend_signer::spki_pem(&der)?);
            Ok(ExitCode::SUCCESS)
        }
        LedgerCommand::Verify { export, public_keys, json } => verify_cmd(&export, &public_keys, json),
        LedgerCommand::Replay {
            from_seq,
            from_time,
            output,
            public_key,
        } => {
            let from_time = from_time.map(|t| super::parse_time("--from-time", &t)).transpose()?;
            replay(config, from_seq, from_time, output.as_deref(), public_key.as_deref()).await
        }
    }
}

fn load_keys(paths: &[impl AsRef<Path>]) -> anyhow::Result<KeyRing> {
    let mut keys = KeyRing::default();
    for p in paths {
        let p = p.as_ref();
        let text = std::fs::read_to_string(p).with_context(|| format!("reading public key {}", p.display()))?;
        keys.add_pem(&text).map_err(|e| anyhow::anyhow!("public key {}: {e}", p.display()))?;
    }
    Ok(keys)
}

fn verify_cmd(path: &Path, key_paths: &[std::path::PathBuf], json: bool) -> anyhow::Result<ExitCode> {
    let keys = load_keys(key_paths)?;
    let (reader, pb): (Box<dyn BufRead>, ProgressBar) = if path.as_os_str() == "-" {
        (Box::new(BufReader::new(std::io::stdin().lock())), ProgressBar::hidden())
    } else {
        let file = std::fs::File::open(path).with_context(|| format!("opening export {}", path.display()))?;
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        let pb = bar(len, "verifying (bytes)");
        (Box::new(BufReader::with_capacity(1 << 20, pb.wrap_read(file))), pb)
    };
    let started = std::time::Instant::now();
    let result = verify::verify(reader, &keys, |_| {});
    pb.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();
    match result {
        Ok(r) => {
            if json {
                println!(
                    "{}",
                    serde_json::json!({"ok": true, "events": r.events, "checkpoints": r.checkpoints, "first_index": r.first_index, "tree_size": r.tree_size, "root_b64": B64.encode(r.root), "origin": r.origin, "header": r.header, "subject_prefix": r.subject_prefix, "unchecked": r.unchecked()})
                );
            } else {
                println!(
                    "OK: {} events (indexes {}..={}), {} signed checkpoints, origin {:?}, tree size {}, root {} ({:.0} events/s)",
                    r.events,
                    r.first_index,
                    r.tree_size - 1,
                    r.checkpoints,
                    r.origin,
                    r.tree_size,
                    B64.encode(r.root),
                    r.events as f64 / secs.max(1e-9)
                );
                let unchecked = r.unchecked();
                if !unchecked.is_empty() {
                    println!(
                        "NOTE: the export has no header line (the pinned format: event and checkpoint lines only). Leaves, roots, signatures, indexes, seq and every event's envelope were checked, and the origin (it is in the signed checkpoints, not the header); not checked, because only the header carries it:"
                    );
                    for u in unchecked {
                        println!("  - {u}");
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(f) => {
            if json {
                println!(
                    "{}",
                    serde_json::json!({"ok": false, "first_bad_index": f.index, "line": f.line, "reason": f.reason})
                );
            } else {
                println!("FAILED: {f}");
            }
            Ok(ExitCode::FAILURE)
        }
    }
}

async fn replay(
    config: SpendConfig,
    from_seq: Option<u64>,
    from_time: Option<chrono::DateTime<chrono::Utc>>,
    output: Option<&Path>,
    public_key: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    let keys = public_key.map(|p| load_keys(&[p])).transpose()?;
    let log = JetStreamLog::connect(config.nats.clone()).await.context("connecting to the event stream")?;
    let info = log.info().await?;
    let last = info.last_seq;
    // A start time is resolved to the first sequence stored at or after it.
    let from = match from_time {
        Some(t) => {
            let mut probe = log.subscribe(StartAt::Time(t)).await?;
            match tokio::time::timeout(std::time::Duration::from_secs(3), probe.next()).await {
                Ok(Some(m)) if m.as_ref().is_ok_and(|m| m.seq <= last) => m?.seq,
                _ => {
                    eprintln!("no events were stored at or after {}", t.to_rfc3339());
                    return Ok(ExitCode::SUCCESS);
                }
            }
        }
        None => from_seq.unwrap_or(1).max(1),
    };
    // The latest published checkpoint, to compare against.
    let ledger = JetStreamLog::with_client(log.client().clone(), config.ledger_stream())
        .await
        .context("opening the ledger stream")?;
    let cp_last = ledger.info().await?.last_seq;
    let checkpoint = if cp_last > 0 {
        let m = ledger.subscribe(StartAt::Sequence(cp_last)).await?.next().await.transpose()?;
        m.and_then(|m| serde_json::from_slice::<serde_json::Value>(&m.payload).ok())
            .and_then(|v| serde_json::from_value::<spend_core::events::LedgerCheckpointed>(v["data"].clone()).ok())
    } else {
        None
    };
    let mut out = output
        .map(|p| {
            std::fs::File::create(p)
                .map(std::io::BufWriter::new)
                .with_context(|| format!("creating {}", p.display()))
        })
        .transpose()?;
    let mut range = CompactRange::new();
    let mut checked: Option<bool> = None;
    if last >= from {
        let pb = bar(last - from + 1, "replaying");
        let mut stream = log.subscribe(StartAt::Sequence(from)).await?;
        while let Some(m) = stream.next().await {
            let m = m?;
            range.push(leaf_hash(&m.payload));
            if let Some(out) = out.as_mut() {
                let line = serde_json::json!({"seq": m.seq, "time": m.time.to_rfc3339(), "subject": m.subject, "payload_b64": B64.encode(&m.payload)});
                writeln!(out, "{line}").context("writing the replay output")?;
            }
            if from == 1
                && let Some(cp) = &checkpoint
                && range.size() == cp.tree_size
            {
                checked = Some(B64.encode(range.root()) == cp.root_hash_b64);
            }
            pb.inc(1);
            if m.seq >= last {
                break;
            }
        }
        pb.finish_and_clear();
    }
    if let Some(out) = out.as_mut() {
        out.flush()?;
    }
    eprintln!(
        "replayed {} events (sequences {from}..={last}) from stream {}",
        range.size(),
        config.nats.stream
    );
    let Some(cp) = checkpoint else {
        eprintln!("no checkpoint on stream {} to compare with", config.ledger.stream);
        return Ok(ExitCode::SUCCESS);
    };
    if let Some(keys) = &keys {
        let sig = B64.decode(&cp.signature_b64).unwrap_or_default();
        let (_, size, _) = export::parse_body(&cp.body).map_err(anyhow::Error::msg)?;
        let ok = size == cp.tree_size && verify_one(keys, &cp.key_id, cp.body.as_bytes(), &sig);
        if !ok {
            println!("FAILED: the latest checkpoint (tree size {}) does not verify with the given key", cp.tree_size);
            return Ok(ExitCode::FAILURE);
        }
    }
    match checked {
        Some(true) => {
            println!(
                "OK: the stream's first {} events hash to the signed checkpoint root {}",
                cp.tree_size, cp.root_hash_b64
            );
            Ok(ExitCode::SUCCESS)
        }
        Some(false) => {
            println!(
                "FAILED: the stream's first {} events do not hash to the signed checkpoint root {}",
                cp.tree_size, cp.root_hash_b64
            );
            Ok(ExitCode::FAILURE)
        }
        None if from > 1 => {
            eprintln!("replay started at sequence {from}: roots are only recomputed from the beginning");
            Ok(ExitCode::SUCCESS)
        }
        None => {
            println!(
                "FAILED: the stream has {} events but the latest checkpoint covers {}",
                range.size(),
                cp.tree_size
            );
            Ok(ExitCode::FAILURE)
        }
    }
}

fn verify_one(keys: &KeyRing, key_id: &str, body: &[u8], sig: &[u8]) -> bool {
    keys.check(key_id, body, sig).is_ok()
}
