//! Every route the emulator serves, in one table: Stream's v1.0 routes (behind the fault and
//! log middleware, with Stream's 404 for the rest) and the admin routes.

use std::sync::Arc;

use axum::middleware;
use axum::routing::{delete, get, post};
use axum::Router;

use super::reply::stream_error;
use super::state::EmulatorState;
use super::{activities, admin, audit_logs, collections, feeds, reactions, users};

/// The emulator's router.
pub fn router(state: Arc<EmulatorState>) -> Router {
    const V: &str = "/api/v1.0";
    let r = |p: &str| format!("{V}{p}");
    let api = Router::new()
        // Feeds: activities in feeds, follows, targets.
        .route(&r("/feed/add_to_many/"), post(feeds::add_to_many))
        .route(&r("/follow_many/"), post(feeds::follow_many))
        .route(&r("/unfollow_many/"), post(feeds::unfollow_many))
        .route(
            &r("/feed/{slug}/{user}/"),
            get(feeds::read_feed).post(feeds::add_activity),
        )
        .route(&r("/enrich/feed/{slug}/{user}/"), get(feeds::read_feed))
        .route(&r("/feed/{slug}/{user}/followers/"), get(feeds::followers))
        .route(
            &r("/feed/{slug}/{user}/follows/"),
            get(feeds::following).post(feeds::follow),
        )
        .route(
            &r("/feed/{slug}/{user}/following/"),
            get(feeds::following).post(feeds::follow),
        )
        .route(
            &r("/feed/{slug}/{user}/follows/{target}/"),
            delete(feeds::unfollow),
        )
        .route(
            &r("/feed/{slug}/{user}/following/{target}/"),
            delete(feeds::unfollow),
        )
        .route(
            &r("/feed/{slug}/{user}/{activity}/"),
            delete(feeds::remove_activity),
        )
        .route(
            &r("/feed_targets/{slug}/{user}/activity_to_targets/"),
            post(feeds::to_targets),
        )
        .route(&r("/stats/follow/"), get(feeds::follow_stats))
        // Activities by id, updates, open graph.
        .route(
            &r("/activities/"),
            get(activities::get_activities).post(activities::update_activities),
        )
        .route(&r("/enrich/activities/"), get(activities::get_activities))
        .route(&r("/activity/"), post(activities::partial_update))
        .route(&r("/og/"), get(activities::og))
        // Reactions.
        .route(&r("/reaction/"), post(reactions::add))
        .route(&r("/reaction/get_many/"), get(reactions::by_ids))
        .route(
            &r("/reaction/{id}/"),
            get(reactions::get)
                .put(reactions::update)
                .delete(reactions::delete),
        )
        // `GET reaction/{lookup}/{value}/` and `PUT reaction/{id}/restore/` share a shape.
        .route(
            &r("/reaction/{a}/{b}/"),
            get(reactions::filter).put(reactions::restore),
        )
        .route(
            &r("/reaction/{a}/{b}/{kind}/"),
            get(reactions::filter_by_kind),
        )
        // Collections.
        .route(
            &r("/collections/"),
            get(collections::select)
                .post(collections::upsert)
                .delete(collections::delete_many),
        )
        .route(&r("/collections/{name}/"), post(collections::add))
        .route(
            &r("/collections/{name}/{id}/"),
            get(collections::get)
                .put(collections::update)
                .delete(collections::delete),
        )
        // Users.
        .route(&r("/user/"), post(users::add))
        .route(
            &r("/users/"),
            get(users::get_many)
                .post(users::add_many)
                .delete(users::delete_many),
        )
        .route(
            &r("/user/{id}/"),
            get(users::get).put(users::update).delete(users::delete),
        )
        // Audit logs.
        .route(&r("/audit_logs/"), get(audit_logs::filter))
        .fallback(|| async { stream_error(404, 16, "DoesNotExistException", "no such endpoint") })
        .layer(middleware::from_fn_with_state(
            state.clone(),
            admin::faults_and_log,
        ));
    let admin = Router::new()
        .route(
            "/_emulator/faults",
            post(admin::add_fault)
                .delete(admin::clear_faults)
                .get(admin::list_faults),
        )
        .route("/_emulator/requests", get(admin::list_requests))
        .route("/_emulator/reset", post(admin::reset));
    api.merge(admin).with_state(state)
}
