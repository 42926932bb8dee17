//! The test-control routes (`/sandbox/…`): faults, revocations, applied
//! writes, issued tokens and campaign edits. They exist only where a test or
//! `spend dev` enables them, and then answer only a loopback caller with the
//! control token ([`control_guard`]).

use super::*;

/// What the platform applied (test control).
/// The test-control routes' gate: absent (404) unless enabled; then a
/// loopback peer only (403), with the control token (401).
pub(crate) async fn control_guard(State(sb): State<Sandbox>, req: Request, next: Next) -> Response {
    let Some(token) = sb.inner.control.get() else {
        return error(StatusCode::NOT_FOUND, "not_found", "no such route").into_response();
    };
    let peer = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    if !peer.is_some_and(|ip| ip.is_loopback() || ip.to_canonical().is_loopback()) {
        return error(StatusCode::FORBIDDEN, "forbidden", "test control answers this machine only").into_response();
    }
    let presented = req.headers().get(CONTROL_HEADER).and_then(|v| v.to_str().ok()).unwrap_or_default();
    // Digests compared, so the time taken says nothing of the token.
    if Sha256::digest(presented.as_bytes()) != Sha256::digest(token.as_bytes()) {
        return error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            format!("test control needs its token in {CONTROL_HEADER}"),
        )
        .into_response();
    }
    next.run(req).await
}

pub(crate) async fn applied(State(sb): State<Sandbox>) -> Response {
    Json(sb.applied_json()).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Edit {
    pub(crate) daily_budget_minor: Option<i64>,
    pub(crate) status: Option<String>,
}

/// Someone edits a campaign in the platform's own interface (test control).
pub(crate) async fn edit_campaign(State(sb): State<Sandbox>, Path(id): Path<String>, Json(e): Json<Edit>) -> Response {
    let mut all = sb.inner.campaigns.lock().expect("campaign lock");
    let Some(c) = all.iter_mut().find(|c| c.id == id) else {
        return error(StatusCode::NOT_FOUND, "not_found", format!("no campaign {id}")).into_response();
    };
    if let Some(b) = e.daily_budget_minor {
        c.daily_budget_minor = b;
    }
    if let Some(s) = e.status {
        c.status = s;
    }
    c.updated_at = Utc::now();
    Json(c.clone()).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RevokeAccount {
    pub(crate) account_id: String,
}

/// Every code and token issued (test control, for leak searches).
pub(crate) async fn issued(State(sb): State<Sandbox>) -> Response {
    Json(serde_json::json!({"issued": sb.inner.oauth.lock().expect("oauth lock").issued()})).into_response()
}

/// The account's owner revokes every client's access in the platform's
/// settings.
pub(crate) async fn revoke_account(State(sb): State<Sandbox>, Json(r): Json<RevokeAccount>) -> Response {
    let n = sb.inner.oauth.lock().expect("oauth lock").revoke_account(&r.account_id);
    Json(serde_json::json!({"revoked_grants": n})).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FaultRequest {
    #[serde(default)]
    pub(crate) fail_next: u32,
    #[serde(default = "default_fault_status")]
    pub(crate) status: u16,
    #[serde(default)]
    pub(crate) retry_after: Option<u64>,
    #[serde(default)]
    pub(crate) writes_only: bool,
    #[serde(default)]
    pub(crate) delay_next: u32,
    #[serde(default)]
    pub(crate) delay_ms: u64,
    #[serde(default)]
    pub(crate) random: Option<RandomFaults>,
}

pub(crate) fn default_fault_status() -> u16 {
    503
}

pub(crate) async fn faults(State(sb): State<Sandbox>, Json(f): Json<FaultRequest>) -> Response {
    *sb.inner.faults.lock().expect("fault lock") = Faults {
        fail_next: f.fail_next,
        status: f.status,
        retry_after: f.retry_after,
        writes_only: f.writes_only,
        delay_next: f.delay_next,
        delay_ms: f.delay_ms,
        random: f.random.map(|r| (r, r.seed)),
        disturbed: Disturbed::default(),
    };
    StatusCode::NO_CONTENT.into_response()
}
