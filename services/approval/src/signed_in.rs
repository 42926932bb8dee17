//! The approval app as a service that reaches humans through its sign-in
//! sees it ([`spend_pages::SignedIn`]): MCP sign-in asks who is signed in,
//! has its POSTs checked and its attempts limited here, and nothing more.

use std::net::SocketAddr;

use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use spend_draft::approvers::Role;
use spend_pages::{Human, SignedIn};

use crate::web::app::{App, Session, who};

fn human(s: &Session) -> Human {
    Human {
        org: s.org.clone(),
        approver_id: s.approver_id.clone(),
        admin: s.role == Role::Admin,
        csrf: s.csrf.clone(),
        label: who(s),
    }
}

#[async_trait::async_trait]
impl SignedIn for App {
    async fn human(&self, headers: &HeaderMap) -> Option<Human> {
        self.session(headers).await.as_ref().map(human)
    }

    async fn checked(&self, headers: &HeaderMap, peer: SocketAddr, csrf: Option<&str>) -> Result<Human, Response> {
        match App::checked(self, headers, peer, csrf).await {
            Ok(s) => Ok(human(&s)),
            Err(refused) => Err(refused.into_response()),
        }
    }

    async fn throttle(&self, peer: SocketAddr, what: &'static str) -> Result<(), Response> {
        App::throttle(self, peer, what).await.map_err(IntoResponse::into_response)
    }

    async fn stands(&self, org: &str, approver_id: &str) -> bool {
        self.book
            .read()
            .await
            .approvers
            .approver(org, approver_id)
            .is_some_and(|a| a.removed_at.is_none())
    }
}
