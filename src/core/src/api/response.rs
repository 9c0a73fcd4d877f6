//! Building responses: JSON bodies, and the errors clients parse, in FastAPI's shapes.

use http::header::{HeaderValue, ALLOW, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{Method, StatusCode};
use serde::Serialize;
use serde_json::json;

use super::routes::Scope;
use crate::config::Misconfigured;
use crate::domain::FieldError;
use crate::store::StoreError;
use crate::Response;

/// Seconds a client should wait before retrying after a 503.
pub const RETRY_AFTER_SECONDS: &str = "5";

pub fn json(status: StatusCode, body: &impl Serialize) -> Response {
    let body = serde_json::to_vec(body).expect("response bodies always serialize");
    with_body(status, "application/json", body)
}

pub fn with_body(status: StatusCode, content_type: &'static str, body: Vec<u8>) -> Response {
    let mut response = http::Response::new(body);
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

pub fn empty(status: StatusCode) -> Response {
    let mut response = http::Response::new(Vec::new());
    *response.status_mut() = status;
    response
}

/// Why a request failed, as the client will see it.
#[derive(Debug)]
pub enum ApiError {
    /// The request itself is broken (e.g. its body broke off).
    BadRequest(&'static str),
    NotFound(&'static str),
    MethodNotAllowed(Vec<Method>),
    /// `detail` says whether credentials were missing or wrong.
    Unauthorized(&'static str),
    /// The token's scope does not cover the operation, which needs this one.
    Forbidden(Scope),
    PreconditionFailed,
    /// The request is fine but the stored state does not allow it; `detail` says why.
    Conflict(String),
    PayloadTooLarge,
    Validation(Vec<FieldError>),
    /// The database is not there, or answered what this code did not expect.
    Store(StoreError),
    /// The configuration cannot be used: the operator's to fix.
    Misconfigured(Misconfigured),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Store(StoreError::Unexpected(_) | StoreError::Misconfigured(_)) | Self::Misconfigured(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
            Self::Store(StoreError::Unavailable(_)) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// What the client is told: the `detail` of FastAPI's error shape, never a reason.
    pub fn detail(&self) -> serde_json::Value {
        match self {
            Self::BadRequest(detail) | Self::NotFound(detail) | Self::Unauthorized(detail) => json!(detail),
            Self::Conflict(detail) => json!(detail),
            Self::MethodNotAllowed(_) => json!("Method Not Allowed"),
            // FastAPI's words for a scope that does not cover the operation.
            Self::Forbidden(_) => json!("Not enough permissions"),
            Self::PreconditionFailed => json!("Integration was modified since it was read"),
            Self::PayloadTooLarge => json!("Request body too large"),
            Self::Validation(errors) => json!(errors),
            Self::Store(StoreError::Unexpected(_)) => json!("Internal Server Error"),
            Self::Store(StoreError::Unavailable(_)) => json!("Database unavailable"),
            // The variable, so the operator knows what to fix; never its value.
            Self::Store(StoreError::Misconfigured(misconfigured)) | Self::Misconfigured(misconfigured) => {
                json!(format!("Service misconfigured: {}", misconfigured.what))
            }
        }
    }

    /// What the log line says of it (for operators; never a secret).
    pub fn reason(&self) -> String {
        match self {
            Self::Store(error) => error.to_string(),
            Self::Misconfigured(misconfigured) => misconfigured.to_string(),
            other => other.detail().to_string(),
        }
    }

    pub fn into_response(self) -> Response {
        let mut response = json(self.status(), &json!({ "detail": self.detail() }));
        let headers = response.headers_mut();
        match self {
            Self::MethodNotAllowed(methods) => {
                headers.insert(ALLOW, allow_header(&methods));
            }
            Self::Unauthorized(_) => {
                headers.insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            // RFC 6750's answer to a valid token without the scope, naming the one needed.
            Self::Forbidden(needed) => {
                let challenge = match needed {
                    Scope::Read => r#"Bearer error="insufficient_scope", scope="read""#,
                    Scope::Admin => r#"Bearer error="insufficient_scope", scope="admin""#,
                };
                headers.insert(WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
            }
            Self::Store(StoreError::Unavailable(_)) => {
                headers.insert(RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_SECONDS));
            }
            Self::BadRequest(_)
            | Self::NotFound(_)
            | Self::PreconditionFailed
            | Self::Conflict(_)
            | Self::PayloadTooLarge
            | Self::Validation(_)
            | Self::Store(StoreError::Unexpected(_) | StoreError::Misconfigured(_))
            | Self::Misconfigured(_) => {}
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Misconfigured(misconfigured) => Self::Misconfigured(misconfigured),
            error => Self::Store(error),
        }
    }
}

impl From<Misconfigured> for ApiError {
    fn from(misconfigured: Misconfigured) -> Self {
        Self::Misconfigured(misconfigured)
    }
}

pub fn allow_header(methods: &[Method]) -> HeaderValue {
    let list: Vec<&str> = methods.iter().map(Method::as_str).collect();
    HeaderValue::from_str(&list.join(", ")).expect("method names are valid header text")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(response: &Response) -> serde_json::Value {
        serde_json::from_slice(response.body()).unwrap()
    }

    #[test]
    fn http_errors_use_fastapis_detail_string() {
        let response = ApiError::NotFound("Integration not found").into_response();
        assert_eq!(response.status(), 404);
        assert_eq!(body(&response), json!({"detail": "Integration not found"}));
        assert_eq!(response.headers()[CONTENT_TYPE], "application/json");
    }

    #[test]
    fn method_not_allowed_lists_the_allowed_methods() {
        let response = ApiError::MethodNotAllowed(vec![Method::GET, Method::PUT, Method::OPTIONS]).into_response();
        assert_eq!(response.headers()[ALLOW], "GET, PUT, OPTIONS");
    }

    #[test]
    fn an_unreachable_database_is_a_503_to_retry_without_the_reason() {
        let response =
            ApiError::Store(StoreError::Unavailable("connection refused to 10.0.0.5".into())).into_response();
        assert_eq!(response.status(), 503);
        assert_eq!(response.headers()[RETRY_AFTER], "5");
        assert_eq!(body(&response), json!({"detail": "Database unavailable"}));
    }

    #[test]
    fn a_misconfiguration_is_a_500_naming_the_variable_not_its_value() {
        let misconfigured = Misconfigured { what: "settings_keyring", why: "settings_keyring keys must be 32 bytes" };
        let response = ApiError::from(StoreError::Misconfigured(misconfigured)).into_response();
        assert_eq!(response.status(), 500);
        assert_eq!(body(&response), json!({"detail": "Service misconfigured: settings_keyring"}));
        assert!(!response.headers().contains_key(RETRY_AFTER));
    }

    #[test]
    fn unauthorized_challenges_for_a_bearer_token() {
        let response = ApiError::Unauthorized("Not authenticated").into_response();
        assert_eq!(response.headers()[WWW_AUTHENTICATE], "Bearer");
    }

    #[test]
    fn forbidden_is_fastapis_403_and_names_the_scope_needed() {
        let response = ApiError::Forbidden(Scope::Admin).into_response();
        assert_eq!(response.status(), 403);
        assert_eq!(body(&response), json!({"detail": "Not enough permissions"}));
        assert_eq!(response.headers()[WWW_AUTHENTICATE], r#"Bearer error="insufficient_scope", scope="admin""#);
    }
}
