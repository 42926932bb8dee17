//! The stream itself: the server version accepted, the stream's
//! configuration (file storage, `deny_delete`, `deny_purge`, a duplicate
//! window), and an existing stream checked for those guarantees before it
//! is used, or created.

use std::time::Duration;

use async_nats::jetstream::context::CreateStreamErrorKind;
use async_nats::jetstream::{self, stream};

use super::MIN_SERVER_VERSION;
use crate::LogError;

/// Parses `major.minor.patch` (ignoring any suffix) and checks it.
pub fn check_server_version(version: &str) -> Result<(u64, u64, u64), LogError> {
    let mut parts = version.split(['.', '-', '+']).map(|p| p.parse::<u64>());
    let v = match (parts.next(), parts.next(), parts.next()) {
        (Some(Ok(a)), Some(Ok(b)), Some(Ok(c))) => (a, b, c),
        _ => return Err(LogError::Rejected(format!("cannot parse nats-server version {version:?}"))),
    };
    if v < MIN_SERVER_VERSION {
        let (a, b, c) = MIN_SERVER_VERSION;
        return Err(LogError::Rejected(format!(
            "nats-server {version} is too old: SpendSignoff needs {a}.{b}.{c} or newer (message dedup and expected-last-subject-sequence)"
        )));
    }
    Ok(v)
}

/// The stream config SpendSignoff requires.
pub fn stream_config(name: &str, subjects: Vec<String>, duplicate_window: Duration) -> stream::Config {
    stream::Config {
        name: name.to_string(),
        subjects,
        storage: stream::StorageType::File,
        deny_delete: true,
        deny_purge: true,
        duplicate_window,
        max_age: Duration::ZERO,
        num_replicas: 1,
        allow_direct: true,
        ..Default::default()
    }
}

/// Finds the stream and checks that it keeps the append-only guarantees,
/// without any right to create it (a service user's case).
pub async fn existing_stream(js: &jetstream::Context, config: &stream::Config) -> Result<stream::Stream, LogError> {
    use async_nats::jetstream::context::GetStreamErrorKind;
    let name = &config.name;
    match js.get_stream(name).await {
        Ok(mut s) => {
            check_stream(&mut s, config).await?;
            Ok(s)
        }
        Err(e) => match e.kind() {
            GetStreamErrorKind::JetStream(j) if j.code() == 404 => Err(LogError::Rejected(format!(
                "stream {name} does not exist: create it (and the consumers) with `spend nats init` as the NATS admin user"
            ))),
            _ => Err(LogError::Unavailable(format!(
                "stream {name}: {e} (is this user allowed $JS.API.STREAM.INFO.{name}? see k8s/nats/auth.conf)"
            ))),
        },
    }
}

async fn check_stream(s: &mut stream::Stream, config: &stream::Config) -> Result<(), LogError> {
    let name = config.name.clone();
    {
        {
            let c = &s.info().await.map_err(|e| LogError::Unavailable(format!("stream {name} info: {e}")))?.config;
            let mut problems = Vec::new();
            if !c.deny_delete {
                problems.push("deny_delete is off");
            }
            if !c.deny_purge {
                problems.push("deny_purge is off");
            }
            if c.storage != stream::StorageType::File {
                problems.push("storage is not file");
            }
            if !c.max_age.is_zero() || c.max_messages > 0 || c.max_bytes > 0 {
                problems.push("it has age or size limits that would drop events");
            }
            if !problems.is_empty() {
                return Err(LogError::Rejected(format!(
                    "existing stream {name} is not append-only: {}; fix it (deny_delete/deny_purge cannot be turned off once on, but can be turned on) or use another stream name",
                    problems.join(", ")
                )));
            }
            for subject in &config.subjects {
                if !c.subjects.contains(subject) {
                    return Err(LogError::Rejected(format!(
                        "existing stream {name} does not capture subject {subject} (it has {:?})",
                        c.subjects
                    )));
                }
            }
            Ok(())
        }
    }
}

/// Creates the stream, or checks that an existing one keeps the append-only
/// guarantees (file storage, deny_delete, deny_purge, no age limit). Needs
/// the right to create streams: `spend nats init`, development, tests.
pub async fn ensure_stream(js: &jetstream::Context, config: stream::Config) -> Result<stream::Stream, LogError> {
    let name = config.name.clone();
    match js.get_stream(&name).await {
        Ok(mut s) => {
            check_stream(&mut s, &config).await?;
            Ok(s)
        }
        Err(_) => match js.create_stream(config).await {
            Ok(s) => Ok(s),
            Err(e) => match e.kind() {
                // Created concurrently by another replica: use it.
                CreateStreamErrorKind::JetStream(_) => js
                    .get_stream(&name)
                    .await
                    .map_err(|e2| LogError::Rejected(format!("creating stream {name}: {e}; then {e2}"))),
                CreateStreamErrorKind::TimedOut | CreateStreamErrorKind::JetStreamUnavailable => {
                    Err(LogError::Unavailable(format!("creating stream {name}: {e}")))
                }
                _ => Err(LogError::Rejected(format!("creating stream {name}: {e}"))),
            },
        },
    }
}
