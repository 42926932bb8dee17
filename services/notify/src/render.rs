//! A [`Message`] as Slack Block Kit and as an email (text and HTML parts).
//!
//! Everything in a message but its labels may have been written by an
//! agent (or by whoever forged an alert's detail), and an agent must not
//! be able to turn a notification into a phishing message. So:
//! - **Slack**: every value is escaped (`&`, `<`, `>` as Slack requires,
//!   which leaves `<!channel>`, `<@U…>` and `<https://…|text>` as text)
//!   and set in code (inline or a block), where mrkdwn formats nothing and
//!   links nothing; backticks inside are replaced so the code cannot be
//!   closed early; text objects are `verbatim`, so Slack links no bare URL
//!   or channel name. The one link is our own button.
//! - **Email**: the HTML part escapes everything (maud); in both parts a
//!   URL, a bare domain or an address written by someone else is defanged
//!   (`https[:]//…`, `evil[.]example`, `pay[@]evil[.]example`), so no mail
//!   client turns it into a link. The subject is one line of at most 180
//!   characters, without control characters.
//!
//! Text is cut to Slack's limits (a field 2,000 characters, a section
//! 3,000) and to the same sizes in email, so no input grows a message
//! without bound.

use maud::{DOCTYPE, html};
use serde_json::{Value, json};

use super::plan::{Message, short_time};

/// Longest value shown, in characters.
const VALUE_MAX: usize = 300;
/// Longest quoted text shown, in characters.
const QUOTE_MAX: usize = 2_000;
/// Slack allows 10 fields in a section.
const FIELDS_MAX: usize = 10;

/// Cuts `s` to `max` characters, saying so.
fn cut(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// Drops control characters (but keeps line breaks and tabs where
/// `keep_lines`): they have no business in a notification, and a bare CR
/// or a bidi override can disguise what a line says.
fn clean(s: &str, keep_lines: bool) -> String {
    s.chars()
        .filter(|c| !matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}'))
        .map(|c| {
            if c.is_control() && !(keep_lines && (c == '\n' || c == '\t')) {
                ' '
            } else {
                c
            }
        })
        .collect()
}

/// Slack's escaping of its three control characters.
pub fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// A value as inline code in mrkdwn: escaped, no backtick of its own.
fn slack_code(s: &str, max: usize) -> String {
    let s = clean(&cut(s, max), false).replace('`', "ˋ");
    format!("`{}`", slack_escape(s.trim()))
}

/// Text as a code block in mrkdwn.
fn slack_block(s: &str) -> String {
    let s = clean(&cut(s, QUOTE_MAX), true).replace('`', "ˋ");
    format!("```{}```", slack_escape(s.trim()))
}

fn mrkdwn(text: String) -> Value {
    json!({ "type": "mrkdwn", "text": text, "verbatim": true })
}

/// The Block Kit payload of an incoming webhook.
pub fn slack(m: &Message) -> Value {
    let mut blocks = vec![json!({
        "type": "header",
        "text": { "type": "plain_text", "text": cut(&clean(&m.title, false), 150), "emoji": false }
    })];
    let fields: Vec<Value> = m
        .facts
        .iter()
        .take(FIELDS_MAX)
        .map(|(label, value)| mrkdwn(format!("*{}*\n{}", slack_escape(label), slack_code(value, VALUE_MAX))))
        .collect();
    if !fields.is_empty() {
        blocks.push(json!({ "type": "section", "fields": fields }));
    }
    if let Some((label, text)) = &m.quote {
        blocks.push(json!({ "type": "section", "text": mrkdwn(format!("*{}*\n{}", slack_escape(label), slack_block(text))) }));
    }
    if !m.reasons.is_empty() {
        let lines: Vec<String> = m.reasons.iter().take(10).map(|r| format!("• {}", slack_code(r, VALUE_MAX))).collect();
        blocks.push(json!({ "type": "section", "text": mrkdwn(format!("*Policy*\n{}", lines.join("\n"))) }));
    }
    if let Some(at) = &m.expires_at {
        blocks.push(json!({ "type": "context", "elements": [mrkdwn(format!("Expires {}", slack_escape(&short_time(at))))] }));
    }
    if let Some((label, url)) = &m.link {
        blocks.push(json!({
            "type": "actions",
            "elements": [{
                "type": "button",
                "text": { "type": "plain_text", "text": label, "emoji": false },
                "url": url,
                "style": "primary",
                "action_id": "review"
            }]
        }));
    }
    // The notification text (previews, screen readers): the title only,
    // which is ours, so nothing an agent wrote is in it unescaped.
    json!({ "text": slack_escape(&clean(&m.title, false)), "blocks": blocks })
}

/// Defangs what a mail client would turn into a link in text someone
/// else wrote: `https://x` becomes `https[:]//x`, and a dot or an `@`
/// between a letter or digit and a letter becomes `[.]` or `[@]`, so bare
/// domains (`www.evil.example/pay`), addresses (`pay@evil.example`) and
/// `mailto:` targets are text. Amounts (`50.00`) are left as they are.
fn defang(s: &str) -> String {
    let s = s.replace("://", "[:]//");
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len() + 8);
    for (i, c) in chars.iter().enumerate() {
        let joins = i > 0 && chars[i - 1].is_alphanumeric() && chars.get(i + 1).is_some_and(|n| n.is_alphabetic());
        match c {
            '.' if joins => out.push_str("[.]"),
            '@' if joins => out.push_str("[@]"),
            other => out.push(*other),
        }
    }
    out
}

/// An email: (subject, text part, HTML part).
pub struct Email {
    pub subject: String,
    pub text: String,
    pub html: String,
}

pub fn email(m: &Message) -> Email {
    let subject = cut(&defang(&clean(&m.summary, false)), 180);
    let value = |v: &str| defang(&clean(&cut(v, VALUE_MAX), false));
    let quote = m.quote.as_ref().map(|(l, t)| (l.clone(), defang(&clean(&cut(t, QUOTE_MAX), true))));
    let mut text = format!("{}\n\n", m.title);
    for (label, v) in &m.facts {
        text.push_str(&format!("{label}: {}\n", value(v)));
    }
    if let Some((label, t)) = &quote {
        text.push_str(&format!("\n{label} (quoted as written):\n"));
        for line in t.lines() {
            text.push_str(&format!("> {line}\n"));
        }
    }
    if !m.reasons.is_empty() {
        text.push_str("\nPolicy:\n");
        for r in &m.reasons {
            text.push_str(&format!("- {}\n", value(r)));
        }
    }
    if let Some(at) = &m.expires_at {
        text.push_str(&format!("\nExpires {}\n", short_time(at)));
    }
    if let Some((label, url)) = &m.link {
        text.push_str(&format!("\n{label}: {url}\n"));
    }
    text.push_str("\n-- \nSpendSignoff. Approving needs your passkey in the approval app; nobody will ask for it by email.\n");
    let html = html! {
        (DOCTYPE)
        html {
            head { meta charset="utf-8"; title { (subject) } }
            body style="font-family: sans-serif" {
                h1 style="font-size: 1.2em" { (m.title) }
                table {
                    @for (label, v) in &m.facts {
                        tr { th style="text-align: left; padding-right: 1em" { (label) } td { code { (value(v)) } } }
                    }
                }
                @if let Some((label, t)) = &quote {
                    p { strong { (label) } " (quoted as written)" }
                    pre style="white-space: pre-wrap; background: #f4f4f4; padding: 0.5em" { (t) }
                }
                @if !m.reasons.is_empty() {
                    p { strong { "Policy" } }
                    ul { @for r in &m.reasons { li { code { (value(r)) } } } }
                }
                @if let Some(at) = &m.expires_at {
                    p { "Expires " (short_time(at)) }
                }
                @if let Some((label, url)) = &m.link {
                    p { a href=(url) { (label) } }
                }
                p style="color: #666; font-size: 0.9em" {
                    "SpendSignoff. Approving needs your passkey in the approval app; nobody will ask for it by email."
                }
            }
        }
    }
    .into_string();
    Email { subject, text, html }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hostile() -> Message {
        Message {
            title: "Approval needed".into(),
            summary: "Approval needed: payment on <!channel> act_1, 12.00 USD until 2026-12-04 15:00 UTC\r\nBcc: x@evil.example".into(),
            facts: vec![
                ("Merchant".into(), "<https://evil.example/login|openai.com> *urgent* `x`".into()),
                ("Account".into(), "<@U0123> &amp; <!here>".into()),
            ],
            quote: Some((
                "Agent's rationale".into(),
                "<!channel> please approve fast: https://evil.example/approve ```\n*bold* _it_ ~s~ \u{202e}txet".into(),
            )),
            reasons: vec!["approval.required: <!everyone>".into()],
            expires_at: Some("2026-12-04T15:00:00Z".into()),
            link: Some(("Review".into(), "http://localhost:7200/a/abc".into())),
        }
    }

    #[test]
    fn agent_text_reaches_slack_inert_and_the_only_link_is_ours() {
        let v = slack(&hostile());
        let s = v.to_string();
        for live in ["<!channel>", "<!here>", "<!everyone>", "<@U0123>", "<https://evil", "|openai.com>"] {
            assert!(!s.contains(live), "{live} reached Slack live: {s}");
        }
        assert!(s.contains("&lt;!channel&gt;"), "shown as text: {s}");
        assert!(s.contains("&amp;amp;"), "an entity an agent wrote is shown, not decoded: {s}");
        assert!(!s.contains('\u{202e}'), "no bidi override: {s}");
        // Every text object is verbatim (no auto-linking of bare URLs).
        for b in v["blocks"].as_array().unwrap() {
            for t in b["fields"].as_array().into_iter().flatten().chain(b["text"].as_object().map(|_| &b["text"])) {
                if t["type"] == "mrkdwn" {
                    assert_eq!(t["verbatim"], true, "{t}");
                }
            }
        }
        // Agent text sits in code: the rationale's own ``` cannot close it.
        let quote = v["blocks"][2]["text"]["text"].as_str().unwrap();
        assert!(quote.starts_with("*Agent's rationale*\n```") && quote.ends_with("```"), "{quote}");
        assert_eq!(quote.matches("```").count(), 2, "{quote}");
        let buttons: Vec<&Value> = v["blocks"].as_array().unwrap().iter().filter(|b| b["type"] == "actions").collect();
        assert_eq!(buttons[0]["elements"][0]["url"], "http://localhost:7200/a/abc");
        assert_eq!(v["text"], "Approval needed");
    }

    #[test]
    fn agent_text_reaches_email_escaped_and_defanged_with_a_one_line_subject() {
        let e = email(&hostile());
        assert!(!e.subject.contains('\n') && !e.subject.contains('\r'), "{:?}", e.subject);
        assert!(e.subject.chars().count() <= 180);
        assert!(!e.html.contains("<https://evil") && !e.html.contains("<!channel>"), "{}", e.html);
        assert!(e.html.contains("&lt;!channel&gt;"), "{}", e.html);
        assert!(!e.html.contains("https://evil") && !e.text.contains("https://evil"), "defanged");
        assert!(e.text.contains("https[:]//evil[.]example/approve"), "{}", e.text);
        assert!(e.html.contains(r#"href="http://localhost:7200/a/abc""#), "our link stays a link");
        assert_eq!(e.html.matches("href=").count(), 1, "and it is the only one");
        assert!(e.text.contains("> <!channel> please approve fast"), "quoted in the text part: {}", e.text);
    }

    #[test]
    fn bare_domains_and_addresses_are_defanged_and_amounts_left_alone() {
        let d = defang("pay at www.evil.example/pay or pay@evil.example, mailto:x@y.io; 50.00 USD, v1.2");
        for linkable in ["www.evil", "evil.example", "pay@evil", "x@y", "y.io"] {
            assert!(!d.contains(linkable), "{linkable} in {d}");
        }
        assert!(d.contains("www[.]evil[.]example/pay") && d.contains("pay[@]evil[.]example"), "{d}");
        assert!(d.contains("50.00 USD") && d.contains("v1.2"), "{d}");
    }

    #[test]
    fn a_huge_value_is_cut_to_the_channels_limits() {
        let mut m = hostile();
        m.quote = Some(("Agent's rationale".into(), "x".repeat(1_000_000)));
        m.facts.push(("Merchant".into(), "y".repeat(100_000)));
        let s = slack(&m);
        for b in s["blocks"].as_array().unwrap() {
            if let Some(t) = b["text"]["text"].as_str() {
                assert!(t.chars().count() <= 3_000, "{}", t.len());
            }
            for f in b["fields"].as_array().into_iter().flatten() {
                assert!(f["text"].as_str().unwrap().chars().count() <= 2_000);
            }
        }
        let e = email(&m);
        assert!(e.text.len() < 10_000 && e.html.len() < 12_000, "{} {}", e.text.len(), e.html.len());
    }
}
