//! Search over whole values: any word of a snapshot of many MiB is found,
//! wherever it lies (its newest turns are at its end, words straddle the
//! 1 MiB chunks), as soon as the write is answered; base64 data inside it
//! is not taken for words.

use serde_json::{Value, json};

use crate::{
    both_backends,
    helpers::{Backend, TestApp, enc},
    storage::put,
};

both_backends!(every_word_of_a_16_mib_snapshot_is_found_at_once);

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
