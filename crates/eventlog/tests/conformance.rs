//! The same conformance suite against both backends: the embedded log in a
//! fresh folder, and JetStream on its own stream.

use spend_eventlog::conformance as c;
use spend_eventlog::embedded::{EmbeddedConfig, EmbeddedLog};
use spend_eventlog::jetstream::JetStreamLog;
use spend_testkit::Streams;

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod embedded {
            use super::*;
            $(
                #[tokio::test]
                async fn $name() {
                    let dir = tempfile::tempdir().unwrap();
                    let log = EmbeddedLog::open(EmbeddedConfig::new(dir.path())).await.unwrap();
                    c::$name(&log, "spend.evt").await;
                }
            )*
        }
        mod jetstream {
            use super::*;
            $(
                #[tokio::test]
                async fn $name() {
                    let streams = Streams::new();
                    let log = JetStreamLog::connect(streams.events.clone()).await.expect("NATS with JetStream on the test URL");
                    c::$name(&log, &streams.events.subject_prefix).await;
                }
            )*
        }
    };
}

conformance!(
    appends_get_one_global_order,
    a_repeated_message_id_is_deduplicated,
    expected_subject_sequence_is_enforced,
    durable_consumers_resume_and_redeliver,
    replay_from_sequence_time_and_live,
    bad_subjects_are_refused,
);
