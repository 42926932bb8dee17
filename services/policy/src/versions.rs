//! SPEND.md versions as the event log records them. A new version is a
//! `spend.policy.proposed.v1` draft carrying the file's text and content
//! hash; it is in force for its organisation once the approval service
//! records a human's approval of that draft. Anything else that claims to
//! be an approval — another actor, another source, another subject — is a
//! forgery: it changes nothing, and the caller audits it.
//!
//! Every process that decides (the gateway's replicas, `spend serve
//! policy`) follows the log into a [`Versions`], so they all agree on the
//! version in force without asking each other.

use std::collections::HashMap;
use std::sync::Arc;

use spend_core::ActorKind;
use spend_core::events::PolicyProposed;

use crate::spendmd::{self, SpendMd};

/// The `source` of events recorded by the approval service.
pub const APPROVAL_SOURCE: &str = "spendsignoff/approval";

/// Whether an approval event is one the approval service recorded for a
/// signed-in human: a human actor, the approval service as source, on an
/// `approval` subject.
pub fn is_recorded_approval(actor: ActorKind, source: &str, aggregate: &str) -> bool {
    actor == ActorKind::Human && source == APPROVAL_SOURCE && aggregate == "approval"
}

/// A version in force: the proposal as recorded, and the file parsed.
#[derive(Debug, Clone)]
pub struct Active {
    pub proposal: PolicyProposed,
    pub policy: Arc<SpendMd>,
}

/// The versions of every organisation, as proposed and approved.
#[derive(Default)]
pub struct Versions {
    proposals: HashMap<(String, String), PolicyProposed>,
    active: HashMap<String, Active>,
}

impl Versions {
    /// A version was proposed (as draft `p.draft_id`).
    pub fn proposed(&mut self, org: &str, p: &PolicyProposed) {
        self.proposals.insert((org.to_string(), p.draft_id.clone()), p.clone());
    }

    /// A genuine approval of `draft_id` (see [`is_recorded_approval`]): if
    /// it is a policy draft, its version is now in force. A version that
    /// does not parse (it was validated when proposed; a newer parser may
    /// disagree) leaves the previous one in force, and says so.
    pub fn approved(&mut self, org: &str, draft_id: &str) {
        let Some(p) = self.proposals.get(&(org.to_string(), draft_id.to_string())) else {
            return;
        };
        match spendmd::parse(&p.source) {
            Ok(md) => {
                self.active.insert(
                    org.to_string(),
                    Active {
                        proposal: p.clone(),
                        policy: Arc::new(md),
                    },
                );
            }
            Err(errors) => {
                tracing::error!(org, version = %p.version, errors = errors.len(), "an approved SPEND.md does not parse; the previous version stays in force")
            }
        }
    }

    /// The version a human approved last for `org`, if any.
    pub fn active(&self, org: &str) -> Option<&Active> {
        self.active.get(org)
    }
}
