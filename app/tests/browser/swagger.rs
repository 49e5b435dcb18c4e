//! Swagger UI's "Authorize": a call without the key is 401, after entering
//! it under "Authorize" the same call is 200 and the shown curl carries it.

use crate::{running, webdriver};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swagger_ui_authorize_sends_the_key() {
    let Some(driver) = webdriver::driver() else { return };
    let dir = tempfile::tempdir().expect("dir");
    let key = session_backend::domain::keys::mint().expect("key");
    let keys = format!("ops {}", key.hash);
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("ui.db").display());
    let (_server, base) = running::start(&url, dir.path(), &[("SESSION_BACKEND_AUTH__KEYS", &keys)]).await;

    let browser = webdriver::Browser::start(&driver, &[], dir.path()).await;
    browser.open(&format!("{base}/docs")).await;
    let operation = "#operations-Sessions-list_sessions";
    browser.click(&format!("{operation} .opblock-summary-control")).await;
    browser.click(&format!("{operation} .try-out__btn")).await;
    browser.click(&format!("{operation} .execute")).await;
    let status = format!("{operation} .live-responses-table .response .response-col_status");
    browser.text_when(&status, |t| t.starts_with("401")).await;

    // Authorize with the key as a bearer token, then the same call again.
    browser.click(".auth-wrapper .authorize").await;
    let bearer = ".modal-ux .auth-container:has(input[aria-label=auth-bearer-value])";
    browser.type_into(&format!("{bearer} input"), &key.key).await;
    browser.click(&format!("{bearer} .btn.modal-btn.auth.authorize")).await;
    browser.click(".modal-ux .btn-done").await;
    browser.click(&format!("{operation} .execute")).await;
    browser.text_when(&status, |t| t.starts_with("200")).await;
    let curl = browser.text_when(&format!("{operation} .curl"), |t| t.contains("Authorization")).await;
    assert!(curl.contains(&format!("Authorization: Bearer {}", key.key)), "{curl}");
    browser.quit().await;
}
