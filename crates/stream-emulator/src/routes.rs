//! Every route the emulator serves, in this one file: Stream's v1.0 routes (and its analytics
//! and personalization services), one function per family (behind the fault and log middleware,
//! with Stream's 404 for the rest), `/api/v2/` (answered 501: not emulated), the admin routes
//! and the console,
//! and realtime (`/faye`, [`realtime::transport`]).

use std::sync::Arc;

use axum::middleware;
use axum::routing::{any, delete, get, post, put};
use axum::Router;

use super::reply::stream_error;
use super::state::EmulatorState;
use super::{
    activities, admin, analytics, audit_logs, collections, console, feeds, intercept, reactions,
    realtime, users, v2, webhooks,
};

/// The emulator's router.
pub fn router(state: Arc<EmulatorState>) -> Router {
    let api = Router::new()
        .merge(feed_routes())
        .merge(activity_routes())
        .merge(reaction_routes())
        .merge(collection_routes())
        .merge(user_routes())
        .merge(service_routes())
        .route("/api/v2/{*rest}", any(v2::not_emulated))
        .fallback(|| async { stream_error(404, 16, "DoesNotExistException", "no such endpoint") })
        .layer(middleware::from_fn_with_state(
            state.clone(),
            intercept::faults_and_log,
        ));
    // Every admin route that changes something refuses another site's page
    // ([`console::same_origin`]); reads pass.
    let admin = Router::new()
        .route("/_emulator/", get(console::page))
        .route("/_emulator/export", get(console::export))
        .route("/_emulator/log", get(console::log))
        .route(
            "/_emulator/faults",
            post(admin::add_fault)
                .delete(admin::clear_faults)
                .get(admin::list_faults),
        )
        .route("/_emulator/requests", get(admin::list_requests))
        .route("/_emulator/analytics", get(admin::list_analytics))
        .route("/_emulator/secrets", put(admin::set_secrets))
        .route(
            "/_emulator/ratelimit",
            post(admin::set_rate_limit).delete(admin::clear_rate_limit),
        )
        .route("/_emulator/reset", post(admin::reset))
        .route(
            "/_emulator/import",
            // The handler reads up to `emulator.max_import_bytes`.
            post(admin::import).layer(axum::extract::DefaultBodyLimit::disable()),
        )
        .route("/_emulator/webhooks/send", post(webhooks::send))
        .route_layer(middleware::from_fn(console::same_origin));
    let realtime = realtime::transport::routes(state.clone());
    api.merge(admin)
        .route_service("/faye", realtime.clone())
        .route_service("/faye/", realtime)
        .layer(middleware::from_fn_with_state(state.clone(), persist_first))
        .with_state(state)
}

/// With `emulator.data_dir`: a request that changed the state is answered only once the
/// state is written (a failed write is a 500 in Stream's shape, the change kept in memory and
/// written with the next one).
async fn persist_first(
    axum::extract::State(st): axum::extract::State<Arc<EmulatorState>>,
    req: axum::extract::Request,
    next: middleware::Next,
) -> axum::response::Response {
    let res = next.run(req).await;
    if !st.persisting() {
        return res;
    }
    let saved = tokio::task::spawn_blocking(move || st.save_if_changed())
        .await
        .unwrap_or_else(|e| Err(e.to_string()));
    match saved {
        Ok(()) => res,
        Err(e) => {
            tracing::error!(error = %e, "emulator: the state cannot be written to emulator.data_dir");
            axum::response::IntoResponse::into_response(stream_error(
                500,
                0,
                "StorageException",
                &format!("emulator: the state cannot be written: {e}"),
            ))
        }
    }
}

/// Feeds: activities in feeds, follows, targets.
fn feed_routes() -> Router<Arc<EmulatorState>> {
    Router::new()
        .route(&v1("/feed/add_to_many/"), post(feeds::add_to_many))
        .route(&v1("/follow_many/"), post(feeds::follow_many))
        .route(&v1("/unfollow_many/"), post(feeds::unfollow_many))
        .route(
            &v1("/feed/{slug}/{user}/"),
            get(feeds::read_feed).post(feeds::add_activity),
        )
        .route(&v1("/enrich/feed/{slug}/{user}/"), get(feeds::read_feed))
        .route(&v1("/feed/{slug}/{user}/followers/"), get(feeds::followers))
        .route(
            &v1("/feed/{slug}/{user}/follows/"),
            get(feeds::following).post(feeds::follow),
        )
        .route(
            &v1("/feed/{slug}/{user}/following/"),
            get(feeds::following).post(feeds::follow),
        )
        .route(
            &v1("/feed/{slug}/{user}/follows/{target}/"),
            delete(feeds::unfollow),
        )
        .route(
            &v1("/feed/{slug}/{user}/following/{target}/"),
            delete(feeds::unfollow),
        )
        .route(
            &v1("/feed/{slug}/{user}/{activity}/"),
            delete(feeds::remove_activity),
        )
        .route(
            &v1("/feed_targets/{slug}/{user}/activity_to_targets/"),
            post(feeds::to_targets),
        )
        .route(&v1("/stats/follow/"), get(feeds::follow_stats))
}

/// Activities by id, updates, open graph.
fn activity_routes() -> Router<Arc<EmulatorState>> {
    Router::new()
        .route(
            &v1("/activities/"),
            get(activities::get_activities).post(activities::update_activities),
        )
        .route(&v1("/enrich/activities/"), get(activities::get_activities))
        .route(&v1("/activity/"), post(activities::partial_update))
        .route(&v1("/og/"), get(activities::og))
}

/// Reactions.
fn reaction_routes() -> Router<Arc<EmulatorState>> {
    Router::new()
        .route(&v1("/reaction/"), post(reactions::add))
        .route(&v1("/reaction/get_many/"), get(reactions::by_ids))
        .route(
            &v1("/reaction/{id}/"),
            get(reactions::get)
                .put(reactions::update)
                .delete(reactions::delete),
        )
        // `GET reaction/{lookup}/{value}/` and `PUT reaction/{id}/restore/` share a shape.
        .route(
            &v1("/reaction/{a}/{b}/"),
            get(reactions::filter).put(reactions::restore),
        )
        .route(
            &v1("/reaction/{a}/{b}/{kind}/"),
            get(reactions::filter_by_kind),
        )
}

/// Collections.
fn collection_routes() -> Router<Arc<EmulatorState>> {
    Router::new()
        .route(
            &v1("/collections/"),
            get(collections::select)
                .post(collections::upsert)
                .delete(collections::delete_many),
        )
        .route(&v1("/collections/{name}/"), post(collections::add))
        .route(
            &v1("/collections/{name}/{id}/"),
            get(collections::get)
                .put(collections::update)
                .delete(collections::delete),
        )
}

/// Users, and the audit log of recorded changes.
fn user_routes() -> Router<Arc<EmulatorState>> {
    Router::new()
        .route(&v1("/user/"), post(users::add))
        .route(
            &v1("/users/"),
            get(users::get_many)
                .post(users::add_many)
                .delete(users::delete_many),
        )
        .route(
            &v1("/user/{id}/"),
            get(users::get).put(users::update).delete(users::delete),
        )
        // Audit logs.
        .route(&v1("/audit_logs/"), get(audit_logs::filter))
}

/// Stream's other services: analytics (emulated) and personalization (501).
fn service_routes() -> Router<Arc<EmulatorState>> {
    Router::new()
        .route("/analytics/v1.0/engagement/", post(analytics::engagement))
        .route("/analytics/v1.0/impression/", post(analytics::impression))
        .route(
            "/personalization/v1.0/{resource}/",
            get(analytics::personalization)
                .post(analytics::personalization)
                .delete(analytics::personalization),
        )
}

/// A path under Stream's `/api/v1.0`.
fn v1(path: &str) -> String {
    format!("/api/v1.0{path}")
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::extract::FromRequestParts;
    use axum::http::Request;
    use tower::ServiceExt;

    use super::super::{EmulatorConfig, FeedGroups};
    use super::*;
    use stream_wire::auth::Secret;
    use stream_wire::{Endpoint, EndpointId, ENDPOINTS};

    /// A value for a path parameter of the endpoint table, by its name.
    fn sample(param: &str) -> &'static str {
        match param {
            "slug" => "user",
            "user_id" => "42",
            "target" => "timeline:7",
            "collection_name" => "food",
            "resource" => "items",
            "kind" => "like",
            _ => "x1",
        }
    }

    /// A concrete path, and what each of its segments must be in the route that serves it:
    /// the literal itself, or any parameter (`None`).
    type Concrete = (String, Vec<Option<String>>);

    /// One segment of a row's pattern: its literal aliases (`follows|following`), the values
    /// of a fixed set (`{lookup:a|b}`, a parameter in a route), or a sample of a parameter.
    fn segment(s: &str) -> Vec<(String, bool)> {
        match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            Some(p) => match p.split_once(':') {
                Some((_, set)) => set.split('|').map(|v| (v.to_owned(), false)).collect(),
                None => vec![(sample(p).to_owned(), false)],
            },
            None => s.split('|').map(|v| (v.to_owned(), true)).collect(),
        }
    }

    /// Every concrete path a row takes: each alias, each value of a fixed set, with and
    /// without an optional last segment (`[{kind}/]`).
    fn paths(e: &Endpoint) -> Vec<Concrete> {
        let patterns = match e.pattern.split_once('[') {
            Some((head, opt)) => vec![
                head.to_owned(),
                format!("{head}{}", opt.trim_end_matches(']')),
            ],
            None => vec![e.pattern.to_owned()],
        };
        let prefix = e.host.prefix().split('/').filter(|s| !s.is_empty());
        let start: Concrete = (
            e.host.prefix().to_owned(),
            prefix.map(|s| Some(s.to_owned())).collect(),
        );
        let mut out = Vec::new();
        for p in patterns {
            let mut paths = vec![start.clone()];
            for seg in p.split('/').filter(|s| !s.is_empty()) {
                paths = paths
                    .iter()
                    .flat_map(|(path, shape)| {
                        segment(seg).into_iter().map(move |(v, literal)| {
                            let mut shape = shape.clone();
                            shape.push(literal.then(|| v.clone()));
                            (format!("{path}{v}/"), shape)
                        })
                    })
                    .collect();
            }
            out.extend(paths);
        }
        out
    }

    /// Whether the route that served a path took the row's parameters, no more: its
    /// parameters' values are the path's segments where the row has none of its literals
    /// (`reaction/get_many/` is not served by `reaction/{id}/`).
    fn same_shape(path: &str, shape: &[Option<String>], params: &str) -> bool {
        let wanted: Vec<&str> = path
            .split('/')
            .filter(|s| !s.is_empty())
            .zip(shape)
            .filter(|(_, literal)| literal.is_none())
            .map(|(v, _)| v)
            .collect();
        wanted.join("/") == params
    }

    /// Tells, in a header of the answer, the path parameters of the route that served it.
    async fn name_the_params(
        req: axum::extract::Request,
        next: middleware::Next,
    ) -> axum::response::Response {
        let (mut parts, body) = req.into_parts();
        let params = axum::extract::RawPathParams::from_request_parts(&mut parts, &())
            .await
            .map(|p| p.iter().map(|(_, v)| v.to_owned()).collect::<Vec<_>>())
            .unwrap_or_default()
            .join("/");
        let mut resp = next
            .run(axum::extract::Request::from_parts(parts, body))
            .await;
        if let Ok(v) = params.parse() {
            resp.headers_mut().insert("x-params", v);
        }
        resp
    }

    /// A route the emulator serves refuses a call with no credentials (401 or 403, from the
    /// route's own check) and takes the row's parameters; a forgotten one answers the
    /// fallback's 404 or axum's 405, or is served by a wider route of another shape.
    #[tokio::test]
    async fn the_emulator_serves_every_row_of_the_gateways_endpoint_table() {
        let st = Arc::new(EmulatorState::new(
            EmulatorConfig {
                api_key: "key".into(),
                api_secret: Secret::new("secret"),
                strict_scopes: false,
            },
            FeedGroups::default(),
        ));
        let app = router(st).layer(middleware::from_fn(name_the_params));
        let mut missing = Vec::new();
        let mut tried = 0;
        for e in &ENDPOINTS {
            for (path, shape) in paths(e) {
                tried += 1;
                let req = Request::builder()
                    .method(e.method.as_str())
                    .uri(&path)
                    .body(Body::empty())
                    .unwrap();
                let resp = app.clone().oneshot(req).await.unwrap();
                let status = resp.status().as_u16();
                let params = resp
                    .headers()
                    .get("x-params")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("none")
                    .to_owned();
                // `PUT reaction/{id}/restore/` shares its route with the filter's
                // `reaction/{a}/{b}/`; the handler checks the `restore` itself.
                let shared = e.id == EndpointId::ReactionRestore && params == "x1/restore";
                let shaped = shared || same_shape(&path, &shape, &params);
                if !matches!(status, 401 | 403) || !shaped {
                    let m = e.method.as_str();
                    missing.push(format!("{} {m} {path}: {status}, params {params}", e.name));
                }
            }
        }
        assert!(
            tried > ENDPOINTS.len(),
            "aliases and optional segments are tried too"
        );
        assert!(missing.is_empty(), "not served: {missing:#?}");
    }
}
