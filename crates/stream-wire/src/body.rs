//! Request bodies: what each endpoint's JSON must hold before the gateway signs it, and the
//! caller credentials some official clients put inside bodies, removed.
//!
//! A body is refused for one of two reasons only, written beside each rule: **Stream refuses
//! it** (its REST docs say so), or **safety** (a feed id that decides where a signed call
//! reaches, a credential, a count limit Stream documents, a key given twice). Every other
//! field passes untouched and Stream decides: `"actor": 1` is Stream's to store as `"1"`.
//!
//! Bodies are forwarded byte for byte unless a credential had to be removed; only then are
//! they serialized again.

use serde_json::{Map, Value};

use super::endpoint::BodyKind;
use super::ids::FeedId;
use super::json::parse_strict;
use super::query::MAX_COPY_LIMIT;
use super::{parse_time, InvalidInput};

/// Most activities in one `activities/` update (REST docs, Activities: "Maximum length is 100").
pub const MAX_UPDATE_ACTIVITIES: usize = 100;
/// Most target feeds in one `add_to_many` (REST docs, Batch Activity Add: "a limit of 5,000
/// target feeds").
pub const MAX_ADD_TO_MANY_FEEDS: usize = 5000;
/// Most follows in one `follow_many` (REST docs, Follow Many: "a limit of 2,500 follows").
pub const MAX_FOLLOW_MANY: usize = 2500;
/// Longest `verb` (Stream's activity docs: at most 255 bytes).
pub const MAX_VERB_BYTES: usize = 255;

/// What the check found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct CheckedBody {
    /// The body to send instead of the caller's, when credentials were removed from it.
    pub rewritten: Option<Vec<u8>>,
    /// A resend cannot store it twice: every activity in it carries both `foreign_id` and
    /// `time` (Stream de-duplicates on them), or every new object names its `id`.
    pub keyed: bool,
}

/// Checks `body` for an endpoint that takes `kind`.
pub fn check(kind: BodyKind, body: &[u8]) -> Result<CheckedBody, InvalidInput> {
    if kind == BodyKind::None {
        return Ok(CheckedBody::default());
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        if kind == BodyKind::OptionalObject {
            return Ok(CheckedBody::default());
        }
        // Stream refuses: a write takes a JSON body (REST docs, "JSON for POST Data").
        return Err(InvalidInput::new(
            "body",
            "is required: send the JSON this endpoint takes",
        ));
    }
    // Stream refuses what is not JSON ("All POST data must be JSON encoded"); safety refuses a
    // key given twice (see `json`).
    let mut v = parse_strict(body)?;
    let mut changed = false;
    let c = &mut changed;
    let keyed = match kind {
        BodyKind::None
        | BodyKind::OptionalObject
        | BodyKind::CollectionEntryUpdate
        | BodyKind::User
        | BodyKind::UserUpdate
        | BodyKind::UsersBatch => true,
        BodyKind::Activities => activities_add(&mut v, c)?,
        BodyKind::ActivitiesUpdate => activities_update(&mut v, c)?,
        BodyKind::PartialUpdate => partial_update(&mut v, c)?,
        BodyKind::ToTargets => to_targets_body(&mut v, c)?,
        BodyKind::AddToMany => add_to_many(&mut v, c)?,
        BodyKind::Follow => follow(&mut v, c)?,
        BodyKind::FollowMany => follow_many(&mut v, c)?,
        BodyKind::UnfollowMany => unfollow_many(&v)?,
        BodyKind::Reaction => reaction(&mut v, c)?,
        BodyKind::ReactionUpdate => reaction_update(&mut v, c)?,
        BodyKind::CollectionsUpsert => upsert_names_every_id(&v),
        BodyKind::CollectionEntry => names_id(&v),
        // Stream's analytics and personalization services decide on the shape; JSON is all
        // the gateway needs (a resend is never safe there, see the table).
        BodyKind::Json => false,
    };
    let rewritten = changed.then(|| serde_json::to_vec(&v).expect("a Value always serializes"));
    Ok(CheckedBody { rewritten, keyed })
}

// ---- one function per body kind ------------------------------------------------------------

/// `POST feed/{slug}/{user_id}/`: one activity, or `{"activities": [...]}`.
fn activities_add(v: &mut Value, changed: &mut bool) -> Result<bool, InvalidInput> {
    if !object_of(v, "body")?.contains_key("activities") {
        return activity(v, "activity", To::Allowed, changed);
    }
    let list = list_of(v.get_mut("activities"), "activities")?;
    let mut all_keyed = true;
    for (i, a) in list.iter_mut().enumerate() {
        all_keyed &= activity(a, &format!("activities[{i}]"), To::Allowed, changed)?;
    }
    Ok(all_keyed)
}

/// `POST activities/`: a full update of activities matched on `foreign_id` + `time`.
fn activities_update(v: &mut Value, changed: &mut bool) -> Result<bool, InvalidInput> {
    let obj = object_of(v, "body")?;
    let list = list_of(obj.get_mut("activities"), "activities")?;
    at_most(
        list.len(),
        MAX_UPDATE_ACTIVITIES,
        "activities",
        "activities",
    )?;
    for (i, a) in list.iter_mut().enumerate() {
        let f = format!("activities[{i}]");
        // Stream refuses: updates are matched on foreign_id and time (REST docs, Activities).
        if !activity(a, &f, To::Allowed, changed)? {
            return Err(InvalidInput::new(
                f,
                "must carry foreign_id and time: updates are matched on them",
            ));
        }
    }
    Ok(true)
}

/// `POST activity/`: one change, or `{"changes": [...]}`.
fn partial_update(v: &mut Value, changed: &mut bool) -> Result<bool, InvalidInput> {
    if !object_of(v, "body")?.contains_key("changes") {
        change(v, "body", changed)?;
        return Ok(true);
    }
    let list = list_of(v.get_mut("changes"), "changes")?;
    for (i, c) in list.iter_mut().enumerate() {
        change(c, &format!("changes[{i}]"), changed)?;
    }
    Ok(true)
}

/// `POST feed_targets/.../activity_to_targets/`: one update, or a list of them.
fn to_targets_body(v: &mut Value, changed: &mut bool) -> Result<bool, InvalidInput> {
    match v {
        Value::Array(list) => {
            for (i, u) in list.iter_mut().enumerate() {
                to_targets(u, &format!("[{i}]"), changed)?;
            }
        }
        _ => to_targets(v, "body", changed)?,
    }
    Ok(true)
}

/// `POST feed/add_to_many/`: `{"activity": {...}, "feeds": [...]}`.
fn add_to_many(v: &mut Value, changed: &mut bool) -> Result<bool, InvalidInput> {
    let obj = object_of(v, "body")?;
    let feeds = list_of(obj.get_mut("feeds"), "feeds")?;
    // Stream refuses more (REST docs, Batch Activity Add).
    at_most(feeds.len(), MAX_ADD_TO_MANY_FEEDS, "feeds", "feed ids")?;
    for (i, f) in feeds.iter().enumerate() {
        feed_id(Some(f), &format!("feeds[{i}]"))?;
    }
    let a = obj
        .get_mut("activity")
        .ok_or_else(|| InvalidInput::new("activity", "is required"))?;
    activity(a, "activity", To::NotPermitted, changed)
}

/// `POST feed/{slug}/{user_id}/follows/`: `{"target": "slug:id", "activity_copy_limit"?}`.
fn follow(v: &mut Value, changed: &mut bool) -> Result<bool, InvalidInput> {
    let obj = object_of(v, "body")?;
    follow_fields(obj, None, "", changed)?;
    Ok(true)
}

/// `POST follow_many/`: `[{"source", "target", "activity_copy_limit"?}, ...]`.
fn follow_many(v: &mut Value, changed: &mut bool) -> Result<bool, InvalidInput> {
    let list = list_of(Some(v), "body")?;
    // Stream refuses more (REST docs, Follow Many).
    at_most(list.len(), MAX_FOLLOW_MANY, "body", "follows")?;
    for (i, f) in list.iter_mut().enumerate() {
        let name = format!("[{i}]");
        let o = object_of(f, &name)?;
        follow_fields(o, Some("source"), &format!("{name}."), changed)?;
    }
    Ok(true)
}

/// `POST unfollow_many/`: `[{"source", "target", "keep_history"?}, ...]`. Stream documents no
/// count limit here: the body size bounds it.
fn unfollow_many(v: &Value) -> Result<bool, InvalidInput> {
    let Value::Array(list) = v else {
        return Err(InvalidInput::new("body", "must be a JSON array"));
    };
    for (i, f) in list.iter().enumerate() {
        let name = format!("[{i}]");
        let Value::Object(o) = f else {
            return Err(InvalidInput::new(name, "must be a JSON object"));
        };
        feed_id(o.get("source"), &format!("{name}.source"))?;
        feed_id(o.get("target"), &format!("{name}.target"))?;
    }
    Ok(true)
}

/// `POST reaction/`: Stream decides on every field but `target_feeds`.
fn reaction(v: &mut Value, changed: &mut bool) -> Result<bool, InvalidInput> {
    let keyed = names_id(v);
    reaction_update(v, changed)?;
    Ok(keyed)
}

/// `PUT reaction/{id}/`: Stream decides on every field but `target_feeds`.
fn reaction_update(v: &mut Value, changed: &mut bool) -> Result<bool, InvalidInput> {
    if let Value::Object(o) = v {
        feed_list(o.get_mut("target_feeds"), "reaction.target_feeds", changed)?;
    }
    Ok(true)
}

/// `POST collections/`: a resend is harmless only when every entry names its `id` (an upsert
/// without one creates a new entry).
fn upsert_names_every_id(v: &Value) -> bool {
    v.get("data")
        .and_then(Value::as_object)
        .is_some_and(|data| {
            data.values().all(|entries| {
                entries
                    .as_array()
                    .is_some_and(|list| list.iter().all(names_id))
            })
        })
}

/// Whether a new object names its own `id`, so a resend meets the first one.
fn names_id(v: &Value) -> bool {
    v.get("id").is_some_and(scalar_present)
}

// ---- the parts several kinds share --------------------------------------------------------

/// Whether `to` may appear in an activity.
#[derive(Clone, Copy, PartialEq, Eq)]
enum To {
    Allowed,
    /// Stream refuses `to` inside `add_to_many` (Batch Activity Add docs).
    NotPermitted,
}

/// Checks one activity; returns whether it carries both `foreign_id` and `time`.
fn activity(v: &mut Value, prefix: &str, to: To, changed: &mut bool) -> Result<bool, InvalidInput> {
    let o = object_of(v, prefix)?;
    // Stream refuses an activity without its base fields (REST docs, Feed: actor, verb,
    // object); it takes a number for actor or object and stores it as a string.
    scalar(o, "actor", prefix, Presence::Required)?;
    verb(o, prefix)?;
    // Stream refuses an empty `object` too: stream-js's own tests add `"object": ""` and
    // expect the promise to reject.
    if !scalar(o, "object", prefix, Presence::Required)? {
        return Err(InvalidInput::new(
            format!("{prefix}.object"),
            "must not be empty",
        ));
    }
    let foreign_id = scalar(o, "foreign_id", prefix, Presence::Optional)?;
    let time = time(o, prefix, Presence::Optional)?;
    if to == To::NotPermitted && o.contains_key("to") {
        return Err(InvalidInput::new(
            format!("{prefix}.to"),
            "is not permitted in add_to_many",
        ));
    }
    feed_list(o.get_mut("to"), &format!("{prefix}.to"), changed)?;
    Ok(time && foreign_id)
}

/// Stream refuses a verb that is not a string, or longer than [`MAX_VERB_BYTES`] (activity docs).
fn verb(o: &Map<String, Value>, prefix: &str) -> Result<(), InvalidInput> {
    let field = || format!("{prefix}.verb");
    match o.get("verb") {
        Some(Value::String(s)) if s.len() > MAX_VERB_BYTES => Err(InvalidInput::new(
            field(),
            &format!("must be at most {MAX_VERB_BYTES} bytes"),
        )),
        Some(Value::String(_)) => Ok(()),
        None | Some(Value::Null) => Err(InvalidInput::new(field(), "is required")),
        Some(_) => Err(InvalidInput::new(field(), "must be a string")),
    }
}

/// One partial update: the activity by `id`, or by `foreign_id` and `time`; `set.to` as `to`.
fn change(v: &mut Value, prefix: &str, changed: &mut bool) -> Result<(), InvalidInput> {
    let o = object_of(v, prefix)?;
    // Stream refuses a change that names no activity: it selects by id, or by foreign_id and
    // time (activity partial update, as every official client sends it).
    let by_id = o.get("id").is_some_and(scalar_present);
    let by_key = scalar(o, "foreign_id", prefix, Presence::Optional)?;
    if !by_id && !by_key {
        return Err(InvalidInput::new(
            format!("{prefix}.id"),
            "is required (or foreign_id and time)",
        ));
    }
    if !by_id {
        time(o, prefix, Presence::Required)?;
    }
    if let Some(Value::Object(set)) = o.get_mut("set") {
        feed_list(set.get_mut("to"), &format!("{prefix}.set.to"), changed)?;
    }
    Ok(())
}

/// One `activity_to_targets` update.
fn to_targets(v: &mut Value, prefix: &str, changed: &mut bool) -> Result<(), InvalidInput> {
    let o = object_of(v, prefix)?;
    // Stream refuses: the activity is selected by foreign_id and time (to-targets docs).
    scalar(o, "foreign_id", prefix, Presence::Required)?;
    time(o, prefix, Presence::Required)?;
    for key in ["new_targets", "added_targets", "removed_targets"] {
        feed_list(o.get_mut(key), &format!("{prefix}.{key}"), changed)?;
    }
    Ok(())
}

/// The fields of one follow; `source` is `Some` inside `follow_many`, where each item names it.
fn follow_fields(
    o: &mut Map<String, Value>,
    source: Option<&str>,
    prefix: &str,
    changed: &mut bool,
) -> Result<(), InvalidInput> {
    if let Some(key) = source {
        feed_id(o.get(key), &format!("{prefix}{key}"))?;
    }
    feed_id(o.get("target"), &format!("{prefix}target"))?;
    copy_limit(
        o.get("activity_copy_limit"),
        &format!("{prefix}activity_copy_limit"),
    )?;
    // Safety: a token for the target, minted by the caller with whatever secret it holds
    // (stream-python sends one); Stream accepts the follow without it, so it never leaves.
    *changed |= o.remove("target_token").is_some();
    Ok(())
}

/// Whether a field must be there.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Presence {
    Required,
    Optional,
}

/// A field Stream types as a string and stores numbers in as strings (`actor`, `object`,
/// `foreign_id`): a string or a number passes; anything else Stream refuses. Returns whether
/// it holds a non-empty value.
fn scalar(
    o: &Map<String, Value>,
    key: &str,
    prefix: &str,
    presence: Presence,
) -> Result<bool, InvalidInput> {
    match o.get(key) {
        Some(v @ (Value::String(_) | Value::Number(_))) => Ok(scalar_present(v)),
        None | Some(Value::Null) if presence == Presence::Optional => Ok(false),
        None | Some(Value::Null) => {
            Err(InvalidInput::new(format!("{prefix}.{key}"), "is required"))
        }
        Some(_) => Err(InvalidInput::new(
            format!("{prefix}.{key}"),
            "must be a string or a number",
        )),
    }
}

/// A non-empty string, or a number.
fn scalar_present(v: &Value) -> bool {
    match v {
        Value::String(s) => !s.is_empty(),
        Value::Number(_) => true,
        _ => false,
    }
}

/// Stream refuses a `time` that is not ISO 8601 in UTC (REST docs, Feed: "isoformat"); see
/// [`parse_time`] for the forms. Returns whether one is there.
fn time(o: &Map<String, Value>, prefix: &str, presence: Presence) -> Result<bool, InvalidInput> {
    match o.get("time") {
        Some(Value::String(s)) if parse_time(s).is_some() => Ok(true),
        None | Some(Value::Null) if presence == Presence::Optional => Ok(false),
        _ => Err(InvalidInput::new(
            format!("{prefix}.time"),
            "must be an ISO 8601 UTC time such as 2026-11-27T10:00:00.000000",
        )),
    }
}

/// Stream refuses an `activity_copy_limit` outside 0..=[`MAX_COPY_LIMIT`] (REST docs, Follow:
/// "max 1000").
fn copy_limit(v: Option<&Value>, field: &str) -> Result<(), InvalidInput> {
    match v {
        None | Some(Value::Null) => Ok(()),
        Some(Value::Number(n)) if n.as_u64().is_some_and(|n| n <= MAX_COPY_LIMIT) => Ok(()),
        Some(_) => Err(InvalidInput::new(
            field,
            &format!("must be an integer from 0 to {MAX_COPY_LIMIT}"),
        )),
    }
}

/// Safety: a feed id in a body decides which feeds a signed call reaches, so it must be a
/// valid `slug:user_id` string (numbers are refused: stream-python's own suite expects
/// `{"target": 42}` to raise `InputException`).
fn feed_id(v: Option<&Value>, field: &str) -> Result<FeedId, InvalidInput> {
    match v {
        Some(Value::String(s)) => {
            FeedId::parse(s).map_err(|e| InvalidInput::new(field, &e.to_string()))
        }
        None | Some(Value::Null) => Err(InvalidInput::new(field, "is required")),
        Some(_) => Err(InvalidInput::new(
            field,
            "must be a feed id string (slug:user_id)",
        )),
    }
}

/// Safety: a list of feed ids (absent or null is fine), each checked as [`feed_id`].
/// stream-python appends `"<space><token>"` to each entry of `to`, a token signed with the
/// caller's secret; Stream takes plain feed ids with a server-side JWT, so the token is removed.
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

/// Refuses a count over a documented limit; the message says the limit.
fn at_most(len: usize, max: usize, field: &str, what: &str) -> Result<(), InvalidInput> {
    if len > max {
        return Err(InvalidInput::new(
            field,
            &format!("must hold at most {max} {what}"),
        ));
    }
    Ok(())
}

/// Where the gateway reads fields inside, the body must have the shape the endpoint takes
/// (Stream refuses another shape too).
fn object_of<'a>(
    v: &'a mut Value,
    field: &str,
) -> Result<&'a mut Map<String, Value>, InvalidInput> {
    v.as_object_mut()
        .ok_or_else(|| InvalidInput::new(field, "must be a JSON object"))
}

/// As [`object_of`], for a list.
fn list_of<'a>(v: Option<&'a mut Value>, field: &str) -> Result<&'a mut Vec<Value>, InvalidInput> {
    match v {
        Some(Value::Array(a)) => Ok(a),
        Some(_) => Err(InvalidInput::new(field, "must be a JSON array")),
        None => Err(InvalidInput::new(field, "is required")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use BodyKind as K;

    /// `Ok(keyed)` or `Err(field)`.
    fn run(kind: BodyKind, body: &str) -> Result<bool, String> {
        check(kind, body.as_bytes())
            .map(|c| c.keyed)
            .map_err(|e| e.field)
    }

    fn rewritten(kind: BodyKind, body: Value) -> Value {
        let out = check(kind, body.to_string().as_bytes()).unwrap();
        serde_json::from_slice(&out.rewritten.expect("a rewrite")).unwrap()
    }

    const T: &str = "2026-11-27T10:00:00";

    /// Every rule: what passes and what is refused, each refusal with its field and reason.
    #[test]
    #[allow(clippy::too_many_lines)] // a table: one row per body rule
    fn every_body_rule_accepts_what_stream_accepts_and_refuses_with_its_reason() {
        let long_verb = "v".repeat(MAX_VERB_BYTES + 1);
        let ok_verb = "v".repeat(MAX_VERB_BYTES);
        let a = json!({"actor": "user:1", "verb": "tweet", "object": "tweet:1"});
        let feeds = |n: usize| vec![json!("user:1"); n];
        let pair = json!({"source": "timeline:1", "target": "user:2"});
        #[rustfmt::skip]
        let cases: Vec<(BodyKind, Value, Result<bool, &str>, &str)> = vec![
            // Accepted: numbers where Stream takes strings, forwarded as sent.
            (K::Activities, json!({"actor": 1, "verb": "tweet", "object": 1}), Ok(false), "numbers are Stream's to store as strings"),
            (K::Activities, json!({"actor": 1, "verb": "v", "object": 3, "foreign_id": 7, "time": T, "target": 9}), Ok(true), "numeric foreign_id keys an activity too"),
            (K::Activities, json!({"actor": "", "verb": "", "object": "o"}), Ok(false), "empty actor and verb: Stream decides"),
            (K::Activities, json!({"actor": "a", "verb": "v", "object": ""}), Err("activity.object"), "Stream refuses an empty object"),
            (K::Activities, json!({"activities": [{"actor": "a", "verb": "v", "object": "o"}, {"actor": "a", "verb": "v", "object": ""}]}), Err("activities[1].object"), "in a list too"),
            (K::Activities, json!({"actor": "a", "verb": ok_verb, "object": "o", "extra": {"x": [1]}}), Ok(false), "255-byte verb and custom fields"),
            (K::Activities, json!({"activities": []}), Ok(true), "an empty list: Stream decides"),
            (K::Activities, json!({"actor": "a", "verb": "v", "object": "o", "foreign_id": "f", "time": "2026-11-27T10:00:00.123Z"}), Ok(true), "stream-js toISOString time"),
            (K::Activities, json!({"actor": "a", "verb": "v", "object": "o", "foreign_id": "f", "time": "2026-11-27T10:00:00.123456789+00:00"}), Ok(true), "nanoseconds and +00:00"),
            // Refused: Stream's base fields and types.
            (K::Activities, json!({"verb": "v", "object": "o"}), Err("activity.actor"), "Stream refuses: actor is a base field"),
            (K::Activities, json!({"actor": "a", "verb": "v"}), Err("activity.object"), "Stream refuses: object is a base field"),
            (K::Activities, json!({"actor": "a", "object": "o"}), Err("activity.verb"), "Stream refuses: verb is a base field"),
            (K::Activities, json!({"actor": {"id": 1}, "verb": "v", "object": "o"}), Err("activity.actor"), "Stream refuses: actor is a string"),
            (K::Activities, json!({"actor": "a", "verb": 1, "object": "o"}), Err("activity.verb"), "Stream refuses: verb is a string"),
            (K::Activities, json!({"actor": "a", "verb": long_verb, "object": "o"}), Err("activity.verb"), "Stream refuses: verb over 255 bytes"),
            (K::Activities, json!({"actor": "a", "verb": "v", "object": "o", "foreign_id": [1]}), Err("activity.foreign_id"), "Stream refuses: foreign_id is a string"),
            (K::Activities, json!({"actor": "a", "verb": "v", "object": "o", "time": "now"}), Err("activity.time"), "Stream refuses: time is ISO 8601"),
            (K::Activities, json!({"actor": "a", "verb": "v", "object": "o", "time": 1700000000}), Err("activity.time"), "Stream refuses: time is a string"),
            (K::Activities, json!({"actor": "a", "verb": "v", "object": "o", "to": ["bad feed"]}), Err("activity.to[0]"), "safety: to decides where the call reaches"),
            (K::Activities, json!({"actor": "a", "verb": "v", "object": "o", "to": "user:1"}), Err("activity.to"), "safety: to is a list of feed ids"),
            (K::Activities, json!({"activities": [a, {"actor": "a"}]}), Err("activities[1].verb"), "each activity is checked"),
            (K::Activities, json!([a]), Err("body"), "Stream refuses: one activity or {activities}"),
            // Activities update.
            (K::ActivitiesUpdate, json!({"activities": vec![json!({"actor": "a", "verb": "v", "object": "o", "foreign_id": "f", "time": T}); MAX_UPDATE_ACTIVITIES]}), Ok(true), "the documented maximum"),
            (K::ActivitiesUpdate, json!({"activities": vec![json!({"actor": "a", "verb": "v", "object": "o", "foreign_id": "f", "time": T}); MAX_UPDATE_ACTIVITIES + 1]}), Err("activities"), "Stream refuses over 100"),
            (K::ActivitiesUpdate, json!({"activities": [a]}), Err("activities[0]"), "Stream refuses: matched on foreign_id and time"),
            (K::ActivitiesUpdate, json!({}), Err("activities"), "Stream refuses: the list is the body"),
            // Partial update.
            (K::PartialUpdate, json!({"id": "x", "set": {"a.b": 1}, "unset": ["c"]}), Ok(true), "by id"),
            (K::PartialUpdate, json!({"foreign_id": 5, "time": T, "set": 1, "unset": 2}), Ok(true), "by foreign_id and time; set and unset are Stream's to judge"),
            (K::PartialUpdate, json!({"id": "a", "foreign_id": "b"}), Ok(true), "both ways: Stream decides"),
            (K::PartialUpdate, json!({"changes": (0..150).map(|i| json!({"id": i.to_string()})).collect::<Vec<_>>()}), Ok(true), "no documented count limit"),
            (K::PartialUpdate, json!({"set": {}}), Err("body.id"), "Stream refuses: names no activity"),
            (K::PartialUpdate, json!({"foreign_id": "f"}), Err("body.time"), "Stream refuses: foreign_id needs time"),
            (K::PartialUpdate, json!({"changes": [{"id": "x", "set": {"to": ["bad"]}}]}), Err("changes[0].set.to[0]"), "safety: set.to decides where the activity goes"),
            // Targets update.
            (K::ToTargets, json!([{"foreign_id": "x", "time": T}]), Ok(true), "no targets: Stream decides"),
            (K::ToTargets, json!({"foreign_id": 1, "time": T, "new_targets": ["user:1"]}), Ok(true), "numeric foreign_id"),
            (K::ToTargets, json!({"time": T, "new_targets": []}), Err("body.foreign_id"), "Stream refuses: selected by foreign_id"),
            (K::ToTargets, json!({"foreign_id": "x", "time": "now"}), Err("body.time"), "Stream refuses: selected by time"),
            (K::ToTargets, json!({"foreign_id": "x", "time": T, "added_targets": [1]}), Err("body.added_targets[0]"), "safety: targets are feed ids"),
            // Batch add.
            (K::AddToMany, json!({"activity": a, "feeds": feeds(MAX_ADD_TO_MANY_FEEDS)}), Ok(false), "the documented maximum"),
            (K::AddToMany, json!({"activity": a, "feeds": []}), Ok(false), "no feeds: Stream decides"),
            (K::AddToMany, json!({"activity": a, "feeds": feeds(MAX_ADD_TO_MANY_FEEDS + 1)}), Err("feeds"), "Stream refuses over 5000"),
            (K::AddToMany, json!({"activity": a, "feeds": ["x"]}), Err("feeds[0]"), "safety: feeds are feed ids"),
            (K::AddToMany, json!({"activity": {"actor": "a", "verb": "v", "object": "o", "to": []}, "feeds": []}), Err("activity.to"), "Stream refuses: no to in add_to_many"),
            (K::AddToMany, json!({"feeds": []}), Err("activity"), "Stream refuses: the activity is the point"),
            // Follows.
            (K::Follow, json!({"target": "user:2", "activity_copy_limit": MAX_COPY_LIMIT}), Ok(true), "the documented maximum"),
            (K::Follow, json!({"target": "user:2", "activity_copy_limit": MAX_COPY_LIMIT + 1}), Err("activity_copy_limit"), "Stream refuses over 1000"),
            (K::Follow, json!({"target": "user:2", "activity_copy_limit": -1}), Err("activity_copy_limit"), "Stream refuses a negative limit"),
            (K::Follow, json!({"target": 42}), Err("target"), "safety: feed ids stay strings"),
            (K::Follow, json!({"target": "user2"}), Err("target"), "safety: slug:user_id"),
            (K::FollowMany, json!(vec![pair.clone(); MAX_FOLLOW_MANY]), Ok(true), "the documented maximum"),
            (K::FollowMany, json!([]), Ok(true), "none: Stream decides"),
            (K::FollowMany, json!(vec![pair.clone(); MAX_FOLLOW_MANY + 1]), Err("body"), "Stream refuses over 2500"),
            (K::FollowMany, json!([{"source": "timeline:1"}]), Err("[0].target"), "safety: target is a feed id"),
            (K::FollowMany, json!([{"source": "timeline:1", "target": "user:2", "activity_copy_limit": 1001}]), Err("[0].activity_copy_limit"), "Stream refuses over 1000"),
            (K::FollowMany, json!(pair), Err("body"), "Stream refuses: a list"),
            (K::UnfollowMany, json!(vec![json!({"source": "a:1", "target": "b:2", "keep_history": "yes"}); MAX_FOLLOW_MANY + 1]), Ok(true), "no documented limit; keep_history is Stream's"),
            (K::UnfollowMany, json!([{"source": "a:1", "target": 42}]), Err("[0].target"), "safety: stream-python's own test expects this refused"),
            (K::UnfollowMany, json!([1]), Err("[0]"), "Stream refuses: a list of objects"),
            // Reactions: Stream decides on everything but the feeds.
            (K::Reaction, json!({"kind": 1, "user_id": 7, "data": "x"}), Ok(false), "Stream decides"),
            (K::Reaction, json!({"kind": "like", "activity_id": "a", "id": "r1"}), Ok(true), "names its id"),
            (K::Reaction, json!({"kind": "like", "activity_id": "a", "target_feeds": ["user:1", "bad"]}), Err("reaction.target_feeds[1]"), "safety: target_feeds are feed ids"),
            (K::ReactionUpdate, json!({"data": 1}), Ok(true), "Stream decides"),
            (K::ReactionUpdate, json!({"target_feeds": "user:1"}), Err("reaction.target_feeds"), "safety: a list of feed ids"),
            // Collections and users: Stream decides on every field.
            (K::CollectionsUpsert, json!({"data": {"food": [{"id": "1"}, {"id": 2}]}}), Ok(true), "every entry named: a resend updates"),
            (K::CollectionsUpsert, json!({"data": {"food": [{"name": "x"}]}}), Ok(false), "an entry without id: not resent"),
            (K::CollectionsUpsert, json!({"data": {"bad name!": 1}}), Ok(false), "Stream decides"),
            (K::CollectionEntry, json!({"id": "1", "data": {}}), Ok(true), "names its id"),
            (K::CollectionEntry, json!({"data": 5}), Ok(false), "Stream decides"),
            (K::CollectionEntryUpdate, json!([]), Ok(true), "Stream decides"),
            (K::User, json!({"id": "u".repeat(300)}), Ok(true), "Stream decides"),
            (K::UserUpdate, json!({"data": []}), Ok(true), "Stream decides"),
            (K::UsersBatch, json!({"users": []}), Ok(true), "Stream decides"),
            (K::OptionalObject, json!([]), Ok(true), "Stream decides"),
        ];
        for (kind, body, want, why) in cases {
            let got = run(kind, &body.to_string());
            assert_eq!(got, want.map_err(str::to_owned), "{kind:?} {why}: {body}");
        }
    }

    #[test]
    fn json_is_required_and_each_key_given_once() {
        assert_eq!(run(K::Activities, "{"), Err("body".into()));
        assert_eq!(run(K::Activities, ""), Err("body".into()));
        assert_eq!(run(K::User, " "), Err("body".into()));
        assert_eq!(run(K::OptionalObject, " "), Ok(false));
        assert_eq!(run(K::None, "{not json"), Ok(false));
        let smuggled = r#"{"actor":"a","verb":"v","object":"o","to":["notification:1 tok"],"to":["notification:1"]}"#;
        assert_eq!(run(K::Activities, smuggled), Err("to".into()));
        let over = r#"{"target":"user:2","activity_copy_limit":5000,"activity_copy_limit":1}"#;
        assert_eq!(run(K::Follow, over), Err("activity_copy_limit".into()));
    }

    #[test]
    fn a_body_with_nothing_to_remove_is_forwarded_byte_for_byte() {
        let s = r#"{"actor": 1, "verb":"v","object":3.0}"#;
        assert_eq!(check(K::Activities, s.as_bytes()).unwrap().rewritten, None);
    }

    #[test]
    fn caller_tokens_are_removed_wherever_clients_put_them() {
        let to = json!(["notification:1 eyJhbGciOi.x.y", "user:2"]);
        let plain = json!(["notification:1", "user:2"]);
        let v = rewritten(
            K::Activities,
            json!({"actor": "a", "verb": "v", "object": "o", "to": to}),
        );
        assert_eq!(v["to"], plain);
        let v = rewritten(
            K::Follow,
            json!({"target": "user:2", "target_token": "t", "activity_copy_limit": 10}),
        );
        assert_eq!(v, json!({"target": "user:2", "activity_copy_limit": 10}));
        let v = rewritten(
            K::FollowMany,
            json!([{"source": "a:1", "target": "b:2", "target_token": "t"}, {"source": "a:1", "target": "c:3"}]),
        );
        assert_eq!(
            v,
            json!([{"source": "a:1", "target": "b:2"}, {"source": "a:1", "target": "c:3"}])
        );
        let v = rewritten(
            K::PartialUpdate,
            json!({"changes": [{"id": "x", "set": {"to": to}}]}),
        );
        assert_eq!(v["changes"][0]["set"]["to"], plain);
        let v = rewritten(K::PartialUpdate, json!({"id": "x", "set": {"to": to}}));
        assert_eq!(v["set"]["to"], plain);
        let v = rewritten(
            K::ToTargets,
            json!([{"foreign_id": "x", "time": T, "removed_targets": ["user:1 tok"]}]),
        );
        assert_eq!(v[0]["removed_targets"], json!(["user:1"]));
        let v = rewritten(
            K::Reaction,
            json!({"kind": "l", "activity_id": "a", "target_feeds": ["user:1 tok"]}),
        );
        assert_eq!(v["target_feeds"], json!(["user:1"]));
    }
}
