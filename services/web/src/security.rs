//! What every answer of the site carries, and which changes it refuses.

use axum::{
    extract::Request,
    http::{HeaderValue, Method, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};

use crate::pages::layout;

/// Scripts, styles, fonts and fetches from this origin only, never inline; images also as
/// `blob:` (a photo's preview before it is uploaded) and `data:`; no plugins, no `<base>`, forms
/// posting only here, and no framing at all.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self' blob: data:; font-src 'self'; connect-src 'self'; \
     object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Adds the security headers to every answer, and `Cache-Control: no-store` to any that set no
/// caching of their own (pages hold a person's cards; only hashed assets are cached).
pub async fn headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

/// Whether a browser says the request comes from a page of another origin (`Sec-Fetch-Site`);
/// clients that are not browsers send no such header.
pub fn from_another_origin(method: &Method, site: Option<&HeaderValue>) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
        && site
            .and_then(|value| value.to_str().ok())
            .is_some_and(|site| {
                site.eq_ignore_ascii_case("cross-site") || site.eq_ignore_ascii_case("same-site")
            })
}

/// Refuses a change (a form post) that another site's page makes: the pages call the backend
/// with the visitor's cookie from this server, where the backend cannot see the browser's
/// `Sec-Fetch-Site`, so the check happens here.
pub async fn same_origin_changes(request: Request, next: Next) -> Response {
    if from_another_origin(request.method(), request.headers().get("sec-fetch-site")) {
        return (
            StatusCode::FORBIDDEN,
            layout::message_page(
                "Refused",
                "This form was sent from another site, so it was not carried out. Open \
                 flashcards yourself and try again there.",
            ),
        )
            .into_response();
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_changes_from_other_sites_are_refused() {
        let cross = HeaderValue::from_static("cross-site");
        let sibling = HeaderValue::from_static("same-site");
        let own = HeaderValue::from_static("same-origin");
        let typed = HeaderValue::from_static("none");
        assert!(from_another_origin(&Method::POST, Some(&cross)));
        assert!(from_another_origin(&Method::DELETE, Some(&sibling)));
        assert!(!from_another_origin(&Method::POST, Some(&own)));
        assert!(!from_another_origin(&Method::POST, Some(&typed)));
        assert!(!from_another_origin(&Method::POST, None));
        assert!(!from_another_origin(&Method::GET, Some(&cross)));
    }
}
