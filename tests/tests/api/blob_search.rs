//! Search over whole values: any word of a snapshot of many MiB is found,
//! wherever it lies (its newest turns are at its end, words straddle the
//! 1 MiB chunks), as soon as the write is answered; base64 data inside it
//! is not taken for words. A search can bring the values it finds along,
//! up to a budget per answer.

use base64::{Engine, engine::general_purpose::STANDARD as BASE64};
use serde_json::{Value, json};

use crate::{
    both_backends,
    helpers::{Backend, TestApp, direct, enc, fresh_database, scalar, spawn_app_with, start, test_config},
    storage::{noise, put},
};

both_backends!(
    every_word_of_a_16_mib_snapshot_is_found_at_once,
    values_indexed_before_the_upgrade_are_still_found,
    hits_bring_their_values_within_the_budget
);

const MIB: usize = 1024 * 1024;

/// Keys a search for `q` finds.
async fn found(app: &TestApp, q: &str) -> Vec<String> {
    let answer = app.get(&format!("/api/v1/storage?q={}", enc(q))).await.expect(200);
    answer["results"]
        .as_array()
        .expect("results")
        .iter()
        .filter_map(|r| r["key"].as_str().map(str::to_owned))
        .collect()
}

/// Base64 of deterministic bytes, as an image inside a snapshot is.
fn base64_image(len: usize, seed: u32) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            ALPHABET[(x % 64) as usize] as char
        })
        .collect()
}

/// A snapshot like the SDK's: turns of text and images, about `bytes`
/// long, with `last_word` in its very last turn.
fn snapshot(bytes: usize, last_word: &str) -> String {
    let mut messages: Vec<Value> = Vec::new();
    let mut size = 0;
    let mut turn = 0u32;
    while size < bytes {
        let text = format!("turn {turn}: the agent looked at the weather report and answered the user. ");
        let message = if turn % 40 == 7 {
            json!({"role": "user", "content": [{"image": {"format": "png", "source": {"bytes": {
                "__bytes_encoded__": true, "data": base64_image(64 * 1024, turn)}}}}]})
        } else {
            json!({"role": if turn.is_multiple_of(2) { "user" } else { "assistant" }, "content": [{"text": text.repeat(20)}]})
        };
        size += message.to_string().len();
        messages.push(json!({"message": message, "message_id": turn}));
        turn += 1;
    }
    messages
        .push(json!({"message": {"role": "user", "content": [{"text": format!("remember {last_word}")}]}}));
    json!({"schema_version": "1.0", "agent_id": "a1", "messages": messages}).to_string()
}

async fn every_word_of_a_16_mib_snapshot_is_found_at_once(backend: Backend) {
    let app = crate::app!(backend);
    let mut text = snapshot(16 * MIB, "zebracorn");
    // A word that straddles the boundary of the second and third chunks.
    let at = 2 * MIB - 3;
    assert!(text.is_char_boundary(at) && text.is_char_boundary(at + 14));
    text.replace_range(at..at + 14, " straddleword ");
    put(&app, "session/s1/snapshot_latest.json", text.clone()).await.expect(204);
    // Seen at once: no wait between the write's answer and the search.
    assert_eq!(found(&app, "zebracorn").await, ["session/s1/snapshot_latest.json"]);
    assert_eq!(found(&app, "straddleword").await, ["session/s1/snapshot_latest.json"]);
    assert_eq!(found(&app, "3000").await, ["session/s1/snapshot_latest.json"]);
    // Pieces of the images are not words.
    let image = base64_image(64 * 1024, 7);
    let piece: String = image.split(['+', '/']).find(|p| p.len() >= 12).expect("a long piece").to_owned();
    assert!(text.contains(&piece));
    assert!(found(&app, &piece).await.is_empty(), "{piece} was indexed");
    // Written again without the word, it is gone.
    put(&app, "session/s1/snapshot_latest.json", snapshot(4 * MIB, "unicornzebra")).await.expect(204);
    assert!(found(&app, "zebracorn").await.is_empty());
    assert_eq!(found(&app, "unicornzebra").await, ["session/s1/snapshot_latest.json"]);
}

/// A value stored and indexed by the previous release is found after the
/// upgrade's migration, and chunks that no key pointed at then are listed
/// for the sweeper.
async fn values_indexed_before_the_upgrade_are_still_found(backend: Backend) {
    use migration::{Migrator, MigratorTrait};
    use sea_orm::ConnectionTrait;
    let Some(database) = fresh_database(backend).await else { return };
    let db = direct(&database.direct_url()).await;
    // The schema of the release before the index: every migration before it.
    let previous = Migrator::migrations()
        .iter()
        .position(|m| m.name() == "m20261204_000001_index_and_reclaim_blobs")
        .expect("the index's migration") as u32;
    Migrator::up(&db, Some(previous)).await.expect("the previous schema");
    let text = "Notes from before the upgrade: the zebra crossed the road.";
    let sql =
        |statement: &str| sea_orm::Statement::from_string(db.get_database_backend(), statement.to_owned());
    let legacy = match backend {
        Backend::Postgres => vec![
            format!(
                "INSERT INTO blobs VALUES ('default', 'notes/old', 7, {}, now(), to_tsvector('simple', '{text}'))",
                text.len()
            ),
            format!(
                "INSERT INTO blob_chunks VALUES ('default', 'notes/old', 7, 0, convert_to('{text}', 'UTF8'))"
            ),
        ],
        Backend::Sqlite => vec![
            format!(
                "INSERT INTO blobs VALUES ('default', 'notes/old', 7, {}, '2026-12-01T00:00:00.000000+00:00')",
                text.len()
            ),
            format!("INSERT INTO blob_chunks VALUES ('default', 'notes/old', 7, 0, CAST('{text}' AS BLOB))"),
            format!("INSERT INTO blob_search (rowid, body) SELECT rowid, '{text}' FROM blobs"),
        ],
    };
    for statement in legacy {
        db.execute_raw(sql(&statement)).await.expect("a row of the previous release");
    }
    // Chunks of an upload a crash cut off.
    db.execute_raw(sql("INSERT INTO blob_chunks VALUES ('default', 'notes/old', 9, 0, CAST('x' AS BYTEA))"
        .replace("BYTEA", if backend == Backend::Postgres { "BYTEA" } else { "BLOB" })
        .as_str()))
        .await
        .expect("an orphan chunk");
    db.close().await.ok();

    let app = start(test_config(&database.url), Some(database)).await;
    assert_eq!(found(&app, "zebra").await, ["notes/old"]);
    assert_eq!(found(&app, "ROAD crossed").await, ["notes/old"]);
    let (back, _) = crate::storage::read(&app, "notes/old").await;
    assert_eq!(back, text.as_bytes());
    let listed = scalar(&app.database_url, "SELECT COUNT(*) FROM blob_garbage WHERE version = 9").await;
    assert_eq!(listed, 1, "the orphan is listed for the sweeper");
}

/// `with_values=true`: the best hits carry their exact bytes (a value of
/// several chunks included) while their sizes add up to at most
/// `storage.search_values_bytes`; from the first that does not fit, hits
/// come without, and the answer says so. Keys, order and scores are those
/// of the same search without values.
async fn hits_bring_their_values_within_the_budget(backend: Backend) {
    let budget = 3 * MIB;
    let Some(app) = spawn_app_with(backend, |c| c.storage.search_values_bytes = budget as u64).await else {
        return;
    };
    let padded = |words: &str, len: usize| {
        let mut text = format!("{words} ");
        while text.len() < len {
            text.push_str("filler text ");
        }
        text.into_bytes()
    };
    let values = [
        ("memo/a", padded("needle needle needle needle needle", 100)),
        ("memo/b", padded("needle needle needle needle", 2 * MIB + MIB / 2)),
        ("memo/c", padded("needle needle needle", MIB)),
        ("memo/d", padded("needle needle", 10)),
        ("memo/e", padded("needle", 10)),
        ("other/f", padded("needle", 10)),
    ];
    for (key, value) in &values {
        put(&app, key, value.clone()).await.expect(204);
    }
    put(&app, "memo/binary", noise(5000, 3)).await.expect(204);
    let stored = |key: &str| values.iter().find(|(k, _)| *k == key).map(|(_, v)| v.clone());
    let search = |more: &str| {
        let url = format!("/api/v1/storage?q=needle&prefix=memo/{more}");
        let app = &app;
        async move { app.get(&url).await }
    };

    let plain = search("").await.expect(200);
    assert!(plain.get("values_truncated").is_none(), "{plain}");
    let full = search("&with_values=true").await.expect(200);
    let hits = full["results"].as_array().expect("results");
    let keys = |answer: &Value| -> Vec<(String, f64)> {
        let hits = answer["results"].as_array().expect("results");
        hits.iter()
            .map(|h| (h["key"].as_str().expect("key").to_owned(), h["score"].as_f64().expect("score")))
            .collect()
    };
    assert_eq!(keys(&full), keys(&plain), "the same hits in the same order");
    assert_eq!(hits.len(), 5, "{plain}");
    let mut total = 0;
    let mut ended = false;
    for hit in hits {
        let key = hit["key"].as_str().expect("key");
        let size = stored(key).expect("a stored key").len();
        match hit.get("data") {
            Some(data) => {
                assert!(!ended, "{key} has data after a hit without");
                let bytes = BASE64.decode(data.as_str().expect("base64 text")).expect("base64");
                assert!(bytes == stored(key).expect("stored"), "{key}'s data is its exact value");
                total += size;
            }
            None => {
                assert!(ended || total + size > budget, "{key} would have fitted");
                ended = true;
            }
        }
    }
    assert!(total <= budget && total > 2 * MIB, "the multi-chunk value came whole: {total}");
    assert!(ended && full["values_truncated"] == json!(true), "{}", full["values_truncated"]);

    // Within the budget every hit has its value, and the answer says so.
    let small = search("&with_values=true&limit=1").await.expect(200);
    assert_eq!(small["values_truncated"], json!(false));
    assert_eq!(small["results"].as_array().expect("results").len(), 1);
    // A write is seen, with its new bytes, as soon as it is answered.
    put(&app, "memo/d", "needle rewritten").await.expect(204);
    let again = app.get("/api/v1/storage?q=rewritten&with_values=true").await.expect(200);
    assert_eq!(again["results"][0]["data"], json!(BASE64.encode("needle rewritten")), "{again}");
    // A listing ignores the flag; the flag is a boolean.
    let listed = app.get("/api/v1/storage?prefix=memo/&with_values=true").await.expect(200);
    assert_eq!(listed["keys"].as_array().map(Vec::len), Some(6), "{listed}");
    let refused = app.get("/api/v1/storage?q=needle&with_values=maybe").await.expect(422);
    assert_eq!(refused["detail"]["error"], "ValidationError", "{refused}");
}
