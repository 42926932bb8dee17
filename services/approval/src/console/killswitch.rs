//! Kill switches in the approval app, for an organisation's admins: pause
//! its agents (no reads or drafts at any gateway), resume them, freeze one
//! card or every card (the executor refuses every charge from then on, and
//! freezes the card at the platform where its connection may). Each is an
//! event on the app's own `kill_switch` subject, by the signed-in admin,
//! and takes effect as the services read it (within a second).
//!
//! Stopping is one deliberate click; starting again is narrower: a resume
//! here lifts only a pause made here, never the operator's (`spend agents
//! pause`), so a compromised approval service cannot undo the operator's
//! stop. Nothing here can unfreeze a card.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Form, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use serde::Deserialize;
use spend_core::Actor;
use spend_core::events::{AgentsPaused, AgentsResumed, CardFreezeRequested, EventData};

use crate::web::app::{Answer, App, Refusal, log_refusal, need_admin, need_session, page, who};

/// The longest reason.
const MAX_REASON: usize = 500;

/// `GET /killswitches`: what is stopped now, and the switches.
pub async fn page_get(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let Some(s) = app.session(&headers).await else {
        return need_session("/killswitches");
    };
    let book = app.book.read().await;
    let pauses = book.pauses(&s.org);
    let frozen = book.frozen(&s.org).to_vec();
    let own_pause = pauses.iter().any(|(by, _, _)| *by == "kill_switch");
    page(
        "Kill switches",
        Some(&s.csrf),
        Some(&who(&s)),
        html! {
            p { "Each switch is an audited event; every gateway and the executor act on it within a second. Only an admin can pull one." }
            h2 { "Agents" }
            @if pauses.is_empty() {
                p.status role="status" { "Agents of " (s.org) " are running." }
            } @else {
                ul.status role="status" {
                    @for (by, reason, whom) in &pauses {
                        li { "Paused " @if *by == "pause" { "by the operator" } @else { "in this app" } " (" (whom) "): " (reason) }
                    }
                }
            }
            form method="post" action="/killswitches/pause" {
                input type="hidden" name="csrf" value=(s.csrf);
                label for="pause-reason" { "Reason" }
                input #pause-reason type="text" name="reason" required maxlength="500";
                p { button.danger type="submit" { "Pause agents" } }
            }
            @if own_pause {
                form method="post" action="/killswitches/resume" {
                    input type="hidden" name="csrf" value=(s.csrf);
                    input type="hidden" name="reason" value="resumed in the approval app";
                    p { button type="submit" { "Resume agents" } " (lifts the pause made here; an operator's pause needs " code { "spend agents resume" } ")" }
                }
            }
            h2 { "Cards" }
            @if frozen.is_empty() {
                p { "No card is frozen." }
            } @else {
                ul { @for (card, why) in &frozen { li { code { (card) } ": " (why) } } }
            }
            form method="post" action="/killswitches/freeze" {
                input type="hidden" name="csrf" value=(s.csrf);
                fieldset {
                    legend { "Which cards" }
                    p.inline-choice {
                        input #freeze-one type="radio" name="scope" value="one" required;
                        label.inline for="freeze-one" { "One card" }
                    }
                    label for="freeze-card" { "Card id" }
                    input #freeze-card type="text" name="card" maxlength="64" aria-describedby="freeze-card-help";
                    p #freeze-card-help { "Needed for one card; ignored for every card." }
                    p.inline-choice {
                        input #freeze-all type="radio" name="scope" value="all" required;
                        label.inline for="freeze-all" { "Every card of " (s.org) }
                    }
                }
                label for="freeze-reason" { "Why" }
                input #freeze-reason type="text" name="reason" required maxlength="500";
                p { button.danger type="submit" { "Freeze cards" } }
            }
        },
    )
}

#[derive(Deserialize)]
pub struct SwitchForm {
    csrf: String,
    reason: String,
    #[serde(default)]
    card: String,
    /// `one` (the card named) or `all`: an explicit choice, never an
    /// empty field meaning every card.
    #[serde(default)]
    scope: String,
}

fn reason_of(f: &SwitchForm) -> Answer<String> {
    let r = f.reason.trim();
    if r.is_empty() || r.chars().count() > MAX_REASON {
        return Err(Refusal::bad_input(format!("say why, in at most {MAX_REASON} characters: it is on the record")));
    }
    Ok(r.to_string())
}

async fn pull(app: &App, s: &crate::web::app::Session, id: &str, data: EventData) -> Answer<Response> {
    let what = data.event_type();
    let rec = app
        .recorder
        .event(&s.org, Actor::human(&s.email), "kill_switch", id, data)
        .record()
        .await
        .map_err(log_refusal)?;
    tracing::warn!(org = %s.org, by = %s.approver_id, what, "kill switch pulled in the approval app");
    app.wait_for(rec.seq).await;
    Ok(Redirect::to("/killswitches").into_response())
}

/// `POST /killswitches/pause`.
pub async fn pause(State(app): State<Arc<App>>, headers: HeaderMap, ConnectInfo(peer): ConnectInfo<SocketAddr>, Form(f): Form<SwitchForm>) -> Answer<Response> {
    let s = app.checked(&headers, peer, Some(&f.csrf)).await?;
    need_admin(&s)?;
    let reason = format!("{} (paused by {} in the approval app)", reason_of(&f)?, s.email);
    pull(&app, &s, "agents", EventData::AgentsPaused(AgentsPaused { reason })).await
}

/// `POST /killswitches/resume`: lifts only a pause made in the app.
pub async fn resume(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Form(f): Form<SwitchForm>,
) -> Answer<Response> {
    let s = app.checked(&headers, peer, Some(&f.csrf)).await?;
    need_admin(&s)?;
    let reason = format!("{} by {}", reason_of(&f)?, s.email);
    pull(&app, &s, "agents", EventData::AgentsResumed(AgentsResumed { reason })).await
}

/// `POST /killswitches/freeze`: one card, or every card.
pub async fn freeze(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Form(f): Form<SwitchForm>,
) -> Answer<Response> {
    let s = app.checked(&headers, peer, Some(&f.csrf)).await?;
    need_admin(&s)?;
    let reason = format!("{} (frozen by {} in the approval app)", reason_of(&f)?, s.email);
    let card = f.card.trim();
    let (card_id, id) = match (f.scope.as_str(), card) {
        ("all", _) => ("*".to_string(), "card-all".to_string()),
        ("one", "") => return Err(Refusal::bad_input("name the card to freeze, or choose every card")),
        ("one", c) if spend_core::subject::is_valid_token(c) && c != "*" => (c.to_string(), format!("card-{c}")),
        ("one", c) => {
            return Err(Refusal::bad_input(format!("{c:?} is not a card id (letters, digits, _ and -)")));
        }
        _ => return Err(Refusal::bad_input("choose one card or every card")),
    };
    pull(&app, &s, &id, EventData::CardFreezeRequested(CardFreezeRequested { card_id, reason })).await
}
