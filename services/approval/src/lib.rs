//! Approvals: approval requests for drafts that need a human, Slack and
//! email notifications with links, approver identity (passkeys), the
//! two-step approve-and-push page, and timeouts (which always deny).
//! Contract: proto/spendsignoff/v1/approval.proto.
//!
//! Built so far: the human-only gate in front of the approval routes
//! ([`routes`]). An agent credential presented there is refused and
//! audited; everything else needs a signed-in human's session, which
//! arrives with passkey sign-in. Until then every request is refused with
//! 401 — the routes approve nothing.
#![forbid(unsafe_code)]

pub mod routes;
