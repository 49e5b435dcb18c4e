//! `/api/v1/sessions/{sid}/multi-agents`.

use serde_json::json;

use crate::{app, both_backends, helpers::Backend};

both_backends!(lifecycle, errors, list_is_oldest_first);

const PATH: &str = "/api/v1/sessions/s1/multi-agents";

fn graph_state(status: &str) -> serde_json::Value {
    json!({"type": "graph", "id": "default_graph", "status": status, "node_results": {"a": {"result": null}},
           "next_nodes_to_execute": ["b"], "execution_order": ["a"]})
}

async fn lifecycle(backend: Backend) {
    let app = app!(backend);
    app.session("s1").await;
    let created =
        app.post(PATH, &json!({"multi_agent_id": "default_graph", "state": graph_state("executing")})).await;
    let created = created.expect(201);
    assert_eq!(created["session_id"], "s1");
    assert_eq!(created["multi_agent_id"], "default_graph");
    assert_eq!(created["state"], graph_state("executing"));
    assert_eq!(app.get(&format!("{PATH}/default_graph")).await.expect(200), created);
    let updated =
        app.put(&format!("{PATH}/default_graph"), &json!({"state": graph_state("completed")})).await;
    let updated = updated.expect(200);
    assert_eq!(updated["state"]["status"], "completed");
    assert_eq!(updated["created_at"], created["created_at"]);
    assert_ne!(updated["updated_at"], created["updated_at"]);
    app.delete(&format!("{PATH}/default_graph")).await.expect(204);
    app.get(&format!("{PATH}/default_graph")).await.expect_error(404, "NotFoundError");
}

async fn errors(backend: Backend) {
    let app = app!(backend);
    let body = json!({"multi_agent_id": "g", "state": {}});
    app.post(PATH, &body).await.expect_error(404, "NotFoundError");
    app.get(PATH).await.expect_error(404, "NotFoundError");
    app.session("s1").await;
    app.post(PATH, &body).await.expect(201);
    app.post(PATH, &body).await.expect_error(409, "ConflictError");
    // Update never creates.
    app.put(&format!("{PATH}/other"), &json!({"state": {}})).await.expect_error(404, "NotFoundError");
    app.get(&format!("{PATH}/other")).await.expect_error(404, "NotFoundError");
    app.delete(&format!("{PATH}/other")).await.expect_error(404, "NotFoundError");
    for bad in [
        json!({"state": {}}),
        json!({"multi_agent_id": "x"}),
        json!({"multi_agent_id": "a/b", "state": {}}),
        json!({"multi_agent_id": "x", "state": [1]}),
    ] {
        app.post(PATH, &bad).await.expect_error(422, "ValidationError");
    }
    app.put(&format!("{PATH}/g"), &json!({"state": "x"})).await.expect_error(422, "ValidationError");
    app.put(&format!("{PATH}/g"), &json!({})).await.expect_error(422, "ValidationError");
    assert_eq!(app.get(&format!("{PATH}/g")).await.expect(200)["state"], json!({}));
}

async fn list_is_oldest_first(backend: Backend) {
    let app = app!(backend);
    app.session("s1").await;
    for id in ["swarm", "graph"] {
        app.post(PATH, &json!({"multi_agent_id": id, "state": {"id": id}})).await.expect(201);
    }
    let listed = app.get(PATH).await.expect(200);
    assert_eq!(listed["total"], 2);
    assert_eq!(listed["page"], 1);
    let ids: Vec<_> = listed["multi_agents"]
        .as_array()
        .expect("list")
        .iter()
        .map(|m| m["multi_agent_id"].clone())
        .collect();
    assert_eq!(ids, [json!("swarm"), json!("graph")]);
    let second = app.get(&format!("{PATH}?page=2&page_size=1")).await.expect(200);
    assert_eq!(second["multi_agents"][0]["multi_agent_id"], "graph");
    app.get(&format!("{PATH}?page_size=0")).await.expect_error(422, "ValidationError");
}
