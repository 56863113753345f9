//! An [OpenFeature] provider: code written against the `open-feature` SDK
//! evaluates these flags, with the same evaluator as [`Flags`].
//!
//! # Example
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! use open_feature::{EvaluationContext, EvaluationErrorCode, EvaluationReason, OpenFeature};
//! use opsready_flags::{Condition, Flag, Flags, MemoryStore, OpenFeatureProvider, Rule};
//!
//! let flags = Flags::new(MemoryStore::new()).await?;
//! flags
//!     .declare([Flag::boolean("greeting.shout")
//!         .rule(Rule::new("on").when(Condition::equals("plan", "pro")))])
//!     .await?;
//!
//! // An API instance of its own; `OpenFeature::singleton_mut()` is the
//! // process-wide one.
//! let mut api = OpenFeature::default();
//! api.set_provider(OpenFeatureProvider::new(flags.clone())).await;
//! let client = api.create_client();
//!
//! let pro = EvaluationContext::default()
//!     .with_targeting_key("user-1")
//!     .with_custom_field("plan", "pro");
//! let details = client.get_bool_details("greeting.shout", Some(&pro), None).await.unwrap();
//! assert!(details.value);
//! assert_eq!(details.variant.as_deref(), Some("on"));
//! assert_eq!(details.reason, Some(EvaluationReason::TargetingMatch));
//!
//! // The SDK reports a failure as `Err`; the caller supplies the default.
//! let typo = client.get_bool_value("greeting.shuot", Some(&pro), None).await;
//! assert_eq!(typo.as_ref().map_err(|e| &e.code), Err(&EvaluationErrorCode::FlagNotFound));
//! assert!(!typo.unwrap_or(false));
//! # Ok::<(), opsready_flags::Error>(())
//! # }).unwrap();
//! ```
//!
//! # Gotchas
//!
//! - The SDK is async and takes a default from nobody: a failed
//!   evaluation is `Err(EvaluationError)` with the code (`FLAG_NOT_FOUND`,
//!   `TYPE_MISMATCH`, `TARGETING_KEY_MISSING`, `PARSE_ERROR`, `GENERAL`),
//!   and the caller writes `.unwrap_or(default)`. Where no OpenFeature
//!   code is needed, call [`Flags`] directly: it is synchronous and serves
//!   your default itself.
//! - Every SDK call allocates: the client clones and merges the
//!   evaluation context, copies the key and metadata into its hook
//!   context and takes async locks for the provider, the hooks and the
//!   global context. This provider adds a conversion of the context (one
//!   string per field) and owned copies of strings, variants and structs.
//!   Evaluating through [`Flags`] allocates nothing: see the `openfeature`
//!   bench for the difference.
//! - Context mapping: the targeting key is the targeting key; string,
//!   boolean, integer and float fields become attributes of the same name
//!   (integers as numbers, exact up to 2^53); a date-time becomes its
//!   whole seconds since the Unix epoch, so that `lt`/`gt` rules compare
//!   instants; struct fields are opaque to the SDK and are left out.
//! - Numbers are `f64` here. `resolve_int_value` serves a number that is a
//!   whole value within `i64`, and `TYPE_MISMATCH` for any other (`2.5`).
//! - A JSON flag resolves as a struct only when its value is an object
//!   (anything else is `TYPE_MISMATCH`). OpenFeature has no `null`: null
//!   fields and null array elements are left out; integers within `i64`
//!   become `Int`, other numbers `Float`.
//! - The provider never reports itself not ready: build it from a loaded
//!   [`Flags`], and keep that handle current with [`Flags::follow`].
//!
//! [OpenFeature]: https://openfeature.dev

use std::fmt;

use open_feature::provider::{FeatureProvider, ProviderMetadata, ResolutionDetails};
use open_feature::{
    EvaluationContext as OfContext, EvaluationContextFieldValue, EvaluationError,
    EvaluationErrorCode, EvaluationReason, EvaluationResult, FlagMetadata, StructValue,
    Value as OfValue, async_trait,
};
use serde_json::Value;

use crate::context::EvaluationContext;
use crate::eval::{Details, ErrorCode, Reason, VariantValue};
use crate::flag::FlagType;
use crate::flags::Flags;

/// The name this provider reports in its metadata.
const NAME: &str = "opsready-flags";

/// An OpenFeature provider backed by a [`Flags`] handle: install it with
/// `OpenFeature::set_provider` and evaluate through the SDK's `Client`.
///
/// Cheap to clone; every clone evaluates the same flags as the handle it
/// was built from. See the [module docs](crate::openfeature) for how
/// contexts, values and errors map.
#[derive(Clone)]
pub struct OpenFeatureProvider {
    flags: Flags,
    metadata: ProviderMetadata,
}

impl OpenFeatureProvider {
    /// A provider that evaluates `flags`.
    #[must_use]
    pub fn new(flags: Flags) -> Self {
        Self {
            flags,
            metadata: ProviderMetadata::new(NAME),
        }
    }

    /// The flags this provider evaluates.
    #[must_use]
    pub fn flags(&self) -> &Flags {
        &self.flags
    }
}

impl fmt::Debug for OpenFeatureProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenFeatureProvider")
            .field("flags", &self.flags)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl FeatureProvider for OpenFeatureProvider {
    fn metadata(&self) -> &ProviderMetadata {
        &self.metadata
    }

    async fn resolve_bool_value(
        &self,
        flag_key: &str,
        evaluation_context: &OfContext,
    ) -> EvaluationResult<ResolutionDetails<bool>> {
        let details = self
            .flags
            .bool_details(flag_key, &context(evaluation_context), false);
        resolved(flag_key, "a boolean", details)
    }

    async fn resolve_int_value(
        &self,
        flag_key: &str,
        evaluation_context: &OfContext,
    ) -> EvaluationResult<ResolutionDetails<i64>> {
        // A number that is not whole is a type mismatch, counted as an
        // error where the flag's counts show it, not as served.
        let details = self.flags.details(
            flag_key,
            &context(evaluation_context),
            FlagType::Number,
            |value| match value {
                VariantValue::Number(number) => whole(*number),
                _ => None,
            },
            || 0,
        );
        resolved(flag_key, "an integer", details)
    }

    async fn resolve_float_value(
        &self,
        flag_key: &str,
        evaluation_context: &OfContext,
    ) -> EvaluationResult<ResolutionDetails<f64>> {
        let details = self
            .flags
            .number_details(flag_key, &context(evaluation_context), 0.0);
        resolved(flag_key, "a number", details)
    }

    async fn resolve_string_value(
        &self,
        flag_key: &str,
        evaluation_context: &OfContext,
    ) -> EvaluationResult<ResolutionDetails<String>> {
        let details = self.flags.details(
            flag_key,
            &context(evaluation_context),
            FlagType::String,
            |value| match value {
                VariantValue::String(text) => Some(text.to_string()),
                _ => None,
            },
            String::new,
        );
        resolved(flag_key, "a string", details)
    }

    async fn resolve_struct_value(
        &self,
        flag_key: &str,
        evaluation_context: &OfContext,
    ) -> EvaluationResult<ResolutionDetails<StructValue>> {
        // A JSON flag serving an array or a scalar is a type mismatch,
        // counted as an error, not as served.
        let details = self.flags.details(
            flag_key,
            &context(evaluation_context),
            FlagType::Json,
            |value| match value {
                VariantValue::Json(Value::Object(object)) => Some(structure(object.clone())),
                _ => None,
            },
            StructValue::default,
        );
        resolved(flag_key, "a JSON object", details)
    }
}

/// Our evaluation context for the SDK's: see the module docs.
fn context(of: &OfContext) -> EvaluationContext {
    let mut ctx = EvaluationContext::new();
    if let Some(key) = &of.targeting_key {
        ctx = ctx.targeting_key(key.as_str());
    }
    for (name, value) in &of.custom_fields {
        match value {
            EvaluationContextFieldValue::String(s) => ctx.set(name.clone(), s.as_str()),
            EvaluationContextFieldValue::Bool(b) => ctx.set(name.clone(), *b),
            EvaluationContextFieldValue::Int(i) => ctx.set(name.clone(), *i),
            EvaluationContextFieldValue::Float(f) => ctx.set(name.clone(), *f),
            EvaluationContextFieldValue::DateTime(at) => ctx.set(name.clone(), at.unix_timestamp()),
            // An `Arc<dyn Any>`: nothing a rule could compare.
            EvaluationContextFieldValue::Struct(_) => {}
        }
    }
    ctx
}

/// The SDK's result for `details`: `Err` with the OpenFeature code when
/// the evaluation failed, else the value.
fn resolved<T>(
    key: &str,
    wanted: &str,
    details: Details<T>,
) -> EvaluationResult<ResolutionDetails<T>> {
    let Details {
        value,
        variant,
        reason,
        error: failure,
        version,
        ..
    } = details;
    if let Some(code) = failure {
        return Err(evaluation_error(key, wanted, code));
    }
    // The definition's version, as OpenTelemetry's `feature_flag.version`
    // wants it: hooks can say which definition served.
    let flag_metadata = version.map(|version| {
        FlagMetadata::default().with_value("version", i64::try_from(version).unwrap_or(i64::MAX))
    });
    Ok(ResolutionDetails {
        value,
        variant: variant.map(|name| name.to_string()),
        reason: Some(evaluation_reason(reason)),
        flag_metadata,
    })
}

fn evaluation_reason(reason: Reason) -> EvaluationReason {
    match reason {
        Reason::Static => EvaluationReason::Static,
        Reason::Default => EvaluationReason::Default,
        Reason::TargetingMatch => EvaluationReason::TargetingMatch,
        Reason::Split => EvaluationReason::Split,
        Reason::Disabled => EvaluationReason::Disabled,
        Reason::Error => EvaluationReason::Error,
    }
}

fn evaluation_error(key: &str, wanted: &str, code: ErrorCode) -> EvaluationError {
    match code {
        ErrorCode::FlagNotFound => error(
            EvaluationErrorCode::FlagNotFound,
            format!("no flag has the key `{key}`"),
        ),
        ErrorCode::TypeMismatch => error(
            EvaluationErrorCode::TypeMismatch,
            format!("flag `{key}` does not serve {wanted}"),
        ),
        ErrorCode::TargetingKeyMissing => error(
            EvaluationErrorCode::TargetingKeyMissing,
            format!("flag `{key}` serves a percentage, and the context has no targeting key"),
        ),
        ErrorCode::ParseError => error(
            EvaluationErrorCode::ParseError,
            format!("flag `{key}` has a definition this version cannot evaluate"),
        ),
        ErrorCode::General => {
            let message = format!("flag `{key}` could not be evaluated");
            // The SDK's `GENERAL` carries its own text, which is what it
            // displays as the code.
            error(EvaluationErrorCode::General(message.clone()), message)
        }
    }
}

fn error(code: EvaluationErrorCode, message: String) -> EvaluationError {
    EvaluationError {
        code,
        message: Some(message),
    }
}

/// `number` as an `i64`, when it is a whole number within range.
fn whole(number: f64) -> Option<i64> {
    // -2^63 and 2^63 are exact in f64; `i64::MAX as f64` would round up to
    // 2^63, which does not fit.
    const MIN: f64 = -9_223_372_036_854_775_808.0;
    const END: f64 = 9_223_372_036_854_775_808.0;
    // NaN and the infinities fail `fract() == 0.0` too.
    if number.fract() == 0.0 && (MIN..END).contains(&number) {
        // Whole and in range: the cast is exact.
        Some(number as i64)
    } else {
        None
    }
}

fn structure(object: serde_json::Map<String, Value>) -> StructValue {
    StructValue {
        fields: object
            .into_iter()
            .filter_map(|(name, value)| Some((name, of_value(value)?)))
            .collect(),
    }
}

/// The SDK's value for a JSON value; `None` for `null`, which it cannot
/// hold.
fn of_value(value: Value) -> Option<OfValue> {
    Some(match value {
        Value::Null => return None,
        Value::Bool(b) => OfValue::Bool(b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => OfValue::Int(i),
            // Every JSON number is an f64 at worst (u64 above i64::MAX).
            None => OfValue::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => OfValue::String(s),
        Value::Array(items) => OfValue::Array(items.into_iter().filter_map(of_value).collect()),
        Value::Object(object) => OfValue::Struct(structure(object)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::AttributeValue;

    #[test]
    fn whole_numbers_within_i64_convert_and_others_do_not() {
        assert_eq!(whole(42.0), Some(42));
        assert_eq!(whole(-0.0), Some(0));
        assert_eq!(whole(-9_223_372_036_854_775_808.0), Some(i64::MIN));
        assert_eq!(whole(2.5), None);
        assert_eq!(whole(9_223_372_036_854_775_808.0), None);
        assert_eq!(whole(f64::NAN), None);
        assert_eq!(whole(f64::INFINITY), None);
    }

    #[test]
    fn context_fields_map_by_type_and_structs_are_left_out() {
        let of = OfContext::default()
            .with_targeting_key("user-1")
            .with_custom_field("plan", "pro")
            .with_custom_field("beta", true)
            .with_custom_field("seats", 12)
            .with_custom_field("ratio", 0.5)
            .with_custom_field("opaque", EvaluationContextFieldValue::new_struct(7_u8));
        let ctx = context(&of);
        assert_eq!(ctx.get_targeting_key(), Some("user-1"));
        assert_eq!(
            ctx.get("plan"),
            Some(&AttributeValue::String("pro".to_owned()))
        );
        assert_eq!(ctx.get("beta"), Some(&AttributeValue::Bool(true)));
        assert_eq!(ctx.get("seats"), Some(&AttributeValue::Number(12.0)));
        assert_eq!(ctx.get("ratio"), Some(&AttributeValue::Number(0.5)));
        assert_eq!(ctx.get("opaque"), None);
        assert_eq!(ctx.attributes().count(), 4);
    }

    #[test]
    fn nulls_are_left_out_of_structs_and_arrays() {
        let Value::Object(object) = serde_json::json!({
            "gone": null,
            "list": [1, null, "two"],
            "big": 18_446_744_073_709_551_615_u64,
        }) else {
            unreachable!("a JSON object literal");
        };
        let structure = structure(object);
        assert!(!structure.fields.contains_key("gone"));
        assert_eq!(
            structure.fields["list"],
            OfValue::Array(vec![OfValue::Int(1), OfValue::String("two".to_owned())])
        );
        assert_eq!(
            structure.fields["big"],
            OfValue::Float(18_446_744_073_709_551_615_u64 as f64)
        );
    }
}
