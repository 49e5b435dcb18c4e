//! SCALING.md's single-shard claim, checked on the statements the store
//! really sends. The server runs in pooler mode (each statement one simple
//! query, its values inlined) through a proxy that records every query;
//! a tour calls every route of a session's tree and of one blob key once,
//! plus the listings SCALING.md names as fan-outs. PostgreSQL then plans
//! each recorded statement on a copy of the schema whose tables are
//! hash-partitioned as Citus would distribute them: the session's tables by
//! tenant and session, co-located; the blob tables by tenant and key. A call
//! on one session or one key must reach one partition, the same one for all
//! its statements (an `INSERT`'s own row goes where its values say, as
//! Citus routes it); a fan-out must reach several.

use std::{
    collections::BTreeSet,
    sync::{Arc, Mutex},
    time::Duration,
};

use reqwest::Method;
use sea_orm::{ConnectionTrait, Statement};
use serde_json::{Value, json};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

use crate::helpers::{self, TestApp};

/// The tables Citus distributes, by colocation group: the session's tree,
/// and a blob's rows.
const GROUPS: [(&str, &[&str], &str); 2] = [
    ("session", &["sessions", "agents", "messages", "multi_agents"], "tenant_id, session_id"),
    ("blob", &["blobs", "blob_chunks", "blob_text", "blob_garbage"], "tenant_id, key"),
];

/// Partitions per table: enough that a fan-out shows.
const SHARDS: usize = 8;

/// Where a call's statements may go.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Reach {
    /// One partition of one group, or none beyond what an insert's values name.
    OneShard,
    /// Several partitions: a listing or search over a tenant.
    FanOut,
}

struct Call {
    method: Method,
    /// The route as the OpenAPI document names it.
    route: &'static str,
    path: String,
    body: Option<Value>,
    /// Bytes sent as they are (a blob).
    raw: Option<&'static str>,
    /// Sent with the token of the lease the tour holds.
    leased: bool,
    reach: Reach,
}

fn call(method: Method, route: &'static str, path: &str, body: Option<Value>) -> Call {
    Call { method, route, path: path.to_owned(), body, raw: None, leased: false, reach: Reach::OneShard }
}

impl Call {
    fn fan_out(self) -> Self {
        Self { reach: Reach::FanOut, ..self }
    }

    fn raw(self, bytes: &'static str) -> Self {
        Self { raw: Some(bytes), ..self }
    }

    fn leased(self) -> Self {
        Self { leased: true, ..self }
    }
}

const SESSIONS: &str = "/api/v1/sessions";
const SESSION: &str = "/api/v1/sessions/{session_id}";
const AGENTS: &str = "/api/v1/sessions/{session_id}/agents";
const AGENT: &str = "/api/v1/sessions/{session_id}/agents/{agent_id}";
const MESSAGES: &str = "/api/v1/sessions/{session_id}/agents/{agent_id}/messages";
const BATCH: &str = "/api/v1/sessions/{session_id}/agents/{agent_id}/messages/batch";
const MESSAGE: &str = "/api/v1/sessions/{session_id}/agents/{agent_id}/messages/{message_id}";
const MULTI_AGENTS: &str = "/api/v1/sessions/{session_id}/multi-agents";
const MULTI_AGENT: &str = "/api/v1/sessions/{session_id}/multi-agents/{multi_agent_id}";
const LEASE: &str = "/api/v1/sessions/{session_id}/lease";
const FORK: &str = "/api/v1/sessions/{session_id}/fork";
const EXPORT: &str = "/api/v1/sessions/{session_id}/export";
const IMPORT: &str = "/api/v1/sessions/import";
const STORAGE: &str = "/api/v1/storage";
const KEY: &str = "/api/v1/storage/{key}";

/// A session document of one agent with one message.
fn imported(session_id: &str) -> Value {
    let at = "2026-12-05T10:00:00.000000+00:00";
    let message = json!({"message_id": 0, "message": {"role": "user", "content": [{"text": "hi"}]},
                         "redact_message": null, "created_at": at, "updated_at": at});
    json!({"format": "session-backend/1",
           "session": {"session_id": session_id, "session_type": "AGENT", "metadata": {}, "ttl_seconds": 0,
                       "created_at": at, "updated_at": at},
           "agents": [{"agent_id": "a", "state": {}, "conversation_manager_state": {}, "internal_state": {},
                       "created_at": at, "updated_at": at, "messages": [message]}],
           "multi_agents": [], "complete": true})
}

/// Every call on one session, then on one key, then the fan-outs.
fn tour() -> Vec<Call> {
    let (s, a, key) =
        ("/api/v1/sessions/tour", "/api/v1/sessions/tour/agents/a", "/api/v1/storage/notes%2Ftour.txt");
    let message =
        |id: u64| json!({"message_id": id, "message": {"role": "user", "content": [{"text": "hi"}]}});
    let agent = json!({"agent_id": "a", "state": {}, "conversation_manager_state": {}});
    let batch = json!({"messages": [message(1), message(2)]});
    vec![
        call(Method::POST, SESSIONS, SESSIONS, Some(json!({"session_id": "tour"}))),
        call(Method::GET, SESSION, s, None),
        call(Method::PUT, SESSION, s, Some(json!({"metadata": {"k": 1}}))),
        call(Method::POST, AGENTS, &format!("{s}/agents"), Some(agent)),
        call(Method::GET, AGENTS, &format!("{s}/agents"), None),
        call(Method::GET, AGENT, a, None),
        call(Method::PUT, AGENT, a, Some(json!({"state": {"n": 1}}))),
        call(Method::POST, MESSAGES, &format!("{a}/messages"), Some(message(0))),
        call(Method::POST, BATCH, &format!("{a}/messages/batch"), Some(batch)),
        call(Method::GET, MESSAGES, &format!("{a}/messages?offset=0"), None),
        call(Method::GET, MESSAGE, &format!("{a}/messages/1"), None),
        call(Method::PUT, MESSAGE, &format!("{a}/messages/1"), Some(message(1))),
        call(Method::DELETE, MESSAGE, &format!("{a}/messages/2"), None),
        call(
            Method::POST,
            MULTI_AGENTS,
            &format!("{s}/multi-agents"),
            Some(json!({"multi_agent_id": "g", "state": {}})),
        ),
        call(Method::GET, MULTI_AGENTS, &format!("{s}/multi-agents"), None),
        call(Method::GET, MULTI_AGENT, &format!("{s}/multi-agents/g"), None),
        call(Method::PUT, MULTI_AGENT, &format!("{s}/multi-agents/g"), Some(json!({"state": {"n": 2}}))),
        // A fork reads one session and writes another: two partitions.
        call(Method::POST, FORK, &format!("{s}/fork"), Some(json!({"session_id": "tour-fork"}))).fan_out(),
        // An export reads the session's snapshot blobs too, a prefix of keys.
        call(Method::GET, EXPORT, &format!("{s}/export"), None).fan_out(),
        // An import stages its rows under a session of their own, then
        // copies them: two partitions (and its purge of lapsed stagings
        // reaches every one).
        call(Method::POST, IMPORT, IMPORT, Some(imported("tour-import"))).fan_out(),
        call(Method::DELETE, MULTI_AGENT, &format!("{s}/multi-agents/g"), None),
        call(Method::PUT, LEASE, &format!("{s}/lease"), Some(json!({"holder": "w", "ttl_seconds": 30}))),
        call(Method::GET, LEASE, &format!("{s}/lease"), None),
        // A write under the lease: its check locks the session's row.
        call(Method::PUT, AGENT, a, Some(json!({"state": {"n": 3}}))).leased(),
        call(Method::DELETE, LEASE, &format!("{s}/lease"), None).leased(),
        call(Method::DELETE, AGENT, a, None),
        // Deleting a session deletes its snapshot blobs too, a prefix of
        // keys, which are spread like any prefix.
        call(Method::DELETE, SESSION, s, None).fan_out(),
        call(Method::PUT, KEY, key, None).raw("the zebra crossed"),
        call(Method::GET, KEY, key, None),
        call(Method::HEAD, KEY, key, None),
        call(Method::DELETE, KEY, key, None),
        call(Method::PUT, KEY, key, None).raw("the zebra crossed again"),
        call(Method::GET, SESSIONS, SESSIONS, None).fan_out(),
        call(Method::GET, STORAGE, "/api/v1/storage?prefix=notes", None).fan_out(),
        call(Method::GET, STORAGE, "/api/v1/storage?q=zebra", None).fan_out(),
        call(Method::DELETE, STORAGE, "/api/v1/storage?prefix=notes", None).fan_out(),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_calls_on_one_session_or_key_reach_one_shard() {
    let Some(database) = helpers::fresh_postgres_schema().await else { return };
    let direct = url::Url::parse(&database.direct_url()).expect("database url");
    let target = format!("{}:{}", direct.host_str().expect("host"), direct.port().unwrap_or(5432));
    let recorder = Recorder::start(target).await;
    let mut recorded = direct.clone();
    recorded.set_host(Some("127.0.0.1")).expect("host");
    recorded.set_port(Some(recorder.port)).expect("port");
    let mut config = database.config_via(recorded.as_str());
    config.database.pooler = session_backend::config::Pooler::Transaction;
    config.database.direct_url = Some(session_backend::config::DatabaseUrl::new(database.direct_url()));
    config.retention.sweep_interval_ms = 0;
    let app = helpers::start(config, None).await;
    recorder.wait_until_quiet().await;

    let mut lease_token = None;
    let mut calls = Vec::new();
    for call in tour() {
        recorder.take();
        let mut req = app.client.request(call.method.clone(), app.url(&call.path));
        if let Some(body) = &call.body {
            req = req.json(body);
        }
        if let Some(raw) = call.raw {
            req = req.body(raw);
        }
        if call.leased {
            req = req
                .header("lease-token", lease_token.as_deref().expect("a lease granted earlier in the tour"));
        }
        let reply = TestApp::reply(req.send().await.expect("request")).await;
        assert!(reply.status.is_success(), "{} {}: {} {}", call.method, call.path, reply.status, reply.body);
        if call.route == LEASE && call.method == Method::PUT {
            lease_token = reply.body["token"].as_i64().map(|t| t.to_string());
        }
        calls.push((call, recorder.take()));
    }
    app.stop().await.expect("stop");

    let sharded = Sharded::create(&database.direct_url()).await;
    // One session's calls, and one key's, all reach the same partition.
    let mut one_shard = BTreeSet::new();
    for (call, queries) in &calls {
        let mut reached = Reached::default();
        for statement in queries.iter().filter_map(|q| statement(q)) {
            reached.add(&sharded.plan(statement).await);
        }
        let what = format!("{} {}: {queries:#?}", call.method, call.path);
        assert!(!reached.tables.is_empty(), "no distributed table: {what}");
        match call.reach {
            Reach::OneShard => {
                assert!(reached.shards.len() <= 1, "{:?} reached: {what}", reached.shards);
                one_shard.extend(reached.shards);
            }
            Reach::FanOut => {
                assert!(reached.shards.len() > 1, "a fan-out reached {:?}: {what}", reached.shards)
            }
        }
    }
    sharded.drop().await;
    let groups: Vec<&str> = one_shard.iter().map(|(group, _)| *group).collect();
    assert_eq!(groups, ["blob", "session"], "the session and the key each on one partition: {one_shard:?}");

    // Every operation on one session or one key is in the tour.
    let document: Value =
        serde_json::from_str(include_str!("../../../app/openapi.json")).expect("openapi.json");
    let toured: BTreeSet<(String, &str)> =
        calls.iter().map(|(c, _)| (c.method.to_string(), c.route)).collect();
    for (route, operations) in document["paths"].as_object().expect("paths") {
        if !(route.starts_with("/api/v1/sessions/") || route == KEY) {
            continue;
        }
        for method in operations.as_object().expect("operations").keys() {
            let method = method.to_uppercase();
            assert!(
                toured.contains(&(method.clone(), route.as_str())),
                "{method} {route} is not in the tour"
            );
        }
    }
}

/// The statement of a recorded query, without the pooler mode's `BEGIN`
/// and `SET LOCAL` limits; `None` for a bare `BEGIN`, `COMMIT` or `ROLLBACK`.
fn statement(query: &str) -> Option<&str> {
    let mut rest = query.trim();
    while let Some(after) = rest
        .strip_prefix("BEGIN;")
        .or_else(|| rest.starts_with("SET LOCAL ").then(|| rest.split_once(';').map_or("", |(_, r)| r)))
    {
        rest = after.trim_start();
    }
    let first = rest.split_whitespace().next()?.to_ascii_uppercase();
    ["SELECT", "INSERT", "UPDATE", "DELETE", "WITH"].contains(&first.as_str()).then_some(rest)
}

/// The partitions and distributed tables a call's plans name.
#[derive(Default)]
struct Reached {
    /// (colocation group, partition number).
    shards: BTreeSet<(&'static str, usize)>,
    tables: BTreeSet<&'static str>,
}

impl Reached {
    fn add(&mut self, plan: &str) {
        for word in plan.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
            for (group, tables, _) in GROUPS {
                for table in tables {
                    if word == *table {
                        self.tables.insert(table);
                    }
                    let partition = word.strip_prefix(table).and_then(|w| w.strip_prefix("_p"));
                    if let Some(n) = partition.and_then(|n| n.parse::<usize>().ok()) {
                        self.tables.insert(table);
                        self.shards.insert((group, n));
                    }
                }
            }
        }
    }
}

/// A copy of the test's schema with every distributed table
/// hash-partitioned by its group's columns into [`SHARDS`] partitions.
struct Sharded {
    db: sea_orm::DatabaseConnection,
    schema: String,
}

impl Sharded {
    async fn create(direct_url: &str) -> Self {
        let source = helpers::direct(direct_url).await;
        let row =
            source.query_one_raw(sql("SELECT current_schema()::text")).await.expect("schema").expect("row");
        let from: String = row.try_get_by_index(0).expect("name");
        let schema = format!("{from}_shards");
        let mut ddl = format!("CREATE SCHEMA {schema};");
        for (_, tables, columns) in GROUPS {
            for table in tables {
                ddl += &format!(
                    "CREATE TABLE {schema}.{table} (LIKE {from}.{table} INCLUDING ALL) PARTITION BY HASH ({columns});"
                );
                for n in 0..SHARDS {
                    ddl += &format!(
                        "CREATE TABLE {schema}.{table}_p{n} PARTITION OF {schema}.{table} \
                         FOR VALUES WITH (MODULUS {SHARDS}, REMAINDER {n});"
                    );
                }
            }
        }
        source.execute_unprepared(&ddl).await.expect("the partitioned copy");
        source.close().await.ok();
        let mut url = url::Url::parse(direct_url).expect("url");
        let others: Vec<(String, String)> = url
            .query_pairs()
            .filter(|(k, _)| k != "options")
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        url.query_pairs_mut()
            .clear()
            .extend_pairs(others)
            .append_pair("options", &format!("-c search_path={schema}"));
        Self { db: helpers::direct(url.as_str()).await, schema }
    }

    /// PostgreSQL's plan of `statement` on the partitioned copy, as text.
    async fn plan(&self, statement: &str) -> String {
        let rows = self
            .db
            .query_all_raw(sql(&format!("EXPLAIN {statement}")))
            .await
            .unwrap_or_else(|e| panic!("EXPLAIN {statement}: {e}"));
        rows.iter().map(|row| row.try_get_by_index::<String>(0).expect("a plan line") + "\n").collect()
    }

    async fn drop(self) {
        self.db.execute_unprepared(&format!("DROP SCHEMA {} CASCADE", self.schema)).await.expect("drop");
        self.db.close().await.ok();
    }
}

fn sql(text: &str) -> Statement {
    Statement::from_string(sea_orm::DatabaseBackend::Postgres, text.to_owned())
}

/// A TCP proxy in front of PostgreSQL that records the text of every
/// simple query (`Q` message) that passes through it.
struct Recorder {
    port: u16,
    queries: Arc<Mutex<Vec<String>>>,
}

impl Recorder {
    async fn start(target: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let queries: Arc<Mutex<Vec<String>>> = Arc::default();
        let kept = queries.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(relay(client, target.clone(), kept.clone()));
            }
        });
        Self { port, queries }
    }

    /// The queries recorded since the last call.
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.queries.lock().expect("queries"))
    }

    /// Waits until no query has passed for a while (the start's own work done).
    async fn wait_until_quiet(&self) {
        let mut last = usize::MAX;
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let now = self.queries.lock().expect("queries").len();
            if now == last {
                return;
            }
            last = now;
        }
        panic!("the server kept querying");
    }
}

/// The code of a startup packet asking for TLS.
const SSL_REQUEST: u32 = 80_877_103;

/// Forwards one connection, reading the client's side message by message.
async fn relay(
    mut client: TcpStream,
    target: String,
    queries: Arc<Mutex<Vec<String>>>,
) -> std::io::Result<()> {
    // Startup packets have a length and no type byte; a TLS request is
    // declined here, so what follows stays readable.
    let startup = loop {
        let length = client.read_u32().await?;
        let mut packet = vec![0; length as usize - 4];
        client.read_exact(&mut packet).await?;
        if packet.get(..4) == Some(&SSL_REQUEST.to_be_bytes()[..]) {
            client.write_all(b"N").await?;
            continue;
        }
        break [&length.to_be_bytes()[..], &packet].concat();
    };
    let mut server = TcpStream::connect(target).await?;
    server.write_all(&startup).await?;
    let (mut from_client, mut to_client) = client.into_split();
    let (mut from_server, mut to_server) = server.into_split();
    let back = tokio::spawn(async move { tokio::io::copy(&mut from_server, &mut to_client).await });
    while let Ok(kind) = from_client.read_u8().await {
        let length = from_client.read_u32().await?;
        let mut body = vec![0; length as usize - 4];
        from_client.read_exact(&mut body).await?;
        if kind == b'Q' {
            let text = String::from_utf8_lossy(body.strip_suffix(&[0]).unwrap_or(&body)).into_owned();
            queries.lock().expect("queries").push(text);
        }
        to_server.write_all(&[&[kind][..], &length.to_be_bytes(), &body].concat()).await?;
    }
    back.abort();
    Ok(())
}
