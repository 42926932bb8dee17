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
