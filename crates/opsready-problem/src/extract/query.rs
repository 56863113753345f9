use std::ops::{Deref, DerefMut};

use axum::extract::FromRequestParts;
use http::request::Parts;
use serde::de::DeserializeOwned;
use serde_path_to_error::Segment;

use super::StandIns;
use super::field_codes::{INVALID_TYPE, INVALID_VALUE, MISSING_FIELD, UNKNOWN_FIELD};
use crate::{FieldError, Problem, codes};

/// Upper bound on deserialization passes over the query.
const MAX_PASSES: usize = 64;
/// Stand-ins for a missing parameter, tried in turn: `0` also satisfies
/// text, `false` a flag; then an enum's variant and
/// [`TEXT_STAND_INS`](super::TEXT_STAND_INS).
const PLACEHOLDERS: [&str; 3] = ["0", "false", ""];

/// Query parameters, rejected with 400 `INVALID_QUERY_PARAMETER` naming
/// every failing parameter in `detail` and in `errors[].parameter`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Query<T>(pub T);

impl<T> Query<T> {
    /// The parsed parameters.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parse(parts.uri.query().unwrap_or_default()).map(Self)
    }
}

/// Parses `query`, reporting every failing parameter: each pass records
/// the error, drops the parameter (or fills in a missing one) and retries.
fn parse<T: DeserializeOwned>(query: &str) -> Result<T, Problem> {
    let mut pairs: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    let mut errors: Vec<FieldError> = Vec::new();
    let mut reported: Vec<String> = Vec::new();
    let mut next_placeholder: Vec<(String, StandIns)> = Vec::new();

    for _ in 0..MAX_PASSES {
        let encoded = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&pairs)
            .finish();
        let deserializer =
            serde_urlencoded::Deserializer::new(form_urlencoded::parse(encoded.as_bytes()));
        let error = match serde_path_to_error::deserialize::<_, T>(deserializer) {
            Ok(value) if errors.is_empty() => return Ok(value),
            Ok(_) => break,
            Err(error) => error,
        };
        let message = error.inner().to_string();
        let missing = message
            .strip_prefix("missing field `")
            .and_then(|rest| rest.split('`').next())
            .map(str::to_owned);
        let name = match (&missing, error.path().iter().next()) {
            (Some(field), _) => Some(field.clone()),
            (None, Some(Segment::Map { key })) => Some(key.clone()),
            _ => None,
        };
        let Some(name) = name else {
            // Not about one parameter (e.g. the type is not a struct).
            errors.push(FieldError::parameter("", INVALID_VALUE, message));
            break;
        };

        if !reported.contains(&name) {
            let (code, detail) = if missing.is_some() {
                (MISSING_FIELD, "is required".to_owned())
            } else if message.starts_with("unknown field `") {
                (UNKNOWN_FIELD, message.clone())
            } else {
                let value = pairs
                    .iter()
                    .find(|(key, _)| *key == name)
                    .map(|(_, value)| value.as_str());
                (invalid_code(&message, value), message.clone())
            };
            errors.push(FieldError::parameter(name.clone(), code, detail));
            reported.push(name.clone());
        }

        let had_value = pairs.iter().any(|(key, _)| *key == name);
        pairs.retain(|(key, _)| *key != name);
        // A placeholder refused: the next one at once, told by this
        // refusal (an enum's names its variants).
        let refused = next_placeholder.iter().any(|(placed, _)| *placed == name);
        if missing.is_some() || !had_value || refused {
            let stand_ins = match next_placeholder.iter_mut().find(|(n, _)| *n == name) {
                Some((_, stand_ins)) => stand_ins,
                None => {
                    next_placeholder.push((name.clone(), StandIns::default()));
                    let last = next_placeholder.len() - 1;
                    &mut next_placeholder[last].1
                }
            };
            let Some(placeholder) =
                stand_ins.next(&PLACEHOLDERS.map(str::to_owned), str::to_owned, &message)
            else {
                break;
            };
            pairs.push((name, placeholder));
        }
    }
    Err(query_problem(errors))
}

/// Whether a parameter that failed is of the wrong type (`page=two` for a
/// number: `INVALID_TYPE`, as `Path` and `Json` say) or a value the type
/// refuses (`size=-3` for an unsigned number, `size=99999999999` for a
/// `u32`: `INVALID_VALUE`). Query values are all text, so the parse
/// failures of numbers and booleans are told apart by whether the text is
/// a number at all.
fn invalid_code(message: &str, value: Option<&str>) -> &'static str {
    const PARSE_FAILURES: [&str; 4] = [
        "invalid digit found in string",
        "cannot parse integer from empty string",
        "invalid float literal",
        "provided string was not `true` or `false`",
    ];
    if message.starts_with("invalid type") {
        return INVALID_TYPE;
    }
    if !PARSE_FAILURES.contains(&message) {
        return INVALID_VALUE;
    }
    let is_number = value.is_some_and(|text| text.trim().parse::<f64>().is_ok_and(f64::is_finite));
    if is_number {
        INVALID_VALUE
    } else {
        INVALID_TYPE
    }
}

fn query_problem(errors: Vec<FieldError>) -> Problem {
    let names: Vec<String> = errors
        .iter()
        .filter_map(FieldError::parameter_name)
        .filter(|name| !name.is_empty())
        .map(|name| format!("`{name}`"))
        .collect();
    let detail = match (names.as_slice(), errors.first()) {
        ([name], Some(error)) => format!("Query parameter {name} {}.", error.detail()),
        ([], _) => "The query string is invalid.".to_owned(),
        (names, _) => format!(
            "{} query parameters are invalid: {}.",
            names.len(),
            names.join(", ")
        ),
    };
    let errors = errors
        .into_iter()
        .filter(|error| error.parameter_name().is_some_and(|name| !name.is_empty()));
    Problem::new(codes::INVALID_QUERY_PARAMETER)
        .detail(detail)
        .errors(errors)
}

impl<T> Deref for Query<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> DerefMut for Query<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.0
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize, PartialEq)]
    struct Page {
        page: u32,
        size: u32,
        sort: Option<String>,
    }

    fn failing(problem: &Problem) -> Vec<(&str, &str)> {
        problem
            .field_errors()
            .iter()
            .map(|e| (e.parameter_name().unwrap_or_default(), e.code()))
            .collect()
    }

    #[test]
    fn a_parameter_no_plain_placeholder_fits_does_not_hide_the_ones_after_it() {
        #[derive(Debug, Deserialize)]
        #[serde(rename_all = "lowercase")]
        #[allow(dead_code)]
        enum Order {
            Newest,
            Oldest,
        }
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct Search {
            order: Order,
            from: std::net::IpAddr,
            page: u32,
        }

        let problem = parse::<Search>("").unwrap_err();

        assert_eq!(
            failing(&problem),
            [
                ("order", MISSING_FIELD),
                ("from", MISSING_FIELD),
                ("page", MISSING_FIELD)
            ]
        );
    }

    #[test]
    fn a_valid_query_parses() {
        let page: Page = parse("page=2&size=10&sort=name").unwrap();
        assert_eq!(
            page,
            Page {
                page: 2,
                size: 10,
                sort: Some("name".into())
            }
        );
    }

    #[test]
    fn every_bad_or_missing_parameter_is_named() {
        let problem = parse::<Page>("page=two").unwrap_err();
        assert_eq!(problem.status(), 400);
        assert_eq!(
            failing(&problem),
            [("page", "INVALID_TYPE"), ("size", "MISSING_FIELD")]
        );
        assert_eq!(
            problem.public_detail(),
            "2 query parameters are invalid: `page`, `size`."
        );
    }

    #[test]
    fn a_parameter_of_the_wrong_type_and_one_out_of_range_have_their_own_codes() {
        for (query, code) in [
            ("page=many&size=1", "INVALID_TYPE"),
            ("page=&size=1", "INVALID_TYPE"),
            ("page=1.5&size=1", "INVALID_VALUE"),
            ("page=-1&size=1", "INVALID_VALUE"),
            ("page=99999999999&size=1", "INVALID_VALUE"),
        ] {
            let problem = parse::<Page>(query).unwrap_err();
            assert_eq!(failing(&problem), [("page", code)], "{query}");
        }
    }

    #[test]
    fn one_bad_parameter_is_named_in_the_detail() {
        let problem = parse::<Page>("page=1&size=-3").unwrap_err();
        assert_eq!(failing(&problem), [("size", "INVALID_VALUE")]);
        assert!(
            problem
                .public_detail()
                .starts_with("Query parameter `size` ")
        );
    }
}
