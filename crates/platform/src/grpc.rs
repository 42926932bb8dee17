//! The executor's read contract over gRPC (`spendsignoff.v1.Executor`):
//! the conversions between protobuf messages and the [`crate::types`]
//! shapes, the mapping of [`ReadError`] to gRPC codes and back, and
//! [`ExecutorClient`], the gateway's side of the wire. Protobuf types stop
//! here: the server (in the executor) and the client both convert.

use chrono::{DateTime, Utc};
use spend_proto::v1 as pb;
use spend_proto::v1::executor_client::ExecutorClient as PbClient;
use tonic::Status;
use tonic::transport::Channel;

use crate::reads::{ReadError, Reads};
use crate::types::{Account, Campaign, Card, Merchant, Performance, TokenHealth, Transaction};

pub fn ts(t: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.timestamp(),
        nanos: t.timestamp_subsec_nanos() as i32,
    }
}

pub fn from_ts(t: Option<prost_types::Timestamp>) -> Option<DateTime<Utc>> {
    t.and_then(|t| DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32))
}

fn money(minor: i64, currency: &str) -> Option<pb::Money> {
    Some(pb::Money {
        minor_units: minor,
        currency: currency.to_string(),
    })
}

pub fn non_empty(s: &str) -> Option<&str> {
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

pub fn merchant_pb(m: &Merchant) -> pb::Merchant {
    pb::Merchant {
        domain: m.domain.clone(),
        name: m.name.clone(),
        category: m.category.clone(),
    }
}

fn money_parts(m: Option<pb::Money>) -> (i64, String) {
    m.map(|m| (m.minor_units, m.currency)).unwrap_or_default()
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

    async fn merchant(&self, domain: &str) -> Result<Option<Merchant>, ReadError> {
        let r = self
            .inner
            .clone()
            .get_merchant(pb::GetMerchantRequest { domain: domain.to_string() })
            .await
            .map_err(read_error)?
            .into_inner();
        Ok(r.merchant.map(|m| Merchant {
            domain: m.domain,
            name: m.name,
            category: m.category,
        }))
    }
}
