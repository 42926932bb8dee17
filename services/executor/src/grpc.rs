//! The executor's gRPC server (`spendsignoff.v1.Executor`) for the reads
//! the gateway forwards. The conversions and the client are the read
//! contract's ([`spend_platform::grpc`]).
//!
//! Rollback and card freezes answer `UNIMPLEMENTED` until pushes land
//! with the executor's own work; nothing here writes to a platform.

use std::sync::Arc;

use spend_platform::Reads;
use spend_platform::grpc::{account_pb, campaign_pb, card_pb, from_ts, merchant_pb, non_empty, performance_pb, token_health_pb, transaction_pb};
use spend_proto::v1 as pb;
use spend_proto::v1::executor_server::{Executor, ExecutorServer};
use tonic::{Request, Response, Status};

/// The executor's gRPC service, answering reads from its connector.
pub struct ExecutorService {
    reads: Arc<dyn Reads>,
}

impl ExecutorService {
    pub fn new(
        reads: Arc<dyn Reads>,
        token: Option<&str>,
    ) -> tonic::service::interceptor::InterceptedService<ExecutorServer<Self>, spend_proto::internal::Require> {
        ExecutorServer::with_interceptor(Self { reads }, spend_proto::internal::Require::new(token))
    }
}

#[tonic::async_trait]
impl Executor for ExecutorService {
    async fn list_accounts(&self, _: Request<pb::ListAccountsRequest>) -> Result<Response<pb::ListAccountsResponse>, Status> {
        let accounts = self.reads.accounts().await?;
        Ok(Response::new(pb::ListAccountsResponse {
            accounts: accounts.iter().map(account_pb).collect(),
        }))
    }

    async fn list_campaigns(&self, r: Request<pb::ListCampaignsRequest>) -> Result<Response<pb::ListCampaignsResponse>, Status> {
        let list = self.reads.campaigns(&r.into_inner().account_id).await?;
        Ok(Response::new(pb::ListCampaignsResponse {
            campaigns: list.iter().map(campaign_pb).collect(),
        }))
    }

    async fn get_performance(&self, r: Request<pb::GetPerformanceRequest>) -> Result<Response<pb::GetPerformanceResponse>, Status> {
        let r = r.into_inner();
        let p = self
            .reads
            .performance(&r.account_id, non_empty(&r.campaign_id), from_ts(r.from), from_ts(r.to))
            .await?;
        Ok(Response::new(performance_pb(&p)))
    }

    async fn list_cards(&self, _: Request<pb::ListCardsRequest>) -> Result<Response<pb::ListCardsResponse>, Status> {
        let cards = self.reads.cards().await?;
        Ok(Response::new(pb::ListCardsResponse {
            cards: cards.iter().map(card_pb).collect(),
        }))
    }

    async fn list_transactions(&self, r: Request<pb::ListTransactionsRequest>) -> Result<Response<pb::ListTransactionsResponse>, Status> {
        let r = r.into_inner();
        let list = self.reads.transactions(non_empty(&r.status), from_ts(r.from)).await?;
        Ok(Response::new(pb::ListTransactionsResponse {
            transactions: list.iter().map(transaction_pb).collect(),
        }))
    }

    async fn check_token_health(&self, _: Request<pb::CheckTokenHealthRequest>) -> Result<Response<pb::CheckTokenHealthResponse>, Status> {
        Ok(Response::new(token_health_pb(&self.reads.token_health().await?)))
    }

    async fn get_merchant(&self, r: Request<pb::GetMerchantRequest>) -> Result<Response<pb::GetMerchantResponse>, Status> {
        let m = self.reads.merchant(&r.into_inner().domain).await?;
        Ok(Response::new(pb::GetMerchantResponse {
            merchant: m.as_ref().map(merchant_pb),
        }))
    }

    async fn rollback(&self, _: Request<pb::RollbackRequest>) -> Result<Response<pb::RollbackResponse>, Status> {
        Err(Status::unimplemented("rollback is not available in this version of the executor"))
    }

    async fn freeze_cards(&self, _: Request<pb::FreezeCardsRequest>) -> Result<Response<pb::FreezeCardsResponse>, Status> {
        Err(Status::unimplemented("card freezes are not available in this version of the executor"))
    }
}
