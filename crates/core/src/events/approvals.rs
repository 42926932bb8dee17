//! Human approval: requests, grants (with the passkey proof), rejections,
//! expiry and escalation, and the approvers themselves (invited,
//! registered, enrolled, anchored, removed).

use serde::{Deserialize, Serialize};

/// A signed-in human approved what `draft_id` names (a draft, or a policy
/// proposal). It says what it approves: `approved_hash` is the lower-case
/// hex SHA-256 of the exact bytes, as on the log, of the event approved, so
/// approving a payment can never count for a policy whose proposal reused
/// the payment's id. Recorded by the approval service on
/// `approval.<draft_id>`; consumers accept it only through the draft
/// aggregate's verifier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalGranted {
    pub draft_id: String,
    pub approval_id: String,
    /// Which approval this is (1, or 2 under dual control).
    pub step: u32,
    /// The passkey credential that asserted it.
    pub credential_id: String,
    /// The human who approved: dual control needs two distinct ones.
    pub approver_id: String,
    /// Hex SHA-256 of the approved event's bytes on the log.
    pub approved_hash: String,
    /// The approver's passkey assertion over the pinned challenge: what
    /// makes this event more than a claim (../shared/DESIGN.md, "Human
    /// approval").
    pub proof: ApprovalProof,
}

/// `data.proof` of an approval event, field for field as
/// ../shared/DESIGN.md pins it. The last three are unpadded base64url; the
/// signature is DER. The challenge the authenticator signed is
/// `SHA-256("spendsignoff-approval-v1\n" + approval_id + "\n" +
/// approved_hash + "\n" + policy_version + "\n" + expires_at)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalProof {
    pub approval_id: String,
    /// The id of what is approved: a draft, a policy proposal, a rollback
    /// request.
    pub draft_id: String,
    /// Lower-case hex SHA-256 of the exact bytes of the approved event.
    pub approved_hash: String,
    pub policy_version: String,
    /// RFC 3339, used byte for byte in the challenge.
    pub expires_at: String,
    pub approver_id: String,
    /// The passkey's credential id, unpadded base64url.
    pub credential_id: String,
    pub authenticator_data: String,
    pub client_data_json: String,
    pub signature: String,
}

/// A draft or a policy proposal waits for a human: the approval service's
/// request, on `approval.<draft_id>` (appended with expected sequence 0,
/// so one request per draft however many replicas saw the decision).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalRequested {
    pub draft_id: String,
    /// `draft` or `policy`.
    pub kind: String,
    /// Hex SHA-256 of the bytes of the event to approve.
    pub approved_hash: String,
    /// The SPEND.md version a proof signs (the deciding version of a
    /// draft; the proposed version of a policy proposal).
    pub policy_version: String,
    /// Distinct approvers needed: 1, or 2 under dual control.
    pub required: u32,
    /// RFC 3339, as every proof of this request signs it.
    pub expires_at: String,
    /// What happens on expiry: `deny` or `escalate` (never an approval).
    pub timeout_action: String,
    /// Hex SHA-256 of the link's token (the token itself is never recorded).
    pub link_token_sha256: String,
}

/// Nobody answered an approval request whose `timeout_action` is
/// `escalate`: the approval service notified the next approval channel
/// and extended the request once, to `expires_at` (what every later proof
/// of it signs). A second timeout denies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalEscalated {
    pub draft_id: String,
    /// The request's expiry before (RFC 3339, as recorded).
    pub previous_expires_at: String,
    /// The extended expiry (RFC 3339): later than the previous one.
    pub expires_at: String,
    /// The approval channel notified now: `slack` or `email`.
    pub channel: String,
}

/// The operator invited someone to enroll as an approver (`spend approver
/// invite`, on `roster.<invite_id>`): a single-use link, of whose token
/// only the hash is recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApproverInvited {
    pub invite_id: String,
    pub org: String,
    pub email: String,
    /// `approver` or `admin`.
    pub role: String,
    /// Hex SHA-256 of the single-use enrollment token.
    pub token_sha256: String,
    pub expires_at: String,
}

/// An approval request expired before enough humans approved: its
/// `timeout_action` applied (`deny`: the draft is expired and can no longer
/// be approved).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalExpired {
    pub draft_id: String,
    pub action: String,
    /// Approvals that counted before expiry.
    pub approvals: u32,
    pub required: u32,
}

/// An invitee created a passkey on the enrollment page; it is trusted only
/// once an admin countersigns it (`spend.approver.enrolled.v1`) or, for an
/// organisation's first admin, once the operator anchors its fingerprint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApproverRegistered {
    pub invite_id: String,
    pub approver_id: String,
    pub org: String,
    pub email: String,
    pub role: String,
    pub credential_id: String,
    pub public_key_spki_b64: String,
    /// Hex SHA-256 of the public key DER, as the enrollment page shows it.
    pub fingerprint: String,
    pub rp_id: String,
    pub origin: String,
}

/// An admin's assertion over a new approver's enrollment: fields as in an
/// approval proof, over `SHA-256("spendsignoff-enroll-v1\n" + org + "\n" +
/// approver_id + "\n" + role + "\n" + credential_id + "\n" +
/// hex(SHA-256(public key DER)))`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Countersignature {
    pub approver_id: String,
    pub credential_id: String,
    pub authenticator_data: String,
    pub client_data_json: String,
    pub signature: String,
}

/// An approver's passkey, as ../shared/DESIGN.md pins it; trusted when
/// `countersignature` verifies with an already trusted admin's key, or
/// (`countersignature` null: an organisation's first admin) once the
/// operator's `spend.approver.anchored.v1` names its fingerprint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApproverEnrolled {
    pub approver_id: String,
    pub org: String,
    pub role: String,
    pub credential_id: String,
    /// DER SubjectPublicKeyInfo, standard base64.
    pub public_key_spki_b64: String,
    pub rp_id: String,
    pub origin: String,
    pub countersignature: Option<Countersignature>,
    /// The email the invitation went to (display only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

/// The operator trusts an organisation's first admin: the key whose
/// fingerprint (hex SHA-256 of the public key DER) this names. Written by
/// `spend approver anchor` on `anchor.<org>`, an operator subject.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApproverAnchored {
    pub org: String,
    pub fingerprint: String,
}

/// An approver is removed: proofs they make afterwards do not verify.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApproverRemoved {
    pub org: String,
    pub approver_id: String,
    pub reason: String,
}

/// A signed-in human rejected a draft.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalRejected {
    pub draft_id: String,
    pub approval_id: String,
    pub approver_id: String,
    pub reason: String,
}
