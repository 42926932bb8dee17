//! `spend nats init`: creates what the services use on NATS — the event
//! and ledger streams (append-only: file storage, deny_delete, deny_purge,
//! a duplicate window) and every durable pull consumer a service reads —
//! so that no service user needs the right to create a stream or a
//! consumer (k8s/nats/auth.conf grants none). Run it once, and again after
//! an upgrade, as the NATS `admin` user (SPEND__NATS__USER /
//! SPEND__NATS__PASSWORD); the chart runs it as a job. It is idempotent:
//! what exists is checked, not changed.

use std::process::ExitCode;

use anyhow::Context;
use async_nats::jetstream::consumer::{DeliverPolicy, pull};
use spend_eventlog::jetstream::{self, JetStreamConfig};

use crate::config::SpendConfig;

async fn ensure_consumer(js: &async_nats::jetstream::Context, config: &JetStreamConfig, name: &str) -> anyhow::Result<&'static str> {
    let stream = js.get_stream(&config.stream).await.with_context(|| format!("stream {}", config.stream))?;
    if stream.consumer_info(name).await.is_ok() {
        return Ok("present");
    }
    stream
        .get_or_create_consumer::<pull::Config>(name, jetstream::durable_config(name, DeliverPolicy::All, config))
        .await
        .with_context(|| format!("creating consumer {name} on {}", config.stream))?;
    Ok("created")
}

pub async fn init(config: SpendConfig) -> anyhow::Result<ExitCode> {
    let events = JetStreamConfig {
        manage: true,
        ..config.nats.clone()
    };
    let client = jetstream::connect_client(&events).await.context("connecting to NATS")?;
    let log = jetstream::JetStreamLog::with_client(client.clone(), events.clone())
        .await
        .with_context(|| format!("creating or checking stream {}", events.stream))?;
    println!("stream {} (subjects {}.>): ready", events.stream, events.subject_prefix);
    let ledger = JetStreamConfig {
        manage: true,
        ..config.ledger_stream()
    };
    jetstream::JetStreamLog::with_client(client.clone(), ledger.clone())
        .await
        .with_context(|| format!("creating or checking stream {}", ledger.stream))?;
    println!("stream {} (subjects {}.>): ready", ledger.stream, ledger.subject_prefix);
    let js = log.context().clone();
    for (service, name) in [("ledger", config.ledger.consumer.as_str()), ("policy", config.policy.consumer.as_str())] {
        let what = ensure_consumer(&js, &events, name).await?;
        println!("consumer {name} on {} (the {service} service): {what}", events.stream);
    }
    Ok(ExitCode::SUCCESS)
}
