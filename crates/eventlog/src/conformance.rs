//! One conformance suite for every [`EventLog`] backend. Each backend's
//! tests call these functions with a fresh, empty log (its own stream or
//! folder), so both backends are held to the same semantics.

use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;

use crate::{Append, EventLog, LogError, StartAt};

fn msg(subject: &str, id: &str) -> Append {
    Append::new(subject, id, Bytes::from(format!("{{\"id\":\"{id}\"}}")))
}

/// Sequences start at 1 and follow append order across subjects; payloads
/// come back byte for byte.
pub async fn appends_get_one_global_order(log: &dyn EventLog, prefix: &str) {
    let a = log.append(msg(&format!("{prefix}.o.draft.a"), "m1")).await.unwrap();
    let b = log.append(msg(&format!("{prefix}.o.draft.b"), "m2")).await.unwrap();
    let c = log.append(msg(&format!("{prefix}.o.draft.a"), "m3")).await.unwrap();
    assert_eq!((a.seq, b.seq, c.seq), (1, 2, 3));
    assert!(!a.duplicate && !b.duplicate && !c.duplicate);
    let info = log.info().await.unwrap();
    assert_eq!(info.last_seq, 3);
    let got: Vec<_> = log.subscribe(StartAt::Beginning).await.unwrap().take(3).map(|m| m.unwrap()).collect().await;
    assert_eq!(got.iter().map(|m| m.seq).collect::<Vec<_>>(), vec![1, 2, 3]);
    assert_eq!(got[1].subject, format!("{prefix}.o.draft.b"));
    assert_eq!(&got[2].payload[..], b"{\"id\":\"m3\"}");
    assert_eq!(got[0].msg_id.as_deref(), Some("m1"));
}

/// A second append with the same message id is a duplicate, not a new message.
pub async fn a_repeated_message_id_is_deduplicated(log: &dyn EventLog, prefix: &str) {
    let s = format!("{prefix}.o.payment.p1");
    let first = log.append(msg(&s, "same")).await.unwrap();
    let again = log.append(msg(&s, "same")).await.unwrap();
    assert!(!first.duplicate);
    assert!(again.duplicate);
    assert_eq!(log.info().await.unwrap().last_seq, 1);
    // The same inside one pipelined batch.
    let batch = log.append_many(vec![msg(&s, "x"), msg(&s, "x"), msg(&s, "y")]).await;
    let acks: Vec<_> = batch.into_iter().map(|r| r.unwrap()).collect();
    assert!(!acks[0].duplicate && acks[1].duplicate && !acks[2].duplicate);
    assert_eq!(log.info().await.unwrap().last_seq, 3);
}

/// Expected-last-subject-sequence: exactly one of two racing writers wins.
pub async fn expected_subject_sequence_is_enforced(log: &dyn EventLog, prefix: &str) {
    let s = format!("{prefix}.o.budget.acct1");
    let other = format!("{prefix}.o.budget.acct2");
    let first = log.append(msg(&s, "b1").expect_last_subject_seq(0)).await.unwrap();
    // Another subject moving does not affect this one.
    log.append(msg(&other, "o1")).await.unwrap();
    let err = log.append(msg(&s, "b2").expect_last_subject_seq(0)).await.unwrap_err();
    assert!(matches!(err, LogError::WrongLastSequence { .. }), "{err:?}");
    let ok = log.append(msg(&s, "b3").expect_last_subject_seq(first.seq)).await.unwrap();
    assert_eq!(log.last_subject_seq(&s).await.unwrap(), ok.seq);
    let last = log.last_on_subject(&s).await.unwrap().expect("a message");
    assert_eq!(
        (last.seq, last.msg_id.as_deref(), &last.payload[..]),
        (ok.seq, Some("b3"), &b"{\"id\":\"b3\"}"[..])
    );
    assert!(log.last_on_subject(&format!("{prefix}.o.budget.none")).await.unwrap().is_none());
    assert_eq!(log.last_subject_seq(&format!("{prefix}.o.budget.none")).await.unwrap(), 0);

    // Racing writers that read the same state: one wins.
    let results = futures::future::join_all((0..8).map(|i| log.append(msg(&s, &format!("race{i}")).expect_last_subject_seq(ok.seq)))).await;
    let wins = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(wins, 1, "{results:?}");
    assert!(
        results
            .iter()
            .filter_map(|r| r.as_ref().err())
            .all(|e| matches!(e, LogError::WrongLastSequence { .. }))
    );
}

/// A durable consumer resumes after its last ack and redelivers the rest.
pub async fn durable_consumers_resume_and_redeliver(log: &dyn EventLog, prefix: &str) {
    let s = format!("{prefix}.o.draft.d");
    let msgs: Vec<_> = (0..10).map(|i| msg(&s, &format!("c{i}"))).collect();
    for r in log.append_many(msgs).await {
        r.unwrap();
    }
    let mut c = log.durable_consumer("projector", StartAt::Beginning).await.unwrap();
    let mut got = Vec::new();
    while got.len() < 6 {
        got.extend(c.fetch(6 - got.len(), Duration::from_secs(5)).await.unwrap());
    }
    assert_eq!(got.iter().map(|m| m.seq).collect::<Vec<_>>(), vec![1, 2, 3, 4, 5, 6]);
    c.ack_through(4).await.unwrap();
    drop(c);
    // Reopened (a restart): 5 and 6 were delivered but never acknowledged.
    let mut c = log.durable_consumer("projector", StartAt::Beginning).await.unwrap();
    let mut again = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while again.len() < 6 && tokio::time::Instant::now() < deadline {
        again.extend(c.fetch(6 - again.len(), Duration::from_secs(2)).await.unwrap());
    }
    assert_eq!(again.iter().map(|m| m.seq).collect::<Vec<_>>(), vec![5, 6, 7, 8, 9, 10]);
    c.ack_through(10).await.unwrap();
    // Nothing more arrives; a new message does.
    assert!(c.fetch(10, Duration::from_millis(300)).await.unwrap().is_empty());
    log.append(msg(&s, "late")).await.unwrap();
    let late = c.fetch(10, Duration::from_secs(5)).await.unwrap();
    assert_eq!(late.iter().map(|m| m.seq).collect::<Vec<_>>(), vec![11]);
}

/// Replay from a sequence and from a time; live messages follow.
pub async fn replay_from_sequence_time_and_live(log: &dyn EventLog, prefix: &str) {
    let s = format!("{prefix}.o.card.c");
    for i in 0..3 {
        log.append(msg(&s, &format!("r{i}"))).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mid = chrono::Utc::now();
    tokio::time::sleep(Duration::from_millis(50)).await;
    for i in 3..5 {
        log.append(msg(&s, &format!("r{i}"))).await.unwrap();
    }
    let from_seq: Vec<_> = log
        .subscribe(StartAt::Sequence(2))
        .await
        .unwrap()
        .take(4)
        .map(|m| m.unwrap().seq)
        .collect()
        .await;
    assert_eq!(from_seq, vec![2, 3, 4, 5]);
    let mut from_time = log.subscribe(StartAt::Time(mid)).await.unwrap();
    assert_eq!(from_time.next().await.unwrap().unwrap().seq, 4);
    assert_eq!(from_time.next().await.unwrap().unwrap().seq, 5);
    // Live: the subscription is waiting; a new append arrives on it.
    let appender = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        log.append(msg(&s, "live")).await.unwrap()
    };
    let (next, ack) = tokio::join!(tokio::time::timeout(Duration::from_secs(5), from_time.next()), appender);
    assert_eq!(next.expect("live message arrives").unwrap().unwrap().seq, ack.seq);
}

/// Bad requests get a clear refusal and store nothing.
pub async fn bad_subjects_are_refused(log: &dyn EventLog, prefix: &str) {
    let err = log.append(msg(&format!("{prefix}.o.*.x"), "w")).await.unwrap_err();
    assert!(matches!(err, LogError::Rejected(_)), "{err:?}");
    assert_eq!(log.info().await.unwrap().last_seq, 0);
}
