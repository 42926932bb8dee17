//! k8s/nats/auth.conf matches the authority table line for line: each
//! user may publish exactly the aggregates the table gives its writer, and
//! no service user holds a right that reaches around its publish
//! permissions (stream or consumer create, `$JS.API.>`, `_INBOX.>`,
//! `allow_responses`).

use std::collections::{BTreeMap, BTreeSet};

use spend_core::authority::{TABLE, Writer};

fn conf() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../k8s/nats/auth.conf")).expect("k8s/nats/auth.conf")
}

/// user → the lines of its block (between `user:` and the next `user:`).
fn blocks(conf: &str) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in conf.lines().map(str::trim).filter(|l| !l.starts_with('#')) {
        if let Some(u) = line.strip_prefix("user:") {
            current = Some(u.trim().to_string());
        }
        if let Some(u) = &current {
            out.entry(u.clone()).or_default().push(line.to_string());
        }
    }
    out
}

fn quoted(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .flat_map(|l| l.split('"').skip(1).step_by(2).map(str::to_string).collect::<Vec<_>>())
        .collect()
}

#[test]
fn each_service_user_publishes_exactly_the_aggregates_it_owns() {
    let blocks = blocks(&conf());
    for w in Writer::ALL {
        let lines = blocks.get(w.user()).unwrap_or_else(|| panic!("auth.conf has no user {}", w.user()));
        let granted: BTreeSet<String> = quoted(lines)
            .into_iter()
            .filter_map(|s| s.strip_prefix("spend.evt.*.").and_then(|r| r.strip_suffix(".*")).map(str::to_string))
            .collect();
        let owned: BTreeSet<String> = TABLE.iter().filter(|a| a.writer == w).map(|a| a.name.to_string()).collect();
        assert_eq!(granted, owned, "user {}: auth.conf grants {granted:?}, the table gives {owned:?}", w.user());
    }
}

#[test]
fn no_service_user_can_create_streams_or_consumers_or_answer_inboxes() {
    let blocks = blocks(&conf());
    for w in Writer::ALL {
        let lines = &blocks[w.user()];
        let text = lines.join("\n");
        assert!(!text.contains("allow_responses"), "{}: allow_responses", w.user());
        for s in quoted(lines) {
            for forbidden in [
                "$JS.API.>",
                "_INBOX.>",
                ">",
                "$JS.API.STREAM.CREATE",
                "$JS.API.STREAM.UPDATE",
                "$JS.API.CONSUMER.CREATE",
                "$JS.API.CONSUMER.DURABLE",
            ] {
                assert!(!s.starts_with(forbidden) || s == "spend.evt.>", "{}: grants {s}", w.user());
            }
            if s.starts_with("_INBOX") {
                assert_eq!(s, format!("_INBOX_{}.>", w.user()), "{}: subscribes only under its own inbox", w.user());
            }
            if s.starts_with("spend.evt.") && s != "spend.evt.>" {
                assert!(s.ends_with(".*") && s.matches('.').count() == 4, "{}: {s} is not one aggregate", w.user());
            }
        }
    }
}

/// docs/architecture.md's "Authority" table is the table in code: one row
/// per aggregate, `| \`name\` | user | \`type\`, ... or — | what |`, with
/// the same writer and the same event types.
#[test]
fn docs_architecture_lists_every_aggregate_with_its_writer() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/architecture.md")).expect("docs/architecture.md");
    let section = doc
        .split("\n## ")
        .find(|s| s.starts_with("Authority\n"))
        .expect("docs/architecture.md has an \"## Authority\" section");
    let mut documented: BTreeMap<String, (String, BTreeSet<String>)> = BTreeMap::new();
    for line in section.lines().map(str::trim).filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        assert!(cells.len() >= 3, "malformed Authority row: {line}");
        let aggregate = cells[0].trim_matches('`').to_string();
        let writer = cells[1].to_string();
        let types: BTreeSet<String> = cells[2].split('`').skip(1).step_by(2).map(str::to_string).collect();
        let again = documented.insert(aggregate.clone(), (writer, types));
        assert!(again.is_none(), "docs/architecture.md lists `{aggregate}` twice");
    }
    let table: BTreeMap<String, (String, BTreeSet<String>)> = TABLE
        .iter()
        .map(|a| {
            let types = a.types.iter().map(|t| t.to_string()).collect();
            (a.name.to_string(), (a.writer.user().to_string(), types))
        })
        .collect();
    let pairs =
        |m: &BTreeMap<String, (String, BTreeSet<String>)>| -> BTreeSet<(String, String)> { m.iter().map(|(a, (w, _))| (a.clone(), w.clone())).collect() };
    assert_eq!(
        pairs(&documented),
        pairs(&table),
        "docs/architecture.md's Authority table (left) differs from authority::TABLE (right) in aggregates or writers"
    );
    for (aggregate, (_, types)) in &table {
        assert_eq!(&documented[aggregate].1, types, "docs/architecture.md: event types of `{aggregate}`");
    }
}

/// The passkey page's user reads the event stream and may publish nothing
/// else: no subject of the log, no consumer, no other stream, only its own
/// inbox to subscribe under.
#[test]
fn the_passkey_page_user_only_reads() {
    let blocks = blocks(&conf());
    let lines = blocks.get("passkey").expect("auth.conf has a passkey user");
    let granted = quoted(lines);
    let reads = [
        "$JS.API.STREAM.INFO.SPEND_EVENTS",
        "$JS.API.STREAM.MSG.GET.SPEND_EVENTS",
        "$JS.API.DIRECT.GET.SPEND_EVENTS",
        "$JS.API.DIRECT.GET.SPEND_EVENTS.>",
        "_INBOX_passkey.>",
    ];
    for s in &granted {
        assert!(reads.contains(&s.as_str()), "the passkey user is granted {s}");
    }
    assert!(!lines.join("\n").contains("allow_responses"));
}
