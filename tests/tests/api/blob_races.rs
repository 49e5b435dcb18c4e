//! Blobs under contention: `PUT`, `DELETE`, `DELETE ?prefix=` and `GET` of
//! the same keys at once, sent through several replicas of the server (on
//! PostgreSQL; SQLite has one). Whatever the interleaving, every answer is
//! one the document lists, a `GET` returns a whole value some `PUT` sent,
//! and every key ends absent or holding exactly one such value.

use std::{collections::HashMap, sync::Arc};

use futures::future::join_all;
use reqwest::StatusCode;
use tokio::sync::Semaphore;

use crate::{
    both_backends,
    helpers::{Backend, TestApp, enc, fresh_database, start, test_config},
    storage::noise,
};

both_backends!(racing_writes_deletes_and_reads_leave_whole_values);

/// Keys raced; each gets two writes, a delete and two reads at once, and
/// every eighth group of keys a prefix delete besides.
const KEYS: usize = 240;
const GROUP: usize = 8;
/// Requests in flight at once, over every replica.
const IN_FLIGHT: usize = 48;

fn key_path(key: &str) -> String {
    let parts: Vec<String> = key.split('/').map(enc).collect();
    format!("/api/v1/storage/{}", parts.join("/"))
}

/// Sizes that race at the end of a write: one chunk, a chunk and a bit,
/// several chunks.
fn size_of(i: usize) -> usize {
    match i % 6 {
        0 => 1536 * 1024,
        1 => 3 * 1024 * 1024 + 17,
        2 => 4096,
        _ => 256 * 1024,
    }
}

#[derive(Debug)]
enum Outcome {
    Put { key: String, value: usize, status: u16 },
    Delete { status: u16 },
    DeletePrefix { status: u16 },
    Get { key: String, result: Result<Option<Vec<u8>>, String> },
}

async fn racing_writes_deletes_and_reads_leave_whole_values(backend: Backend) {
    let Some(database) = fresh_database(backend).await else { return };
    let config = test_config(&database.url);
    let url = database.url.clone();
    let mut replicas = vec![start(config, Some(database)).await];
    if backend == Backend::Postgres {
        for _ in 0..2 {
            replicas.push(start(test_config(&url), None).await);
        }
    }
    let handles: Vec<Replica> = replicas.iter().map(Replica::of).collect();
    let keys: Vec<String> = (0..KEYS).map(|i| format!("race/g{:02}/k{i:03}", i / GROUP)).collect();
    // Two values per key, sent by two different replicas.
    let values: Arc<HashMap<(usize, usize), Vec<u8>>> = Arc::new(
        (0..KEYS)
            .flat_map(|i| (0..2).map(move |v| ((i, v), noise(size_of(i + v), (4 * i + 2 * v + 1) as u64))))
            .collect(),
    );
    let gate = Arc::new(Semaphore::new(IN_FLIGHT));
    let mut tasks = Vec::new();
    for (i, key) in keys.iter().enumerate() {
        let replica = |n: usize| handles[(i + n) % handles.len()].clone();
        for v in 0..2 {
            let (app, key, values, gate) = (replica(v), key.clone(), values.clone(), gate.clone());
            tasks.push(tokio::spawn(async move {
                let _turn = gate.acquire().await;
                let body = values[&(i, v)].clone();
                let resp = app.client.put(app.url(&key_path(&key))).body(body).send().await;
                Outcome::Put { key, value: v, status: resp.map_or(0, |r| r.status().as_u16()) }
            }));
        }
        {
            let (app, key, gate) = (replica(2), key.clone(), gate.clone());
            tasks.push(tokio::spawn(async move {
                let _turn = gate.acquire().await;
                let resp = app.client.delete(app.url(&key_path(&key))).send().await;
                Outcome::Delete { status: resp.map_or(0, |r| r.status().as_u16()) }
            }));
        }
        for n in 0..2 {
            let (app, key, gate) = (replica(n + 1), key.clone(), gate.clone());
            tasks.push(tokio::spawn(async move {
                let _turn = gate.acquire().await;
                let result = read(&app, &key).await;
                Outcome::Get { key, result }
            }));
        }
        if i % (GROUP * 8) == GROUP - 1 {
            let (app, gate) = (replica(1), gate.clone());
            let prefix = format!("race/g{:02}/", i / GROUP);
            tasks.push(tokio::spawn(async move {
                let _turn = gate.acquire().await;
                let url = app.url(&format!("/api/v1/storage?prefix={}", enc(&prefix)));
                let resp = app.client.delete(url).send().await;
                Outcome::DeletePrefix { status: resp.map_or(0, |r| r.status().as_u16()) }
            }));
        }
    }
    let outcomes: Vec<Outcome> = join_all(tasks).await.into_iter().map(|t| t.expect("task")).collect();

    let mut problems = Vec::new();
    let mut landed: HashMap<String, Vec<usize>> = HashMap::new();
    for outcome in &outcomes {
        match outcome {
            Outcome::Put { key, value, status } => match status {
                204 => landed.entry(key.clone()).or_default().push(*value),
                503 => {}
                other => problems.push(format!("PUT {key}: {other}")),
            },
            Outcome::Delete { status } if !matches!(status, 204 | 503) => {
                problems.push(format!("DELETE: {status}"));
            }
            Outcome::DeletePrefix { status } if !matches!(status, 200 | 503) => {
                problems.push(format!("DELETE ?prefix=: {status}"));
            }
            Outcome::Get { key, result } => match result {
                Ok(Some(body)) => {
                    let i = index_of(key);
                    if !(0..2).any(|v| values[&(i, v)] == *body) {
                        problems.push(format!("GET {key}: {} bytes that no PUT sent", body.len()));
                    }
                }
                Ok(None) => {}
                Err(why) => problems.push(format!("GET {key}: {why}")),
            },
            _ => {}
        }
    }
    let app = &handles[0];
    let mut broken = 0;
    for key in &keys {
        match read(app, key).await {
            Ok(Some(body)) => {
                let i = index_of(key);
                let sent = landed.get(key).into_iter().flatten().any(|v| values[&(i, *v)] == body);
                if !sent {
                    broken += 1;
                    problems.push(format!("{key} holds {} bytes that no answered PUT sent", body.len()));
                }
            }
            Ok(None) => {}
            Err(why) => {
                broken += 1;
                problems.push(format!("{key} after the race: {why}"));
            }
        }
    }
    eprintln!("{backend:?}: {KEYS} keys raced, {broken} left broken, {} problems in all", problems.len());
    assert!(problems.is_empty(), "{} problems:\n{}", problems.len(), problems.join("\n"));
}

/// Where and how to reach one replica.
#[derive(Clone)]
struct Replica {
    base: String,
    client: reqwest::Client,
}

impl Replica {
    fn of(app: &TestApp) -> Self {
        Self { base: app.url(""), client: app.client.clone() }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

fn index_of(key: &str) -> usize {
    key.rsplit_once("/k").and_then(|(_, n)| n.parse().ok()).expect("a raced key")
}

/// `GET` of a key: its whole value, `None` for 404, or what went wrong (a
/// status the document does not list, or a body cut short).
async fn read(app: &Replica, key: &str) -> Result<Option<Vec<u8>>, String> {
    let resp = app.client.get(app.url(&key_path(key))).send().await.map_err(|e| e.to_string())?;
    match resp.status() {
        StatusCode::NOT_FOUND | StatusCode::SERVICE_UNAVAILABLE => return Ok(None),
        StatusCode::OK => {}
        other => return Err(format!("status {other}")),
    }
    let announced = resp.content_length();
    let body = resp.bytes().await.map_err(|e| format!("body cut short: {e}"))?;
    if announced != Some(body.len() as u64) {
        return Err(format!("{} bytes of an announced {announced:?}", body.len()));
    }
    Ok(Some(body.to_vec()))
}
