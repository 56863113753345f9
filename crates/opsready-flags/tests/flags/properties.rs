//! Properties of evaluation: shares of a rollout, sticky ramps, the kill
//! switch, and no panic whatever the definition and context.

use std::collections::BTreeSet;

use opsready_flags::{
    AttributeValue, Condition, Details, EvaluationContext, Flag, FlagType, Flags, MemoryStore,
    Operator, Reason, Rollout, Rule, StoredFlag,
};
use proptest::collection::{btree_map, vec};
use proptest::option;
use proptest::prelude::*;
use proptest::sample::select;
use serde_json::Value;

use crate::helpers::{FixedStore, runtime};

const KEYS: usize = 100_000;

fn on_share(flags: &Flags, key: &str, salt: &str) -> f64 {
    let on = (0..KEYS)
        .filter(|i| {
            let ctx = EvaluationContext::new().targeting_key(format!("{salt}{i}"));
            flags.bool_value(key, &ctx, false)
        })
        .count();
    #[allow(clippy::cast_precision_loss)]
    let share = on as f64 * 100.0 / KEYS as f64;
    share
}

fn on_set(flags: &Flags, key: &str, salt: &str, n: usize) -> BTreeSet<usize> {
    (0..n)
        .filter(|i| {
            let ctx = EvaluationContext::new().targeting_key(format!("{salt}{i}"));
            flags.bool_value(key, &ctx, false)
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(8))]

    #[test]
    fn a_rollout_reaches_its_percentage_within_one_point(
        percentage in 0.0..=100.0_f64,
        salt in "[a-z]{1,6}-",
    ) {
        let rt = runtime();
        let flags = rt.block_on(async {
            let flags = Flags::new(MemoryStore::new()).await.unwrap();
            let flag = Flag::boolean("exp.checkout").rollout(Rollout::new("on", percentage));
            flags.create(flag, "test", "measure").await.unwrap();
            flags
        });
        let share = on_share(&flags, "exp.checkout", &salt);
        prop_assert!(
            (share - percentage).abs() <= 1.0,
            "{share:.3}% on for a {percentage:.3}% rollout"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn ramping_up_keeps_everyone_on_and_ramping_back_brings_the_same_people(
        a in 0.0..=100.0_f64,
        b in 0.0..=100.0_f64,
        salt in "[a-z]{1,6}-",
    ) {
        let (low, high) = if a <= b { (a, b) } else { (b, a) };
        let rt = runtime();
        let flags = rt.block_on(async {
            let flags = Flags::new(MemoryStore::new()).await.unwrap();
            let flag = Flag::boolean("ramp.me").rollout(Rollout::new("on", low));
            flags.create(flag, "test", "start").await.unwrap();
            flags
        });
        let at_low = on_set(&flags, "ramp.me", &salt, 2_000);

        rt.block_on(flags.ramp("ramp.me", high, "test", "up")).unwrap();
        let at_high = on_set(&flags, "ramp.me", &salt, 2_000);
        prop_assert!(at_low.is_subset(&at_high), "someone was turned off by ramping up");

        rt.block_on(flags.ramp("ramp.me", 0.0, "test", "down")).unwrap();
        prop_assert!(on_set(&flags, "ramp.me", &salt, 2_000).is_empty());
        rt.block_on(flags.ramp("ramp.me", low, "test", "back")).unwrap();
        prop_assert_eq!(on_set(&flags, "ramp.me", &salt, 2_000), at_low);
    }
}

// Definitions that validate: a boolean flag with rules of every operator.

fn attribute() -> impl Strategy<Value = &'static str> {
    select(&["plan", "age", "app", "beta", "targeting_key"][..])
}

fn simple_scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<bool>().prop_map(Value::from),
        (-50_i64..50).prop_map(Value::from),
        select(&["free", "pro", "team", "1.2.3"][..]).prop_map(Value::from),
    ]
}

fn version() -> impl Strategy<Value = String> {
    (
        0_u8..4,
        0_u8..12,
        0_u8..3,
        option::of(select(&["rc.1", "beta"][..])),
    )
        .prop_map(|(major, minor, patch, pre)| match pre {
            Some(pre) => format!("{major}.{minor}.{patch}-{pre}"),
            None => format!("{major}.{minor}.{patch}"),
        })
}

fn valid_condition() -> impl Strategy<Value = Condition> {
    let semver_ops = select(vec![
        Operator::SemverEq,
        Operator::SemverLt,
        Operator::SemverLte,
        Operator::SemverGt,
        Operator::SemverGte,
    ]);
    prop_oneof![
        (attribute(), simple_scalar()).prop_map(|(a, v)| Condition::equals(a, v)),
        (attribute(), simple_scalar()).prop_map(|(a, v)| Condition::not_equals(a, v)),
        (attribute(), vec(simple_scalar(), 1..4)).prop_map(|(a, v)| Condition::one_of(a, v)),
        (attribute(), vec(simple_scalar(), 1..4)).prop_map(|(a, v)| Condition::not_one_of(a, v)),
        (attribute(), -50.0..50.0_f64).prop_map(|(a, v)| Condition::lt(a, v)),
        (attribute(), -50.0..50.0_f64).prop_map(|(a, v)| Condition::gte(a, v)),
        (attribute(), semver_ops, version()).prop_map(|(a, op, v)| Condition::semver(a, op, &v)),
        (0.0..=100.0_f64).prop_map(Condition::percentage),
    ]
}

fn valid_flag() -> impl Strategy<Value = Flag> {
    let rule = (vec(valid_condition(), 0..4), select(&["on", "off"][..])).prop_map(
        |(conditions, variant)| conditions.into_iter().fold(Rule::new(variant), Rule::when),
    );
    (vec(rule, 0..10), option::of(0.0..=100.0_f64)).prop_map(|(rules, rollout)| {
        let mut flag = Flag::boolean("k");
        flag.rules = rules;
        flag.rollout = rollout.map(|p| Rollout::new("on", p));
        flag
    })
}

fn attribute_value() -> impl Strategy<Value = AttributeValue> {
    prop_oneof![
        any::<bool>().prop_map(AttributeValue::from),
        (-60.0..60.0_f64).prop_map(AttributeValue::from),
        any::<f64>().prop_map(AttributeValue::from),
        select(&["free", "pro", "team", "", "1.2.3", "2.0.0-rc.1", "v1", "x"][..])
            .prop_map(AttributeValue::from),
        version().prop_map(AttributeValue::from),
    ]
}

fn context() -> impl Strategy<Value = EvaluationContext> {
    (
        option::of("[a-z0-9-]{0,12}"),
        vec(
            (
                select(&["plan", "age", "app", "beta", "targeting_key", "other"][..]),
                attribute_value(),
            ),
            0..6,
        ),
    )
        .prop_map(|(key, attributes)| {
            let base = match key {
                Some(key) => EvaluationContext::new().targeting_key(key),
                None => EvaluationContext::new(),
            };
            attributes
                .into_iter()
                .fold(base, |ctx, (name, value)| ctx.attribute(name, value))
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn a_killed_flag_serves_its_default_whatever_its_rules(
        flag in valid_flag(),
        contexts in vec(context(), 1..16),
    ) {
        prop_assert!(flag.validate().is_ok(), "{:?}", flag.validate());
        let rt = runtime();
        let flags = rt.block_on(async {
            let flags = Flags::new(MemoryStore::new()).await.unwrap();
            flags.create(flag, "test", "arrange").await.unwrap();
            flags.kill("k", "test", "incident").await.unwrap();
            flags
        });
        for ctx in &contexts {
            let details = flags.bool_details("k", ctx, true);
            prop_assert_eq!(details.reason, Reason::Disabled);
            prop_assert!(!details.value);
            prop_assert_eq!(details.variant.as_deref(), Some("off"));
            prop_assert_eq!(details.error, None);
        }
    }
}

// Anything at all, valid or not, as a store edited by hand might hold.

fn any_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        simple_scalar(),
        any::<f64>().prop_map(Value::from),
        version().prop_map(Value::from),
        "[a-z.]{0,6}".prop_map(Value::from),
    ];
    leaf.prop_recursive(2, 8, 4, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(Value::from),
            btree_map("[a-z]{1,3}", inner, 0..3)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

fn any_operator() -> impl Strategy<Value = Operator> {
    prop_oneof![
        select(&Operator::KNOWN[..]).prop_map(Operator::parse),
        Just(Operator::Other("near".to_owned())),
    ]
}

fn variant_name() -> impl Strategy<Value = &'static str> {
    select(&["on", "off", "a", "b", "missing", ""][..])
}

fn any_flag() -> impl Strategy<Value = Flag> {
    let condition = (
        option::of(select(&["plan", "age", "app", "targeting_key", ""][..])),
        any_operator(),
        any_value(),
    )
        .prop_map(|(attribute, op, value)| Condition::new(attribute.map(str::to_owned), op, value));
    let rule = (vec(condition, 0..4), variant_name()).prop_map(|(conditions, variant)| {
        conditions.into_iter().fold(Rule::new(variant), Rule::when)
    });
    let flag_type = select(vec![
        FlagType::Bool,
        FlagType::String,
        FlagType::Number,
        FlagType::Json,
    ]);
    (
        flag_type,
        btree_map(variant_name(), any_value(), 0..4),
        variant_name(),
        any::<bool>(),
        vec(rule, 0..5),
        option::of((variant_name(), any::<f64>())),
    )
        .prop_map(|(flag_type, variants, default, enabled, rules, rollout)| {
            let mut flag = Flag::new("placeholder", flag_type);
            flag.variants = variants
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect();
            flag.default_variant = default.to_owned();
            flag.enabled = enabled;
            flag.rules = rules;
            flag.rollout = rollout.map(|(variant, percentage)| Rollout::new(variant, percentage));
            flag
        })
}

/// What every evaluation promises: an error exactly when the caller's
/// default was served without a variant.
fn check<T: PartialEq + std::fmt::Debug>(
    details: &Details<T>,
    default: &T,
) -> Result<(), TestCaseError> {
    let errored = details.reason == Reason::Error;
    prop_assert_eq!(errored, details.error.is_some());
    prop_assert_eq!(errored, details.variant.is_none());
    if errored {
        prop_assert_eq!(&details.value, default);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn evaluating_any_definition_for_any_context_never_panics(
        definitions in vec(any_flag(), 1..4),
        contexts in vec(context(), 1..8),
    ) {
        let stored = definitions
            .into_iter()
            .enumerate()
            .map(|(i, mut flag)| {
                flag.key = format!("f{i}");
                StoredFlag::new(flag, 1)
            })
            .collect();
        let flags = runtime().block_on(Flags::new(FixedStore::new(stored))).unwrap();
        for ctx in &contexts {
            for key in ["f0", "f1", "f2", "f3", "nope"] {
                check(&flags.bool_details(key, ctx, true), &true)?;
                let fallback: std::sync::Arc<str> = "fallback".into();
                check(&flags.string_details(key, ctx, "fallback"), &fallback)?;
                check(&flags.number_details(key, ctx, -1.5), &-1.5)?;
                check(&flags.json_details(key, ctx, Value::Null), &Value::Null)?;
            }
        }
        // Every evaluation was counted, each under a bounded label.
        let total: u64 = flags.evaluation_counts().iter().map(|c| c.count).sum();
        prop_assert_eq!(total, contexts.len() as u64 * 5 * 4);
    }
}
