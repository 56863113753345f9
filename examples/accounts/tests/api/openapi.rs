use reqwest::header::CONTENT_TYPE;
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_conforms};

on_both_databases!(
    the_document_is_served_as_committed,
    swagger_ui_is_served_with_every_asset_from_the_service_itself,
);

async fn the_document_is_served_as_committed(app: TestApp) {
    // Not through `app.get`: the document does not describe itself.
    let response = app
        .client
        .get(format!("{}/openapi.json", app.address))
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()[CONTENT_TYPE], "application/json");
    let text = response.text().await.unwrap();
    assert_eq!(text, accounts::openapi_json());
    let document: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(document["openapi"], "3.1.0");
    assert_eq!(
        document["paths"]["/admin/config"]["get"]["security"],
        json!([{"admin": []}])
    );
    assert_eq!(
        document["components"]["securitySchemes"]["admin"]["scheme"],
        "bearer"
    );
}

async fn swagger_ui_is_served_with_every_asset_from_the_service_itself(app: TestApp) {
    // Act: `/docs` redirects to `/docs/`, which reqwest follows.
    let response = app
        .client
        .get(format!("{}/docs", app.address))
        .send()
        .await
        .unwrap();

    // Assert: HTML...
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()[CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html"),
        "{:?}",
        response.headers()
    );
    let page_url = response.url().clone();
    let html = response.text().await.unwrap();
    // ...whose scripts and style sheets are all on this origin and served.
    let assets = attribute_values(&html, &["src", "href"]);
    assert!(
        assets.iter().any(|asset| asset.ends_with(".js")),
        "{assets:?}"
    );
    assert!(
        assets.iter().any(|asset| asset.ends_with(".css")),
        "{assets:?}"
    );
    for asset in &assets {
        let url = page_url.join(asset).unwrap();
        assert_eq!(
            url.origin(),
            page_url.origin(),
            "{asset} is not served by the service"
        );
        let asset_response = app.client.get(url.clone()).send().await.unwrap();
        assert_eq!(asset_response.status(), 200, "{url}");
    }
    // The page loads the document of this service, and nothing checks it
    // against another host.
    let initializer = app
        .client
        .get(page_url.join("swagger-initializer.js").unwrap())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        initializer.contains(r#""url": "/openapi.json""#),
        "{initializer}"
    );
    assert!(
        initializer.contains(r#""validatorUrl": "none""#),
        "{initializer}"
    );
}

/// The values of the attributes `names` in `html`, in order.
fn attribute_values(html: &str, names: &[&str]) -> Vec<String> {
    let mut values = Vec::new();
    for name in names {
        for quote in ['"', '\''] {
            let opening = format!("{name}={quote}");
            let mut rest = html;
            while let Some(start) = rest.find(&opening) {
                rest = &rest[start + opening.len()..];
                let end = rest.find(quote).unwrap();
                values.push(rest[..end].to_owned());
                rest = &rest[end..];
            }
        }
    }
    values
}

fn a_user() -> Value {
    json!({
        "id": "0190b3c4-0000-7000-8000-000000000000",
        "email": "ann@example.com",
        "name": "Ann Lee",
        "created_at": "2025-01-01T00:00:00Z",
        "updated_at": "2025-01-01T00:00:00Z",
    })
}

#[test]
fn a_body_as_declared_passes_the_check() {
    assert_conforms("GET", "/users/{id}", 200, &a_user());
    assert_conforms(
        "GET",
        "/users/0190b3c4-0000-7000-8000-000000000000",
        200,
        &a_user(),
    );
}

#[test]
#[should_panic(expected = "does not match the OpenAPI document")]
fn an_undocumented_member_fails_the_check() {
    let mut user = a_user();
    user["password_hash"] = json!("$argon2id$…");
    assert_conforms("GET", "/users/{id}", 200, &user);
}

#[test]
#[should_panic(expected = "does not match the OpenAPI document")]
fn a_missing_member_fails_the_check() {
    let mut user = a_user();
    user.as_object_mut().unwrap().remove("email");
    assert_conforms("PATCH", "/users/{id}", 200, &user);
}

#[test]
#[should_panic(expected = "does not match the OpenAPI document")]
fn a_problem_without_its_code_fails_the_check() {
    let problem = json!({"type": "about:blank", "title": "Not Found", "status": 404});
    assert_conforms("GET", "/billing/invoices/{id}", 404, &problem);
}

#[test]
#[should_panic(expected = "declares no 418")]
fn an_undeclared_status_fails_the_check() {
    assert_conforms("GET", "/users/{id}", 418, &a_user());
}

#[test]
#[should_panic(expected = "not in the OpenAPI document")]
fn an_undeclared_route_fails_the_check() {
    assert_conforms("GET", "/accounts", 200, &a_user());
}
