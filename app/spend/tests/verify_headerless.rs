//! `spend ledger verify` on an export in the pinned format of DESIGN.md:
//! event and checkpoint lines only, no header line and no leaf hashes,
//! written by tests/scripts/pinned_export.py, which uses only Python's
//! standard library, hashlib and `cryptography` (none of SpendSignoff's
//! code): its own envelopes, RFC 6962 leaves and roots, C2SP checkpoint
//! bodies and a P-256 key it generates.

use std::path::Path;
use std::process::{Command, Output};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

const SPEND: &str = env!("CARGO_BIN_EXE_spend");
const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/scripts/pinned_export.py");

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `spend ledger verify FILE --public-key KEY [extra]`, with a clean
/// environment.
fn verify(file: &Path, key: &Path, extra: &[&str]) -> Output {
    let mut c = Command::new(SPEND);
    for (k, _) in std::env::vars() {
        if k.starts_with("SPEND") || k.starts_with("AWS_") {
            c.env_remove(k);
        }
    }
    c.args(["ledger", "verify"])
        .arg(file)
        .arg("--public-key")
        .arg(key)
        .args(extra)
        .output()
        .expect("runs spend")
}

/// Runs the independent writer into `dir`: export.jsonl, key.pem and its
/// summary. Fails (never skips) without python3 or `cryptography`.
fn pinned_export(dir: &Path) -> serde_json::Value {
    match Command::new("python3")
        .args(["-c", "import hashlib, cryptography.hazmat.primitives.asymmetric.ec"])
        .output()
    {
        Err(e) => panic!("python3 was not found ({e}): this test runs tests/scripts/pinned_export.py; run scripts/test.sh"),
        Ok(o) if !o.status.success() => panic!(
            "python3 cannot import the package `cryptography`, which tests/scripts/pinned_export.py needs: run scripts/test.sh, which installs it\n{}",
            text(&o.stderr)
        ),
        Ok(_) => {}
    }
    let out = Command::new("python3").arg(SCRIPT).arg(dir).output().expect("python3 runs");
    assert!(out.status.success(), "pinned_export.py failed: {}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out.stdout)))
}

/// The export with byte `at` of event `index`'s decoded payload flipped.
fn flip_payload_byte(export: &str, index: u64, at: usize) -> String {
    let mut out = String::new();
    for line in export.lines() {
        let mut v: serde_json::Value = serde_json::from_str(line).unwrap();
        if v["kind"] == "event" && v["index"] == index {
            let mut payload = B64.decode(v["payload_b64"].as_str().unwrap()).unwrap();
            payload[at] ^= 0x01;
            v["payload_b64"] = B64.encode(&payload).into();
            out.push_str(&serde_json::to_string(&v).unwrap());
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

#[test]
fn a_headerless_export_from_an_independent_python_writer_verifies_and_a_flipped_payload_byte_is_named_by_index() {
    let dir = tempfile::tempdir().unwrap();
    let summary = pinned_export(dir.path());
    let (export, key) = (dir.path().join("export.jsonl"), dir.path().join("key.pem"));
    let original = std::fs::read_to_string(&export).unwrap();
    assert!(
        original
            .lines()
            .all(|l| l.starts_with(r#"{"kind":"event","#) || l.starts_with(r#"{"kind":"checkpoint","#)),
        "event and checkpoint lines only:\n{original}"
    );
    assert_eq!(summary["events"], 9);

    // Verifies, and says what it could not check without the header.
    let out = verify(&export, &key, &[]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.starts_with("OK: 9 events (indexes 0..=8), 3 signed checkpoints, origin \"auditor.example/pinned-ledger\", tree size 9, root "),
        "{stdout}"
    );
    assert!(stdout.contains(summary["root_b64"].as_str().unwrap()), "the script's own root: {stdout}");
    assert!(stdout.contains("NOTE: the export has no header line"), "{stdout}");
    assert!(stdout.contains("the subject-prefix binding"), "{stdout}");
    assert!(stdout.contains(r#""spend.evt" (inferred from the export itself"#), "{stdout}");
    assert!(stdout.contains("the export format"), "{stdout}");

    let out = verify(&export, &key, &["--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (&v["ok"], &v["header"], &v["subject_prefix"]),
        (&true.into(), &false.into(), &"spend.evt".into()),
        "{v}"
    );
    assert_eq!(v["root_b64"], summary["root_b64"]);
    assert_eq!(v["unchecked"].as_array().unwrap().len(), 2, "{v}");

    // One byte of the export flipped inside event 5's payload: the first
    // base64 character, so the payload's opening `{` is no longer JSON.
    let line = original.lines().find(|l| l.contains(r#""index":5,"#)).unwrap();
    let at = original.find(line).unwrap() + line.find(r#""payload_b64":""#).unwrap() + r#""payload_b64":""#.len();
    let mut bytes = original.clone().into_bytes();
    assert_eq!(bytes[at], b'e');
    bytes[at] = b'f';
    let tampered = dir.path().join("tampered.jsonl");
    std::fs::write(&tampered, &bytes).unwrap();
    let out = verify(&tampered, &key, &[]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("FAILED: first bad index 5 (line 7)"), "{stdout}");
    assert!(stdout.contains("not marked rejected"), "{stdout}");

    // The org of event 5 changed by one bit ("globex" → "flobex"): still a
    // valid envelope, but not on its own subject; named by index.
    let payload = B64
        .decode(serde_json::from_str::<serde_json::Value>(line).unwrap()["payload_b64"].as_str().unwrap())
        .unwrap();
    let org = payload.windows(14).position(|w| w == br#""org":"globex""#).unwrap() + 7;
    std::fs::write(&tampered, flip_payload_byte(&original, 5, org)).unwrap();
    let out = verify(&tampered, &key, &[]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("FAILED: first bad index 5 (line 7)"), "{stdout}");
    assert!(stdout.contains("own org/aggregate subject"), "{stdout}");
}

/// Every single flipped byte of every event line of the headerless export
/// fails verification and names that event, or, when the change leaves a
/// valid event on its subject (the pinned format has no `leaf_hash_b64` to
/// pin it), the first index of the checkpoint range that covers it.
#[test]
fn every_flipped_byte_of_a_headerless_exports_events_is_caught_and_named() {
    let dir = tempfile::tempdir().unwrap();
    pinned_export(dir.path());
    let bytes = std::fs::read(dir.path().join("export.jsonl")).unwrap();
    let mut keys = spend_ledger::verify::KeyRing::default();
    keys.add_pem(&std::fs::read_to_string(dir.path().join("key.pem")).unwrap()).unwrap();
    let report = spend_ledger::verify::verify(&bytes[..], &keys, |_| {}).expect("the untouched export verifies");
    assert!(!report.header);
    assert_eq!(report.subject_prefix.as_deref(), Some("spend.evt"));

    // (start, end, index, range start, range end) of each event line.
    let mut spans = Vec::new();
    let (mut at, mut covered, mut pending) = (0usize, 0u64, Vec::new());
    for line in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let v: serde_json::Value = serde_json::from_slice(line).unwrap();
        if v["kind"] == "event" {
            pending.push((at, at + line.len() + 1, v["index"].as_u64().unwrap()));
        } else {
            let size: u64 = v["body"].as_str().unwrap().split('\n').nth(1).unwrap().parse().unwrap();
            spans.extend(pending.drain(..).map(|(s, e, i)| (s, e, i, covered, size - 1)));
            covered = size;
        }
        at += line.len() + 1;
    }
    let (mut exact, mut by_range) = (0, 0);
    for (start, end, i, lo, hi) in spans {
        for pos in start..end {
            let mut t = bytes.clone();
            t[pos] ^= 0x01;
            let f = spend_ledger::verify::verify(&t[..], &keys, |_| {})
                .err()
                .unwrap_or_else(|| panic!("flipping byte {pos} (event {i}) must fail verification"));
            if f.index == Some(i) {
                exact += 1;
            } else {
                assert_eq!(f.index, Some(lo), "byte {pos} in event {i}: {f}");
                assert!(f.reason.contains(&format!("one of indexes {lo}..{hi}")), "byte {pos} in event {i}: {f}");
                by_range += 1;
            }
        }
    }
    assert!(exact > 0 && by_range > 0, "{exact} named exactly, {by_range} by checkpoint range");
}
