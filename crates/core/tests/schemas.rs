//! Every event the code can emit validates against its published JSON
//! Schema (schemas/events/), and every schema belongs to an event type.

use std::path::PathBuf;

use jsonschema::{Draft, Validator};
use serde_json::Value;
use spend_core::events::{EVENT_TYPES, samples};
use spend_core::{Actor, Envelope};

const BASE: &str = "https://spendsignoff.dev/schemas/events/";

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../schemas/events")
}

fn load(name: &str) -> Value {
    let path = dir().join(name);
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn validator(event_type: &str) -> Validator {
    jsonschema::draft202012::options()
        .should_validate_formats(true)
        .with_resource(
            format!("{BASE}envelope.schema.json"),
            Draft::Draft202012.create_resource(load("envelope.schema.json")),
        )
        .with_resource(
            format!("{BASE}common.schema.json"),
            Draft::Draft202012.create_resource(load("common.schema.json")),
        )
        .build(&load(&format!("{event_type}.json")))
        .unwrap_or_else(|e| panic!("schema for {event_type} does not compile: {e}"))
}

fn errors(v: &Validator, instance: &Value) -> Vec<String> {
    v.iter_errors(instance).map(|e| format!("{}: {e}", e.instance_path)).collect()
}

#[test]
fn every_event_the_code_emits_validates_against_its_schema() {
    for data in samples() {
        let t = data.event_type();
        let env = Envelope::new("spendsignoff/test", "acme", Actor::service("test"), "draft/d1", data);
        let json: Value = serde_json::from_slice(&env.to_bytes()).unwrap();
        let errs = errors(&validator(t), &json);
        assert!(errs.is_empty(), "{t}: {errs:?}");
    }
}

#[test]
fn every_schema_file_names_an_event_type_and_back() {
    let mut files: Vec<String> = std::fs::read_dir(dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("spend.") && n.ends_with(".json"))
        .map(|n| n.trim_end_matches(".json").to_string())
        .collect();
    files.sort();
    let mut types: Vec<String> = EVENT_TYPES.iter().map(|s| s.to_string()).collect();
    types.sort();
    assert_eq!(files, types);
}

#[test]
fn schemas_refuse_floats_for_money_and_a_wrong_type() {
    let data = samples().into_iter().next().unwrap();
    let t = data.event_type();
    let env = Envelope::new("spendsignoff/test", "acme", Actor::agent("key_1"), "draft/d1", data);
    let mut json: Value = serde_json::from_slice(&env.to_bytes()).unwrap();
    let v = validator(t);
    json["data"]["spend_impact"]["minor_units"] = serde_json::json!(12.5);
    assert!(!errors(&v, &json).is_empty(), "a float amount must be refused");
    json["data"]["spend_impact"]["minor_units"] = serde_json::json!(1250);
    json["type"] = serde_json::json!("spend.card.frozen.v1");
    assert!(!errors(&v, &json).is_empty(), "the type must match the schema");
    json["type"] = serde_json::json!(t);
    json["actor"]["kind"] = serde_json::json!("robot");
    assert!(!errors(&v, &json).is_empty(), "unknown actor kinds are refused");
}
