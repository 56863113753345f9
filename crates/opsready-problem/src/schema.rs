//! `utoipa::ToSchema` for the envelope, written by hand so the schema says
//! exactly what the hand-written serializer emits.

use std::borrow::Cow;

use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, SchemaFormat, Type};
use utoipa::openapi::{Ref, RefOr, Schema};
use utoipa::{PartialSchema, ToSchema};

use crate::{FieldError, Problem};

fn string(description: &str) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(description))
}

impl PartialSchema for Problem {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .title(Some("Problem"))
            .description(Some(
                "An RFC 9457 problem: the body of every 4xx and 5xx response \
                 (`application/problem+json`).",
            ))
            .property(
                "type",
                string("URI identifying the problem type; ends with the code in kebab case, or `about:blank` for a status the catalog does not name (CLIENT_ERROR, SERVER_ERROR), whose title is then the status' reason phrase.")
                    .format(Some(SchemaFormat::Custom("uri".to_owned()))),
            )
            .required("type")
            .property("title", string("Short summary of the problem type."))
            .required("title")
            .property(
                "status",
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .minimum(Some(400))
                    .maximum(Some(599))
                    .description(Some("The HTTP status of the response.")),
            )
            .required("status")
            .property(
                "detail",
                string(
                    "Explanation of this occurrence. For a 5xx always the catalog \
                     description of the code.",
                ),
            )
            .property(
                "instance",
                string(
                    "`urn:request:{request_id}`, the id percent-encoded where a URI \
                     may not hold its characters.",
                )
                .format(Some(SchemaFormat::Custom("uri".to_owned()))),
            )
            .property(
                "code",
                string("Stable machine-readable code from the error catalog.")
                    .pattern(Some("^[A-Z][A-Z0-9_]*$")),
            )
            .required("code")
            .property(
                "request_id",
                string("Equals the `x-request-id` response header."),
            )
            .property(
                "trace_id",
                string("W3C trace id of the request.").pattern(Some("^[0-9a-f]{32}$")),
            )
            .property(
                "errors",
                ArrayBuilder::new()
                    .items(Ref::from_schema_name(FieldError::name()))
                    .description(Some("Every failing field or parameter.")),
            )
            .into()
    }
}

impl ToSchema for Problem {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Problem")
    }

    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((FieldError::name().into_owned(), FieldError::schema()));
    }
}

impl PartialSchema for FieldError {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .title(Some("FieldError"))
            .description(Some(
                "One failing input: exactly one of `pointer` (body) or `parameter` \
                 (path or query).",
            ))
            .property(
                "pointer",
                string("JSON Pointer (RFC 6901) into the request body."),
            )
            .property("parameter", string("Name of the path or query parameter."))
            .property(
                "code",
                string("Machine-readable code, e.g. `MISSING_FIELD` or `INVALID_EMAIL`."),
            )
            .required("code")
            .property("detail", string("Human-readable explanation."))
            .required("detail")
            .into()
    }
}

impl ToSchema for FieldError {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("FieldError")
    }
}
