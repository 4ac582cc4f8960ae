//! `GET /api/devices` (administrators): every device and unregistered
//! sender with its figures, the same JSON as `callvault devices --format
//! json` (`crate::device_status`, README "Devices").

use axum::extract::State;
use axum::Json;

use super::auth::{Caller, Perm};
use super::{AppError, AppState};
use crate::device_status::{self, DeviceRow};

pub async fn list(
    caller: Caller,
    State(st): State<AppState>,
) -> Result<Json<Vec<DeviceRow>>, AppError> {
    // Addresses, MACs and refusal reasons are for administrators only
    // (the role that may see diagnostics).
    caller.require(Perm::Diagnostics)?;
    let cfg = st.cfg.clone();
    let now_ms = chrono::Utc::now().timestamp_millis();
    let rows = st
        .store
        .read(move |c| device_status::rows(&cfg, c, now_ms))
        .await?;
    Ok(Json(rows))
}
