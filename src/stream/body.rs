//! Request bodies: each endpoint's JSON is checked against what Stream takes, and the
//! credentials some official clients put inside bodies are removed.
//!
//! Bodies are forwarded byte for byte unless something had to be removed; only then are they
//! serialized again.

use serde_json::{Map, Value};

use super::endpoint::BodyKind;
use super::ids::FeedId;
use super::query::MAX_COPY_LIMIT;
use super::{parse_time, InvalidInput};

/// Most activities in one `activities/` update (REST docs).
pub const MAX_UPDATE_ACTIVITIES: usize = 100;
/// Most target feeds in one `add_to_many` (REST docs).
pub const MAX_ADD_TO_MANY_FEEDS: usize = 5000;
/// Most follows in one `follow_many` (REST docs), and unfollows in one `unfollow_many` (no
/// documented limit of its own; the gateway holds it to the same).
pub const MAX_FOLLOW_MANY: usize = 2500;
/// Most changes in one partial update (as for `activities/` updates).
pub const MAX_PARTIAL_UPDATES: usize = 100;
/// Longest `verb` (Stream's activity docs).
pub const MAX_VERB_BYTES: usize = 255;

/// What the check found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct CheckedBody {
    /// The body to send instead of the caller's, when credentials were removed from it.
    pub rewritten: Option<Vec<u8>>,
    /// A resend cannot store it twice: every activity in it carries both `foreign_id` and
    /// `time` (Stream de-duplicates on them), or the new object names its `id`.
    pub keyed: bool,
}

/// Checks `body` for an endpoint that takes `kind`.
pub fn check(kind: BodyKind, body: &[u8]) -> Result<CheckedBody, InvalidInput> {
    if kind == BodyKind::None {
        return Ok(CheckedBody::default());
    }
    let blank = body.iter().all(u8::is_ascii_whitespace);
    if blank && kind == BodyKind::OptionalObject {
        return Ok(CheckedBody::default());
    }
    if blank {
        return Err(InvalidInput::new(
            "body",
            "is required: send the JSON this endpoint takes",
        ));
    }
    let mut v: Value = serde_json::from_slice(body)
        .map_err(|e| InvalidInput::new("body", &format!("is not valid JSON: {e}")))?;
    let mut changed = false;
    let keyed = match kind {
        BodyKind::None => unreachable!("handled above"),
        BodyKind::OptionalObject => {
            object(&mut v, "body")?;
            true
        }
        BodyKind::PartialUpdate => {
            let obj = object(&mut v, "body")?;
            if obj.contains_key("changes") {
                let list = array(obj.get_mut("changes"), "changes")?;
                if list.is_empty() || list.len() > MAX_PARTIAL_UPDATES {
                    return Err(InvalidInput::new(
                        "changes",
                        "must hold between 1 and 100 changes",
                    ));
                }
                for (i, c) in list.iter_mut().enumerate() {
                    change(c, &format!("changes[{i}]"))?;
                }
            } else {
                change(&mut v, "body")?;
            }
            true
        }
        BodyKind::ToTargets => {
            if let Value::Array(list) = &mut v {
                if list.is_empty() {
                    return Err(InvalidInput::new("body", "must not be an empty list"));
                }
                for (i, u) in list.iter_mut().enumerate() {
                    to_targets(u, &format!("[{i}]"), &mut changed)?;
                }
            } else {
                to_targets(&mut v, "body", &mut changed)?;
            }
            true
        }
        BodyKind::UnfollowMany => {
            let list = array(Some(&mut v), "body")?;
            if list.is_empty() || list.len() > MAX_FOLLOW_MANY {
                return Err(InvalidInput::new(
                    "body",
                    "must hold between 1 and 2500 unfollows",
                ));
            }
            for (i, f) in list.iter_mut().enumerate() {
                let name = format!("[{i}]");
                let o = object(f, &name)?;
                feed_id(o.get("source"), &format!("{name}.source"))?;
                feed_id(o.get("target"), &format!("{name}.target"))?;
                match o.get("keep_history") {
                    None | Some(Value::Null | Value::Bool(_)) => {}
                    Some(_) => {
                        return Err(InvalidInput::new(
                            format!("{name}.keep_history"),
                            "must be true or false",
                        ))
                    }
                }
            }
            true
        }
        BodyKind::Reaction => {
            let o = object(&mut v, "body")?;
            required_string(o, "kind", "reaction")?;
            let on_activity = optional_string(o, "activity_id", "reaction")?;
            let on_parent = optional_string(o, "parent", "reaction")?;
            if on_activity.is_none() && on_parent.is_none() {
                return Err(InvalidInput::new(
                    "reaction.activity_id",
                    "is required (or parent, for a child reaction)",
                ));
            }
            optional_string(o, "user_id", "reaction")?;
            optional_object(o, "data", "reaction")?;
            optional_object(o, "target_feeds_extra_data", "reaction")?;
            feed_list(
                o.get_mut("target_feeds"),
                "reaction.target_feeds",
                &mut changed,
            )?;
            optional_string(o, "id", "reaction")?.is_some()
        }
        BodyKind::ReactionUpdate => {
            let o = object(&mut v, "body")?;
            optional_object(o, "data", "reaction")?;
            feed_list(
                o.get_mut("target_feeds"),
                "reaction.target_feeds",
                &mut changed,
            )?;
            true
        }
        BodyKind::CollectionsUpsert => {
            let o = object(&mut v, "body")?;
            let data = match o.get("data") {
                Some(Value::Object(d)) if !d.is_empty() => d,
                Some(_) => {
                    return Err(InvalidInput::new(
                        "data",
                        "must be an object of collection name to a list of entries",
                    ))
                }
                None => return Err(InvalidInput::new("data", "is required")),
            };
            for (name, entries) in data {
                let f = format!("data.{name}");
                super::ids::check_name(name)
                    .map_err(|e| InvalidInput::new(f.as_str(), &e.to_string()))?;
                let Value::Array(list) = entries else {
                    return Err(InvalidInput::new(f, "must be a list of entries"));
                };
                for (i, e) in list.iter().enumerate() {
                    let ok = e.as_object().and_then(|o| o.get("id")).is_some_and(|id| {
                        id.as_str().is_some_and(|s| !s.is_empty()) || id.is_u64()
                    });
                    if !ok {
                        return Err(InvalidInput::new(
                            format!("{f}[{i}].id"),
                            "is required: an upsert is matched on it",
                        ));
                    }
                }
            }
            true
        }
        BodyKind::CollectionEntry => {
            let o = object(&mut v, "body")?;
            required_object(o, "data", "entry")?;
            optional_string(o, "user_id", "entry")?;
            optional_string(o, "id", "entry")?.is_some()
        }
        BodyKind::CollectionEntryUpdate => {
            let o = object(&mut v, "body")?;
            required_object(o, "data", "entry")?;
            true
        }
        BodyKind::User => {
            let o = object(&mut v, "body")?;
            let id = required_string(o, "id", "user")?;
            if id.len() > super::ids::MAX_ID_BYTES {
                return Err(InvalidInput::new("user.id", "must be at most 255 bytes"));
            }
            optional_object(o, "data", "user")?;
            true
        }
        BodyKind::UsersBatch => {
            let o = object(&mut v, "body")?;
            let list = array(o.get_mut("users"), "users")?;
            if list.is_empty() {
                return Err(InvalidInput::new("users", "must not be empty"));
            }
            for (i, u) in list.iter_mut().enumerate() {
                let f = format!("users[{i}]");
                let u = object(u, &f)?;
                if required_string(u, "id", &f)?.len() > super::ids::MAX_ID_BYTES {
                    return Err(InvalidInput::new(
                        format!("{f}.id"),
                        "must be at most 255 bytes",
                    ));
                }
                optional_object(u, "data", &f)?;
            }
            match o.get("override") {
                None | Some(Value::Null | Value::Bool(_)) => true,
                Some(_) => {
                    return Err(InvalidInput::new("override", "must be true or false"));
                }
            }
        }
        BodyKind::UserUpdate => {
            let o = object(&mut v, "body")?;
            optional_object(o, "data", "user")?;
            true
        }
        BodyKind::Activities => {
            let obj = object(&mut v, "body")?;
            if obj.contains_key("activities") {
                let list = array(obj.get_mut("activities"), "activities")?;
                if list.is_empty() {
                    return Err(InvalidInput::new("activities", "must not be empty"));
                }
                let mut all = true;
                for (i, a) in list.iter_mut().enumerate() {
                    all &= activity(a, &format!("activities[{i}]"), &mut changed, true)?;
                }
                all
            } else {
                activity(&mut v, "activity", &mut changed, true)?
            }
        }
        BodyKind::ActivitiesUpdate => {
            let obj = object(&mut v, "body")?;
            let list = array(obj.get_mut("activities"), "activities")?;
            if list.is_empty() || list.len() > MAX_UPDATE_ACTIVITIES {
                return Err(InvalidInput::new(
                    "activities",
                    "must hold between 1 and 100 activities",
                ));
            }
            for (i, a) in list.iter_mut().enumerate() {
                let f = format!("activities[{i}]");
                if !activity(a, &f, &mut changed, true)? {
                    return Err(InvalidInput::new(
                        f,
                        "must carry foreign_id and time: updates are matched on them",
                    ));
                }
            }
            true
        }
        BodyKind::AddToMany => {
            let obj = object(&mut v, "body")?;
            let feeds = array(obj.get_mut("feeds"), "feeds")?;
            if feeds.is_empty() || feeds.len() > MAX_ADD_TO_MANY_FEEDS {
                return Err(InvalidInput::new(
                    "feeds",
                    "must hold between 1 and 5000 feed ids",
                ));
            }
            for (i, f) in feeds.iter().enumerate() {
                feed_id(Some(f), &format!("feeds[{i}]"))?;
            }
            let a = obj
                .get_mut("activity")
                .ok_or_else(|| InvalidInput::new("activity", "is required"))?;
            activity(a, "activity", &mut changed, false)?
        }
        BodyKind::Follow => {
            let obj = object(&mut v, "body")?;
            feed_id(obj.get("target"), "target")?;
            copy_limit(obj.get("activity_copy_limit"), "activity_copy_limit")?;
            // A token for the target, minted by the caller with whatever secret it holds
            // (stream-python sends one); Stream accepts the follow without it.
            changed |= obj.remove("target_token").is_some();
            true
        }
        BodyKind::FollowMany => {
            let list = array(Some(&mut v), "body")?;
            if list.is_empty() || list.len() > MAX_FOLLOW_MANY {
                return Err(InvalidInput::new(
                    "body",
                    "must hold between 1 and 2500 follows",
                ));
            }
            for (i, f) in list.iter_mut().enumerate() {
                let name = format!("[{i}]");
                let o = object(f, &name)?;
                feed_id(o.get("source"), &format!("{name}.source"))?;
                feed_id(o.get("target"), &format!("{name}.target"))?;
                copy_limit(
                    o.get("activity_copy_limit"),
                    &format!("{name}.activity_copy_limit"),
                )?;
            }
            true
        }
    };
    let rewritten = changed.then(|| serde_json::to_vec(&v).expect("a Value always serializes"));
    Ok(CheckedBody { rewritten, keyed })
}

fn object<'a>(v: &'a mut Value, field: &str) -> Result<&'a mut Map<String, Value>, InvalidInput> {
    v.as_object_mut()
        .ok_or_else(|| InvalidInput::new(field, "must be a JSON object"))
}

fn array<'a>(v: Option<&'a mut Value>, field: &str) -> Result<&'a mut Vec<Value>, InvalidInput> {
    match v {
        Some(Value::Array(a)) => Ok(a),
        Some(_) => Err(InvalidInput::new(field, "must be a JSON array")),
        None => Err(InvalidInput::new(field, "is required")),
    }
}

fn feed_id(v: Option<&Value>, field: &str) -> Result<FeedId, InvalidInput> {
    match v {
        Some(Value::String(s)) => {
            FeedId::parse(s).map_err(|e| InvalidInput::new(field, &e.to_string()))
        }
        Some(_) => Err(InvalidInput::new(
            field,
            "must be a feed id string (slug:user_id)",
        )),
        None => Err(InvalidInput::new(field, "is required")),
    }
}

fn copy_limit(v: Option<&Value>, field: &str) -> Result<(), InvalidInput> {
    match v {
        None => Ok(()),
        Some(Value::Number(n)) if n.as_u64().is_some_and(|n| n <= MAX_COPY_LIMIT) => Ok(()),
        Some(_) => Err(InvalidInput::new(
            field,
            "must be an integer from 0 to 1000",
        )),
    }
}

fn required_string<'a>(
    o: &'a Map<String, Value>,
    key: &str,
    prefix: &str,
) -> Result<&'a str, InvalidInput> {
    match o.get(key) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s),
        Some(Value::String(_)) => Err(InvalidInput::new(
            format!("{prefix}.{key}"),
            "must not be empty",
        )),
        Some(_) => Err(InvalidInput::new(
            format!("{prefix}.{key}"),
            "must be a string",
        )),
        None => Err(InvalidInput::new(format!("{prefix}.{key}"), "is required")),
    }
}

fn optional_string<'a>(
    o: &'a Map<String, Value>,
    key: &str,
    prefix: &str,
) -> Result<Option<&'a str>, InvalidInput> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(_) => required_string(o, key, prefix).map(Some),
    }
}

fn optional_object(o: &Map<String, Value>, key: &str, prefix: &str) -> Result<(), InvalidInput> {
    match o.get(key) {
        None | Some(Value::Null | Value::Object(_)) => Ok(()),
        Some(_) => Err(InvalidInput::new(
            format!("{prefix}.{key}"),
            "must be a JSON object",
        )),
    }
}

fn required_object(o: &Map<String, Value>, key: &str, prefix: &str) -> Result<(), InvalidInput> {
    match o.get(key) {
        Some(Value::Object(_)) => Ok(()),
        None | Some(Value::Null) => {
            Err(InvalidInput::new(format!("{prefix}.{key}"), "is required"))
        }
        Some(_) => Err(InvalidInput::new(
            format!("{prefix}.{key}"),
            "must be a JSON object",
        )),
    }
}

/// A list of feed ids (absent or null is fine). stream-python appends `"<space><token>"` to
/// each entry of `to`, a token signed with the caller's secret; Stream takes plain feed ids
/// with a server-side JWT, so the token is removed.
fn feed_list(v: Option<&mut Value>, field: &str, changed: &mut bool) -> Result<(), InvalidInput> {
    let list = match v {
        None | Some(Value::Null) => return Ok(()),
        Some(Value::Array(list)) => list,
        Some(_) => return Err(InvalidInput::new(field, "must be a list of feed ids")),
    };
    for (i, t) in list.iter_mut().enumerate() {
        let f = format!("{field}[{i}]");
        let Value::String(s) = t else {
            return Err(InvalidInput::new(f, "must be a feed id string"));
        };
        let plain = s.split_once(' ').map(|(feed, _token)| feed.to_owned());
        let id = plain.as_deref().unwrap_or(s);
        FeedId::parse(id).map_err(|e| InvalidInput::new(f.as_str(), &e.to_string()))?;
        if let Some(p) = plain {
            *t = Value::String(p);
            *changed = true;
        }
    }
    Ok(())
}

/// One partial update: `id`, or `foreign_id` and `time`; `set` an object, `unset` a list of
/// field names.
fn change(v: &mut Value, prefix: &str) -> Result<(), InvalidInput> {
    let o = object(v, prefix)?;
    let by_id = optional_string(o, "id", prefix)?.is_some();
    let by_key = optional_string(o, "foreign_id", prefix)?.is_some();
    if by_id == by_key {
        return Err(InvalidInput::new(
            format!("{prefix}.id"),
            "give either id, or foreign_id and time",
        ));
    }
    if by_key {
        match o.get("time") {
            Some(Value::String(t)) if parse_time(t).is_some() => {}
            _ => {
                return Err(InvalidInput::new(
                    format!("{prefix}.time"),
                    "is required with foreign_id: an ISO 8601 UTC time",
                ))
            }
        }
    }
    optional_object(o, "set", prefix)?;
    match o.get("unset") {
        None | Some(Value::Null) => Ok(()),
        Some(Value::Array(a)) if a.iter().all(|f| f.as_str().is_some_and(|f| !f.is_empty())) => {
            Ok(())
        }
        Some(_) => Err(InvalidInput::new(
            format!("{prefix}.unset"),
            "must be a list of field names",
        )),
    }
}

/// One `activity_to_targets` update.
fn to_targets(v: &mut Value, prefix: &str, changed: &mut bool) -> Result<(), InvalidInput> {
    let o = object(v, prefix)?;
    required_string(o, "foreign_id", prefix)?;
    match o.get("time") {
        Some(Value::String(t)) if parse_time(t).is_some() => {}
        _ => {
            return Err(InvalidInput::new(
                format!("{prefix}.time"),
                "is required: an ISO 8601 UTC time",
            ))
        }
    }
    let mut any = false;
    for key in ["new_targets", "added_targets", "removed_targets"] {
        any |= !matches!(o.get(key), None | Some(Value::Null));
        feed_list(o.get_mut(key), &format!("{prefix}.{key}"), changed)?;
    }
    if !any {
        return Err(InvalidInput::new(
            format!("{prefix}.new_targets"),
            "one of new_targets, added_targets or removed_targets is required",
        ));
    }
    Ok(())
}

/// Checks one activity; returns whether it carries both `foreign_id` and `time`.
/// `to_allowed` is false inside `add_to_many`, which does not take `to`.
fn activity(
    v: &mut Value,
    prefix: &str,
    changed: &mut bool,
    to_allowed: bool,
) -> Result<bool, InvalidInput> {
    let o = object(v, prefix)?;
    required_string(o, "actor", prefix)?;
    if required_string(o, "verb", prefix)?.len() > MAX_VERB_BYTES {
        return Err(InvalidInput::new(
            format!("{prefix}.verb"),
            "must be at most 255 bytes",
        ));
    }
    required_string(o, "object", prefix)?;
    let time = match o.get("time") {
        None | Some(Value::Null) => false,
        Some(Value::String(s)) if parse_time(s).is_some() => true,
        Some(_) => {
            return Err(InvalidInput::new(
                format!("{prefix}.time"),
                "must be an ISO 8601 UTC time such as 2026-11-27T10:00:00.000000",
            ))
        }
    };
    let foreign_id = match o.get("foreign_id") {
        None | Some(Value::Null) => false,
        Some(Value::String(s)) if !s.is_empty() => true,
        Some(_) => {
            return Err(InvalidInput::new(
                format!("{prefix}.foreign_id"),
                "must be a non-empty string",
            ))
        }
    };
    if o.get("to").is_some() && !to_allowed {
        return Err(InvalidInput::new(
            format!("{prefix}.to"),
            "is not permitted in add_to_many",
        ));
    }
    feed_list(o.get_mut("to"), &format!("{prefix}.to"), changed)?;
    Ok(time && foreign_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(kind: BodyKind, s: &str) -> CheckedBody {
        check(kind, s.as_bytes()).unwrap_or_else(|e| panic!("{s}: {e}"))
    }
    fn field(kind: BodyKind, s: &str) -> String {
        check(kind, s.as_bytes()).unwrap_err().field
    }
    const A: &str = r#"{"actor":"user:1","verb":"tweet","object":"tweet:1"}"#;
    const K: &str = r#"{"actor":"user:1","verb":"tweet","object":"tweet:1","foreign_id":"tweet:1","time":"2026-11-27T10:00:00"}"#;

    #[test]
    fn one_activity_or_a_list_is_accepted_and_forwarded_unchanged() {
        assert_eq!(
            ok(BodyKind::Activities, A),
            CheckedBody {
                rewritten: None,
                keyed: false
            }
        );
        assert!(ok(BodyKind::Activities, K).keyed);
        let many = format!(r#"{{"activities":[{K},{K}]}}"#);
        assert!(ok(BodyKind::Activities, &many).keyed);
        let mixed = format!(r#"{{"activities":[{K},{A}]}}"#);
        assert!(!ok(BodyKind::Activities, &mixed).keyed);
    }

    #[test]
    fn malformed_or_missing_json_names_the_body() {
        assert_eq!(field(BodyKind::Activities, "{"), "body");
        assert_eq!(field(BodyKind::Activities, ""), "body");
        assert_eq!(field(BodyKind::Activities, "[1]"), "body");
        assert_eq!(
            field(BodyKind::Activities, r#"{"activities":[]}"#),
            "activities"
        );
    }

    #[test]
    fn an_activity_needs_actor_verb_and_object() {
        assert_eq!(
            field(BodyKind::Activities, r#"{"verb":"v","object":"o"}"#),
            "activity.actor"
        );
        assert_eq!(
            field(
                BodyKind::Activities,
                r#"{"actor":"a","verb":"","object":"o"}"#
            ),
            "activity.verb"
        );
        assert_eq!(
            field(
                BodyKind::Activities,
                r#"{"actor":"a","verb":"v","object":1}"#
            ),
            "activity.object"
        );
        let long = format!(
            r#"{{"actor":"a","verb":"{}","object":"o"}}"#,
            "v".repeat(256)
        );
        assert_eq!(field(BodyKind::Activities, &long), "activity.verb");
        let bad = format!(r#"{{"activities":[{K},{{"actor":"a"}}]}}"#);
        assert_eq!(field(BodyKind::Activities, &bad), "activities[1].verb");
    }

    #[test]
    fn a_bad_time_is_refused() {
        let s = r#"{"actor":"a","verb":"v","object":"o","time":"now"}"#;
        assert_eq!(field(BodyKind::Activities, s), "activity.time");
    }

    #[test]
    fn tokens_appended_to_to_entries_are_removed() {
        let s = r#"{"actor":"a","verb":"v","object":"o","to":["notification:1 eyJhbGciOi.x.y","user:2"]}"#;
        let out = ok(BodyKind::Activities, s);
        let v: Value = serde_json::from_slice(&out.rewritten.unwrap()).unwrap();
        assert_eq!(v["to"], serde_json::json!(["notification:1", "user:2"]));
        let bad = r#"{"actor":"a","verb":"v","object":"o","to":["bad feed"]}"#;
        assert_eq!(field(BodyKind::Activities, bad), "activity.to[0]");
    }

    #[test]
    fn a_follow_needs_a_target_and_loses_its_target_token() {
        let out = ok(
            BodyKind::Follow,
            r#"{"target":"user:2","target_token":"t","activity_copy_limit":10}"#,
        );
        let v: Value = serde_json::from_slice(&out.rewritten.unwrap()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"target":"user:2","activity_copy_limit":10})
        );
        assert_eq!(
            ok(BodyKind::Follow, r#"{"target":"user:2"}"#).rewritten,
            None
        );
        assert_eq!(field(BodyKind::Follow, r#"{"target":"user2"}"#), "target");
        assert_eq!(
            field(
                BodyKind::Follow,
                r#"{"target":"user:2","activity_copy_limit":1001}"#
            ),
            "activity_copy_limit"
        );
        assert_eq!(
            field(
                BodyKind::Follow,
                r#"{"target":"user:2","activity_copy_limit":-1}"#
            ),
            "activity_copy_limit"
        );
    }

    #[test]
    fn updates_are_1_to_100_activities_each_keyed() {
        let list = |n: usize| format!(r#"{{"activities":[{}]}}"#, vec![K; n].join(","));
        assert!(ok(BodyKind::ActivitiesUpdate, &list(1)).keyed);
        assert!(ok(BodyKind::ActivitiesUpdate, &list(100)).keyed);
        assert_eq!(field(BodyKind::ActivitiesUpdate, &list(101)), "activities");
        assert_eq!(field(BodyKind::ActivitiesUpdate, &list(0)), "activities");
        let unkeyed = format!(r#"{{"activities":[{A}]}}"#);
        assert_eq!(field(BodyKind::ActivitiesUpdate, &unkeyed), "activities[0]");
    }

    #[test]
    fn add_to_many_takes_1_to_5000_feeds_and_no_to() {
        let feeds = |n: usize| vec![r#""user:1""#; n].join(",");
        let body = |n: usize| format!(r#"{{"activity":{K},"feeds":[{}]}}"#, feeds(n));
        assert!(ok(BodyKind::AddToMany, &body(1)).keyed);
        assert!(ok(BodyKind::AddToMany, &body(5000)).keyed);
        assert_eq!(field(BodyKind::AddToMany, &body(5001)), "feeds");
        assert_eq!(field(BodyKind::AddToMany, &body(0)), "feeds");
        let with_to = r#"{"activity":{"actor":"a","verb":"v","object":"o","to":["user:1"]},"feeds":["user:1"]}"#;
        assert_eq!(field(BodyKind::AddToMany, with_to), "activity.to");
        assert_eq!(
            field(BodyKind::AddToMany, r#"{"activity":{},"feeds":["x"]}"#),
            "feeds[0]"
        );
    }

    #[test]
    fn follow_many_takes_1_to_2500_valid_pairs() {
        let pair = r#"{"source":"timeline:1","target":"user:2"}"#;
        let body = |n: usize| format!("[{}]", vec![pair; n].join(","));
        assert!(ok(BodyKind::FollowMany, &body(2500)).keyed);
        assert_eq!(field(BodyKind::FollowMany, &body(2501)), "body");
        assert_eq!(field(BodyKind::FollowMany, "[]"), "body");
        assert_eq!(
            field(BodyKind::FollowMany, r#"[{"source":"timeline:1"}]"#),
            "[0].target"
        );
        assert_eq!(
            field(BodyKind::FollowMany, r#"{"source":"a:1","target":"b:2"}"#),
            "body"
        );
    }

    #[test]
    fn endpoints_without_a_body_ignore_it() {
        assert_eq!(ok(BodyKind::None, "{not json"), CheckedBody::default());
    }

    #[test]
    fn the_rest_of_the_surface_checks_its_bodies_naming_the_field() {
        use serde_json::json;
        let f = |k: BodyKind, v: Value| field(k, &v.to_string());
        let t = "2026-11-27T10:00:00";
        // A blank body is fine only where the body is optional.
        assert_eq!(ok(BodyKind::OptionalObject, " "), CheckedBody::default());
        assert_eq!(f(BodyKind::OptionalObject, json!([])), "body");
        // Partial updates.
        let many: Vec<Value> = (0..101).map(|i| json!({"id": format!("{i}")})).collect();
        assert_eq!(
            f(BodyKind::PartialUpdate, json!({"changes": many})),
            "changes"
        );
        assert_eq!(
            f(
                BodyKind::PartialUpdate,
                json!({"id": "a", "foreign_id": "b"})
            ),
            "body.id"
        );
        assert_eq!(
            f(BodyKind::PartialUpdate, json!({"id": "a", "set": 1})),
            "body.set"
        );
        assert!(
            ok(
                BodyKind::PartialUpdate,
                &json!({"id": "a", "unset": null}).to_string()
            )
            .keyed
        );
        // Target updates: one or a list; targets lose client tokens.
        assert_eq!(f(BodyKind::ToTargets, json!([])), "body");
        assert_eq!(
            f(BodyKind::ToTargets, json!([{"foreign_id": "x", "time": t}])),
            "[0].new_targets"
        );
        assert_eq!(
            f(
                BodyKind::ToTargets,
                json!({"foreign_id": "x", "time": "now", "new_targets": []})
            ),
            "body.time"
        );
        assert_eq!(
            f(
                BodyKind::ToTargets,
                json!({"foreign_id": "x", "time": t, "new_targets": "user:1"})
            ),
            "body.new_targets"
        );
        assert_eq!(
            f(
                BodyKind::ToTargets,
                json!({"foreign_id": "x", "time": t, "new_targets": [1]})
            ),
            "body.new_targets[0]"
        );
        let out = ok(
            BodyKind::ToTargets,
            &json!([{"foreign_id": "x", "time": t, "removed_targets": ["user:1 tok"]}]).to_string(),
        );
        let v: Value = serde_json::from_slice(&out.rewritten.unwrap()).unwrap();
        assert_eq!(v[0]["removed_targets"], json!(["user:1"]));
        // Unfollow many.
        assert_eq!(f(BodyKind::UnfollowMany, json!([])), "body");
        assert_eq!(f(BodyKind::UnfollowMany, json!([1])), "[0]");
        assert_eq!(
            f(
                BodyKind::UnfollowMany,
                json!([{"source": 1, "target": "a:1"}])
            ),
            "[0].source"
        );
        // Reactions.
        assert_eq!(
            f(BodyKind::Reaction, json!({"kind": "", "activity_id": "a"})),
            "reaction.kind"
        );
        assert_eq!(
            f(BodyKind::Reaction, json!({"kind": "l", "parent": 3})),
            "reaction.parent"
        );
        assert_eq!(
            f(
                BodyKind::Reaction,
                json!({"kind": "l", "activity_id": "a", "user_id": 7})
            ),
            "reaction.user_id"
        );
        assert!(
            !ok(
                BodyKind::Reaction,
                &json!({"kind": "l", "parent": "p"}).to_string()
            )
            .keyed
        );
        assert!(
            ok(
                BodyKind::Reaction,
                &json!({"kind": "l", "parent": "p", "id": "r"}).to_string()
            )
            .keyed
        );
        assert_eq!(
            f(BodyKind::ReactionUpdate, json!({"target_feeds": ["x"]})),
            "reaction.target_feeds[0]"
        );
        // Collections.
        assert_eq!(f(BodyKind::CollectionsUpsert, json!({})), "data");
        assert_eq!(f(BodyKind::CollectionsUpsert, json!({"data": {}})), "data");
        assert_eq!(
            f(
                BodyKind::CollectionsUpsert,
                json!({"data": {"food": {"id": "1"}}})
            ),
            "data.food"
        );
        assert_eq!(
            f(
                BodyKind::CollectionsUpsert,
                json!({"data": {"food": [{"id": ""}]}})
            ),
            "data.food[0].id"
        );
        assert!(
            ok(
                BodyKind::CollectionsUpsert,
                &json!({"data": {"food": [{"id": 7}]}}).to_string()
            )
            .keyed
        );
        assert_eq!(
            f(BodyKind::CollectionEntry, json!({"data": null})),
            "entry.data"
        );
        assert!(
            ok(
                BodyKind::CollectionEntry,
                &json!({"id": "1", "data": {}}).to_string()
            )
            .keyed
        );
        assert!(
            !ok(
                BodyKind::CollectionEntry,
                &json!({"id": null, "data": {}}).to_string()
            )
            .keyed
        );
        // Users.
        let long = "u".repeat(256);
        assert_eq!(f(BodyKind::User, json!({"id": long})), "user.id");
        assert_eq!(f(BodyKind::UserUpdate, json!({"data": []})), "user.data");
        assert_eq!(f(BodyKind::UsersBatch, json!({"users": []})), "users");
        assert_eq!(
            f(BodyKind::UsersBatch, json!({"users": [{"id": long}]})),
            "users[0].id"
        );
        assert_eq!(
            f(
                BodyKind::UsersBatch,
                json!({"users": [{"id": "a", "data": 1}]})
            ),
            "users[0].data"
        );
        assert!(
            ok(
                BodyKind::UsersBatch,
                &json!({"users": [{"id": "a"}], "override": true}).to_string()
            )
            .keyed
        );
    }
}
