//! One valid sample of every event type, for the schema conformance test
//! (each against its JSON Schema under schemas/events/) and for tests that
//! need a well-formed event of a kind.

use crate::money::Money;

use super::*;

/// One valid sample of every event type, for schema conformance tests.
#[doc(hidden)]
pub fn samples() -> Vec<EventData> {
    [part_1(), part_2(), part_3(), part_4(), part_5()].concat()
}

fn usd(minor_units: i64) -> Money {
    Money::new(minor_units, "USD").unwrap()
}

fn diff() -> Vec<FieldDiff> {
    vec![FieldDiff {
        path: "campaign/c1/daily_budget".into(),
        before: serde_json::json!({"minor_units": 5000, "currency": "USD"}),
        after: serde_json::json!({"minor_units": 7500, "currency": "USD"}),
    }]
}

fn part_1() -> Vec<EventData> {
    vec![
        EventData::DraftProposed(DraftProposed {
            draft_id: "d1".into(),
            account_id: "act_1".into(),
            kind: "budget".into(),
            diff: diff(),
            spend_impact: usd(2500),
            rationale: "ROAS is 4x".into(),
            drafted_against: Some("2026-01-01T00:00:00Z".into()),
            change: DraftChange::Campaign {
                campaign_id: "c1".into(),
                field: "budget".into(),
                daily_budget_before: usd(5000),
                daily_budget_after: usd(7500),
                status_before: "active".into(),
                status_after: "active".into(),
                bid_before: None,
                bid_after: None,
            },
        }),
        EventData::PolicyEvaluated(PolicyEvaluated {
            draft_id: "d1".into(),
            outcome: Outcome::RequireApproval,
            reasons: vec![Reason {
                code: "approval.threshold".into(),
                message: "over 25 USD".into(),
            }],
            policy_version: "sha256:00".into(),
        }),
        EventData::ApprovalGranted(ApprovalGranted {
            draft_id: "d1".into(),
            approval_id: "a1".into(),
            step: 1,
            credential_id: "cred".into(),
            approver_id: "u_alice".into(),
            approved_hash: "ab".repeat(32),
            proof: ApprovalProof {
                approval_id: "a1".into(),
                draft_id: "d1".into(),
                approved_hash: "ab".repeat(32),
                policy_version: "sha256:00".into(),
                expires_at: "2026-11-21T12:15:00Z".into(),
                approver_id: "u_alice".into(),
                credential_id: "cred".into(),
                authenticator_data: "AAAA".into(),
                client_data_json: "e30".into(),
                signature: "MEUC".into(),
            },
        }),
        EventData::ApprovalRequested(ApprovalRequested {
            draft_id: "d1".into(),
            kind: "draft".into(),
            approved_hash: "ab".repeat(32),
            policy_version: "sha256:00".into(),
            required: 1,
            expires_at: "2026-11-21T12:15:00Z".into(),
            timeout_action: "deny".into(),
            link_token_sha256: "cd".repeat(32),
        }),
        EventData::ApprovalExpired(ApprovalExpired {
            draft_id: "d1".into(),
            action: "deny".into(),
            approvals: 0,
            required: 1,
        }),
        EventData::ApprovalEscalated(ApprovalEscalated {
            draft_id: "d1".into(),
            previous_expires_at: "2026-11-21T12:15:00Z".into(),
            expires_at: "2026-11-21T12:30:00Z".into(),
            channel: "email".into(),
        }),
        EventData::NotificationAttempted(NotificationAttempted {
            notice_id: "0a".repeat(16),
            source_event_id: "01937e6a-0000-7000-8000-000000000001".into(),
            kind: "transaction.pending_approval".into(),
            channel: "slack".into(),
            target: "alerts".into(),
            attempt: 1,
            replica: "r-1f2e".into(),
        }),
        EventData::NotificationSent(NotificationSent {
            notice_id: "0a".repeat(16),
            channel: "slack".into(),
            target: "alerts".into(),
            tries: 2,
            detail: "HTTP 200".into(),
        }),
        EventData::NotificationFailed(NotificationFailed {
            notice_id: "0b".repeat(16),
            channel: "email".into(),
            target: "security@acme.example".into(),
            tries: 6,
            reason: "SMTP 451: try again later".into(),
        }),
    ]
}

fn part_2() -> Vec<EventData> {
    vec![
        EventData::CardCreated(CardCreated {
            card_id: "card_9".into(),
            account_id: "act_1".into(),
            last4: "4242".into(),
            label: "openai.com credits".into(),
            spend_limit: Some(usd(5000)),
        }),
        EventData::AccountConnected(AccountConnected {
            platform: "sandbox".into(),
            account_id: "act_1001".into(),
            kind: "ads".into(),
            scopes: vec!["ads.read".into()],
            access_expires_at: "2026-11-21T13:00:00Z".into(),
            consent_expires_at: Some("2027-01-20T12:00:00Z".into()),
            purpose: "connect".into(),
            draft_id: None,
        }),
        EventData::AccountRefreshed(AccountRefreshed {
            platform: "sandbox".into(),
            account_id: "act_1001".into(),
            access_expires_at: "2026-11-21T14:00:00Z".into(),
        }),
        EventData::AccountDisconnected(AccountDisconnected {
            platform: "sandbox".into(),
            account_id: "act_1001".into(),
            status: "revoked".into(),
            reason: "the platform refused the refresh token: the grant was revoked".into(),
        }),
        EventData::AccountConsentRequested(AccountConsentRequested {
            platform: "sandbox".into(),
            account_id: "act_1001".into(),
            scope: "ads.write".into(),
            draft_id: "d1".into(),
        }),
        EventData::BudgetReleased(BudgetReleased {
            draft_id: "d1".into(),
            account_id: "act_1".into(),
            amount: usd(250),
            campaign_id: None,
            envelope: EnvelopeState {
                currency: "USD".into(),
                payments: vec![],
                month: "2026-11".into(),
                month_payments: 0,
                campaigns: vec![],
                recent_drafts: vec!["d1".into()],
                recent_releases: vec!["d1".into()],
            },
        }),
        EventData::RollbackRequested(RollbackRequested {
            rollback_id: "rb1".into(),
            changes: vec![RollbackItem {
                change_id: "ch_d1".into(),
                draft_id: "d1".into(),
            }],
            reason: "the agent overspent".into(),
            requested_by: "u_alice".into(),
            expires_at: "2026-11-21T12:15:00Z".into(),
        }),
        EventData::RollbackApproved(RollbackApproved(ApprovalGranted {
            draft_id: "rb1".into(),
            approval_id: "a2".into(),
            step: 1,
            credential_id: "cred".into(),
            approver_id: "u_alice".into(),
            approved_hash: "cd".repeat(32),
            proof: ApprovalProof {
                approval_id: "a2".into(),
                draft_id: "rb1".into(),
                approved_hash: "cd".repeat(32),
                policy_version: "sha256:00".into(),
                expires_at: "2026-11-21T12:15:00Z".into(),
                approver_id: "u_alice".into(),
                credential_id: "cred".into(),
                authenticator_data: "AAAA".into(),
                client_data_json: "e30".into(),
                signature: "MEUC".into(),
            },
        })),
        EventData::RollbackRefused(RollbackRefused {
            rollback_id: "rb1".into(),
            change_id: "ch_d1".into(),
            draft_id: "d1".into(),
            reason: "the live state moved since the push".into(),
        }),
        EventData::CardFreezeRequested(CardFreezeRequested {
            card_id: "*".into(),
            reason: "suspected fraud".into(),
        }),
        EventData::AgentsPaused(AgentsPaused {
            reason: "incident review".into(),
        }),
        EventData::AgentsResumed(AgentsResumed { reason: "cleared".into() }),
    ]
}

fn part_3() -> Vec<EventData> {
    vec![
        EventData::ClientGranted(ClientGranted {
            grant_id: "gr_1".into(),
            client_id: "https://client.example/meta.json".into(),
            client_name: "Example IDE".into(),
            approver_id: "u_alice".into(),
            scopes: vec!["mcp.read".into(), "mcp.draft".into()],
            resource: "http://localhost:7100/mcp".into(),
            redirect_uri: "http://127.0.0.1:33418/callback".into(),
            code_challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into(),
            code_sha256: "ab".repeat(32),
            code_expires_at: "2026-11-21T12:01:00Z".into(),
        }),
        EventData::ClientTokensIssued(ClientTokensIssued {
            grant_id: "gr_1".into(),
            generation: 1,
            refresh_sha256: "cd".repeat(32),
            refresh_expires_at: "2026-12-21T12:00:00Z".into(),
            access_expires_at: "2026-11-21T12:10:00Z".into(),
        }),
        EventData::ClientRevoked(ClientRevoked {
            grant_id: "gr_1".into(),
            reason: "revoked by u_alice on the connected clients page".into(),
        }),
        EventData::ApproverInvited(ApproverInvited {
            invite_id: "inv_1".into(),
            org: "acme".into(),
            email: "ada@example.com".into(),
            role: "admin".into(),
            token_sha256: "ef".repeat(32),
            expires_at: "2026-11-28T12:00:00Z".into(),
        }),
        EventData::ApproverRegistered(ApproverRegistered {
            invite_id: "inv_1".into(),
            approver_id: "u_ada".into(),
            org: "acme".into(),
            email: "ada@example.com".into(),
            role: "admin".into(),
            credential_id: "Y3JlZA".into(),
            public_key_spki_b64: "MFkw".into(),
            fingerprint: "01".repeat(32),
            rp_id: "localhost".into(),
            origin: "http://localhost:7200".into(),
        }),
        EventData::ApproverEnrolled(ApproverEnrolled {
            approver_id: "u_bob".into(),
            org: "acme".into(),
            role: "approver".into(),
            credential_id: "Y3JlZA".into(),
            public_key_spki_b64: "MFkw".into(),
            rp_id: "localhost".into(),
            origin: "http://localhost:7200".into(),
            countersignature: Some(Countersignature {
                approver_id: "u_ada".into(),
                credential_id: "Y3JlZGE".into(),
                authenticator_data: "AAAA".into(),
                client_data_json: "e30".into(),
                signature: "MEUC".into(),
            }),
            email: Some("bob@example.com".into()),
        }),
        EventData::ApproverAnchored(ApproverAnchored {
            org: "acme".into(),
            fingerprint: "01".repeat(32),
        }),
        EventData::ApproverRemoved(ApproverRemoved {
            org: "acme".into(),
            approver_id: "u_bob".into(),
            reason: "left the company".into(),
        }),
        EventData::ApprovalRejected(ApprovalRejected {
            draft_id: "d1".into(),
            approval_id: "a2".into(),
            approver_id: "u_alice".into(),
            reason: "not this quarter".into(),
        }),
        EventData::ChangeStarted(ChangeStarted {
            change_id: "c1".into(),
            draft_id: "d1".into(),
            before: Some(serde_json::json!({"daily_budget_minor": 5000, "updated_at": "2026-11-21T12:00:00Z"})),
        }),
        EventData::ChangeFailed(ChangeFailed {
            change_id: "c1".into(),
            draft_id: "d1".into(),
            reason: "platform refused: campaign archived".into(),
        }),
        EventData::ChangePushed(ChangePushed {
            change_id: "c1".into(),
            draft_id: "d1".into(),
            platform: "sandbox".into(),
            idempotency_key: "d1".into(),
            diff: diff(),
            response: Some(serde_json::json!({"id": "c1", "daily_budget_minor": 7500})),
        }),
    ]
}

fn part_4() -> Vec<EventData> {
    vec![
        EventData::ChangeRolledBack(ChangeRolledBack {
            change_id: "c2".into(),
            draft_id: "d1".into(),
            rollback_of: "c1".into(),
            diff: diff(),
            rollback_id: Some("rb1".into()),
            response: Some(serde_json::json!({"id": "c1", "daily_budget_minor": 5000})),
        }),
        EventData::ReadPerformed(ReadPerformed {
            operation: "list_campaigns".into(),
            account_id: Some("act_1".into()),
            result_count: 3,
        }),
        EventData::SecurityAlert(SecurityAlert {
            reason: "scope.denied".into(),
            key_id: Some("key_1".into()),
            address: None,
            detail: "mcp.approve is never granted to agents".into(),
        }),
        EventData::CardFrozen(CardFrozen {
            card_id: "card_1".into(),
            reason: "incident".into(),
        }),
        EventData::BudgetCommitted(BudgetCommitted {
            draft_id: "d1".into(),
            account_id: "act_1".into(),
            amount: usd(250),
            campaign_id: Some("c1".into()),
            envelope: EnvelopeState {
                currency: "USD".into(),
                payments: vec![(5_900_000, 250)],
                month: "2026-11".into(),
                month_payments: 250,
                campaigns: vec![CampaignRate {
                    account_id: "act_1".into(),
                    campaign_id: "c1".into(),
                    daily_minor: 7500,
                    since: "2026-11-21".into(),
                    commitments: vec![RateCommitment {
                        draft_id: "d1".into(),
                        daily_minor: 7500,
                    }],
                    floor_minor: Some(0),
                }],
                recent_drafts: vec!["d1".into()],
                recent_releases: vec![],
            },
        }),
        EventData::LimitApproaching(LimitApproaching {
            account_id: "act_1".into(),
            draft_id: "d1".into(),
            limit: "daily_limit".into(),
            used: usd(2100),
            value: usd(2500),
        }),
        EventData::LimitExceeded(LimitExceeded {
            account_id: "act_1".into(),
            draft_id: "d2".into(),
            limit: "daily_limit".into(),
            used: usd(2600),
            value: usd(2500),
        }),
        EventData::ApiKeyCreated(ApiKeyCreated {
            key_id: "0123456789ab".into(),
            org: "acme".into(),
            name: "ci-agent".into(),
            scopes: vec!["mcp.read".into(), "mcp.draft".into()],
            hash_sha256: "00".repeat(32),
            created_at: "2026-11-21T12:00:00+00:00".into(),
            replaces: None,
            overlap_until: None,
        }),
        EventData::DraftStaled(DraftStaled {
            draft_id: "d1".into(),
            reason: "live_state_moved".into(),
            detail: "campaign c1 changed on the platform".into(),
        }),
        EventData::NonceUsed(NonceUsed {
            key_id: "k1".into(),
            nonce: "n0nce".into(),
            method: "POST".into(),
            path: "/mcp".into(),
        }),
        EventData::PolicyProposed(PolicyProposed {
            draft_id: "p1".into(),
            version: "sha256:00".into(),
            source: "spend:\n  per_transaction: 50 USD\n".into(),
            previous_version: None,
            enables_auto_approve: false,
        }),
        EventData::BreakerTripped(BreakerTripped {
            account_id: "act_1".into(),
            reason: "platform_errors".into(),
            detail: "5 errors in 60 s".into(),
        }),
    ]
}

fn part_5() -> Vec<EventData> {
    vec![
        EventData::BreakerReset(BreakerReset {
            account_id: "act_1".into(),
            note: "platform recovered".into(),
        }),
        EventData::ApiKeyRevoked(ApiKeyRevoked {
            key_id: "*".into(),
            org: "acme".into(),
            reason: "incident".into(),
        }),
        EventData::LedgerCheckpointed(LedgerCheckpointed {
            origin: "spendsignoff/ledger".into(),
            tree_size: 1,
            root_hash_b64: "AA==".into(),
            body: "o\n1\nAA==\n".into(),
            signature_b64: "AA==".into(),
            key_id: "k".into(),
        }),
    ]
}
