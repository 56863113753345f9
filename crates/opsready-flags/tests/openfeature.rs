//! The OpenFeature provider, black-box: flags evaluated through the
//! `open-feature` SDK's client, as code written against OpenFeature does.
//! Each test builds its own `OpenFeature` instance, never the process-wide
//! singleton, so tests run in parallel without sharing a provider.

// Helpers outside `#[test]` functions unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used, clippy::panic)]

use open_feature::{
    Client, EvaluationContext, EvaluationErrorCode, EvaluationReason, FlagMetadataValue,
    OpenFeature, StructValue, Value,
};
use opsready_flags::{
    Condition, Flag, FlagType, Flags, MemoryStore, OpenFeatureProvider, Rollout, Rule,
};
use serde_json::json;

/// Flags of every type, and an OpenFeature client whose provider evaluates
/// them.
async fn client() -> (Flags, Client) {
    let flags = Flags::new(MemoryStore::new()).await.unwrap();
    let declared = flags
        .declare([
            Flag::boolean("checkout.new-flow")
                .rule(Rule::new("on").when(Condition::equals("plan", "pro"))),
            Flag::boolean("checkout.seats")
                .rule(Rule::new("on").when(Condition::gte("seats", 10.0)))
                .rule(Rule::new("on").when(Condition::lt("ratio", 0.5)))
                .rule(Rule::new("on").when(Condition::equals("beta", true))),
            Flag::boolean("checkout.rollout").rollout(Rollout::new("on", 50.0)),
            Flag::new("banner.text", FlagType::String)
                .variant("plain", "Hello")
                .variant("french", "Bonjour")
                .default_variant("plain")
                .rule(Rule::new("french").when(Condition::equals("country", "fr"))),
            Flag::new("limits.max-items", FlagType::Number)
                .variant("ten", 10)
                .variant("half", 2.5)
                .default_variant("ten")
                .rule(Rule::new("half").when(Condition::equals("plan", "pro"))),
            Flag::new("ui.theme", FlagType::Json)
                .variant(
                    "blue",
                    json!({
                        "color": "blue",
                        "size": 3,
                        "ratio": 0.5,
                        "tags": ["a", "b"],
                        "nested": { "on": true },
                    }),
                )
                .default_variant("blue"),
            Flag::new("ui.list", FlagType::Json)
                .variant("two", json!(["a", "b"]))
                .default_variant("two"),
        ])
        .await
        .unwrap();
    assert_eq!(declared.len(), 7);

    let mut api = OpenFeature::default();
    api.set_provider(OpenFeatureProvider::new(flags.clone()))
        .await;
    assert_eq!(api.provider_metadata().await.name, "opsready-flags");
    (flags, api.create_client())
}

fn user(plan: &str) -> EvaluationContext {
    EvaluationContext::default()
        .with_targeting_key("user-1")
        .with_custom_field("plan", plan)
}

#[tokio::test]
async fn a_targeting_rule_serves_its_variant_through_the_client() {
    // Arrange
    let (_flags, client) = client().await;

    // Act
    let pro = client
        .get_bool_details("checkout.new-flow", Some(&user("pro")), None)
        .await
        .unwrap();
    let free = client
        .get_bool_details("checkout.new-flow", Some(&user("free")), None)
        .await
        .unwrap();

    // Assert
    assert!(pro.value);
    assert_eq!(pro.flag_key, "checkout.new-flow");
    assert_eq!(pro.variant.as_deref(), Some("on"));
    assert_eq!(pro.reason, Some(EvaluationReason::TargetingMatch));
    assert!(!free.value);
    assert_eq!(free.variant.as_deref(), Some("off"));
    assert_eq!(free.reason, Some(EvaluationReason::Default));
}

#[tokio::test]
async fn a_killed_flag_serves_its_default_variant_as_disabled() {
    let (flags, client) = client().await;
    flags
        .kill("checkout.new-flow", "alice", "incident 42")
        .await
        .unwrap();

    let details = client
        .get_bool_details("checkout.new-flow", Some(&user("pro")), None)
        .await
        .unwrap();

    assert!(!details.value);
    assert_eq!(details.variant.as_deref(), Some("off"));
    assert_eq!(details.reason, Some(EvaluationReason::Disabled));
    // The kill is the definition's second version: hooks can tell which
    // definition served.
    assert_eq!(
        details.flag_metadata.values.get("version"),
        Some(&FlagMetadataValue::Int(2))
    );
}

#[tokio::test]
async fn an_unknown_key_is_flag_not_found_and_the_caller_keeps_its_default() {
    let (_flags, client) = client().await;

    let result = client
        .get_bool_value("checkout.typo", Some(&user("pro")), None)
        .await;

    let error = result.clone().unwrap_err();
    assert_eq!(error.code, EvaluationErrorCode::FlagNotFound);
    assert_eq!(
        error.message.as_deref(),
        Some("no flag has the key `checkout.typo`")
    );
    assert!(result.unwrap_or(true));
}

#[tokio::test]
async fn asking_for_another_type_is_type_mismatch_and_the_caller_keeps_its_default() {
    let (_flags, client) = client().await;

    let as_string = client
        .get_string_value("checkout.new-flow", Some(&user("pro")), None)
        .await;
    let as_bool = client
        .get_bool_details("banner.text", Some(&user("pro")), None)
        .await;

    assert_eq!(
        as_string.clone().unwrap_err().code,
        EvaluationErrorCode::TypeMismatch
    );
    assert_eq!(
        as_string.unwrap_or_else(|_| "fallback".to_owned()),
        "fallback"
    );
    assert_eq!(as_bool.unwrap_err().code, EvaluationErrorCode::TypeMismatch);
}

#[tokio::test]
async fn a_percentage_without_a_targeting_key_is_targeting_key_missing() {
    let (_flags, client) = client().await;
    let anonymous = EvaluationContext::default().with_custom_field("plan", "pro");

    let without = client
        .get_bool_details("checkout.rollout", Some(&anonymous), None)
        .await;
    let with = client
        .get_bool_details("checkout.rollout", Some(&user("pro")), None)
        .await
        .unwrap();

    assert_eq!(
        without.unwrap_err().code,
        EvaluationErrorCode::TargetingKeyMissing
    );
    assert!(matches!(
        with.reason,
        Some(EvaluationReason::Split | EvaluationReason::Default)
    ));
}

#[tokio::test]
async fn string_flags_serve_their_variants() {
    let (_flags, client) = client().await;
    let french = user("free").with_custom_field("country", "fr");

    let plain = client
        .get_string_details("banner.text", Some(&user("free")), None)
        .await
        .unwrap();
    let bonjour = client
        .get_string_details("banner.text", Some(&french), None)
        .await
        .unwrap();

    assert_eq!(plain.value, "Hello");
    assert_eq!(plain.reason, Some(EvaluationReason::Default));
    assert_eq!(bonjour.value, "Bonjour");
    assert_eq!(bonjour.variant.as_deref(), Some("french"));
    assert_eq!(bonjour.reason, Some(EvaluationReason::TargetingMatch));
}

#[tokio::test]
async fn whole_numbers_resolve_as_int_and_fractions_only_as_float() {
    let (_flags, client) = client().await;

    let ten = client
        .get_int_details("limits.max-items", Some(&user("free")), None)
        .await
        .unwrap();
    let half_as_int = client
        .get_int_value("limits.max-items", Some(&user("pro")), None)
        .await;
    let half = client
        .get_float_details("limits.max-items", Some(&user("pro")), None)
        .await
        .unwrap();
    let ten_as_float = client
        .get_float_value("limits.max-items", Some(&user("free")), None)
        .await
        .unwrap();

    assert_eq!(ten.value, 10);
    assert_eq!(ten.variant.as_deref(), Some("ten"));
    assert_eq!(
        half_as_int.clone().unwrap_err().code,
        EvaluationErrorCode::TypeMismatch
    );
    assert_eq!(half_as_int.unwrap_or(7), 7);
    assert_eq!(half.value, 2.5);
    assert_eq!(half.reason, Some(EvaluationReason::TargetingMatch));
    assert_eq!(ten_as_float, 10.0);
}

#[tokio::test]
async fn json_objects_resolve_as_structs_and_other_json_does_not() {
    let (_flags, client) = client().await;

    let theme = client
        .get_struct_details::<StructValue>("ui.theme", Some(&user("free")), None)
        .await
        .unwrap();
    let list = client
        .get_struct_value::<StructValue>("ui.list", Some(&user("free")), None)
        .await;

    let expected = StructValue::default()
        .with_field("color", "blue")
        .with_field("size", 3)
        .with_field("ratio", 0.5)
        .with_field("tags", vec!["a", "b"])
        .with_field("nested", StructValue::default().with_field("on", true));
    assert_eq!(theme.value, expected);
    assert_eq!(theme.variant.as_deref(), Some("blue"));
    assert_eq!(theme.reason, Some(EvaluationReason::Static));
    assert_eq!(list.unwrap_err().code, EvaluationErrorCode::TypeMismatch);
    // The SDK's own value type, to check the nested array survived.
    assert_eq!(
        theme.value.fields["tags"],
        Value::Array(vec![Value::from("a"), Value::from("b")])
    );
}

#[tokio::test]
async fn integer_float_and_boolean_context_fields_reach_the_rules() {
    let (_flags, client) = client().await;
    let cases = [
        (
            EvaluationContext::default().with_custom_field("seats", 12),
            true,
        ),
        (
            EvaluationContext::default().with_custom_field("seats", 9),
            false,
        ),
        (
            EvaluationContext::default().with_custom_field("ratio", 0.25),
            true,
        ),
        (
            EvaluationContext::default().with_custom_field("beta", true),
            true,
        ),
        (
            EvaluationContext::default().with_custom_field("beta", "true"),
            false,
        ),
    ];

    for (ctx, expected) in cases {
        let value = client
            .get_bool_value("checkout.seats", Some(&ctx), None)
            .await
            .unwrap();
        assert_eq!(value, expected, "{ctx:?}");
    }
}

#[tokio::test]
async fn the_clients_context_is_merged_with_the_invocations() {
    let (_flags, mut client) = client().await;
    client.set_evaluation_context(EvaluationContext::default().with_custom_field("plan", "pro"));

    let value = client
        .get_bool_value(
            "checkout.new-flow",
            Some(&EvaluationContext::default().with_targeting_key("user-1")),
            None,
        )
        .await
        .unwrap();

    assert!(value);
}

#[tokio::test]
async fn a_value_the_caller_cannot_take_counts_as_an_error_not_as_served() {
    let (flags, client) = client().await;

    let half_as_int = client
        .get_int_value("limits.max-items", Some(&user("pro")), None)
        .await;
    let list = client
        .get_struct_value::<StructValue>("ui.list", Some(&user("free")), None)
        .await;

    assert_eq!(
        half_as_int.unwrap_err().message.as_deref(),
        Some("flag `limits.max-items` does not serve an integer")
    );
    assert_eq!(list.unwrap_err().code, EvaluationErrorCode::TypeMismatch);
    // Both callers fell back to their defaults: the counts a dashboard
    // shows say so, and no variant was served.
    let counts: Vec<(String, Option<String>, opsready_flags::Reason, u64)> = flags
        .evaluation_counts()
        .into_iter()
        .map(|c| {
            (
                c.flag.to_string(),
                c.variant.map(|v| v.to_string()),
                c.reason,
                c.count,
            )
        })
        .collect();
    assert_eq!(
        counts,
        [
            (
                "limits.max-items".to_owned(),
                None,
                opsready_flags::Reason::Error,
                1
            ),
            ("ui.list".to_owned(), None, opsready_flags::Reason::Error, 1),
        ],
        "{counts:?}"
    );
}
