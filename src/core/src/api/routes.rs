//! The route table: every route written once, with the component that serves it, where Spin
//! mounts it, the methods it serves, who may call each, and the handler that answers.
//!
//! From [`routes!`] come the [`Route`] enum, [`ROUTES`] (what the dispatcher, the OpenAPI
//! description and the tests read) and [`dispatch`], one `match` whose arms the compiler drops in
//! every component but the route's own (the component is a constant of its build).

use http::Method;

use super::response::ApiError;
use super::{admin, docs, history, keys, metrics, probes, Call};
use crate::{Component, Endpoint, Response};

/// Who may call an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// Anyone: the probes and the description.
    Public,
    /// `metrics_token`, when one is set.
    MetricsToken,
    /// A token of `api_tokens` (or `admin_token`), when any is set, whose scope covers the one
    /// named: `Read` for the reads the bot runtime makes, `Admin` for everything else.
    AdminToken(Scope),
}

/// What a token of the admin API may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Read integrations (the list and one item), nothing that shows history or keys.
    Read,
    /// Everything: writes, history, restores, keys and re-sealing.
    Admin,
}

impl Scope {
    /// Whether a token of this scope may call an operation that needs `needed`.
    pub fn covers(self, needed: Scope) -> bool {
        match (self, needed) {
            (Self::Admin, _) | (Self::Read, Self::Read) => true,
            (Self::Read, Self::Admin) => false,
        }
    }

    /// As `api_tokens` and the OpenAPI description spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Admin => "admin",
        }
    }
}

/// Whether browsers on other origins call a route (the admin UI): it then answers CORS
/// preflights and decorates its answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Browsers {
    Cors,
    SameOrigin,
}

/// One method of a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Operation {
    pub method: Verb,
    pub auth: Auth,
}

/// The methods a route may serve besides `OPTIONS` (which every route answers) and `HEAD`
/// (served wherever `GET` is, as `GET` without the body).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Get,
    Put,
    Post,
}

impl Verb {
    pub fn method(self) -> Method {
        match self {
            Self::Get => Method::GET,
            Self::Put => Method::PUT,
            Self::Post => Method::POST,
        }
    }
}

/// A route of the table.
#[derive(Debug)]
pub struct RouteDef {
    pub route: Route,
    pub endpoint: Endpoint,
    /// The `[[trigger.http]] route` of spin.toml that reaches it (`:id` a segment, `/...` the rest).
    pub spin_route: &'static str,
    /// The rest of the path under a wildcard `spin_route` (`/{version}`: an integer segment).
    pub below: &'static str,
    /// Other spellings of the same path: the admin UI's trailing slash (Spin serves it on the
    /// same route), or a second route of spin.toml (`/ready`).
    pub also: &'static [&'static str],
    pub browsers: Browsers,
    pub operations: &'static [Operation],
}

macro_rules! routes {
    ($(
        $(#[$doc:meta])*
        $route:ident: $endpoint:ident, $spin_route:expr, $below:expr, $also:expr, $browsers:ident,
            { $($verb:ident $auth:expr => $handler:path),+ $(,)? };
    )*) => {
        /// What a request asks for: one row of [`ROUTES`], or nothing.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Route {
            $($(#[$doc])* $route,)*
            /// A path under a wildcard route that names nothing.
            Unknown,
        }

        /// Every route.
        pub const ROUTES: &[RouteDef] = &[$(
            RouteDef {
                route: Route::$route,
                endpoint: Endpoint::$endpoint,
                spin_route: $spin_route,
                below: $below,
                also: $also,
                browsers: Browsers::$browsers,
                operations: &[$(Operation { method: Verb::$verb, auth: $auth }),+],
            },
        )*];

        /// Calls the handler of `route`'s `verb`, as the component `C`. Only `C`'s arms stay in
        /// its binary: `C::ENDPOINT` is a constant.
        pub fn dispatch<C: Component>(route: Route, verb: Verb, call: &mut Call) -> Result<Response, ApiError> {
            match (C::ENDPOINT, route, verb) {
                $($( (Endpoint::$endpoint, Route::$route, Verb::$verb) => $handler(call), )+)*
                // A route outside the component, or a method outside the route: `answer`
                // refuses those before dispatching.
                _ => Err(ApiError::NotFound("Not Found")),
            }
        }
    };
}

use Auth::{AdminToken, MetricsToken, Public};
use Scope::{Admin, Read};

const HISTORY: &str = "/admin/integrations/:id/history/...";
const KEYS: &str = "/admin/keys/...";

routes! {
//  route       component   Spin route                  the rest under it      other spellings              browsers
//      method  who may call      handler
    /// `/admin/integrations[/]`: every integration.
    List:       List,       "/admin/integrations",      "",                    &["/admin/integrations/"],   Cors,
        { Get   AdminToken(Read)  => admin::list };
    /// `/admin/integrations/{id}`
    Item:       Item,       "/admin/integrations/:id",  "",                    &[],                         Cors,
        { Get   AdminToken(Read)  => admin::get,
          Put   AdminToken(Admin) => admin::put };
    /// `/admin/integrations/{id}/history`
    History:    History,    HISTORY,                    "",                    &[],                         Cors,
        { Get   AdminToken(Admin) => history::list };
    /// `/admin/integrations/{id}/history/{version}`
    Version:    History,    HISTORY,                    "/{version}",          &[],                         Cors,
        { Get   AdminToken(Admin) => history::version };
    /// `/admin/integrations/{id}/history/{version}/restore`
    Restore:    History,    HISTORY,                    "/{version}/restore",  &[],                         Cors,
        { Post  AdminToken(Admin) => history::restore };
    /// `/admin/keys`
    Keys:       Keys,       KEYS,                       "",                    &[],                         Cors,
        { Get   AdminToken(Admin) => keys::report };
    /// `/admin/keys/reseal`
    Reseal:     Keys,       KEYS,                       "/reseal",             &[],                         Cors,
        { Post  AdminToken(Admin) => keys::reseal };
    /// `/health`: liveness.
    Health:     Health,     "/health",                  "",                    &[],                         SameOrigin,
        { Get   Public            => probes::health };
    /// `/readiness`, and the original app's `/ready`.
    Readiness:  Readiness,  "/readiness",               "",                    &["/ready"],                 SameOrigin,
        { Get   Public            => probes::readiness };
    /// `/metrics`
    Metrics:    Metrics,    "/metrics",                 "",                    &[],                         SameOrigin,
        { Get   MetricsToken      => metrics::serve };
    /// `/openapi.json`: the description.
    OpenApi:    OpenApi,    "/openapi.json",            "",                    &[],                         Cors,
        { Get   Public            => docs::description };
    /// `/docs`: the description as a page.
    Docs:       OpenApi,    "/docs",                    "",                    &[],                         Cors,
        { Get   Public            => docs::page };
}

/// Where Spin sends a path that no row of the table names (spin.toml's catch-all route), and
/// the component that answers it: FastAPI's 404, `{"detail": "Not Found"}`, with a request id and
/// a log line, where Spin alone would answer an empty 404. The component serves the description,
/// reads no database, and has no route that needs a token.
pub const ELSEWHERE: Fallback = Fallback { endpoint: Endpoint::OpenApi, spin_route: "/..." };

/// A catch-all route of spin.toml: see [`ELSEWHERE`].
#[derive(Debug)]
pub struct Fallback {
    pub endpoint: Endpoint,
    pub spin_route: &'static str,
}

/// The path parameters of a request, as its route names them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PathParams<'p> {
    /// `{id}`, still percent-encoded.
    pub id: Option<&'p str>,
    /// `{version}`.
    pub version: Option<i64>,
}

impl RouteDef {
    /// The path in OpenAPI's spelling (`{id}`), without the trailing-slash spelling.
    pub fn path(&self) -> String {
        let mount = self.spin_route.strip_suffix("/...").unwrap_or(self.spin_route);
        let segments: Vec<String> =
            mount.split('/').map(|s| s.strip_prefix(':').map_or(s.to_owned(), |name| format!("{{{name}}}"))).collect();
        segments.join("/") + self.below
    }

    /// Every spelling of its path, [`Self::path`] first.
    pub fn paths(&self) -> Vec<String> {
        std::iter::once(self.path()).chain(self.also.iter().map(|path| path.to_string())).collect()
    }

    /// The methods it serves, as `Allow` lists them.
    pub fn methods(&self) -> Vec<Method> {
        let mut methods = Vec::new();
        for operation in self.operations {
            if operation.method == Verb::Get {
                methods.extend([Method::GET, Method::HEAD]);
            } else {
                methods.push(operation.method.method());
            }
        }
        methods.push(Method::OPTIONS);
        methods
    }

    /// The operation serving `method` (`HEAD` is `GET`'s).
    pub fn operation(&self, method: &Method) -> Option<Operation> {
        let verb = match *method {
            Method::GET | Method::HEAD => Verb::Get,
            Method::PUT => Verb::Put,
            Method::POST => Verb::Post,
            _ => return None,
        };
        self.operations.iter().copied().find(|operation| operation.method == verb)
    }

    /// Whether it is under `/admin`: guarded by the admin API's tokens, never cached along the way.
    pub fn is_admin(&self) -> bool {
        self.operations.iter().any(|operation| matches!(operation.auth, AdminToken(_)))
    }

    /// The path parameters of `path`, if it is one of this route's spellings. Empty segments do
    /// not count (`/history/` is `/history`); `{version}` must be an integer.
    fn matches<'p>(&self, path: &'p str) -> Option<PathParams<'p>> {
        let given: Vec<&str> = path.split('/').filter(|segment| !segment.is_empty()).collect();
        self.paths().iter().find_map(|template| {
            let template: Vec<&str> = template.split('/').filter(|segment| !segment.is_empty()).collect();
            if template.len() != given.len() {
                return None;
            }
            let mut params = PathParams::default();
            for (part, segment) in template.iter().zip(&given) {
                match *part {
                    "{id}" => params.id = Some(segment),
                    "{version}" => params.version = Some(segment.parse().ok()?),
                    literal if literal == *segment => {}
                    _ => return None,
                }
            }
            Some(params)
        })
    }
}

impl Route {
    /// The row of the table for this route; `None` for [`Route::Unknown`].
    pub fn def(self) -> Option<&'static RouteDef> {
        ROUTES.iter().find(|def| def.route == self)
    }

    /// The route of `endpoint` that `path` names, and its parameters. Spin has already chosen
    /// the component by path; this tells apart the routes of a component.
    pub fn of(endpoint: Endpoint, path: &str) -> (Self, PathParams<'_>) {
        let found =
            ROUTES.iter().filter(|def| def.endpoint == endpoint).find_map(|def| Some((def.route, def.matches(path)?)));
        found.unwrap_or((Self::Unknown, PathParams::default()))
    }
}

impl Endpoint {
    /// The routes a component serves.
    pub fn routes(self) -> impl Iterator<Item = &'static RouteDef> {
        ROUTES.iter().filter(move |def| def.endpoint == self)
    }

    /// Whether any route of the component speaks CORS. A `const fn`, so that a component's
    /// build evaluates it (`const { ... }`) and leaves out what it does not need.
    pub const fn speaks_cors(self) -> bool {
        let mut index = 0;
        while index < ROUTES.len() {
            if ROUTES[index].endpoint as u8 == self as u8 && matches!(ROUTES[index].browsers, Browsers::Cors) {
                return true;
            }
            index += 1;
        }
        false
    }

    /// Whether any operation of the component needs a token (when one is set): as
    /// [`Self::speaks_cors`], for the build.
    pub const fn guarded(self) -> bool {
        let mut index = 0;
        while index < ROUTES.len() {
            let def = &ROUTES[index];
            let mut operation = 0;
            while def.endpoint as u8 == self as u8 && operation < def.operations.len() {
                if !matches!(def.operations[operation].auth, Auth::Public) {
                    return true;
                }
                operation += 1;
            }
            index += 1;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_names_every_sub_path() {
        let of = |endpoint, path| Route::of(endpoint, path);
        assert_eq!(of(Endpoint::History, "/admin/integrations/fb/history").0, Route::History);
        assert_eq!(
            of(Endpoint::History, "/admin/integrations/fb/history/"),
            (Route::History, PathParams { id: Some("fb"), version: None })
        );
        assert_eq!(of(Endpoint::History, "/admin/integrations/fb/history/7").1.version, Some(7));
        assert_eq!(of(Endpoint::History, "/admin/integrations/fb/history/7/restore").0, Route::Restore);
        assert_eq!(of(Endpoint::History, "/admin/integrations/fb/history/x").0, Route::Unknown);
        assert_eq!(of(Endpoint::History, "/admin/integrations/fb/history/restore").0, Route::Unknown);
        assert_eq!(of(Endpoint::Keys, "/admin/keys/reseal").0, Route::Reseal);
        assert_eq!(of(Endpoint::Keys, "/admin/keys/other").0, Route::Unknown);
        assert_eq!(of(Endpoint::List, "/admin/integrations/").0, Route::List);
        assert_eq!(of(Endpoint::Readiness, "/ready").0, Route::Readiness);
        assert_eq!(of(Endpoint::OpenApi, "/docs").0, Route::Docs);
        assert_eq!(of(Endpoint::Item, "/admin/integrations/%66acebook").1.id, Some("%66acebook"));
    }

    #[test]
    fn every_component_serves_a_route_and_routes_are_unique() {
        for endpoint in Endpoint::ALL {
            assert!(endpoint.routes().next().is_some(), "{endpoint:?} serves nothing");
        }
        let mut paths: Vec<String> = ROUTES.iter().flat_map(RouteDef::paths).collect();
        let count = paths.len();
        paths.sort();
        paths.dedup();
        assert_eq!(paths.len(), count, "a path is in the table twice");
    }

    /// spin.toml mounts each route of the table on its component, and nothing else: a route's
    /// Spin route, its other spellings but the trailing slash (Spin serves that on the same
    /// route), and the catch-all.
    #[test]
    fn spin_toml_routes_are_the_tables() {
        let manifest = app_manifest::Manifest::of_the_app();
        let mut expected = std::collections::BTreeMap::new();
        expected.insert(ELSEWHERE.spin_route, ELSEWHERE.endpoint.component());
        for def in ROUTES {
            let component = def.endpoint.component();
            let spellings = def.also.iter().filter(|path| !path.ends_with('/'));
            for route in std::iter::once(&def.spin_route).chain(spellings) {
                assert_eq!(*expected.entry(*route).or_insert(component), component, "{route} on two components");
            }
        }
        assert_eq!(manifest.routes(), expected, "spin.toml's [[trigger.http]] and the route table differ");
        let components: Vec<&str> = Endpoint::ALL.iter().map(|endpoint| endpoint.component()).collect();
        let declared: Vec<&str> = manifest.component.keys().map(String::as_str).collect();
        assert_eq!(declared.len(), components.len());
        assert!(components.iter().all(|id| declared.contains(id)), "{declared:?} and {components:?}");
    }

    #[test]
    fn methods_are_listed_as_allow_says_them() {
        let item = Route::Item.def().unwrap();
        assert_eq!(item.methods(), [Method::GET, Method::HEAD, Method::PUT, Method::OPTIONS]);
        assert_eq!(item.operation(&Method::HEAD).unwrap().auth, AdminToken(Read));
        assert_eq!(item.operation(&Method::PUT).unwrap().auth, AdminToken(Admin));
        assert!(item.operation(&Method::DELETE).is_none());
    }

    #[test]
    fn a_read_scope_covers_reads_only_and_admin_everything() {
        assert!(Read.covers(Read) && !Read.covers(Admin));
        assert!(Admin.covers(Read) && Admin.covers(Admin));
        // What a read token may call: the list and the item, by GET (and HEAD), nothing else.
        let readable: Vec<(String, Verb)> = ROUTES
            .iter()
            .flat_map(|def| def.operations.iter().map(move |operation| (def, operation)))
            .filter(|(_, operation)| operation.auth == AdminToken(Read))
            .map(|(def, operation)| (def.path(), operation.method))
            .collect();
        let expected =
            [("/admin/integrations".to_owned(), Verb::Get), ("/admin/integrations/{id}".to_owned(), Verb::Get)];
        assert_eq!(readable, expected);
    }
}
