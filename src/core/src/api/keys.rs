//! `/admin/keys` and `/admin/keys/reseal`: which keys seal the stored settings, and moving every
//! row onto the current key (so an old key can leave the ring).

use http::StatusCode;

use super::response::{json, ApiError};
use super::Call;
use crate::service::CacheUse;
use crate::Response;

pub fn report(call: &mut Call) -> Result<Response, ApiError> {
    Ok(json(StatusCode::OK, &call.service(CacheUse::Writes)?.key_report()?))
}

/// Re-seals a batch of rows; call again until `remaining` is 0 (rows that cannot be opened stay).
pub fn reseal(call: &mut Call) -> Result<Response, ApiError> {
    let report = call
        .service(CacheUse::Writes)?
        .reseal()?
        .ok_or_else(|| ApiError::Conflict("settings_keyring is not set: there is no key to seal with".into()))?;
    Ok(json(StatusCode::OK, &report))
}
