//! What the JetStream backend adds: the server refuses to delete or purge
//! the event stream, old servers are refused, and a stream without the
//! append-only settings is not silently used.

use async_nats::jetstream::ErrorCode;
use async_nats::jetstream::stream::{DeleteMessageErrorKind, PurgeErrorKind};
use spend_eventlog::jetstream::{JetStreamLog, check_server_version};
use spend_eventlog::{Append, EventLog, LogError};
use spend_testkit::Streams;

#[tokio::test]
async fn the_server_refuses_to_delete_or_purge_events() {
    let streams = Streams::new();
    let log = JetStreamLog::connect(streams.events.clone()).await.unwrap();
    log.append(Append::new(format!("{}.o.draft.d1", streams.events.subject_prefix), "m1", "x"))
        .await
        .unwrap();
    let stream = log.context().get_stream(&streams.events.stream).await.unwrap();
    let e = stream.delete_message(1).await.expect_err("delete refused");
    assert!(
        matches!(e.kind(), DeleteMessageErrorKind::JetStream(j) if j.error_code() == ErrorCode::STREAM_MESSAGE_DELETE_FAILED),
        "{e}"
    );
    let e = stream.purge().await.expect_err("purge refused");
    assert!(
        matches!(e.kind(), PurgeErrorKind::JetStream(j) if j.error_code() == ErrorCode::STREAM_PURGE_FAILED),
        "{e}"
    );
    assert_eq!(log.info().await.unwrap().last_seq, 1);
}

#[tokio::test]
async fn an_existing_stream_that_allows_deletes_is_refused() {
    let streams = Streams::new();
    let client = async_nats::connect(&streams.events.url).await.unwrap();
    let js = async_nats::jetstream::new(client.clone());
    js.create_stream(async_nats::jetstream::stream::Config {
        name: streams.events.stream.clone(),
        subjects: vec![format!("{}.>", streams.events.subject_prefix)],
        ..Default::default()
    })
    .await
    .unwrap();
    let err = JetStreamLog::with_client(client, streams.events.clone()).await.err().expect("refused");
    assert!(
        matches!(&err, LogError::Rejected(m) if m.contains("deny_delete is off") && m.contains("deny_purge is off")),
        "{err}"
    );
}

#[test]
fn server_versions_are_checked() {
    assert_eq!(check_server_version("2.9.10").unwrap(), (2, 9, 10));
    assert!(check_server_version("2.12.1-RC.2").is_ok());
    let err = check_server_version("2.8.4").unwrap_err();
    assert!(err.to_string().contains("too old"), "{err}");
    assert!(check_server_version("banana").is_err());
}

#[tokio::test]
async fn an_unreachable_server_is_reported_as_unavailable() {
    let mut cfg = Streams::new().events.clone();
    cfg.url = "nats://127.0.0.1:1".into();
    let err = JetStreamLog::connect(cfg).await.err().expect("unreachable");
    assert!(matches!(err, LogError::Unavailable(ref m) if m.contains("127.0.0.1:1")), "{err}");
}
