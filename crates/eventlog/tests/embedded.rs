//! Durability of the embedded log: history survives a reopen, a torn final
//! record (a crash mid-write) is cut away, corruption elsewhere is refused,
//! and a second process cannot open the same log.

use std::io::Write;

use futures::StreamExt;
use spend_eventlog::embedded::{EmbeddedConfig, EmbeddedLog};
use spend_eventlog::{Append, EventLog, LogError, StartAt};

async fn fill(dir: &std::path::Path, n: usize) {
    let log = EmbeddedLog::open(EmbeddedConfig::new(dir)).await.unwrap();
    for i in 0..n {
        log.append(Append::new(format!("spend.evt.o.draft.d{i}"), format!("id{i}"), format!("payload {i}")))
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn history_survives_a_reopen_with_dedup_and_subject_sequences() {
    let dir = tempfile::tempdir().unwrap();
    fill(dir.path(), 5).await;
    let log = EmbeddedLog::open(EmbeddedConfig::new(dir.path())).await.unwrap();
    assert_eq!(log.info().await.unwrap().last_seq, 5);
    assert!(log.append(Append::new("spend.evt.o.draft.d1", "id1", "again")).await.unwrap().duplicate);
    assert_eq!(log.last_subject_seq("spend.evt.o.draft.d3").await.unwrap(), 4);
    let all: Vec<_> = log.subscribe(StartAt::Beginning).await.unwrap().take(5).map(|m| m.unwrap()).collect().await;
    assert_eq!(&all[4].payload[..], b"payload 4");
}

#[tokio::test]
async fn a_record_torn_by_a_crash_is_cut_away_and_the_rest_kept() {
    let dir = tempfile::tempdir().unwrap();
    fill(dir.path(), 3).await;
    let path = dir.path().join("events.log");
    let full = std::fs::metadata(&path).unwrap().len();
    // Half of a fourth record, as a crash mid-write leaves it.
    let mut f = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
    f.write_all(&[200, 0, 0, 0, 1, 2, 3, 4, 5]).unwrap();
    drop(f);
    let log = EmbeddedLog::open(EmbeddedConfig::new(dir.path())).await.unwrap();
    assert_eq!(log.info().await.unwrap().last_seq, 3);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), full);
    assert_eq!(log.append(Append::new("spend.evt.o.draft.x", "new", "p")).await.unwrap().seq, 4);
}

#[tokio::test]
async fn corruption_inside_the_log_is_refused_not_dropped() {
    let dir = tempfile::tempdir().unwrap();
    fill(dir.path(), 3).await;
    let path = dir.path().join("events.log");
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[30] ^= 0xff; // inside the first record
    std::fs::write(&path, bytes).unwrap();
    let err = EmbeddedLog::open(EmbeddedConfig::new(dir.path())).await.err().expect("corruption is an error");
    assert!(matches!(err, LogError::Corrupt(ref m) if m.contains("offset 0")), "{err:?}");
}

#[tokio::test]
async fn a_second_opener_is_refused_while_the_log_is_in_use() {
    let dir = tempfile::tempdir().unwrap();
    let _first = EmbeddedLog::open(EmbeddedConfig::new(dir.path())).await.unwrap();
    let err = EmbeddedLog::open(EmbeddedConfig::new(dir.path())).await.err().expect("second open refused");
    assert!(err.to_string().contains("in use"), "{err}");
}
