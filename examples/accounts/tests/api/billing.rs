use serde_json::{Value, json};

use crate::helpers::{Answer, TestApp, code_at, pointers};

on_both_databases!(
    an_invoice_is_created_open_with_its_lines_subtotal_tax_and_total,
    a_retry_with_the_same_key_and_body_replays_the_first_response,
    concurrent_retries_with_one_key_create_one_invoice,
    the_same_key_with_another_body_is_a_422_problem,
    a_missing_or_invalid_idempotency_key_is_a_400_problem,
    every_invalid_invoice_field_is_reported_with_its_pointer,
    too_many_lines_are_one_error_not_one_per_line,
    an_invoice_must_have_a_positive_amount,
    an_unknown_customer_is_a_422_problem_and_does_not_use_up_the_key,
    malformed_json_and_a_wrong_content_type_are_400_and_415_problems,
    an_open_invoice_is_paid_once_and_a_second_payment_is_a_409_problem,
    unknown_invoices_are_404_problems,
    invoices_are_listed_across_pages_and_by_customer,
    a_customer_with_invoices_cannot_be_deleted,
    the_tax_engine_follows_the_flag_and_its_kill,
);

fn invoice_for(customer: &Value) -> Value {
    json!({
        "customer_id": customer["id"],
        "currency": "EUR",
        "lines": [
            {"description": "Widget", "quantity": 2, "unit_amount": 1250},
            {"description": "Shipping", "quantity": 1, "unit_amount": 499},
        ],
    })
}

async fn an_invoice_is_created_open_with_its_lines_subtotal_tax_and_total(app: TestApp) {
    let ann = app.create_user("ann@example.com").await;

    let response = app.create_invoice("key-1", &invoice_for(&ann)).await;

    assert_eq!(response.status(), 201);
    assert!(response.headers().get("idempotent-replayed").is_none());
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let invoice: Value = response.json().await.unwrap();
    assert_eq!(
        location,
        format!("/billing/invoices/{}", invoice["id"].as_str().unwrap())
    );
    assert_eq!(invoice["customer_id"], ann["id"]);
    assert_eq!(invoice["state"], "open");
    assert_eq!(invoice["lines"][0]["amount"], 2500);
    assert_eq!(invoice["subtotal"], 2999);
    // v1 (the flag is off): 20 % of 29.99 is 5.998, rounded once.
    assert_eq!(invoice["tax_engine"], "v1");
    assert_eq!(invoice["tax"], 600);
    assert_eq!(invoice["total"], 3599);
    assert_eq!(invoice["paid_at"], Value::Null);
    let read: Value = app.get(&location).await.json().await.unwrap();
    assert_eq!(read, invoice);
}

async fn a_retry_with_the_same_key_and_body_replays_the_first_response(app: TestApp) {
    // Arrange
    let ann = app.create_user("ann@example.com").await;
    let first = app.create_invoice("retry-key", &invoice_for(&ann)).await;
    let first_location = first.headers()["location"].clone();
    let first_body = first.text().await.unwrap();
    let id = serde_json::from_str::<Value>(&first_body).unwrap()["id"].clone();
    // The invoice changes after the first response.
    let paid = app
        .post_json(
            &format!("/billing/invoices/{}/pay", id.as_str().unwrap()),
            &json!({}),
        )
        .await;
    assert_eq!(paid.status(), 200);

    // Act: the same body, members in another order.
    let body = invoice_for(&ann);
    let reordered = json!({
        "lines": body["lines"],
        "currency": "EUR",
        "customer_id": ann["id"],
    });
    let retry = app.create_invoice("retry-key", &reordered).await;

    // Assert: the first answer, byte for byte, and still one invoice.
    assert_eq!(retry.status(), 201);
    assert_eq!(retry.headers()["idempotent-replayed"], "true");
    assert_eq!(retry.headers()["location"], first_location);
    assert_eq!(retry.text().await.unwrap(), first_body);
    let list: Value = app.get("/billing/invoices").await.json().await.unwrap();
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
}

async fn concurrent_retries_with_one_key_create_one_invoice(app: TestApp) {
    let ann = app.create_user("ann@example.com").await;
    let body = invoice_for(&ann);

    // Sent at once from tasks of a multi-threaded runtime.
    let requests: Vec<_> = (0..6)
        .map(|_| {
            let request = app
                .client
                .post(format!("{}/billing/invoices", app.address))
                .header("idempotency-key", "racing-key")
                .json(&body);
            tokio::spawn(Answer::checked(request))
        })
        .collect();

    let mut bodies = Vec::new();
    for request in requests {
        let response = request.await.unwrap();
        assert_eq!(response.status(), 201);
        bodies.push(response.text().await.unwrap());
    }
    assert!(
        bodies.windows(2).all(|pair| pair[0] == pair[1]),
        "{bodies:?}"
    );
    let list: Value = app.get("/billing/invoices").await.json().await.unwrap();
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
}

async fn the_same_key_with_another_body_is_a_422_problem(app: TestApp) {
    let ann = app.create_user("ann@example.com").await;
    let first = app.create_invoice("reused-key", &invoice_for(&ann)).await;
    assert_eq!(first.status(), 201);
    let mut other = invoice_for(&ann);
    other["lines"][0]["quantity"] = json!(3);

    let response = app.create_invoice("reused-key", &other).await;

    assert_eq!(response.status(), 422);
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["code"], "IDEMPOTENCY_KEY_REUSED");
    let list: Value = app.get("/billing/invoices").await.json().await.unwrap();
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
}

async fn a_missing_or_invalid_idempotency_key_is_a_400_problem(app: TestApp) {
    let ann = app.create_user("ann@example.com").await;

    let missing = app.post_json("/billing/invoices", &invoice_for(&ann)).await;
    let too_long = app
        .create_invoice(&"k".repeat(256), &invoice_for(&ann))
        .await;
    // Checked before the body: a missing key is reported whatever it holds.
    let missing_and_bad_body = app.post_json("/billing/invoices", &json!({})).await;

    assert_eq!(missing.status(), 400);
    let problem: Value = missing.json().await.unwrap();
    assert_eq!(problem["code"], "IDEMPOTENCY_KEY_MISSING");
    assert_eq!(too_long.status(), 400);
    let problem: Value = too_long.json().await.unwrap();
    assert_eq!(problem["code"], "INVALID_IDEMPOTENCY_KEY");
    assert_eq!(missing_and_bad_body.status(), 400);
}

async fn every_invalid_invoice_field_is_reported_with_its_pointer(app: TestApp) {
    let ann = app.create_user("ann@example.com").await;

    let response = app
        .create_invoice(
            "bad-fields",
            &json!({
                "customer_id": ann["id"],
                "currency": "EURO",
                "lines": [
                    {"description": "", "quantity": 0, "unit_amount": 100},
                    {"description": "Widget", "quantity": 1, "unit_amount": -5},
                    {"description": "Gadget", "quantity": "two", "unit_amount": 100},
                ],
            }),
        )
        .await;

    assert_eq!(response.status(), 422);
    let problem: Value = response.json().await.unwrap();
    let mut found = pointers(&problem);
    found.sort_unstable();
    assert_eq!(
        found,
        [
            "/currency",
            "/lines/0/description",
            "/lines/0/quantity",
            "/lines/1/unit_amount",
            "/lines/2/quantity",
        ]
    );
    assert_eq!(code_at(&problem, "/currency"), "INVALID_CURRENCY");
    assert_eq!(code_at(&problem, "/lines/1/unit_amount"), "NOT_POSITIVE");
    assert_eq!(code_at(&problem, "/lines/2/quantity"), "INVALID_TYPE");
}

async fn too_many_lines_are_one_error_not_one_per_line(app: TestApp) {
    let ann = app.create_user("ann@example.com").await;
    // Each line is wrong three times over: checked one by one, they would
    // make an answer of 15,000 errors.
    let line = json!({"description": "", "quantity": 0, "unit_amount": 0});
    let body = json!({
        "customer_id": ann["id"],
        "currency": "EURO",
        "lines": vec![line; 5_000],
    });

    let response = app.create_invoice("flood", &body).await;

    assert_eq!(response.status(), 422);
    let problem: Value = response.json().await.unwrap();
    let mut found = pointers(&problem);
    found.sort_unstable();
    assert_eq!(found, ["/currency", "/lines"]);
    assert_eq!(code_at(&problem, "/lines"), "TOO_MANY_LINES");
}

async fn an_invoice_must_have_a_positive_amount(app: TestApp) {
    let ann = app.create_user("ann@example.com").await;
    let no_lines = json!({"customer_id": ann["id"], "currency": "EUR", "lines": []});
    let zero = json!({
        "customer_id": ann["id"],
        "currency": "EUR",
        "lines": [{"description": "Free", "quantity": 1, "unit_amount": 0}],
    });

    let no_lines = app.create_invoice("no-lines", &no_lines).await;
    let zero = app.create_invoice("zero", &zero).await;

    assert_eq!(no_lines.status(), 422);
    let problem: Value = no_lines.json().await.unwrap();
    assert_eq!(code_at(&problem, "/lines"), "NO_LINES");
    assert_eq!(zero.status(), 422);
    let problem: Value = zero.json().await.unwrap();
    assert_eq!(code_at(&problem, "/lines/0/unit_amount"), "NOT_POSITIVE");
}

async fn an_unknown_customer_is_a_422_problem_and_does_not_use_up_the_key(app: TestApp) {
    let ghost = json!({"id": "0190b3c4-0000-7000-8000-000000000000"});

    let response = app.create_invoice("ghost-key", &invoice_for(&ghost)).await;
    let rows_after_refusal = app
        .query_strings("SELECT CAST(count(*) AS TEXT) FROM invoices")
        .await;
    let ann = app.create_user("ann@example.com").await;
    let retry = app.create_invoice("ghost-key", &invoice_for(&ann)).await;

    assert_eq!(response.status(), 422);
    let problem: Value = response.json().await.unwrap();
    assert_eq!(code_at(&problem, "/customer_id"), "UNKNOWN_CUSTOMER");
    assert_eq!(rows_after_refusal, ["0"]);
    assert_eq!(retry.status(), 201);
}

/// The race of two requests with one key, forced rather than hoped for:
/// the key is claimed by a transaction that commits only once the
/// service's request waits on it, after its first look found no key. The
/// service must roll its own invoice back and answer from the stored key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_claimed_while_the_request_worked_rolls_its_invoice_back() {
    use sqlx::{Connection as _, Executor as _};

    // Arrange: an invoice for the stored key to point at, and a
    // transaction holding the key, uncommitted.
    let Some(app) = crate::helpers::spawn_app(crate::helpers::Backend::Postgres).await else {
        return;
    };
    let ann = app.create_user("ann@example.com").await;
    let first: Value = app
        .create_invoice("first-key", &invoice_for(&ann))
        .await
        .json()
        .await
        .unwrap();
    let mut holder = sqlx::PgConnection::connect(&app.database_url)
        .await
        .unwrap();
    holder.execute("BEGIN").await.unwrap();
    sqlx::query(
        "INSERT INTO idempotency_keys (key, request_hash, invoice_id, status, body, created_at)
         VALUES ('racing-key', 'another request', $1, 201, '{}', now())",
    )
    .bind(uuid::Uuid::parse_str(first["id"].as_str().unwrap()).unwrap())
    .execute(&mut holder)
    .await
    .unwrap();

    // Act: the request finds no key, stores its invoice, and waits on the
    // key's index entry; then the key's transaction commits.
    let request = tokio::spawn(Answer::checked(
        app.client
            .post(format!("{}/billing/invoices", app.address))
            .header("idempotency-key", "racing-key")
            .json(&invoice_for(&ann)),
    ));
    app.wait_for("the request to wait on the key's lock", || async {
        app.query_strings(
            "SELECT CAST(count(*) AS TEXT) FROM pg_stat_activity
             WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .await
            == ["1"]
    })
    .await;
    holder.execute("COMMIT").await.unwrap();
    let response = request.await.unwrap();

    // Assert: answered from the stored key (another request's, so a
    // reuse), and the invoice it had stored is gone.
    assert_eq!(response.status(), 422);
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["code"], "IDEMPOTENCY_KEY_REUSED");
    let invoices = app
        .query_strings("SELECT CAST(id AS TEXT) FROM invoices")
        .await;
    assert_eq!(invoices, [first["id"].as_str().unwrap()]);
}

async fn malformed_json_and_a_wrong_content_type_are_400_and_415_problems(app: TestApp) {
    let request = |content_type: &'static str, body: &'static str| {
        Answer::checked(
            app.client
                .post(format!("{}/billing/invoices", app.address))
                .header("idempotency-key", "k")
                .header("content-type", content_type)
                .body(body),
        )
    };

    let malformed = request("application/json", "{").await;
    let wrong_type = request("application/x-www-form-urlencoded", "a=b").await;

    assert_eq!(malformed.status(), 400);
    let problem: Value = malformed.json().await.unwrap();
    assert_eq!(problem["code"], "MALFORMED_JSON");
    assert_eq!(wrong_type.status(), 415);
}

async fn an_open_invoice_is_paid_once_and_a_second_payment_is_a_409_problem(app: TestApp) {
    let ann = app.create_user("ann@example.com").await;
    let invoice: Value = app
        .create_invoice("pay-key", &invoice_for(&ann))
        .await
        .json()
        .await
        .unwrap();
    let pay = format!("/billing/invoices/{}/pay", invoice["id"].as_str().unwrap());

    let first = app.post_json(&pay, &json!({})).await;
    let second = app.post_json(&pay, &json!({})).await;

    assert_eq!(first.status(), 200);
    let paid: Value = first.json().await.unwrap();
    assert_eq!(paid["state"], "paid");
    assert!(paid["paid_at"].is_string());
    assert_eq!(paid["total"], invoice["total"]);
    assert_eq!(second.status(), 409);
    let problem: Value = second.json().await.unwrap();
    assert_eq!(problem["code"], "INVOICE_ALREADY_PAID");
}

async fn unknown_invoices_are_404_problems(app: TestApp) {
    let unknown = "0190b3c4-0000-7000-8000-000000000000";

    let get = app.get(&format!("/billing/invoices/{unknown}")).await;
    let pay = app
        .post_json(&format!("/billing/invoices/{unknown}/pay"), &json!({}))
        .await;
    let malformed = app.get("/billing/invoices/nope").await;

    assert_eq!(get.status(), 404);
    let problem: Value = get.json().await.unwrap();
    assert_eq!(problem["code"], "NOT_FOUND");
    assert_eq!(pay.status(), 404);
    assert_eq!(malformed.status(), 400);
}

async fn invoices_are_listed_across_pages_and_by_customer(app: TestApp) {
    // Arrange
    let ann = app.create_user("ann@example.com").await;
    let bo = app.create_user("bo@example.com").await;
    let mut anns = Vec::new();
    for n in 0..3 {
        let invoice: Value = app
            .create_invoice(&format!("ann-{n}"), &invoice_for(&ann))
            .await
            .json()
            .await
            .unwrap();
        anns.push(invoice["id"].clone());
        app.create_invoice(&format!("bo-{n}"), &invoice_for(&bo))
            .await;
    }

    // Act
    let customer = ann["id"].as_str().unwrap();
    let first: Value = app
        .get(&format!("/billing/invoices?customer_id={customer}&limit=2"))
        .await
        .json()
        .await
        .unwrap();
    let cursor = first["next_cursor"].as_str().unwrap();
    let second: Value = app
        .get(&format!(
            "/billing/invoices?customer_id={customer}&limit=2&cursor={cursor}"
        ))
        .await
        .json()
        .await
        .unwrap();
    let all: Value = app
        .get("/billing/invoices?limit=100")
        .await
        .json()
        .await
        .unwrap();
    let users_cursor = app.get(&format!("/users?cursor={cursor}")).await;
    // A misspelt filter is refused, not ignored into everyone's invoices.
    let misspelt = app
        .get(&format!("/billing/invoices?customerId={customer}"))
        .await;
    // Every bad parameter named in one answer.
    let all_bad = app
        .get("/billing/invoices?customer_id=nope&limit=many&cursor=x")
        .await;

    // Assert
    let ids = |page: &Value| -> Vec<Value> {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["id"].clone())
            .collect()
    };
    assert_eq!(ids(&first), anns[..2]);
    assert_eq!(ids(&second), anns[2..]);
    assert_eq!(second["next_cursor"], Value::Null);
    assert_eq!(all["items"].as_array().unwrap().len(), 6);
    // A cursor of one list is no cursor of another.
    assert_eq!(users_cursor.status(), 400);
    assert_eq!(misspelt.status(), 400);
    let misspelt: Value = misspelt.json().await.unwrap();
    assert_eq!(
        misspelt["errors"][0]["parameter"], "customerId",
        "{misspelt}"
    );
    assert_eq!(misspelt["errors"][0]["code"], "UNKNOWN_FIELD", "{misspelt}");
    assert_eq!(all_bad.status(), 400);
    let all_bad: Value = all_bad.json().await.unwrap();
    let named: Vec<&str> = all_bad["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|error| error["parameter"].as_str().unwrap())
        .collect();
    assert_eq!(named, ["customer_id", "limit", "cursor"], "{all_bad}");
}

async fn a_customer_with_invoices_cannot_be_deleted(app: TestApp) {
    let ann = app.create_user("ann@example.com").await;
    app.create_invoice("k", &invoice_for(&ann)).await;

    let response = app
        .delete(&format!("/users/{}", ann["id"].as_str().unwrap()))
        .await;

    assert_eq!(response.status(), 409);
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["code"], "USER_HAS_INVOICES");
}

async fn the_tax_engine_follows_the_flag_and_its_kill(app: TestApp) {
    // Arrange: two lines of 0.03, which the engines tax differently.
    let ann = app.create_user("ann@example.com").await;
    let body = json!({
        "customer_id": ann["id"],
        "currency": "EUR",
        "lines": [
            {"description": "Bolt", "quantity": 1, "unit_amount": 3},
            {"description": "Nut", "quantity": 1, "unit_amount": 3},
        ],
    });
    let declared: Value =
        Answer::checked(app.admin(reqwest::Method::GET, "/flags/billing.tax_engine_v2"))
            .await
            .json()
            .await
            .unwrap();
    let before: Value = app
        .create_invoice("before", &body)
        .await
        .json()
        .await
        .unwrap();

    // Act
    let rolled_out = Answer::checked(
        app.admin(reqwest::Method::PUT, "/flags/billing.tax_engine_v2")
            .header("if-match", "\"1\"")
            .json(&json!({
                "reason": "per-line tax for everyone",
                "flag": {
                    "type": "bool",
                    "variants": {"on": true, "off": false},
                    "default_variant": "off",
                    "enabled": true,
                    "rollout": {"variant": "on", "percentage": 100},
                },
            })),
    )
    .await;
    assert_eq!(rolled_out.status(), 200);
    let during: Value = app
        .create_invoice("during", &body)
        .await
        .json()
        .await
        .unwrap();
    let killed = Answer::checked(
        app.admin(reqwest::Method::POST, "/flags/billing.tax_engine_v2/kill")
            .json(&json!({"reason": "tax office says no"})),
    )
    .await;
    assert_eq!(killed.status(), 200);
    let after: Value = app
        .create_invoice("after", &body)
        .await
        .json()
        .await
        .unwrap();

    // Assert
    assert_eq!(declared["version"], 1, "{declared}");
    assert_eq!(declared["flag"]["owner"], "team-billing");
    assert_eq!(
        (before["tax_engine"].as_str(), before["tax"].as_i64()),
        (Some("v1"), Some(1))
    );
    assert_eq!(
        (during["tax_engine"].as_str(), during["tax"].as_i64()),
        (Some("v2"), Some(2))
    );
    assert_eq!(
        (after["tax_engine"].as_str(), after["tax"].as_i64()),
        (Some("v1"), Some(1))
    );
    // An invoice keeps the engine it was taxed with.
    let id = during["id"].as_str().unwrap();
    let reread: Value = app
        .get(&format!("/billing/invoices/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(reread["tax_engine"], "v2");
}
