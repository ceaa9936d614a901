//! The error answers the shared extractors give, added to every operation of a service's OpenAPI
//! document in one place rather than to each route's annotation (where they were missing).

use utoipa::{
    ToSchema,
    openapi::{
        ContentBuilder, OpenApi, Ref, RefOr, ResponseBuilder,
        path::{Operation, ParameterIn, PathItem},
        response::Response,
    },
};

use crate::error::ErrorBody;

/// A response whose body is the shared `{error, detail}` ([`ErrorBody`]).
pub fn error_response(description: &str) -> RefOr<Response> {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name(ErrorBody::name())))
                .build(),
        )
        .build()
        .into()
}

/// Every operation of a path.
pub fn operations_mut(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.options,
        &mut item.head,
        &mut item.patch,
        &mut item.trace,
    ]
    .into_iter()
    .filter_map(Option::as_mut)
}

/// Adds what [`crate::extract`] answers, where a route's annotation does not already say: a body
/// may be too large (413) or of the wrong type (415), a JSON body malformed (400) or of the wrong
/// shape (422); a query value may not fit (422); a path id may name nothing (404). A route whose
/// annotation lists its own 400 reads its body its own way (the Alertmanager webhook answers every
/// bad body 400, whatever its type): it only gets the 413.
pub fn add_error_responses(openapi: &mut OpenApi) {
    for item in openapi.paths.paths.values_mut() {
        for operation in operations_mut(item) {
            let body = operation.request_body.as_ref();
            let has_body = body.is_some();
            let own_400 = operation.responses.responses.contains_key("400");
            let json_body = !own_400
                && body.is_some_and(|body| body.content.keys().any(|t| t.contains("json")));
            let places: Vec<&ParameterIn> = operation
                .parameters
                .iter()
                .flatten()
                .map(|parameter| &parameter.parameter_in)
                .collect();
            let query = places
                .iter()
                .any(|place| matches!(place, ParameterIn::Query));
            let path = places
                .iter()
                .any(|place| matches!(place, ParameterIn::Path));
            let responses = &mut operation.responses.responses;
            let mut add = |status: &str, description: &str| {
                responses
                    .entry(status.to_owned())
                    .or_insert_with(|| error_response(description));
            };
            if has_body {
                add("413", "the body is larger than the service's limit");
            }
            if has_body && !own_400 {
                add("415", "the body's Content-Type is not one this route takes");
            }
            if json_body {
                add("400", "the body is not JSON");
                add(
                    "422",
                    "a field is missing or wrong; the detail starts with its name",
                );
            }
            if query {
                add(
                    "422",
                    "a query value does not fit; the detail starts with its name",
                );
            }
            if path {
                add("404", "nothing has this id (or it is someone else's)");
            }
        }
    }
}
