//! The executor's gRPC surface (`spendsignoff.v1.Executor`) for the reads
//! the gateway forwards, and [`ExecutorClient`], the gateway's side of it.
//! Protobuf types stop at this module: both sides convert to the
//! [`crate::platform`] shapes.
//!
//! Rollback and card freezes answer `UNIMPLEMENTED` until pushes land
//! with the executor's own work; nothing here writes to a platform.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use spend_proto::v1 as pb;
use spend_proto::v1::executor_client::ExecutorClient as PbClient;
use spend_proto::v1::executor_server::{Executor, ExecutorServer};
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

use crate::connector::{ReadError, Reads};
use crate::platform::{Account, Campaign, Card, Performance, TokenHealth, Transaction};

fn ts(t: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.timestamp(),
        nanos: t.timestamp_subsec_nanos() as i32,
    }
}

fn from_ts(t: Option<prost_types::Timestamp>) -> Option<DateTime<Utc>> {
    t.and_then(|t| DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32))
}

fn money(minor: i64, currency: &str) -> Option<pb::Money> {
    Some(pb::Money {
        minor_units: minor,
        currency: currency.to_string(),
    })
}

fn non_empty(s: &str) -> Option<&str> {
    (!s.is_empty()).then_some(s)
}

impl From<ReadError> for Status {
    fn from(e: ReadError) -> Self {
        let m = e.to_string();
        match e {
            ReadError::NotFound(_) => Status::not_found(m),
            ReadError::Invalid(_) => Status::invalid_argument(m),
            ReadError::TokenRefused(_) => Status::failed_precondition(m),
            ReadError::Throttled => Status::resource_exhausted(m),
            ReadError::Unavailable(_) => Status::unavailable(m),
        }
    }
}

fn read_error(s: Status) -> ReadError {
    let m = s.message().to_string();
    match s.code() {
        tonic::Code::NotFound => ReadError::NotFound(m),
        tonic::Code::InvalidArgument => ReadError::Invalid(m),
        tonic::Code::FailedPrecondition => ReadError::TokenRefused(m),
        tonic::Code::ResourceExhausted => ReadError::Throttled,
        _ => ReadError::Unavailable(format!("executor: {m}")),
    }
}

pub fn account_pb(a: &Account) -> pb::Account {
    pb::Account {
        id: a.id.clone(),
        platform: a.platform.clone(),
        name: a.name.clone(),
        currency: a.currency.clone(),
    }
}

pub fn campaign_pb(c: &Campaign) -> pb::Campaign {
    pb::Campaign {
        id: c.id.clone(),
        account_id: c.account_id.clone(),
        name: c.name.clone(),
        status: c.status.clone(),
        daily_budget: money(c.daily_budget_minor, &c.currency),
        bid: money(c.bid_minor, &c.currency),
        updated_at: Some(ts(c.updated_at)),
    }
}

pub fn performance_pb(p: &Performance) -> pb::GetPerformanceResponse {
    pb::GetPerformanceResponse {
        impressions: p.impressions,
        clicks: p.clicks,
        conversions: p.conversions,
        spend: money(p.spend_minor, &p.currency),
        account_id: p.account_id.clone(),
        campaign_id: p.campaign_id.clone().unwrap_or_default(),
        from: Some(ts(p.from)),
        to: Some(ts(p.to)),
    }
}

pub fn card_pb(c: &Card) -> pb::Card {
    pb::Card {
        id: c.id.clone(),
        last4: c.last4.clone(),
        status: c.status.clone(),
        limit: money(c.limit_minor, &c.currency),
    }
}

pub fn transaction_pb(t: &Transaction) -> pb::Transaction {
    pb::Transaction {
        id: t.id.clone(),
        status: t.status.clone(),
        amount: money(t.amount_minor, &t.currency),
        merchant: t.merchant.clone(),
        time: Some(ts(t.time)),
        card_id: t.card_id.clone(),
    }
}

pub fn token_health_pb(h: &TokenHealth) -> pb::CheckTokenHealthResponse {
    pb::CheckTokenHealthResponse {
        healthy: h.healthy,
        expires_at: h.expires_at.map(ts),
        granted_platform_scopes: h.granted_scopes.clone(),
        problem: h.problem.clone().unwrap_or_default(),
    }
}

fn money_parts(m: Option<pb::Money>) -> (i64, String) {
    m.map(|m| (m.minor_units, m.currency)).unwrap_or_default()
}

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

    async fn rollback(&self, _: Request<pb::RollbackRequest>) -> Result<Response<pb::RollbackResponse>, Status> {
        Err(Status::unimplemented("rollback is not available in this version of the executor"))
    }

    async fn freeze_cards(&self, _: Request<pb::FreezeCardsRequest>) -> Result<Response<pb::FreezeCardsResponse>, Status> {
        Err(Status::unimplemented("card freezes are not available in this version of the executor"))
    }
}

/// The gateway's client of a separately deployed executor.
#[derive(Clone)]
pub struct ExecutorClient {
    inner: PbClient<tonic::service::interceptor::InterceptedService<Channel, spend_proto::internal::Attach>>,
}

impl ExecutorClient {
    /// Connects lazily: an executor that is down fails reads with
    /// `Unavailable`, not the gateway's start-up.
    /// A lazy connection to `url`, sending the internal token when given.
    pub fn connect_lazy(url: &str, token: Option<&str>) -> Result<Self, ReadError> {
        let channel = Channel::from_shared(url.to_string())
            .map_err(|e| ReadError::Invalid(format!("executor url {url:?}: {e}")))?
            .connect_timeout(std::time::Duration::from_secs(3))
            .timeout(std::time::Duration::from_secs(15))
            .connect_lazy();
        let attach = spend_proto::internal::Attach::new(token).map_err(ReadError::Invalid)?;
        Ok(Self {
            inner: PbClient::with_interceptor(channel, attach),
        })
    }
}

#[async_trait::async_trait]
impl Reads for ExecutorClient {
    async fn accounts(&self) -> Result<Vec<Account>, ReadError> {
        let r = self.inner.clone().list_accounts(pb::ListAccountsRequest {}).await.map_err(read_error)?;
        Ok(r.into_inner()
            .accounts
            .into_iter()
            .map(|a| Account {
                id: a.id,
                platform: a.platform,
                name: a.name,
                currency: a.currency,
            })
            .collect())
    }

    async fn campaigns(&self, account_id: &str) -> Result<Vec<Campaign>, ReadError> {
        let r = self
            .inner
            .clone()
            .list_campaigns(pb::ListCampaignsRequest {
                account_id: account_id.to_string(),
            })
            .await
            .map_err(read_error)?;
        Ok(r.into_inner()
            .campaigns
            .into_iter()
            .map(|c| {
                let (budget, currency) = money_parts(c.daily_budget);
                let (bid, _) = money_parts(c.bid);
                Campaign {
                    id: c.id,
                    account_id: c.account_id,
                    name: c.name,
                    status: c.status,
                    daily_budget_minor: budget,
                    bid_minor: bid,
                    currency,
                    updated_at: from_ts(c.updated_at).unwrap_or_default(),
                }
            })
            .collect())
    }

    async fn performance(
        &self,
        account_id: &str,
        campaign_id: Option<&str>,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
    ) -> Result<Performance, ReadError> {
        let r = self
            .inner
            .clone()
            .get_performance(pb::GetPerformanceRequest {
                account_id: account_id.to_string(),
                campaign_id: campaign_id.unwrap_or_default().to_string(),
                from: from.map(ts),
                to: to.map(ts),
            })
            .await
            .map_err(read_error)?
            .into_inner();
        let (spend, currency) = money_parts(r.spend);
        Ok(Performance {
            account_id: r.account_id,
            campaign_id: non_empty(&r.campaign_id).map(str::to_string),
            from: from_ts(r.from).unwrap_or_default(),
            to: from_ts(r.to).unwrap_or_default(),
            impressions: r.impressions,
            clicks: r.clicks,
            conversions: r.conversions,
            spend_minor: spend,
            currency,
        })
    }

    async fn cards(&self) -> Result<Vec<Card>, ReadError> {
        let r = self.inner.clone().list_cards(pb::ListCardsRequest {}).await.map_err(read_error)?;
        Ok(r.into_inner()
            .cards
            .into_iter()
            .map(|c| {
                let (limit, currency) = money_parts(c.limit);
                Card {
                    id: c.id,
                    last4: c.last4,
                    status: c.status,
                    limit_minor: limit,
                    currency,
                }
            })
            .collect())
    }

    async fn transactions(&self, status: Option<&str>, from: Option<DateTime<Utc>>) -> Result<Vec<Transaction>, ReadError> {
        let r = self
            .inner
            .clone()
            .list_transactions(pb::ListTransactionsRequest {
                status: status.unwrap_or_default().to_string(),
                from: from.map(ts),
            })
            .await
            .map_err(read_error)?;
        Ok(r.into_inner()
            .transactions
            .into_iter()
            .map(|t| {
                let (amount, currency) = money_parts(t.amount);
                Transaction {
                    id: t.id,
                    card_id: t.card_id,
                    status: t.status,
                    amount_minor: amount,
                    currency,
                    merchant: t.merchant,
                    time: from_ts(t.time).unwrap_or_default(),
                }
            })
            .collect())
    }

    async fn token_health(&self) -> Result<TokenHealth, ReadError> {
        let r = self
            .inner
            .clone()
            .check_token_health(pb::CheckTokenHealthRequest::default())
            .await
            .map_err(read_error)?
            .into_inner();
        Ok(TokenHealth {
            healthy: r.healthy,
            expires_at: from_ts(r.expires_at),
            granted_scopes: r.granted_platform_scopes,
            problem: non_empty(&r.problem).map(str::to_string),
        })
    }
}
