//! A Slack incoming webhook for tests: an HTTP receiver on loopback that
//! records every post (its time and JSON body) and answers each with the
//! next scripted status (then 200), so a test can make it say 429 with
//! `Retry-After`, or fail.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;

/// One post received.
#[derive(Debug, Clone)]
pub struct Post {
    pub at: Instant,
    pub path: String,
    pub body: serde_json::Value,
}

#[derive(Default)]
struct Shared {
    posts: Vec<Post>,
    /// (status, Retry-After seconds) to answer next.
    script: VecDeque<(u16, Option<u64>)>,
}

pub struct Webhook {
    pub url: String,
    shared: Arc<Mutex<Shared>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Webhook {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Webhook {
    /// Listens on a free loopback port; the URL has a secret-looking path,
    /// as Slack's do.
    pub async fn start() -> Self {
        let shared = Arc::new(Mutex::new(Shared::default()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a free port");
        let addr = listener.local_addr().expect("an address");
        let app = axum::Router::new().fallback(receive).with_state(shared.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            url: format!("http://{addr}/services/T0TEST/B0TEST/{}", crate::unique()),
            shared,
            task,
        }
    }

    /// The next answers, in order: (status, Retry-After seconds).
    pub fn answer(&self, script: &[(u16, Option<u64>)]) {
        self.shared.lock().unwrap().script.extend(script.iter().copied());
    }

    pub fn posts(&self) -> Vec<Post> {
        self.shared.lock().unwrap().posts.clone()
    }

    /// Waits up to `within` until `n` posts arrived; returns them all.
    pub async fn wait_for(&self, n: usize, within: Duration) -> Vec<Post> {
        let deadline = Instant::now() + within;
        loop {
            let p = self.posts();
            if p.len() >= n || Instant::now() > deadline {
                return p;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn receive(
    State(shared): State<Arc<Mutex<Shared>>>,
    uri: axum::http::Uri,
    _headers: HeaderMap,
    Json(body): Json<serde_json::Value>,
) -> impl IntoResponse {
    let mut s = shared.lock().unwrap();
    s.posts.push(Post {
        at: Instant::now(),
        path: uri.path().to_string(),
        body,
    });
    match s.script.pop_front() {
        Some((status, retry_after)) => {
            let mut h = HeaderMap::new();
            if let Some(secs) = retry_after {
                h.insert("retry-after", secs.to_string().parse().unwrap());
            }
            (StatusCode::from_u16(status).unwrap(), h, "rate_limited").into_response()
        }
        None => (StatusCode::OK, "ok").into_response(),
    }
}
