//! `spend account connect|list|disconnect`: connected accounts, through the
//! executor (the only holder of their tokens).
//!
//! `connect` asks the executor for the platform's consent page (read
//! access only), prints it for a human to open, and listens on a loopback
//! port for the platform to send the human back — the native-app redirect
//! of RFC 8252 — then hands the code to the executor, which exchanges it
//! and seals the tokens. No token passes through this process.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use spend_platform::Connect;
use spend_platform::grpc::ExecutorClient;

use crate::AccountCommand;
use crate::config::SpendConfig;

fn client(config: &SpendConfig, url: Option<&str>) -> anyhow::Result<ExecutorClient> {
    let url = url.unwrap_or(&config.gateway.executor_url);
    ExecutorClient::connect_lazy(url, config.internal.token()).map_err(|e| anyhow::anyhow!("the executor at {url}: {e}"))
}

fn show(a: &spend_platform::AccountHealth) -> String {
    let mut line = format!("{:<12} {:<8} {:<13} {}", a.account_id, a.platform, a.status, a.scopes.join(" "));
    if let Some(t) = a.consent_expires_at {
        line.push_str(&format!("  (consent until {})", t.format("%Y-%m-%d")));
    }
    if let Some(p) = &a.problem {
        line.push_str(&format!("  {p}"));
    }
    line
}

pub async fn run(config: SpendConfig, command: AccountCommand) -> anyhow::Result<ExitCode> {
    match command {
        AccountCommand::Connect {
            org,
            platform,
            account,
            executor_url,
            timeout_minutes,
        } => {
            if platform != "sandbox" {
                anyhow::bail!("--platform {platform:?}: this executor connects `sandbox` accounts");
            }
            let executor = client(&config, executor_url.as_deref())?;
            // The platform sends the human back here (loopback, any port).
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .context("a loopback port for the platform's callback")?;
            let redirect = format!("http://127.0.0.1:{}/callback", listener.local_addr()?.port());
            let begun = executor
                .begin(&org, account.as_deref(), None, &redirect, "connect")
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            eprintln!("Open this page to connect an account of {org} (read access only; write is asked for when an approved change needs it):\n");
            println!("{}", begun.authorize_url);
            eprintln!(
                "\nWaiting for the platform to send you back (until {}; Ctrl-C stops)…",
                begun.expires_at.format("%H:%M UTC")
            );
            let wait = Duration::from_secs(u64::from(timeout_minutes.max(1)) * 60);
            let (state, outcome) = tokio::time::timeout(wait, callback(listener))
                .await
                .map_err(|_| anyhow::anyhow!("nobody came back from the consent page within {timeout_minutes} minutes; run it again"))??;
            let result = executor
                .complete(&state, outcome.as_ref().map(String::as_str).map_err(|(e, d)| (e.as_str(), d.as_str())))
                .await;
            match result {
                Ok(a) => {
                    eprintln!("connected {} for {org}: {}", a.account_id, a.scopes.join(" "));
                    println!("{}", show(&a));
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    eprintln!("not connected: {e}");
                    Ok(ExitCode::from(1))
                }
            }
        }
        AccountCommand::List { org, executor_url, json } => {
            let list = client(&config, executor_url.as_deref())?.list(&org).await.map_err(|e| anyhow::anyhow!("{e}"))?;
            if json {
                for a in &list {
                    println!("{}", serde_json::to_string(a)?);
                }
            } else if list.is_empty() {
                eprintln!("no account is connected for {org}: `spend account connect --org {org} --platform sandbox`");
            } else {
                println!("{:<12} {:<8} {:<13} scopes", "account", "platform", "status");
                for a in &list {
                    println!("{}", show(a));
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        AccountCommand::Disconnect { account_id, org, executor_url } => {
            let a = client(&config, executor_url.as_deref())?
                .disconnect(&org, &account_id, "the operator (spend account disconnect)")
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            eprintln!("{} of {org}: {}", a.account_id, a.problem.clone().unwrap_or_else(|| a.status.clone()));
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// What the platform sends back.
type Outcome = Result<String, (String, String)>;

/// Serves one callback on `listener`: (state, the code or the error).
async fn callback(listener: tokio::net::TcpListener) -> anyhow::Result<(String, Outcome)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    loop {
        let (mut stream, _) = listener.accept().await?;
        let mut buf = vec![0u8; 16 * 1024];
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf)).await.unwrap_or(Ok(0))?;
        let head = String::from_utf8_lossy(&buf[..n]);
        let target = head.lines().next().and_then(|l| l.split_whitespace().nth(1)).unwrap_or_default().to_string();
        let Ok(url) = reqwest::Url::parse(&format!("http://127.0.0.1{target}")) else {
            continue;
        };
        if url.path() != "/callback" {
            let _ = stream
                .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                .await;
            continue;
        }
        let param = |k: &str| url.query_pairs().find(|(n, _)| n == k).map(|(_, v)| v.into_owned());
        let Some(state) = param("state") else { continue };
        let outcome = match (param("code"), param("error")) {
            (Some(code), _) => Ok(code),
            (None, Some(e)) => Err((e, param("error_description").unwrap_or_default())),
            (None, None) => Err(("invalid_request".into(), "the platform sent neither a code nor an error".into())),
        };
        let body = match &outcome {
            Ok(_) => {
                "<!DOCTYPE html><title>SpendSignoff</title><p>Back from the platform. The terminal says whether the account is connected; you can close this tab.</p>"
            }
            Err(_) => "<!DOCTYPE html><title>SpendSignoff</title><p>The platform did not grant access. The terminal says why; you can close this tab.</p>",
        };
        let response = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = stream.write_all(response.as_bytes()).await;
        return Ok((state, outcome));
    }
}
