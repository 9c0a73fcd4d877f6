//! Optional bearer-token protection (`admin_token`, `metrics_token`).

use http::header::AUTHORIZATION;
use subtle::ConstantTimeEq;

use http::request::Parts;

use super::response::ApiError;

/// Lets the request through when no token is configured, or when it carries
/// `Authorization: Bearer <token>`; says whether a token was checked. The comparison takes the
/// same time wherever the tokens differ, so response timing does not reveal a prefix. Only
/// headers are looked at: a refused request's body is never read.
pub fn require_bearer(request: &Parts, expected: Option<&str>) -> Result<bool, ApiError> {
    let Some(expected) = expected else {
        return Ok(false);
    };
    let presented = request
        .headers
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim());
    match presented {
        None => Err(ApiError::Unauthorized("Not authenticated")),
        Some(token) if bool::from(token.as_bytes().ct_eq(expected.as_bytes())) => Ok(true),
        Some(_) => Err(ApiError::Unauthorized("Invalid authentication credentials")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_authorization(value: Option<&str>) -> Parts {
        let mut builder = http::Request::builder();
        if let Some(value) = value {
            builder = builder.header(AUTHORIZATION, value);
        }
        builder.body(()).unwrap().into_parts().0
    }

    #[test]
    fn no_configured_token_keeps_the_api_open() {
        assert!(!require_bearer(&with_authorization(None), None).unwrap());
    }

    #[test]
    fn the_right_token_passes_with_any_scheme_case() {
        for header in ["Bearer s3cret", "bearer s3cret", "BEARER  s3cret"] {
            assert!(require_bearer(&with_authorization(Some(header)), Some("s3cret")).unwrap(), "{header}");
        }
    }

    #[test]
    fn missing_wrong_or_non_bearer_credentials_are_refused() {
        for header in [None, Some("Bearer s3cre"), Some("Bearer s3cret2"), Some("Basic czNjcmV0"), Some("s3cret")] {
            let refused = require_bearer(&with_authorization(header), Some("s3cret"));
            assert!(matches!(refused, Err(ApiError::Unauthorized(_))), "{header:?}");
        }
    }
}
