//! Finds every field error serde would report, one at a time.
//!
//! serde stops at the first error. To report all of them, the value is
//! deserialized repeatedly: each error is recorded, then the offending
//! member is removed (or a missing one filled with a placeholder) so the
//! next pass gets further. The passes are bounded by the body's size (a
//! budget of bytes read over all passes), so a large hostile body full of
//! errors costs a few deserializations, not a hundred: they run on an
//! async worker, where no timeout can interrupt them.

use serde::de::DeserializeOwned;
use serde_json::Value;
use serde_path_to_error::Segment;

use super::StandIns;
use super::field_codes::{INVALID_TYPE, INVALID_VALUE, MISSING_FIELD, UNKNOWN_FIELD};
use crate::FieldError;

/// Upper bound on deserialization passes.
const MAX_PASSES: usize = 128;
/// The bytes of body all passes together may read: a body of up to 32 KiB
/// gets every pass, one of 2 MiB (axum's default limit) two.
const PASS_BUDGET: usize = 4 * 1024 * 1024;

/// How many passes a body of `len` bytes gets: at least one, at most
/// [`MAX_PASSES`].
pub(super) fn passes_for(len: usize) -> usize {
    (PASS_BUDGET / len.max(1)).clamp(1, MAX_PASSES)
}
/// Upper bound on reported errors; the rest would not help a client.
const MAX_ERRORS: usize = 32;
/// Stand-ins for a missing member, tried in turn until one deserializes;
/// then an enum's variant and [`TEXT_STAND_INS`](super::TEXT_STAND_INS).
fn placeholders() -> [Value; 6] {
    [
        Value::String(String::new()),
        Value::from(0),
        Value::Bool(false),
        Value::Object(serde_json::Map::new()),
        Value::Array(Vec::new()),
        Value::Null,
    ]
}

/// What the passes found.
#[derive(Debug)]
pub(super) struct Outcome<T> {
    /// `T`, if some pass succeeded; built from a repaired value when
    /// `errors` is not empty.
    pub(super) value: Option<T>,
    pub(super) errors: Vec<FieldError>,
    /// Pointers that were reported or hold placeholders; rule violations at
    /// or below them are about repaired data and must not be reported.
    pub(super) touched: Vec<String>,
}

impl<T> Outcome<T> {
    /// Whether `pointer` is at or below a repaired member.
    pub(super) fn is_touched(&self, pointer: &str) -> bool {
        self.touched.iter().any(|t| is_at_or_below(pointer, t))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Key(String),
    Index(usize),
}

/// Deserializes `T` from `value`, collecting every error it finds in at
/// most `passes` passes ([`passes_for`] the body's size).
pub(super) fn deserialize_all<T: DeserializeOwned>(mut value: Value, passes: usize) -> Outcome<T> {
    let mut outcome = Outcome {
        value: None,
        errors: Vec::new(),
        touched: Vec::new(),
    };
    // Pointer -> the placeholders tried there.
    let mut next_placeholder: Vec<(String, StandIns)> = Vec::new();
    let plain = placeholders();

    for _ in 0..passes.clamp(1, MAX_PASSES) {
        let error = match serde_path_to_error::deserialize::<_, T>(&value) {
            Ok(parsed) => {
                outcome.value = Some(parsed);
                return outcome;
            }
            Err(error) => error,
        };
        let message = error.inner().to_string();
        let kind = Kind::of(&message);
        let Some(mut steps) = steps(error.path()) else {
            // The path went through something serde_path_to_error cannot
            // name; report at the part it could and stop.
            record(&mut outcome, &known_prefix(error.path()), &kind, &message);
            break;
        };
        if let Kind::Missing(field) = &kind {
            steps.push(Step::Key(field.clone()));
        }
        let pointer = to_pointer(&steps);
        record(&mut outcome, &pointer, &kind, &message);

        if steps.is_empty() || outcome.errors.len() >= MAX_ERRORS {
            // The whole body is wrong (e.g. an array where an object
            // belongs): nothing left to repair.
            break;
        }

        let repaired = match (&kind, steps.last()) {
            // A member of an object that is not missing: take it out. If
            // the type requires it, the next pass reports it missing (not
            // recorded again, the pointer is touched) and fills it in.
            (Kind::Unknown | Kind::InvalidType | Kind::InvalidValue, Some(Step::Key(_)))
                if !has_placeholder(&next_placeholder, &pointer) =>
            {
                remove(&mut value, &steps)
            }
            // Missing members, array elements (removing one would shift
            // the pointers of the rest) and rejected placeholders: try the
            // next placeholder.
            _ => {
                let stand_ins = match next_placeholder.iter_mut().find(|(p, _)| *p == pointer) {
                    Some((_, stand_ins)) => stand_ins,
                    None => {
                        next_placeholder.push((pointer.clone(), StandIns::default()));
                        let last = next_placeholder.len() - 1;
                        &mut next_placeholder[last].1
                    }
                };
                stand_ins
                    .next(&plain, |text| Value::String(text.to_owned()), &message)
                    .is_some_and(|placeholder| set(&mut value, &steps, placeholder))
            }
        };
        if !repaired {
            break;
        }
    }
    outcome
}

fn has_placeholder(placeholders: &[(String, StandIns)], pointer: &str) -> bool {
    placeholders.iter().any(|(p, _)| p == pointer)
}

/// Records the error unless it is about data already reported or
/// repaired, and marks the pointer touched.
fn record<T>(outcome: &mut Outcome<T>, pointer: &str, kind: &Kind, message: &str) {
    if !outcome.is_touched(pointer) {
        outcome.errors.push(FieldError::pointer(
            pointer,
            kind.code(),
            kind.detail(message),
        ));
    }
    if !outcome.touched.iter().any(|t| t == pointer) {
        outcome.touched.push(pointer.to_owned());
    }
}

/// The kinds of error serde reports, recognised by the messages of
/// `serde::de::Error`'s provided methods.
#[derive(Debug, PartialEq, Eq)]
enum Kind {
    Missing(String),
    Unknown,
    InvalidType,
    InvalidValue,
}

impl Kind {
    fn of(message: &str) -> Self {
        if let Some(field) = backticked_after(message, "missing field `") {
            Self::Missing(field.to_owned())
        } else if message.starts_with("unknown field `") {
            Self::Unknown
        } else if message.starts_with("invalid type: ") {
            Self::InvalidType
        } else {
            Self::InvalidValue
        }
    }

    fn code(&self) -> &'static str {
        match self {
            Self::Missing(_) => MISSING_FIELD,
            Self::Unknown => UNKNOWN_FIELD,
            Self::InvalidType => INVALID_TYPE,
            Self::InvalidValue => INVALID_VALUE,
        }
    }

    fn detail(&self, message: &str) -> String {
        match self {
            Self::Missing(_) => "is required".to_owned(),
            _ => public_message(message),
        }
    }
}

/// serde's message, minus the Rust type names derived types put in their
/// expectations (`expected struct NewUser`).
fn public_message(message: &str) -> String {
    for (marker, replacement) in [
        (", expected struct ", ", expected an object"),
        (", expected tuple struct ", ", expected a value"),
        (", expected enum ", ", expected one of the allowed values"),
    ] {
        if let Some(at) = message.find(marker) {
            return format!("{}{replacement}", &message[..at]);
        }
    }
    message.to_owned()
}

fn backticked_after<'m>(message: &'m str, prefix: &str) -> Option<&'m str> {
    let rest = message.strip_prefix(prefix)?;
    rest.split('`').next()
}

fn steps(path: &serde_path_to_error::Path) -> Option<Vec<Step>> {
    path.iter()
        .map(|segment| match segment {
            Segment::Seq { index } => Some(Step::Index(*index)),
            Segment::Map { key } => Some(Step::Key(key.clone())),
            // An externally tagged variant is a key in JSON.
            Segment::Enum { variant } => Some(Step::Key(variant.clone())),
            Segment::Unknown => None,
        })
        .collect()
}

fn known_prefix(path: &serde_path_to_error::Path) -> String {
    let steps: Vec<Step> = path
        .iter()
        .map_while(|segment| match segment {
            Segment::Seq { index } => Some(Step::Index(*index)),
            Segment::Map { key } => Some(Step::Key(key.clone())),
            Segment::Enum { variant } => Some(Step::Key(variant.clone())),
            Segment::Unknown => None,
        })
        .collect();
    to_pointer(&steps)
}

/// RFC 6901: `~` becomes `~0`, `/` becomes `~1`.
fn to_pointer(steps: &[Step]) -> String {
    let mut pointer = String::new();
    for step in steps {
        pointer.push('/');
        match step {
            Step::Key(key) => pointer.push_str(&key.replace('~', "~0").replace('/', "~1")),
            Step::Index(index) => pointer.push_str(&index.to_string()),
        }
    }
    pointer
}

/// Whether `pointer` is `ancestor` or inside it.
pub(super) fn is_at_or_below(pointer: &str, ancestor: &str) -> bool {
    match pointer.strip_prefix(ancestor) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

fn parent_mut<'v>(value: &'v mut Value, steps: &[Step]) -> Option<&'v mut Value> {
    let mut current = value;
    for step in steps {
        current = match (current, step) {
            (Value::Object(map), Step::Key(key)) => map.get_mut(key)?,
            (Value::Array(items), Step::Index(index)) => items.get_mut(*index)?,
            _ => return None,
        };
    }
    Some(current)
}

fn remove(value: &mut Value, steps: &[Step]) -> bool {
    let Some((Step::Key(key), parent)) = steps.split_last() else {
        return false;
    };
    match parent_mut(value, parent) {
        Some(Value::Object(map)) => map.remove(key).is_some(),
        _ => false,
    }
}

fn set(value: &mut Value, steps: &[Step], new: Value) -> bool {
    let Some((last, parent)) = steps.split_last() else {
        return false;
    };
    match (parent_mut(value, parent), last) {
        (Some(Value::Object(map)), Step::Key(key)) => {
            map.insert(key.clone(), new);
            true
        }
        (Some(Value::Array(items)), Step::Index(index)) => match items.get_mut(*index) {
            Some(item) => {
                *item = new;
                true
            }
            None => false,
        },
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde::Deserialize;
    use serde_json::json;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Address {
        street: String,
        zip: u32,
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct User {
        email: String,
        age: u8,
        admin: bool,
        address: Address,
        tags: Vec<u32>,
        nickname: Option<String>,
    }

    fn pointers_and_codes<T>(outcome: &Outcome<T>) -> Vec<(String, String)> {
        outcome
            .errors
            .iter()
            .map(|e| {
                (
                    e.json_pointer().unwrap_or_default().to_owned(),
                    e.code().to_owned(),
                )
            })
            .collect()
    }

    #[test]
    fn every_wrong_and_missing_field_is_reported_in_one_go() {
        let body = json!({
            "email": 5,
            "age": 300,
            "address": { "zip": "x" },
            "tags": [1, "two", 3, false],
            "nickname": 7
        });
        let outcome = deserialize_all::<User>(body, MAX_PASSES);
        let found: BTreeSet<(String, String)> = pointers_and_codes(&outcome).into_iter().collect();
        let expected: BTreeSet<(String, String)> = [
            ("/email", "INVALID_TYPE"),
            ("/age", "INVALID_VALUE"),
            ("/admin", "MISSING_FIELD"),
            ("/address/zip", "INVALID_TYPE"),
            ("/address/street", "MISSING_FIELD"),
            ("/tags/1", "INVALID_TYPE"),
            ("/tags/3", "INVALID_TYPE"),
            ("/nickname", "INVALID_TYPE"),
        ]
        .into_iter()
        .map(|(p, c)| (p.to_owned(), c.to_owned()))
        .collect();
        assert_eq!(found, expected);
        assert_eq!(
            outcome.errors.len(),
            expected.len(),
            "reported twice: {:?}",
            outcome.errors
        );
    }

    #[test]
    fn a_missing_nested_object_is_reported_once_not_per_member() {
        let body = json!({ "email": "a@b.c", "age": 1, "admin": true, "tags": [] });
        let outcome = deserialize_all::<User>(body, MAX_PASSES);
        assert_eq!(
            pointers_and_codes(&outcome),
            [("/address".to_owned(), "MISSING_FIELD".to_owned())]
        );
    }

    #[test]
    fn a_value_no_plain_placeholder_fits_does_not_hide_the_errors_after_it() {
        #[derive(Debug, Deserialize)]
        #[serde(rename_all = "lowercase")]
        #[allow(dead_code)]
        enum Kind {
            Retail,
            Wholesale,
        }
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct Order {
            kind: Kind,
            from: std::net::IpAddr,
            name: String,
            qty: u32,
        }

        let outcome = deserialize_all::<Order>(
            json!({ "kind": "bogus", "from": "nowhere", "lines": [] }),
            MAX_PASSES,
        );

        assert_eq!(
            pointers_and_codes(&outcome),
            [
                ("/from".to_owned(), "INVALID_VALUE".to_owned()),
                ("/kind".to_owned(), "INVALID_VALUE".to_owned()),
                ("/name".to_owned(), "MISSING_FIELD".to_owned()),
                ("/qty".to_owned(), "MISSING_FIELD".to_owned()),
            ]
        );
    }

    #[test]
    fn unknown_fields_are_reported_when_denied() {
        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Strict {
            name: String,
        }
        let outcome =
            deserialize_all::<Strict>(json!({ "name": "x", "nmae": "y", "extra": 1 }), MAX_PASSES);
        assert_eq!(
            pointers_and_codes(&outcome),
            // serde_json keeps object members sorted by key.
            [
                ("/extra".to_owned(), "UNKNOWN_FIELD".to_owned()),
                ("/nmae".to_owned(), "UNKNOWN_FIELD".to_owned()),
            ]
        );
    }

    #[test]
    fn a_body_of_the_wrong_shape_is_reported_at_the_root() {
        for body in [json!("a string"), json!(null), json!(42)] {
            let outcome = deserialize_all::<User>(body, MAX_PASSES);
            assert_eq!(
                pointers_and_codes(&outcome),
                [(String::new(), "INVALID_TYPE".to_owned())]
            );
            assert!(outcome.value.is_none());
        }
    }

    #[test]
    fn a_large_body_gets_fewer_passes_and_so_fewer_errors() {
        assert_eq!(passes_for(0), MAX_PASSES);
        assert_eq!(passes_for(32 * 1024), MAX_PASSES);
        assert_eq!(passes_for(2 * 1024 * 1024), 2);
        assert_eq!(passes_for(64 * 1024 * 1024), 1);
        let body = || {
            json!({
                "email": 1,
                "age": "old",
                "admin": "yes",
                "address": { "street": "Main", "zip": 1 },
                "tags": []
            })
        };

        let all = deserialize_all::<User>(body(), MAX_PASSES);
        let two = deserialize_all::<User>(body(), 2);

        assert_eq!(all.errors.len(), 3, "{:?}", all.errors);
        assert_eq!(two.errors.len(), 2, "{:?}", two.errors);
    }

    #[test]
    fn a_valid_body_has_no_errors() {
        let body = json!({
            "email": "a@b.c", "age": 1, "admin": true,
            "address": { "street": "Main", "zip": 1 }, "tags": [1]
        });
        let outcome = deserialize_all::<User>(body, MAX_PASSES);
        assert!(outcome.errors.is_empty());
        assert!(outcome.value.is_some());
    }

    #[test]
    fn pointer_segments_are_escaped() {
        let steps = [
            Step::Key("a/b".into()),
            Step::Key("c~d".into()),
            Step::Index(2),
        ];
        assert_eq!(to_pointer(&steps), "/a~1b/c~0d/2");
    }

    #[test]
    fn a_pointer_is_below_its_ancestors_only() {
        assert!(is_at_or_below("/address/zip", "/address"));
        assert!(is_at_or_below("/address", "/address"));
        assert!(!is_at_or_below("/addresses", "/address"));
        assert!(is_at_or_below("/x", ""));
    }

    #[test]
    fn type_names_are_kept_out_of_the_detail() {
        let detail = public_message("invalid type: string \"x\", expected struct Address");
        assert_eq!(detail, "invalid type: string \"x\", expected an object");
    }
}
