//! The replication endpoint of the public API: the status report. Promotion and digests are
//! operator actions and live on the admin listener (`server/src/admin.rs`).

use hyper::StatusCode;

use crate::http::{json, ApiResult};
use crate::routes::App;

/// Per-shard role, epoch, last and oldest retained LSN, and lag in LSNs and seconds.
#[utoipa::path(get, path = "/replication", tag = "meta",
    responses((status = 200, description = "Replication status (free-form JSON, see docs/REPLICATION.md)")))]
pub async fn status(app: &App) -> ApiResult {
    match &app.repl {
        Some(repl) => json(StatusCode::OK, &repl.status()),
        None => json(
            StatusCode::OK,
            &serde_json::json!({"role": "primary", "replication": false}),
        ),
    }
}
