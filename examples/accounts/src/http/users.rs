//! `/users`: sign-up, listing, reading, changing and deleting users.
//!
//! | request | answer |
//! |---|---|
//! | `POST /users` `{email, name, password}` | 201 with the user and `Location`; 422 listing every bad field; 409 `EMAIL_TAKEN` |
//! | `GET /users?limit=&cursor=` | 200 `{items, next_cursor}` |
//! | `GET /users/{id}` | 200; 404 |
//! | `PATCH /users/{id}` `{email?, name?, password?}` | 200 with the user as changed; 422; 404; 409 `EMAIL_TAKEN` |
//! | `DELETE /users/{id}` | 204; 404; 409 `USER_HAS_INVOICES` |
//!
//! A password is hashed on the blocking pool and never answered or logged.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use opsready::problem::Problem;
use opsready::problem::extract::{Json, Path, Query, ValidJson, Validate, ValidationErrors};
use opsready::settings::Secret;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::openapi::{
    InternalError, MalformedRequest, PayloadTooLarge, Unavailable, UnsupportedMediaType,
};
use super::pagination::{List, Page, PageQuery};
use super::problems::not_found;
use crate::AppState;
use crate::data::DataError;
use crate::domain::{
    self, Email, NewUser, Password, PasswordHash, User, UserChanges, UserId, UserName,
};

/// The routes of this module, each with its OpenAPI description.
pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_user, list_users))
        .routes(routes!(get_user, update_user, delete_user))
}

/// The body of `POST /users`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateUser {
    /// Compared case-insensitively; answered in lower case.
    #[schema(format = Email, example = "ann@example.com")]
    email: String,
    /// Trimmed; 1 to 100 characters, no markup.
    #[schema(example = "Ann Lee", min_length = 1, max_length = 100)]
    name: String,
    /// 8 to 128 characters; hashed, never answered.
    #[schema(value_type = String, format = Password, example = "correct horse battery", min_length = 8, max_length = 128)]
    password: Secret<String>,
}

impl CreateUser {
    /// Every field through its domain type, every failure reported.
    fn parse(&self) -> Result<NewUser, ValidationErrors> {
        let mut errors = ValidationErrors::new();
        let email = Email::parse(&self.email)
            .map_err(|e| errors.add("/email", "INVALID_EMAIL", e.to_string()));
        let name = UserName::parse(&self.name)
            .map_err(|e| errors.add("/name", "INVALID_NAME", e.to_string()));
        let password = Password::parse(self.password.clone())
            .map_err(|e| errors.add("/password", "INVALID_PASSWORD", e.to_string()));
        match (email, name, password) {
            (Ok(email), Ok(name), Ok(password)) => Ok(NewUser {
                email,
                name,
                password,
            }),
            _ => Err(errors),
        }
    }
}

impl Validate for CreateUser {
    fn validate(&self, errors: &mut ValidationErrors) {
        if let Err(found) = self.parse() {
            found.iter().cloned().for_each(|error| errors.push(error));
        }
    }
}

/// The body of `PATCH /users/{id}`: absent (or `null`) fields stay as
/// they are.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpdateUser {
    /// As in `CreateUser`.
    #[schema(format = Email)]
    email: Option<String>,
    /// As in `CreateUser`.
    #[schema(min_length = 1, max_length = 100)]
    name: Option<String>,
    /// As in `CreateUser`.
    #[schema(value_type = Option<String>, format = Password, min_length = 8, max_length = 128)]
    password: Option<Secret<String>>,
}

impl UpdateUser {
    fn parse(&self) -> Result<UserChanges, ValidationErrors> {
        let mut errors = ValidationErrors::new();
        let mut changes = UserChanges::default();
        if let Some(email) = &self.email {
            match Email::parse(email) {
                Ok(email) => changes.email = Some(email),
                Err(e) => errors.add("/email", "INVALID_EMAIL", e.to_string()),
            }
        }
        if let Some(name) = &self.name {
            match UserName::parse(name) {
                Ok(name) => changes.name = Some(name),
                Err(e) => errors.add("/name", "INVALID_NAME", e.to_string()),
            }
        }
        if let Some(password) = &self.password {
            match Password::parse(password.clone()) {
                Ok(password) => changes.password = Some(password),
                Err(e) => errors.add("/password", "INVALID_PASSWORD", e.to_string()),
            }
        }
        if errors.is_empty() {
            Ok(changes)
        } else {
            Err(errors)
        }
    }
}

impl Validate for UpdateUser {
    fn validate(&self, errors: &mut ValidationErrors) {
        if let Err(found) = self.parse() {
            found.iter().cloned().for_each(|error| errors.push(error));
        }
    }
}

/// A user as answered: never a password or its hash.
// `deny_unknown_fields` does nothing to serializing; it makes the schema
// closed (`additionalProperties: false`), so that the contract tests fail
// on a member that is answered but not documented.
#[derive(Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = User)]
pub(crate) struct UserBody {
    #[schema(value_type = String, format = Uuid)]
    id: UserId,
    #[schema(format = Email)]
    email: String,
    name: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    updated_at: OffsetDateTime,
}

impl From<User> for UserBody {
    fn from(user: User) -> Self {
        Self {
            id: user.id,
            email: user.email.into_string(),
            name: user.name.as_str().to_owned(),
            created_at: user.created_at,
            updated_at: user.updated_at,
        }
    }
}

/// `POST /users`
#[utoipa::path(
    post,
    path = "/users",
    tag = "users",
    summary = "Signs a user up.",
    request_body = CreateUser,
    responses(
        (status = 201, description = "The user as stored.", body = UserBody,
            headers(("location" = String, description = "`/users/{id}`"))),
        (status = 400, response = MalformedRequest),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 409, description = "`EMAIL_TAKEN`: another user has the address, in any case.",
            body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`VALIDATION_FAILED`: every invalid, missing or unknown field, with its pointer.",
            body = Problem, content_type = "application/problem+json"),
        (status = 503, response = Unavailable),
        (status = 500, response = InternalError),
    ),
)]
async fn create_user(
    State(state): State<AppState>,
    ValidJson(request): ValidJson<CreateUser>,
) -> Result<Response, Problem> {
    let new = request.parse().map_err(Problem::from)?;
    // Hashed first, the id made last: ids sort by the time they are made
    // (UUIDv7) and listings page by id, so the less time between the id and
    // the insert, the less likely a newer user commits first and lands
    // behind a page a client already read.
    let hash = hash(&state, new.password.clone()).await?;
    let (user, _) = User::register(new, domain::now());
    state.db.users().insert(&user, &hash).await?;
    let location = format!("/users/{}", user.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(UserBody::from(user)),
    )
        .into_response())
}

/// `GET /users`
#[utoipa::path(
    get,
    path = "/users",
    tag = "users",
    summary = "Lists users, oldest first, a page at a time.",
    params(PageQuery),
    responses(
        (status = 200, description = "A page of users.", body = Page<UserBody>),
        (status = 400, description = "`INVALID_QUERY_PARAMETER`: `limit` or `cursor` is invalid; each is named.",
            body = Problem, content_type = "application/problem+json"),
        (status = 503, response = Unavailable),
        (status = 500, response = InternalError),
    ),
)]
async fn list_users(
    State(state): State<AppState>,
    Query(query): Query<PageQuery>,
) -> Result<Json<Page<UserBody>>, Problem> {
    let page = query.parse(List::Users)?;
    let after = page.after.map(UserId::from_uuid);
    let slice = state.db.users().list(after, page.limit).await?;
    Ok(Json(Page::of(
        List::Users,
        slice,
        |user| user.id.as_uuid(),
        UserBody::from,
    )))
}

/// `GET /users/{id}`
#[utoipa::path(
    get,
    path = "/users/{id}",
    tag = "users",
    summary = "Reads a user.",
    params(("id" = String, Path, format = Uuid, description = "The user's id.")),
    responses(
        (status = 200, description = "The user.", body = UserBody),
        (status = 400, description = "`INVALID_PATH_PARAMETER`: the id is not a UUID.",
            body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`NOT_FOUND`: no user has the id.",
            body = Problem, content_type = "application/problem+json"),
        (status = 503, response = Unavailable),
        (status = 500, response = InternalError),
    ),
)]
async fn get_user(
    State(state): State<AppState>,
    Path(id): Path<UserId>,
) -> Result<Json<UserBody>, Problem> {
    let user = state
        .db
        .users()
        .get(id)
        .await
        .map_err(|error| user_problem(error, id))?;
    Ok(Json(user.into()))
}

/// `PATCH /users/{id}`
#[utoipa::path(
    patch,
    path = "/users/{id}",
    tag = "users",
    summary = "Changes the fields a user names; the others stay.",
    params(("id" = String, Path, format = Uuid, description = "The user's id.")),
    request_body = UpdateUser,
    responses(
        (status = 200, description = "The user as changed.", body = UserBody),
        (status = 400, description = "`MALFORMED_JSON` or `INVALID_PATH_PARAMETER`.",
            body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`NOT_FOUND`: no user has the id.",
            body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`EMAIL_TAKEN`: another user has the address.",
            body = Problem, content_type = "application/problem+json"),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 422, description = "`VALIDATION_FAILED`: every invalid or unknown field, with its pointer.",
            body = Problem, content_type = "application/problem+json"),
        (status = 503, response = Unavailable),
        (status = 500, response = InternalError),
    ),
)]
async fn update_user(
    State(state): State<AppState>,
    Path(id): Path<UserId>,
    ValidJson(request): ValidJson<UpdateUser>,
) -> Result<Json<UserBody>, Problem> {
    let changes = request.parse().map_err(Problem::from)?;
    let hash = match changes.password.clone() {
        Some(password) => Some(hash(&state, password).await?),
        None => None,
    };
    let user = state
        .db
        .users()
        .update(id, &changes, hash.as_ref(), domain::now())
        .await
        .map_err(|error| user_problem(error, id))?;
    Ok(Json(user.into()))
}

/// `DELETE /users/{id}`
#[utoipa::path(
    delete,
    path = "/users/{id}",
    tag = "users",
    summary = "Deletes a user who has no invoices.",
    params(("id" = String, Path, format = Uuid, description = "The user's id.")),
    responses(
        (status = 204, description = "Deleted."),
        (status = 400, description = "`INVALID_PATH_PARAMETER`: the id is not a UUID.",
            body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`NOT_FOUND`: no user has the id.",
            body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`USER_HAS_INVOICES`: the user is the customer of invoices.",
            body = Problem, content_type = "application/problem+json"),
        (status = 503, response = Unavailable),
        (status = 500, response = InternalError),
    ),
)]
async fn delete_user(
    State(state): State<AppState>,
    Path(id): Path<UserId>,
) -> Result<StatusCode, Problem> {
    state
        .db
        .users()
        .delete(id)
        .await
        .map_err(|error| user_problem(error, id))?;
    Ok(StatusCode::NO_CONTENT)
}

/// Hashes on the blocking pool: argon2 takes tens of milliseconds of CPU
/// by design, which on an async worker would stall every request it
/// carries.
async fn hash(state: &AppState, password: Password) -> Result<PasswordHash, Problem> {
    let hasher = state.hasher.clone();
    state
        .blocking
        .run(move || hasher.hash(&password))
        .await
        .map_err(Problem::internal)?
        .map_err(Problem::internal)
}

fn user_problem(error: DataError, id: UserId) -> Problem {
    match error {
        DataError::NotFound => not_found("user", id),
        error => error.into(),
    }
}
