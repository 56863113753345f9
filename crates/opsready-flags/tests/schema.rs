//! `DEFINITION_SCHEMA` against the definitions this crate writes and
//! refuses: every definition it writes passes, the definitions it refuses
//! for their structure fail, and the schema names exactly the operators,
//! types and kinds this version knows. `docs/flag-definition.schema.json`
//! is the same document (`OPSREADY_BLESS=1` rewrites it).

// Helpers outside `#[test]` functions unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used, clippy::panic)]

use opsready_flags::{
    Condition, DEFINITION_SCHEMA, Date, Flag, FlagType, Kind, Operator, Rollout, Rule,
};
use serde_json::{Value, json};

fn schema() -> Value {
    serde_json::from_str(DEFINITION_SCHEMA).unwrap()
}

fn validator() -> jsonschema::Validator {
    jsonschema::validator_for(&schema()).unwrap()
}

/// Definitions using every member, operator, type and kind.
fn written() -> Vec<Flag> {
    let semver = |op| Condition::semver("app_version", op, "1.2.3-rc.1+build.5");
    vec![
        Flag::boolean("checkout.new-flow")
            .enabled(false)
            .kind(Kind::Release)
            .owner("team-checkout")
            .description("The new checkout")
            .expires(Date::new(2031, 1, 31).unwrap())
            .rule(
                Rule::new("on")
                    .when(Condition::equals("country", "FR"))
                    .when(Condition::not_equals("plan", "free"))
                    .when(Condition::one_of("tier", ["gold", "silver"]))
                    .when(Condition::not_one_of("region", ["eu-1"])),
            )
            .rule(
                Rule::new("on")
                    .when(Condition::lt("age", 18.0))
                    .when(Condition::lte("age", 65.0))
                    .when(Condition::gt("orders", 3.0))
                    .when(Condition::gte("orders", 1.0)),
            )
            .rule(
                Rule::new("off")
                    .when(semver(Operator::SemverEq))
                    .when(semver(Operator::SemverLt))
                    .when(semver(Operator::SemverLte))
                    .when(semver(Operator::SemverGt))
                    .when(semver(Operator::SemverGte))
                    .when(Condition::percentage(25.5)),
            )
            .rule(Rule::new("on"))
            .rollout(Rollout::new("on", 12.34)),
        Flag::new("greeting.text", FlagType::String)
            .variant("plain", "Hello")
            .variant("loud", "HELLO")
            .default_variant("plain")
            .kind(Kind::Experiment),
        Flag::new("search.page-size", FlagType::Number)
            .variant("small", 10)
            .variant("large", 50.5)
            .default_variant("small")
            .kind(Kind::Ops),
        Flag::new("billing.limits", FlagType::Json)
            .variant("default", json!({ "invoices": 10, "tags": ["a"] }))
            .default_variant("default")
            .kind(Kind::Permission),
    ]
}

#[test]
fn every_definition_this_crate_writes_passes_the_schema() {
    let validator = validator();
    for flag in written() {
        flag.validate().unwrap();
        let definition = serde_json::to_value(&flag).unwrap();

        let errors: Vec<String> = validator
            .iter_errors(&definition)
            .map(|error| format!("{}: {error}", error.instance_path))
            .collect();

        assert!(errors.is_empty(), "{}: {errors:?}", flag.key);
    }
}

#[test]
fn definitions_refused_for_their_structure_fail_the_schema_too() {
    let validator = validator();
    let good = || {
        json!({
            "key": "a.flag",
            "type": "bool",
            "variants": { "on": true, "off": false },
            "default_variant": "off"
        })
    };
    let with = |pointer: &str, value: Value| {
        let mut definition = good();
        *definition.pointer_mut(pointer).unwrap() = value;
        definition
    };
    let condition = |condition: Value| {
        let mut definition = good();
        definition["rules"] = json!([{ "variant": "on", "conditions": [condition] }]);
        definition
    };
    let refused = [
        ("a key with spaces", with("/key", json!("Bad Key"))),
        ("no variants", with("/variants", json!({}))),
        (
            "a variant name with a space",
            with("/variants", json!({ "o n": true })),
        ),
        (
            "a string in a bool flag",
            with("/variants/on", json!("yes")),
        ),
        ("an unknown kind", {
            let mut definition = good();
            definition["kind"] = json!("forever");
            definition
        }),
        ("a rollout over 100 %", {
            let mut definition = good();
            definition["rollout"] = json!({ "variant": "on", "percentage": 150 });
            definition
        }),
        (
            "an unknown operator",
            condition(json!({ "attribute": "a", "op": "matches", "value": "x" })),
        ),
        (
            "`equals` without an attribute",
            condition(json!({ "op": "equals", "value": "x" })),
        ),
        (
            "`lt` with text",
            condition(json!({ "attribute": "age", "op": "lt", "value": "18" })),
        ),
        (
            "`one_of` with no values",
            condition(json!({ "attribute": "a", "op": "one_of", "value": [] })),
        ),
        (
            "`equals` with a list",
            condition(json!({ "attribute": "a", "op": "equals", "value": [1] })),
        ),
        (
            "`semver_gt` with a number",
            condition(json!({ "attribute": "v", "op": "semver_gt", "value": 1 })),
        ),
        (
            "`percentage` over 100",
            condition(json!({ "op": "percentage", "value": 101 })),
        ),
        (
            "a condition without a value",
            condition(json!({ "attribute": "plan", "op": "equals" })),
        ),
        (
            "`semver_gte` with two parts",
            condition(json!({ "attribute": "v", "op": "semver_gte", "value": "2.4" })),
        ),
        (
            "`semver_lt` with a leading zero",
            condition(json!({ "attribute": "v", "op": "semver_lt", "value": "2.04.0" })),
        ),
    ];
    assert!(validator.is_valid(&good()), "the starting point is refused");

    for (what, definition) in refused {
        let by_the_crate = serde_json::from_value::<Flag>(definition.clone())
            .map_err(|error| error.to_string())
            .and_then(|flag| {
                flag.validate()
                    .map_err(|violations| format!("{violations:?}"))
            });

        assert!(by_the_crate.is_err(), "{what}: the crate accepts it");
        assert!(
            !validator.is_valid(&definition),
            "{what}: the schema accepts it"
        );
    }
}

#[test]
fn the_schema_names_the_operators_types_and_kinds_this_version_knows() {
    let schema = schema();
    let names = |pointer: &str| -> Vec<String> {
        schema
            .pointer(pointer)
            .and_then(Value::as_array)
            .unwrap_or_else(|| panic!("no enum at {pointer}"))
            .iter()
            .map(|name| name.as_str().unwrap().to_owned())
            .collect()
    };

    assert_eq!(
        names("/$defs/condition/properties/op/enum"),
        Operator::KNOWN
    );
    let types = [
        FlagType::Bool,
        FlagType::String,
        FlagType::Number,
        FlagType::Json,
    ];
    assert_eq!(
        names("/properties/type/enum"),
        types.map(|flag_type| flag_type.as_str().to_owned())
    );
    let kinds = [Kind::Release, Kind::Experiment, Kind::Ops, Kind::Permission];
    assert_eq!(
        names("/properties/kind/enum"),
        kinds.map(|kind| kind.as_str().to_owned())
    );
}

#[test]
fn the_schema_in_the_docs_is_this_one() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/flag-definition.schema.json"
    );
    if std::env::var_os("OPSREADY_BLESS").is_some() {
        std::fs::write(path, DEFINITION_SCHEMA).unwrap();
    }
    let in_docs = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        in_docs == DEFINITION_SCHEMA,
        "docs/flag-definition.schema.json differs from DEFINITION_SCHEMA: run OPSREADY_BLESS=1 cargo test -p opsready-flags --test schema"
    );
}
