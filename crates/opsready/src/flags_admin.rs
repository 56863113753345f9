//! The flags admin API, mounted under `/admin/flags` behind the admin
//! token: list, read, create or replace (with `If-Match`), kill, roll back
//! and read the history of feature flags.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use opsready_flags::{AuditEntry, ErrorKind, Flag, Flags, StoredFlag};
use opsready_problem::extract::field_codes::{
    INVALID_TYPE, INVALID_VALUE, MISSING_FIELD, UNKNOWN_FIELD,
};
use opsready_problem::extract::{Json, Path};
use opsready_problem::{FieldError, Problem, codes};
use serde::{Deserialize, Serialize};

/// Who made a change made through the API when the request names nobody.
const DEFAULT_ACTOR: &str = "admin-api";

/// The routes, relative to the root (they include `/admin/flags`).
pub(crate) fn router(flags: Flags) -> Router {
    Router::new()
        .route("/admin/flags", get(list))
        .route("/admin/flags/{key}", get(read).put(put))
        .route("/admin/flags/{key}/kill", post(kill))
        .route("/admin/flags/{key}/rollback", post(rollback))
        .route("/admin/flags/{key}/history", get(history))
        .with_state(flags)
}

/// `GET /admin/flags`
#[derive(Serialize)]
struct FlagList {
    flags: Vec<StoredFlag>,
}

/// The members of a `PUT /admin/flags/{key}` body: `reason` (required),
/// `actor` (defaults to [`DEFAULT_ACTOR`]) and `flag`, the whole
/// definition, whose `key`, when given, must be the path's. Read by hand
/// rather than derived, so that a 422 lists every problem of the body at
/// once, its shape's and its definition's.
const PUT_FIELDS: [&str; 3] = ["reason", "actor", "flag"];

/// A `PUT` body read: what a change needs.
struct PutBody {
    reason: String,
    actor: Option<String>,
    flag: Flag,
}

/// `POST /admin/flags/{key}/kill`
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KillBody {
    reason: String,
    #[serde(default)]
    actor: Option<String>,
}

/// `POST /admin/flags/{key}/rollback`
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RollbackBody {
    reason: String,
    #[serde(default)]
    actor: Option<String>,
    /// The version whose definition to restore; defaults to the one before
    /// the latest.
    #[serde(default)]
    to_version: Option<u64>,
}

/// The answer to a change: the entry it recorded.
#[derive(Serialize)]
struct Changed {
    change: AuditEntry,
}

/// `GET /admin/flags/{key}/history`
#[derive(Serialize)]
struct History {
    key: String,
    changes: Vec<AuditEntry>,
}

async fn list(State(flags): State<Flags>) -> axum::Json<FlagList> {
    let mut all = flags.list();
    all.sort_by(|a, b| a.flag.key.cmp(&b.flag.key));
    axum::Json(FlagList { flags: all })
}

async fn read(State(flags): State<Flags>, Path(key): Path<String>) -> Result<Response, Problem> {
    let stored = flags.get(&key).ok_or_else(|| no_flag(&key))?;
    Ok(with_etag(stored.version, axum::Json(stored)).into_response())
}

async fn put(
    State(flags): State<Flags>,
    Path(key): Path<String>,
    headers: HeaderMap,
    Json(body): Json<serde_json::Value>,
) -> Result<Response, Problem> {
    let PutBody {
        reason,
        actor: named,
        flag,
    } = parse_put(&key, body).map_err(Problem::validation)?;
    let reason = reason.trim();
    let actor = actor(named.as_deref());
    let expected = if_match(&headers)?;
    let (status, entry) = match (expected, flags.get(&key)) {
        (None, Some(current)) => return Err(exists(&key, current.version)),
        (None, None) => (
            StatusCode::CREATED,
            flags
                .create(flag, actor, reason)
                .await
                .map_err(|error| exists_since(&key, error))?,
        ),
        (Some(version), _) => (
            StatusCode::OK,
            flags
                .replace(&key, flag, version, actor, reason)
                .await
                .map_err(|error| precondition(&key, version, error))?,
        ),
    };
    Ok((
        status,
        with_etag(entry.version, axum::Json(Changed { change: entry })),
    )
        .into_response())
}

async fn kill(
    State(flags): State<Flags>,
    Path(key): Path<String>,
    headers: HeaderMap,
    Json(body): Json<KillBody>,
) -> Result<Response, Problem> {
    let reason = required_reason(&body.reason)?;
    let actor = actor(body.actor.as_deref());
    // A kill needs no precondition: at 3 a.m. it must go through. With
    // one, a kill sent again after its answer was lost does not undo a
    // rollback made since.
    let entry = match if_match(&headers)? {
        None => flags.kill(&key, actor, reason).await.map_err(problem)?,
        Some(version) => flags
            .kill_from(&key, version, actor, reason)
            .await
            .map_err(|error| precondition(&key, version, error))?,
    };
    Ok(with_etag(entry.version, axum::Json(Changed { change: entry })).into_response())
}

async fn rollback(
    State(flags): State<Flags>,
    Path(key): Path<String>,
    headers: HeaderMap,
    Json(body): Json<RollbackBody>,
) -> Result<Response, Problem> {
    let reason = required_reason(&body.reason)?;
    // Based on the version read, as a `PUT` is: a rollback sent to undo
    // one change must not undo another made since (someone's kill), nor,
    // sent twice, undo itself.
    let Some(latest) = if_match(&headers)? else {
        // A flag that never was is not found, If-Match or not.
        if flags.history(&key).await.map_err(problem)?.is_empty() {
            return Err(no_flag(&key));
        }
        let current = flags.get(&key).map_or_else(
            || "has no live version".to_owned(),
            |flag| format!("is at version {}", flag.version),
        );
        return Err(Problem::new(codes::PRECONDITION_REQUIRED).detail(format!(
            "flag `{key}` {current}: send the version your rollback is based on in If-Match (the ETag of the kill you undo, or the latest in GET /admin/flags/{key}/history)"
        )));
    };
    let entry = flags
        .rollback_from(
            &key,
            latest,
            body.to_version,
            actor(body.actor.as_deref()),
            reason,
        )
        .await
        .map_err(|error| match error.kind() {
            // The version asked for (or the one before the latest) does not
            // exist: its pointer is into this body, not a definition.
            ErrorKind::Invalid => Problem::validation(error.violations().iter().map(|violation| {
                FieldError::pointer(
                    violation.pointer.clone(),
                    INVALID_VALUE,
                    violation.message.clone(),
                )
            })),
            // No history at all: a flag that never was, If-Match or not.
            ErrorKind::NotFound => problem(error),
            _ => precondition(&key, latest, error),
        })?;
    Ok(with_etag(entry.version, axum::Json(Changed { change: entry })).into_response())
}

async fn history(
    State(flags): State<Flags>,
    Path(key): Path<String>,
) -> Result<axum::Json<History>, Problem> {
    let changes = flags.history(&key).await.map_err(problem)?;
    if changes.is_empty() {
        return Err(no_flag(&key));
    }
    Ok(axum::Json(History { key, changes }))
}

fn actor(named: Option<&str>) -> &str {
    named
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .unwrap_or(DEFAULT_ACTOR)
}

/// The reason of a change: required, so the history says why.
fn required_reason(reason: &str) -> Result<&str, Problem> {
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(Problem::validation([no_reason()]));
    }
    Ok(reason)
}

fn no_reason() -> FieldError {
    FieldError::pointer(
        "/reason",
        MISSING_FIELD,
        "say why: the reason is kept in the flag's history",
    )
}

/// A `PUT` body: every problem at once, the shape's (a missing or
/// mistyped member, an unknown one) and the definition's.
fn parse_put(key: &str, body: serde_json::Value) -> Result<PutBody, Vec<FieldError>> {
    use serde_json::Value;

    let Value::Object(mut fields) = body else {
        return Err(vec![FieldError::pointer(
            "",
            INVALID_TYPE,
            "the body must be a JSON object with `reason` and `flag`",
        )]);
    };
    let mut errors = Vec::new();
    let reason = match fields.remove("reason") {
        Some(Value::String(reason)) if !reason.trim().is_empty() => Some(reason),
        Some(Value::String(_)) | None => {
            errors.push(no_reason());
            None
        }
        Some(_) => {
            errors.push(FieldError::pointer(
                "/reason",
                INVALID_TYPE,
                "must be a string: why the change is made",
            ));
            None
        }
    };
    let actor = match fields.remove("actor") {
        None | Some(Value::Null) => None,
        Some(Value::String(actor)) => Some(actor),
        Some(_) => {
            errors.push(FieldError::pointer(
                "/actor",
                INVALID_TYPE,
                "must be a string: who makes the change",
            ));
            None
        }
    };
    let flag = match fields.remove("flag") {
        None => {
            errors.push(FieldError::pointer(
                "/flag",
                MISSING_FIELD,
                "send the whole definition (read the flag, edit it, send it back)",
            ));
            None
        }
        Some(definition) => match parse_definition(key, definition) {
            Ok(flag) => Some(flag),
            Err(invalid) => {
                errors.extend(invalid);
                None
            }
        },
    };
    errors.extend(fields.keys().map(|name| {
        FieldError::pointer(
            format!("/{}", name.replace('~', "~0").replace('/', "~1")),
            UNKNOWN_FIELD,
            format!("unknown field; the body has {}", PUT_FIELDS.join(", ")),
        )
    }));
    match (reason, flag) {
        (Some(reason), Some(flag)) if errors.is_empty() => Ok(PutBody {
            reason,
            actor,
            flag,
        }),
        _ => Err(errors),
    }
}

/// The definition of a `PUT`, with the path's key: every invalid field, as
/// a pointer into the request body.
fn parse_definition(key: &str, mut definition: serde_json::Value) -> Result<Flag, Vec<FieldError>> {
    let Some(fields) = definition.as_object_mut() else {
        return Err(vec![FieldError::pointer(
            "/flag",
            INVALID_TYPE,
            "the definition must be a JSON object",
        )]);
    };
    let mut errors = Vec::new();
    match fields.get("key").and_then(serde_json::Value::as_str) {
        Some(named) if named != key => errors.push(FieldError::pointer(
            "/flag/key",
            INVALID_VALUE,
            format!("the definition names `{named}` but the path names `{key}`"),
        )),
        _ => {
            fields.insert("key".to_owned(), key.into());
        }
    }
    // A `PUT` replaces the whole definition: left out, `enabled` would
    // default to on and silently lift a kill.
    if !fields.contains_key("enabled") {
        errors.push(FieldError::pointer(
            "/flag/enabled",
            MISSING_FIELD,
            "say whether the flag is on: a PUT replaces the whole definition, and would otherwise turn a killed flag back on (read the flag, edit it, send it back)",
        ));
    }
    // Unknown fields are kept when read from a store (a newer release may
    // have written them), but a person typing `enabeld` must hear of it.
    errors.extend(
        fields
            .keys()
            .filter(|name| !KNOWN_FIELDS.contains(&name.as_str()))
            .map(|name| {
                FieldError::pointer(
                    format!("/flag/{}", name.replace('~', "~0").replace('/', "~1")),
                    UNKNOWN_FIELD,
                    format!(
                        "unknown field; a definition has {}",
                        KNOWN_FIELDS.join(", ")
                    ),
                )
            }),
    );
    match serde_json::from_value::<Flag>(definition) {
        Err(error) => errors.push(FieldError::pointer(
            "/flag",
            INVALID_VALUE,
            error.to_string(),
        )),
        Ok(flag) => {
            if let Err(violations) = flag.validate() {
                errors.extend(violations.into_iter().map(|violation| {
                    FieldError::pointer(
                        format!("/flag{}", violation.pointer),
                        INVALID_VALUE,
                        violation.message,
                    )
                }));
            }
            if errors.is_empty() {
                return Ok(flag);
            }
        }
    }
    Err(errors)
}

/// The top-level fields of a definition this release knows.
const KNOWN_FIELDS: &[&str] = &[
    "key",
    "type",
    "variants",
    "default_variant",
    "enabled",
    "rules",
    "rollout",
    "kind",
    "owner",
    "description",
    "expires",
];

/// The version of `If-Match`: `3` or the entity tag `"3"`.
/// The version an `If-Match` names: one strong entity tag, `"3"`, as the
/// `ETag` of `GET /admin/flags/{key}` gives it (RFC 9110). A weak tag never
/// matches `If-Match` (412); `*`, which names no version, is not enough
/// for a change based on one (428); several tags, unquoted or unbalanced
/// ones, are malformed (400).
fn if_match(headers: &HeaderMap) -> Result<Option<u64>, Problem> {
    let mut tags = Vec::new();
    for value in headers.get_all(header::IF_MATCH) {
        let text = value.to_str().map_err(|_| malformed_if_match())?;
        tags.extend(text.split(',').map(str::trim).filter(|tag| !tag.is_empty()));
    }
    let tag = match tags.as_slice() {
        [] if headers.contains_key(header::IF_MATCH) => return Err(malformed_if_match()),
        [] => return Ok(None),
        [tag] => *tag,
        _ => {
            return Err(Problem::bad_request(
                "If-Match must name one version, the one the change is based on (`\"3\"`)",
            ));
        }
    };
    if tag == "*" {
        return Err(Problem::new(codes::PRECONDITION_REQUIRED).detail(
            "If-Match: * names no version: send the version the change is based on (`\"3\"`)",
        ));
    }
    if tag.starts_with("W/") {
        return Err(Problem::new(codes::PRECONDITION_FAILED).detail(
            "a weak entity tag never matches If-Match: send the ETag as GET /admin/flags/{key} gives it (`\"3\"`)",
        ));
    }
    tag.strip_prefix('"')
        .and_then(|rest| rest.strip_suffix('"'))
        .filter(|digits| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|digits| digits.parse::<u64>().ok())
        .map(Some)
        .ok_or_else(malformed_if_match)
}

fn malformed_if_match() -> Problem {
    Problem::bad_request(
        "If-Match must be the version the change is based on, as the ETag of GET /admin/flags/{key} gives it (`\"3\"`)",
    )
}

fn with_etag<T: IntoResponse>(version: u64, body: T) -> impl IntoResponse {
    let etag = HeaderValue::from_str(&format!("\"{version}\""))
        .unwrap_or(HeaderValue::from_static("\"0\""));
    ([(header::ETAG, etag)], body)
}

fn no_flag(key: &str) -> Problem {
    Problem::not_found(format!("there is no flag `{key}`"))
}

/// A replace without `If-Match` is a 428 that names the current version.
fn exists(key: &str, version: u64) -> Problem {
    Problem::new(codes::PRECONDITION_REQUIRED).detail(format!(
        "flag `{key}` exists at version {version}: send `If-Match: \"{version}\"` to replace it, so that a change made since you read it is not lost"
    ))
}

/// A create that finds the flag there (made by another instance, or by a
/// request racing this one, since this instance last read the store) is
/// the 428 of a replace without `If-Match`, as the docs promise, not a
/// bare 409.
fn exists_since(key: &str, error: opsready_flags::Error) -> Problem {
    match (error.kind(), error.current_version()) {
        (ErrorKind::Conflict, Some(version)) => exists(key, version),
        // A store that does not say the version.
        (ErrorKind::Conflict, None) => Problem::new(codes::PRECONDITION_REQUIRED).detail(format!(
            "flag `{key}` exists: read it (GET /admin/flags/{key}) and send its ETag in If-Match to replace it, so that a change made since you read it is not lost"
        )),
        _ => problem(error),
    }
}

/// A stale `If-Match` is a 412 that names the current version.
fn precondition(key: &str, expected: u64, error: opsready_flags::Error) -> Problem {
    // A flag deleted since it was read fails the precondition too: a 404
    // would invite a client to send again without `If-Match`, creating
    // the flag someone deleted on purpose.
    if matches!(error.kind(), ErrorKind::Conflict | ErrorKind::NotFound) {
        let current = error.current_version().map_or_else(
            || "not there (deleted, or never created)".to_owned(),
            |version| format!("at version {version}"),
        );
        return Problem::new(codes::PRECONDITION_FAILED).detail(format!(
            "flag `{key}` is {current}, not {expected}: read it again, reapply your change and send the new version in If-Match"
        ));
    }
    problem(error)
}

fn problem(error: opsready_flags::Error) -> Problem {
    match error.kind() {
        ErrorKind::Invalid => Problem::validation(error.violations().iter().map(|violation| {
            FieldError::pointer(
                format!("/flag{}", violation.pointer),
                INVALID_VALUE,
                violation.message.clone(),
            )
        })),
        ErrorKind::Conflict => Problem::conflict(error.to_string()),
        // A flag file edited by hand into something it cannot take in:
        // what is wrong and where, for whoever can fix it.
        ErrorKind::BadEdit => Problem::conflict(error.to_string()),
        ErrorKind::NotFound => Problem::not_found(error.to_string()),
        _ => Problem::new(codes::SERVICE_UNAVAILABLE)
            .detail("the flag store failed; the change was not applied")
            .with_cause(error),
    }
}

#[cfg(test)]
mod tests {
    use axum::http::{HeaderMap, HeaderValue, header};

    use super::if_match;

    fn with(values: &[&'static str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(header::IF_MATCH, HeaderValue::from_static(value));
        }
        headers
    }

    fn status(values: &[&'static str]) -> Result<Option<u64>, u16> {
        if_match(&with(values)).map_err(|problem| problem.code().status().as_u16())
    }

    #[test]
    fn if_match_takes_one_strong_tag_and_says_what_is_wrong_with_others() {
        assert_eq!(status(&[]), Ok(None));
        assert_eq!(status(&["\"3\""]), Ok(Some(3)));
        assert_eq!(status(&[" \"12\" "]), Ok(Some(12)));
        // A weak tag never matches If-Match.
        assert_eq!(status(&["W/\"3\""]), Err(412));
        // `*` names no version.
        assert_eq!(status(&["*"]), Err(428));
        for malformed in [
            &["3"][..],
            &["\"3"],
            &["3\""],
            &["\"\""],
            &["\"-1\""],
            &[""],
        ] {
            assert_eq!(status(malformed), Err(400), "{malformed:?}");
        }
        // Several versions, in one header or two.
        assert_eq!(status(&["\"3\", \"4\""]), Err(400));
        assert_eq!(status(&["\"3\"", "\"4\""]), Err(400));
    }
}
