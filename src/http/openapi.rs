//! `GET /api/openapi.json`: an OpenAPI 3 description of this listener,
//! generated from the one table of routes ([`super::rights::RIGHTS`]), so
//! it lists exactly the routes the router serves, each with who may use
//! it (`security`, and the roles in `x-callvault-roles`), its path
//! parameters and the answers its check can give. What each route's query
//! parameters and bodies mean is in the README ("HTTP API").

use axum::Json;
use serde_json::{json, Map, Value};

use super::rights::{lets_through, Need, RIGHTS};
use crate::roles::ROLES;

/// The document (the same for every caller: it says who may do what,
/// not what anyone did).
pub fn document() -> Value {
    let mut paths = Map::new();
    for r in RIGHTS {
        let item = paths.entry(r.path.to_string()).or_insert_with(|| json!({}));
        item[r.method.to_ascii_lowercase()] = operation(r.method, r.path, r.need, r.note);
    }
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "callvault",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "The API and web listener of callvault: calls, recordings, billing, \
                reports, queues, the audit log. Errors are {\"error\": \"...\"} with a fitting \
                status. A token in the URL (?token=) is refused: use Authorization: Bearer, or the \
                web page's session cookie from POST /api/session. README \"HTTP API\" explains \
                each route's parameters.",
        },
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer",
                           "description": "a token from `callvault token create`"},
                "session": {"type": "apiKey", "in": "cookie", "name": super::session::COOKIE,
                            "description": "the web page's session, from POST /api/session"},
            },
            "schemas": {
                "Error": {"type": "object", "required": ["error"],
                          "properties": {"error": {"type": "string"}}},
            },
        },
        "paths": paths,
    })
}

fn operation(method: &str, path: &str, need: Need, note: &str) -> Value {
    let mut op = json!({
        "operationId": operation_id(method, path),
        "summary": note,
        "responses": {"200": {"description": "done"}},
    });
    let params: Vec<Value> = path
        .split('/')
        .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
        .map(|name| {
            json!({"name": name, "in": "path", "required": true,
                           "schema": {"type": "string"}})
        })
        .collect();
    if !params.is_empty() {
        op["parameters"] = params.into();
        op["responses"]["404"] = refusal("no such thing (or not one of the token's devices)");
    }
    let roles: Vec<&str> = ROLES
        .iter()
        .copied()
        .filter(|r| lets_through(need, Some(r)))
        .collect();
    match need {
        Need::Nothing => {
            op["security"] = json!([]);
        }
        Need::Token | Need::Perm(_) | Need::LoopbackOr(_) => {
            op["security"] = json!([{"bearer": []}, {"session": []}]);
            op["responses"]["401"] = refusal("no valid token or session");
            op["responses"]["429"] =
                refusal("too many bad credentials from this address lately (Retry-After)");
            if roles.len() < ROLES.len() {
                op["responses"]["403"] = refusal("the token's role may not use this route");
            }
            op["x-callvault-roles"] = roles.into();
        }
    }
    if let Need::LoopbackOr(_) = need {
        op["description"] = "Answered without a token from loopback.".into();
    }
    op
}

fn refusal(description: &str) -> Value {
    json!({"description": description,
           "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}})
}

/// `get_api_calls_id` for `GET /api/calls/{id}`: unique per row.
fn operation_id(method: &str, path: &str) -> String {
    let mut id = method.to_ascii_lowercase();
    for part in path.split(|c: char| !c.is_ascii_alphanumeric()) {
        if !part.is_empty() {
            id.push('_');
            id.push_str(part);
        }
    }
    if path == "/" {
        id.push_str("_page");
    }
    id
}

/// The handler.
pub async fn get() -> Json<Value> {
    Json(document())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_described_once_with_a_unique_operation_id() {
        let doc = document();
        let mut ids = std::collections::HashSet::new();
        for r in RIGHTS {
            let op = &doc["paths"][r.path][r.method.to_ascii_lowercase()];
            assert!(op.is_object(), "{} {} missing", r.method, r.path);
            assert!(ids.insert(op["operationId"].as_str().unwrap().to_string()));
        }
        let op = &doc["paths"]["/api/recordings/{id}"]["get"];
        assert_eq!(op["parameters"][0]["name"], "id");
        assert_eq!(op["x-callvault-roles"], json!(["admin", "qa"]));
        assert!(op["responses"]["403"].is_object());
        assert_eq!(doc["paths"]["/healthz"]["get"]["security"], json!([]));
    }
}
