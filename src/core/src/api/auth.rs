//! Bearer tokens: who may call an operation, and under which name the history and the log line
//! record the caller.
//!
//! The admin API's tokens come from `api_tokens` (`name:scope:secret,...`, several of one scope at
//! once, so a client can move to a new token before the old one is removed) and, for deployments
//! from before scopes, `admin_token` (an `admin` token named `admin_token`). `metrics_token` guards
//! `/metrics`. Every token is held as its SHA-256 digest (`api_tokens` may give only the digest, so
//! the service's configuration need hold no usable credential), and a presented token is compared
//! by digest with every configured one, each comparison in constant time: neither a token's
//! content nor its length shows in the response time. Only headers are looked at: a refused
//! request's body is never read.

use std::fmt;

use http::header::AUTHORIZATION;
use http::request::Parts;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq;

use super::response::ApiError;
use super::routes::Scope;
use crate::config::{Config, Misconfigured, Parse};

/// The name `admin_token`'s token goes by.
pub const ADMIN_TOKEN_NAME: &str = "admin_token";

/// The SHA-256 digest of a token: all this service keeps of it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct TokenDigest([u8; 32]);

impl TokenDigest {
    pub fn of(token: &str) -> Self {
        Self(Sha256::digest(token.as_bytes()).into())
    }

    /// 64 hex digits, either case.
    fn from_hex(hex: &str) -> Option<Self> {
        if hex.len() != 64 {
            return None;
        }
        let mut digest = [0u8; 32];
        for (byte, pair) in digest.iter_mut().zip(hex.as_bytes().chunks(2)) {
            *byte = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
        }
        Some(Self(digest))
    }
}

/// Never shown: the digest of a plain token is as good as the token for guessing it offline.
impl fmt::Debug for TokenDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenDigest(..)")
    }
}

/// A configured token of the admin API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiToken {
    /// What the history and the log line call whoever presents it.
    pub name: String,
    pub scope: Scope,
    digest: TokenDigest,
}

/// `api_tokens`: the admin API's named, scoped tokens, at least one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiTokens(Vec<ApiToken>);

impl ApiTokens {
    pub fn iter(&self) -> impl Iterator<Item = &ApiToken> {
        self.0.iter()
    }

    /// Adds `token`, unless its name or its secret is taken.
    fn add(&mut self, token: ApiToken) -> Result<(), Clash> {
        if self.0.iter().any(|known| known.name == token.name) {
            return Err(Clash::Name);
        }
        // Two names for one secret: the history could not tell who wrote.
        if self.0.iter().any(|known| known.digest == token.digest) {
            return Err(Clash::Secret);
        }
        self.0.push(token);
        Ok(())
    }
}

/// What two tokens may not share.
enum Clash {
    Name,
    Secret,
}

impl ApiToken {
    /// 403 unless its scope covers `needed`.
    pub fn may(&self, needed: Scope) -> Result<(), ApiError> {
        match self.scope.covers(needed) {
            true => Ok(()),
            false => Err(ApiError::Forbidden(needed)),
        }
    }
}

/// `name:scope:secret[,name:scope:secret...]`: `name` 1-64 of `A-Z a-z 0-9 . _ -`, unique; `scope`
/// `read` or `admin`; `secret` the token itself (a bearer token's characters, RFC 6750's
/// `b64token`), or `sha256:` and the 64 hex digits of its SHA-256. Whitespace around an entry is
/// ignored; an empty entry is an error, as is anything else that does not fit. No error says more
/// than which rule an entry breaks: never a secret.
impl Parse for ApiTokens {
    fn parse(text: &str) -> Result<Self, &'static str> {
        let mut tokens = Self(Vec::new());
        for entry in text.split(',').map(str::trim) {
            let mut parts = entry.splitn(3, ':');
            let (Some(name), Some(scope), Some(secret)) = (parts.next(), parts.next(), parts.next()) else {
                return Err("an entry is not name:scope:token");
            };
            if !is_name(name) {
                return Err("a token's name is not 1-64 of A-Z a-z 0-9 . _ -");
            }
            let scope = match scope.to_ascii_lowercase().as_str() {
                "read" => Scope::Read,
                "admin" => Scope::Admin,
                _ => return Err("a token's scope is not read or admin"),
            };
            let digest = match secret.strip_prefix("sha256:") {
                Some(hex) => TokenDigest::from_hex(hex).ok_or("a sha256: hash is not 64 hex digits")?,
                None if secret.is_empty() => return Err("a token is empty"),
                None if !secret.bytes().all(is_token_byte) => {
                    return Err("a token has a character a bearer token cannot carry (A-Z a-z 0-9 - . _ ~ + / =)")
                }
                None => TokenDigest::of(secret),
            };
            tokens.add(ApiToken { name: name.to_owned(), scope, digest }).map_err(|clash| match clash {
                Clash::Name => "two tokens have the same name",
                Clash::Secret => "two tokens have the same secret",
            })?;
        }
        Ok(tokens)
    }
}

fn is_name(name: &str) -> bool {
    (1..=64).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// RFC 6750's `b64token`: what a client can send after `Bearer `.
fn is_token_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"-._~+/=".contains(&byte)
}

impl Config<'_> {
    /// Every token of the admin API: `api_tokens`, and `admin_token` as an `admin` token named
    /// `admin_token`. `None` when neither is set: the API is open, as the original was.
    pub fn admin_tokens(&self) -> Result<Option<ApiTokens>, Misconfigured> {
        let listed = self.api_tokens()?;
        let Some(legacy) = self.admin_token()? else { return Ok(listed) };
        let mut tokens = listed.unwrap_or(ApiTokens(Vec::new()));
        let token = ApiToken { name: ADMIN_TOKEN_NAME.into(), scope: Scope::Admin, digest: TokenDigest::of(&legacy) };
        tokens.add(token).map_err(|clash| Misconfigured {
            what: "api_tokens",
            why: match clash {
                Clash::Name => "a token is named admin_token, the name of admin_token's token",
                Clash::Secret => "a token has admin_token's secret",
            },
        })?;
        Ok(Some(tokens))
    }
}

/// The token of `Authorization: Bearer <token>` (the scheme in any case), if there is one.
fn presented(request: &Parts) -> Option<&str> {
    let value = request.headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Which of `tokens` the request carries: each is compared, whatever the others gave, by digest
/// and in constant time. 401 when it carries none of them.
pub fn identify<'t, T>(
    request: &Parts,
    tokens: &'t [T],
    digest: impl Fn(&T) -> &TokenDigest,
) -> Result<&'t T, ApiError> {
    let Some(token) = presented(request) else {
        return Err(ApiError::Unauthorized("Not authenticated"));
    };
    let presented = TokenDigest::of(token);
    let mut found = None;
    for candidate in tokens {
        if bool::from(presented.0.ct_eq(&digest(candidate).0)) {
            found = Some(candidate);
        }
    }
    found.ok_or(ApiError::Unauthorized("Invalid authentication credentials"))
}

/// Who calls the admin API: with tokens configured, the token the request carries (401 without
/// one of them); `None` when the API is open.
pub fn caller<'t>(request: &Parts, tokens: Option<&'t ApiTokens>) -> Result<Option<&'t ApiToken>, ApiError> {
    tokens.map(|tokens| identify(request, &tokens.0, |token| &token.digest)).transpose()
}

/// `/metrics`' check: with `metrics_token` set, the request must carry it. Answers the name the
/// log line gives the scraper.
pub fn scraper(request: &Parts, expected: Option<&str>) -> Result<Option<&'static str>, ApiError> {
    let Some(expected) = expected else { return Ok(None) };
    identify(request, &[TokenDigest::of(expected)], |digest| digest)?;
    Ok(Some("metrics_token"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::MapVariables;

    fn with_authorization(value: Option<&str>) -> Parts {
        let mut builder = http::Request::builder();
        if let Some(value) = value {
            builder = builder.header(AUTHORIZATION, value);
        }
        builder.body(()).unwrap().into_parts().0
    }

    fn sha256_hex(token: &str) -> String {
        Sha256::digest(token.as_bytes()).iter().map(|byte| format!("{byte:02x}")).collect()
    }

    /// What the API does with a request for an operation that needs `needed`.
    fn admit(request: &Parts, tokens: Option<&ApiTokens>, needed: Scope) -> Result<Option<String>, ApiError> {
        let Some(token) = caller(request, tokens)? else { return Ok(None) };
        token.may(needed)?;
        Ok(Some(token.name.clone()))
    }

    fn tokens(text: &str) -> ApiTokens {
        ApiTokens::parse(text).unwrap_or_else(|why| panic!("{text}: {why}"))
    }

    fn names(tokens: &ApiTokens) -> Vec<(&str, Scope)> {
        tokens.iter().map(|token| (token.name.as_str(), token.scope)).collect()
    }

    #[test]
    fn entries_are_named_scoped_and_plain_or_hashed() {
        let hashed = format!("sha256:{}", sha256_hex("bot-s3cret").to_uppercase());
        let parsed = tokens(&format!(" ui:admin:ui-s3cret , bot:READ:{hashed},bot.next_2:read:a-b_c~d+e/f= "));
        assert_eq!(names(&parsed), [("ui", Scope::Admin), ("bot", Scope::Read), ("bot.next_2", Scope::Read)]);
        // A hashed entry and a plain one are the same to a client.
        let bot = with_authorization(Some("Bearer bot-s3cret"));
        assert_eq!(admit(&bot, Some(&parsed), Scope::Read).unwrap().as_deref(), Some("bot"));
        let ui = with_authorization(Some("Bearer ui-s3cret"));
        assert_eq!(admit(&ui, Some(&parsed), Scope::Admin).unwrap().as_deref(), Some("ui"));
        let next = with_authorization(Some("Bearer a-b_c~d+e/f="));
        assert_eq!(admit(&next, Some(&parsed), Scope::Read).unwrap().as_deref(), Some("bot.next_2"));
    }

    #[test]
    fn every_malformed_entry_is_refused_with_a_reason_that_holds_no_secret() {
        let hash = sha256_hex("x");
        let cases = [
            ("", "an entry is not name:scope:token"),
            ("ui:admin:t1,", "an entry is not name:scope:token"),
            ("ui:admin", "an entry is not name:scope:token"),
            ("ui-admin-s3cret", "an entry is not name:scope:token"),
            (":admin:s3cret", "a token's name is not 1-64 of A-Z a-z 0-9 . _ -"),
            ("u i:admin:s3cret", "a token's name is not 1-64 of A-Z a-z 0-9 . _ -"),
            (&format!("{}:admin:s3cret", "n".repeat(65)), "a token's name is not 1-64 of A-Z a-z 0-9 . _ -"),
            ("ui:owner:s3cret", "a token's scope is not read or admin"),
            ("ui::s3cret", "a token's scope is not read or admin"),
            ("ui:admin:", "a token is empty"),
            ("ui:admin:s3cret tail", "a token has a character a bearer token cannot carry (A-Z a-z 0-9 - . _ ~ + / =)"),
            ("ui:admin:\"s3cret\"", "a token has a character a bearer token cannot carry (A-Z a-z 0-9 - . _ ~ + / =)"),
            ("ui:admin:sha256:", "a sha256: hash is not 64 hex digits"),
            (&format!("ui:admin:sha256:{}", &hash[1..]), "a sha256: hash is not 64 hex digits"),
            (&format!("ui:admin:sha256:{}z", &hash[1..]), "a sha256: hash is not 64 hex digits"),
            ("ui:admin:t1,ui:read:t2", "two tokens have the same name"),
            ("ui:admin:t1,bot:read:t1", "two tokens have the same secret"),
            (&format!("ui:admin:x,bot:read:sha256:{hash}"), "two tokens have the same secret"),
        ];
        for (text, expected) in cases {
            assert_eq!(ApiTokens::parse(text), Err(expected), "{text:?}");
        }
    }

    #[test]
    fn a_read_token_covers_only_reads_and_an_admin_token_everything() {
        let parsed = tokens("ui:admin:ui-s3cret,bot:read:bot-s3cret");
        let bot = with_authorization(Some("Bearer bot-s3cret"));
        assert_eq!(admit(&bot, Some(&parsed), Scope::Read).unwrap().as_deref(), Some("bot"));
        let refused = admit(&bot, Some(&parsed), Scope::Admin).unwrap_err();
        assert!(matches!(refused, ApiError::Forbidden(Scope::Admin)));
        assert_eq!(refused.status(), 403);
        let ui = with_authorization(Some("Bearer ui-s3cret"));
        for needed in [Scope::Read, Scope::Admin] {
            assert_eq!(admit(&ui, Some(&parsed), needed).unwrap().as_deref(), Some("ui"));
        }
    }

    #[test]
    fn no_configured_token_keeps_the_api_open() {
        assert_eq!(admit(&with_authorization(None), None, Scope::Admin).unwrap(), None);
        assert_eq!(admit(&with_authorization(Some("Bearer anything")), None, Scope::Admin).unwrap(), None);
        assert_eq!(scraper(&with_authorization(None), None).unwrap(), None);
    }

    #[test]
    fn the_right_token_passes_with_any_scheme_case() {
        let parsed = tokens("ui:admin:s3cret");
        for header in ["Bearer s3cret", "bearer s3cret", "BEARER  s3cret"] {
            assert!(admit(&with_authorization(Some(header)), Some(&parsed), Scope::Admin).is_ok(), "{header}");
            assert!(scraper(&with_authorization(Some(header)), Some("s3cret")).is_ok(), "{header}");
        }
    }

    #[test]
    fn missing_wrong_or_non_bearer_credentials_are_refused() {
        let parsed = tokens("ui:admin:s3cret");
        let not_authenticated = [None, Some("Basic czNjcmV0"), Some("s3cret")];
        let invalid = [Some("Bearer s3cre"), Some("Bearer s3cret2"), Some("Bearer sha256:s3cret")];
        for (headers, detail) in
            [(&not_authenticated[..], "Not authenticated"), (&invalid[..], "Invalid authentication credentials")]
        {
            for header in headers {
                let refused = admit(&with_authorization(*header), Some(&parsed), Scope::Read);
                assert!(matches!(refused, Err(ApiError::Unauthorized(d)) if d == detail), "{header:?}");
                let refused = scraper(&with_authorization(*header), Some("s3cret"));
                assert!(matches!(refused, Err(ApiError::Unauthorized(d)) if d == detail), "{header:?}");
            }
        }
        // The hash of a hashed entry is not its token.
        let hashed = tokens(&format!("ui:admin:sha256:{}", sha256_hex("s3cret")));
        let by_hash = with_authorization(Some(&format!("Bearer {}", sha256_hex("s3cret"))));
        assert!(matches!(admit(&by_hash, Some(&hashed), Scope::Read), Err(ApiError::Unauthorized(_))));
    }

    #[test]
    fn admin_token_is_an_admin_token_named_admin_token() {
        let config = |pairs: &[(&'static str, &str)]| {
            pairs.iter().fold(MapVariables::default(), |vars, (name, value)| vars.with(name, value))
        };
        let tokens = |pairs| Config(&config(pairs)).admin_tokens();
        assert_eq!(tokens(&[]), Ok(None));
        let legacy = tokens(&[("admin_token", "old-s3cret")]).unwrap().unwrap();
        assert_eq!(names(&legacy), [("admin_token", Scope::Admin)]);
        let both = tokens(&[("admin_token", "old-s3cret"), ("api_tokens", "bot:read:bot-s3cret")]).unwrap().unwrap();
        assert_eq!(names(&both), [("bot", Scope::Read), ("admin_token", Scope::Admin)]);
        let what = |pairs| tokens(pairs).unwrap_err();
        let named = what(&[("admin_token", "old"), ("api_tokens", "admin_token:read:new")]);
        assert_eq!(
            named,
            Misconfigured { what: "api_tokens", why: "a token is named admin_token, the name of admin_token's token" }
        );
        let same = what(&[("admin_token", "old"), ("api_tokens", "ui:admin:old")]);
        assert_eq!(same, Misconfigured { what: "api_tokens", why: "a token has admin_token's secret" });
        assert_eq!(what(&[("api_tokens", "ui:root:x")]).what, "api_tokens");
        assert!(!what(&[("api_tokens", "ui:root:x-s3cret")]).to_string().contains("s3cret"));
    }

    #[test]
    fn digests_are_never_shown() {
        let parsed = tokens("ui:admin:s3cret");
        let shown = format!("{parsed:?}");
        assert!(!shown.contains(&sha256_hex("s3cret")[..8]) && !shown.contains("s3cret"), "{shown}");
    }
}
