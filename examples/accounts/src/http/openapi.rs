//! The OpenAPI 3.1 document of the service, generated from the code.
//!
//! The service's own routes are documented where they are defined: each
//! handler carries `#[utoipa::path]`, each body derives `ToSchema`, and
//! `utoipa_axum::routes!` registers a handler and its documentation in one
//! call, so a route cannot be served without being described. The routes
//! opsready serves (the probes and the admin API) have no handler here;
//! [`OpsRoutes`] describes them by hand, with the admin bearer scheme.
//!
//! The document is answered at `GET /openapi.json` and committed as
//! `docs/openapi.json`; `tests/openapi.rs` fails when the two differ.

use std::collections::BTreeMap;

use opsready::problem::{FieldError, Problem};
use serde_json::Value;
use utoipa::openapi::path::{HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::{AdditionalProperties, ArrayBuilder, Object, ObjectBuilder, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{
    ContentBuilder, OpenApi as Document, Ref, RefOr, Required, Response, ResponseBuilder, Schema,
};
use utoipa::{Modify, OpenApi, ToResponse, ToSchema};

/// The media type of every error answer.
pub(crate) const PROBLEM: &str = "application/problem+json";

/// The name of the admin token's security scheme.
const ADMIN_SCHEME: &str = "admin";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "accounts",
        description = "Users and billing: the opsready example service. Every error answer is an \
                       RFC 9457 problem (`application/problem+json`, schema `Problem`).",
        license(name = "MIT OR Apache-2.0", identifier = "MIT OR Apache-2.0"),
    ),
    tags(
        (name = "users", description = "Sign-up, listing, reading, changing and deleting users."),
        (name = "billing", description = "Invoices, created idempotently and paid once."),
        (name = "probes", description = "Liveness, readiness and startup, served by opsready."),
        (name = "admin", description = "Configuration and feature flags, served by opsready \
                                        behind `admin.token` (on the admin listener, or under \
                                        `/admin` of the main one)."),
    ),
    components(
        schemas(Problem, FieldError),
        responses(MalformedRequest, UnsupportedMediaType, PayloadTooLarge, Unavailable, InternalError),
    ),
    modifiers(&OpsRoutes),
)]
pub(crate) struct ApiDoc;

/// The document as answered and committed: pretty-printed, members in
/// sorted order at every depth, so that the text changes only when the
/// contract does.
pub(crate) fn render(document: &Document) -> String {
    let value = serde_json::to_value(document).unwrap_or(Value::Null);
    let mut text = serde_json::to_string_pretty(&sorted(value)).unwrap_or_default();
    text.push('\n');
    text
}

/// `value` with every object's members in sorted order, whatever map
/// serde_json was built with.
fn sorted(value: Value) -> Value {
    match value {
        Value::Object(members) => {
            let members: BTreeMap<String, Value> = members
                .into_iter()
                .map(|(name, value)| (name, sorted(value)))
                .collect();
            Value::Object(members.into_iter().collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sorted).collect()),
        other => other,
    }
}

/// A problem answer described by `description`.
fn problem(description: &str) -> Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            PROBLEM,
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name(Problem::name())))
                .build(),
        )
        .build()
}

macro_rules! problem_response {
    ($(#[$doc:meta])* $name:ident, $description:literal) => {
        $(#[$doc])*
        pub(crate) struct $name;

        impl<'r> ToResponse<'r> for $name {
            fn response() -> (&'r str, RefOr<Response>) {
                (stringify!($name), problem($description).into())
            }
        }
    };
}

problem_response!(
    /// 400 for a body that is not JSON.
    MalformedRequest,
    "`MALFORMED_JSON`: the body is not JSON."
);
problem_response!(
    /// 415 for a body that is not `application/json`.
    UnsupportedMediaType,
    "`UNSUPPORTED_MEDIA_TYPE`: the body must be `application/json`."
);
problem_response!(
    /// 413 for a body above `http.body_limit`.
    PayloadTooLarge,
    "`PAYLOAD_TOO_LARGE`: the body is larger than `http.body_limit` (2 MiB by default)."
);
problem_response!(
    /// 503 when the database cannot be reached in time.
    Unavailable,
    "`SERVICE_UNAVAILABLE`: the database could not be reached in time; retry after `Retry-After`."
);
problem_response!(
    /// 500, without internals.
    InternalError,
    "`INTERNAL_ERROR`: an unexpected failure, logged with the request id; the body carries no internals."
);

/// Adds the routes opsready serves (probes, admin API) and the admin
/// bearer scheme: they have no handler in this crate to annotate.
pub(crate) struct OpsRoutes;

impl Modify for OpsRoutes {
    fn modify(&self, openapi: &mut Document) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            ADMIN_SCHEME,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("`Authorization: Bearer <admin.token>`"))
                    .build(),
            ),
        );
        components
            .schemas
            .insert("Health".to_owned(), health_schema());

        for (path, summary, ready) in [
            (
                "/livez",
                "Liveness: 200 while the process can answer.",
                false,
            ),
            (
                "/readyz",
                "Readiness: 200 when started, not draining and every critical check passes (the database is one).",
                true,
            ),
            (
                "/startupz",
                "Startup: 200 once the startup hooks (the migrations) ran.",
                false,
            ),
        ] {
            let mut operation = OperationBuilder::new()
                .tag("probes")
                .operation_id(Some(path.trim_start_matches('/')))
                .summary(Some(summary))
                .response("200", health("Passing.", ready));
            if path != "/livez" {
                operation =
                    operation.response("503", health("Failing, starting or draining.", ready));
            }
            if ready {
                operation = operation.parameter(
                    ParameterBuilder::new()
                        .name("verbose")
                        .parameter_in(ParameterIn::Query)
                        .required(Required::False)
                        .description(Some(
                            "Answer `text/plain`, a line per check, instead of JSON.",
                        )),
                );
            }
            openapi
                .paths
                .add_path_operation(path, vec![HttpMethod::Get], operation.build());
        }

        // Open, like every Prometheus target: on the admin listener, which
        // is not public.
        openapi.paths.add_path_operation(
            "/metrics",
            vec![HttpMethod::Get],
            OperationBuilder::new()
                .tag("admin")
                .operation_id(Some("metrics"))
                .summary(Some(
                    "Prometheus metrics; OpenMetrics when the scraper asks for it.",
                ))
                .response(
                    "200",
                    ResponseBuilder::new()
                        .description("The metrics, in the text format the `Accept` header picks.")
                        .content(
                            "text/plain",
                            ContentBuilder::new()
                                .schema(Some(string("Prometheus text format 0.0.4.")))
                                .build(),
                        )
                        .content(
                            "application/openmetrics-text",
                            ContentBuilder::new()
                                .schema(Some(string("OpenMetrics 1.0, with exemplars.")))
                                .build(),
                        )
                        .build(),
                )
                .build(),
        );
        openapi.paths.add_path_operation(
            "/admin/info",
            vec![HttpMethod::Get],
            OperationBuilder::new()
                .tag("admin")
                .operation_id(Some("admin_info"))
                .summary(Some("The build: version, git commit, build time."))
                .response(
                    "200",
                    json("The build information.", object("The build.").into()),
                )
                .build(),
        );

        for (path, method, id, summary, body, answer) in admin_operations() {
            let mut operation = OperationBuilder::new()
                .tag("admin")
                .operation_id(Some(id))
                .summary(Some(summary))
                .security(SecurityRequirement::new(ADMIN_SCHEME, Vec::<String>::new()))
                .response("200", json("The answer.", answer))
                .response(
                    "401",
                    problem("`UNAUTHORIZED`: no bearer token, or a wrong one."),
                )
                .response(
                    "404",
                    problem("`NOT_FOUND`: no such flag, or `admin.token` is not set."),
                );
            if path.contains("{key}") {
                operation = operation.parameter(
                    ParameterBuilder::new()
                        .name("key")
                        .parameter_in(ParameterIn::Path)
                        .required(Required::True)
                        .schema(Some(string(
                            "The flag's key, e.g. `billing.tax_engine_v2`.",
                        ))),
                );
            }
            if let Some(body) = body {
                operation = operation
                    .request_body(Some(
                        RequestBodyBuilder::new()
                            .required(Some(Required::True))
                            .content(
                                "application/json",
                                ContentBuilder::new().schema(Some(body)).build(),
                            )
                            .build(),
                    ))
                    .response(
                        "422",
                        problem("`VALIDATION_FAILED`: every invalid field, with its pointer."),
                    )
                    .response(
                        "400",
                        problem("`MALFORMED_JSON` or `BAD_REQUEST`: the body is not JSON, or `If-Match` is not a version."),
                    )
                    .response(
                        "409",
                        problem("`CONFLICT`: other changes of the flag kept getting in first (a kill tries five times): read it again and retry. Or, on a file flag store, a hand edit left the flag file unreadable (the detail names the file and the problem): fix the file, then retry; kills and rollbacks go through all the same."),
                    )
                    .response(
                        "415",
                        problem("`UNSUPPORTED_MEDIA_TYPE`: the body is not `application/json`."),
                    )
                    .response(
                        "503",
                        problem("`SERVICE_UNAVAILABLE`: the flag store failed; nothing changed. `HANDLER_TIMEOUT`: the store did not answer within `http.request_timeout`, and whether the change landed is unknown: read the flag's history before sending it again (sending it again is safe: a `PUT` or rollback based on the version it changed fails its precondition, a second kill writes nothing)."),
                    );
            }
            let rollback = id == "admin_rollback_flag";
            let kill = id == "admin_kill_flag";
            if method == HttpMethod::Put || rollback || kill {
                let based_on = if rollback {
                    "The version the rollback is based on (`\"3\"`): the kill's `ETag`, or the latest in the history. Required."
                } else if kill {
                    "The version the kill is based on (`\"3\"`); optional. With it, the kill goes through only while the flag is at that version or at the kill that followed it, so that a kill sent again late does not undo a rollback made since."
                } else {
                    "The version the change is based on (`\"3\"`); required to replace an existing flag."
                };
                operation = operation
                    .parameter(
                        ParameterBuilder::new()
                            .name("If-Match")
                            .parameter_in(ParameterIn::Header)
                            .required(if rollback {
                                Required::True
                            } else {
                                Required::False
                            })
                            .description(Some(based_on))
                            .schema(Some(string("An entity tag."))),
                    )
                    .response(
                        "412",
                        problem("The flag changed since the version in `If-Match`."),
                    );
                operation = operation.response(
                    "428",
                    problem(if kill {
                        "`PRECONDITION_REQUIRED`: `If-Match: *` names no version; send one, or none."
                    } else {
                        "`PRECONDITION_REQUIRED`: send `If-Match`."
                    }),
                );
            }
            if method == HttpMethod::Put {
                operation = operation.response("201", json("The flag was created.", changed()));
            }
            openapi
                .paths
                .add_path_operation(path, vec![method], operation.build());
        }
    }
}

type AdminOperation = (
    &'static str,
    HttpMethod,
    &'static str,
    &'static str,
    Option<Schema>,
    Schema,
);

/// The admin routes behind the token: path, method, operation id,
/// summary, request body, answer. Their bodies are opsready's; see
/// `docs/flags.md` for every member.
fn admin_operations() -> Vec<AdminOperation> {
    vec![
        (
            "/admin/config",
            HttpMethod::Get,
            "admin_config",
            "The effective settings, secrets redacted, with where each value came from.",
            None,
            object("The settings dump.").into(),
        ),
        (
            "/admin/flags",
            HttpMethod::Get,
            "admin_list_flags",
            "Every feature flag with its version.",
            None,
            object("The flags.")
                .property("flags", array(object("A stored flag.")))
                .required("flags")
                .into(),
        ),
        (
            "/admin/flags/{key}",
            HttpMethod::Get,
            "admin_read_flag",
            "One flag; its version is the `ETag`.",
            None,
            object("A stored flag.").into(),
        ),
        (
            "/admin/flags/{key}",
            HttpMethod::Put,
            "admin_put_flag",
            "Creates a flag, or replaces it with `If-Match`.",
            Some(
                change_request()
                    .property(
                        "flag",
                        object("The whole definition; its JSON Schema is `docs/flag-definition.schema.json` (`opsready_flags::DEFINITION_SCHEMA`)."),
                    )
                    .required("flag")
                    .into(),
            ),
            changed(),
        ),
        (
            "/admin/flags/{key}/kill",
            HttpMethod::Post,
            "admin_kill_flag",
            "Turns a flag off for everyone at once; a flag whose latest version is a kill is left as it is, and the answer is that kill.",
            Some(change_request().into()),
            changed(),
        ),
        (
            "/admin/flags/{key}/rollback",
            HttpMethod::Post,
            "admin_rollback_flag",
            "Restores the definition of an earlier version.",
            Some(
                change_request()
                    .property(
                        "to_version",
                        ObjectBuilder::new()
                            .schema_type(Type::Integer)
                            .minimum(Some(1))
                            .description(Some(
                                "The version to restore; the one before the latest when absent.",
                            )),
                    )
                    .into(),
            ),
            changed(),
        ),
        (
            "/admin/flags/{key}/history",
            HttpMethod::Get,
            "admin_flag_history",
            "Every change of a flag, oldest first.",
            None,
            object("The history.")
                .property("key", string("The flag's key."))
                .required("key")
                .property("changes", array(object("An audit entry.")))
                .required("changes")
                .into(),
        ),
    ]
}

fn string(description: &str) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(description))
}

fn object(description: &str) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .description(Some(description))
}

fn array(items: ObjectBuilder) -> ArrayBuilder {
    ArrayBuilder::new().items(items)
}

/// The members every change of a flag has.
fn change_request() -> ObjectBuilder {
    object("A change of a flag.")
        .property("reason", string("Why: kept in the flag's history."))
        .required("reason")
        .property("actor", string("Who; `admin-api` when absent."))
        .additional_properties(Some(AdditionalProperties::FreeForm(false)))
}

/// The answer to a change: the audit entry it recorded.
fn changed() -> Schema {
    object("The change as recorded; its version is the `ETag`.")
        .property("change", object("The audit entry."))
        .required("change")
        .into()
}

fn json(description: &str, schema: Schema) -> Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new().schema(Some(schema)).build(),
        )
        .build()
}

/// A probe's answer; with `verbose` as text when `text` (readiness).
fn health(description: &str, text: bool) -> Response {
    let response = ResponseBuilder::new().description(description).content(
        "application/health+json",
        ContentBuilder::new()
            .schema(Some(Ref::from_schema_name("Health")))
            .build(),
    );
    if text {
        response.content(
            "text/plain",
            ContentBuilder::new()
                .schema(Some(string(
                    "With `?verbose`: a line per check, `[+]name ok` or `[-]name failed`.",
                )))
                .build(),
        )
    } else {
        response
    }
    .build()
}

/// A probe's body, after the IETF health-check draft.
fn health_schema() -> RefOr<Schema> {
    let status: Object = ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(["pass", "warn", "fail"]))
        .description(Some("The verdict."))
        .build();
    object("A probe's answer (`application/health+json`).")
        .property("status", status)
        .required("status")
        .property("output", string("Why it is not passing, e.g. `starting`."))
        .property(
            "checks",
            object("Per check (readiness only), a list of readings.").additional_properties(Some(
                AdditionalProperties::RefOr(RefOr::T(array(object("A reading.")).into())),
            )),
        )
        .into()
}
