//! The executor's gRPC server (`spendsignoff.v1.Executor`) for the reads
//! the gateway forwards. The conversions and the client are the read
//! contract's ([`spend_platform::grpc`]).
//!
//! Rollback and card freezes answer `FAILED_PRECONDITION` with where they
//! are asked for instead: both are events on the log (a rollback request a
//! human approves with a passkey; an operator's freeze), never a call a
//! service could make in someone's name. Nothing here writes to a platform.

use std::sync::Arc;

use spend_platform::grpc::{
    account_health_pb, account_pb, campaign_pb, card_pb, from_ts, merchant_pb, non_empty, org_of, performance_pb, token_health_pb, transaction_pb,
};
use spend_platform::{Connect, Reads};
use spend_proto::internal::{Caller, Callers, Guard, Rules};
use spend_proto::v1 as pb;
use spend_proto::v1::executor_server::{Executor, ExecutorServer};
use tonic::{Request, Response, Status};

/// The executor's gRPC service, answering reads from its connector and
/// connecting accounts through its vault.
pub struct ExecutorService {
    reads: Arc<dyn Reads>,
    connect: Option<Arc<dyn Connect>>,
}

/// Who may call each RPC (docs/architecture.md lists them): the gateway
/// reads for agents; only the approval app and the operator connect and
/// disconnect accounts; rollback and freezes answer only the operator
/// (with where they are asked for instead).
pub const RULES: Rules = &[
    ("ListAccounts", READERS),
    ("ListCampaigns", READERS),
    ("GetPerformance", READERS),
    ("ListCards", READERS),
    ("ListTransactions", READERS),
    ("CheckTokenHealth", READERS),
    ("GetMerchant", READERS),
    ("BeginConnection", CONNECTORS),
    ("CompleteConnection", CONNECTORS),
    ("AbandonConnection", CONNECTORS),
    ("ListConnections", CONNECTORS),
    ("Disconnect", CONNECTORS),
    ("Rollback", &[Caller::Operator]),
    ("FreezeCards", &[Caller::Operator]),
];
const READERS: &[Caller] = &[Caller::Gateway, Caller::Operator];
const CONNECTORS: &[Caller] = &[Caller::Approval, Caller::Operator];

impl ExecutorService {
    /// The service behind its guard: only `callers`, each to its RPCs
    /// ([`RULES`]); none configured: every caller (loopback only).
    pub fn new(reads: Arc<dyn Reads>, connect: Option<Arc<dyn Connect>>, callers: Option<Callers>) -> Guard<ExecutorServer<Self>> {
        Guard::new(ExecutorServer::new(Self { reads, connect }), RULES, callers)
    }

    fn connect(&self) -> Result<&Arc<dyn Connect>, Status> {
        self.connect
            .as_ref()
            .ok_or_else(|| Status::failed_precondition("this executor has no vault: accounts cannot be connected here"))
    }
}

#[tonic::async_trait]
impl Executor for ExecutorService {
    async fn list_accounts(&self, r: Request<pb::ListAccountsRequest>) -> Result<Response<pb::ListAccountsResponse>, Status> {
        let accounts = self.reads.accounts(&org_of(&r)?).await?;
        Ok(Response::new(pb::ListAccountsResponse {
            accounts: accounts.iter().map(account_pb).collect(),
        }))
    }

    async fn list_campaigns(&self, r: Request<pb::ListCampaignsRequest>) -> Result<Response<pb::ListCampaignsResponse>, Status> {
        let org = org_of(&r)?;
        let list = self.reads.campaigns(&org, &r.into_inner().account_id).await?;
        Ok(Response::new(pb::ListCampaignsResponse {
            campaigns: list.iter().map(campaign_pb).collect(),
        }))
    }

    async fn get_performance(&self, r: Request<pb::GetPerformanceRequest>) -> Result<Response<pb::GetPerformanceResponse>, Status> {
        let org = org_of(&r)?;
        let r = r.into_inner();
        let p = self
            .reads
            .performance(&org, &r.account_id, non_empty(&r.campaign_id), from_ts(r.from), from_ts(r.to))
            .await?;
        Ok(Response::new(performance_pb(&p)))
    }

    async fn list_cards(&self, r: Request<pb::ListCardsRequest>) -> Result<Response<pb::ListCardsResponse>, Status> {
        let cards = self.reads.cards(&org_of(&r)?).await?;
        Ok(Response::new(pb::ListCardsResponse {
            cards: cards.iter().map(card_pb).collect(),
        }))
    }

    async fn list_transactions(&self, r: Request<pb::ListTransactionsRequest>) -> Result<Response<pb::ListTransactionsResponse>, Status> {
        let org = org_of(&r)?;
        let r = r.into_inner();
        let list = self.reads.transactions(&org, non_empty(&r.status), from_ts(r.from)).await?;
        Ok(Response::new(pb::ListTransactionsResponse {
            transactions: list.iter().map(transaction_pb).collect(),
        }))
    }

    async fn check_token_health(&self, r: Request<pb::CheckTokenHealthRequest>) -> Result<Response<pb::CheckTokenHealthResponse>, Status> {
        let org = org_of(&r)?;
        let account = r.into_inner().account_id;
        Ok(Response::new(token_health_pb(&self.reads.token_health(&org, non_empty(&account)).await?)))
    }

    async fn get_merchant(&self, r: Request<pb::GetMerchantRequest>) -> Result<Response<pb::GetMerchantResponse>, Status> {
        let org = org_of(&r)?;
        let m = self.reads.merchant(&org, &r.into_inner().domain).await?;
        Ok(Response::new(pb::GetMerchantResponse {
            merchant: m.as_ref().map(merchant_pb),
        }))
    }

    async fn begin_connection(&self, r: Request<pb::BeginConnectionRequest>) -> Result<Response<pb::BeginConnectionResponse>, Status> {
        let r = r.into_inner();
        let b = self
            .connect()?
            .begin(
                &r.org,
                non_empty(&r.account_id),
                r.write.then_some(r.draft_id.as_str()),
                &r.redirect_uri,
                &r.purpose,
            )
            .await?;
        Ok(Response::new(pb::BeginConnectionResponse {
            authorize_url: b.authorize_url,
            expires_at: Some(spend_platform::grpc::ts(b.expires_at)),
        }))
    }

    async fn complete_connection(&self, r: Request<pb::CompleteConnectionRequest>) -> Result<Response<pb::CompleteConnectionResponse>, Status> {
        let r = r.into_inner();
        let outcome = if r.error.is_empty() {
            Ok(r.code.as_str())
        } else {
            Err((r.error.as_str(), r.error_description.as_str()))
        };
        let a = self.connect()?.complete(&r.state, outcome).await?;
        Ok(Response::new(pb::CompleteConnectionResponse {
            account: Some(account_health_pb(&a)),
        }))
    }

    async fn abandon_connection(&self, r: Request<pb::AbandonConnectionRequest>) -> Result<Response<pb::AbandonConnectionResponse>, Status> {
        let r = r.into_inner();
        self.connect()?.abandon(&r.state, &r.reason).await?;
        Ok(Response::new(pb::AbandonConnectionResponse {}))
    }

    async fn list_connections(&self, r: Request<pb::ListConnectionsRequest>) -> Result<Response<pb::ListConnectionsResponse>, Status> {
        let list = self.connect()?.list(&r.into_inner().org).await?;
        Ok(Response::new(pb::ListConnectionsResponse {
            accounts: list.iter().map(account_health_pb).collect(),
        }))
    }

    async fn disconnect(&self, r: Request<pb::DisconnectRequest>) -> Result<Response<pb::DisconnectResponse>, Status> {
        let r = r.into_inner();
        let a = self.connect()?.disconnect(&r.org, &r.account_id, &r.by).await?;
        Ok(Response::new(pb::DisconnectResponse {
            account: Some(account_health_pb(&a)),
        }))
    }

    async fn rollback(&self, _: Request<pb::RollbackRequest>) -> Result<Response<pb::RollbackResponse>, Status> {
        Err(Status::failed_precondition(
            "the executor takes no rollback over gRPC: ask for one in the approval app's audit view or with `spend rollback`, and a human approves it with a passkey",
        ))
    }

    async fn freeze_cards(&self, _: Request<pb::FreezeCardsRequest>) -> Result<Response<pb::FreezeCardsResponse>, Status> {
        Err(Status::failed_precondition(
            "the executor takes no card freeze over gRPC: an operator freezes cards with `spend card freeze` (an audited event)",
        ))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_rpc_says_who_may_call_it() {
        spend_proto::internal::assert_rules_cover("spendsignoff.v1.Executor", super::RULES);
    }
}
